"""float32 stays accurate on data far from the origin, at large scale and with distant clusters.

Each dataset is fitted in float64 and in float32 from the same key; the two
must reach the same solution. The fits run through ``degenerate_data.fit_batch``
(a batch of six ``(60, 3)`` datasets) and share its compiled code.
"""

import functools

import jax.numpy as jnp
import numpy as np
import pytest
from degenerate_data import BATCH, COVARIANCE_TYPES, fit_batch, three_blobs

import gmm_jax as gmm


def transformed_datasets():
    X, _ = three_blobs(seed=3)
    rotation = np.linalg.qr(np.random.default_rng(4).normal(size=(3, 3)))[0]
    X = X @ rotation  # correlated features, so full covariances are not diagonal
    far_apart = X + np.repeat(np.array([[-1e4, 0, 0], [1e4, 0, 0], [0, 1e4, 0]]), 20, axis=0)
    return {
        "plain": X,
        "offset 1e4": X + 1e4,
        "scale 1e5": X * 1e5,
        "offset 1e4 and scale 1e3": X * 1e3 + 1e4,
        "scale 1e-4": X * 1e-4,
        "clusters 1e4 apart": far_apart,
    }


DATA = transformed_datasets()
assert len(DATA) == BATCH


@functools.lru_cache(maxsize=None)
def fits(covariance_type, dtype):
    return fit_batch(np.stack(list(DATA.values())).astype(dtype), covariance_type)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.slow
def test_float32_fit_reaches_the_float64_solution(covariance_type):
    for name, r64, r32 in zip(DATA, fits(covariance_type, np.float64), fits(covariance_type, np.float32)):
        assert int(r32.status) == 0, name
        assert r32.params.means.dtype == jnp.float32
        np.testing.assert_allclose(r32.lower_bound, r64.lower_bound, rtol=1e-3, err_msg=name)
        order32, order64 = np.argsort(r32.params.means[:, 0]), np.argsort(r64.params.means[:, 0])
        scale = np.abs(DATA[name]).max()
        np.testing.assert_allclose(r32.params.means[order32], r64.params.means[order64], atol=1e-5 * scale, err_msg=name)
        cov32, cov64 = np.asarray(r32.params.covariances), np.asarray(r64.params.covariances)
        if covariance_type != "tied":
            cov32, cov64 = cov32[order32], cov64[order64]
        # Relative to each covariance's own size: no digits lost to the offset.
        np.testing.assert_allclose(cov32, cov64, rtol=2e-3, atol=2e-3 * np.abs(cov64).max(), err_msg=name)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_log_prob_of_a_float64_fit_matches_float64(covariance_type):
    # log_prob centres the data at the mixture mean before the distances, so
    # evaluating a model of data at X + 1e4 keeps float32's digits.
    # Both sides see the same float32-rounded numbers (at 1e4 a float32 step
    # is 1e-3, a change of the data itself); only the arithmetic differs.
    for name, r64 in zip(DATA, fits(covariance_type, np.float64)):
        X32, p32 = DATA[name].astype(np.float32), r64.params.astype(jnp.float32)
        X64, p64 = X32.astype(np.float64), p32.astype(jnp.float64)
        lp64 = np.asarray(gmm.log_prob(p64, X64))
        lp32 = np.asarray(gmm.log_prob(p32, X32))
        # Clusters 1e4 standard deviations from the mixture mean: no common
        # centre is near every row, and float32 resolves a coordinate of size
        # 1e4 only to 1e-3 (a thousandth of a standard deviation), so the
        # issue's 1e-3 relative criterion applies. Everything else is exact to
        # float32 rounding.
        tol = 1e-3 if name == "clusters 1e4 apart" else 1e-5
        np.testing.assert_allclose(lp32, lp64, rtol=tol, atol=tol * np.abs(lp64).mean(), err_msg=name)
        np.testing.assert_allclose(gmm.predict_proba(p32, X32), gmm.predict_proba(p64, X64), atol=10 * tol, err_msg=name)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_m_step_far_from_the_origin_has_no_cancellation(covariance_type):
    _, labels = three_blobs(seed=3)
    X = DATA["offset 1e4"].astype(np.float32).astype(np.float64)  # the same numbers in both dtypes
    log_resp = np.log(np.eye(3)[labels] + 1e-300)
    p64 = gmm.m_step(X, log_resp, covariance_type)
    p32 = gmm.m_step(X.astype(np.float32), log_resp.astype(np.float32), covariance_type)
    np.testing.assert_allclose(p32.covariances, p64.covariances, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(p32.means, p64.means, rtol=1e-6)
