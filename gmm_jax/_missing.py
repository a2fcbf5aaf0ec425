"""Missing data (NaN entries, missing at random): the missing-data variant of the EM pass.

The exact EM of Ghahramani & Jordan (1994) and Little & Rubin: the E-step uses
the marginal density of each row's *observed* entries, and the M-step's
sufficient statistics complete each row, per component, with the conditional
mean of its missing block given its observed block, adding the conditional
covariance of the missing block to the second moments. With those statistics
the ordinary M-step (``_em.params_from_statistics``) is exactly the
missing-data EM update.

Each covariance type is a small object with the pass interface of
``_covariance``'s types, so the engine can run it as a variant of its pass::

    consts = model.pass_constants(means, factor)
    log_gauss, feats = model.chunk_log_prob(consts, X)    # (K, B); X has NaN
    sums = model.chunk_sums(consts, feats, resp)          # resp (K, B), weighted
    s1, s2 = model.moments_from_sums(consts, sums, nk, means)

``s1 = sum_n r_nk (x^_nk - mu_k)`` and ``s2 = sum_n r_nk [(x^_nk - mu_k)(x^_nk
- mu_k)^T + C_nk]`` around the current means, in ``_em.SufficientStatistics``'
shapes (full/tied ``(K, D, D)``, diag/spherical ``(K, D)``), where ``x^_nk``
is row ``n`` completed with component ``k``'s conditional mean and ``C_nk``
that conditional covariance (zero on the observed entries).

**Rows with nothing observed.** Their marginal density is that of an empty
set of observations, 1, so their log-density is exactly 0 under every
component and their responsibilities are the mixing weights. They carry no
information, so the pass gives them zero weight (:func:`informative_weights`):
they add nothing to the log-likelihood, to ``weight_sum`` or to the
statistics. (Kept with their weight they would add ``pi_k`` mass at the
current mean and covariance each iteration: the same maximum, reached more
slowly.)

**Full and tied: a precision-space formulation.** With ``Lambda = Sigma^-1``
(``U U^T``, already stored) and ``r`` the residual ``x - mu`` with zeros in
the missing entries, the observed block's quantities follow from the
*missing* block of the precision, which is small when few entries are missing:

* ``r_o^T Sigma_oo^-1 r_o = r^T Lambda r - g_m^T Lambda_mm^-1 g_m`` with
  ``g = Lambda r`` (so ``g_m = Lambda_mo r_o``);
* ``log det Sigma_oo = log det Sigma + log det Lambda_mm``;
* the conditional mean is ``x^_m = mu_m - Lambda_mm^-1 g_m`` and the
  conditional covariance ``Lambda_mm^-1``.

``g`` for every component is one batched product as in the complete-data
pass. The missing indices of each row are gathered into ``n_slots`` slots (a
static bound on the missing entries per row, computed from the data before
tracing; unused slots are an identity block), and the ``(n_slots + 1)``-square
matrix ``[[Lambda_mm, g_m], [g_m^T, r^T Lambda r]]`` is swept (Beaton's sweep
operator) on the slots for every (component, row) at once, which yields all
three quantities. The conditional covariances enter the second moments
through one ``(K D, B) x (B, D)`` product per slot with that slot's one-hot
selection of features; where the rows are sorted by pattern and a chunk
holds few patterns, once per pattern instead of once per row (``C_nk``
depends on the row only through its pattern). No ``(N, K, D, D)`` array is
formed; per chunk the largest arrays are ``(K, D, B)`` and ``(K, S + 1, S +
1, B)``.

**Slot groups.** The cost per row grows with the slot count, and one bound
for all rows is the worst row's. ``fit`` and ``select`` therefore sort the
rows once per fit by their NaN count, then by pattern (:func:`sorted_rows`),
and run each group of rows with its own bound (:class:`SlotGroups`,
:func:`accumulate_grouped`), the complete rows through the complete-data
pass. A group whose chunks hold few patterns sums its conditional
covariances once per pattern (:class:`SlotGroup`'s ``n_patterns``).

Rounding: ``r^T Lambda r - |L^-1 g_m|^2`` subtracts two terms that are large
when a missing feature is strongly predicted by the observed ones; the
relative error is ``eps`` times the condition number of ``Sigma`` (harmless in
float64, a few digits in float32 for ill-conditioned components).

**Diag and spherical**: missing entries drop out of the sums; their
conditional mean is the component mean and their conditional variance the
component variance, which enters ``s2`` in place of the missing squared
residual.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular

from gmm_jax import _covariance, _pass, _rows, _sharding, _tuning, _validation
from gmm_jax._params import check_params_and_data
from gmm_jax._precision import float32_matmuls

__all__ = [
    "SlotGroup", "SlotGroups", "impute", "missing_model", "informative_weights", "max_missing", "missing_chunk_size",
    "slot_groups", "sorted_rows",
]

_LOG_2PI = math.log(2.0 * math.pi)


def informative_weights(X, w):
    """``w`` with zero for every row of ``X`` (B, D) that has no observed entry."""
    return jnp.where(jnp.any(~jnp.isnan(X), axis=1), w, jnp.zeros_like(w))


def max_missing(X) -> int:
    """The largest number of NaN entries in a row of a concrete ``X``: the static slot count.

    Under a transformation (``X`` a tracer) no value can be read, and every row
    may miss every feature: ``D``.
    """
    if isinstance(X, jax.core.Tracer):
        return X.shape[1]
    if isinstance(X, np.ndarray):  # a host batch of a stream: counted where it is
        return int(np.isnan(X).sum(axis=1).max(initial=0))
    with jax.ensure_compile_time_eval():
        return int(jnp.max(jnp.sum(jnp.isnan(X), axis=1)))


def _slots(miss, n_slots):
    """The missing features of each row gathered into ``n_slots`` slots.

    Returns ``idx`` (B, S), the feature in each slot (missing features in
    order); ``valid`` (B, S), whether the slot holds a missing feature; and
    ``pos`` (B, D), the slot of each feature (only meaningful where missing).
    A running count and a comparison, not a sort: an argsort of the chunk's
    flags measured 30x slower on CPU.
    """
    n_features = miss.shape[1]
    rank = jnp.cumsum(miss, axis=1, dtype=jnp.int32) - 1  # (B, D): slot of each missing feature
    in_slot = miss[:, None, :] & (rank[:, None, :] == jnp.arange(n_slots, dtype=jnp.int32)[None, :, None])
    idx = jnp.sum(jnp.where(in_slot, jnp.arange(n_features, dtype=jnp.int32)[None, None, :], 0), axis=2)
    valid = jnp.arange(n_slots)[None, :] < jnp.sum(miss, axis=1)[:, None]
    return idx, valid, jnp.clip(rank, 0, n_slots - 1)


def _residuals(means, X):
    """``miss`` (B, D), and the residuals ``x - mu`` (K, D, B) of a chunk ``X`` (B, D), zero in its NaN entries."""
    miss = jnp.isnan(X)
    X0 = jnp.where(miss, 0.0, X)  # no NaN reaches an operation (nor a derivative)
    return miss, jnp.where(miss.T[None], 0.0, X0.T[None] - means[:, :, None])


def _slot_entries(g, idx_t, valid_t):
    """``g_m`` (K, S, B): the entries of ``g`` (K, D, B) at each row's slots ``idx_t`` (S, B), zero where unused."""
    n_components, n_slots, n_rows = g.shape[0], idx_t.shape[0], g.shape[2]
    gm = jnp.take_along_axis(g, jnp.broadcast_to(idx_t[None], (n_components, n_slots, n_rows)), axis=1)
    return jnp.where(valid_t[None], gm, 0.0)


