"""Hierarchical starts for EM, as mclust's ``hc``: ``init="hierarchical"``.

mclust starts EM from model-based hierarchical agglomeration (``hc``): every
point begins as its own cluster and the pair whose merge costs the least
classification likelihood is merged, ``N - 1`` times; cutting the tree at
``K`` clusters gives the starting classification for every ``K`` at once.
mclust's default criterion is the ``VVV`` one (:func:`vvv_merges`, its
``hcVVV``, regularised by ``alpha`` and ``beta`` while clusters are small);
for the spherical equal-volume model (``EII``) the cost is Ward's,
``n_i n_j / (n_i + n_j) |c_i - c_j|^2`` (:func:`ward_merges`). Like mclust's
default (``hcUse = "SVD"``) the agglomeration runs on the data standardised
and whitened by its singular value decomposition, ``Z = X_std V D^(-1/2)``,
so it does not depend on the units of the features.

Everything is JAX: each agglomeration is one loop over the merges on an
``(S, S)`` matrix of merge costs, whose row minima are kept so that a merge
costs ``O(S)`` comparisons, not ``O(S^2)``. Like mclust (its ``subset``
option, 2,000 rows by default) the tree is built on at most
:data:`SUBSET_ROWS` rows, drawn uniformly among those with positive weight
when there are more; the start is then the M-step (the MAP one with a prior)
of the sampled rows' classification, and EM runs on all rows.
:func:`tree` builds it once, :func:`start` cuts it at any (traced) ``K``.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from gmm_jax import _em, _pass, _rows, _tuning
from gmm_jax._params import GMMParams
from gmm_jax._tuning import Tuning

__all__ = ["SUBSET_ROWS", "Tree", "tree", "start", "whiten", "ward_merges", "vvv_merges", "labels_at",
           "initial_params"]  # fmt: skip

# At most this many rows are agglomerated. mclust's default subset is 2,000;
# hcVVV costs O(S^2 D^3) and S = 1,000 keeps it near a second at D = 8 on two
# cores (benchmarks/README.md, "The hierarchical start").
SUBSET_ROWS = 1000


class Tree(NamedTuple):
    """An agglomeration of a subset of the rows, to cut at any number of clusters.

    Attributes:
      rows: ``(S,)`` int, the rows of ``X`` that were agglomerated (ascending).
      alive: ``(S,)`` bool, which of them have positive weight (the others
        take no part).
      merges: ``(S - 1, 2)`` int, merge ``t`` put cluster ``merges[t, 1]``
        into ``merges[t, 0]`` (positions in ``rows``); only the first
        ``sum(alive) - 1`` are merges.
    """

    rows: jax.Array
    alive: jax.Array
    merges: jax.Array


def whiten(X, alive=None) -> jax.Array:
    """mclust's ``"SVD"`` transformation: standardised columns times ``V D^(-1/2)``: ``(N, min(N, D))``.

    With ``alive`` (``(N,)`` bool) the statistics are those of the alive rows
    and the other rows come out as zeros.
    """
    if alive is None:
        alive = jnp.ones(X.shape[:1], bool)
    mask = alive[:, None]
    n = jnp.maximum(jnp.sum(alive), 2).astype(X.dtype)
    X = jnp.where(mask, X, 0.0)
    centred = jnp.where(mask, X - (jnp.sum(X, axis=0) / n)[None, :], 0.0)
    std = jnp.sqrt(jnp.sum(centred * centred, axis=0) / (n - 1))
    Xs = centred / jnp.where(std > 0, std, 1.0)[None, :]
    _, s, vt = jnp.linalg.svd(Xs, full_matrices=False)
    return Xs @ vt.T / jnp.sqrt(jnp.where(s > 0, s, 1.0))[None, :]


# ---------------------------------------------------------------------------
# The agglomeration loop, shared by every merge criterion.


def _agglomerate(cost, clusters, alive, merged_row):
    """The merges of a greedy agglomeration: ``(S - 1, 2)`` ints.

    Args:
      cost: ``(S, S)`` the cost of merging each pair of singletons (``inf`` on
        the diagonal; rows and columns of dead rows are set to ``inf`` here).
      clusters: a pytree of per-cluster arrays (leading axis ``S``), indexed
        by the cluster's first row.
      alive: ``(S,)`` bool.
      merged_row: ``fn(clusters, i, j) -> (clusters, row)``: the clusters
        after merging ``j`` into ``i``, and the cost ``(S,)`` of merging the
        new cluster ``i`` with every cluster (any value where dead).

    Each step merges the pair of least cost; ties go to the lowest flat index
    of the cost matrix, so the result is deterministic. The minimum of every
    row is kept, and only rows whose minimum was at ``i`` or ``j`` are searched
    again.
    """
    s = cost.shape[0]
    index = jnp.arange(s)
    inf = jnp.asarray(jnp.inf, cost.dtype)
    cost = jnp.where(alive[:, None] & alive[None, :] & (index[:, None] != index[None, :]), cost, inf)
    n_merges = jnp.sum(alive) - 1

    def merge(state):
        t, cost, row_min, row_arg, clusters, live, merges = state
        a = jnp.argmin(row_min)
        b = row_arg[a]
        i, j = jnp.minimum(a, b), jnp.maximum(a, b)
        clusters, row = merged_row(clusters, i, j)
        live = live & (index != j)
        row = jnp.where(live & (index != i), row, inf)
        cost = cost.at[i, :].set(row).at[:, i].set(row).at[j, :].set(inf).at[:, j].set(inf)
        # Rows whose minimum was at i or j search again; the others compare with column i.
        stale = live & ((row_arg == i) | (row_arg == j))
        better = live & ((row < row_min) | ((row == row_min) & (i < row_arg)))
        row_arg = jnp.where(better & ~stale, i, row_arg)
        row_min = jnp.where(better & ~stale, row, row_min)
        stale = stale.at[i].set(live[i])
        row_min = row_min.at[j].set(inf)

        def research(carry):
            row_min, row_arg, stale = carry
            r = jnp.argmax(stale)
            return row_min.at[r].set(jnp.min(cost[r])), row_arg.at[r].set(jnp.argmin(cost[r])), stale.at[r].set(False)

        row_min, row_arg, _ = jax.lax.while_loop(lambda c: jnp.any(c[2]), research, (row_min, row_arg, stale))
        merges = merges.at[t].set(jnp.stack([i, j]).astype(jnp.int32))
        return t + 1, cost, row_min, row_arg, clusters, live, merges

    init = (jnp.zeros((), jnp.int32), cost, jnp.min(cost, axis=1), jnp.argmin(cost, axis=1), clusters, alive,
            jnp.zeros((s - 1, 2), jnp.int32))  # fmt: skip
    return jax.lax.while_loop(lambda st: st[0] < n_merges, merge, init)[6]


@jax.jit
def ward_merges(Z, alive=None) -> jax.Array:
    """The merges of Ward agglomeration (mclust's ``hcEII``) of the rows of ``Z``: ``(S - 1, 2)`` ints.

    Row ``t`` is ``(i, j)``: cluster ``j`` was merged into cluster ``i``
    (clusters are named by one of their rows).
    """
    s = Z.shape[0]
    if alive is None:
        alive = jnp.ones((s,), bool)
    sq = jnp.sum(Z * Z, axis=1)
    cost = 0.5 * jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * Z @ Z.T, 0.0)  # n_i n_j / (n_i + n_j) = 1/2

    def merged_row(clusters, i, j):
        centres, sizes = clusters
        ni, nj = sizes[i], sizes[j]
        centre = (ni * centres[i] + nj * centres[j]) / (ni + nj)
        centres = centres.at[i].set(centre)
        sizes = sizes.at[i].set(ni + nj).at[j].set(0.0)
        d = jnp.sum((centres - centre[None, :]) ** 2, axis=1)
        return (centres, sizes), sizes * (ni + nj) / (sizes + ni + nj) * d

    return _agglomerate(cost, (Z, alive.astype(Z.dtype)), alive, merged_row)


# Up to this many features the merge costs factor their batch of small
# matrices column by column (unrolled), beyond through slogdet's per-matrix
# kernel (benchmarks/README.md, "The hierarchical start").
_COLUMNWISE_LOGDET_D = 14


def _logdet_pd(A):
    """``log det A`` of a batch ``(..., D, D)`` of symmetric matrices, ``-inf`` where not positive definite."""
    d = A.shape[-1]
    if d > _COLUMNWISE_LOGDET_D:
        sign, logdet = jnp.linalg.slogdet(A)
        return jnp.where(sign > 0, logdet, -jnp.inf)
    # A right-looking Cholesky, one column per step over the whole batch.
    index = jnp.arange(d)

    def column(k, carry):
        A, logdet, ok = carry
        pivot = A[..., k, k]
        ok = ok & (pivot > 0)
        safe = jnp.where(pivot > 0, pivot, 1.0)
        col = jnp.where(index >= k, A[..., :, k], 0.0) / jnp.sqrt(safe)[..., None]
        A = A - col[..., :, None] * col[..., None, :]
        return A, logdet + jnp.log(safe), ok

    init = (A, jnp.zeros(A.shape[:-2], A.dtype), jnp.ones(A.shape[:-2], bool))
    _, logdet, ok = jax.lax.fori_loop(0, d, column, init, unroll=True)
    return jnp.where(ok, logdet, -jnp.inf)


def _vvv_term(n, scatter, trace, alpha, beta):
    """mclust's ``vvvtij``: ``n log(det(W / n) [n > D] + beta (tr W + alpha) / n)`` of clusters ``(...)``."""
    d = scatter.shape[-1]
    logdet = _logdet_pd(scatter) - d * jnp.log(n)
    det = jnp.where(n > d, jnp.exp(logdet), 0.0)
    return n * jnp.log(det + beta * (trace + alpha) / n)


@jax.jit
def vvv_merges(Z, alive=None, alpha_factor=1.0, beta=1.0) -> jax.Array:
    """The merges of mclust's model-based agglomeration for the ``VVV`` model (``hcVVV``): ``(S - 1, 2)`` ints.

    A cluster of ``n`` rows with scatter ``W`` costs ``n log(det(W / n) + beta
    (tr W + alpha) / n)`` (the determinant only once ``n > D``; mclust's
    ``vvvtij``), with ``alpha = alpha_factor * tr(W_total) / (N D)`` as mclust's
    ``hcVVV(alpha = 1, beta = 1)``. Each step merges the pair that increases
    the total cost least. ``O(S^2)`` memory and ``O(S^2 D^3)`` work.

    Args:
      Z: ``(S, D)`` rows (whitened: :func:`whiten`).
      alive: ``(S,)`` bool, the rows that take part (default all).

    Returns:
      ``(S - 1, 2)`` ints, as :func:`ward_merges`.
    """
    s, d = Z.shape
    dtype = Z.dtype
    if alive is None:
        alive = jnp.ones((s,), bool)
    n_alive = jnp.sum(alive).astype(dtype)
    mean = jnp.sum(jnp.where(alive[:, None], Z, 0.0), axis=0) / n_alive
    centred = jnp.where(alive[:, None], Z - mean[None, :], 0.0)
    alpha = jnp.maximum(alpha_factor * jnp.sum(centred * centred) / (n_alive * d), jnp.finfo(dtype).eps)
    single = jnp.log(alpha * beta)  # the cost of a one-row cluster
    # A pair of singletons: W = diff diff^T / 2 has trace |diff|^2 / 2, and
    # det(W / 2) = |diff|^2 / 4 when D = 1 (n = 2 > D), else it does not count.
    sq = jnp.sum(Z * Z, axis=1)
    pair = jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * Z @ Z.T, 0.0)
    det = 0.25 * pair if d == 1 else 0.0
    cost = 2.0 * jnp.log(det + beta * (0.5 * pair + alpha) / 2.0) - 2.0 * single

    def merged_row(clusters, i, j):
        centres, scatters, sizes, terms = clusters
        ni, nj = sizes[i], sizes[j]
        dc = centres[i] - centres[j]
        scatter = scatters[i] + scatters[j] + (ni * nj / (ni + nj)) * dc[:, None] * dc[None, :]
        centre = (ni * centres[i] + nj * centres[j]) / (ni + nj)
        size = ni + nj
        term = _vvv_term(size, scatter, jnp.trace(scatter), alpha, beta)
        centres = centres.at[i].set(centre)
        scatters = scatters.at[i].set(scatter)
        sizes = sizes.at[i].set(size).at[j].set(0.0)
        terms = terms.at[i].set(term)
        # The merged cluster against every other one.
        dm = centres - centre[None, :]
        other = jnp.where(sizes > 0, sizes, 1.0)
        joint = scatters + scatter[None] + (other * size / (other + size))[:, None, None] * dm[:, :, None] * dm[:, None, :]
        row = _vvv_term(other + size, joint, jnp.trace(joint, axis1=-2, axis2=-1), alpha, beta) - terms - term
        return (centres, scatters, sizes, terms), row

    clusters = (Z, jnp.zeros((s, d, d), dtype), alive.astype(dtype), jnp.full((s,), single, dtype))
    return _agglomerate(cost, clusters, alive, merged_row)


