"""Property-based tests (hypothesis) over covariance types, dtypes and shapes.

JAX compiles per shape, so shapes come from a small set and every fit goes
through ``degenerate_data.fit_batch`` (six ``(60, 3)`` datasets per call),
whose compiled code the other reliability modules share. Examples are
derandomised so the suite is reproducible.
"""

import jax.numpy as jnp
import numpy as np
from degenerate_data import BATCH, COVARIANCE_TYPES, N_COMPONENTS, N_FEATURES, N_SAMPLES, fit_batch
from hypothesis import given, settings
from hypothesis import strategies as st

import gmm_jax as gmm

SETTINGS = settings(max_examples=12, deadline=None, derandomize=True)
SHAPES = [(2, 2), (3, 3)]  # (n_components, n_features)


def random_params(rng, covariance_type, n_components, n_features, dtype, separation=0.0):
    weights = rng.dirichlet(np.full(n_components, 4.0))
    weights = 0.6 * weights + 0.4 / n_components  # every component keeps >= 13% of the mass
    means = rng.normal(size=(n_components, n_features)) * 3.0
    if separation:
        # Push the means apart until every pair is `separation` apart.
        directions = np.linalg.qr(rng.normal(size=(max(n_components, n_features), n_features)))[0][:n_components]
        means = directions * separation / np.sqrt(2.0) + rng.normal(size=(1, n_features))
    if covariance_type == "full":
        a = rng.normal(size=(n_components, n_features, n_features)) * 0.4
        cov = a @ np.swapaxes(a, 1, 2) + 0.3 * np.eye(n_features)
    elif covariance_type == "tied":
        a = rng.normal(size=(n_features, n_features)) * 0.4
        cov = a @ a.T + 0.3 * np.eye(n_features)
    elif covariance_type == "diag":
        cov = rng.uniform(0.3, 1.2, size=(n_components, n_features))
    else:
        cov = rng.uniform(0.3, 1.2, size=n_components)
    return gmm.GMMParams.from_covariances(weights, means, cov, covariance_type).astype(dtype)


def dense_covariances(params):
    cov = np.asarray(params.covariances, np.float64)
    k, d = params.n_components, params.n_features
    if params.covariance_type == "tied":
        return np.broadcast_to(cov, (k, d, d))
    if params.covariance_type == "diag":
        return np.stack([np.diag(c) for c in cov])
    if params.covariance_type == "spherical":
        return np.stack([c * np.eye(d) for c in cov])
    return cov


def sample_numpy(rng, params, n):
    """Samples and labels drawn with numpy (independent of gmm.sample)."""
    labels = rng.choice(params.n_components, size=n, p=np.asarray(params.weights, np.float64))
    chol = np.linalg.cholesky(dense_covariances(params))
    z = rng.normal(size=(n, params.n_features))
    return np.asarray(params.means, np.float64)[labels] + np.einsum("nde,ne->nd", chol[labels], z), labels


TYPES = st.sampled_from(COVARIANCE_TYPES)
DTYPES = st.sampled_from([np.float32, np.float64])
SEEDS = st.integers(0, 2**31 - 1)
TOL = {np.float32: 1e-5, np.float64: 1e-12}


@SETTINGS
@given(covariance_type=TYPES, dtype=DTYPES, shape=st.sampled_from(SHAPES), seed=SEEDS)
def test_densities_and_posteriors_are_well_formed(covariance_type, dtype, shape, seed):
    rng = np.random.default_rng(seed)
    params = random_params(rng, covariance_type, *shape, dtype)
    X = (rng.normal(size=(N_SAMPLES, shape[1])) * 4).astype(dtype)
    lp = np.asarray(gmm.log_prob(params, X))
    assert lp.dtype == dtype and np.all(np.isfinite(lp))
    proba = np.asarray(gmm.predict_proba(params, X), np.float64)
    assert np.all(proba >= 0)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=10 * TOL[dtype])
    np.testing.assert_array_equal(gmm.predict(params, X), np.argmax(proba, axis=1))


@SETTINGS
@given(covariance_type=TYPES, dtype=DTYPES, shape=st.sampled_from(SHAPES), seed=SEEDS)
def test_permuting_components_leaves_log_prob_unchanged(covariance_type, dtype, shape, seed):
    rng = np.random.default_rng(seed)
    params = random_params(rng, covariance_type, *shape, dtype)
    perm = rng.permutation(shape[0])
    factor = params.precisions_cholesky if covariance_type == "tied" else params.precisions_cholesky[perm]
    permuted = params.replace(weights=params.weights[perm], means=params.means[perm], precisions_cholesky=factor)
    X = (rng.normal(size=(N_SAMPLES, shape[1])) * 4).astype(dtype)
    np.testing.assert_allclose(gmm.log_prob(permuted, X), gmm.log_prob(params, X), rtol=100 * TOL[dtype])
    np.testing.assert_allclose(gmm.predict_proba(permuted, X), gmm.predict_proba(params, X)[:, perm], atol=100 * TOL[dtype])


def sampled_batch(seed, covariance_type, separation):
    """Six datasets, each drawn from its own random mixture; returns (stack, truths, labels)."""
    rng = np.random.default_rng(seed)
    truths, data, labels = [], [], []
    for _ in range(BATCH):
        truth = random_params(rng, covariance_type, N_COMPONENTS, N_FEATURES, np.float64, separation)
        X, y = sample_numpy(rng, truth, N_SAMPLES)
        truths.append(truth)
        data.append(X)
        labels.append(y)
    return np.stack(data), truths, labels


@settings(max_examples=6, deadline=None, derandomize=True)
@given(covariance_type=TYPES, dtype=DTYPES, seed=SEEDS)
def test_fitted_parameters_are_valid_and_recover_well_separated_mixtures(covariance_type, dtype, seed):
    stack, _, labels = sampled_batch(seed, covariance_type, separation=14.0)
    for X, y, result in zip(stack, labels, fit_batch(stack.astype(dtype), covariance_type)):
        params = result.params
        assert int(result.status) == 0
        np.testing.assert_allclose(np.sum(params.weights, dtype=np.float64), 1.0, atol=10 * TOL[dtype])
        cov = dense_covariances(params)
        np.testing.assert_allclose(cov, np.swapaxes(cov, -1, -2), rtol=1e-6)
        assert np.all(np.linalg.eigvalsh(cov) > 0)
        accuracy, _ = gmm.metrics.clustering_accuracy(y, gmm.predict(params, X.astype(dtype)))
        assert float(accuracy) >= 0.95


@settings(max_examples=6, deadline=None, derandomize=True)
@given(covariance_type=TYPES, dtype=DTYPES, seed=SEEDS)
def test_log_likelihood_trace_never_decreases(covariance_type, dtype, seed):
    # reg_covar=0 makes every M-step an exact maximiser, so EM's monotonicity
    # holds exactly (a regularised M-step may lose a little likelihood).
    # Overlapping mixtures, so EM runs for many iterations.
    stack, _, _ = sampled_batch(seed, covariance_type, separation=3.0)
    for result in fit_batch(stack.astype(dtype), covariance_type, reg_covar=0.0):
        n = int(result.n_iter)
        trace = np.asarray(result.log_likelihood, np.float64)[: max(n, 1)]
        assert np.all(np.isfinite(trace))
        slack = 1e-5 * np.abs(trace).max() if dtype == np.float32 else 1e-10 * np.abs(trace).max()
        assert np.all(np.diff(trace) >= -slack), np.diff(trace).min()
