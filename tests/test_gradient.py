"""fit_gradient: optax on the unconstrained parameters reaches EM's optimum; its loss trace is the NLL."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gmm_jax as gmm
from gmm_jax import _gradient
from conftest import COVARIANCE_TYPES


@pytest.fixture(scope="module")
def seed_scenario():
    """The README's scenario: three round clusters in 2-D, 500 samples."""
    truth = gmm.GMMParams.from_covariances(
        jnp.array([0.5, 0.2, 0.3]), jnp.array([[-1.0, -1.0], [1.0, -1.5], [0.0, 2.0]]), jnp.full(3, 0.3), "spherical"
    )
    X, _ = gmm.sample(jax.random.key(0), truth, 500)
    em = gmm.fit(jax.random.key(1), X, 3, n_init=4, tol=1e-9, max_iter=2000)
    return X, em


@pytest.mark.parametrize("batch_size", [None, 64], ids=["full-batch", "mini-batch"])
@pytest.mark.slow
def test_reaches_the_em_log_likelihood_on_the_seed_scenario(seed_scenario, batch_size):
    X, em = seed_scenario
    result = gmm.fit_gradient(jax.random.key(1), X, 3, batch_size=batch_size)
    gap = float(em.lower_bound - gmm.score(result.params, X))
    assert result.loss.shape == (1000,)
    assert gap < 0.02, gap
    assert gap > -1e-6  # EM's converged fit is the maximum: gradient descent cannot beat it


@pytest.mark.slow
def test_with_a_prior_it_reaches_the_map_em_objective_and_its_loss_is_the_negative_log_posterior(seed_scenario):
    X, _ = seed_scenario
    prior = gmm.ConjugatePrior.default(X, 3, "full")
    em = gmm.fit(jax.random.key(1), X, 3, n_init=4, tol=1e-9, max_iter=2000, prior=prior)
    key = jax.random.key(1)
    result = gmm.fit_gradient(key, X, 3, prior=prior)
    start = gmm.fit(jax.random.split(key)[0], X, 3, max_iter=0, prior=prior)
    np.testing.assert_allclose(result.loss[0], -start.lower_bound, rtol=1e-10)
    gap = float(em.lower_bound + result.loss[-1])
    assert -1e-6 < gap < 0.02, gap  # MAP-EM's converged fit is the mode
    assert float(result.loss[-1]) < float(result.loss[0])


@pytest.mark.slow
def test_the_loss_trace_is_the_negative_mean_log_likelihood_before_each_step():
    X = jax.random.normal(jax.random.key(0), (80, 2))
    key = jax.random.key(3)
    result = gmm.fit_gradient(key, X, 2, n_steps=3, covariance_type="diag")
    start = gmm.fit(jax.random.split(key)[0], X, 2, covariance_type="diag", max_iter=0).params
    np.testing.assert_allclose(result.loss[0], -gmm.score(start, X), rtol=1e-12)
    more = gmm.fit_gradient(key, X, 2, n_steps=1, covariance_type="diag", init_params=result.params)
    np.testing.assert_allclose(more.loss[0], -gmm.score(result.params, X), rtol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.slow
def test_every_covariance_type_descends_and_stays_valid(covariance_type):
    rng = np.random.default_rng(0)
    X = jnp.asarray(np.concatenate([rng.normal(-2, 1, (40, 3)), rng.normal(2, 0.5, (40, 3))]))
    # A random start (k-means would start next to the optimum), so there is some way to go.
    result = gmm.fit_gradient(jax.random.key(0), X, 2, n_steps=60, covariance_type=covariance_type, init="random")
    assert result.params.covariance_type == covariance_type
    assert float(result.loss[-1]) < float(result.loss[0])
    np.testing.assert_allclose(jnp.sum(result.params.weights), 1.0, rtol=1e-12)
    covs = np.asarray(result.params.covariances)
    if covariance_type in ("full", "tied"):
        assert np.all(np.linalg.eigvalsh(covs.reshape(-1, 3, 3)) > 0)
    else:
        assert np.all(covs > 0)


@pytest.mark.slow
def test_integer_sample_weights_count_rows_like_duplicates():
    X = jax.random.normal(jax.random.key(0), (30, 2)) * jnp.array([[1.0, 2.0]])
    counts = jnp.asarray(np.random.default_rng(0).integers(1, 4, 30)).astype(X.dtype)
    start = gmm.fit(jax.random.key(1), X, 2, max_iter=0).params
    weighted = gmm.fit_gradient(jax.random.key(2), X, 2, n_steps=20, init_params=start, sample_weight=counts)
    repeated = gmm.fit_gradient(jax.random.key(2), jnp.repeat(X, counts.astype(int), axis=0), 2, n_steps=20, init_params=start)
    chex.assert_trees_all_close(weighted.params, repeated.params, rtol=1e-9, atol=1e-12)
    chex.assert_trees_all_close(weighted.loss, repeated.loss, rtol=1e-10)


@pytest.mark.slow
def test_results_do_not_depend_on_the_data_units():
    # Standardised coordinates: the same problem in other units and offset
    # takes the same steps, and the loss moves by D log(scale).
    X = jax.random.normal(jax.random.key(0), (60, 2)) + jnp.array([[0.0, 3.0]])
    start = gmm.fit(jax.random.key(1), X, 2, max_iter=0).params
    scale, offset = 100.0, jnp.array([1e3, -2e3])
    moved_start = start.replace(means=start.means * scale + offset[None], precisions_cholesky=start.precisions_cholesky / scale)
    plain = gmm.fit_gradient(jax.random.key(2), X, 2, n_steps=30, init_params=start)
    moved = gmm.fit_gradient(jax.random.key(2), X * scale + offset[None], 2, n_steps=30, init_params=moved_start)
    np.testing.assert_allclose(moved.params.means, plain.params.means * scale + offset[None], rtol=1e-9)
    np.testing.assert_allclose(moved.params.covariances, plain.params.covariances * scale**2, rtol=1e-8)
    np.testing.assert_allclose(moved.loss, plain.loss + 2 * np.log(scale), rtol=1e-10)


@pytest.mark.slow
def test_a_custom_optimizer_and_its_state_come_back():
    X = jax.random.normal(jax.random.key(0), (50, 2))
    optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(0.05, momentum=0.9))
    result = gmm.fit_gradient(jax.random.key(0), X, 2, optimizer=optimizer, n_steps=40, covariance_type="spherical")
    assert float(result.loss[-1]) < float(result.loss[0])
    expected = jax.eval_shape(optimizer.init, gmm.to_unconstrained(result.params))
    chex.assert_trees_all_equal_shapes(result.opt_state, expected)


