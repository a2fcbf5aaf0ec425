"""How data is laid out over devices, read from a ``jax.Array``'s sharding before tracing.

Sharding is decided by the caller: ``X`` arrives already split along the
sample axis (by :func:`gmm_jax.distributed.shard`, by
``jax.make_array_from_process_local_data`` across hosts, or by the user's own
``device_put``). The core only needs two static facts about it: into how many
row blocks ``X`` is split (so row chunking stays local to each device, see
``_rows.RowBlocks``), and where per-sample vectors such as ``sample_weight``
should live so that they are split the same way.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

__all__ = ["row_blocks", "row_sharding", "rows_like"]


def row_blocks(X) -> int:
    """Number of distinct row blocks of ``X`` across devices; ``1`` when not split by rows.

    Raises:
      ValueError: ``X`` is split unevenly along the rows.
    """
    if not isinstance(X, jax.Array) or isinstance(X, jax.core.Tracer):
        return 1  # a tracer's sharding is chosen by the enclosing jit
    n_rows = X.shape[0]
    local_rows = X.sharding.shard_shape(X.shape)[0]
    if local_rows >= n_rows:
        return 1
    if n_rows % local_rows:
        raise ValueError(
            f"X has {n_rows} rows split unevenly into shards of {local_rows} rows; shard it with "
            "gmm_jax.distributed.shard(X, sample_weight), which pads with zero-weight rows."
        )
    return n_rows // local_rows


def row_sharding(X):
    """The sharding of an ``(N,)`` vector split over devices like the rows of ``X``, or ``None``."""
    sharding = getattr(X, "sharding", None)
    if row_blocks(X) == 1 or not isinstance(sharding, NamedSharding):
        return None
    return NamedSharding(sharding.mesh, PartitionSpec(sharding.spec[0] if sharding.spec else None))


def rows_like(X, w):
    """``w`` (``(N,)``, or ``None`` for ones) placed so that its entries sit with the rows of ``X``.

    A no-op for unsharded ``X``, or when ``w`` is already a sharded array (in
    particular across processes, where only the caller can build it).
    """
    sharding = row_sharding(X)
    if sharding is None:
        return w
    if w is None:
        n, dtype = X.shape[0], X.dtype
        # Each process fills only its own shards: works on one host and across hosts.
        return jax.make_array_from_callback((n,), sharding, lambda index: np.ones(len(range(n)[index[0]]), dtype))
    # A tracer (weights being differentiated, or traced by jit) has no
    # concrete placement to inspect; device_put of it places it (or, under
    # jit, constrains it) like the rows.
    concrete = isinstance(w, jax.Array) and not isinstance(w, jax.core.Tracer)
    if concrete and not w.is_fully_addressable:
        return w
    if concrete and w.sharding.is_equivalent_to(sharding, 1):
        return w
    return jax.device_put(jnp.asarray(w), sharding)
