"""The fused pass equals the reference math, for every covariance type, width and chunking.

The reference (``_covariance.log_gaussian_prob`` and the models'
``second_moment``) is the documented definition of the densities and of the
sufficient statistics; ``_pass`` is the fast implementation every entry point
runs. Widths cover the element-wise small-D path (1, 2, 4), the product path
with and without pairwise norms (5, 16, 17, 33) and both tuning tables; the
chunked runs use a ragged chunk of 7 rows.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.special import logsumexp

import gmm_jax as gmm
from gmm_jax import _covariance, _em, _pass, _tuning

from conftest import random_params

WIDTHS = (1, 2, 4, 5, 16, 17, 33)
# (rows per chunk, tuning): unchunked and chunked on the CPU table, and for
# the full pass (the only one the tables change beyond rows per chunk) also
# chunked on the accelerator table: reduction norms, one chunk per loop step.
LAYOUTS = {"unchunked": (None, _tuning.CPU), "chunked": (7, _tuning.CPU), "chunked-accelerator": (7, _tuning.ACCELERATOR)}
QUICK = {(2, "unchunked"), (5, "chunked"), (17, "chunked-accelerator")}


def _cases():
    for covariance_type in gmm.COVARIANCE_TYPES:
        for n_features in WIDTHS:
            for layout in LAYOUTS:
                if layout == "chunked-accelerator" and covariance_type != "full":
                    continue
                marks = () if (n_features, layout) in QUICK else (pytest.mark.slow,)
                yield pytest.param(covariance_type, n_features, layout, marks=marks,
                                   id=f"{covariance_type}-{n_features}-{layout}")  # fmt: skip


def _reference(params, X, w):
    """Scores and statistics from the plain definitions, around the current means."""
    log_gauss = _covariance.log_gaussian_prob(X, params.means, params.precisions_cholesky, params.covariance_type)
    wlp = log_gauss + jnp.log(params.weights)[None, :]
    log_prob = logsumexp(wlp, axis=1)
    resp = jnp.exp(wlp - log_prob[:, None]) * w[:, None]
    shift = params.means
    model = _covariance.covariance_model(params.covariance_type)
    stats = _pass.SufficientStatistics(
        jnp.sum(w * log_prob), jnp.sum(w), resp.sum(0), resp.T @ X - resp.sum(0)[:, None] * shift,
        model.second_moment(X, resp, shift),
    )  # fmt: skip
    return log_gauss, log_prob, wlp - log_prob[:, None], stats


def _fused(params, X, w, chunk_size, tuning):
    # Run op by op (jax.disable_jit): 84 layouts would otherwise compile 84
    # programs; the operations, and so the numbers, are the same.
    p = _pass.pass_for(params.covariance_type, tuning)
    log_gauss, _ = p.log_densities(p.constants(params.means, params.precisions_cholesky), X)
    log_resp, log_prob = _pass.map_scores(params, X, "log_resp_and_log_prob", chunk_size, None, tuning)
    proba = _pass.map_scores(params, X, "proba", chunk_size, None, tuning)
    labels = _pass.map_scores(params, X, "labels", chunk_size, None, tuning)
    stats = _pass.accumulate_statistics(params, X, w, chunk_size, None, tuning)
    return log_gauss.T, log_prob, log_resp, proba, labels, stats


def _data(covariance_type, n_features, dtype=np.float64, n=40, seed=0):
    rng = np.random.default_rng(seed + n_features)
    params = random_params(rng, covariance_type, n_components=3, n_features=n_features, spread=2.0)
    X = rng.normal(size=(n, n_features)) * 1.5
    w = rng.uniform(0.2, 2.0, size=n)
    w[3] = 0.0  # a padding row
    return params.astype(dtype), jnp.asarray(X, dtype), jnp.asarray(w, dtype)


@pytest.mark.parametrize("covariance_type, n_features, layout", _cases())
def test_fused_pass_equals_the_reference_in_float64(covariance_type, n_features, layout):
    chunk_size, tuning = LAYOUTS[layout]
    params, X, w = _data(covariance_type, n_features)
    ref_gauss, ref_log_prob, ref_log_resp, ref = _reference(params, X, w)
    with jax.disable_jit():
        log_gauss, log_prob, log_resp, proba, labels, stats = _fused(params, X, w, chunk_size, tuning)
    tol = dict(rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(log_gauss, ref_gauss, **tol)
    np.testing.assert_allclose(log_prob, ref_log_prob, **tol)
    np.testing.assert_allclose(log_resp, ref_log_resp, **tol)
    np.testing.assert_allclose(proba, np.exp(ref_log_resp), **tol)
    np.testing.assert_array_equal(labels, np.argmax(ref_log_resp, axis=1))
    for name in ("log_likelihood", "weight_sum", "nk", "s1", "s2"):
        np.testing.assert_allclose(getattr(stats, name), getattr(ref, name), **tol, err_msg=name)
    # The M-step from either set of sums (covariances: with 40 rows in up to 33
    # dimensions the precision factors are too ill-conditioned to compare at 1e-10).
    m_fused = _em.params_from_statistics(stats, params.means, covariance_type, 1e-6)
    m_ref = _em.params_from_statistics(ref, params.means, covariance_type, 1e-6)
    for name in ("weights", "means", "covariances"):
        np.testing.assert_allclose(getattr(m_fused, name), getattr(m_ref, name), **tol, err_msg=name)


@pytest.mark.parametrize("n_features", [1, 2, 5, 16, 17])
@pytest.mark.parametrize("covariance_type", gmm.COVARIANCE_TYPES)
def test_statistics_for_given_responsibilities_equal_the_reference(covariance_type, n_features):
    rng = np.random.default_rng(n_features)
    X = jnp.asarray(rng.normal(size=(30, n_features)))
    resp = jnp.asarray(rng.dirichlet(np.ones(3), size=30))
    shift = jnp.asarray(rng.normal(size=(3, n_features)))
    w = jnp.ones(30)
    got = _pass.statistics_from_responsibilities(lambda Xc, wc, _: resp.T, X, w, shift, covariance_type, _tuning.CPU)
    model = _covariance.covariance_model(covariance_type)
    np.testing.assert_allclose(got.nk, resp.sum(0), rtol=1e-12)
    np.testing.assert_allclose(got.s1, resp.T @ X - resp.sum(0)[:, None] * shift, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(got.s2, model.second_moment(X, resp, shift), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("n_features", [2, 16, 33])
@pytest.mark.parametrize("covariance_type", gmm.COVARIANCE_TYPES)
def test_fused_pass_keeps_float32_digits_far_from_the_origin(covariance_type, n_features):
    # Narrow components 1e4 away from the origin; rows centred at the data
    # mean as the driver does. float32 must agree with float64 to ~1e-4.
    params64, X64, w64 = _data(covariance_type, n_features, n=200, seed=5)
    offset = 1e4
    X64 = X64 * 0.01 + offset
    params64 = params64.replace(means=params64.means * 0.01 + offset)
    params64 = params64.replace(precisions_cholesky=params64.precisions_cholesky * 100.0)  # 100x narrower
    center32 = jnp.mean(X64, axis=0).astype(jnp.float32)  # a float32 origin, exact in both precisions
    center = center32.astype(jnp.float64)
    centred64 = params64.replace(means=params64.means - center[None, :])
    params32, X32, w32 = centred64.astype(jnp.float32), jnp.asarray(X64, jnp.float32), w64.astype(jnp.float32)
    log_prob = _pass.map_scores(params32, X32, "log_prob", None, center32, _tuning.CPU)
    stats = _pass.accumulate_statistics(params32, X32, w32, 16, center32, _tuning.CPU)
    # Rounding X to float32 at 1e4 moves each row by up to 5e-4, 0.05 standard deviations:
    # compare with float64 on the same rounded rows.
    X_rounded = jnp.asarray(X32, jnp.float64)
    _, ref_log_prob, _, ref = _reference(centred64, X_rounded - center[None, :], w64)
    np.testing.assert_allclose(log_prob, ref_log_prob, rtol=2e-5, atol=2e-3)
    np.testing.assert_allclose(stats.nk, ref.nk, rtol=1e-4, atol=1e-4)
    for name in ("s1", "s2"):
        got, want = np.asarray(getattr(stats, name)), np.asarray(getattr(ref, name))
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * np.abs(want).max(), err_msg=name)
