"""Degenerate data: every fit returns finite parameters and says what happened.

All datasets share one shape (see ``degenerate_data``), and the cases of one
covariance type and dtype run in a single ``vmap``-ed fit, so the module
compiles ``fit`` once per (covariance type, dtype). The same batched fit also
checks what a caller under ``jit``/``vmap`` sees: ``FitResult.status``.
"""

import functools

import jax
import numpy as np
import pytest
from degenerate_data import (
    COVARIANCE_TYPES,
    N_COMPONENTS,
    N_FEATURES,
    degenerate_datasets,
    empty_component_start,
    fit_batch,
    three_blobs,
    wide_dataset,
)

import gmm_jax as gmm

KEY = jax.random.key(0)
CASES = degenerate_datasets()
NAMES = list(CASES)
DTYPES = (np.float64, np.float32)
# Singular with reg_covar=0 for every type except where the model's own
# covariance is still well defined: tied pools all components, diag and
# spherical ignore correlations, spherical averages over features.
WELL_DEFINED_WITHOUT_REG = {
    "tied": {"heavily duplicated", "one far outlier"},
    "diag": {"rank-deficient (collinear)"},
    "spherical": {"constant feature", "rank-deficient (collinear)"},
}


@functools.lru_cache(maxsize=None)
def batched_fit(covariance_type, dtype, reg_covar):
    """Fits every degenerate dataset at once; returns a list of per-case FitResults."""
    return fit_batch(np.stack([CASES[name][0] for name in NAMES]).astype(dtype), covariance_type, reg_covar)


def full_covariances(params):
    cov = np.asarray(params.covariances, np.float64)
    k, d = params.n_components, params.n_features
    return {
        "full": lambda: cov,
        "tied": lambda: np.broadcast_to(cov, (k, d, d)),
        "diag": lambda: np.stack([np.diag(c) for c in cov]),
        "spherical": lambda: np.stack([c * np.eye(d) for c in cov]),
    }[params.covariance_type]()


def assert_healthy(result, X):
    params = result.params
    for leaf in jax.tree_util.tree_leaves(params):
        assert np.all(np.isfinite(leaf))
    np.testing.assert_allclose(np.sum(params.weights), 1.0, rtol=1e-5)
    cov = full_covariances(params)
    np.testing.assert_allclose(cov, np.swapaxes(cov, -1, -2))
    assert np.all(np.linalg.eigvalsh(cov) > 0)
    assert np.all(np.isfinite(gmm.log_prob(params, X)))
    assert np.isfinite(result.lower_bound)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.slow
def test_degenerate_data_fits_to_finite_parameters_with_status_ok(covariance_type, dtype):
    for name, result in zip(NAMES, batched_fit(covariance_type, dtype, 1e-6)):
        X = CASES[name][0].astype(dtype)
        assert int(result.status) == 0, name
        assert_healthy(result, X)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_identical_points_give_one_component_with_covariance_reg_covar(covariance_type):
    index = NAMES.index("all points identical")
    result = batched_fit(covariance_type, np.float64, 1e-6)[index]
    X = CASES["all points identical"][0]
    used = int(np.argmax(result.params.weights))
    np.testing.assert_allclose(result.params.weights[used], 1.0)
    np.testing.assert_allclose(result.params.means[used], X[0], rtol=1e-12)
    # The empirical covariance is exactly zero, so reg_covar alone is left.
    np.testing.assert_allclose(full_covariances(result.params)[used], 1e-6 * np.eye(N_FEATURES), rtol=1e-9)
    assert int(result.n_empty) == N_COMPONENTS - 1


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_constant_feature_gets_variance_reg_covar_and_no_correlation(covariance_type):
    result = batched_fit(covariance_type, np.float64, 1e-6)[NAMES.index("constant feature")]
    cov = full_covariances(result.params)
    np.testing.assert_allclose(result.params.means[:, 2], 7.0, rtol=1e-12)
    np.testing.assert_allclose(cov[:, 2, 2], 1e-6, rtol=1e-9)
    np.testing.assert_allclose(cov[:, 2, :2], 0.0, atol=1e-15)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_fewer_distinct_points_than_components_leaves_a_component_empty(covariance_type):
    result = batched_fit(covariance_type, np.float64, 1e-6)[NAMES.index("fewer distinct points than components")]
    assert int(result.n_empty) == 1
    used = np.sort(np.asarray(result.params.weights))[1:]
    np.testing.assert_allclose(used, [0.5, 0.5])


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_far_outlier_gets_its_own_component_and_leaves_the_rest_finite(covariance_type):
    result = batched_fit(covariance_type, np.float64, 1e-6)[NAMES.index("one far outlier")]
    X = CASES["one far outlier"][0]
    labels = np.asarray(gmm.predict(result.params, X))
    assert np.sum(labels == labels[-1]) == 1  # the outlier is alone
    np.testing.assert_allclose(result.params.means[labels[-1]], X[-1], rtol=1e-9)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_singular_covariance_without_reg_covar_sets_status_under_vmap(covariance_type, dtype):
    # The batched fit runs under vmap, where no Python check can raise: the
    # result must carry the failure in `status`, never return status 0 with NaN.
    for name, result in zip(NAMES, batched_fit(covariance_type, dtype, 0.0)):
        expected_ok = name in WELL_DEFINED_WITHOUT_REG.get(covariance_type, ())
        assert int(result.status) == (0 if expected_ok else 1), name
        if expected_ok:
            assert_healthy(result, CASES[name][0].astype(dtype))


