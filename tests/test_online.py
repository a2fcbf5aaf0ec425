"""Online EM: exact re-centring of running statistics, and a one-pass fit close to batch EM."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gmm_jax as gmm
from gmm_jax import _online, _pass, _tuning


@pytest.mark.parametrize("covariance_type", gmm.COVARIANCE_TYPES)
@pytest.mark.slow
def test_recentred_statistics_equal_statistics_taken_around_the_new_shift(covariance_type):
    rng = np.random.default_rng(0)
    X = jnp.asarray(rng.normal(size=(50, 3)) + 5.0)
    resp = jnp.asarray(rng.dirichlet(np.ones(4), size=50))
    old, new = jnp.asarray(rng.normal(size=(4, 3))), jnp.asarray(rng.normal(size=(4, 3)) + 5.0)
    w = jnp.ones(50)

    def around(shift):
        return _pass.statistics_from_responsibilities(lambda *_: resp.T, X, w, shift, covariance_type, _tuning.CPU)

    around_old, around_new = around(old), around(new)
    moved = _online._recenter(around_old, old, new, covariance_type, _tuning.CPU)
    np.testing.assert_allclose(moved.s1, around_new.s1, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(moved.s2, around_new.s2, rtol=1e-10, atol=1e-9)


def _mixture_stream(rng, n_batches, batch_rows, truth):
    for _ in range(n_batches):
        X, _ = gmm.sample(jax.random.key(int(rng.integers(1 << 30))), truth, batch_rows)
        yield np.asarray(X, np.float32)


def test_one_pass_of_online_em_approaches_the_batch_em_fit():
    truth = gmm.GMMParams.from_covariances(
        jnp.array([0.5, 0.3, 0.2]), jnp.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]]),
        jnp.array([[1.0, 0.5], [0.5, 1.0], [0.3, 0.3]]), "diag",
    )  # fmt: skip
    rng = np.random.default_rng(1)
    batches = list(_mixture_stream(rng, 30, 1000, truth))
    online = gmm.fit_online(jax.random.key(0), iter(batches), 3, covariance_type="diag")
    batch_em = gmm.fit(jax.random.key(0), np.concatenate(batches), 3, covariance_type="diag")
    order_online = np.argsort(np.asarray(online.params.means)[:, 0] * 10 + np.asarray(online.params.means)[:, 1])
    order_batch = np.argsort(np.asarray(batch_em.params.means)[:, 0] * 10 + np.asarray(batch_em.params.means)[:, 1])
    assert int(online.n_iter) == 30 and online.log_likelihood.shape == (30,)
    np.testing.assert_allclose(online.params.means[order_online], batch_em.params.means[order_batch], atol=0.1)
    np.testing.assert_allclose(online.params.weights[order_online], batch_em.params.weights[order_batch], atol=0.02)
    np.testing.assert_allclose(
        online.params.covariances[order_online], batch_em.params.covariances[order_batch], rtol=0.1, atol=0.05
    )
    # The held-out score of late batches is close to the batch fit's score.
    assert abs(float(np.mean(online.log_likelihood[-10:])) - float(batch_em.lower_bound)) < 0.05


@pytest.mark.slow
def test_fit_online_reads_a_generator_once_and_stops_at_max_batches():
    rng = np.random.default_rng(2)
    consumed = []

    def endless():
        while True:
            consumed.append(None)
            yield rng.normal(size=(200, 2)).astype(np.float32)

    result = gmm.fit_online(jax.random.key(0), endless(), 2, covariance_type="spherical", max_batches=5)
    assert int(result.n_iter) == 5 and len(consumed) == 6  # the sixth is read, then the stream stops
    with pytest.raises(ValueError, match="step_exponent"):
        gmm.fit_online(jax.random.key(0), iter([np.zeros((5, 2))]), 2, step_exponent=0.4)
    with pytest.raises(ValueError, match=r"batch 1 \(0-based\) has shape \(10, 3\)"):
        gmm.fit_online(jax.random.key(0), iter([rng.normal(size=(10, 2)), rng.normal(size=(10, 3))]), 2)
    with pytest.raises(ValueError, match="stream is empty"):
        gmm.fit_online(jax.random.key(0), iter([]), 2)
