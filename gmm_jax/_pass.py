"""The fused EM pass: one implementation per covariance type behind one interface.

One EM iteration, and every scoring function, is a pass over row chunks. For
each chunk the pass computes the component log-densities and, from the
responsibilities, the sums the M-step needs. Each covariance type implements
:class:`CovariancePass`:

    consts = p.constants(means, factor)            once per pass
    log_gauss, feats = p.log_densities(consts, X)  (K, B) and per-row features
    sums = p.sums(consts, feats, resp)             resp (K, B); sums over rows
    s1, s2 = p.moments(consts, sums, nk, means)    first/second moments around the means

with named ``NamedTuple`` s for the constants, features and sums of each type.
Everything is component-major, ``(K, B)``: the point is to reuse the
E-step's per-row work in the M-step, with the heavy operations as large
products over all components at once.

* full: the E-step computes the whitened residuals ``y_nk = (x_n - mu_k) U_k``
  with one ``(K D, D + 1) x (D + 1, B)`` product (bias included). The M-step
  needs ``sum_n r_nk (x_n - mu_k)(x_n - mu_k)^T = L_k sum_n r_nk y_nk (x_n -
  mu_k)^T`` (``L_k = U_k^-T``): one ``(K D, B) x (B, D)`` product gives ``sum r
  y x^T`` for all components, and the row sums of ``r y`` give ``sum r y``,
  which both removes ``mu_k`` and yields the first moments. For ``D <=
  tuning.small_d`` the ``D (D + 1) / 2`` distinct entries of ``sum r y y^T``
  come from one fused reduction instead.
  Rounding: the data are centred by the driver; both products round terms of
  size ``|x| / sigma`` to results of size 1, a relative error ``~eps *
  sqrt(kappa)`` (``kappa`` the squared Mahalanobis distance of the data mean
  from the component). The correction ``(sum r y) mu_k^T`` must use the same
  rounded ``y`` as ``sum r y x^T``, so ``sum r y`` is summed from ``r y``
  itself: taken from the first moments instead, the two roundings no longer
  cancel and the error grows to ``~eps * kappa`` (tests/test_float32_em.py).
* diag/spherical: the expansion ``x^2 P - 2 x P mu + mu^2 P`` as matrix
  products, for the components where its rounding is within a budget, and the
  explicit scaled residuals ``(x - mu_k) * factor_k`` for the others (the
  expansion cancels in float32 for a narrow component far from the data
  mean); see :class:`DiagPass`.
* tied: in the shared whitened coordinates ``z = x U``, the distances
  ``|z|^2 - 2 z . m_k + |m_k|^2`` and the pooled scatter from ``sum x x^T``
  and the first moments, as matrix products, for the components within the
  diag pass's rounding budget, and explicit residuals for the others; for
  small D or small passes, the full pass with the factor repeated. See
  :class:`TiedPass`.

The plain definitions (``_covariance.log_gaussian_prob`` and the models'
``second_moment``) are the reference: ``tests/test_covariance.py`` checks
this pass against them for every type, width and chunking.

Around the per-type pass, this module holds the generic chunk step (log-sum-
exp, responsibilities, sums) and the passes built from it:
:func:`accumulate_statistics` (an E-step over all rows, chunked, sharded or
per streamed batch), :func:`statistics_from_responsibilities` (the sums for
given responsibilities) and :func:`map_scores` (per-row outputs for the
scoring functions).
"""

from __future__ import annotations

import math
from typing import NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from gmm_jax import _covariance, _precision, _rows
from gmm_jax._tuning import Tuning

__all__ = [
    "CovariancePass",
    "SufficientStatistics",
    "pass_for",
    "chunk_rows",
    "accumulate_statistics",
    "statistics_from_responsibilities",
    "map_scores",
]

_LOG_2PI = math.log(2.0 * math.pi)


class SufficientStatistics(NamedTuple):
    """Weighted sums over samples that determine one M-step.

    All moments are taken around ``shift`` (``(K, D)``, the current means), which
    keeps float32 accurate (see ``_covariance``).
    """

    log_likelihood: jax.Array  # () sum_n w_n log p(x_n | params)
    weight_sum: jax.Array  # () sum_n w_n
    nk: jax.Array  # (K,) sum_n w_n r_nk
    s1: jax.Array  # (K, D) sum_n w_n r_nk (x_n - shift_k)
    # full/tied (K, D, D), diag/spherical (K, D): second moments around shift. Tied
    # M-steps read only their sum over components, and the tied pass may keep
    # the whole sum in component 0 (TiedPass).
    s2: jax.Array


