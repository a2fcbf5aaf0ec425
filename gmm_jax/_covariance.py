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


def _noise_floor(raw_second_moment):
    return _NOISE_EPS * jnp.finfo(raw_second_moment.dtype).eps * raw_second_moment


def _drop_noise_variances(cov, raw):
    """Zeroes the rows and columns of ``cov`` (..., D, D) whose variance is below the noise of ``raw``."""
    zero = jnp.diagonal(cov, axis1=-2, axis2=-1) <= _noise_floor(jnp.diagonal(raw, axis1=-2, axis2=-1))
    return jnp.where(zero[..., :, None] | zero[..., None, :], 0.0, cov)


# ---------------------------------------------------------------------------
# The fused EM pass.
#
# One EM iteration is one pass over row chunks that computes the log-densities
# of a chunk and, from its responsibilities, the sums the M-step needs. Each
# type implements four functions with the same names:
#
#   consts = pass_constants(means, factor)          once per iteration
#   log_gauss, feats = chunk_log_prob(consts, X)    (K, B) and per-row features
#   sums = chunk_sums(consts, feats, resp)          resp (K, B); sums over rows
#   s1, s2 = moments_from_sums(consts, sums, nk, means)   around the means
#
# and two static choices for the chunked loop: pass_width(K, D), the per-row
# width of the chunk's intermediates (it sets the rows per chunk, see
# _rows.default_chunk_size), and pass_unroll(), the chunks per loop step.
#
# Log-densities and responsibilities are component-major, (K, B). The point
# is to reuse the E-step's per-row work in the M-step, with the heavy
# operations as large products over all components at once:
#
# * full: the E-step computes the whitened residuals y_nk = (x_n - mu_k) U_k
#   with one (K D, D + 1) x (D + 1, B) product (bias included). The M-step
#   needs sum_n r_nk (x_n - mu_k)(x_n - mu_k)^T = L_k sum_n r_nk y_nk (x_n -
#   mu_k)^T (L_k = U_k^-T): one (K D, B) x (B, D) product gives sum r y x^T
#   for all components, and the row sums of r y give sum r y, which both
#   removes mu_k and yields the first moments (L_k sum r y = sum r (x -
#   mu_k)). For D <= _SMALL_D the D (D + 1) / 2 distinct entries of sum r y
#   y^T come from one fused reduction instead.
#   Rounding: the data are centred by `fit`; both products round terms of
#   size |x| / sigma (sigma a component's standard deviation along some
#   direction) to results of size 1, a relative error ~eps * sqrt(kappa),
#   kappa the squared Mahalanobis distance of the data mean from the
#   component (scikit-learn computes X U - mu U the same way).
#   The correction (sum r y) mu_k^T must use the same rounded y as sum r y
#   x^T, so sum r y is summed from r y itself: taken from the first moments
#   instead (U_k^T (sum r x - nk mu_k)), the two roundings no longer cancel
#   and the error grows to ~eps * kappa, which made the covariance of a
#   narrow component 1e4 standard deviations from the data mean indefinite
#   (tests/test_float32_em.py). The raw-moment expansion E[x x^T] - mu mu^T,
#   half the FLOPs, loses ~eps * kappa too: kappa reaches 6e5 on the
#   elongated blobs of benchmark case a, where that is 0.07 against 1e-4.
# * diag/spherical: the scaled residuals (x - mu_k) * factor_k, element-wise
#   (XLA fuses the broadcast into the reductions), for the same reason.
# * tied: the centred form of the single steps.
# First moments come from the responsibilities and the data (one (K, B) x
# (B, D) product; full with D <= _SMALL_D: the same fused reduction).


# Up to this many features the full pass multiplies element-wise instead of
# calling a matrix product: products with an inner dimension of 2-4 waste
# most of a GEMM kernel, and under vmap (thousands of small fits at once)
# XLA turns them into thousands of tiny GEMM calls, where one fused
# element-wise loop over every dataset is several times faster.
_SMALL_D = 4


