import jax
import jax.test_util
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from conftest import COVARIANCE_TYPES, full_covariances, random_params, sample_numpy

import gmm_jax as gmm


def scipy_mixture_log_density(params, X):
    covs = full_covariances(params)
    k = params.n_components
    comps = np.stack(
        [scipy.stats.multivariate_normal(np.asarray(params.means)[j], covs[j]).logpdf(X) for j in range(k)], axis=1
    )
    return scipy.special.logsumexp(comps + np.log(np.asarray(params.weights)), axis=1), comps


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("n_features", [1, 3])
def test_log_prob_equals_scipy_mixture_density(rng, covariance_type, n_features):
    params = random_params(rng, covariance_type, n_components=4, n_features=n_features)
    X = rng.normal(scale=4.0, size=(50, n_features))
    expected, _ = scipy_mixture_log_density(params, X)
    np.testing.assert_allclose(gmm.log_prob(params, X), expected, rtol=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_predict_proba_is_the_normalised_posterior(rng, covariance_type):
    params = random_params(rng, covariance_type, n_components=3, n_features=2)
    X = rng.normal(scale=3.0, size=(40, 2))
    total, comps = scipy_mixture_log_density(params, X)
    expected = np.exp(comps + np.log(np.asarray(params.weights)) - total[:, None])
    proba = gmm.predict_proba(params, X)
    np.testing.assert_allclose(proba, expected, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(gmm.predict(params, X), expected.argmax(axis=1))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_score_bic_aic_and_n_parameters_match_sklearn(rng, covariance_type):
    from sklearn.mixture import GaussianMixture

    params = random_params(rng, covariance_type, n_components=3, n_features=3)
    X, _ = sample_numpy(rng, params, 120)
    model = GaussianMixture(3, covariance_type=covariance_type)
    model.weights_ = np.asarray(params.weights)
    model.means_ = np.asarray(params.means)
    model.covariances_ = np.asarray(params.covariances)
    model.precisions_cholesky_ = np.asarray(params.precisions_cholesky)
    assert gmm.n_parameters(params) == model._n_parameters()
    np.testing.assert_allclose(gmm.score(params, X), model.score(X), rtol=1e-12)
    np.testing.assert_allclose(gmm.bic(params, X), model.bic(X), rtol=1e-12)
    np.testing.assert_allclose(gmm.aic(params, X), model.aic(X), rtol=1e-12)


def test_score_with_sample_weight_is_the_weighted_mean(rng):
    params = random_params(rng, "full")
    X = rng.normal(size=(10, 2))
    w = rng.uniform(size=10)
    expected = np.sum(w * np.asarray(gmm.log_prob(params, X))) / w.sum()
    np.testing.assert_allclose(gmm.score(params, X, sample_weight=w), expected, rtol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_likelihood_functions_follow_float32_input(rng, covariance_type):
    params = random_params(rng, covariance_type)
    X = rng.normal(size=(20, 2)).astype(np.float32)
    assert gmm.log_prob(params, X).dtype == jnp.float32
    assert gmm.predict_proba(params, X).dtype == jnp.float32
    np.testing.assert_allclose(gmm.log_prob(params, X), gmm.log_prob(params, X.astype(np.float64)), rtol=1e-5)


@pytest.mark.slow
def test_log_prob_is_differentiable_with_respect_to_means(rng):
    params = random_params(rng, "full")
    X = jnp.asarray(rng.normal(size=(30, 2)))

    def nll(means):
        return -jnp.mean(gmm.log_prob(params.replace(means=means), X))

    jax.test_util.check_grads(nll, (params.means,), order=2, modes=["fwd", "rev"])


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype, far", [(np.float32, 1e20), (np.float64, 1e160)])
def test_a_far_point_goes_wholly_to_the_nearest_component_in_mahalanobis_terms(covariance_type, dtype, far):
    # Every density underflows to zero there, so softmax alone gives NaN.
    # Component 1 is wider (variance 4 against 1) and so nearer in Mahalanobis terms.
    covariances = {
        "full": np.stack([np.eye(2), 4 * np.eye(2)]),
        "diag": np.array([[1.0, 1.0], [4.0, 4.0]]),
        "spherical": np.array([1.0, 4.0]),
        "tied": np.diag([1.0, 4.0]),
    }[covariance_type]
    means = np.array([[0.0, 0.0], [3.0, 3.0]])
    params = gmm.GMMParams.from_covariances(np.array([0.9, 0.1]), means, covariances, covariance_type).astype(dtype)
    X = np.array([[0.1, 0.2], [far, 0.0], [0.0, -far]], dtype)
    # tied: one shape, so the nearer mean wins: the first for +far on x, ...
    # (both means are lost in the rounding of far, a tie broken towards 0).
    expected = [0, 0, 0] if covariance_type == "tied" else [0, 1, 1]
    proba = np.asarray(gmm.predict_proba(params, X))
    assert np.all(np.isfinite(proba)) and np.allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(proba[1:], np.eye(2)[expected[1:]])
    np.testing.assert_array_equal(gmm.predict(params, X), expected)
    np.testing.assert_array_equal(np.argmax(gmm.e_step(params, X)[1], axis=1), expected)
    np.testing.assert_array_equal(jax.vmap(gmm.predict, in_axes=(None, 0))(params, X[None])[0], expected)
    assert np.asarray(gmm.log_prob(params, X))[1] == -np.inf