@pytest.mark.slow
def test_singular_covariance_without_reg_covar_raises_after_the_fit():
    # Outside jit/vmap the failure is an error (the check is the same Python
    # test of `status` for every type; the vmapped test above covers each type).
    X = CASES["fewer distinct points than components"][0]
    with pytest.raises(ValueError, match="increase reg_covar"):
        gmm.fit(KEY, X, N_COMPONENTS, covariance_type="full", reg_covar=0.0)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.slow
def test_more_features_than_samples(covariance_type):
    X = wide_dataset()
    result = gmm.fit(KEY, X, 2, covariance_type=covariance_type)
    assert int(result.status) == 0
    assert_healthy(result, X)


@pytest.mark.slow
def test_more_features_than_samples_in_float32_is_held_by_reg_covar():
    # reg_covar=1e-6 is above float32's rounding unit of unit-variance data, so
    # it bounds the 8 empty directions from below; no false singular alarm.
    X = wide_dataset().astype(np.float32)
    result = gmm.fit(KEY, X, 2, covariance_type="full")
    assert int(result.status) == 0
    assert_healthy(result, X)


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_more_features_than_samples_without_reg_covar_raises(covariance_type):
    # 8 points cannot span 12 dimensions: the covariance is singular.
    with pytest.raises(ValueError, match="increase reg_covar"):
        gmm.fit(KEY, wide_dataset(), 2, covariance_type=covariance_type, reg_covar=0.0)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_component_with_no_mass_keeps_its_parameters_and_is_counted(covariance_type):
    X, _ = three_blobs()
    start = empty_component_start(X, covariance_type)
    result = gmm.fit(KEY, X, N_COMPONENTS, covariance_type=covariance_type, init_params=start)
    assert int(result.status) == 0 and int(result.n_empty) == 1
    assert_healthy(result, X)
    assert result.params.weights[2] < 1e-12
    np.testing.assert_allclose(result.params.means[2], start.means[2])
    if covariance_type != "tied":
        np.testing.assert_allclose(result.params.precisions_cholesky[2], start.precisions_cholesky[2])


def test_zero_weight_rows_are_padding_even_when_they_hold_garbage_values():
    X, _ = three_blobs()
    padded = X.copy()
    w = np.ones(X.shape[0])
    padded[-4:] = 1e30
    w[-4:] = 0.0
    result = gmm.fit(KEY, padded, N_COMPONENTS, sample_weight=w, covariance_type="full")
    assert int(result.status) == 0
    assert np.all(np.abs(np.asarray(result.params.means)) < 100)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_nan_or_inf_data_under_vmap_sets_status_instead_of_raising(covariance_type):
    # Validation cannot see values under vmap; the compiled loop must notice.
    stack = np.stack([three_blobs(seed=s)[0] for s in range(len(NAMES))])
    stack[2, 5, 1] = np.nan
    stack[4, 0, 0] = np.inf
    statuses = [int(r.status) for r in fit_batch(stack, covariance_type)]
    assert statuses == [0, 0, 1, 0, 1, 0]


