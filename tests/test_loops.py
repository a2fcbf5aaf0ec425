"""Early-stopping loops: under vmap they compact the batch and still equal a loop of single runs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gmm_jax as gmm
from gmm_jax import _loops


def collatz_steps(operands, start):
    """A loop whose iteration count varies wildly between members (1 to 100+)."""

    def running(ops, state):
        n, steps = state
        return (n != 1) & (steps < ops["cap"])

    def body(ops, state):
        n, steps = state
        return jnp.where(n % 2 == 0, n // 2, 3 * n + 1) + 0 * ops["offset"], steps + 1

    return _loops.while_loop(running, body, operands, (start, jnp.zeros((), jnp.int32)))


def test_while_loop_alone_is_lax_while_loop():
    n, steps = collatz_steps({"cap": 1000, "offset": 0}, jnp.asarray(27))
    assert (int(n), int(steps)) == (1, 111)


@pytest.mark.parametrize("batch", [1, 5, 37, 300])
@pytest.mark.slow
def test_while_loop_under_vmap_equals_a_loop_of_single_runs(batch):
    starts = jnp.arange(1, batch + 1, dtype=jnp.int32) * 7
    ops = {"cap": jnp.asarray(60), "offset": jnp.arange(batch, dtype=jnp.int32)}
    batched = jax.jit(jax.vmap(collatz_steps, in_axes=({"cap": None, "offset": 0}, 0)))(ops, starts)
    for i in range(batch):
        single = collatz_steps({"cap": 60, "offset": i}, starts[i])
        assert [int(a[i]) for a in batched] == [int(a) for a in single]


def test_while_loop_under_nested_vmap_equals_single_runs():
    starts = jnp.arange(1, 13, dtype=jnp.int32).reshape(3, 4)
    ops = {"cap": jnp.asarray(200), "offset": jnp.asarray(0)}
    batched = jax.vmap(jax.vmap(collatz_steps, in_axes=(None, 0)), in_axes=(None, 0))(ops, starts)
    expected = np.array([[int(collatz_steps(ops, s)[1]) for s in row] for row in starts])
    np.testing.assert_array_equal(batched[1], expected)


@pytest.mark.slow
def test_batched_fits_with_a_straggler_equal_single_fits():
    # One dataset needs many more EM iterations than the others: the batch
    # compacts around it, and every fit still equals its own single fit.
    rng = np.random.default_rng(0)
    easy = [np.concatenate([rng.normal(-5, 1, (60, 2)), rng.normal(5, 1, (60, 2))]) for _ in range(6)]
    hard = rng.normal(0, 1, (120, 2))  # one blob split in two: slow, shallow convergence
    datasets = jnp.asarray(np.stack(easy + [hard]))
    keys = jax.random.split(jax.random.key(3), len(datasets))
    batched = jax.vmap(lambda k, X: gmm.fit(k, X, 2, tol=1e-6, max_iter=200))(keys, datasets)
    n_iter = np.asarray(batched.n_iter)
    assert n_iter.max() > 3 * np.median(n_iter)  # the straggler is real
    for i in range(len(datasets)):
        single = gmm.fit(keys[i], datasets[i], 2, tol=1e-6, max_iter=200)
        assert int(batched.n_iter[i]) == int(single.n_iter)
        np.testing.assert_allclose(batched.params.means[i], single.params.means, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(batched.log_likelihood[i], single.log_likelihood, rtol=1e-9)


def converging_fit_data():
    rng = np.random.default_rng(2)
    X = np.concatenate([rng.normal(-3, 1, (50, 2)), rng.normal(3, 0.7, (70, 2))])
    start = gmm.GMMParams.from_covariances(
        np.array([0.5, 0.5]), np.array([[-1.0, 0.0], [1.0, 0.5]]), np.array([4.0, 4.0]), "spherical"
    )
    return jnp.asarray(X), start


@pytest.mark.slow
def test_differentiating_a_converging_fit_matches_finite_differences():
    # The fit stops early (tol) in the forward pass; derivatives come from the
    # scanned form of the same iterations, through jax.grad and jax.jacfwd.
    X, start = converging_fit_data()

    def fitted(X):
        result = gmm.fit(jax.random.key(0), X, 2, covariance_type="spherical", init_params=start, tol=1e-4)
        return result.params.means[1, 0] + result.lower_bound

    result = gmm.fit(jax.random.key(0), X, 2, covariance_type="spherical", init_params=start, tol=1e-4)
    assert bool(result.converged) and 2 < int(result.n_iter) < 100
    grad = jax.grad(fitted)(X)
    np.testing.assert_allclose(jax.jacfwd(fitted)(X), grad, rtol=1e-9, atol=1e-12)
    eps = 1e-6
    bump = np.zeros(X.shape)
    bump[7, 0] = eps
    numeric = (fitted(X + bump) - fitted(X - bump)) / (2 * eps)
    np.testing.assert_allclose(grad[7, 0], numeric, rtol=1e-5)


def test_a_differentiated_fit_returns_the_same_fit():
    X, start = converging_fit_data()

    def run(X):
        return gmm.fit(jax.random.key(0), X, 2, covariance_type="spherical", init_params=start, tol=1e-4)

    plain = run(X)
    primal, _ = jax.vjp(lambda X: run(X).params.means, X)
    np.testing.assert_allclose(primal, plain.params.means, rtol=1e-12)
    primal_out, _ = jax.jvp(run, (X,), (jnp.ones_like(X),))
    assert int(primal_out.n_iter) == int(plain.n_iter)
    np.testing.assert_allclose(primal_out.log_likelihood, plain.log_likelihood, rtol=1e-12)
