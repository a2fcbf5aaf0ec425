"""Row-chunked reductions inside compiled code.

An EM iteration only needs *sums over samples* of per-sample quantities. For
large ``N`` the per-sample intermediates (``(N, K)`` responsibilities, ``(N,
K, D)`` differences) would not fit in memory or cache, so the sums run over
fixed-size chunks of rows in a ``fori_loop`` that slices the data in place:
memory is bounded by the chunk, never by ``N``, and no padded copy of ``X`` is
made (a ragged last chunk is handled with its own static shape).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# Elements of the largest per-chunk intermediate (about (chunk, K, D)). 2**20
# float32 values is 4 MiB: big enough to amortise the loop, small enough to
# stay near cache on a CPU (measured on 2 AMD EPYC cores: 2k-8k rows per chunk
# are within a few percent of each other for the EM pass; 256 rows cost 20-30%
# more). A GPU wants far more rows in flight per kernel.
_TARGET_CHUNK_ELEMENTS = {"cpu": 2**20}
_TARGET_CHUNK_ELEMENTS_ACCELERATOR = 2**24
_MIN_CHUNK = 256


def default_chunk_size(
    n_samples: int, n_components: int, n_features: int, covariance_type: str | None = None
) -> int | None:
    """Rows per chunk for an EM pass, or ``None`` to process all rows at once.

    ``covariance_type`` names the EM pass whose per-row width sets the chunk
    (``None``: ``K * D``, the widest); decided in Python, before tracing.
    """
    if covariance_type is None:
        width = n_components * max(n_features, 1)
    else:
        from gmm_jax import _covariance

        width = _covariance.covariance_model(covariance_type).pass_width(n_components, max(n_features, 1))
    target = _TARGET_CHUNK_ELEMENTS.get(jax.default_backend(), _TARGET_CHUNK_ELEMENTS_ACCELERATOR)
    chunk = max(_MIN_CHUNK, target // width)
    return None if chunk >= n_samples else chunk


def _centred(X, center):
    return X if center is None else X - center[None, :]


def sum_over_rows(fn, X, w, chunk_size, center=None):
    """``sum_c fn(X_c - center, w_c, row_offset_c)`` over row chunks; ``fn`` returns a pytree.

    Centring chunk by chunk keeps float32 accurate on data far from the origin
    without ever holding a centred copy of ``X``.

    Args:
      fn: ``fn(X_chunk (B, D), w_chunk (B,), offset ()) -> pytree`` of sums.
      X: ``(N, D)``.
      w: ``(N,)``.
      chunk_size: rows per chunk (static), or ``None`` for a single chunk.
      center: optional ``(D,)`` subtracted from every row.
    """
    n = X.shape[0]
    if chunk_size is None or chunk_size >= n:
        return fn(_centred(X, center), w, jnp.zeros((), jnp.int32))
    n_full = n // chunk_size

    def body(i, acc):
        start = i * chunk_size
        part = fn(
            _centred(jax.lax.dynamic_slice_in_dim(X, start, chunk_size), center),
            jax.lax.dynamic_slice_in_dim(w, start, chunk_size),
            start,
        )
        return jax.tree_util.tree_map(jnp.add, acc, part)

    first = fn(_centred(X[:chunk_size], center), w[:chunk_size], jnp.zeros((), jnp.int32))
    acc = jax.lax.fori_loop(1, n_full, body, first)
    rest = n - n_full * chunk_size
    if rest:
        start = n_full * chunk_size
        tail = fn(_centred(X[start:], center), w[start:], jnp.asarray(start, jnp.int32))
        acc = jax.tree_util.tree_map(jnp.add, acc, tail)
    return acc


def map_over_rows(fn, X, chunk_size, center=None):
    """``concatenate_c fn(X_c - center)`` over row chunks, for per-row outputs such as labels.

    Args:
      fn: ``fn(X_chunk (B, D)) -> (B, ...)`` array.
      X: ``(N, D)``.
      chunk_size: rows per chunk (static), or ``None``.
      center: optional ``(D,)`` subtracted from every row.
    """
    n = X.shape[0]
    if center is not None:
        return map_over_rows(lambda Xc: fn(Xc - center[None, :]), X, chunk_size)
    if chunk_size is None or chunk_size >= n:
        return fn(X)
    n_full = n // chunk_size
    first = fn(X[:chunk_size])
    out = jnp.zeros((n, *first.shape[1:]), first.dtype)
    out = jax.lax.dynamic_update_slice_in_dim(out, first, 0, axis=0)

    def body(i, out):
        start = i * chunk_size
        part = fn(jax.lax.dynamic_slice_in_dim(X, start, chunk_size))
        return jax.lax.dynamic_update_slice_in_dim(out, part, start, axis=0)

    out = jax.lax.fori_loop(1, n_full, body, out)
    if n > n_full * chunk_size:
        out = out.at[n_full * chunk_size :].set(fn(X[n_full * chunk_size :]))
    return out
