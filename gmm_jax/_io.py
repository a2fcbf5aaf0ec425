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

Saving to a path is atomic: the archive is written to a temporary file in
the target's directory, flushed to disk (``fsync``) and renamed over the
target (``os.replace``). A crash or ``kill -9`` at any moment leaves either
the old file or the complete new one (plus, at worst, a stray
``.<name>.<random>.tmp`` beside it), and concurrent saves to one path leave
one of the complete files. ``save`` and ``load`` apply the same checks, so
what ``save`` writes ``load`` reads; ``load`` never unpickles anything and
reports a damaged, truncated or foreign file as a ``ValueError`` naming it.
"""

from __future__ import annotations

import io
import math
import os
import secrets
import stat
import zipfile
import zlib
from typing import IO, Union

import jax
import numpy as np

from gmm_jax._params import GMMParams

__all__ = ["load", "save"]

_FORMAT = "gmm_jax.GMMParams"
_VERSION = 1
_COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
_ARRAYS = ("weights", "means", "covariances", "precisions_cholesky")
_REQUIRED = ("weights", "means", "precisions_cholesky")  # covariances derive

PathLike = Union[str, bytes, "os.PathLike[str]"]


def _is_path(path) -> bool:
    return isinstance(path, (str, bytes, os.PathLike))


def _check_file_object(f, mode: str, function: str):
    """A binary file object with ``mode`` ("write" or "read"), or a TypeError saying what to pass."""
    if isinstance(f, io.TextIOBase):
        raise TypeError(
            f"{function} needs a file name or a binary file object, got a text file "
            f"({type(f).__name__}); open it with mode '{'wb' if mode == 'write' else 'rb'}' or use io.BytesIO")
    if not callable(getattr(f, mode, None)):
        hint = "; wrap bytes in io.BytesIO(data)" if isinstance(f, (bytes, bytearray, memoryview)) else ""
        raise TypeError(
            f"{function} needs a file name (str or os.PathLike) or a binary file object, "
            f"got {type(f).__name__}{hint}")


_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK"
# What parsing a damaged or foreign file can raise; filesystem errors
# (missing file, permissions) are raised before parsing starts and pass as
# they are.
_DAMAGED = (zipfile.BadZipFile, zlib.error, ValueError, TypeError, EOFError, OSError, KeyError,
            NotImplementedError, RuntimeError, UnicodeDecodeError, OverflowError)


def save(path: PathLike | IO[bytes], params: GMMParams) -> None:
    """Writes mixture parameters to an ``.npz`` file, atomically.

    The file keeps the covariance type and the arrays' dtype; read it back
    with :func:`gmm_jax.load`. The file is written to exactly ``path``
    (NumPy's habit of appending ``.npz`` is not followed). A path is replaced
    atomically: the archive goes to a temporary file in the same directory,
    is flushed to disk and renamed over ``path``, so an interrupted save
    leaves the previous file intact. A symlink is written through (its
    target is replaced); an existing file keeps its permissions. A file
    object is written in place.

    Args:
      path: file name or binary file object to write to.
      params: the parameters to store, e.g. ``fit(...).params``: one mixture
        with concrete (not traced) arrays.

    Raises:
      TypeError: if ``params`` is not a ``GMMParams``, or is traced (``save``
        called inside ``jit``/``vmap``/``grad``).
      ValueError: if the parameters are ones ``load`` would refuse: NaN or
        inf, weights that do not sum to one, invalid precision factors, or a
        batch of mixtures.
      FileNotFoundError: if the directory of ``path`` does not exist.

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
    leaves = {name: getattr(params, name) for name in _REQUIRED}
    if any(isinstance(leaf, jax.core.Tracer) for leaf in leaves.values()):
        raise TypeError(
            "save(path, params) needs concrete parameters, got traced arrays: "
            "call gmm.save outside jit/vmap/grad, on the parameters the "
            "transformed function returns")
    try:
        arrays = {name: np.asarray(leaf) for name, leaf in leaves.items()}
        _check_arrays("params", params.covariance_type, arrays)
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"save refuses to write parameters that load would reject: {e}") from e
    arrays["covariances"] = np.asarray(params.covariances)
    if _is_path(path):
        _atomic_write(os.fsdecode(path), lambda f: _write(f, params.covariance_type, arrays))
    else:
        _check_file_object(path, "write", "save")
        _write(path, params.covariance_type, arrays)


