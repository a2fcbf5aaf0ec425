import jax
import jax.numpy as jnp
import numpy as np
from sklearn.cluster import KMeans

import gmm_jax as gmm


def blobs(rng, n=600, k=4, d=3):
    centers = rng.normal(scale=6, size=(k, d))
    labels = rng.integers(0, k, n)
    return centers[labels] + rng.normal(size=(n, d)), labels


def inertia(X, centers):
    return np.sum(np.min(((X[:, None] - centers[None]) ** 2).sum(-1), axis=1))


def test_kmeans_reaches_sklearns_inertia(rng):
    X, true = blobs(rng)
    centers, labels = gmm.kmeans(jax.random.key(0), X, 4)
    reference = KMeans(4, n_init=1, random_state=0).fit(X)
    assert inertia(X, np.asarray(centers)) <= 1.001 * reference.inertia_
    accuracy, _ = gmm.metrics.clustering_accuracy(true, labels)
    reference_accuracy, _ = gmm.metrics.clustering_accuracy(true, reference.labels_)
    assert accuracy >= reference_accuracy - 0.005


def test_kmeans_labels_are_nearest_centres(rng):
    X, _ = blobs(rng)
    centers, labels = gmm.kmeans(jax.random.key(1), X, 4)
    nearest = np.argmin(((X[:, None] - np.asarray(centers)[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_array_equal(labels, nearest)


def test_kmeans_centres_are_weighted_means_of_their_clusters(rng):
    X, _ = blobs(rng)
    w = rng.uniform(0.1, 3.0, size=X.shape[0])
    # With tol=0 Lloyd runs to its fixed point: centres are exactly the cluster means.
    centers, labels = gmm.kmeans(jax.random.key(2), X, 4, sample_weight=w, tol=0.0)
    for k in range(4):
        mask = np.asarray(labels) == k
        np.testing.assert_allclose(centers[k], np.average(X[mask], axis=0, weights=w[mask]), rtol=1e-6, atol=1e-6)


def test_kmeans_with_fewer_distinct_points_than_clusters_gives_finite_centres():
    X = jnp.repeat(jnp.array([[0.0, 0.0], [1.0, 1.0]]), 10, axis=0)
    centers, labels = gmm.kmeans(jax.random.key(0), X, 4)
    assert bool(jnp.all(jnp.isfinite(centers)))
    assert set(np.asarray(labels).tolist()) <= {0, 1, 2, 3}


def test_kmeans_vmaps_over_keys(rng):
    X, _ = blobs(rng)
    keys = jax.random.split(jax.random.key(0), 3)
    centers, labels = jax.vmap(lambda k: gmm.kmeans(k, X, 4))(keys)
    assert centers.shape == (3, 4, 3) and labels.shape == (3, X.shape[0])
    single, _ = gmm.kmeans(keys[1], X, 4)
    np.testing.assert_allclose(centers[1], single, rtol=1e-12)