class CovariancePass(Protocol):
    """The per-covariance-type fast pass (see the module docstring)."""

    def width(self, n_components: int, n_features: int) -> int:
        """Per-row width of the chunk's largest intermediate (sets the rows per chunk)."""

    def unroll(self) -> int:
        """Chunks per loop step."""

    def constants(self, means, factor) -> NamedTuple:
        """Per-pass constants from ``means (K, D)`` and the precision factor."""

    def log_densities(self, consts, X) -> tuple[jax.Array, NamedTuple]:
        """``(log N(x_b | k) (K, B), per-row features)`` of a centred chunk ``X (B, D)``."""

    def sums(self, consts, feats, resp) -> NamedTuple:
        """Sums over the chunk's rows for responsibilities ``resp (K, B)``."""

    def moments(self, consts, sums, nk, means) -> tuple[jax.Array, jax.Array]:
        """``(s1 (K, D), s2)`` around ``means`` from the summed ``sums``."""


# ---------------------------------------------------------------------------
# Small building blocks.


def _pairwise_sum(terms):
    """``sum(terms)`` added in pairs (a balanced tree): independent adds, pairwise rounding."""
    terms = list(terms)
    while len(terms) > 1:
        terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i] for i in range(0, len(terms), 2)]
    return terms[0]


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


# ---------------------------------------------------------------------------
# Full: whitened residuals.


class FullConstants(NamedTuple):
    rows: jax.Array  # (K D, D + 1) rows U_k^T with a last column -mu_k U_k
    log_det: jax.Array  # (K,) sum log diag U_k
    cov_chol: jax.Array  # (K, D, D) L_k = U_k^-T, L_k L_k^T = Sigma_k
    factor: jax.Array  # (K, D, D) U_k
    means: jax.Array  # (K, D) mu_k


class FullFeatures(NamedTuple):
    x1t: jax.Array  # (D + 1, B) the chunk transposed, with a row of ones
    y: jax.Array  # (K, D, B) whitened residuals (x_b - mu_k) U_k


class FullSums(NamedTuple):
    """Sums of the full pass for ``D > small_d``."""

    ry: jax.Array  # (K, D) sum_b r_kb y_kb
    ryx: jax.Array  # (K, D, D) sum_b r_kb y_kb x_b^T


class FullSmallSums(NamedTuple):
    """Sums of the full pass for ``D <= small_d`` (element-wise path)."""

    rx: jax.Array  # (K, D) sum_b r_kb x_b
    ryy: jax.Array  # (K, D (D + 1) / 2) sum_b r_kb y_kbd y_kbe, d <= e


class FullPass:
    """Full covariances: whitened residuals from one matrix product (see the module docstring)."""

    def __init__(self, tuning: Tuning):
        self.tuning = tuning

    def width(self, n_components, n_features):
        # Two (K, D, B) arrays live per chunk: the residuals y and r * y.
        # Counting both halves the rows per chunk, which keeps them nearer
        # the cache: measured 6-9% faster on 2 cores (benchmarks/README.md).
        return 2 * n_components * n_features

    def unroll(self):
        return self.tuning.full_unroll

    def constants(self, means, factor):
        n_components, n_features = means.shape
        # Applied to [x, 1], the rows give (x - mu_k) U_k for every component in one product.
        rows = jnp.concatenate(
            [jnp.swapaxes(factor, -1, -2), -jnp.einsum("kd,kde->ke", means, factor)[:, :, None]], axis=2
        )
        return FullConstants(
            rows=rows.reshape(n_components * n_features, n_features + 1),
            log_det=_covariance.Full.log_det_factor(factor, n_features),
            cov_chol=_covariance.covariance_cholesky(factor),
            factor=factor,
            means=means,
        )

    def _squared_norms(self, y):
        """``sum_d y[:, d, :] ** 2`` of a ``(K, D, B)`` chunk: ``(K, B)``."""
        if y.shape[1] <= self.tuning.pairwise_norms_max_d:
            return _pairwise_sum(y[:, d] * y[:, d] for d in range(y.shape[1]))
        return jnp.sum(y * y, axis=1)

    def log_densities(self, consts, X):
        n_rows, n_features = X.shape
        n_components = consts.log_det.shape[0]
        # The chunk transposed, with a row of ones for the bias: (D + 1, B),
        # shared with sums(). The plain (K D, D + 1) x (D + 1, B) product is
        # faster on CPU than contracting the chunk's rows in place (31 vs
        # 44 ms of benchmark case a's pass), which repays the small copy.
        x1t = jnp.concatenate([X.T, jnp.ones((1, n_rows), X.dtype)], axis=0)
        if n_features <= self.tuning.small_d:
            # One (K, B) array per feature: products and norm stay fused
            # element-wise loops (-10% for a vmapped EM iteration, D = 2).
            # Explicit differences (x - mu_k) U_k: exact for a row on its
            # component's mean however far both lie from the origin, where
            # the product form x U_k - mu_k U_k keeps only rounding (an
            # outlier at 1e30 with a component of its own).
            diffs = [x1t[e][None, :] - consts.means[:, e][:, None] for e in range(n_features)]
            ys = [sum(diffs[e] * consts.factor[:, e, d][:, None] for e in range(n_features)) for d in range(n_features)]
            maha = sum(yd * yd for yd in ys)
            y = jnp.stack(ys, axis=1)
        else:
            y = (consts.rows @ x1t).reshape(n_components, n_features, n_rows)
            maha = self._squared_norms(y)
        log_gauss = -0.5 * (n_features * _LOG_2PI + maha) + consts.log_det[:, None]
        return log_gauss, FullFeatures(x1t, y)

    def sums(self, consts, feats, resp):
        del consts
        x1t, y = feats
        n_components, n_features, n_rows = y.shape
        if n_features <= self.tuning.small_d:
            # First moments and the distinct second moments in one pass over the chunk.
            rows = [x1t[d : d + 1] for d in range(n_features)] + [y[:, d] * y[:, e] for d, e in _pairs(n_features)]
            sums = _weighted_row_sums(resp, rows)
            return FullSmallSums(rx=jnp.stack(sums[:n_features], axis=1), ryy=jnp.stack(sums[n_features:], axis=1))
        # One (K D, B) x (B, D) product for all components: no batch axis, and
        # D output columns, which for D = 16 fill a CPU kernel's vector lanes.
        ry = (resp[:, None, :] * y).reshape(n_components * n_features, n_rows)
        ryx = jax.lax.dot_general(ry, x1t[:-1], (((1,), (1,)), ((), ())))
        return FullSums(
            ry=jnp.sum(ry, axis=1).reshape(n_components, n_features),
            ryx=ryx.reshape(n_components, n_features, n_features),
        )

    def moments(self, consts, sums, nk, means):
        L = consts.cov_chol  # x - mu_k = L_k y (column vectors)
        if isinstance(sums, FullSmallSums):
            s1 = sums.rx - nk[:, None] * means
            yy = _symmetric_from_pairs(sums.ryy, means.shape[-1])
        else:
            s1 = jnp.einsum("kde,ke->kd", L, sums.ry)  # sum_n r_nk (x_n - mu_k)
            # sum r y (x - mu)^T U = sum r y y^T, symmetric up to rounding.
            yy = (sums.ryx - sums.ry[:, :, None] * means[:, None, :]) @ consts.factor
            yy = 0.5 * (yy + jnp.swapaxes(yy, -1, -2))
        return s1, L @ yy @ jnp.swapaxes(L, -1, -2)


