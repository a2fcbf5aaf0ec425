"""Row-chunked reductions inside compiled code.

An EM iteration only needs *sums over samples* of per-sample quantities. For
large ``N`` the per-sample intermediates (``(N, K)`` responsibilities, ``(N,
K, D)`` differences) would not fit in memory or cache, so the sums run over
fixed-size chunks of rows in a ``fori_loop`` that slices the data in place:
memory is bounded by the chunk, never by ``N``, and no padded copy of ``X`` is
made (a ragged last chunk is handled with its own static shape). How many rows
a chunk holds is the pass's choice (``_pass.chunk_rows``, from ``_tuning``).

Sharded data. When ``X`` is split along the sample axis over ``P`` devices, a
dynamic slice of that axis would make XLA gather all of ``X`` onto every
device. A :class:`RowBlocks` layout instead views the rows as ``(P, N / P)``,
one block per device, and chunks along the *local* axis under ``vmap``: each
device loops over its own rows, the per-block sums stay on their device, and
the final sum over blocks is the only cross-device reduction (an all-reduce of
the statistics that XLA's SPMD partitioner inserts by itself).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

class RowBlocks(NamedTuple):
    """Static row layout for data sharded along the sample axis.

    Passed wherever a ``chunk_size`` is accepted: the ``N`` rows are
    ``n_blocks`` contiguous blocks of ``N / n_blocks`` rows (one per device
    holding a distinct shard), each processed in chunks of ``chunk_size`` rows.
    """

    n_blocks: int
    chunk_size: int | None  # rows per chunk within a block; None: the whole block


def widen_chunks(chunk_size, factor: int):
    """The layout ``chunk_size`` with ``factor`` times the rows per chunk (``None`` stays ``None``).

    A pass whose per-row intermediate is ``factor`` times narrower than the
    one ``chunk_size`` was sized for keeps the same bound on elements per
    chunk with ``factor`` times the rows, and pays the loop overhead less often.
    """
    if chunk_size is None or factor <= 1:
        return chunk_size
    if isinstance(chunk_size, RowBlocks):
        return chunk_size._replace(chunk_size=widen_chunks(chunk_size.chunk_size, factor))
    return chunk_size * factor


def _blocked(X, n_blocks):
    """``(N, ...)`` viewed as ``(n_blocks, N / n_blocks, ...)``: free for a row-sharded array."""
    return X.reshape(n_blocks, X.shape[0] // n_blocks, *X.shape[1:])


def take_rows(X, index, chunk_size=None):
    """``X[index]`` for an integer array ``index``, without gathering a row-sharded ``X``.

    With a :class:`RowBlocks` layout, each index is split into (block, row in
    block): the row is sliced from every block along the local axis (a
    ``(n_blocks, ..., D)`` array, not ``(N, D)``) and the wanted block is
    selected with a masked sum, which XLA lowers to a small all-reduce.
    """
    if not isinstance(chunk_size, RowBlocks):
        return X[index]
    blocks = _blocked(X, chunk_size.n_blocks)
    block, row = jnp.divmod(index, blocks.shape[1])
    candidates = jnp.take(blocks, row, axis=1)  # (n_blocks, *index.shape, D)
    mask = jnp.arange(chunk_size.n_blocks).reshape((-1,) + (1,) * index.ndim) == block[None]
    return jnp.sum(jnp.where(mask[..., None], candidates, 0), axis=0)


def _tree_rows(f, tree):
    return jax.tree_util.tree_map(f, tree)


def _centred(X, center):
    return X if center is None else X - center[None, :]


def cumsum_rows(values, chunk_size=None):
    """``(cumsum(values) (N,), its last entry ())``; per device for a :class:`RowBlocks` layout.

    Each block's running sum is local; only the ``n_blocks`` block totals are
    exchanged to offset them.
    """
    if not isinstance(chunk_size, RowBlocks):
        cdf = jnp.cumsum(values)
        return cdf, cdf[-1]
    local = jnp.cumsum(_blocked(values, chunk_size.n_blocks), axis=1)
    ends = jnp.cumsum(local[:, -1])
    offsets = jnp.concatenate([jnp.zeros((1,), ends.dtype), ends[:-1]])
    return (local + offsets[:, None]).reshape(values.shape), ends[-1]


_ALIGN_ROWS = 256


def even_chunks(n: int, chunk_size: int) -> tuple[int, int]:
    """``(chunks, rows per chunk)``: ``n`` rows in as many chunks of ``chunk_size`` as they need, spread evenly.

    The chunks all have one size and the last one ends at row ``n``, so it
    overlaps the one before. Spreading the rows evenly keeps the overlap
    small; rounding up to a multiple of 256 rows keeps the matrix products
    aligned (an odd 7,693-row chunk made a full-covariance EM iteration on
    10^5 x 8 rows, K=8, 60% slower than 8,192 rows).
    """
    n_chunks = -(-n // chunk_size)
    even = -(-n // n_chunks)
    if chunk_size >= _ALIGN_ROWS:
        even = min(chunk_size, -(-even // _ALIGN_ROWS) * _ALIGN_ROWS)
    return n_chunks, even


def sum_over_rows(fn, X, w, chunk_size, center=None, unroll=1):
    """``sum_c fn(X_c - center, w_c, row_offset_c)`` over row chunks; ``fn`` returns a pytree.

    Centring chunk by chunk keeps float32 accurate on data far from the origin
    without ever holding a centred copy of ``X``.

    Args:
      fn: ``fn(X_chunk (B, D), w_chunk (B,), offset ()) -> pytree`` of sums;
        ``offset`` is the chunk's first row in ``X``.
      X: ``(N, D)``.
      w: ``(N,)``, or a pytree of per-row arrays ``(N, ...)`` (e.g. weights and
        a running per-row quantity) handed to ``fn`` chunk by chunk alongside
        ``X``. Per-row arrays must travel this way rather than be sliced by
        ``offset`` inside ``fn``: with sharded rows, ``fn`` runs per device and
        a slice of a row-sharded array captured whole would gather it.
        Its first leaf is the rows' weight, and ``fn`` must give rows of
        zero weight no part in its sums (as for zero-weight padding): every
        chunk has ``chunk_size`` rows, so ``fn`` is compiled once, and the
        last one ends at row ``N``, holding the rows it shares with the one
        before at zero weight.
      chunk_size: rows per chunk (static), ``None`` for a single chunk, or a
        :class:`RowBlocks` layout for row-sharded data.
      center: optional ``(D,)`` subtracted from every row.
      unroll: chunks per step of the loop (static). The chunks' sums do not
        depend on each other, so with ``unroll > 1`` the runtime may overlap
        one chunk's work with the next one's (useful where a chunk's steps
        leave cores idle; see ``_tuning.Tuning.full_unroll``).
    """
    if isinstance(chunk_size, RowBlocks):
        n_blocks, chunk_size = chunk_size
        block_rows = X.shape[0] // n_blocks

        def block_sum(Xb, wb, block_offset):
            return sum_over_rows(lambda Xc, wc, o: fn(Xc, wc, o + block_offset), Xb, wb, chunk_size, center, unroll)

        offsets = jnp.arange(n_blocks, dtype=jnp.int32) * block_rows
        per_block = jax.vmap(block_sum)(_blocked(X, n_blocks), _tree_rows(lambda a: _blocked(a, n_blocks), w), offsets)
        return jax.tree_util.tree_map(lambda a: jnp.sum(a, axis=0), per_block)
    n = X.shape[0]
    if chunk_size is None or chunk_size >= n:
        return fn(_centred(X, center), w, jnp.zeros((), jnp.int32))
    n_chunks, chunk_size = even_chunks(n, chunk_size)

    def body(i, acc):
        # One chunk shape, so fn is compiled once: the last chunk ends at row N
        # and overlaps the one before, whose rows it holds with zero weight.
        start = jnp.minimum(i * chunk_size, n - chunk_size)
        Xc = _centred(jax.lax.dynamic_slice_in_dim(X, start, chunk_size), center)
        wc = _tree_rows(lambda a: jax.lax.dynamic_slice_in_dim(a, start, chunk_size), w)
        fresh = start + jnp.arange(chunk_size, dtype=jnp.int32) >= i * chunk_size
        leaves, tree = jax.tree_util.tree_flatten(wc)
        fresh = fresh.reshape(fresh.shape + (1,) * (leaves[0].ndim - 1))  # weights may be (B, K) responsibilities
        weight = jnp.where(fresh, leaves[0], jnp.zeros((), leaves[0].dtype))
        part = fn(Xc, jax.tree_util.tree_unflatten(tree, [weight, *leaves[1:]]), start)
        return jax.tree_util.tree_map(jnp.add, acc, part)

    shapes = jax.eval_shape(fn, X[:chunk_size], _tree_rows(lambda a: a[:chunk_size], w), jnp.zeros((), jnp.int32))
    zeros = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    return jax.lax.fori_loop(0, n_chunks, body, zeros, unroll=min(unroll, n_chunks))


def map_over_rows(fn, X, chunk_size, center=None):
    """``concatenate_c fn(X_c - center)`` over row chunks, for per-row outputs such as labels.

    Args:
      fn: ``fn(X_chunk (B, D)) -> (B, ...)`` array, or a pytree of them.
      X: ``(N, D)``.
      chunk_size: rows per chunk (static), ``None``, or a :class:`RowBlocks` layout.
      center: optional ``(D,)`` subtracted from every row.

    Returns:
      ``fn``'s outputs for all rows, ``(N, ...)``, written chunk by chunk into
      one buffer each (no per-chunk copies are kept).
    """
    tree_map = jax.tree_util.tree_map
    if isinstance(chunk_size, RowBlocks):
        n_blocks, chunk_size = chunk_size
        out = jax.vmap(lambda Xb: map_over_rows(fn, Xb, chunk_size, center))(_blocked(X, n_blocks))
        return tree_map(lambda a: a.reshape(X.shape[0], *a.shape[2:]), out)
    n = X.shape[0]
    if center is not None:
        return map_over_rows(lambda Xc: fn(Xc - center[None, :]), X, chunk_size)
    if chunk_size is None or chunk_size >= n:
        return fn(X)
    n_chunks, chunk_size = even_chunks(n, chunk_size)

    def body(i, out):
        start = jnp.minimum(i * chunk_size, n - chunk_size)  # the last chunk ends at row N (fn compiled once)
        part = fn(jax.lax.dynamic_slice_in_dim(X, start, chunk_size))
        return tree_map(lambda o, a: jax.lax.dynamic_update_slice_in_dim(o, a, start, axis=0), out, part)

    shapes = jax.eval_shape(fn, X[:chunk_size])
    out = tree_map(lambda s: jnp.zeros((n, *s.shape[1:]), s.dtype), shapes)
    return jax.lax.fori_loop(0, n_chunks, body, out)


# ---------------------------------------------------------------------------
# The working origin.

# Rows the robust centre is the median of: enough that the median of a row
# sample lies well inside the bulk of the data (its standard error is ~0.22
# standard deviations), few enough that its S^2 pairs cost little beside the
# mean even for a thousand seed-sized fits under one vmap (benchmarks/README.md,
# "The working origin").
CENTER_SAMPLE_ROWS = 32
# The mean is an origin inside the bulk when at least this fraction of the
# sample's weight lies on each side of it.
_BULK_FRACTION = 0.1


def weighted_median(X, w):
    """``(D,)`` per-column weighted median of the rows of a small ``X`` (``(S, D)``), weights ``w`` (``(S,)``).

    The lower weighted median: the smallest value of a column at which the
    weight of the entries at or below it reaches half the column's weight.
    NaN entries carry no weight (a column with no weight gets ``inf``; see
    :func:`robust_center`). Computed from all ``S^2`` pairs at once (each
    value's weight at or below it) rather than by a sort or a bisection loop:
    for the 32 rows it is used on, that is one fused loop, which compiles in
    a fraction of the time of a loop and runs faster than a sort on CPU.
    """
    observed = ~jnp.isnan(X)
    weight = jnp.where(observed, w[:, None].astype(X.dtype), 0.0).T  # (D, S): columns first, pairs last
    values = jnp.where(weight > 0, X.T, jnp.inf)
    at_or_below = jnp.sum(jnp.where(values[:, None, :] <= values[:, :, None], weight[:, None, :], 0.0), axis=2)
    reaches = (at_or_below >= 0.5 * jnp.sum(weight, axis=1)[:, None]) & (weight > 0)
    return jnp.min(jnp.where(reaches, values, jnp.inf), axis=1)


def robust_center(X, w, *, missing: bool = True):
    """``(D,)`` the origin a fit works in: the weighted data mean, or a median where rows far off move the mean.

    EM runs in coordinates centred here, so that rounding is relative to the
    bulk of the data. The mean is the best such origin for ordinary data (it
    minimises the second moments whose rounding the pass carries), but it is
    not robust: one float32 row at 1e10 among points of unit scale moves it to
    ~3e7, where float32 keeps no digits of the bulk (its spacing there is 4),
    and every fit of such data failed. So each column's origin is its weighted
    mean unless less than a tenth of the weight of a 32-row sample
    (``CENTER_SAMPLE_ROWS`` evenly spaced rows) lies on one side of it, that
    is, unless the mean lies outside the bulk of the column; then it is the
    sample's weighted median, which a few far rows do not move. (The mean of a
    mixture can lie far from its median in units of the spread of one
    component, and that is fine: only a mean outside the data is not.) NaN
    entries (missing data) and zero-weight rows are ignored; a column the
    sample holds no weight of keeps its mean.

    Only rounding depends on the origin, and the values a missing-data start
    imputes (``_missing.initial_data``).

    ``missing=False`` (static) says ``X`` has no NaN: the mean is then one
    matrix-vector product, without the ``(N, D)`` select and conversion of
    the masked one (45 ms of a 10^6 x 16 fit).
    """
    n = X.shape[0]
    stride = max(1, -(-n // CENTER_SAMPLE_ROWS))
    sample, sample_w = X[::stride], w[::stride]
    if missing:
        observed = ~jnp.isnan(X)
        mean = (w @ jnp.where(observed, X, 0.0)) / (w @ observed.astype(X.dtype))
    else:
        mean = (w @ X) / jnp.sum(w)
    weight = jnp.where(jnp.isnan(sample), 0.0, sample_w[:, None].astype(X.dtype))
    total = jnp.sum(weight, axis=0)
    below = jnp.sum(jnp.where(sample < mean[None], weight, 0.0), axis=0)  # NaN entries compare False
    above = jnp.sum(jnp.where(sample > mean[None], weight, 0.0), axis=0)
    outside = (below < _BULK_FRACTION * total) | (above < _BULK_FRACTION * total)
    median = weighted_median(sample, sample_w)
    far = (total > 0) & outside & jnp.isfinite(median)
    return jnp.where(far, median, mean)


def mixture_center(params):
    """``(D,)`` the origin scoring ``params`` works in: the weight-weighted median of the component means.

    Robust for the same reason as :func:`robust_center`: a component of tiny
    weight far from the others (fitted to an outlier) must not move the
    origin away from the bulk of the mixture, as the mixture mean would.
    """
    return weighted_median(params.means, params.weights)
