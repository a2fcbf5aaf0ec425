"""Everything that depends on the covariance type, in one place.

Each covariance type is a class of static methods with the same names; the
rest of the package picks one with ``covariance_model(covariance_type)`` and
never branches on the type string itself.

Conventions (scikit-learn's): ``K`` components, ``D`` features. The stored
form is the Cholesky factor ``U`` of the precision (``precision = U @ U.T``,
``U`` upper-triangular), so the squared Mahalanobis distance of ``x`` from
``mu`` is ``|(x - mu) @ U|^2`` and ``log det(precision)^(1/2) = sum log diag U``.

The M-step works from *sufficient statistics accumulated around a shift*
(usually the current means): ``nk = sum_n r_nk``, ``s1_k = sum_n r_nk (x_n -
shift_k)`` and a second moment ``s2`` whose shape depends on the type. The new
mean is ``shift + s1 / nk`` and the covariance is ``s2 / nk - d d^T`` with
``d = s1 / nk``. Accumulating around the current means rather than the origin
keeps float32 accurate (no ``E[x x^T] - mu mu^T`` cancellation), and lets a
single pass over the data (chunked, sharded or streamed) produce everything
the M-step needs.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")

_LOG_2PI = math.log(2.0 * math.pi)


def _eye_like(n_features, batch_shape, dtype):
    return jnp.broadcast_to(jnp.eye(n_features, dtype=dtype), (*batch_shape, n_features, n_features))


def _factor_from_matrix(cov):
    """Upper-triangular precision factor of SPD matrices ``cov`` (..., D, D)."""
    chol = jnp.linalg.cholesky(cov)
    eye = _eye_like(cov.shape[-1], cov.shape[:-2], cov.dtype)
    return jnp.swapaxes(solve_triangular(chol, eye, lower=True), -1, -2)


def _matrix_from_factor(factor):
    """Covariance matrices from upper-triangular precision factors (..., D, D)."""
    eye = _eye_like(factor.shape[-1], factor.shape[:-2], factor.dtype)
    chol = solve_triangular(jnp.swapaxes(factor, -1, -2), eye, lower=True)
    return chol @ jnp.swapaxes(chol, -1, -2)


def _outer_moments(X, resp, shift):
    """``sum_n resp_nk (x_n - shift_k)(x_n - shift_k)^T`` for all k: (K, D, D).

    One batched matrix product over components; the ``(N, K, D)`` difference
    array is bounded by the caller's chunk size.
    """
    diff = X[:, None, :] - shift[None, :, :]  # (N, K, D)
    return jnp.einsum("nkd,nke->kde", resp[:, :, None] * diff, diff)


def _weighted_cross(X, resp, shift):
    """``s1_k = sum_n resp_nk (x_n - shift_k)``: (K, D), as one matrix product."""
    return resp.T @ X - resp.sum(0)[:, None] * shift


def _squared_moments(X, resp, shift):
    """``sum_n resp_nk (x_n - shift_k)**2`` per feature: (K, D).

    Expanded into matrix products (``r^T X^2 - 2 shift * r^T X + nk shift^2``)
    so no ``(N, K, D)`` array is formed; the data are centred by the caller
    and the result is clipped at zero, which bounds the cancellation.
    """
    nk = resp.sum(0)[:, None]
    s = resp.T @ (X * X) - 2.0 * shift * (resp.T @ X) + nk * shift * shift
    return jnp.maximum(s, 0.0)


class Full:
    """A full ``(D, D)`` covariance per component. Factor shape ``(K, D, D)``."""

    @staticmethod
    def factor_from_covariances(cov):
        return _factor_from_matrix(cov)

    @staticmethod
    def covariances_from_factor(factor):
        return _matrix_from_factor(factor)

    @staticmethod
    def precisions_from_factor(factor):
        return factor @ jnp.swapaxes(factor, -1, -2)

    @staticmethod
    def log_det_factor(factor, n_features):
        del n_features
        return jnp.sum(jnp.log(jnp.diagonal(factor, axis1=-2, axis2=-1)), axis=-1)

    @staticmethod
    def mahalanobis(X, means, factor):
        # (x - mu_k) @ U_k written as X @ U_k - mu_k @ U_k: one large matrix
        # product over all components instead of K small ones. The data are
        # centred by `fit`, so the subtraction does not cancel badly.
        y = jnp.einsum("nd,kde->nke", X, factor) - jnp.einsum("kd,kde->ke", means, factor)[None]
        return jnp.sum(y * y, axis=-1)

    @staticmethod
    def second_moment(X, resp, shift):
        return _outer_moments(X, resp, shift)

    @staticmethod
    def covariances_from_moments(s2, nk, d, reg_covar):
        cov = s2 / nk[:, None, None] - d[:, :, None] * d[:, None, :]
        return cov + reg_covar * jnp.eye(cov.shape[-1], dtype=cov.dtype)[None]

    @staticmethod
    def n_covariance_parameters(n_components, n_features):
        return n_components * n_features * (n_features + 1) // 2


class Tied:
    """One full ``(D, D)`` covariance shared by all components. Factor ``(D, D)``."""

    factor_from_covariances = staticmethod(_factor_from_matrix)
    covariances_from_factor = staticmethod(_matrix_from_factor)
    precisions_from_factor = staticmethod(Full.precisions_from_factor)

    @staticmethod
    def log_det_factor(factor, n_features):
        del n_features
        return jnp.sum(jnp.log(jnp.diagonal(factor)))

    @staticmethod
    def mahalanobis(X, means, factor):
        y = (X @ factor)[:, None, :] - (means @ factor)[None]
        return jnp.sum(y * y, axis=-1)

    @staticmethod
    def second_moment(X, resp, shift):
        # The pooled within-component scatter needs each component's scatter
        # around its own mean; summing per-component moments keeps that exact.
        return _outer_moments(X, resp, shift)

    @staticmethod
    def covariances_from_moments(s2, nk, d, reg_covar):
        scatter = jnp.sum(s2 - nk[:, None, None] * d[:, :, None] * d[:, None, :], axis=0)
        cov = scatter / jnp.sum(nk)
        return cov + reg_covar * jnp.eye(cov.shape[-1], dtype=cov.dtype)

    @staticmethod
    def n_covariance_parameters(n_components, n_features):
        del n_components
        return n_features * (n_features + 1) // 2


class Diag:
    """A diagonal covariance per component, stored as ``(K, D)`` variances."""

    @staticmethod
    def factor_from_covariances(cov):
        return jax.lax.rsqrt(cov)

    @staticmethod
    def covariances_from_factor(factor):
        return 1.0 / (factor * factor)

    @staticmethod
    def precisions_from_factor(factor):
        return factor * factor

    @staticmethod
    def log_det_factor(factor, n_features):
        del n_features
        return jnp.sum(jnp.log(factor), axis=-1)

    @staticmethod
    def mahalanobis(X, means, factor):
        # Expanded into matrix products, as scikit-learn does: an (N, K, D)
        # difference array costs far more memory traffic than the three GEMMs.
        prec = factor * factor  # (K, D)
        maha = (X * X) @ prec.T - 2.0 * X @ (means * prec).T + jnp.sum(means * means * prec, axis=1)[None]
        return jnp.maximum(maha, 0.0)

    @staticmethod
    def second_moment(X, resp, shift):
        return _squared_moments(X, resp, shift)

    @staticmethod
    def covariances_from_moments(s2, nk, d, reg_covar):
        var = s2 / nk[:, None] - d * d
        return jnp.maximum(var, 0.0) + reg_covar

    @staticmethod
    def n_covariance_parameters(n_components, n_features):
        return n_components * n_features


class Spherical:
    """One variance per component, stored as ``(K,)``."""

    factor_from_covariances = staticmethod(Diag.factor_from_covariances)
    covariances_from_factor = staticmethod(Diag.covariances_from_factor)
    precisions_from_factor = staticmethod(Diag.precisions_from_factor)

    @staticmethod
    def log_det_factor(factor, n_features):
        return n_features * jnp.log(factor)

    @staticmethod
    def mahalanobis(X, means, factor):
        prec = (factor * factor)[None]  # (1, K)
        sq = jnp.sum(X * X, axis=1, keepdims=True) - 2.0 * X @ means.T + jnp.sum(means * means, axis=1)[None]
        return jnp.maximum(sq, 0.0) * prec

    @staticmethod
    def second_moment(X, resp, shift):
        return _squared_moments(X, resp, shift)

    @staticmethod
    def covariances_from_moments(s2, nk, d, reg_covar):
        return Diag.covariances_from_moments(s2, nk, d, reg_covar).mean(axis=1)

    @staticmethod
    def n_covariance_parameters(n_components, n_features):
        del n_features
        return n_components


_MODELS = {"full": Full, "tied": Tied, "diag": Diag, "spherical": Spherical}


def covariance_model(covariance_type: str):
    """The class of static methods implementing ``covariance_type``."""
    try:
        return _MODELS[covariance_type]
    except KeyError:
        raise ValueError(
            f"covariance_type must be one of {COVARIANCE_TYPES}, got {covariance_type!r}."
        ) from None


def precisions_cholesky_from_covariances(covariances, covariance_type):
    return covariance_model(covariance_type).factor_from_covariances(covariances)


def covariances_from_precisions_cholesky(precisions_cholesky, covariance_type):
    return covariance_model(covariance_type).covariances_from_factor(precisions_cholesky)


def precisions_from_precisions_cholesky(precisions_cholesky, covariance_type):
    return covariance_model(covariance_type).precisions_from_factor(precisions_cholesky)


def log_gaussian_prob(X, means, precisions_cholesky, covariance_type):
    """Log density of every sample under every component: ``(N, K)``.

    Args:
      X: ``(N, D)`` samples.
      means: ``(K, D)``.
      precisions_cholesky: the factor in ``covariance_type``'s shape.
      covariance_type: static type string.
    """
    model = covariance_model(covariance_type)
    n_features = X.shape[-1]
    maha = model.mahalanobis(X, means, precisions_cholesky)
    log_det = model.log_det_factor(precisions_cholesky, n_features)  # (K,) or () for tied
    return -0.5 * (n_features * _LOG_2PI + maha) + jnp.reshape(log_det, (1, -1))


def n_covariance_parameters(covariance_type, n_components, n_features):
    return covariance_model(covariance_type).n_covariance_parameters(n_components, n_features)