def _precision_blocks(precision, idx_t, valid_t):
    """``Lambda_mm`` (K, S, S, X) of ``precision`` (K, D, D) at the slots ``idx_t`` (S, X).

    A gather of ``S^2`` entries per (component, column); an identity block in
    the unused slots (``valid_t`` False), so that sweeping them changes nothing.
    """
    n_components, n_features = precision.shape[:2]
    n_slots = idx_t.shape[0]
    flat = idx_t[:, None, :] * n_features + idx_t[None, :, :]  # (S, S, X)
    lmm = jnp.take(precision.reshape(n_components, n_features * n_features), flat, axis=1)
    both = valid_t[:, None, :] & valid_t[None, :, :]
    return jnp.where(both[None], lmm, jnp.eye(n_slots, dtype=precision.dtype)[None, :, :, None])


def _completed(r, c, miss, pos):
    """``r`` (K, D, B) with each missing feature replaced by its slot's entry of ``c`` (K, S, B).

    One select per slot, not a gather: fused after the sweep, XLA's gathers
    measured 4-7x slower (benchmarks/README.md, "Missing data").
    """
    slot_of = jnp.where(miss, pos, -1).T  # (D, B), -1 where observed
    e = r
    for j in range(c.shape[1]):
        e = jnp.where((slot_of == j)[None], c[:, j][:, None, :], e)
    return e


def _placed_blocks(blocks, miss, pos, n_features):
    """``sum_c`` of the ``(S, S)`` blocks (K, S, S, C), each placed at its column's missing features: (K, D, D).

    ``miss`` (C, D) and ``pos`` (C, D) are the columns' missing features and
    their slots (:func:`_slots`). For each slot ``j``, the blocks' column
    ``j`` placed at the missing features (K, D, C) times the one-hot (C, D)
    of the feature in slot ``j``: one ``(K D, C) x (C, D)`` product per slot
    (one product over slots and columns together measured 1.7x slower).
    """
    n_components, s, _, n_columns = blocks.shape
    slot_of = jnp.where(miss, pos, -1)  # (C, D)
    in_slot = [slot_of == j for j in range(s)]
    total = jnp.zeros((n_components, n_features, n_features), blocks.dtype)
    for j in range(s):
        column = jnp.zeros((n_components, n_features, n_columns), blocks.dtype)
        for i in range(s):
            column = jnp.where(in_slot[i].T[None], blocks[:, i, j][:, None, :], column)
        product = column.reshape(n_components * n_features, n_columns) @ in_slot[j].astype(blocks.dtype)
        total = total + product.reshape(n_components, n_features, n_features)
    return total


