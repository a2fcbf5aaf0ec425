"""Every bad input raises a clear error before anything is traced."""

import jax
import numpy as np
import pytest

import gmm_jax as gmm

RNG = np.random.default_rng(0)
X = RNG.normal(size=(30, 2))
KEY = jax.random.key(0)
GOOD = gmm.GMMParams.from_covariances(np.full(3, 1 / 3), X[:3], np.ones(3), "spherical")
FULL4 = gmm.GMMParams.from_covariances(np.full(4, 0.25), X[:4], np.stack([np.eye(2)] * 4), "full")
X_NAN = X.copy()
X_NAN[3, 1] = np.nan
X_INF = X.copy()
X_INF[0, 0] = np.inf

BAD_FIT_CALLS = [
    ("1-D X", dict(X=X[:, 0]), ValueError, r"X must be 2-D .*got shape \(30,\).*reshape\(-1, 1\)"),
    ("3-D X", dict(X=X[None]), ValueError, r"X must be 2-D .*got shape \(1, 30, 2\)"),
    ("empty X", dict(X=np.zeros((0, 2))), ValueError, r"at least 1 sample"),
    ("NaN in X", dict(X=X_NAN), ValueError, r"X contains 1 NaN or infinite"),
    ("inf in X", dict(X=X_INF), ValueError, r"X contains 1 NaN or infinite"),
    ("strings in X", dict(X=np.array([["a", "b"]] * 30)), TypeError, r"X must be an array of numbers"),
    ("n_components 0", dict(n_components=0), ValueError, r"n_components must be >= 1, got 0"),
    ("n_components > n_samples", dict(n_components=31), ValueError, r"n_components=31 must be <= n_samples=30"),
    ("n_components float", dict(n_components=2.5), TypeError, r"n_components must be an integer"),
    ("unknown covariance_type", dict(covariance_type="ful"), ValueError, r"covariance_type must be one of .*'ful'"),
    ("unknown init", dict(init="kmeans++"), ValueError, r"init must be one of .*'kmeans\+\+'"),
    ("negative reg_covar", dict(reg_covar=-1e-3), ValueError, r"reg_covar must be a finite number >= 0, got -0.001"),
    ("NaN reg_covar", dict(reg_covar=float("nan")), ValueError, r"reg_covar must be a finite number >= 0"),
    ("negative tol", dict(tol=-1.0), ValueError, r"tol must be a finite number >= 0, got -1.0"),
    ("n_init 0", dict(n_init=0), ValueError, r"n_init must be >= 1, got 0"),
    ("max_iter -1", dict(max_iter=-1), ValueError, r"max_iter must be >= 0, got -1"),
    ("sample_weight wrong shape", dict(sample_weight=np.ones(29)), ValueError,
     r"sample_weight must have shape \(n_samples,\) = \(30,\), got \(29,\)"),
    ("sample_weight negative", dict(sample_weight=-np.ones(30)), ValueError, r"sample_weight must be finite and non-negative"),
    ("sample_weight all zero", dict(sample_weight=np.zeros(30)), ValueError, r"sample_weight is zero everywhere"),
    ("init_params wrong type", dict(init_params={"means": X[:3]}), TypeError, r"init_params must be a GMMParams"),
    ("init_params wrong covariance_type", dict(init_params=GOOD), ValueError,
     r"init_params has covariance_type='spherical' but the fit asks for covariance_type='full'"),
    ("init_params wrong n_components", dict(init_params=FULL4), ValueError,
     r"init_params.weights must have shape \(3,\) for n_components=3"),
    ("key not a key", dict(key=0), TypeError, r"key must be a JAX PRNG key such as jax.random.key\(0\)"),
    ("verbose not bool", dict(verbose="yes"), TypeError, r"verbose must be True or False"),
]  # fmt: skip


@pytest.mark.parametrize("case, changes, error, message", BAD_FIT_CALLS, ids=[c[0] for c in BAD_FIT_CALLS])
def test_fit_rejects_bad_input_with_a_clear_message(case, changes, error, message):
    args = dict(key=KEY, X=X, n_components=3) | changes
    with pytest.raises(error, match=message):
        gmm.fit(args.pop("key"), args.pop("X"), args.pop("n_components"), **args)


