"""EM in float32 follows the same iterations as float64 (fixed iteration counts, one start).

The EM pass runs in float32 when the data are float32; these tests pin down
that it keeps its digits where a naive implementation would not: data far
from the origin (the fit centres it) and narrow, elongated components far from
the data mean (full covariances are accumulated as whitened residuals, not as
raw moments ``E[x x^T] - mu mu^T``).
"""

import jax
import numpy as np
import pytest
from conftest import COVARIANCE_TYPES

import gmm_jax as gmm

KEY = jax.random.key(0)


def _blobs(rng, n, centers, scales):
    """``n`` rows around ``centers`` (K, D), each with its own (D, D) ``scales`` (x = c + z S)."""
    labels = rng.integers(0, len(centers), size=n)
    z = rng.standard_normal((n, centers.shape[1]))
    return centers[labels] + np.einsum("nd,nde->ne", z, scales[labels])


def _start(X, covariance_type, k=3, seed=0):
    rng = np.random.default_rng(seed)
    d = X.shape[1]
    cov = np.cov(X.T) + 1e-3 * np.eye(d)
    covariances = {
        "full": np.stack([cov] * k),
        "tied": cov,
        "diag": np.stack([np.diag(cov)] * k),
        "spherical": np.full(k, np.trace(cov) / d),
    }[covariance_type]
    means = X[rng.choice(len(X), k, replace=False)]
    return gmm.GMMParams.from_covariances(np.full(k, 1.0 / k), means, covariances, covariance_type)


def _fit_both(X64, start, max_iter=25, **options):
    """The same fit on float32 and float64 copies of the same (float32-representable) data."""
    X32 = X64.astype(np.float32)
    X64 = X32.astype(np.float64)  # identical values: only the arithmetic differs
    f32 = gmm.fit(KEY, X32, start.n_components, covariance_type=start.covariance_type,
                  init_params=start.astype(np.float32), max_iter=max_iter, tol=0.0, **options)
    f64 = gmm.fit(KEY, X64, start.n_components, covariance_type=start.covariance_type,
                  init_params=start.astype(np.float64), max_iter=max_iter, tol=0.0, **options)
    assert f32.params.means.dtype == np.float32 and f64.params.means.dtype == np.float64
    return f32, f64


def _whitened_covariance_error(f32, f64):
    """``max |L^-1 (S32 - S64) L^-T|`` with ``S64 = L L^T``, over components.

    The float32 covariances' error relative to each component's own width in
    every direction, the narrow ones included.
    """
    L = np.linalg.cholesky(np.asarray(f64.params.covariances))
    diff = np.asarray(f32.params.covariances, np.float64) - np.asarray(f64.params.covariances)
    return np.max(np.abs(np.linalg.solve(L, np.linalg.solve(L, diff).transpose(0, 2, 1))))


def _assert_close(f32, f64, offset=0.0, rtol=2e-4):
    p32, p64 = f32.params, f64.params
    scale = np.sqrt(np.max(np.asarray(p64.covariances)))  # a length scale of the data
    np.testing.assert_allclose(p32.weights, p64.weights, atol=rtol)
    np.testing.assert_allclose(np.asarray(p32.means, np.float64) - offset, np.asarray(p64.means) - offset,
                               atol=rtol * scale)
    np.testing.assert_allclose(p32.covariances, p64.covariances, rtol=rtol, atol=rtol * scale**2)
    np.testing.assert_allclose(f32.log_likelihood, f64.log_likelihood, rtol=rtol, atol=rtol)


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(0)
    centers = rng.normal(scale=4.0, size=(3, 3))
    scales = np.stack([np.eye(3) * s for s in (0.5, 1.0, 1.5)])
    return _blobs(rng, 3000, centers, scales)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.slow
def test_float32_fit_matches_float64(blobs, covariance_type):
    f32, f64 = _fit_both(blobs, _start(blobs, covariance_type))
    _assert_close(f32, f64)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_fit_matches_float64_far_from_origin(blobs, covariance_type):
    # float32 spacing at 1e4 is 1e-3: without centring, E[x^2] - E[x]^2 would
    # lose every digit of a unit variance.
    offset = 1e4
    f32, f64 = _fit_both(blobs + offset, _start(blobs + offset, covariance_type))
    _assert_close(f32, f64, offset=offset, rtol=1e-3)


@pytest.mark.parametrize("d", [4, 16])
@pytest.mark.slow
def test_float32_full_keeps_narrow_distant_components(d):
    # Elongated components (standard deviations from 10 down to 0.1 along
    # different axes) whose centres are ~ 500 of their own narrow standard
    # deviations from the data mean: a raw-moment (E[x x^T] - mu mu^T)
    # float32 pass loses ~ 1e-7 * 500^2 = 2.5% of the narrow variances;
    # whitened residuals keep them. d = 4 runs the element-wise small-D pass,
    # d = 16 the matrix-product pass.
    rng = np.random.default_rng(1)
    centers = np.zeros((3, d))
    centers[0, 0], centers[1, 0], centers[2, 1] = 50.0, -50.0, 50.0
    scales = []
    for _ in range(3):
        q, _ = np.linalg.qr(rng.normal(size=(d, d)))
        scales.append(np.diag(np.geomspace(10.0, 0.1, d)) @ q.T)
    X = _blobs(rng, 4000, centers, np.stack(scales))
    start = gmm.GMMParams.from_covariances(
        np.full(3, 1 / 3), centers, np.stack([s.T @ s for s in scales]) * 1.5, "full")
    f32, f64 = _fit_both(X, start, max_iter=10)
    assert int(f32.status) == 0
    assert _whitened_covariance_error(f32, f64) < 1e-3
    np.testing.assert_allclose(f32.log_likelihood, f64.log_likelihood, rtol=1e-5)


@pytest.mark.slow
def test_float32_full_keeps_a_tiny_component_far_from_the_rest():
    # Two unit clusters and a quarter-size one with standard deviation 0.01 at
    # 100 in every coordinate: about 4e4 of its own standard deviations from
    # the data mean (kappa ~ 1e9). Started at the float64 solution, with
    # reg_covar=0, float32 EM must keep every covariance positive definite
    # and within a small fraction of its width of the float64 one. (Taking
    # the M-step's correction sum r y from the first moments rather than from
    # r y itself, so that its rounding no longer cancels that of sum r y x^T,
    # made the narrow covariance indefinite here.)
    rng = np.random.default_rng(1)
    d, n = 16, 6000
    groups = [rng.normal(size=(n, d)), rng.normal(size=(n, d)) + 3.0, rng.normal(size=(n // 4, d)) * 0.01 + 100.0]
    X = np.concatenate(groups)
    means = np.stack([g.mean(axis=0) for g in groups])
    covariances = np.stack([np.cov(g.T) for g in groups])
    start = gmm.GMMParams.from_covariances(np.array([4.0, 4.0, 1.0]) / 9, means, covariances, "full")
    f32, f64 = _fit_both(X, start, max_iter=5, reg_covar=0.0)
    assert int(f32.status) == 0 and int(f32.n_iter) == 5
    assert _whitened_covariance_error(f32, f64) < 1e-3