def labels_at(merges, n_clusters, alive=None, max_clusters: int | None = None) -> jax.Array:
    """Labels ``0..K-1`` of the rows after all but the last ``K - 1`` merges: ``(S,)`` ints.

    ``n_clusters`` may be traced if ``max_clusters`` (static) bounds it.
    Dead rows (``alive`` false) get label ``-1``.
    """
    s = merges.shape[0] + 1
    if alive is None:
        alive = jnp.ones((s,), bool)
    if max_clusters is None:
        max_clusters = int(n_clusters)
    return _labels_at(merges, jnp.asarray(n_clusters, jnp.int32), alive, max_clusters)


@functools.partial(jax.jit, static_argnames=("max_clusters",))
def _labels_at(merges, n_clusters, alive, max_clusters: int):
    s = merges.shape[0] + 1

    def step(t, owner):
        i, j = merges[t, 0], merges[t, 1]
        return jnp.where(owner == j, i, owner)

    n_merges = jnp.sum(alive) - jnp.minimum(n_clusters, jnp.sum(alive))
    owner = jax.lax.fori_loop(0, n_merges, step, jnp.arange(s, dtype=jnp.int32))
    owner = jnp.where(alive, owner, s)  # dead rows sort after every head
    heads = jnp.unique(owner, size=max_clusters, fill_value=s)
    return jnp.where(alive, jnp.searchsorted(heads, owner), -1).astype(jnp.int32)


