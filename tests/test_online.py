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


# --- MAP online EM: fit_online(prior=...) -------------------------------------------


def _seed_data(n=500):
    """The seed scenario: three spherical clusters in 2-D."""
    truth = gmm.GMMParams.from_covariances(
        weights=jnp.array([0.5, 0.2, 0.3]),
        means=jnp.array([[-1.0, -1.0], [1.0, -1.5], [0.0, 2.0]]),
        covariances=jnp.full(3, 0.3), covariance_type="spherical")  # fmt: skip
    return np.asarray(gmm.sample(jax.random.key(0), truth, n)[0])


def _epochs(X, n_epochs, rows, seed=1):
    rng = np.random.default_rng(seed)
    for _ in range(n_epochs):
        order = rng.permutation(len(X))
        for i in range(0, len(X), rows):
            yield X[order[i : i + rows]]


def _max_difference(a, b):
    return max(float(np.max(np.abs(np.asarray(getattr(a, name)) - np.asarray(getattr(b, name)))))
               for name in ("weights", "means", "covariances"))  # fmt: skip


@pytest.mark.parametrize("covariance_type", gmm.COVARIANCE_TYPES)
@pytest.mark.slow
def test_fit_online_with_a_prior_one_batch_is_one_map_em_iteration(covariance_type):
    # The first running average is the batch's per-sample statistics; scaled
    # to the samples seen (the batch's weight), its MAP M-step is fit's.
    X = _seed_data(300)
    w = np.random.default_rng(0).uniform(0.5, 2.0, len(X))
    prior = gmm.ConjugatePrior.default(X, 3, covariance_type)
    start = gmm.fit(jax.random.key(0), X, 3, covariance_type=covariance_type, max_iter=0).params
    kwargs = dict(covariance_type=covariance_type, init_params=start, prior=prior)
    one = gmm.fit(jax.random.key(0), X, 3, sample_weight=w, max_iter=1, tol=0.0, **kwargs)
    online = gmm.fit_online(jax.random.key(0), iter([(X, w)]), 3, **kwargs)
    for name in ("weights", "means", "covariances"):
        np.testing.assert_allclose(getattr(online.params, name), getattr(one.params, name), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(online.state.n_samples_seen, w.sum(), rtol=1e-12)
    # total_samples=N weighs the same batch as N samples: here, as the batch's weight again.
    again = gmm.fit_online(jax.random.key(0), iter([(X, w)]), 3, total_samples=float(w.sum()), **kwargs)
    np.testing.assert_allclose(again.params.means, online.params.means, rtol=1e-12)


@pytest.mark.parametrize("covariance_type", gmm.COVARIANCE_TYPES)
@pytest.mark.slow
def test_fit_online_with_a_prior_over_many_epochs_approaches_the_map_fit(covariance_type):
    X = _seed_data()
    prior = gmm.ConjugatePrior.default(X, 3, covariance_type)
    start = gmm.fit(jax.random.key(0), X, 3, covariance_type=covariance_type, max_iter=0).params
    kwargs = dict(covariance_type=covariance_type, init_params=start, tol=1e-10, max_iter=500)
    map_fit = gmm.fit(jax.random.key(0), X, 3, prior=prior, **kwargs)
    ml_fit = gmm.fit(jax.random.key(0), X, 3, **kwargs)
    online = gmm.fit_online(jax.random.key(0), _epochs(X, 40, 100), 3, covariance_type=covariance_type,
                            init_params=start, prior=prior, total_samples=len(X))  # fmt: skip
    assert int(online.status) == 0 and np.all(np.isfinite(online.log_likelihood))
    # Close to the MAP fit, and much closer to it than the ML fit is: the
    # prior weighs as in a fit of the 500 rows, not of the 20,000 rows read.
    assert _max_difference(online.params, map_fit.params) < 5e-3
    assert _max_difference(online.params, map_fit.params) < 0.5 * _max_difference(ml_fit.params, map_fit.params)


@pytest.mark.parametrize("covariance_type", gmm.COVARIANCE_TYPES)
@pytest.mark.slow
def test_fit_online_with_a_prior_fits_duplicated_points_where_plain_online_em_fails(covariance_type):
    from conftest import full_covariances

    X = np.repeat(np.array([[0.0, 0.0], [1.0, 1.0], [3.0, -1.0]]), 20, axis=0)  # 3 distinct points
    batches = list(_epochs(X, 5, 20))
    with pytest.raises(ValueError, match="ill-defined empirical covariance"):
        gmm.fit_online(jax.random.key(0), iter(batches), 4, covariance_type=covariance_type, reg_covar=0.0)
    prior = gmm.ConjugatePrior.default(X, 4, covariance_type)
    result = gmm.fit_online(jax.random.key(0), iter(batches), 4, covariance_type=covariance_type, reg_covar=0.0,
                            prior=prior, total_samples=len(X))  # fmt: skip
    assert int(result.status) == 0
    for leaf in jax.tree_util.tree_leaves(result.params):
        assert np.all(np.isfinite(np.asarray(leaf)))
    assert np.all(np.linalg.eigvalsh(full_covariances(result.params)) > 0)


def test_fit_online_checks_the_prior_and_total_samples_before_reading():
    X = np.random.default_rng(0).normal(size=(20, 2))
    read = []

    def batches():
        read.append(None)
        yield X

    prior = gmm.ConjugatePrior.default(X, 2, "full")
    with pytest.raises(TypeError, match="prior must be a ConjugatePrior"):
        gmm.fit_online(jax.random.key(0), batches(), 2, prior={"dof": 4})
    with pytest.raises(ValueError, match="must be a scalar for covariance_type='diag'"):
        gmm.fit_online(jax.random.key(0), batches(), 2, covariance_type="diag", prior=prior)
    with pytest.raises(ValueError, match="total_samples.*needs prior"):
        gmm.fit_online(jax.random.key(0), batches(), 2, total_samples=100)
    with pytest.raises(ValueError, match="total_samples must be > 0"):
        gmm.fit_online(jax.random.key(0), batches(), 2, prior=prior, total_samples=0)
    assert not read
    with pytest.raises(ValueError, match="has 2 features but the data has 3"):
        gmm.fit_online(jax.random.key(0), iter([np.ones((5, 3))]), 2, prior=prior)