def _sweep(M, n_pivots):
    """Sweeps ``M`` (K, P, P, B), symmetric in its middle axes, on its first ``n_pivots`` pivots.

    Beaton's sweep operator: on ``[[A, g], [g^T, q]]`` with ``A`` the first
    ``n_pivots`` rows, it returns ``[[-A^-1, A^-1 g], [g^T A^-1, q - g^T A^-1
    g]]`` and the product of the pivots is ``det A``. Written on whole arrays
    with the rows last, each pivot is one fused element-wise pass over every
    (component, row) at once: a batched LAPACK factorisation of 800,000 small
    matrices calls LAPACK once per matrix (measured 2.1 s for the Cholesky
    alone on 2 CPU cores), and an entry-by-entry unrolled factorisation made
    XLA recompute shared entries (20x slower, 60 s to compile). The pivots
    are the steps of a ``fori_loop``: unrolled, they compiled twice as long
    and ran no faster (benchmarks/README.md, "Missing data").

    Returns the swept ``M`` and ``sum log pivots`` (K, B).
    """
    size = M.shape[1]
    index = jnp.arange(size)

    def pivot(k, carry):
        M, log_det = carry
        piv = M[:, k, k, :]  # (K, B)
        col = M[:, :, k, :] / piv[:, None, :]  # (K, P, B)
        outer = M - col[:, :, None, :] * M[:, None, k, :, :]
        on_i = (index == k)[:, None]
        on_j = (index == k)[None, :]
        M = jnp.where((on_i & on_j)[None, :, :, None], -1.0 / piv[:, None, None, :],
                      jnp.where((on_i | on_j)[None, :, :, None], M / piv[:, None, None, :], outer))
        return M, log_det + jnp.log(piv)

    log_det = jnp.zeros((M.shape[0], M.shape[3]), M.dtype)
    return jax.lax.fori_loop(0, n_pivots, pivot, (M, log_det))


@dataclasses.dataclass(frozen=True)
class MissingFull:
    """Full covariances with NaN entries; ``n_slots`` bounds the missing entries per row (static).

    Layout: component-major and rows last, ``(K, D, B)``, as the complete-data
    pass, so the per-(component, row) work vectorises over the rows.
    ``n_patterns``: 0, or a bound on the distinct missingness patterns in a
    chunk whose rows are sorted by pattern (:func:`sorted_rows`); then the
    conditional covariances are summed once per pattern (:meth:`chunk_sums`).
    """

    n_slots: int
    n_patterns: int = 0

    def pass_unroll(self):
        return 1

    def pass_constants(self, means, factor):
        return dict(
            means=means,  # (K, D)
            precision=factor @ jnp.swapaxes(factor, -1, -2),  # (K, D, D)
            log_det=_covariance.Full.log_det_factor(factor, means.shape[-1]),  # (K,)
        )

    def _observed_block(self, consts, miss, r):
        """The observed block's Mahalanobis distance (K, B), ``log det Lambda_mm`` (K, B), the swept matrix and slots."""
        precision = consts["precision"]
        g = jnp.einsum("kde,keb->kdb", precision, r)  # Lambda_k r
        maha = jnp.sum(r * g, axis=1)  # r^T Lambda r, (K, B)
        if self.n_slots == 0:  # no row misses anything: the complete-data distance
            return maha, jnp.zeros_like(maha), None, None
        s = self.n_slots
        idx, valid, pos = _slots(miss, s)
        gm = _slot_entries(g, idx.T, valid.T)  # (K, S, B)
        lmm = _precision_blocks(precision, idx.T, valid.T)  # (K, S, S, B)
        # [[Lambda_mm, g_m], [g_m^T, r^T Lambda r]] swept on the slots gives
        # -Lambda_mm^-1 (the conditional covariance), Lambda_mm^-1 g_m (minus
        # the conditional mean's offset), the observed block's Mahalanobis
        # distance and log det Lambda_mm.
        top = jnp.concatenate([lmm, gm[:, :, None, :]], axis=2)
        bottom = jnp.concatenate([gm, maha[:, None, :]], axis=1)[:, None]
        swept, log_det_mm = _sweep(jnp.concatenate([top, bottom], axis=1), s)
        return swept[:, s, s, :], log_det_mm, swept, pos

    def chunk_log_prob(self, consts, X):
        miss, r = _residuals(consts["means"], X)
        n_obs = jnp.sum(~miss, axis=1).astype(X.dtype)
        maha, log_det_mm, swept, pos = self._observed_block(consts, miss, r)
        log_det = consts["log_det"][:, None] - 0.5 * log_det_mm
        return -0.5 * (n_obs[None] * _LOG_2PI + maha) + log_det, (r, swept, miss, pos)

    def nearest(self, consts, X):
        """The component nearest each row of ``X`` (B, D) in Mahalanobis distance on its observed entries: (B,)."""
        miss, r = _residuals(consts["means"], X)
        return jnp.argmin(self._observed_block(consts, miss, _covariance.unit_scaled(r, (0, 1)))[0], axis=0).astype(jnp.int32)

    def completion(self, feats):
        """``x^ - mu`` per component (K, D, B): the residual with each missing entry its conditional mean's."""
        r, swept, miss, pos = feats
        if swept is None:
            return r
        s = swept.shape[1] - 1
        return _completed(r, -swept[:, :s, s, :], miss, pos)  # x^_m - mu_m = -Lambda_mm^-1 g_m

    def chunk_sums(self, consts, feats, resp):
        del consts
        r, swept, miss, pos = feats
        e = self.completion(feats)
        re = resp[:, None, :] * e  # (K, D, B)
        s2 = jnp.einsum("kdb,keb->kde", re, e)
        if swept is not None:
            s = swept.shape[1] - 1
            rcov = -swept[:, :s, :s, :]  # Lambda_mm^-1: (K, S, S, B)
            if self.n_patterns:
                # C_nk depends on row n only through its pattern p, so
                # sum_n r_nk C_nk = sum_p C_pk sum_{n in p} r_nk: the patterns
                # of the sorted chunk are runs of rows, summed by one product.
                start = jnp.concatenate([jnp.ones((1,), bool), jnp.any(miss[1:] != miss[:-1], axis=1)])
                run = jnp.cumsum(start, dtype=jnp.int32) - 1  # (B,): the pattern of each row, in order
                one_hot = (run[:, None] == jnp.arange(self.n_patterns, dtype=jnp.int32)[None]).astype(r.dtype)
                first = jnp.nonzero(start, size=self.n_patterns, fill_value=0)[0]  # a row of each pattern
                # An unused pattern slot (fill row 0) gets zero responsibility.
                rcov = jnp.take(rcov, first, axis=3) * (resp @ one_hot)[:, None, None, :]  # (K, S, S, P)
                miss, pos = miss[first], pos[first]
            else:
                rcov = resp[:, None, None, :] * rcov
            s2 = s2 + _placed_blocks(rcov, miss, pos, r.shape[1])
        return dict(s1=jnp.sum(re, axis=2), s2=s2)

    def moments_from_sums(self, consts, sums, nk, means):
        del consts, nk, means
        return sums["s1"], sums["s2"]


