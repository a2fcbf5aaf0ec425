"""Everything that depends on the covariance type: conversions, shapes, the reference math.

Each covariance type is a class of static methods with the same names; the
rest of the package picks one with ``covariance_model(covariance_type)`` and
never branches on the type string itself. The fast EM pass of each type lives
in ``_pass.py``; the plain math here (``whiten``, ``second_moment``,
:func:`log_gaussian_prob`) is its documented definition and the test oracle
(``tests/test_covariance.py``).

Conventions (scikit-learn's): ``K`` components, ``D`` features. The stored
form is the Cholesky factor ``U`` of the precision (``precision = U @ U.T``,
``U`` upper-triangular), so the squared Mahalanobis distance of ``x`` from
``mu`` is ``|(x - mu) @ U|^2`` and ``log det(precision)^(1/2) = sum log diag U``.

The M-step works from *sufficient statistics accumulated around a shift*
(usually the current means): ``nk = sum_n r_nk``, ``s1_k = sum_n r_nk (x_n -
shift_k)`` and a second moment ``s2`` whose shape depends on the type. The new
mean is ``shift + s1 / nk`` and the covariance is ``s2 / nk - d d^T`` with
``d = s1 / nk`` (``covariances_from_moments``). Accumulating around the current
means rather than the origin keeps float32 accurate (no ``E[x x^T] - mu mu^T``
cancellation), and lets a single pass over the data (chunked, sharded or
streamed) produce everything the M-step needs.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
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


def outer_moments(X, resp, shift):
    """``sum_n resp_nk (x_n - shift_k)(x_n - shift_k)^T`` for all k: (K, D, D).

    One batched matrix product over components; the ``(N, K, D)`` difference
    array is bounded by the caller's chunk size.
    """
    diff = X[:, None, :] - shift[None, :, :]  # (N, K, D)
    return jnp.einsum("nkd,nke->kde", resp[:, :, None] * diff, diff)


def weighted_cross(X, resp, shift):
    """``s1_k = sum_n resp_nk (x_n - shift_k)``: (K, D), as one matrix product."""
    return resp.T @ X - resp.sum(0)[:, None] * shift


def _squared_moments(X, resp, shift):
    """``sum_n resp_nk (x_n - shift_k)**2`` per feature: (K, D).

    From explicit differences, not the expansion ``r^T X^2 - 2 shift r^T X +
    nk shift^2``: the expansion loses ``eps * |x|^2 / var`` to cancellation,
    which in float32 wipes out the variance of a narrow component that sits
    far from the data mean (clusters 1e4 standard deviations apart). XLA fuses
    the broadcast into the reduction, so no ``(N, K, D)`` array is stored.
    """
    diff = X[:, None, :] - shift[None, :, :]  # (N, K, D)
    return jnp.sum(resp[:, :, None] * (diff * diff), axis=0)


# A variance computed as ``E[(x - s)^2] - (E[x] - s)^2`` carries a rounding
# error of a few ``eps * E[(x - s)^2]``. A result below this floor is rounding
# noise (identical points, a constant feature, a component on one distinct
# point): it is set to exactly zero, so ``reg_covar`` alone decides the
# variance, and with ``reg_covar=0`` the factorisation fails loudly (status 1)
# instead of returning a finite precision of 1e15 made of noise.
_NOISE_EPS = 16


def matrix_diagonal(a):
    """``(..., D)`` diagonals of ``(..., D, D)`` matrices, as ``jnp.diagonal(a, axis1=-2, axis2=-1)``.

    A masked sum: ``jnp.diagonal`` is a gather, a kernel of its own that adds
    compile time wherever it appears (benchmarks/README.md, "Compile time");
    the sum fuses with its neighbours. Off-diagonal infinities and NaN do not
    leak into it.
    """
    eye = jnp.eye(a.shape[-1], dtype=bool)
    return jnp.sum(jnp.where(eye, a, jnp.zeros((), a.dtype)), axis=-1)


def _noise_floor(raw_second_moment):
    return _NOISE_EPS * jnp.finfo(raw_second_moment.dtype).eps * raw_second_moment


def _drop_noise_variances(cov, raw):
    """Zeroes the rows and columns of ``cov`` (..., D, D) whose variance is below the noise of ``raw``."""
    zero = matrix_diagonal(cov) <= _noise_floor(matrix_diagonal(raw))
    return jnp.where(zero[..., :, None] | zero[..., None, :], 0.0, cov)


def covariance_cholesky(factor):
    """``L = U^-T`` (lower), with ``L L^T`` the covariance: maps whitened moments back."""
    eye = _eye_like(factor.shape[-1], factor.shape[:-2], factor.dtype)
    return solve_triangular(jnp.swapaxes(factor, -1, -2), eye, lower=True)


class Full:
    """A full ``(D, D)`` covariance per component. Factor shape ``(K, D, D)``."""

    @staticmethod
    def select_features(cov, idx):
        return cov[:, idx[:, None], idx[None, :]]

    @staticmethod
    def dense(cov, n_components, n_features):
        del n_components, n_features
        return cov

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
        return jnp.sum(jnp.log(matrix_diagonal(factor)), axis=-1)

    @staticmethod
    def whiten(X, means, factor):
        # (x - mu_k) @ U_k written as X @ U_k - mu_k @ U_k: one large matrix
        # product over all components instead of K small ones. The data are
        # centred by `fit`, so the subtraction does not cancel badly.
        return jnp.einsum("nd,kde->nke", X, factor) - jnp.einsum("kd,kde->ke", means, factor)[None]

    @staticmethod
    def second_moment(X, resp, shift):
        return outer_moments(X, resp, shift)

    @staticmethod
    def covariances_from_moments(s2, nk, d, reg_covar):
        raw = s2 / nk[:, None, None]
        cov = _drop_noise_variances(raw - d[:, :, None] * d[:, None, :], raw)
        return cov + reg_covar * jnp.eye(cov.shape[-1], dtype=cov.dtype)[None]

    @staticmethod
    def diagonal(a):
        """Per-feature entries of a covariance-shaped or factor-shaped array: (K, D)."""
        return matrix_diagonal(a)

    @staticmethod
    def mark_singular(factor, singular):
        """Sets to ``inf`` (zero variance) the factors with a ``singular`` (K, D) pivot."""
        return jnp.where(jnp.any(singular, axis=-1)[..., None, None], jnp.inf, factor)

    @staticmethod
    def n_covariance_parameters(n_components, n_features):
        return n_components * n_features * (n_features + 1) // 2

    @staticmethod
    def unit_factor(n_components, n_features, dtype):
        """The factor of identity covariances (the fused pass then sums plain moments)."""
        return _eye_like(n_features, (n_components,), dtype)


class Tied:
    """One full ``(D, D)`` covariance shared by all components. Factor ``(D, D)``."""

    @staticmethod
    def select_features(cov, idx):
        return cov[idx[:, None], idx[None, :]]

    @staticmethod
    def dense(cov, n_components, n_features):
        return jnp.broadcast_to(cov, (n_components, n_features, n_features))

    factor_from_covariances = staticmethod(_factor_from_matrix)
    covariances_from_factor = staticmethod(_matrix_from_factor)
    precisions_from_factor = staticmethod(Full.precisions_from_factor)
    diagonal = staticmethod(Full.diagonal)
    mark_singular = staticmethod(Full.mark_singular)

    @staticmethod
    def log_det_factor(factor, n_features):
        del n_features
        return jnp.sum(jnp.log(matrix_diagonal(factor)))

    @staticmethod
    def whiten(X, means, factor):
        return (X @ factor)[:, None, :] - (means @ factor)[None]

    @staticmethod
    def second_moment(X, resp, shift):
        # The pooled within-component scatter needs each component's scatter
        # around its own mean; summing per-component moments keeps that exact.
        return outer_moments(X, resp, shift)

    @staticmethod
    def covariances_from_moments(s2, nk, d, reg_covar):
        total = jnp.sum(nk)
        scatter = jnp.sum(s2 - nk[:, None, None] * d[:, :, None] * d[:, None, :], axis=0)
        cov = _drop_noise_variances(scatter / total, jnp.sum(s2, axis=0) / total)
        return cov + reg_covar * jnp.eye(cov.shape[-1], dtype=cov.dtype)

    @staticmethod
    def n_covariance_parameters(n_components, n_features):
        del n_components
        return n_features * (n_features + 1) // 2

    @staticmethod
    def unit_factor(n_components, n_features, dtype):
        del n_components
        return jnp.eye(n_features, dtype=dtype)

class Diag:
    """A diagonal covariance per component, stored as ``(K, D)`` variances."""

    @staticmethod
    def select_features(cov, idx):
        return cov[:, idx]

    @staticmethod
    def dense(cov, n_components, n_features):
        del n_components
        return cov[:, :, None] * jnp.eye(n_features, dtype=cov.dtype)[None]

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
    def whiten(X, means, factor):
        # Explicit differences, not scikit-learn's expansion into matrix
        # products: the expansion cancels catastrophically in float32 when a
        # narrow component sits far from the data mean. XLA fuses the
        # broadcast into the reduction (no (N, K, D) array is stored).
        return (X[:, None, :] - means[None, :, :]) * factor[None, :, :]

    @staticmethod
    def second_moment(X, resp, shift):
        return _squared_moments(X, resp, shift)

    @staticmethod
    def covariances_from_moments(s2, nk, d, reg_covar):
        raw = s2 / nk[:, None]
        var = raw - d * d
        return jnp.where(var <= _noise_floor(raw), 0.0, var) + reg_covar

    @staticmethod
    def diagonal(a):
        return a

    @staticmethod
    def mark_singular(factor, singular):
        return jnp.where(singular, jnp.inf, factor)

    @staticmethod
    def n_covariance_parameters(n_components, n_features):
        return n_components * n_features

    @staticmethod
    def unit_factor(n_components, n_features, dtype):
        return jnp.ones((n_components, n_features), dtype)

class Spherical:
    """One variance per component, stored as ``(K,)``."""

    @staticmethod
    def select_features(cov, idx):
        del idx  # one variance per component, whatever the features
        return cov

    @staticmethod
    def dense(cov, n_components, n_features):
        del n_components
        return cov[:, None, None] * jnp.eye(n_features, dtype=cov.dtype)[None]

    factor_from_covariances = staticmethod(Diag.factor_from_covariances)
    covariances_from_factor = staticmethod(Diag.covariances_from_factor)
    precisions_from_factor = staticmethod(Diag.precisions_from_factor)
    diagonal = staticmethod(Diag.diagonal)
    mark_singular = staticmethod(Diag.mark_singular)

    @staticmethod
    def log_det_factor(factor, n_features):
        return n_features * jnp.log(factor)

    @staticmethod
    def whiten(X, means, factor):
        # Explicit differences for float32 accuracy, as in Diag.whiten.
        return (X[:, None, :] - means[None, :, :]) * factor[None, :, None]

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

    @staticmethod
    def unit_factor(n_components, n_features, dtype):
        del n_features
        return jnp.ones((n_components,), dtype)



_MODELS = {"full": Full, "tied": Tied, "diag": Diag, "spherical": Spherical}


def expected_factor_shape(covariance_type, n_components, n_features):
    """Shape of the precision factor (and of the covariances) of ``covariance_type``."""
    return {
        "full": (n_components, n_features, n_features),
        "tied": (n_features, n_features),
        "diag": (n_components, n_features),
        "spherical": (n_components,),
    }[covariance_type]


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


def precisions_cholesky_from_precisions(precisions, covariance_type):
    """scikit-learn's factor ``U`` (upper-triangular, ``precision = U @ U.T``) from precisions.

    For ``full``/``tied`` one Cholesky of the precision with its rows and
    columns reversed: with ``J`` the reversal, ``J P J = L L^T`` gives
    ``P = (J L J)(J L J)^T`` and ``J L J`` is upper-triangular. No inverse is
    taken, so nothing is lost to the precision's condition number twice.
    """
    covariance_model(covariance_type)
    if covariance_type in ("full", "tied"):
        flipped = precisions[..., ::-1, ::-1]
        return jnp.linalg.cholesky(flipped)[..., ::-1, ::-1]
    return jnp.sqrt(precisions)


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
    y = model.whiten(X, means, precisions_cholesky)  # (N, K, D)
    maha = jnp.sum(y * y, axis=-1)
    log_det = model.log_det_factor(precisions_cholesky, n_features)  # (K,) or () for tied
    return -0.5 * (n_features * _LOG_2PI + maha) + jnp.reshape(log_det, (1, -1))


def nearest_component(X, means, precisions_cholesky, covariance_type):
    """The component nearest to each sample in Mahalanobis distance: ``(N,)`` int32.

    Safe where the squared distances overflow (a sample at 1e20 in float32):
    each row's whitened differences are divided by their largest magnitude
    before squaring, which leaves the order of the distances unchanged. It
    decides where every component's density underflows to zero, and there
    the log-determinants and weights no longer matter.
    """
    z = unit_scaled(covariance_model(covariance_type).whiten(X, means, precisions_cholesky), (1, 2))  # (N, K, D)
    return jnp.argmin(jnp.sum(z * z, axis=-1), axis=1).astype(jnp.int32)


def unit_scaled(y, axes):
    """``y`` divided, per sample, by its largest finite magnitude over ``axes``.

    The order of quadratic forms in ``y`` survives where their values would
    overflow (a sample at 1e20 in float32).
    """
    scale = jnp.max(jnp.abs(y), axis=axes, keepdims=True)
    return y / jax.lax.stop_gradient(jnp.where((scale > 0) & jnp.isfinite(scale), scale, 1.0))


def select_features(covariances, covariance_type, idx):
    """Covariances of the marginal over features ``idx`` (``(d,)`` ints), same type and layout."""
    return covariance_model(covariance_type).select_features(covariances, idx)


def dense_covariances(covariances, covariance_type, n_components, n_features):
    """Covariances of any type as full matrices: ``(K, D, D)``."""
    return covariance_model(covariance_type).dense(covariances, n_components, n_features)


def n_covariance_parameters(covariance_type, n_components, n_features):
    return covariance_model(covariance_type).n_covariance_parameters(n_components, n_features)