def _small_product(a, b):
    """``a @ b`` for a tiny inner dimension, as a sum of broadcast products (fuses into one loop)."""
    return sum(a[:, i : i + 1] * b[i : i + 1, :] for i in range(a.shape[1]))


# Up to this many features (on CPU) the full pass's norms sum_d y_d^2 over a
# (K, D, B) chunk are a pairwise sum of the D squared (K, B) rows, which XLA
# fuses into one element-wise loop; beyond it, a reduction over the middle
# axis, which XLA hands to a library kernel. Measured per EM iteration, 1e6
# rows, K = 16, 2 CPU cores, in one process: D = 8, 49 -> 40 ms; D = 16,
# 97.5 -> 90 ms; D = 32, 294 -> 312 ms (slower). A chain of adds instead of
# the pairwise sum gained a little less (D = 8: 41 ms; D = 16: 92 ms).
_PAIRWISE_NORMS_MAX_D = 16


def _pairwise_sum(terms):
    """``sum(terms)`` added in pairs (a balanced tree): independent adds, pairwise rounding."""
    terms = list(terms)
    while len(terms) > 1:
        terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i] for i in range(0, len(terms), 2)]
    return terms[0]


def _squared_norms(y):
    """``sum_d y[:, d, :] ** 2`` of a component-major ``(K, D, B)`` chunk: ``(K, B)``."""
    if y.shape[1] <= _PAIRWISE_NORMS_MAX_D and jax.default_backend() == "cpu":
        return _pairwise_sum(y[:, d] * y[:, d] for d in range(y.shape[1]))
    return jnp.sum(y * y, axis=1)


def _weighted_row_sums(weights, rows):
    """``[sum_b weights[:, b] * row[:, b] for row in rows]``: each (K,), all in one pass.

    ``weights`` is ``(K, B)``; each row ``(K, B)`` or ``(1, B)``. One variadic
    reduction, which XLA emits as a single loop over the chunk with every
    product fused into it. Separate reductions (or one over a stacked array)
    become separate kernels that each re-read the chunk: on CPU, under
    ``vmap`` over 1000 datasets of 500 rows (D = 2), 1.9 ms here against
    5.4 ms for separate sums and 25 ms for a stacked array.
    """
    zero = jnp.zeros((), weights.dtype)
    return jax.lax.reduce(
        tuple(weights * row for row in rows),
        (zero,) * len(rows),
        lambda a, b: tuple(x + y for x, y in zip(a, b)),
        (1,),
    )


def _pairs(n_features):
    """The ``D (D + 1) / 2`` index pairs ``(d, e)``, ``d <= e``, of a symmetric matrix's upper triangle."""
    return [(d, e) for d in range(n_features) for e in range(d, n_features)]


def _symmetric_from_pairs(values, n_features):
    """``(..., D (D + 1) / 2)`` upper-triangle entries (``_pairs`` order) as symmetric ``(..., D, D)``."""
    index = np.zeros((n_features, n_features), np.int32)
    for i, (d, e) in enumerate(_pairs(n_features)):
        index[d, e] = index[e, d] = i
    return values[..., index]