@dataclasses.dataclass(frozen=True)
class MissingTied(MissingFull):
    """One shared full covariance with NaN entries: Full's pass with the precision shared."""

    def pass_constants(self, means, factor):
        n_components = means.shape[0]
        return MissingFull.pass_constants(self, means, jnp.broadcast_to(factor, (n_components, *factor.shape)))


@dataclasses.dataclass(frozen=True)
class MissingDiag:
    """Diagonal covariances with NaN entries (``n_slots`` is not needed and ignored)."""

    n_slots: int = 0

    def pass_unroll(self):
        return 1

    def pass_constants(self, means, factor):
        return dict(means=means, factor=factor)

    def chunk_log_prob(self, consts, X):
        means, factor = consts["means"], consts["factor"]
        miss = jnp.isnan(X)
        obs = (~miss).astype(X.dtype)  # (B, D)
        X0 = jnp.where(miss, 0.0, X)
        # Explicit differences (float32 accuracy, as Diag.chunk_log_prob),
        # zero in the missing entries: they drop out of every sum.
        y = jnp.where(miss[None], 0.0, (X0[None, :, :] - means[:, None, :]) * factor[:, None, :])  # (K, B, D)
        maha = jnp.sum(y * y, axis=2)
        log_det = jnp.log(factor) @ obs.T  # sum over observed features of log factor: (K, B)
        n_obs = jnp.sum(obs, axis=1)
        return -0.5 * (n_obs[None] * _LOG_2PI + maha) + log_det, (X0, obs, y)

    def nearest(self, consts, X):
        """The component nearest each row of ``X`` (B, D) in Mahalanobis distance on its observed entries: (B,)."""
        miss, r = _residuals(consts["means"], X)
        y = _covariance.unit_scaled(r, (0, 1)) * consts["factor"][:, :, None]  # (K, D, B)
        return jnp.argmin(jnp.sum(y * y, axis=1), axis=0).astype(jnp.int32)

    def chunk_sums(self, consts, feats, resp):
        del consts
        X0, obs, y = feats
        return dict(x=resp @ X0, n_obs=resp @ obs, yy=jnp.einsum("kb,kbd->kd", resp, y * y))

    def moments_from_sums(self, consts, sums, nk, means):
        factor = consts["factor"]
        # The conditional mean of a missing entry is the component mean (no
        # first-moment term); its conditional variance 1 / factor^2 replaces
        # the squared residual in the second moment.
        s1 = sums["x"] - sums["n_obs"] * means
        return s1, (sums["yy"] + (nk[:, None] - sums["n_obs"])) / (factor * factor)


@dataclasses.dataclass(frozen=True)
class MissingSpherical(MissingDiag):
    """One variance per component with NaN entries: Diag's pass with the variance broadcast."""

    def pass_constants(self, means, factor):
        return MissingDiag.pass_constants(self, means, jnp.broadcast_to(factor[:, None], means.shape))


_MODELS = {"full": MissingFull, "tied": MissingTied, "diag": MissingDiag, "spherical": MissingSpherical}


def missing_model(covariance_type: str, n_slots: int, n_patterns: int = 0):
    """The missing-data pass of ``covariance_type``; ``n_slots`` bounds the NaN entries per row (static).

    ``n_patterns`` (full and tied): a bound on the distinct missingness
    patterns per chunk of rows sorted by pattern (:class:`SlotGroup`), or 0.
    """
    _covariance.covariance_model(covariance_type)  # the usual error for an unknown type
    if covariance_type in ("diag", "spherical"):
        return _MODELS[covariance_type](0)  # one compiled program whatever the data's missingness
    return _MODELS[covariance_type](int(n_slots), int(n_patterns))


