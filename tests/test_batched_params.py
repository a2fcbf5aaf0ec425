"""One mixture per example (a mixture density network's output): the jax.vmap idiom equals a loop."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

import gmm_jax as gmm
from conftest import COVARIANCE_TYPES, full_covariances

B, K, D = 6, 3, 2


def batched_params(covariance_type, batch=(B,), seed=0):
    rng = np.random.default_rng(seed)
    packed = {"full": (K, D * (D + 1) // 2), "tied": (D * (D + 1) // 2,), "diag": (K, D), "spherical": (K,)}
    raw = gmm.UnconstrainedParams(
        jnp.asarray(rng.normal(size=(*batch, K - 1))),
        jnp.asarray(rng.normal(scale=2.0, size=(*batch, K, D))),
        jnp.asarray(rng.normal(scale=0.5, size=(*batch, *packed[covariance_type]))),
    )
    return gmm.from_unconstrained(raw, covariance_type)


def member(params, *index):
    return jax.tree_util.tree_map(lambda a: a[index], params)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.slow
def test_log_prob_and_predict_proba_of_batched_parameters_equal_a_loop(covariance_type):
    params = batched_params(covariance_type)
    X = jnp.asarray(np.random.default_rng(1).normal(size=(B, 4, D)))  # four points per example
    log_p = jax.jit(jax.vmap(gmm.log_prob))(params, X)
    proba = jax.vmap(gmm.predict_proba)(params, X)
    assert log_p.shape == (B, 4) and proba.shape == (B, 4, K)
    for b in range(B):
        one = member(params, b)
        chex.assert_trees_all_close(log_p[b], gmm.log_prob(one, X[b]), rtol=1e-12)
        chex.assert_trees_all_close(proba[b], gmm.predict_proba(one, X[b]), rtol=1e-12, atol=1e-15)
        # and against scipy, component by component
        covs = full_covariances(one)
        terms = [
            np.log(one.weights[k]) + multivariate_normal(one.means[k], covs[k]).logpdf(np.asarray(X[b])) for k in range(K)
        ]
        np.testing.assert_allclose(log_p[b], logsumexp(np.stack(terms), axis=0), rtol=1e-10)


def test_one_target_per_example_is_x_with_a_length_one_sample_axis():
    params = batched_params("full")
    y = jnp.asarray(np.random.default_rng(2).normal(size=(B, D)))
    log_p = jax.vmap(gmm.log_prob)(params, y[:, None, :])[:, 0]
    np.testing.assert_allclose(log_p, [gmm.log_prob(member(params, b), y[b : b + 1])[0] for b in range(B)], rtol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_sampling_batched_parameters_equals_a_loop_with_the_same_keys(covariance_type):
    params = batched_params(covariance_type)
    keys = jax.random.split(jax.random.key(0), B)
    X, labels = jax.vmap(lambda key, p: gmm.sample(key, p, 5))(keys, params)
    assert X.shape == (B, 5, D) and labels.shape == (B, 5)
    for b in range(B):
        X_b, labels_b = gmm.sample(keys[b], member(params, b), 5)
        np.testing.assert_allclose(X[b], X_b, rtol=1e-12)
        np.testing.assert_array_equal(labels[b], labels_b)


def test_two_batch_axes_take_two_vmaps():
    params = batched_params("diag", batch=(2, 3))
    X = jnp.asarray(np.random.default_rng(3).normal(size=(2, 3, 4, D)))
    log_p = jax.vmap(jax.vmap(gmm.log_prob))(params, X)
    for i in range(2):
        for j in range(3):
            np.testing.assert_allclose(log_p[i, j], gmm.log_prob(member(params, i, j), X[i, j]), rtol=1e-12)


def test_the_batched_negative_log_likelihood_differentiates_like_a_loop():
    params = batched_params("full")
    y = jnp.asarray(np.random.default_rng(4).normal(size=(B, 1, D)))

    def batched(means):
        return -jnp.mean(jax.vmap(gmm.log_prob)(params.replace(means=means), y))

    def looped(means):
        return -sum(gmm.log_prob(member(params, b).replace(means=means[b]), y[b])[0] for b in range(B)) / B

    chex.assert_trees_all_close(jax.grad(batched)(params.means), jax.grad(looped)(params.means), rtol=1e-10)