# ---------------------------------------------------------------------------
# The start of a fit.


def _subset(key, w, n_rows: int):
    """``n_rows`` rows drawn uniformly without replacement among those with positive weight, ascending.

    Each row gets a uniform score (keyed by its index: the same sample
    whatever the chunking or the zero-weight padding rows) and the highest
    scores win. For row-sharded data XLA gathers the ``(N,)`` scores for the
    selection (not the rows: they are taken with ``_rows.take_rows``).
    """
    index = jnp.arange(w.shape[0], dtype=jnp.int32)
    u = jax.vmap(lambda r: jax.random.uniform(jax.random.fold_in(key, r), (), w.dtype))(index)
    _, rows = jax.lax.top_k(jnp.where(w > 0, u, -1.0), n_rows)
    return jnp.sort(rows).astype(jnp.int32)


def tree(key, X, w, chunk_size=None) -> Tree:
    """The ``hcVVV`` agglomeration of (at most :data:`SUBSET_ROWS` of) the rows with positive weight.

    Args:
      key: PRNG key for the subset (unused when every row fits).
      X: ``(N, D)`` rows (NaN-free; may be row-sharded with the layout
        ``chunk_size``); ``w``: ``(N,)`` weights (only ``w > 0`` matters).
    """
    X, w = jax.lax.stop_gradient((X, w))  # the classification is discrete
    n = X.shape[0]
    rows = jnp.arange(n, dtype=jnp.int32) if n <= SUBSET_ROWS else _subset(key, w, SUBSET_ROWS)
    Xs = X if n <= SUBSET_ROWS and not isinstance(chunk_size, _rows.RowBlocks) else _rows.take_rows(X, rows, chunk_size)
    alive = (w if n <= SUBSET_ROWS else _rows.take_rows(w[:, None], rows, chunk_size)[:, 0]) > 0
    return Tree(rows, alive, vvv_merges(whiten(Xs, alive), alive))


