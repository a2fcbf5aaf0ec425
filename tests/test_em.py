import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import COVARIANCE_TYPES, random_params, sample_numpy
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

import gmm_jax as gmm

KEY = jax.random.key(0)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    truth = random_params(rng, "full", n_components=3, n_features=3, spread=3.0)
    X, _ = sample_numpy(rng, truth, 240)
    return X


def starting_params(X, covariance_type, seed=0):
    """A deliberately rough start: three data points as means, broad covariances."""
    rng = np.random.default_rng(seed)
    k, d = 3, X.shape[1]
    means = X[rng.choice(X.shape[0], k, replace=False)]
    cov = {
        "full": np.stack([np.cov(X.T) * s for s in (0.5, 0.8, 1.2)]),
        "tied": np.cov(X.T),
        "diag": np.stack([X.var(0) * s for s in (0.5, 0.8, 1.2)]),
        "spherical": np.array([0.5, 0.8, 1.2]) * X.var(),
    }[covariance_type]
    return gmm.GMMParams.from_covariances(np.array([0.2, 0.3, 0.5]), means, cov, covariance_type)


def sklearn_fit(X, start, max_iter, reg_covar):
    model = GaussianMixture(
        start.n_components,
        covariance_type=start.covariance_type,
        weights_init=np.asarray(start.weights),
        means_init=np.asarray(start.means),
        precisions_init=np.asarray(start.precisions),
        max_iter=max_iter,
        tol=0.0,
        reg_covar=reg_covar,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X)


