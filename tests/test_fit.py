import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import COVARIANCE_TYPES

import gmm_jax as gmm
from gmm_jax import _driver

# The seed tutorial's mixture: three isotropic components in 2-D.
SEED_MEANS = np.array([[-1.0, -1.0], [1.0, -1.5], [0.0, 2.0]])
SEED_TRUTH = gmm.GMMParams.from_covariances(
    np.array([0.5, 0.2, 0.3]), SEED_MEANS, np.full(3, 0.3), covariance_type="spherical"
)


def seed_data(seed, n=500):
    return gmm.sample(jax.random.key(seed), SEED_TRUTH, n)


def test_seed_tutorial_scenario_is_recovered_for_20_seeds():
    for seed in range(20):
        X, labels = seed_data(seed)
        result = gmm.fit(jax.random.key(1000 + seed), X, 3, n_init=4)
        accuracy, mapping = gmm.metrics.clustering_accuracy(labels, gmm.predict(result.params, X))
        assert accuracy >= 0.95, (seed, accuracy)
        # Fitted component j estimates true component mapping[j].
        recovered = np.asarray(result.params.means)[np.argsort(mapping)]
        assert np.max(np.linalg.norm(recovered - SEED_MEANS, axis=1)) < 0.25, seed
        assert bool(result.converged)


def _tree_allclose(a, b, rtol):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol)


@pytest.mark.slow
def test_vmap_over_datasets_equals_a_loop_of_fits():
    datasets = jnp.stack([seed_data(s, 120)[0] for s in range(16)])
    keys = jax.random.split(jax.random.key(7), 16)
    batched = jax.vmap(lambda k, X: gmm.fit(k, X, 3, max_iter=30))(keys, datasets)
    for i in range(16):
        single = gmm.fit(keys[i], datasets[i], 3, max_iter=30)
        _tree_allclose(jax.tree_util.tree_map(lambda a: a[i], batched), single, rtol=1e-9)


