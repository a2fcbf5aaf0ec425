"""Data sharded along the sample axis, on one host or across many.

EM needs only *sums over samples*, so scaling out is a question of data
layout, not of algorithm: put the rows of ``X`` (and of ``sample_weight``) on
different devices, keep the parameters replicated, and let XLA's SPMD
partitioner add the cross-device sum of the sufficient statistics. The
functions of :mod:`gmm_jax` (``fit``, ``log_prob``, ``predict``,
``predict_proba``, ``score``) accept such arrays as they are; this module
only builds them.

One host, several devices::

    X_sharded, w_sharded = gmm.distributed.shard(X)
    result = gmm.fit(key, X_sharded, 5, sample_weight=w_sharded)

Several processes (hosts), after ``jax.distributed.initialize(...)``, each
passing *its own* rows::

    X_sharded, w_sharded = gmm.distributed.shard(my_rows)
    result = gmm.fit(key, X_sharded, 5, sample_weight=w_sharded)  # same call everywhere

See ``gmm_jax/examples/multiprocess_fit.py`` for a runnable multi-process
example.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from gmm_jax import _validation

__all__ = ["data_mesh", "shard"]


def data_mesh(devices=None, axis_name: str = "data") -> Mesh:
    """A one-axis ``Mesh`` over ``devices`` (default: every device of every process).

    Example:
      >>> import gmm_jax as gmm
      >>> gmm.distributed.data_mesh().axis_names
      ('data',)
    """
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.array(devices), (axis_name,))


def _rows_per_process(n_local: int) -> int:
    if jax.process_count() == 1:
        return n_local
    from jax.experimental import multihost_utils

    counts = np.asarray(multihost_utils.process_allgather(np.asarray(n_local, np.int64)))
    return int(counts.max())


def shard(X, sample_weight=None, mesh: Mesh | None = None, axis=None):
    """Splits rows over devices: ``(X_sharded (N_pad, D), sample_weight_sharded (N_pad,))``.

    ``X`` is the rows held by *this process*: on a single host, all of them;
    under ``jax.distributed.initialize``, each process passes its own rows and
    gets back the same global arrays (built with
    ``jax.make_array_from_process_local_data``; no process ever holds
    another's rows). Rows are padded, with zero weight, up to a multiple of the
    number of local devices and to the largest row count among processes.
    Zero-weight rows do not change a fit, ``score`` or ``bic``; per-sample
    outputs (``log_prob``, ``predict``) have the padded length, so drop the
    rows where the returned weight is zero.

    Args:
      X: ``(n_local, n_features)`` host data (NumPy, memory-mapped, or a JAX array).
        NaN entries (missing values, for ``fit(..., nan_policy="marginalize")``)
        are kept, and the masked entries of a ``numpy.ma.MaskedArray`` become NaN.
      sample_weight: optional ``(n_local,)`` non-negative weights; default ones.
      mesh: a ``Mesh``; default :func:`data_mesh` over every device.
      axis: mesh axis name, or tuple of names, to split rows over; default all
        axes of ``mesh``.

    Returns:
      ``(X_sharded, sample_weight_sharded)``: ``jax.Array`` s split along the
      sample axis; pass both to :func:`gmm_jax.fit`.

    Example:
      >>> import jax, numpy as np, gmm_jax as gmm
      >>> X = np.random.default_rng(0).normal(size=(101, 2)).astype(np.float32)
      >>> X_sharded, w = gmm.distributed.shard(X)
      >>> X_sharded.shape[0] % jax.device_count(), float(w.sum())
      (0, 101.0)
      >>> result = gmm.fit(jax.random.key(0), X_sharded, 2, sample_weight=w)
    """
    X = _validation.host_float_array(X, "X", nan_policy="marginalize")  # the fit decides about NaN
    if X.ndim != 2 or X.shape[1] < 1:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}.")
    n_local = X.shape[0]
    if sample_weight is None:
        w = np.ones((n_local,), X.dtype)
    else:
        w = _validation.host_float_array(sample_weight, "sample_weight").astype(X.dtype, copy=False)
        if w.shape != (n_local,):
            raise ValueError(f"sample_weight must have shape (n_samples,) = ({n_local},), got {w.shape}.")
    mesh = data_mesh() if mesh is None else mesh
    if not isinstance(mesh, Mesh):
        raise TypeError(f"mesh must be a jax.sharding.Mesh, got {type(mesh).__name__}.")
    axis = tuple(mesh.axis_names) if axis is None else axis
    row_spec = PartitionSpec(axis)
    local_devices = {d for d in mesh.devices.flat if d.process_index == jax.process_index()}
    if not local_devices:
        raise ValueError("mesh has no device of this process; build it from jax.devices().")
    # Rows per process must be equal and split evenly over its devices.
    per_device = -(-_rows_per_process(n_local) // len(local_devices))
    n_pad = max(per_device, 1) * len(local_devices) - n_local
    if n_pad:
        # Repeat the last row, not zeros: padded rows stay inside the data's range.
        filler = X[-1:] if n_local else np.zeros((1, X.shape[1]), X.dtype)
        X = np.concatenate([X, np.repeat(filler, n_pad, axis=0)])
        w = np.concatenate([w, np.zeros((n_pad,), w.dtype)])
    X_sharded = jax.make_array_from_process_local_data(NamedSharding(mesh, PartitionSpec(axis, None)), X)
    w_sharded = jax.make_array_from_process_local_data(NamedSharding(mesh, row_spec), w)
    return X_sharded, w_sharded