def _covariance_cholesky(factor):
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
        raw = s2 / nk[:, None, None]
        cov = _drop_noise_variances(raw - d[:, :, None] * d[:, None, :], raw)
        return cov + reg_covar * jnp.eye(cov.shape[-1], dtype=cov.dtype)[None]

    @staticmethod
    def diagonal(a):
        """Per-feature entries of a covariance-shaped or factor-shaped array: (K, D)."""
        return jnp.diagonal(a, axis1=-2, axis2=-1)

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

    # --- fused EM pass (see above): whitened residuals

    @staticmethod
    def pass_width(n_components, n_features):
        # Two (K, D, B) arrays live per chunk: the residuals y and r * y.
        # Counting both halves the rows per chunk, which keeps them nearer
        # the cache: measured 6-9% faster on 2 cores for (K, D) = (8, 8),
        # (16, 16) and (8, 32) with 1e6 rows (e.g. 2048 vs 4096 rows).
        return 2 * n_components * n_features

    @staticmethod
    def pass_unroll():
        # Chunks per loop step. A chunk's steps run one after another (the
        # products, the norms, the logsumexp, r * y), and on CPU the small
        # ones leave a core idle; with independent chunks in one step XLA's
        # CPU runtime overlaps them. Measured on 2 cores, 1e6 rows, (K, D) =
        # (16, 16), EM iterations inside `fit`: 2, 3, 4, 6 and 8 chunks per
        # step took about 107, 98, 87, 94 and 100 ms. (Diag's pass, already
        # using both cores, got slower: see Diag.pass_unroll.) A GPU runs a
        # program's kernels in order, so there it would only grow the program.
        return 4 if jax.default_backend() == "cpu" else 1

    @staticmethod
    def pass_constants(means, factor):
        n_components, n_features = means.shape
        # Rows U_k^T with a last column -mu_k U_k: applied to [x, 1] they give
        # (x - mu_k) U_k for every component in one product, bias included.
        rows = jnp.concatenate(
            [jnp.swapaxes(factor, -1, -2), -jnp.einsum("kd,kde->ke", means, factor)[:, :, None]], axis=2
        )
        return dict(
            rows=rows.reshape(n_components * n_features, n_features + 1),  # (K D, D + 1)
            log_det=Full.log_det_factor(factor, n_features),  # (K,)
            cov_chol=_covariance_cholesky(factor),  # (K, D, D)
            factor=factor,  # (K, D, D)
        )

    @staticmethod
    def chunk_log_prob(consts, X):
        n_rows, n_features = X.shape
        n_components = consts["log_det"].shape[0]
        # The chunk transposed, with a row of ones for the bias: (D + 1, B).
        # Built once (centring included) and shared with chunk_sums. The
        # plain (K D, D + 1) x (D + 1, B) product is faster on CPU than the
        # same product contracting the chunk's rows in place (measured 31 vs
        # 44 ms of the 1e6-row pass of benchmark case a), which repays the
        # small transposed copy several times over.
        x1t = jnp.concatenate([X.T, jnp.ones((1, n_rows), X.dtype)], axis=0)
        # Component-major (K, D, B): rows of the chunk along the fast axis, so
        # the norms and the products below read memory in order.
        if n_features <= _SMALL_D:
            # One (K, B) array per feature: the products and the norm stay
            # element-wise loops that XLA fuses, rather than a reduction over
            # a short middle axis (-10% for a vmapped EM iteration, D = 2).
            rows = consts["rows"].reshape(n_components, n_features, n_features + 1)
            ys = [_small_product(rows[:, d], x1t) for d in range(n_features)]
            maha = sum(yd * yd for yd in ys)  # (K, B)
            y = jnp.stack(ys, axis=1)
        else:
            y = (consts["rows"] @ x1t).reshape(n_components, n_features, n_rows)
            maha = _squared_norms(y)  # (K, B)
        return -0.5 * (n_features * _LOG_2PI + maha) + consts["log_det"][:, None], (x1t, y)

    @staticmethod
    def chunk_sums(consts, feats, resp):
        del consts
        x1t, y = feats
        n_features = y.shape[1]
        if n_features <= _SMALL_D:
            # First moments and the D (D + 1) / 2 distinct second moments,
            # sum_n r_nk x_nd and sum_n r_nk y_nkd y_nke (d <= e), in one pass
            # over the chunk; moments_from_sums restores the symmetric matrix.
            rows = [x1t[d : d + 1] for d in range(n_features)] + [y[:, d] * y[:, e] for d, e in _pairs(n_features)]
            sums = _weighted_row_sums(resp, rows)
            return dict(x=jnp.stack(sums[:n_features], axis=1), yy=jnp.stack(sums[n_features:], axis=1))
        # One (K D, B) x (B, D) product for all components: no batch axis,
        # and D output columns rather than D + 1, which for D = 16 fill a
        # CPU kernel's vector lanes exactly. (Thread time per EM iteration
        # of benchmark case a on 2 cores: the batched sum r y y^T 62 ms, a
        # (K D, B) x (B, D + 1) product with the bias column 55-59 ms, this
        # product 35-42 ms plus 11-13 ms for the row sums.)
        n_components, _, n_rows = y.shape
        ry = (resp[:, None, :] * y).reshape(n_components * n_features, n_rows)
        yx = jax.lax.dot_general(ry, x1t[:-1], (((1,), (1,)), ((), ())))
        return dict(
            y=jnp.sum(ry, axis=1).reshape(n_components, n_features),  # sum_n r_nk y_nk
            yx=yx.reshape(n_components, n_features, n_features),  # sum_n r_nk y_nk x_n^T
        )

    @staticmethod
    def moments_from_sums(consts, sums, nk, means):
        L = consts["cov_chol"]  # x - mu_k = L_k y (column vectors)
        if means.shape[-1] <= _SMALL_D:  # upper-triangle entries only (see chunk_sums)
            s1 = sums["x"] - nk[:, None] * means
            yy = _symmetric_from_pairs(sums["yy"], means.shape[-1])
        else:
            ry_sum = sums["y"]  # (K, D) sum_n r_nk y_nk
            s1 = jnp.einsum("kde,ke->kd", L, ry_sum)  # sum_n r_nk (x_n - mu_k)
            # sum r y (x - mu)^T U = sum r y y^T, symmetric up to rounding.
            yy = (sums["yx"] - ry_sum[:, :, None] * means[:, None, :]) @ consts["factor"]
            yy = 0.5 * (yy + jnp.swapaxes(yy, -1, -2))
        return s1, L @ yy @ jnp.swapaxes(L, -1, -2)


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
        total = jnp.sum(nk)
        scatter = jnp.sum(s2 - nk[:, None, None] * d[:, :, None] * d[:, None, :], axis=0)
        cov = _drop_noise_variances(scatter / total, jnp.sum(s2, axis=0) / total)
        return cov + reg_covar * jnp.eye(cov.shape[-1], dtype=cov.dtype)

    @staticmethod
    def n_covariance_parameters(n_components, n_features):
        del n_components
        return n_features * (n_features + 1) // 2

    # --- fused EM pass: the centred form (differences around each mean)

    @staticmethod
    def pass_width(n_components, n_features):
        return n_components * n_features  # the (B, K, D) differences

    @staticmethod
    def unit_factor(n_components, n_features, dtype):
        del n_components
        return jnp.eye(n_features, dtype=dtype)

    @staticmethod
    def pass_unroll():
        return 1

    @staticmethod
    def pass_constants(means, factor):
        return dict(means=means, factor=factor, log_det=Tied.log_det_factor(factor, means.shape[-1]))

    @staticmethod
    def chunk_log_prob(consts, X):
        maha = Tied.mahalanobis(X, consts["means"], consts["factor"])
        return (-0.5 * (X.shape[-1] * _LOG_2PI + maha) + consts["log_det"]).T, X

    @staticmethod
    def chunk_sums(consts, X, resp):
        means = consts["means"]
        return dict(s1=_weighted_cross(X, resp.T, means), s2=_outer_moments(X, resp.T, means))

    @staticmethod
    def moments_from_sums(consts, sums, nk, means):
        del consts, nk, means
        return sums["s1"], sums["s2"]


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
    def mahalanobis(X, means, factor):
        # Explicit differences, not scikit-learn's expansion into matrix
        # products: the expansion cancels catastrophically in float32 when a
        # narrow component sits far from the data mean. XLA fuses the
        # broadcast into the reduction (no (N, K, D) array is stored).
        y = (X[:, None, :] - means[None, :, :]) * factor[None, :, :]
        return jnp.sum(y * y, axis=-1)

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

    # --- fused EM pass: scaled residuals, as Full but element-wise

    @staticmethod
    def pass_width(n_components, n_features):
        # The (K, B, D) residuals stream through fused element-wise loops with
        # no matrix product to feed: measured fastest with ~4x the rows per
        # chunk of the full pass (1024 vs 256 rows for K = D = 64 on 2 cores).
        return max(1, n_components * n_features // 4)

    @staticmethod
    def pass_unroll():
        # One chunk per loop step: the element-wise pass already keeps both
        # cores busy, and two chunks at once measured slower (91 -> 120 ms
        # for 1e6 rows, K = D = 16, on 2 cores).
        return 1

    @staticmethod
    def unit_factor(n_components, n_features, dtype):
        return jnp.ones((n_components, n_features), dtype)

    @staticmethod
    def pass_constants(means, factor):
        n_features = means.shape[-1]
        return dict(means=means, factor=factor, log_det=Diag.log_det_factor(factor, n_features))

    @staticmethod
    def chunk_log_prob(consts, X):
        # Explicit differences, not the expansion x^2 P - 2 x P mu + mu^2 P,
        # which cancels catastrophically in float32 for a narrow component far
        # from the data mean (see mahalanobis). (K, B, D): the rows of X are
        # read contiguously, features along the fast axis.
        y = (X[None, :, :] - consts["means"][:, None, :]) * consts["factor"][:, None, :]
        maha = jnp.sum(y * y, axis=2)  # (K, B)
        return -0.5 * (X.shape[-1] * _LOG_2PI + maha) + consts["log_det"][:, None], (X, y)

    @staticmethod
    def chunk_sums(consts, feats, resp):
        del consts
        X, y = feats
        # First moments by one (K, B) x (B, D) product; second moments of the
        # scaled residuals, sum_n r_nk y_nkd^2, mapped back by 1 / factor^2.
        return dict(x=resp @ X, yy=jnp.einsum("kb,kbd->kd", resp, y * y))

    @staticmethod
    def moments_from_sums(consts, sums, nk, means):
        factor = consts["factor"]
        return sums["x"] - nk[:, None] * means, sums["yy"] / (factor * factor)


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
    def mahalanobis(X, means, factor):
        # Explicit differences for float32 accuracy, as in Diag.mahalanobis.
        diff = X[:, None, :] - means[None, :, :]
        return jnp.sum(diff * diff, axis=-1) * (factor * factor)[None, :]

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

    # --- fused EM pass: Diag's, with one variance per component

    pass_width = staticmethod(Diag.pass_width)
    pass_unroll = staticmethod(Diag.pass_unroll)

    @staticmethod
    def unit_factor(n_components, n_features, dtype):
        del n_features
        return jnp.ones((n_components,), dtype)

    @staticmethod
    def pass_constants(means, factor):
        return Diag.pass_constants(means, jnp.broadcast_to(factor[:, None], means.shape))

    chunk_log_prob = staticmethod(Diag.chunk_log_prob)
    chunk_sums = staticmethod(Diag.chunk_sums)
    moments_from_sums = staticmethod(Diag.moments_from_sums)


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


def select_features(covariances, covariance_type, idx):
    """Covariances of the marginal over features ``idx`` (``(d,)`` ints), same type and layout."""
    return covariance_model(covariance_type).select_features(covariances, idx)


def dense_covariances(covariances, covariance_type, n_components, n_features):
    """Covariances of any type as full matrices: ``(K, D, D)``."""
    return covariance_model(covariance_type).dense(covariances, n_components, n_features)


def n_covariance_parameters(covariance_type, n_components, n_features):
    return covariance_model(covariance_type).n_covariance_parameters(n_components, n_features)
