"""Saving and loading mixture parameters as ``.npz`` files.

The file is a plain NumPy archive, readable without gmm_jax::

    format               "gmm_jax.GMMParams"
    version              1
    covariance_type      "full" | "tied" | "diag" | "spherical"
    weights              (n_components,)
    means                (n_components, n_features)
    covariances          scikit-learn shape for the covariance type
    precisions_cholesky  same shape as covariances

``GMMParams`` holds the precision Cholesky factors, and ``load`` rebuilds the
parameters from exactly those arrays, so a loaded model predicts exactly
what the saved one did: nothing is re-factorised on the way back in. The
covariances are written as well, for readers without gmm_jax.
"""

from __future__ import annotations

import os
from typing import IO, Union

import jax.numpy as jnp
import numpy as np

from gmm_jax._params import GMMParams

__all__ = ["load", "save"]

_FORMAT = "gmm_jax.GMMParams"
_VERSION = 1
_COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
_ARRAYS = ("weights", "means", "covariances", "precisions_cholesky")
_REQUIRED = ("weights", "means", "precisions_cholesky")  # covariances derive

PathLike = Union[str, "os.PathLike[str]"]


def save(path: PathLike | IO[bytes], params: GMMParams) -> None:
    """Writes mixture parameters to an ``.npz`` file.

    The file keeps the covariance type and the arrays' dtype; read it back
    with :func:`gmm_jax.load`. The file is written to exactly ``path``
    (NumPy's habit of appending ``.npz`` is not followed).

    Args:
      path: file name or binary file object to write to.
      params: the parameters to store, e.g. ``fit(...).params``.

    Raises:
      TypeError: if ``params`` is not a ``GMMParams``.

    Example:
      >>> import os, tempfile
      >>> import gmm_jax as gmm
      >>> params = gmm.GMMParams.from_covariances(
      ...     [0.4, 0.6], [[0.0, 0.0], [3.0, 1.0]], [0.5, 2.0],
      ...     covariance_type="spherical")
      >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
      >>> gmm.save(path, params)
      >>> gmm.load(path).covariance_type
      'spherical'
    """
    if not isinstance(params, GMMParams):
        raise TypeError(
            f"save(path, params) expects a gmm_jax.GMMParams, got "
            f"{type(params).__name__}; pass fit(...).params")
    arrays = {name: np.asarray(getattr(params, name)) for name in _ARRAYS}
    if isinstance(path, (str, os.PathLike)):
        with open(path, "wb") as f:
            _write(f, params.covariance_type, arrays)
    else:
        _write(path, params.covariance_type, arrays)


def _write(f: IO[bytes], covariance_type: str, arrays: dict) -> None:
    np.savez(f, format=np.str_(_FORMAT), version=np.int64(_VERSION),
             covariance_type=np.str_(covariance_type), **arrays)


def load(path: PathLike | IO[bytes]) -> GMMParams:
    """Reads mixture parameters written by :func:`gmm_jax.save`.

    Args:
      path: file name or binary file object of an ``.npz`` file.

    Returns:
      The stored ``GMMParams``, with its covariance type and dtype.

    Raises:
      FileNotFoundError: if ``path`` does not exist.
      ValueError: if the file is not a gmm_jax parameter file or its arrays
        have inconsistent shapes.

    Example:
      >>> import io
      >>> import gmm_jax as gmm
      >>> params = gmm.GMMParams.from_covariances(
      ...     [0.5, 0.5], [[0.0], [4.0]], [[1.0], [2.0]], covariance_type="diag")
      >>> buffer = io.BytesIO()
      >>> gmm.save(buffer, params)
      >>> _ = buffer.seek(0)
      >>> loaded = gmm.load(buffer)
      >>> loaded.covariances.shape, loaded.covariance_type
      ((2, 1), 'diag')
    """
    name = os.fspath(path) if isinstance(path, (str, os.PathLike)) else "file"
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(
            f"{name} is not a gmm_jax parameter file (not a readable .npz "
            f"archive: {e}); write one with gmm_jax.save(path, params)") from e
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(
            f"{name} holds a single array, not a gmm_jax parameter file; "
            "write one with gmm_jax.save(path, params)")
    with archive:
        missing = [k for k in ("format", "covariance_type", *_REQUIRED)
                   if k not in archive.files]
        if missing or str(archive["format"]) != _FORMAT:
            raise ValueError(
                f"{name} is not a gmm_jax parameter file (missing "
                f"{', '.join(missing) or 'format tag'}); write one with "
                "gmm_jax.save(path, params)")
        version = int(archive["version"]) if "version" in archive.files else 0
        if version > _VERSION:
            raise ValueError(
                f"{name} was written by a newer gmm_jax (file format "
                f"version {version}, this one reads up to {_VERSION}); "
                "upgrade gmm_jax")
        covariance_type = str(archive["covariance_type"])
        arrays = {k: archive[k] for k in _REQUIRED}
    _check_shapes(name, covariance_type, arrays)
    try:
        return GMMParams.from_precisions_cholesky(
            jnp.asarray(arrays["weights"]), jnp.asarray(arrays["means"]),
            jnp.asarray(arrays["precisions_cholesky"]),
            covariance_type=covariance_type)
    except ValueError as e:
        raise ValueError(f"{name}: {e}") from e


def _check_shapes(name: str, covariance_type: str, arrays: dict) -> None:
    if covariance_type not in _COVARIANCE_TYPES:
        raise ValueError(
            f"{name}: covariance_type is {covariance_type!r}, expected one of "
            f"{_COVARIANCE_TYPES}")
    means = arrays["means"]
    if means.ndim != 2:
        raise ValueError(
            f"{name}: means has shape {means.shape}, expected "
            "(n_components, n_features)")
    k, d = means.shape
    expected = {
        "weights": (k,),
        "precisions_cholesky": {"full": (k, d, d), "tied": (d, d),
                                "diag": (k, d), "spherical": (k,)}[covariance_type],
    }
    for key, shape in expected.items():
        if arrays[key].shape != shape:
            raise ValueError(
                f"{name}: {key} has shape {arrays[key].shape}, expected "
                f"{shape} for {k} components, {d} features and "
                f"covariance_type={covariance_type!r}")