def start(hierarchy: Tree, X, w, n_components: int, covariance_type, reg_covar, center, tuning: Tuning,
          chunk_size=None, n_active=None, prior=None) -> GMMParams:  # fmt: skip
    """The M-step of the tree's classification at ``K`` clusters, in coordinates centred at ``center``.

    ``K`` is ``n_active`` (traced) when given, else ``n_components``; the
    components beyond it get weight 0. The sampled rows carry their weights.
    """
    k = n_components if n_active is None else n_active
    labels = labels_at(hierarchy.merges, k, hierarchy.alive, n_components)
    n = X.shape[0]
    whole = n <= SUBSET_ROWS
    Xs = X if whole and not isinstance(chunk_size, _rows.RowBlocks) else _rows.take_rows(X, hierarchy.rows, chunk_size)
    ws = w if whole else _rows.take_rows(w[:, None], hierarchy.rows, chunk_size)[:, 0]
    onehot = (labels[None, :] == jnp.arange(n_components)[:, None]).astype(X.dtype) * ws[None, :]
    Xc = Xs - center[None, :]
    counts = jnp.sum(onehot, axis=1)
    shift = (onehot @ Xc) / jnp.where(counts > 0, counts, 1.0)[:, None]  # moments around the class means
    stats = _pass.statistics_from_responsibilities(lambda *_: onehot, Xc, ws, shift, covariance_type, tuning)
    active = None if n_active is None else jnp.arange(n_components) < n_active
    return _em.params_from_statistics(stats, shift, covariance_type, reg_covar, prior=prior, active=active)


def initial_params(X, n_components: int, covariance_type: str, *, prior=None, reg_covar=1e-6) -> GMMParams:
    """Starting parameters from the hierarchical tree cut at ``n_components`` clusters (data coordinates).

    What ``gmm.fit(..., init="hierarchical")`` starts from; here for a look
    at the start itself.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from gmm_jax import _hierarchical
      >>> X = jnp.concatenate([jax.random.normal(jax.random.key(0), (20, 2)) - 5,
      ...                      jax.random.normal(jax.random.key(1), (20, 2)) + 5])
      >>> p = _hierarchical.initial_params(X, 2, "full")
      >>> sorted(p.means[:, 0].round().astype(int).tolist())
      [-5, 5]
    """
    X = jnp.asarray(X)
    w = jnp.ones(X.shape[:1], X.dtype)
    center = jnp.zeros(X.shape[1:], X.dtype)
    if prior is not None:
        prior = prior.astype(X.dtype)
    hierarchy = tree(jax.random.key(0), X, w)
    return start(hierarchy, X, w, n_components, covariance_type, jnp.asarray(reg_covar, X.dtype), center,
                 _tuning.for_data(X), prior=prior)  # fmt: skip
