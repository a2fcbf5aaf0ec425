import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import COVARIANCE_TYPES, full_covariances, random_params

import gmm_jax as gmm


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_samples_have_the_mixture_moments(rng, covariance_type):
    params = random_params(rng, covariance_type, n_components=3, n_features=3, spread=10.0)
    n = 200_000
    X, labels = gmm.sample(jax.random.key(0), params, n)
    X, labels = np.asarray(X), np.asarray(labels)
    counts = np.bincount(labels, minlength=3) / n
    np.testing.assert_allclose(counts, params.weights, atol=4 / np.sqrt(n))
    covariances = full_covariances(params)
    for k in range(3):
        Xk = X[labels == k]
        se = np.sqrt(np.diag(covariances[k]) / len(Xk))
        np.testing.assert_array_less(np.abs(Xk.mean(0) - params.means[k]), 5 * se)
        np.testing.assert_allclose(np.cov(Xk.T), covariances[k], atol=0.05 * np.abs(covariances[k]).max())


def test_sample_is_reproducible_and_follows_dtype(rng):
    params = random_params(rng, "full").astype(jnp.float32)
    a, la = gmm.sample(jax.random.key(3), params, 50)
    b, lb = gmm.sample(jax.random.key(3), params, 50)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(la, lb)
    assert a.dtype == jnp.float32