@pytest.mark.slow
def test_ragged_datasets_fit_under_vmap_with_zero_weight_padding():
    sizes = [60, 90, 120]
    datasets = [seed_data(s, n)[0] for s, n in zip(range(3), sizes)]
    padded = jnp.stack([jnp.pad(X, ((0, 120 - X.shape[0]), (0, 0))) for X in datasets])
    weights = jnp.stack([jnp.arange(120) < n for n in sizes]).astype(padded.dtype)
    keys = jax.random.split(jax.random.key(3), 3)
    batched = jax.vmap(lambda k, X, w: gmm.fit(k, X, 3, max_iter=20, sample_weight=w))(keys, padded, weights)
    for i, X in enumerate(datasets):
        single = gmm.fit(keys[i], X, 3, max_iter=20)
        np.testing.assert_allclose(batched.params.means[i], single.params.means, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(batched.lower_bound[i], single.lower_bound, rtol=1e-10)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
@pytest.mark.slow
def test_n_init_picks_the_best_of_single_fits_with_the_same_keys(covariance_type):
    X, _ = seed_data(5)
    key = jax.random.key(11)
    best = gmm.fit(key, X, 3, n_init=5, init="random", covariance_type=covariance_type, max_iter=40)
    singles = [
        gmm.fit(k, X, 3, init="random", covariance_type=covariance_type, max_iter=40)
        for k in _driver.restart_keys(key, 5)  # nested: key itself, then fold_in(key, r)
    ]
    bounds = [float(s.lower_bound) for s in singles]
    winner = singles[int(np.argmax(bounds))]
    np.testing.assert_allclose(best.lower_bound, max(bounds), rtol=1e-12)
    _tree_allclose(best.params, winner.params, rtol=1e-9)


@pytest.mark.filterwarnings("ignore::gmm_jax.ConvergenceWarning")  # max_iter=10 is for speed
@pytest.mark.slow
def test_a_fit_stopped_by_max_iter_warns_and_a_converged_or_traced_one_does_not():
    X, _ = seed_data(3)
    with pytest.warns(gmm.ConvergenceWarning, match="max_iter=1"):
        gmm.fit(jax.random.key(0), X, 2, max_iter=1, tol=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert bool(gmm.fit(jax.random.key(0), X, 2, max_iter=200, tol=1e-3).converged)
        gmm.fit(jax.random.key(0), X, 2, max_iter=0)  # a start only
        gmm.fit(jax.random.key(0), X, 2, max_iter=1, tol=0.0)  # no tolerance: a fixed number of iterations
        result = jax.jit(lambda X: gmm.fit(jax.random.key(0), X, 2, max_iter=1, tol=1e-3))(X)  # nothing can warn under jit
    assert not bool(result.converged)


def test_second_fit_with_the_same_shapes_does_not_recompile():
    X, _ = seed_data(0, 200)
    X2, _ = seed_data(1, 200)
    gmm.fit(jax.random.key(0), X, 3, max_iter=10)
    before = _driver.fit_program._cache_size()
    gmm.fit(jax.random.key(1), X2, 3, max_iter=10, tol=1e-5, reg_covar=1e-4)
    assert _driver.fit_program._cache_size() == before


@pytest.mark.parametrize(
    "init, covariance_type",
    [("kmeans", t) for t in COVARIANCE_TYPES] + [(i, "full") for i in ("k-means++", "random", "random_from_data")],
)
@pytest.mark.slow
def test_every_init_and_covariance_type_fits_the_seed_data(init, covariance_type):
    X, labels = seed_data(2)
    # Random responsibilities start every mean near the data mean, a saddle EM
    # leaves slowly: give it a tighter tolerance (as with scikit-learn).
    tol = 1e-6 if init == "random" else 1e-3
    result = gmm.fit(jax.random.key(4), X, 3, init=init, covariance_type=covariance_type, n_init=3, tol=tol, max_iter=300)
    assert int(result.status) == 0
    np.testing.assert_allclose(result.params.weights.sum(), 1.0, rtol=1e-12)
    accuracy, _ = gmm.metrics.clustering_accuracy(labels, gmm.predict(result.params, X))
    assert accuracy >= 0.9


def test_dtype_follows_the_input():
    X, _ = seed_data(0, 200)
    result32 = gmm.fit(jax.random.key(0), X.astype(jnp.float32), 3)
    result64 = gmm.fit(jax.random.key(0), X.astype(jnp.float64), 3)
    leaves32 = jax.tree_util.tree_leaves(result32.params) + [result32.log_likelihood, result32.lower_bound]
    assert all(leaf.dtype == jnp.float32 for leaf in leaves32)
    assert result64.params.means.dtype == jnp.float64
    np.testing.assert_allclose(result32.lower_bound, result64.lower_bound, rtol=1e-5)


def test_integer_data_is_fitted_as_floating_point():
    X = np.round(np.asarray(seed_data(0, 200)[0]) * 10).astype(np.int32)
    result = gmm.fit(jax.random.key(0), X, 3)
    assert jnp.issubdtype(result.params.means.dtype, jnp.floating)


@pytest.mark.slow
def test_fit_is_jittable_with_static_options_and_reproducible():
    X, _ = seed_data(3, 150)
    jitted = jax.jit(gmm.fit, static_argnames=("n_components", "covariance_type", "n_init", "max_iter"))
    a = jitted(jax.random.key(2), X, n_components=3, covariance_type="diag", n_init=2, max_iter=20)
    b = gmm.fit(jax.random.key(2), X, 3, covariance_type="diag", n_init=2, max_iter=20)
    _tree_allclose(a, b, rtol=1e-12)


@pytest.mark.slow
def test_verbose_prints_each_iteration_from_the_compiled_loop(capfd):
    X, _ = seed_data(0, 100)
    result = gmm.fit(jax.random.key(0), X, 3, max_iter=5, tol=0.0, verbose=True)
    jax.effects_barrier()
    lines = [line for line in capfd.readouterr().out.splitlines() if "log-likelihood" in line]
    assert len(lines) == 5
    assert f"{float(result.log_likelihood[-1]): .8f}" in lines[-1]
