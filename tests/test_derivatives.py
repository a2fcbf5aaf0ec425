"""Derivatives through ``fit`` (every init, every covariance type) agree with finite differences.

What is differentiated: the starting M-step (from the initialiser's hard or
random responsibilities, which are held fixed) and every EM iteration. The
discrete steps (k-means++ seeding, Lloyd's assignments, the rows drawn by
``random_from_data``, the choice of the best restart) carry no derivative;
small perturbations do not change them, so central differences see the same
piecewise-smooth function. ``tol=0`` with a small ``max_iter`` fixes the
iteration count under perturbation. All in float64 (the suite's conftest).
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gmm_jax as gmm
from conftest import COVARIANCE_TYPES

ROOT = Path(__file__).resolve().parents[1]

KEY = jax.random.key(1)
FIT = dict(max_iter=5, tol=0.0)


def two_clusters(n=60, seed=0):
    rng = np.random.default_rng(seed)
    half = n // 2
    return jnp.asarray(np.concatenate([rng.normal(-1.5, 1.0, (half, 2)), rng.normal(1.5, 0.7, (n - half, 2))]))


def summary(result):
    """A scalar that reads every fitted quantity (weights, means, covariances, lower bound)."""
    p = result.params
    c = p.covariances
    return (
        result.lower_bound
        + jnp.sum(p.weights * jnp.arange(1.0, 1.0 + p.n_components))
        + jnp.sum(p.means * jnp.linspace(-1.0, 2.0, p.means.size).reshape(p.means.shape))
        + jnp.sum(c * jnp.linspace(0.5, 1.5, c.size).reshape(c.shape))
    )


def directional_difference(f, x, v, h=1e-5):
    return (f(x + h * v) - f(x - h * v)) / (2 * h)


def direction(shape, seed=3):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape))


# The derivative has two pieces: the starting M-step from the initialiser's
# responsibilities (one per init) and the EM iterations (one per covariance
# type). The default init runs with every type and every other init with a
# different type, so each piece is checked (7 fits, not the 16 of every pair).
INIT_TYPE_PAIRS = [("kmeans", t) for t in COVARIANCE_TYPES] + [
    ("k-means++", "full"), ("random", "diag"), ("random_from_data", "spherical")]


@pytest.mark.parametrize("init, covariance_type", INIT_TYPE_PAIRS)
@pytest.mark.slow
def test_grad_through_fit_matches_central_differences(init, covariance_type):
    X = two_clusters()

    def loss(X):
        return summary(gmm.fit(KEY, X, 2, init=init, covariance_type=covariance_type, **FIT))

    grad = jax.grad(loss)(X)
    assert grad.shape == X.shape and bool(jnp.all(jnp.isfinite(grad)))
    v = direction(X.shape)
    np.testing.assert_allclose(jnp.vdot(grad, v), directional_difference(loss, X, v), rtol=1e-6, atol=1e-9)


def test_grad_with_respect_to_sample_weight_matches_central_differences():
    X = two_clusters()
    w = jnp.asarray(np.random.default_rng(1).uniform(0.5, 1.5, X.shape[0]))

    def loss(w):
        return summary(gmm.fit(KEY, X, 2, sample_weight=w, **FIT))

    grad = jax.grad(loss)(w)
    v = direction(w.shape)
    np.testing.assert_allclose(jnp.vdot(grad, v), directional_difference(loss, w, v), rtol=1e-6, atol=1e-9)


@pytest.mark.slow
def test_grad_with_restarts_matches_central_differences():
    X = two_clusters()

    def loss(X):
        return summary(gmm.fit(KEY, X, 3, n_init=3, **FIT))

    grad = jax.grad(loss)(X)
    v = direction(X.shape)
    np.testing.assert_allclose(jnp.vdot(grad, v), directional_difference(loss, X, v), rtol=1e-6, atol=1e-9)


@pytest.mark.slow
def test_grad_under_vmap_equals_the_grad_of_each_fit():
    datasets = jnp.stack([two_clusters(seed=s) for s in range(3)])
    keys = jax.random.split(KEY, 3)
    per_dataset = jax.vmap(jax.grad(_fit_summary, 1))(keys, datasets)
    one_by_one = jnp.stack([jax.grad(_fit_summary, 1)(keys[i], datasets[i]) for i in range(3)])
    chex.assert_trees_all_close(per_dataset, one_by_one, rtol=1e-10, atol=1e-12)


@pytest.mark.slow
def test_grad_of_a_vmapped_fit_equals_the_grad_of_each_fit():
    datasets = jnp.stack([two_clusters(seed=s) for s in range(3)])
    keys = jax.random.split(KEY, 3)
    of_the_sum = jax.grad(lambda Xs: jnp.sum(jax.vmap(_fit_summary)(keys, Xs)))(datasets)
    one_by_one = jnp.stack([jax.grad(_fit_summary, 1)(keys[i], datasets[i]) for i in range(3)])
    chex.assert_trees_all_close(of_the_sum, one_by_one, rtol=1e-10, atol=1e-12)


def _fit_summary(key, X):
    return summary(gmm.fit(key, X, 2, **FIT))


@pytest.mark.slow
def test_jacfwd_with_the_default_init_equals_jacrev_and_central_differences():
    X = two_clusters()

    def means(X):
        return gmm.fit(KEY, X, 2, **FIT).params.means

    forward = jax.jacfwd(means)(X)
    assert forward.shape == (2, 2, *X.shape)
    chex.assert_trees_all_close(forward, jax.jacrev(means)(X), rtol=1e-9, atol=1e-12)
    v = direction(X.shape)
    np.testing.assert_allclose(
        jnp.tensordot(forward, v, axes=2), directional_difference(means, X, v), rtol=1e-6, atol=1e-9
    )


@pytest.mark.slow
def test_hessian_with_the_default_init_matches_central_differences_of_the_gradient():
    X = two_clusters()
    moved = jnp.arange(X.shape[0]) < 10  # a shift applied to ten rows

    def loss(shift):
        return summary(gmm.fit(KEY, X + jnp.where(moved[:, None], shift[None, :], 0.0), 2, **FIT))

    shift = jnp.array([0.1, -0.2])
    hessian = jax.hessian(loss)(shift)
    grad = jax.grad(loss)
    numeric = jnp.stack([directional_difference(grad, shift, e) for e in jnp.eye(2)], axis=1)
    np.testing.assert_allclose(hessian, numeric, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(hessian, hessian.T, rtol=1e-8, atol=1e-10)


def test_differentiated_fit_returns_the_fit_it_differentiates():
    X = two_clusters()
    plain = gmm.fit(KEY, X, 2, **FIT)
    value, _ = jax.value_and_grad(lambda X: summary(gmm.fit(KEY, X, 2, **FIT)))(X)
    np.testing.assert_allclose(value, summary(plain), rtol=1e-12)


@pytest.mark.slow
def test_a_jitted_gradient_is_traced_once():
    X = two_clusters()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def grad(X):
        return jax.grad(lambda X: summary(gmm.fit(KEY, X, 2, **FIT)))(X)

    first = grad(X)
    second = grad(X * 1.1)  # new values, same shapes: no second trace
    assert not bool(jnp.allclose(first, second))


@pytest.mark.slow
def test_kmeans_centres_differentiate_as_the_means_of_their_rows():
    X = two_clusters() + jnp.array([[3.0, -1.0]])
    w = jnp.asarray(np.random.default_rng(2).uniform(0.5, 1.5, X.shape[0]))

    def centres(X, w):
        return gmm.kmeans(jax.random.key(0), X, 2, sample_weight=w)[0]

    jac_x, jac_w = jax.jacrev(centres, (0, 1))(X, w)
    v, u = direction(X.shape), direction(w.shape, seed=4)
    np.testing.assert_allclose(
        jnp.tensordot(jac_x, v, axes=2), directional_difference(lambda X: centres(X, w), X, v), rtol=1e-6, atol=1e-9
    )
    np.testing.assert_allclose(
        jnp.tensordot(jac_w, u, axes=1), directional_difference(lambda w: centres(X, w), w, u), rtol=1e-6, atol=1e-9
    )
    chex.assert_trees_all_close(jax.jacfwd(centres)(X, w), jac_x, rtol=1e-10, atol=1e-12)


SHARDED_SCRIPT = textwrap.dedent(
    """
    import json
    import jax, jax.numpy as jnp, numpy as np
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_numpy_rank_promotion", "raise")
    import gmm_jax as gmm
    assert jax.device_count() == 4, jax.devices()
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(-1.5, 1.0, (30, 2)), rng.normal(1.5, 0.7, (30, 2))])
    Xs, ws = gmm.distributed.shard(X)

    def loss(X, w):
        result = gmm.fit(jax.random.key(1), X, 2, sample_weight=w, max_iter=5, tol=0.0)
        return result.lower_bound + jnp.sum(result.params.means * jnp.arange(4.0).reshape(2, 2))

    one_x, one_w = jax.grad(loss, (0, 1))(jnp.asarray(X), jnp.ones(60))
    sharded_x = jax.grad(loss)(Xs, ws)             # X traced: a tracer's layout is its own
    sharded_w = jax.grad(loss, 1)(Xs, ws)          # X concrete and sharded, the weights traced
    jitted_x = jax.jit(jax.grad(loss))(Xs, ws)
    print(json.dumps({
        "x": float(np.max(np.abs(np.asarray(sharded_x) - np.asarray(one_x)))),
        "w": float(np.max(np.abs(np.asarray(sharded_w) - np.asarray(one_w)))),
        "jit": float(np.max(np.abs(np.asarray(jitted_x) - np.asarray(one_x)))),
        "w_spec": str(sharded_w.sharding.spec),
    }))
    """
)


@pytest.mark.slow
def test_grad_through_a_fit_on_data_sharded_over_four_devices_equals_one_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    run = subprocess.run(
        [sys.executable, "-c", SHARDED_SCRIPT], env=env, capture_output=True, text=True, timeout=600, cwd=ROOT
    )
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["x"] < 1e-10 and out["w"] < 1e-10 and out["jit"] < 1e-10, out
    assert "data" in out["w_spec"], out  # the weights' gradient stays split like the rows


def _converged_loss(mode, covariance_type, max_iter=300):
    X = jnp.asarray(two_clusters())
    start = gmm.fit(KEY, X, 2, covariance_type=covariance_type, max_iter=0).params

    def loss(X):
        # tol=0: exactly max_iter iterations, so the unrolled derivative has
        # converged too (its transient decays like the EM rate to the power n_iter).
        p = gmm.fit(KEY, X, 2, covariance_type=covariance_type, init_params=start, max_iter=max_iter, tol=0.0,
                    differentiate=mode).params
        return jnp.sum(p.means ** 2) + jnp.sum(p.covariances) + p.weights[0]

    return loss, X


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.slow
def test_implicit_derivative_equals_the_unrolled_one_at_convergence(covariance_type):
    unrolled, X = _converged_loss("unrolled", covariance_type)
    implicit, _ = _converged_loss("implicit", covariance_type)
    g_unrolled, g_implicit = jax.grad(unrolled)(X), jax.grad(implicit)(X)
    np.testing.assert_allclose(g_implicit, g_unrolled, rtol=1e-5, atol=1e-7 * float(jnp.max(jnp.abs(g_unrolled))))


@pytest.mark.slow
def test_implicit_derivative_memory_does_not_grow_with_max_iter():
    def temp_bytes(mode, max_iter):
        loss, X = _converged_loss(mode, "full", max_iter)
        return jax.jit(jax.grad(loss)).lower(X).compile().memory_analysis().temp_size_in_bytes

    implicit = [temp_bytes("implicit", m) for m in (20, 400)]
    unrolled = [temp_bytes("unrolled", m) for m in (20, 400)]
    assert implicit[0] == implicit[1]
    assert unrolled[1] > 5 * unrolled[0]  # the unrolled tape grows with the iterations


def test_implicit_mode_is_checked():
    with pytest.raises(ValueError, match="differentiate must be one of"):
        gmm.fit(KEY, two_clusters(), 2, differentiate="adjoint")