def _write(f: IO[bytes], covariance_type: str, arrays: dict) -> None:
    np.savez(f, format=np.str_(_FORMAT), version=np.int64(_VERSION),
             covariance_type=np.str_(covariance_type),
             **{name: arrays[name] for name in _ARRAYS})


def _atomic_write(path: str, write) -> None:
    """Runs ``write(file)`` on a temporary file beside ``path``, then renames it over ``path``."""
    if not path:
        raise FileNotFoundError("cannot save to an empty path; pass a file name such as 'model.npz'")
    if path.endswith(os.sep) or (os.altsep and path.endswith(os.altsep)):
        raise IsADirectoryError(
            f"cannot save to {path}: it names a directory; pass a file name such as "
            f"{os.path.join(path, 'model.npz')}")
    target = os.path.realpath(path)  # through a symlink, as open(path, "wb") would write
    directory = os.path.dirname(target)
    if os.path.isdir(target):
        raise IsADirectoryError(
            f"cannot save to {path}: it is a directory; pass a file name such as "
            f"{os.path.join(path, 'model.npz')}")
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = None  # a new file: 0o666 less the umask, as open() would give
    while True:
        tmp = os.path.join(directory, f".{os.path.basename(target)}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            break
        except FileExistsError:
            continue
        except FileNotFoundError:
            raise FileNotFoundError(
                2, f"No such file or directory: cannot save to {path}, the directory "
                f"{os.path.dirname(path) or '.'} does not exist") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    # Makes the rename itself durable (POSIX); not possible on every
    # platform or filesystem, where the rename is still atomic.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load(path: PathLike | IO[bytes]) -> GMMParams:
    """Reads mixture parameters written by :func:`gmm_jax.save`.

    Nothing is unpickled, and every array is checked before it is read: a
    member whose header claims more data than the archive holds is reported,
    not allocated.

    Args:
      path: file name or binary file object of an ``.npz`` file.

    Returns:
      The stored ``GMMParams``, with its covariance type and dtype.

    Raises:
      FileNotFoundError: if ``path`` does not exist (other filesystem errors,
        such as ``PermissionError``, also pass unchanged).
      ValueError: naming the file, if it is not a gmm_jax parameter file
        (not a zip archive, a single ``.npy`` array, another archive), is
        truncated or damaged (a bad checksum, a header that does not match
        the data), has an unknown or malformed ``version``, or holds
        parameters that are inconsistent or invalid (shapes, NaN, weights
        that do not sum to one, precision factors that are not
        upper-triangular with a positive diagonal).

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
    if isinstance(path, bytes) and (path.startswith((_ZIP_MAGIC, _NPY_MAGIC)) or b"\0" in path):
        raise TypeError(
            "load needs a file name or a binary file object, got the file's contents as bytes; "
            "wrap bytes in io.BytesIO(data)")
    if _is_path(path):
        name = os.fsdecode(path)
        with open(path, "rb") as f:  # filesystem errors are raised here, as they are
            return _load(f, name)
    _check_file_object(path, "read", "load")
    name = str(getattr(path, "name", "file object"))
    return _load(path, name)


def _not_ours(name: str, why: str) -> ValueError:
    return ValueError(
        f"{name} is not a gmm_jax parameter file ({why}); write one with "
        "gmm_jax.save(path, params)")


def _load(f: IO[bytes], name: str) -> GMMParams:
    try:
        seekable = f.seekable()
    except (AttributeError, OSError, ValueError):
        seekable = False
    if not seekable:  # a pipe or socket: zipfile needs to seek
        f = io.BytesIO(f.read())
    start = f.tell()
    magic = f.read(len(_NPY_MAGIC))
    f.seek(start)
    if not magic:
        raise _not_ours(name, "the file is empty")
    if magic.startswith(_NPY_MAGIC):
        raise _not_ours(name, "it holds a single .npy array, not an .npz archive")
    if not magic.startswith(_ZIP_MAGIC):
        raise _not_ours(name, f"not a zip (.npz) archive: it starts with {magic!r}")
    try:
        with zipfile.ZipFile(f) as archive:
            return _read_params(archive, name)
    except _DAMAGED as e:
        if isinstance(e, ValueError) and str(e).startswith(name):
            raise  # already says what is wrong with the file
        raise ValueError(
            f"{name} is damaged or truncated (not a readable .npz archive: "
            f"{type(e).__name__}: {e}); save the model again with "
            "gmm_jax.save(path, params)") from e


def _read_params(archive: zipfile.ZipFile, name: str) -> GMMParams:
    members = {m[:-len(".npy")] for m in archive.namelist() if m.endswith(".npy")}
    if "format" not in members or _read_text(archive, "format", name) != _FORMAT:
        raise _not_ours(name, "no gmm_jax format tag: " + (
            "missing format" if "format" not in members else "a different format tag"))
    version = _read_version(archive, name) if "version" in members else 0
    if version > _VERSION:
        raise ValueError(
            f"{name} was written by a newer gmm_jax (file format "
            f"version {version}, this one reads up to {_VERSION}); "
            "upgrade gmm_jax")
    missing = [k for k in ("covariance_type", *_REQUIRED) if k not in members]
    if missing:
        raise ValueError(
            f"{name} is an incomplete gmm_jax parameter file (missing "
            f"{', '.join(missing)}); save the model again with "
            "gmm_jax.save(path, params)")
    covariance_type = _read_text(archive, "covariance_type", name)
    arrays = {k: _read_array(archive, k, name) for k in _REQUIRED}
    return _check_arrays(name, covariance_type, arrays)


def _read_array(archive: zipfile.ZipFile, key: str, name: str) -> np.ndarray:
    """One member, after checking its header against the bytes the archive holds."""
    info = archive.getinfo(key + ".npy")
    with archive.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"{key} is stored in .npy format version {version}, which gmm_jax files never use")
        data_bytes = info.file_size - f.tell()
    if dtype.hasobject:
        raise ValueError(f"{name}: {key} holds Python objects; gmm_jax files hold numbers only "
                         "(and nothing is ever unpickled)")
    claimed = math.prod(shape) * dtype.itemsize
    if claimed != data_bytes:
        raise ValueError(
            f"{name}: the header of {key} claims {shape} {dtype} ({claimed} bytes) "
            f"but the archive holds {data_bytes} bytes for it; the file is truncated or damaged")
    with archive.open(info) as f:  # read to the end: zipfile checks the CRC
        return np.lib.format.read_array(f, allow_pickle=False)


def _read_text(archive, key, name) -> str:
    value = _read_array(archive, key, name)
    if value.shape != () or value.dtype.kind != "U":
        raise ValueError(
            f"{name}: {key} must be a text scalar, got an array of dtype {value.dtype} "
            f"and shape {value.shape}; the file is damaged or was not written by gmm_jax.save")
    return str(value)


def _read_version(archive, name) -> int:
    value = _read_array(archive, "version", name)
    if value.shape != () or value.dtype.kind not in "iu" or int(value) < 1:
        shown = value.tolist() if value.size <= 4 else f"an array of shape {value.shape}"
        raise ValueError(
            f"{name}: version is {shown!r} (dtype {value.dtype}), expected an integer file-format "
            f"version from 1 to {_VERSION}; the file is damaged or was not written by gmm_jax.save")
    return int(value)


def _check_arrays(name: str, covariance_type: str, arrays: dict) -> GMMParams:
    """The checks ``save`` and ``load`` share; returns the validated parameters."""
    _check_shapes(name, covariance_type, arrays)
    try:
        return GMMParams.from_precisions_cholesky(
            arrays["weights"], arrays["means"], arrays["precisions_cholesky"],
            covariance_type=covariance_type)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name}: {e}") from e


def _check_shapes(name: str, covariance_type: str, arrays: dict) -> None:
    if covariance_type not in _COVARIANCE_TYPES:
        raise ValueError(
            f"{name}: covariance_type is {covariance_type!r}, expected one of "
            f"{_COVARIANCE_TYPES}")
    means = arrays["means"]
    if means.ndim != 2:
        batch = (f": a batch of {means.shape[0]} mixtures; save one at a time, e.g. "
                 "jax.tree_util.tree_map(lambda a: a[i], params)") if means.ndim > 2 else ""
        raise ValueError(
            f"{name}: means has shape {means.shape}, expected "
            f"(n_components, n_features){batch}")
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