def _bulk_and_one_outlier(dtype, distance):
    """Three unit blobs (100 rows each) around 50, and one row at ``distance`` (last)."""
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0, 0.0], [6.0, 0.0, 0.0], [0.0, 6.0, 0.0]]) + 50.0
    bulk = np.concatenate([c + rng.normal(size=(100, 3)) for c in centres])
    return np.vstack([bulk, [[distance, -distance, distance]]]).astype(dtype)


OUTLIERS = [(np.float32, 1e10), (np.float64, 1e30)]


@pytest.mark.parametrize("dtype, distance", OUTLIERS, ids=["float32 at 1e10", "float64 at 1e30"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_one_outlier_far_beyond_the_precision_of_the_mean_is_fitted_as_scikit_learn_fits_the_rest(
    covariance_type, dtype, distance
):
    # The mean of such data sits ~1e7 (1e27) from the bulk, where the dtype
    # keeps no digits of it: a fit centred at the mean failed as "singular".
    # Centred at a robust centre, the outlier gets a component of its own and
    # the bulk is fitted as scikit-learn fits the bulk alone.
    from sklearn.mixture import GaussianMixture

    X = _bulk_and_one_outlier(dtype, distance)
    result = gmm.fit(KEY, X, 4, covariance_type=covariance_type)
    assert int(result.status) == 0
    assert_healthy(result, X)
    labels = np.asarray(gmm.predict(result.params, X))
    assert np.sum(labels == labels[-1]) == 1  # the outlier is alone
    reference = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X[:-1].astype(np.float64))
    own_weight = np.log(300 / 301)  # the outlier's component takes 1/301 of the weight
    bulk_score = float(np.mean(gmm.log_prob(result.params, X[:-1])))
    assert bulk_score >= reference.score(X[:-1]) + own_weight - 2e-3


def test_one_far_outlier_is_fitted_from_a_stream_too():
    X = _bulk_and_one_outlier(np.float32, 1e10)
    rows = np.random.default_rng(1).permutation(X.shape[0])
    X = X[rows]
    result = gmm.fit_stream(KEY, lambda: iter([X[:150], X[150:]]), 4, covariance_type="diag")
    assert int(result.status) == 0
    in_memory = gmm.fit(KEY, X, 4, covariance_type="diag")
    bulk = X[rows != 300]
    np.testing.assert_allclose(
        np.mean(gmm.log_prob(result.params, bulk)), np.mean(gmm.log_prob(in_memory.params, bulk)), atol=0.05
    )


def test_float32_regularisation_below_the_rounding_noise_of_the_pivots_is_reported_not_wandered():
    # 8 points in 12-D of variance ~4.5: the 4 empty directions get variance
    # reg_covar=1e-6, below float32's typical pivot noise (sqrt(12) eps 4.5 ~
    # 2e-6): the lower bound wandered by ~0.4 nats a sample from iteration to
    # iteration (float64 is constant). It is reported as the failure that says
    # to increase reg_covar; with reg_covar=1e-3 it fits.
    rng = np.random.default_rng(29)
    X = rng.normal(size=(8, 12)) * rng.uniform(0.1, 10) + rng.normal(size=12) * rng.uniform(0, 100)
    with pytest.raises(ValueError, match="increase reg_covar"):
        gmm.fit(KEY, X.astype(np.float32), 1, covariance_type="full", reg_covar=1e-6)
    held = gmm.fit(KEY, X.astype(np.float32), 1, covariance_type="full", reg_covar=1e-3)
    exact = gmm.fit(KEY, X, 1, covariance_type="full", reg_covar=1e-3)
    np.testing.assert_allclose(held.lower_bound, exact.lower_bound, atol=1e-3)