# ---------------------------------------------------------------------------
# Tied: matrix products in the shared whitened coordinates where their
# rounding is known to be small, the full pass's residuals elsewhere.


class TiedConstants(NamedTuple):
    full: FullConstants  # the full pass's constants, the factor repeated (explicit form)
    means: jax.Array  # (K, D) mu_k
    factor: jax.Array  # (D, D) U, the shared precision factor
    whitened_means: jax.Array  # (K, D) m_k = mu_k U
    kappa: jax.Array  # (K,) |m_k|^2
    slots: jax.Array  # (m,) int32 the m components of largest kappa
    slot_explicit: jax.Array  # (m,) bool: that slot's component exceeds the budget
    form: jax.Array  # () int32: 0 expanded, 1 expanded with explicit slots, 2 explicit


class TiedFeatures(NamedTuple):
    x: jax.Array  # (B, D) the centred chunk


class TiedSums(NamedTuple):
    rx: jax.Array  # (K, D) sum_b r_kb x_b
    scatter: jax.Array  # (D, D) sum_k sum_b r_kb (x_b - mu_k)(x_b - mu_k)^T, the pooled scatter


class TiedPass(FullPass):
    """One shared full covariance: the full pass, or products in the whitened coordinates.

    A tied M-step needs only the pooled scatter ``sum_k sum_n r_nk (x_n -
    mu_k)(x_n - mu_k)^T``, and with one factor ``U`` every distance is
    ``|z - m_k|^2`` with ``z = x U`` and ``m_k = mu_k U``. So the expanded
    form whitens each chunk once and takes the distances as ``|z|^2 - 2 z .
    m_k + |m_k|^2`` (a ``(K, D) x (D, B)`` product) and the scatter from
    ``sum_n x_n x_n^T`` (one ``(D, B) x (B, D)`` product) and the first
    moments: about ``2 (2 D + 2 K) D`` FLOPs a row against the full pass's
    ``4 K D^2``, and no ``(K, D, B)`` residuals (benchmarks/README.md, "Tied
    expansion"). Like the diag expansion it cancels for a component far from
    the data mean in whitened units (``kappa_k = |m_k|^2``, the data
    centred): it is taken for the components within the diag pass's budget
    (``u * kappa_k <= _EXPANSION_BUDGET``), the ``ceil(K / 16)`` of largest
    ``kappa_k`` have explicit slots, and beyond that the whole chunk is
    the full pass's (a ``lax.switch`` per chunk, as in :class:`DiagPass`;
    this explicit form recomputes the residuals for the sums, about 2x the
    full pass's time, and holds them for a chunk up to 8x the full pass's
    rows). Below ``tuning.small_d`` features or
    ``tuning.diag_expand_min_size`` rows x components x features, the
    pass is the full one with the factor repeated, as it is for ``n_rows=0``
    (sums for given responsibilities, whose unit factor says nothing of the
    data's scale) and under reduced-precision products (TF32, bf16), where
    hardly any component is within budget.

    Its second moments are pooled: ``moments`` gives the whole scatter as
    component 0's and zeros for the others, which is all a tied M-step (ML
    or MAP) reads (their sum).
    """

    def __init__(self, tuning: Tuning, n_rows: int | None = None):
        super().__init__(tuning)
        self.n_rows = n_rows

    def _expands(self, n_components, n_features):
        """Whether this pass takes the whitened form (else the full pass's, with the factor repeated)."""
        if n_features <= self.tuning.small_d:
            return False
        if _precision.unit_roundoff(jnp.float32) * 2.0**8 > _EXPANSION_BUDGET:
            return False  # reduced-precision products (TF32, bf16): hardly any component within budget
        if self.n_rows == 0:  # sums for given responsibilities: the unit factor says nothing of the data's scale
            return False
        return self.n_rows is None or self.n_rows * n_components * n_features >= self.tuning.diag_expand_min_size

    def width(self, n_components, n_features):
        if not self._expands(n_components, n_features):
            return super().width(n_components, n_features)
        # Per row only (K, B)-sized arrays and the chunk: 13k-16k rows per chunk
        # measured best on 2 cores, 2-4x wider than the full pass's sizing
        # (benchmarks/README.md, "Tied expansion").
        return max(64, n_components * n_features // 4)

    def constants(self, means, factor):
        full = super().constants(means, jnp.broadcast_to(factor, (means.shape[0], *factor.shape)))
        if not self._expands(*means.shape):
            return full
        whitened = means @ factor
        kappa = jnp.sum(whitened * whitened, axis=1)
        return TiedConstants(full, means, factor, whitened, kappa, *_expansion_forms(kappa, means.dtype))

    # -- the forms: expanded, expanded with explicit slots, explicit --

    @staticmethod
    def _explicit_maha(means, factor, X):
        """``(k, B)`` distances of a few components (the slots) from their residuals, one at a time."""
        return jax.lax.map(lambda mu: jnp.sum(jnp.square((X - mu[None]) @ factor), axis=1), means)

    @staticmethod
    def _explicit_scatter(means, X, resp):
        """``sum_k sum_b r_kb (x_b - mu_k)(x_b - mu_k)^T`` over a few components (the slots), one at a time."""

        def add(scatter, mu_r):
            mu, r = mu_r
            d = X - mu[None]
            return scatter + (d * r[:, None]).T @ d, None

        return jax.lax.scan(add, jnp.zeros((X.shape[1],) * 2, X.dtype), (means, resp))[0]

    def _full_maha(self, consts, X):
        """Every component's distances by the full pass (its whitened residuals; the log-densities unused)."""
        return self._squared_norms(FullPass.log_densities(self, consts.full, X)[1].y)

    def _full_scatter(self, consts, X, resp):
        """The pooled scatter by the full pass's sums and moments (its residuals recomputed)."""
        feats = FullPass.log_densities(self, consts.full, X)[1]
        sums = FullPass.sums(self, consts.full, feats, resp)
        return jnp.sum(FullPass.moments(self, consts.full, sums, None, consts.means)[1], axis=0)

    def _maha(self, consts, X):
        def expanded():
            z = X @ consts.factor
            maha = jnp.sum(z * z, axis=1)[None, :] - 2.0 * (consts.whitened_means @ z.T) + consts.kappa[:, None]
            return jnp.maximum(maha, 0.0)  # rounding must not make a distance negative

        def slotted():
            maha = expanded()
            s = consts.slots
            exact = self._explicit_maha(consts.means[s], consts.factor, X)
            return maha.at[s].set(jnp.where(consts.slot_explicit[:, None], exact, maha[s]))

        return jax.lax.switch(consts.form, [expanded, slotted, lambda: self._full_maha(consts, X)])

    @staticmethod
    def _expanded_scatter(means, X, resp, rx):
        """The pooled scatter of the components ``resp`` (k, B) weighs, from raw moments around the origin."""
        rho = jnp.sum(resp, axis=0)
        cross = means.T @ rx  # sum_k mu_k (sum_b r_kb x_b)^T
        return (X * rho[:, None]).T @ X - cross - cross.T + (means.T * jnp.sum(resp, axis=1)[None, :]) @ means

    def sums(self, consts, feats, resp):
        if isinstance(consts, FullConstants):
            return super().sums(consts, feats, resp)
        X = feats.x
        rx = resp @ X

        def expanded():
            return self._expanded_scatter(consts.means, X, resp, rx)

        def slotted():
            s = consts.slots
            explicit = jnp.zeros(resp.shape[0], bool).at[s].set(consts.slot_explicit)
            kept = jnp.where(explicit[:, None], 0.0, resp)
            exact = jnp.where(consts.slot_explicit[:, None], resp[s], 0.0)
            return self._expanded_scatter(consts.means, X, kept, kept @ X) + self._explicit_scatter(
                consts.means[s], X, exact)  # fmt: skip

        scatter = jax.lax.switch(consts.form, [expanded, slotted, lambda: self._full_scatter(consts, X, resp)])
        return TiedSums(rx, scatter)

    def moments(self, consts, sums, nk, means):
        if isinstance(consts, FullConstants):
            return super().moments(consts, sums, nk, means)
        scatter = 0.5 * (sums.scatter + sums.scatter.T)
        pooled = jnp.zeros((means.shape[0], *scatter.shape), scatter.dtype).at[0].set(scatter)
        return sums.rx - nk[:, None] * means, pooled

    def log_densities(self, consts, X):
        if isinstance(consts, FullConstants):
            return super().log_densities(consts, X)
        maha = self._maha(consts, X)
        log_det = consts.full.log_det
        return -0.5 * (X.shape[-1] * _LOG_2PI + maha) + log_det[:, None], TiedFeatures(X)


# ---------------------------------------------------------------------------
# Diag and spherical: matrix products where their rounding is known to be
# small, explicit differences elsewhere.


class DiagConstants(NamedTuple):
    means: jax.Array  # (K, D)
    factor: jax.Array  # (K, D) one over the standard deviations (spherical: broadcast)
    log_det: jax.Array  # (K,)
    quadratic: jax.Array  # (K, 2 D) [P_k, -2 mu_k P_k] with P = factor^2: maha = [x^2, x] . quadratic_k + offset_k
    offset: jax.Array  # (K,) sum_d mu_kd^2 P_kd, i.e. kappa_k
    slots: jax.Array  # (m,) int32 the m components of largest kappa
    slot_explicit: jax.Array  # (m,) bool: that slot's component exceeds the budget
    form: jax.Array  # () int32: 0 expanded, 1 expanded with explicit slots, 2 explicit


class DiagFeatures(NamedTuple):
    x: jax.Array  # (B, D) the centred chunk


class DiagSums(NamedTuple):
    rx: jax.Array  # (K, D) sum_b r_kb x_b
    rdd: jax.Array  # (K, D) sum_b r_kb (x_b - mu_k)^2


# The expansion's worst rounding, in units of the unit roundoff u, that the
# diag pass accepts for a component: u * kappa_k <= 2^-12, where the
# expanded distance near mu_k is off by about 4 u kappa_k (1e-3) and its
# variances by about as much relative (benchmarks/README.md, "Diag expansion").
_EXPANSION_BUDGET = 2.0**-12


def _expansion_forms(kappa, dtype):
    """``(slots (m,), slot_explicit (m,), form ())`` of an expanding pass from each component's ``kappa`` (K,).

    A component is within budget where ``u * kappa_k <= _EXPANSION_BUDGET``
    (``u`` the unit roundoff of the products; a non-finite ``kappa``, from
    a NaN start, is beyond it). The ``m = ceil(K / 16)`` components of
    largest ``kappa`` get explicit slots; ``form`` is 0 (all within budget:
    expanded), 1 (those beyond fit in the slots) or 2 (explicit).
    """
    beyond = ~(_precision.unit_roundoff(dtype) * kappa <= _EXPANSION_BUDGET)
    _, slots = jax.lax.top_k(jnp.where(beyond, jnp.inf, kappa), -(-kappa.shape[0] // 16))
    n_beyond = jnp.sum(beyond)
    form = jnp.where(n_beyond == 0, 0, jnp.where(n_beyond <= slots.shape[0], 1, 2)).astype(jnp.int32)
    return slots, beyond[slots], form


class DiagPass:
    """Diagonal covariances (and spherical ones, broadcast over the features).

    Two forms of the same sums. The explicit one scales the residuals
    ``(x - mu_k) * factor_k`` element by element (a ``(K, B, D)`` loop that
    XLA fuses into its reductions). The expanded one is scikit-learn's:
    ``maha = x^2 . P_k - 2 x . mu_k P_k + mu_k^2 . P_k`` and the second
    moments ``R x^2 - 2 mu R x + n mu^2``: two ``(B, 2 D) x (2 D, K)``-sized
    matrix products per chunk, about 5x faster (benchmarks/README.md, "Diag
    expansion").

    The expansion cancels: its rounding grows with ``kappa_k = sum_d mu_kd^2
    / sigma_kd^2`` (in the centred coordinates), and for a narrow component
    far from the data mean it exceeds the distance itself. So each pass
    takes, per component, the expansion where ``u * kappa_k <=
    _EXPANSION_BUDGET`` (``u`` the unit roundoff of the products: TF32's when
    the caller chose it) and explicit differences for the others: the ``m =
    ceil(K / 16)`` components of largest ``kappa_k`` have explicit slots
    (a narrow component, such as one collapsing onto a few rows, costs
    ``1 / 16`` of an explicit pass rather than all of it); when more
    components than slots exceed the budget, the whole pass is explicit. The
    choice is a ``lax.switch`` per chunk (under a batched ``vmap`` every
    form runs). A pass over fewer than ``tuning.diag_expand_min_size``
    rows x components x features is always explicit: there compiling the
    switch costs more than the products save (``n_rows=None``: size not
    known, expandable; ``0``: never).
    """

    def __init__(self, tuning: Tuning, spherical: bool = False, n_rows: int | None = None):
        self.tuning = tuning
        self.spherical = spherical
        self.n_rows = n_rows

    def width(self, n_components, n_features):
        # Sized for the explicit form, whose (K, B, D) residuals stream through
        # fused element-wise loops: ~4x the rows per chunk of the full pass
        # (1024 vs 256 rows for K = D = 64 on 2 cores). The expanded form
        # measured the same from 256 to 1024 rows (299-307 ms, N=3e5, D=K=64).
        return max(1, n_components * n_features // 4)

    def unroll(self):
        # The element-wise pass already keeps both cores busy; two chunks per
        # step measured slower (91 -> 120 ms for 1e6 rows, K = D = 16).
        return 1

    def _expands(self, n_components, n_features):
        if self.n_rows is None:
            return True
        return self.n_rows * n_components * n_features >= self.tuning.diag_expand_min_size

    def constants(self, means, factor):
        if self.spherical:
            factor = jnp.broadcast_to(factor[:, None], means.shape)
        n_components = means.shape[0]
        log_det = _covariance.Diag.log_det_factor(factor, means.shape[-1])
        precision = factor * factor
        scaled = means * precision
        kappa = jnp.sum(means * scaled, axis=1)
        quadratic = jnp.concatenate([precision, -2.0 * scaled], axis=1)
        slots, slot_explicit, form = _expansion_forms(kappa, means.dtype)
        if not self._expands(*means.shape):
            form = jnp.full((), 2, jnp.int32)
        return DiagConstants(means, factor, log_det, quadratic, kappa, slots, slot_explicit, form)

    # -- the two forms, and the expanded one with explicit slots --

    @staticmethod
    def _explicit_maha(means, factor, X):
        # (K, B, D): the rows of X are read contiguously, features on the fast axis.
        y = (X[None, :, :] - means[:, None, :]) * factor[:, None, :]
        return jnp.sum(y * y, axis=2)  # (K, B)

    @staticmethod
    def _expanded_maha(consts, X):
        rows = jnp.concatenate([X * X, X], axis=1)  # (B, 2 D)
        maha = consts.quadratic @ rows.T + consts.offset[:, None]
        return jnp.maximum(maha, 0.0)  # rounding must not make a distance negative

    def _maha(self, consts, X):
        def slotted():
            maha = self._expanded_maha(consts, X)
            s = consts.slots
            exact = self._explicit_maha(consts.means[s], consts.factor[s], X)  # (m, B)
            return maha.at[s].set(jnp.where(consts.slot_explicit[:, None], exact, maha[s]))

        if not self._expands(*consts.means.shape):
            return self._explicit_maha(consts.means, consts.factor, X)
        return jax.lax.switch(consts.form, [
            lambda: self._expanded_maha(consts, X),
            slotted,
            lambda: self._explicit_maha(consts.means, consts.factor, X),
        ])  # fmt: skip

    @staticmethod
    def _explicit_rdd(means, X, resp):
        d = X[None, :, :] - means[:, None, :]
        return jnp.einsum("kb,kbd->kd", resp, d * d)

    @staticmethod
    def _expanded_sums(consts, X, resp):
        n_features = X.shape[-1]
        s = resp @ jnp.concatenate([X, X * X], axis=1)  # (K, 2 D)
        rx, rxx = s[:, :n_features], s[:, n_features:]
        mu = consts.means
        nk = jnp.sum(resp, axis=1)[:, None]
        return DiagSums(rx=rx, rdd=jnp.maximum(rxx - 2.0 * mu * rx + nk * mu * mu, 0.0))

    def sums(self, consts, feats, resp):
        X = feats.x

        def explicit():
            return DiagSums(rx=resp @ X, rdd=self._explicit_rdd(consts.means, X, resp))

        def slotted():
            sums = self._expanded_sums(consts, X, resp)
            s = consts.slots
            exact = self._explicit_rdd(consts.means[s], X, resp[s])  # (m, D)
            return sums._replace(rdd=sums.rdd.at[s].set(jnp.where(consts.slot_explicit[:, None], exact, sums.rdd[s])))

        if not self._expands(*consts.means.shape):
            return explicit()
        return jax.lax.switch(consts.form, [lambda: self._expanded_sums(consts, X, resp), slotted, explicit])

    def moments(self, consts, sums, nk, means):
        del consts
        return sums.rx - nk[:, None] * means, sums.rdd

    def log_densities(self, consts, X):
        maha = self._maha(consts, X)
        return -0.5 * (X.shape[-1] * _LOG_2PI + maha) + consts.log_det[:, None], DiagFeatures(X)


def pass_for(covariance_type: str, tuning: Tuning, n_rows: int | None = None) -> CovariancePass:
    """The pass of ``covariance_type`` under ``tuning`` over ``n_rows`` rows (all static).

    ``n_rows`` decides whether the diag pass may use its expansion (see
    :class:`DiagPass`); ``0`` keeps it explicit.
    """
    _covariance.covariance_model(covariance_type)  # validates the name
    if covariance_type == "full":
        return FullPass(tuning)
    if covariance_type == "tied":
        return TiedPass(tuning, n_rows=n_rows)
    return DiagPass(tuning, spherical=covariance_type == "spherical", n_rows=n_rows)


def chunk_rows(n_samples: int, n_components: int, n_features: int, covariance_type: str | None, tuning: Tuning):
    """Rows per chunk of a pass over ``n_samples`` rows, or ``None`` for one chunk.

    ``covariance_type`` names the pass whose per-row width sets the chunk
    (``None``: ``K * D``, the widest of the other passes); decided in Python,
    before tracing.
    """
    n_features = max(n_features, 1)
    if covariance_type is None:
        width = n_components * n_features
    else:
        width = pass_for(covariance_type, tuning, n_samples).width(n_components, n_features)
    chunk = max(tuning.min_chunk_rows, tuning.chunk_elements // width)
    return None if chunk >= n_samples else chunk


# ---------------------------------------------------------------------------
# The generic chunk step and the passes built from it.


def over_components(op, reduction, a, tuning: Tuning):
    """Reduction of ``a`` (K, B) over its leading axis: (B,); ``op`` is ``reduction``'s binary form.

    Up to ``tuning.unroll_components`` components it is a chain of K - 1
    element-wise operations on the rows, which XLA fuses with its neighbours
    (the exp, the division) into one loop; a reduce over the short leading
    axis would be its own kernel (on CPU a library call per chunk).
    """
    if a.shape[0] > tuning.unroll_components:
        return reduction(a, axis=0)
    out = a[0]
    for row in range(1, a.shape[0]):
        out = op(out, a[row])
    return out


def _log_normalizer(wlp, tuning):
    """``(top (B,), exp(wlp - top) (K, B), log sum_k exp(wlp) (B,))`` with one exp per entry."""
    top = over_components(jnp.maximum, jnp.max, wlp, tuning)
    top = jax.lax.stop_gradient(jnp.where(jnp.isfinite(top), top, 0.0))
    e = jnp.exp(wlp - top[None, :])
    total = over_components(jnp.add, jnp.sum, e, tuning)
    return e, total, top + jnp.log(total)


def _e_step_chunk(p: CovariancePass, consts, log_weights, X, w, tuning):
    """E-step and M-step sums of one chunk, reusing the E-step's per-row work."""
    log_gauss, feats = p.log_densities(consts, X)
    wlp = log_gauss + log_weights[:, None]  # (K, B)
    e, total, log_norm = _log_normalizer(wlp, tuning)
    resp = e * (w / total)[None, :]  # sample-weighted responsibilities
    # Zero-weight rows (padding) must not turn a -inf density into NaN.
    ll = jnp.sum(jnp.where(w > 0, w * log_norm, 0.0))
    return ll, jnp.sum(w), jnp.sum(resp, axis=1), p.sums(consts, feats, resp)


def accumulate_statistics(params, X, w, chunk_size, center, tuning: Tuning) -> SufficientStatistics:
    """One E-step pass over ``X`` (row chunks centred at ``center``), around the current means.

    Args:
      params: a ``GMMParams`` in coordinates centred at ``center``.
      X: ``(N, D)`` rows (raw coordinates).
      w: ``(N,)`` sample weights.
      chunk_size: rows per chunk, ``None`` or a ``_rows.RowBlocks`` layout (static).
      center: ``(D,)`` subtracted from every row, or ``None``.
      tuning: the platform's ``Tuning`` (static).
    """
    p = pass_for(params.covariance_type, tuning, X.shape[0])
    consts = p.constants(params.means, params.precisions_cholesky)
    log_weights = jnp.log(params.weights)

    def chunk(Xc, wc, _):
        return _e_step_chunk(p, consts, log_weights, Xc, wc, tuning)

    ll, weight_sum, nk, sums = _rows.sum_over_rows(chunk, X, w, chunk_size, center, unroll=p.unroll())
    s1, s2 = p.moments(consts, sums, nk, params.means)
    return SufficientStatistics(ll, weight_sum, nk, s1, s2)


def statistics_from_responsibilities(
    responsibilities, X, w, shift, covariance_type, tuning: Tuning, chunk_size=None, center=None
) -> SufficientStatistics:
    """Sufficient statistics around ``shift`` (K, D) for given responsibilities.

    The pass's own kernels with a unit precision factor around ``shift``: the
    same sums as an E-step, for responsibilities that come from elsewhere
    (hard labels, random ones, a user's ``log_resp``).

    Args:
      responsibilities: ``fn(X_chunk (B, D), w_chunk (B,), offset ()) -> (K, B)``
        sample-weighted responsibilities of a centred chunk (chunks, not a
        whole array, so memory stays bounded and sharded rows stay local).
      X: ``(N, D)`` rows; ``w``: ``(N,)`` weights, or a pytree of per-row
        arrays handed to ``responsibilities`` chunk by chunk.
      shift: ``(K, D)`` in the centred coordinates.
      covariance_type, tuning, chunk_size, center: as in :func:`accumulate_statistics`.
    """
    p = pass_for(covariance_type, tuning, n_rows=0)  # explicit: the unit factor says nothing of the data's scale
    n_components, n_features = shift.shape
    consts = p.constants(shift, _covariance.covariance_model(covariance_type).unit_factor(
        n_components, n_features, X.dtype))  # fmt: skip

    def chunk(Xc, wc, offset):
        resp = responsibilities(Xc, wc, offset)
        _, feats = p.log_densities(consts, Xc)  # only the residuals are used
        return jnp.sum(resp, axis=1), p.sums(consts, feats, resp)

    nk, sums = _rows.sum_over_rows(chunk, X, w, chunk_size, center, unroll=p.unroll())
    s1, s2 = p.moments(consts, sums, nk, shift)
    zero = jnp.zeros((), X.dtype)
    return SufficientStatistics(zero, zero, nk, s1, s2)


def criterion_sums(params, X, w, chunk_size, center, tuning: Tuning):
    """``(sum_n w_n log p(x_n), sum_n w_n max_k log r_nk)``: the log-likelihood and its classification term.

    The second is mclust's ICL term (the log responsibility of each row's
    most probable component).
    """
    p = pass_for(params.covariance_type, tuning, X.shape[0])
    consts = p.constants(params.means, params.precisions_cholesky)
    log_weights = jnp.log(params.weights)

    def chunk(Xc, wc, _):
        log_gauss, _ = p.log_densities(consts, Xc)
        wlp = log_gauss + log_weights[:, None]
        _, _, log_norm = _log_normalizer(wlp, tuning)
        top = over_components(jnp.maximum, jnp.max, wlp, tuning)
        keep = wc > 0  # zero-weight rows (padding) count for nothing, even at -inf
        return (jnp.sum(jnp.where(keep, wc * log_norm, 0.0)), jnp.sum(jnp.where(keep, wc * (top - log_norm), 0.0)))

    return _rows.sum_over_rows(chunk, X, w, chunk_size, center, unroll=p.unroll())


# What map_scores computes per row.
SCORES = ("log_prob", "proba", "log_resp", "labels", "log_resp_and_log_prob")


def map_scores(params, X, what: str, chunk_size, center, tuning: Tuning):
    """Per-row scores of ``X`` through the pass, chunk by chunk (memory bounded like a fit).

    Args:
      params: a ``GMMParams`` in coordinates centred at ``center``.
      X: ``(N, D)``; chunks are centred at ``center`` as they are read.
      what: ``"log_prob"`` ``(N,)``, ``"proba"`` ``(N, K)``, ``"log_resp"``
        ``(N, K)``, ``"labels"`` ``(N,)`` int32, or
        ``"log_resp_and_log_prob"`` (both) (static).
      chunk_size: rows per chunk, ``None`` or a ``RowBlocks`` layout (static);
        with a layout the outputs stay split like the rows of ``X``.
      center: ``(D,)`` or ``None``.
      tuning: the platform's ``Tuning`` (static).
    """
    if what not in SCORES:
        raise ValueError(f"what must be one of {SCORES}, got {what!r}.")
    p = pass_for(params.covariance_type, tuning, X.shape[0])
    consts = p.constants(params.means, params.precisions_cholesky)
    log_weights = jnp.log(params.weights)

    def far_rows(Xc, wlp):
        # Rows where every component's density underflows (a point at 1e20 in
        # float32) have no finite responsibilities; there the component
        # nearest in Mahalanobis terms takes all the mass, as in the limit.
        # Computed only when a chunk has such a row (both branches under vmap).
        far = ~jnp.isfinite(jnp.max(wlp, axis=0))  # (B,)
        nearest = jax.lax.cond(
            jnp.any(far),
            lambda: _covariance.nearest_component(Xc, params.means, params.precisions_cholesky, params.covariance_type),
            lambda: jnp.zeros(Xc.shape[0], jnp.int32),
        )
        return far, nearest

    def chunk(Xc):
        log_gauss, _ = p.log_densities(consts, Xc)
        wlp = log_gauss + log_weights[:, None]  # (K, B)
        if what == "log_prob":
            return _log_normalizer(wlp, tuning)[2]
        far, nearest = far_rows(Xc, wlp)
        if what == "labels":
            return jnp.where(far, nearest, jnp.argmax(wlp, axis=0).astype(jnp.int32))
        e, total, log_norm = _log_normalizer(wlp, tuning)
        one_hot = jax.nn.one_hot(nearest, wlp.shape[0], dtype=wlp.dtype)  # (B, K)
        if what == "proba":
            return jnp.where(far[:, None], one_hot, (e / total[None, :]).T)
        log_resp = jnp.where(far[:, None], jnp.log(one_hot), (wlp - log_norm[None, :]).T)
        return (log_resp, log_norm) if what == "log_resp_and_log_prob" else log_resp

    return _rows.map_over_rows(chunk, X, chunk_size, center)