BAD_PARAMS = [
    ("weights shape", dict(weights=np.ones(2) / 2), r"weights must have shape \(n_components,\) = \(3,\)"),
    ("weights sum", dict(weights=np.ones(3)), r"weights must sum to 1, got a sum of 3"),
    ("negative weight", dict(weights=np.array([1.5, -0.5, 0.0])), r"weights must be finite and non-negative"),
    ("means 1-D", dict(means=np.zeros(3)), r"means must have shape \(n_components, n_features\)"),
    ("covariance shape", dict(covariances=np.ones((3, 2))), r"covariances for covariance_type='spherical' .* must have shape \(3,\)"),
    ("covariance not PD", dict(covariances=np.array([1.0, -1.0, 1.0])), r"covariances must be symmetric positive definite"),
    ("unknown type", dict(covariance_type="round"), r"covariance_type must be one of"),
]  # fmt: skip


@pytest.mark.parametrize("case, changes, message", BAD_PARAMS, ids=[c[0] for c in BAD_PARAMS])
def test_from_covariances_rejects_bad_parameters(case, changes, message):
    args = dict(weights=np.full(3, 1 / 3), means=X[:3], covariances=np.ones(3), covariance_type="spherical") | changes
    with pytest.raises(ValueError, match=message):
        gmm.GMMParams.from_covariances(**args)


def test_full_covariance_that_is_not_positive_definite_is_rejected():
    bad = np.stack([np.eye(2), np.array([[1.0, 2.0], [2.0, 1.0]])])
    with pytest.raises(ValueError, match="positive definite"):
        gmm.GMMParams.from_covariances(np.array([0.5, 0.5]), X[:2], bad, "full")


@pytest.mark.parametrize("fn", [gmm.log_prob, gmm.predict, gmm.predict_proba, gmm.score, gmm.bic, gmm.aic])
def test_likelihood_functions_reject_data_with_the_wrong_number_of_features(fn):
    with pytest.raises(ValueError, match=r"X has 3 features but the mixture has 2"):
        fn(GOOD, np.zeros((5, 3)))


@pytest.mark.parametrize("fn", [gmm.log_prob, gmm.predict, gmm.score])
def test_likelihood_functions_reject_something_that_is_not_params(fn):
    with pytest.raises(TypeError, match=r"params must be a GMMParams"):
        fn({"weights": 1}, X)


def test_sample_rejects_a_bad_count():
    with pytest.raises(ValueError, match=r"n_samples must be >= 1, got 0"):
        gmm.sample(KEY, GOOD, 0)


def test_m_step_rejects_responsibilities_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"log_resp must have shape \(n_samples, n_components\) with n_samples=30"):
        gmm.m_step(X, np.zeros((29, 3)), "full")


def test_kmeans_rejects_too_many_clusters():
    with pytest.raises(ValueError, match=r"n_clusters=31 must be <= n_samples=30"):
        gmm.kmeans(KEY, X, 31)


def test_value_checks_are_skipped_under_a_transformation_but_shape_checks_are_not():
    # Under vmap, NaN cannot be seen in Python; the fit reports it instead.
    batched = np.stack([X, X_NAN])
    result = jax.vmap(lambda x: gmm.fit(KEY, x, 2, max_iter=5))(batched)
    assert np.isfinite(result.lower_bound[0])
    with pytest.raises(ValueError, match="X must be 2-D"):
        jax.vmap(lambda x: gmm.fit(KEY, x, 2))(batched[:, :, 0])


def test_value_checks_still_run_on_arrays_captured_by_a_users_jit():
    # X is closed over, so it is concrete while fit is traced: the check runs.
    fitted = jax.jit(lambda k: gmm.fit(k, X, 2, max_iter=5).lower_bound)(KEY)
    assert np.isfinite(fitted)
    with pytest.raises(ValueError, match="X contains 1 NaN or infinite"):
        jax.jit(lambda k: gmm.fit(k, X_NAN, 2, max_iter=5))(KEY)