def missing_chunk_size(n_samples, n_components, n_features, covariance_type, n_slots, tuning=None):
    """Rows per chunk of the missing-data pass (see ``_pass.chunk_rows``)."""
    tuning = _tuning.for_platform(jax.default_backend()) if tuning is None else tuning
    if covariance_type in ("diag", "spherical"):
        return _pass.chunk_rows(n_samples, n_components, n_features, covariance_type, tuning)
    # Per row and component: r, g, e (D each) and the swept (S + 1)-square matrix, a few times.
    width = n_components * (3 * n_features + 3 * (n_slots + 1) ** 2)
    chunk = max(tuning.min_chunk_rows // 4, tuning.chunk_elements // max(width, 1))
    return None if chunk >= n_samples else chunk


class SlotGroup(NamedTuple):
    """One group of :class:`SlotGroups`: a contiguous run of the sorted rows with one static slot count.

    Attributes:
      n_rows: rows in the group.
      n_slots: the most NaN entries of a row of the group (0: complete rows,
        which run the complete-data pass).
      chunk_size: rows per chunk of its pass (None: one chunk).
      n_patterns: 0, or the most distinct missingness patterns a chunk of
        the group holds, when its conditional covariances are summed per
        pattern (``MissingFull.chunk_sums``; ``Tuning.pattern_sums_max_share``).
    """

    n_rows: int
    n_slots: int
    chunk_size: int | None
    n_patterns: int = 0


class SlotGroups(NamedTuple):
    """The rows of a fit sorted by their missingness, in groups with one static slot count each.

    The pass's cost per row grows with its slot count, the bound on NaN
    entries per row; one bound for all rows is the worst row's (11 of 16 in
    data missing 20% of entries at random, where the mean is 3.2). With the
    rows sorted once per fit (:func:`sorted_rows`: by NaN count, then by
    pattern), each group runs the pass with its own bound, and the complete
    rows the complete-data pass (benchmarks/README.md, "Missing data").

    Attributes:
      groups: the :class:`SlotGroup` of each run of sorted rows, in order.
    """

    groups: tuple[SlotGroup, ...]


def _pattern_words(miss):
    """Each row's missingness pattern as int32 words of 31 features each: (N, ceil(D / 31)).

    Two rows have the same pattern exactly when their words are equal. NumPy
    for a NumPy ``miss``, else JAX.
    """
    xp = np if isinstance(miss, np.ndarray) else jnp
    n_features = miss.shape[1]
    words = []
    for first in range(0, n_features, 31):
        block = miss[:, first:first + 31]
        bits = xp.asarray(1, xp.int32) << xp.arange(block.shape[1], dtype=xp.int32)
        words.append(xp.sum(xp.where(block, bits[None], 0), axis=1, dtype=xp.int32))
    return xp.stack(words, axis=1)


def _sort_keys(miss):
    """The keys of :func:`sorted_rows`' order, for ``np.lexsort`` / ``jnp.lexsort`` (the last is primary)."""
    xp = np if isinstance(miss, np.ndarray) else jnp
    words = _pattern_words(miss)
    return (*(words[:, i] for i in range(words.shape[1])), xp.sum(miss, axis=1, dtype=xp.int32))


@jax.jit  # one program for a device X, not one small compile per operation
def _device_sort_keys(X):
    return _sort_keys(jnp.isnan(X))


def _most_patterns(words, chunk_size):
    """The most distinct patterns among ``chunk_size`` consecutive rows of ``words`` (N, W), sorted by pattern."""
    n_rows = words.shape[0]
    new = np.concatenate([[True], np.any(words[1:] != words[:-1], axis=1)])
    run = np.cumsum(new)  # the pattern of each row, counted from 1
    if chunk_size is None or chunk_size >= n_rows:
        return int(run[-1])
    return int(np.max(run[chunk_size - 1:] - run[:n_rows - chunk_size + 1])) + 1


def slot_groups(X, covariance_type, n_components, tuning, chunk_size=None) -> SlotGroups | None:
    """The groups of a fit of a concrete ``X`` with NaN entries, or None where one slot count serves.

    Only full and tied covariances have slots. Rows are grouped by their count
    of NaN entries, a group closing once it holds ``tuning.min_chunk_rows``
    rows (fewer would cost a compiled pass of their own for little work),
    the last group taking whatever remains. ``chunk_size``: the caller's rows
    per chunk, kept in every group; None: each group's own
    (:func:`missing_chunk_size`; for the complete rows ``_pass.chunk_rows``).
    A group whose chunks hold few distinct patterns (at most
    ``tuning.pattern_sums_max_share`` per row, and a one-hot of its patterns
    no larger than ``tuning.chunk_elements``) sums its conditional
    covariances per pattern. Under a transformation (``X`` a tracer) the
    counts cannot be read, and below ``tuning.slot_groups_min_rows`` rows
    the groups' compile time is not worth it: None.
    """
    if covariance_type not in ("full", "tied") or isinstance(X, jax.core.Tracer):
        return None
    if X.shape[0] < tuning.slot_groups_min_rows:
        return None
    if isinstance(X, np.ndarray):
        keys = _sort_keys(np.isnan(X))
    else:
        with jax.ensure_compile_time_eval():  # concrete even where called inside a trace
            keys = tuple(np.asarray(k) for k in _device_sort_keys(X))
    counts = keys[-1]
    n_features = X.shape[1]
    bounds, sizes, held = [], [], 0
    for n_missing, n_rows in enumerate(np.bincount(counts, minlength=n_features + 1).tolist()):
        held += n_rows
        if held >= tuning.min_chunk_rows:
            bounds.append(n_missing)
            sizes.append(held)
            held = 0
    if held:  # the rows missing the most entries, too few for a group of their own
        if sizes:
            sizes[-1] += held
        else:
            sizes.append(held)
            bounds.append(0)
        bounds[-1] = int(counts.max())
    if len(sizes) < 2:
        return None
    words = np.stack(keys[:-1], axis=1)[np.lexsort(keys)]  # the patterns in the order of sorted_rows

    def group(start, n_rows, n_slots):
        if chunk_size is not None:
            chunk = None if chunk_size >= n_rows else chunk_size
        elif n_slots == 0:
            chunk = _pass.chunk_rows(n_rows, n_components, n_features, covariance_type, tuning)
        else:
            chunk = missing_chunk_size(n_rows, n_components, n_features, covariance_type, n_slots, tuning)
        if n_slots == 0:
            return SlotGroup(n_rows, 0, chunk)
        rows = n_rows if chunk is None else _rows.even_chunks(n_rows, chunk)[1]  # what each chunk holds
        n_patterns = _most_patterns(words[start:start + n_rows], rows)
        if n_patterns > tuning.pattern_sums_max_share * rows or n_patterns * rows > tuning.chunk_elements:
            n_patterns = 0
        return SlotGroup(n_rows, n_slots, chunk, n_patterns)

    starts = np.cumsum([0, *sizes[:-1]]).tolist()
    return SlotGroups(tuple(group(a, n, b) for a, n, b in zip(starts, sizes, bounds, strict=True)))


def sorted_rows(X, w):
    """``X`` (N, D) and ``w`` (N,) sorted by the rows' NaN count, then by their pattern: :class:`SlotGroups`' order.

    The E-step sums do not depend on the order of the rows; sorted, each
    group is a contiguous static slice and within it the rows of each
    missingness pattern are a run.
    """
    order = _slot_order(X)
    return X[order], w[order]


def _slot_order(X):
    """The permutation of the rows of ``X`` that :func:`sorted_rows` applies (as :func:`slot_groups` sorts)."""
    return jnp.lexsort(_sort_keys(jnp.isnan(X)))


def accumulate_grouped(groups: SlotGroups, params, X, w, center, tuning):
    """The missing-data E-step sums of rows sorted into ``groups`` (:func:`sorted_rows`); full or tied ``params``.

    Returns ``(log_likelihood, weight_sum, nk, s1, s2)`` as
    :func:`accumulate_sums`. The complete rows (the group without slots)
    run the complete-data pass, the others the missing-data pass with their
    group's slot count. Full and tied statistics are plain sums over rows,
    so the groups' add up.
    """
    total, start = None, 0
    for n_rows, n_slots, chunk_size, n_patterns in groups.groups:
        Xg, wg = X[start:start + n_rows], w[start:start + n_rows]
        if n_slots == 0:
            part = tuple(_pass.accumulate_statistics(params, Xg, wg, chunk_size, center, tuning))
        else:
            part = accumulate_sums(missing_model(params.covariance_type, n_slots, n_patterns), params.means,
                                   params.precisions_cholesky, params.weights, Xg, wg, chunk_size, center)  # fmt: skip
        total = part if total is None else jax.tree_util.tree_map(jnp.add, total, part)
        start += n_rows
    return total


def _responsibilities(log_gauss, log_weights, w):
    """Log-likelihood sum, and weighted responsibilities (K, B), from (K, B) log-densities."""
    wlp = log_gauss + log_weights[:, None]
    log_norm = jax.nn.logsumexp(wlp, axis=0)
    resp = jnp.exp(wlp - log_norm[None]) * w[None, :]
    return jnp.sum(jnp.where(w > 0, w * log_norm, 0.0)), resp


def accumulate_sums(model, means, factor, weights, X, w, chunk_size=None, center=None):
    """One missing-data E-step pass over ``X`` (row chunks, centred at ``center``).

    Returns ``(log_likelihood, weight_sum, nk, s1, s2)``, the fields of
    ``_em.SufficientStatistics``, around ``means`` (in centred coordinates).
    Rows with nothing observed get zero weight.
    """
    consts = model.pass_constants(means, factor)
    log_weights = jnp.log(weights)

    def chunk(Xc, wc, _):
        wc = informative_weights(Xc, wc)
        log_gauss, feats = model.chunk_log_prob(consts, Xc)
        ll, resp = _responsibilities(log_gauss, log_weights, wc)
        return ll, jnp.sum(wc), jnp.sum(resp, axis=1), model.chunk_sums(consts, feats, resp)

    ll, weight_sum, nk, sums = _rows.sum_over_rows(chunk, X, w, chunk_size, center)
    s1, s2 = model.moments_from_sums(consts, sums, nk, means)
    return ll, weight_sum, nk, s1, s2


# ---------------------------------------------------------------------------
# Fitting: centre and start.


def initial_data(X, center):
    """``X`` with each NaN replaced by ``center`` (the fit's origin, a robust centre of its column's observed
    entries, ``_rows.robust_center``): the data the start is computed on.

    The initialisers (k-means and the others, then one M-step from their
    responsibilities) need complete rows. Imputing a centre shrinks the spread
    of the imputed features, so the starting variances there are too small;
    the first missing-data EM iterations correct them (each iteration cannot
    decrease the observed-data likelihood). This copy of ``X`` lives only
    while the start is computed.
    """
    return jnp.where(jnp.isnan(X), center[None, :], X)


# ---------------------------------------------------------------------------
# Scoring and imputation, through the same pass.


def _chunk_posterior(model, consts, log_weights, Xc):
    log_gauss, feats = model.chunk_log_prob(consts, Xc)  # (K, B)
    return log_gauss + log_weights[:, None], feats


def _posterior(model, consts, log_weights, Xc):
    """Log responsibilities (K, B) and ``log p(observed entries)`` (B,) of a chunk, and the pass's per-row quantities.

    The complete-data scorer's far-point rule (``_pass.map_scores``): where
    every component's density underflows, or its distance overflows (a row at
    1e20 in float32), no responsibility is finite, so the component nearest
    in Mahalanobis distance on the observed entries takes all the mass, as in
    the limit, and the log density is ``-inf``. The nearest components are
    computed only when a chunk has such a row.
    """
    wlp, feats = _chunk_posterior(model, consts, log_weights, Xc)
    far = ~jnp.isfinite(jnp.max(wlp, axis=0))  # (B,); NaN where inf - inf
    nearest = jax.lax.cond(jnp.any(far), lambda: model.nearest(consts, Xc),
                           lambda: jnp.zeros(Xc.shape[0], jnp.int32))  # fmt: skip
    log_norm = jax.nn.logsumexp(jnp.where(far[None], 0.0, wlp), axis=0)
    one_hot = jax.nn.one_hot(nearest, wlp.shape[0], dtype=wlp.dtype).T  # (K, B)
    log_resp = jnp.where(far[None], jnp.log(one_hot), wlp - log_norm[None])
    return log_resp, jnp.where(far, -jnp.inf, log_norm), feats


def _map_rows(params, data, n_slots, chunk_size, per_chunk):
    """``per_chunk(model, consts, log_weights, center, chunk)``'s per-row outputs over the rows of ``data``.

    The missing-data pass of ``params`` in coordinates centred at the
    mixture's mean (float32 accuracy, as ``_likelihood``'s scorers); ``data``
    is ``X`` (N, D), or ``X`` with per-row columns after it, and chunks are
    handed over uncentred. ``n_slots``: one bound or :class:`SlotGroups`.
    """
    center = jax.lax.stop_gradient(_rows.mixture_center(params))
    log_weights = jnp.log(params.weights)

    def rows(n_slots, part, chunk_size):
        model = missing_model(params.covariance_type, n_slots)
        consts = model.pass_constants(params.means - center[None], params.precisions_cholesky)
        return _rows.map_over_rows(lambda chunk: per_chunk(model, consts, log_weights, center, chunk), part,
                                   chunk_size)  # fmt: skip

    return _map_slot_groups(rows, data, n_slots, chunk_size)


def weighted_log_prob(params, X, n_slots, chunk_size=None):
    """``log w_k + log p_k(x_n, observed entries)`` for every row and component: ``(N, K)``.

    Traceable, through :func:`_map_rows`. Rows with nothing observed get ``log w_k``.
    """

    def per_chunk(model, consts, log_weights, center, Xc):
        return _chunk_posterior(model, consts, log_weights, Xc - center[None])[0].T

    return _map_rows(params, X, n_slots, chunk_size, per_chunk)


def criterion_sums(params, X, w, n_slots, chunk_size=None):
    """``(sum_n w_n log p(x_n, observed), sum_n w_n max_k log r_nk)``, as ``_pass.criterion_sums`` (traceable)."""
    wlp = weighted_log_prob(params, X, n_slots, chunk_size)  # (N, K)
    log_norm = jax.nn.logsumexp(wlp, axis=1)
    keep = w > 0  # zero-weight rows count for nothing, even at -inf
    top = jnp.max(wlp, axis=1)
    return (jnp.sum(jnp.where(keep, w * log_norm, 0.0)), jnp.sum(jnp.where(keep, w * (top - log_norm), 0.0)))


def _conditional_means(model, feats, means):
    """Per component, the row completed with that component's conditional mean, centred: (K, B, D)."""
    if isinstance(model, MissingDiag):
        X0, obs, _ = feats
        return jnp.where(obs[None] > 0, X0[None], means[:, None, :])
    e = model.completion(feats)  # (K, D, B)
    return jnp.swapaxes(means[:, :, None] + e, 1, 2)


def _conditional_draw(model, feats, variances, k, eps):
    """A draw of the missing entries' deviation from component ``k``'s conditional mean: (B, D)."""
    if variances is not None:  # diag/spherical: independent entries
        return jnp.sqrt(variances[k]) * eps
    _, swept, miss, pos = feats
    if swept is None:  # full/tied without a missing entry in the data
        return jnp.zeros_like(eps)
    s = swept.shape[1] - 1
    rows = jnp.arange(eps.shape[0])
    cov = jnp.moveaxis(-swept[:, :s, :s, :], -1, 1)[k, rows]  # (B, S, S), the chosen component's
    # Imputation is not the EM pass: one small LAPACK factorisation per row is fine here.
    slots = jnp.einsum("bij,bj->bi", jnp.linalg.cholesky(cov), eps[:, :s])  # (B, S)
    return jnp.where(miss, jnp.take_along_axis(slots, pos, axis=1), 0.0)


def _impute_chunk(model, consts, log_weights, means, variances, Xc, noise=None):
    """Imputed chunk (B, D): the posterior mean, or with ``noise`` (B, D + K) a draw."""
    log_resp, _, feats = _posterior(model, consts, log_weights, Xc)
    completed = _conditional_means(model, feats, means)  # (K, B, D)
    miss = jnp.isnan(Xc)
    if noise is None:
        resp = jnp.exp(log_resp)  # (K, B)
        filled = jnp.sum(jnp.where(resp[:, :, None] > 0, resp[:, :, None] * completed, 0.0), axis=0)
    else:
        n_features = Xc.shape[1]
        eps, gumbel = noise[:, :n_features], noise[:, n_features:]
        # A component per row from its posterior (Gumbel-max), then the
        # missing block from that component's conditional Gaussian.
        k = jnp.argmax(log_resp.T + gumbel, axis=1)  # (B,)
        chosen = jnp.take_along_axis(completed, k[None, :, None], axis=0)[0]
        filled = chosen + _conditional_draw(model, feats, variances, k, eps)
    return jnp.where(miss, filled, Xc)


@functools.partial(jax.jit, static_argnames=("n_slots", "chunk_size"))
@float32_matmuls
def log_resp_and_norm(params, X, n_slots, chunk_size=None):
    """``(log responsibilities (N, K), log p(observed entries) (N,))``; 0 for a row with nothing observed.

    Traceable, through :func:`_map_rows`, with the far-point rule of :func:`_posterior`.
    """

    def per_chunk(model, consts, log_weights, center, Xc):
        log_resp, log_norm, _ = _posterior(model, consts, log_weights, Xc - center[None])
        return log_resp.T, log_norm

    return _map_rows(params, X, n_slots, chunk_size, per_chunk)


def _map_slot_groups(rows, X, n_slots, chunk_size):
    """``rows(n_slots, X, chunk_size)``'s per-row outputs, with ``n_slots`` one bound or :class:`SlotGroups`.

    In slot groups the rows are sorted by their NaN count, each group is
    mapped with its own bound, and the outputs are put back in the order of
    ``X``.
    """
    if not isinstance(n_slots, SlotGroups):
        return rows(n_slots, X, chunk_size)
    order = _slot_order(X)
    X_sorted, parts, start = X[order], [], 0
    for n_rows, group_slots, group_chunk, _ in n_slots.groups:
        parts.append(rows(group_slots, X_sorted[start:start + n_rows], group_chunk))
        start += n_rows
    inverse = jnp.zeros_like(order).at[order].set(jnp.arange(X.shape[0], dtype=order.dtype))
    return jax.tree_util.tree_map(lambda *a: jnp.concatenate(a)[inverse], *parts)


def scoring_options(params, X):
    """The static ``(n_slots, chunk_size)`` of the missing-data pass for ``params`` on a validated ``X``.

    ``n_slots`` is the :class:`SlotGroups` of a concrete ``X`` on one device
    when its rows fall into several, else one bound for all rows.
    """
    kind = params.covariance_type
    groups = slot_groups(X, kind, params.n_components, _tuning.for_data(X)) if _sharding.row_blocks(X) == 1 else None
    if groups is not None:
        return groups, None
    n_slots = max_missing(X) if kind in ("full", "tied") else 0
    return n_slots, missing_chunk_size(X.shape[0], params.n_components, params.n_features, kind, n_slots)


@functools.partial(jax.jit, static_argnames=("n_slots", "chunk_size", "sample"))
@float32_matmuls
def _impute(key, params, X, n_slots, chunk_size, sample):
    n_samples, n_features = X.shape

    def per_chunk(model, consts, log_weights, center, chunk):
        means = consts["means"]
        variances = 1.0 / jnp.square(consts["factor"]) if isinstance(model, MissingDiag) else None  # (K, D)
        Xc, noise = chunk[:, :n_features] - center[None], (chunk[:, n_features:] if sample else None)
        return _impute_chunk(model, consts, log_weights, means, variances, Xc, noise) + center[None]

    data = X
    if sample:
        # Per-row noise travels with the rows (map_over_rows slices one array).
        normal_key, gumbel_key = jax.random.split(key)
        eps = jax.random.normal(normal_key, (n_samples, n_features), X.dtype)
        gumbel = jax.random.gumbel(gumbel_key, (n_samples, params.n_components), X.dtype)
        data = jnp.concatenate([X, eps, gumbel], axis=1)  # the same NaN per row as X
    out = _map_rows(params, data, n_slots, chunk_size, per_chunk)
    return jnp.where(jnp.isnan(X), out, X)


def impute(params, X, *, sample: bool = False, key=None):
    """Fills the NaN entries of ``X`` from the mixture, given each row's observed entries.

    By default each missing entry becomes its conditional expectation,
    ``E[x_m | x_o] = sum_k p(k | x_o) E_k[x_m | x_o]``: the
    responsibility-weighted conditional means (for full and tied covariances
    ``E_k[x_m | x_o] = mu_m + Sigma_mo Sigma_oo^-1 (x_o - mu_o)``; for diag and
    spherical the component mean). With ``sample=True`` each row instead
    draws a component from ``p(k | x_o)`` and then its missing block from
    that component's conditional Gaussian (multiple imputation: call it with
    several keys). A row with nothing observed is filled from the prior: the
    mixture mean, or a draw from the mixture.

    ``params`` comes first, as in every scoring function (``log_prob(params,
    X)``), because the default is deterministic; the randomness a draw needs
    is the explicit ``key`` that ``sample=True`` requires (no hidden state).

    Args:
      params: the mixture (``GMMParams``).
      X: ``(n_samples, n_features)`` data with NaN marking missing entries
        (inf is an error).
      sample: draw from the conditional distribution instead of filling in
        its mean.
      key: PRNG key (``jax.random.key(seed)``); required with
        ``sample=True``, not accepted without it.

    Returns:
      ``(n_samples, n_features)``: ``X`` with its NaN entries filled; the
      observed entries are returned unchanged.

    Example:
      >>> import jax, jax.numpy as jnp, gmm_jax as gmm
      >>> params = gmm.GMMParams.from_covariances(
      ...     jnp.array([1.0]), jnp.array([[0.0, 0.0]]),
      ...     jnp.array([[[1.0, 0.8], [0.8, 1.0]]]), "full")
      >>> X = jnp.array([[1.0, jnp.nan], [jnp.nan, -2.0]])
      >>> [[round(float(v), 3) for v in row] for row in gmm.impute(params, X)]   # Sigma_mo / Sigma_oo = 0.8
      [[1.0, 0.8], [-1.6, -2.0]]
      >>> gmm.impute(params, X, sample=True, key=jax.random.key(0)).shape
      (2, 2)
    """
    X = check_params_and_data(params, X, nan_policy="marginalize")
    if sample not in (True, False):
        raise TypeError(f"sample must be True or False, got {sample!r}.")
    if sample and key is None:
        raise ValueError("impute(..., sample=True) draws random values: pass key=jax.random.key(seed).")
    if not sample and key is not None:
        raise ValueError("key is only used with sample=True (the default fills in conditional means).")
    if sample:
        _validation.check_key(key)
    n_slots, chunk_size = scoring_options(params, X)
    return _impute(key, params.astype(X.dtype), X, n_slots=n_slots, chunk_size=chunk_size, sample=bool(sample))
