"""select: one program per covariance type whose entries equal separate fits; the criterion and the choice."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gmm_jax as gmm
from gmm_jax import _select

KEY = jax.random.key(0)


def _blobs(seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(-4, 1, (80, 2)), rng.normal(4, 1, (80, 2)), rng.normal((0, 6), 0.5, (60, 2))])


@pytest.mark.parametrize("init", ["kmeans", "k-means++", "random", "random_from_data", "hierarchical"])
@pytest.mark.slow
def test_select_entries_equal_separate_fits_with_the_same_key(init):
    X = _blobs()
    ks = [1, 3]  # K = 1 with two components switched off, and K = K_max
    types = ("full", "spherical") if init in ("kmeans", "random") else ("tied", "diag")
    sel = gmm.select(KEY, X, ks, covariance_types=types, init=init, n_init=2, max_iter=40, tol=1e-4)
    for t, covariance_type in enumerate(types):
        for j, k in enumerate(ks):
            fit = gmm.fit(KEY, X, k, covariance_type=covariance_type, init=init, n_init=2, max_iter=40, tol=1e-4)
            np.testing.assert_allclose(sel.lower_bound[t, j], fit.lower_bound, rtol=1e-8)
            assert int(sel.n_iter[t, j]) == int(fit.n_iter)
            np.testing.assert_allclose(sel.criterion[t, j], gmm.bic(fit.params, X), rtol=1e-8)
            fitted = jax.tree_util.tree_map(lambda a: a[j], sel.fits[t]).params
            np.testing.assert_allclose(fitted.weights[k:], 0.0)
            # Two restarts may tie (the same optimum with the components in
            # another order), and rounding then decides: compare in mean order.
            got, want = np.lexsort(np.asarray(fitted.means[:k]).T), np.lexsort(np.asarray(fit.params.means).T)
            np.testing.assert_allclose(fitted.weights[:k][got], fit.params.weights[want], rtol=1e-7, atol=1e-10)
            np.testing.assert_allclose(fitted.means[:k][got], fit.params.means[want], rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("init", ["kmeans", "hierarchical"])
def test_the_k_means_starts_shared_by_the_types_are_each_types_own(init):
    # With several types the k-means starts are computed once for all of them
    # (with hierarchical, those of the restarts after the first): each row must
    # be the one-type selection's, restarts included.
    X = _blobs(3)
    options = dict(init=init, n_init=2, max_iter=20, tol=1e-4)
    together = gmm.select(KEY, X, [1, 3], covariance_types=("full", "spherical"), **options)
    for t, covariance_type in enumerate(together.covariance_types):
        alone = gmm.select(KEY, X, [1, 3], covariance_types=(covariance_type,), **options)
        np.testing.assert_allclose(together.criterion[t], alone.criterion[0], rtol=1e-8)
        np.testing.assert_array_equal(together.n_iter[t], alone.n_iter[0])


def test_select_compiles_once_per_covariance_type_whatever_the_components():
    X = _blobs(1)
    gmm.select(KEY, X, [1, 2, 3], covariance_types=("diag",))
    before = _select._sweep_program._cache_size()
    gmm.select(KEY, X, [3, 1, 2], covariance_types=("diag",))  # same K_max: same program
    assert _select._sweep_program._cache_size() == before


@pytest.mark.slow
def test_select_picks_the_model_with_the_lowest_criterion_and_trims_it():
    X = _blobs(2)
    sel = gmm.select(KEY, X, range(1, 6))
    t, j = np.unravel_index(int(np.argmin(sel.criterion)), sel.criterion.shape)
    assert sel.best_covariance_type == sel.covariance_types[t]
    assert int(sel.best_n_components) == int(sel.n_components[j]) == 3
    assert sel.best.params.n_components == 3
    np.testing.assert_allclose(gmm.bic(sel.best.params, X), sel.criterion[t, j], rtol=1e-8)


@pytest.mark.slow
def test_criteria_follow_their_definitions():
    X = _blobs(3)
    ks = [1, 3]
    tables = {c: gmm.select(KEY, X, ks, covariance_types=("full",), criterion=c).criterion[0] for c in ("bic", "aic", "icl")}
    sel = gmm.select(KEY, X, ks, covariance_types=("full",))
    for j, k in enumerate(ks):
        params = gmm.fit(KEY, X, k).params
        np.testing.assert_allclose(tables["aic"][j], gmm.aic(params, X), rtol=1e-8)
        log_resp = np.log(np.asarray(gmm.predict_proba(params, X)))
        icl = float(gmm.bic(params, X)) - 2.0 * np.sum(np.max(log_resp, axis=1))  # mclust's icl, our sign
        np.testing.assert_allclose(tables["icl"][j], icl, rtol=1e-8)
    assert bool(jnp.all(tables["icl"] >= sel.criterion[0] - 1e-9))


@pytest.mark.slow
def test_select_composes_with_vmap_over_datasets():
    datasets = np.stack([_blobs(s) for s in range(3)])
    batched = jax.vmap(lambda X: gmm.select(KEY, X, [1, 2, 3], covariance_types=("spherical",)))(datasets)
    assert batched.criterion.shape == (3, 1, 3)
    for i in range(3):
        alone = gmm.select(KEY, datasets[i], [1, 2, 3], covariance_types=("spherical",))
        np.testing.assert_allclose(batched.criterion[i], alone.criterion, rtol=1e-8)
        assert int(batched.best_n_components[i]) == int(alone.best_n_components)


@pytest.mark.slow
def test_a_failed_fit_gets_an_infinite_criterion():
    # Three distinct points, not on one line: one component is well defined,
    # three collapse onto single points (singular without reg_covar).
    X = np.repeat(np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), 20, axis=0)
    sel = gmm.select(KEY, X, [1, 3], covariance_types=("full",), reg_covar=0.0, init="random")
    assert np.isinf(float(sel.criterion[0, 1])) and int(sel.status[0, 1]) == 1
    assert np.isfinite(float(sel.criterion[0, 0]))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(n_components=[]), ValueError, "n_components is empty"),
        (dict(n_components=[1, 1]), ValueError, "repeated"),
        (dict(n_components=[500]), ValueError, "up to 500"),
        (dict(n_components=[0, 1]), ValueError, "n_components must be >= 1"),
        (dict(covariance_types=("full", "round")), ValueError, "covariance_type must be one of"),
        (dict(criterion="mdl"), ValueError, "criterion must be one of"),
    ],
)
def test_select_names_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        gmm.select(KEY, _blobs(), **kwargs)


@pytest.mark.slow
def test_select_with_mclust_default_prior_equals_map_fits():
    X = _blobs(4)
    # The K = 1 entry is fitted with the second component switched off: the
    # prior must not count it (its log density, the tied pooling, the weights).
    sel = gmm.select(KEY, X, [1, 2], covariance_types=("diag", "tied"), prior="default", reg_covar=0.0)
    for i, covariance_type in enumerate(("diag", "tied")):
        for j, k in enumerate([1, 2]):
            prior = gmm.ConjugatePrior.default(X, k, covariance_type)
            fit = gmm.fit(KEY, X, k, covariance_type=covariance_type, prior=prior, reg_covar=0.0)
            np.testing.assert_allclose(sel.lower_bound[i, j], fit.lower_bound, rtol=1e-8)
            # mclust's BIC of a MAP fit uses the plain log-likelihood
            np.testing.assert_allclose(sel.criterion[i, j], gmm.bic(fit.params, X), rtol=1e-8)


@pytest.mark.slow
def test_select_with_missing_values_equals_missing_data_fits_and_their_bic():
    X = _blobs(5)
    X[np.random.default_rng(5).random(X.shape) < 0.15] = np.nan
    X[3] = np.nan  # a row with nothing observed counts for nothing
    kwargs = dict(max_iter=30, tol=1e-4, nan_policy="marginalize")
    sel = gmm.select(KEY, X, [1, 3], covariance_types=("full", "diag"), **kwargs)
    for t, covariance_type in enumerate(("full", "diag")):
        for j, k in enumerate([1, 3]):
            fit = gmm.fit(KEY, X, k, covariance_type=covariance_type, **kwargs)
            np.testing.assert_allclose(sel.lower_bound[t, j], fit.lower_bound, rtol=1e-8)
            np.testing.assert_allclose(sel.criterion[t, j], gmm.bic(fit.params, X, nan_policy="marginalize"), rtol=1e-8)
    assert np.all(np.isfinite(sel.criterion))
    with pytest.raises(ValueError, match="nan_policy='marginalize'"):
        gmm.select(KEY, X, [1], prior="default", nan_policy="marginalize")
    with pytest.raises(ValueError, match="nan_policy"):
        gmm.select(KEY, X, [1])  # NaN without the option: the usual error, naming it