def test_float32_data_gives_float32_results():
    X = (jax.random.normal(jax.random.key(0), (60, 2)) + 1e4).astype(jnp.float32)
    result = gmm.fit_gradient(jax.random.key(0), X, 2, n_steps=30)
    assert result.params.means.dtype == jnp.float32 and result.loss.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(result.loss))) and float(result.loss[-1]) < float(result.loss[0])


@pytest.mark.slow
def test_a_second_call_with_new_values_does_not_retrace():
    X = jax.random.normal(jax.random.key(0), (40, 2))

    @jax.jit
    @chex.assert_max_traces(n=1)
    def losses(key, X):
        return gmm.fit_gradient(key, X, 2, n_steps=5, batch_size=16).loss

    first = losses(jax.random.key(0), X)
    second = losses(jax.random.key(1), X * 2.0)
    assert not bool(jnp.allclose(first, second))
    size = _gradient._descend._cache_size()
    gmm.fit_gradient(jax.random.key(0), X, 2, n_steps=5)
    gmm.fit_gradient(jax.random.key(1), X + 1.0, 2, n_steps=5)  # default optimizer: one program
    assert _gradient._descend._cache_size() == size + 1


@pytest.mark.slow
def test_vmap_over_datasets_equals_one_fit_at_a_time():
    datasets = jax.random.normal(jax.random.key(0), (3, 40, 2)) * jnp.array([1.0, 2.0, 3.0])[:, None, None]
    keys = jax.random.split(jax.random.key(1), 3)
    batched = jax.vmap(lambda k, X: gmm.fit_gradient(k, X, 2, n_steps=10, covariance_type="diag"))(keys, datasets)
    for i in range(3):
        one = gmm.fit_gradient(keys[i], datasets[i], 2, n_steps=10, covariance_type="diag")
        chex.assert_trees_all_close(jax.tree_util.tree_map(lambda a: a[i], batched.params), one.params, rtol=1e-9)


def test_bad_arguments_raise_before_tracing():
    X = jax.random.normal(jax.random.key(0), (20, 2))
    key = jax.random.key(0)
    with pytest.raises(TypeError, match="optax.GradientTransformation"):
        gmm.fit_gradient(key, X, 2, optimizer=0.01)
    with pytest.raises(ValueError, match="n_steps must be >= 1"):
        gmm.fit_gradient(key, X, 2, n_steps=0)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        gmm.fit_gradient(key, X, 2, batch_size=0)
    with pytest.raises(ValueError, match="n_components"):
        gmm.fit_gradient(key, X, 30)
    with pytest.raises(ValueError, match="covariance_type"):
        gmm.fit_gradient(key, X, 2, covariance_type="banana")
    with pytest.raises(ValueError, match="init_params has covariance_type='diag'"):
        start = gmm.fit(key, X, 2, covariance_type="diag", max_iter=0).params
        gmm.fit_gradient(key, X, 2, init_params=start)
    with pytest.raises(TypeError, match="PRNG key"):
        gmm.fit_gradient(0, X, 2)
    with pytest.raises(ValueError, match="sample_weight"):
        gmm.fit_gradient(key, X, 2, sample_weight=-jnp.ones(20))