def assert_params_match_sklearn(params, model, rtol):
    np.testing.assert_allclose(params.weights, model.weights_, rtol=rtol)
    np.testing.assert_allclose(params.means, model.means_, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(params.covariances, model.covariances_, rtol=rtol)
    np.testing.assert_allclose(params.precisions_cholesky, model.precisions_cholesky_, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("reg_covar", [0.0, 1e-2])
@pytest.mark.parametrize("max_iter", [1, 20])
def test_em_matches_sklearn_from_the_same_start(data, covariance_type, reg_covar, max_iter):
    start = starting_params(data, covariance_type)
    result = gmm.fit(KEY, data, 3, covariance_type=covariance_type, init_params=start,
                     max_iter=max_iter, tol=0.0, reg_covar=reg_covar)  # fmt: skip
    model = sklearn_fit(data, start, max_iter, reg_covar)
    assert_params_match_sklearn(result.params, model, rtol=1e-8)
    np.testing.assert_allclose(result.lower_bound, model.lower_bound_, rtol=1e-10)
    assert int(result.n_iter) == model.n_iter_ == max_iter


# Full covariances take a different route per width: element-wise sums up to 4
# features, matrix products beyond, with the Mahalanobis norms summed
# pairwise up to 16 features on CPU and by a reduction above (6 also leaves
# an odd term at one level of the pairwise sum). Chunks of 128 rows run the
# unrolled loop and a ragged last chunk.
@pytest.mark.parametrize("n_features", [6, 16, 20])
@pytest.mark.slow
def test_full_em_matches_sklearn_for_every_width(n_features):
    rng = np.random.default_rng(4)
    truth = random_params(rng, "full", n_components=3, n_features=n_features, spread=3.0)
    X, _ = sample_numpy(rng, truth, 1100)
    start = starting_params(X, "full")
    result = gmm.fit(KEY, X, 3, init_params=start, max_iter=5, tol=0.0, chunk_size=128)
    model = sklearn_fit(X, start, 5, 1e-6)
    assert_params_match_sklearn(result.params, model, rtol=1e-8)
    np.testing.assert_allclose(result.lower_bound, model.lower_bound_, rtol=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("max_iter", [1, 20])
def test_integer_sample_weights_equal_repeated_rows(data, covariance_type, max_iter):
    counts = np.random.default_rng(2).integers(0, 4, size=data.shape[0])
    repeated = np.repeat(data, counts, axis=0)
    start = starting_params(data, covariance_type)
    weighted = gmm.fit(KEY, data, 3, covariance_type=covariance_type, init_params=start,
                       max_iter=max_iter, tol=0.0, sample_weight=counts.astype(float))  # fmt: skip
    model = sklearn_fit(repeated, start, max_iter, 1e-6)
    assert_params_match_sklearn(weighted.params, model, rtol=1e-8)
    np.testing.assert_allclose(weighted.lower_bound, model.lower_bound_, rtol=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_e_step_and_m_step_match_sklearn(data, covariance_type):
    start = starting_params(data, covariance_type)
    model = sklearn_fit(data, start, 1, 1e-6)
    model._set_parameters(
        (np.asarray(start.weights), np.asarray(start.means), np.asarray(start.covariances),
         np.asarray(start.precisions_cholesky))
    )  # fmt: skip
    expected_ll, expected_log_resp = model._e_step(data)
    ll, log_resp = gmm.e_step(start, data)
    np.testing.assert_allclose(ll, expected_ll, rtol=1e-12)
    np.testing.assert_allclose(log_resp, expected_log_resp, rtol=1e-9, atol=1e-9)

    model._m_step(data, expected_log_resp)
    params = gmm.m_step(data, log_resp, covariance_type, reg_covar=model.reg_covar)
    assert_params_match_sklearn(params, model, rtol=1e-9)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_em_log_likelihood_never_decreases(data, covariance_type):
    start = starting_params(data, covariance_type, seed=3)
    result = gmm.fit(KEY, data, 3, covariance_type=covariance_type, init_params=start,
                     max_iter=60, tol=0.0, reg_covar=0.0)  # fmt: skip
    trace = np.asarray(result.log_likelihood)
    assert np.all(np.isfinite(trace))
    assert np.all(np.diff(trace) >= -1e-12 * np.abs(trace[1:]))
    assert trace[-1] > trace[0]


def test_tol_zero_runs_exactly_max_iter(data):
    result = gmm.fit(KEY, data, 3, max_iter=17, tol=0.0)
    assert int(result.n_iter) == 17
    assert not bool(result.converged)
    assert result.log_likelihood.shape == (17,)


def test_converged_fit_stops_updating_and_records_it(data):
    start = starting_params(data, "full")
    result = gmm.fit(KEY, data, 3, init_params=start, max_iter=200, tol=1e-3)
    n_iter = int(result.n_iter)
    assert bool(result.converged) and 1 < n_iter < 200
    trace = np.asarray(result.log_likelihood)
    # After convergence the trace holds the final value and the parameters are
    # those of exactly n_iter iterations.
    np.testing.assert_array_equal(trace[n_iter - 1 :], trace[n_iter - 1])
    assert abs(trace[n_iter - 1] - trace[n_iter - 2]) < 1e-3 <= abs(trace[n_iter - 2] - trace[n_iter - 3])
    exact = gmm.fit(KEY, data, 3, init_params=start, max_iter=n_iter, tol=0.0)
    np.testing.assert_allclose(result.params.means, exact.params.means, rtol=1e-12)
    np.testing.assert_allclose(result.lower_bound, exact.lower_bound, rtol=1e-12)


@pytest.mark.slow
def test_chunked_pass_equals_single_pass(data):
    start = starting_params(data, "full")
    whole = gmm.fit(KEY, data, 3, init_params=start, max_iter=5, tol=0.0)
    chunked = gmm.fit(KEY, data, 3, init_params=start, max_iter=5, tol=0.0, chunk_size=37)
    np.testing.assert_allclose(chunked.params.covariances, whole.params.covariances, rtol=1e-10)
    np.testing.assert_allclose(chunked.log_likelihood, whole.log_likelihood, rtol=1e-12)


def test_max_iter_zero_returns_the_start_and_its_likelihood(data):
    start = starting_params(data, "diag")
    result = gmm.fit(KEY, data, 3, covariance_type="diag", init_params=start, max_iter=0)
    np.testing.assert_allclose(result.params.means, start.means, rtol=1e-12)
    np.testing.assert_allclose(result.lower_bound, gmm.score(start, data), rtol=1e-12)
    assert int(result.n_iter) == 0 and result.log_likelihood.shape == (0,)


@pytest.mark.slow
def test_fit_is_differentiable_with_respect_to_the_data(data):
    # EM unrolled with lax.scan differentiates end to end (here: the fitted
    # mean of a fixed-start fit as a function of the data).
    start = starting_params(data, "full")

    def fitted_mean(X):
        return gmm.fit(KEY, X, 3, init_params=start, max_iter=5, tol=0.0).params.means.sum()

    grad = jax.grad(fitted_mean)(jnp.asarray(data))
    assert grad.shape == data.shape and bool(jnp.all(jnp.isfinite(grad)))
    eps = 1e-6
    bump = np.zeros_like(data)
    bump[5, 1] = eps
    numeric = (fitted_mean(data + bump) - fitted_mean(data - bump)) / (2 * eps)
    np.testing.assert_allclose(grad[5, 1], numeric, rtol=1e-5)
