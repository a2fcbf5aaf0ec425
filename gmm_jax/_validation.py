"""Python-side checks of arrays and options, run before anything is traced.

Every check names the argument, says what it received and what to do. Checks
of *values* (finite, non-negative) only run on concrete arrays: under a user's
``jit`` or ``vmap`` the values are tracers, and the compiled fit reports
problems through ``FitResult.status`` instead.
"""

from __future__ import annotations

import functools
import numbers

import jax
import jax.numpy as jnp
import numpy as np

from gmm_jax._covariance import COVARIANCE_TYPES, expected_factor_shape

INITS = ("kmeans", "k-means++", "random", "random_from_data", "hierarchical")


def eager(check):
    """Runs ``check`` with JAX operations on concrete arrays evaluated at once.

    Inside a user's ``jit``, an array captured from outside is concrete, but
    ``jnp.isfinite(X)`` on it would be staged into the trace; evaluating
    eagerly lets the value checks still run instead of failing on a tracer.
    """

    @functools.wraps(check)
    def wrapper(*args, **kwargs):
        with jax.ensure_compile_time_eval():
            return check(*args, **kwargs)

    return wrapper


def is_concrete(x) -> bool:
    """True when ``x`` holds values (not a tracer inside jit/vmap/grad)."""
    return not isinstance(x, jax.core.Tracer)


# Floating dtypes narrower than float32 (float16, bfloat16, float8) are computed
# in float32: LAPACK has no half-precision Cholesky, and EM's sums over
# thousands of rows would keep no digits in an 8- or 11-bit mantissa.
_MIN_FLOAT_BITS = 32


def _float_dtype(x):
    """The floating dtype gmm_jax computes ``x`` in.

    float32 stays float32 and float64 stays float64 (float32 unless
    ``jax_enable_x64`` is on); narrower floats are upcast to float32;
    integers and booleans become the default float.
    """
    # canonicalize: numpy float64 becomes float32 unless jax_enable_x64 is on,
    # without JAX's "requested dtype not available" warning.
    if jnp.issubdtype(x.dtype, jnp.floating):
        if jnp.finfo(x.dtype).bits < _MIN_FLOAT_BITS:
            return jnp.dtype(jnp.float32)
        return jax.dtypes.canonicalize_dtype(x.dtype)
    return jax.dtypes.canonicalize_dtype(float)  # float32, or float64 under jax_enable_x64


def _from_masked(x, name: str, nan_policy: str | None = None) -> np.ndarray:
    """What a ``numpy.ma.MaskedArray`` means to gmm_jax; the one place that decides it.

    Masked entries are missing values. With ``nan_policy="marginalize"`` they
    become NaN, which the fit and the scoring functions then marginalise
    (integer and boolean data become float64 to hold them). Otherwise they
    are refused here, before ``np.asarray`` could drop the mask and masked
    entries be used as data: ``nan_policy="raise"`` (an array that the
    option applies to) says to pass the option, ``None`` (any other array)
    says to drop or fill them. An array with nothing masked is its data.
    """
    mask = np.ma.getmaskarray(x)
    n_masked = int(mask.sum())
    data = np.ma.getdata(x)
    if not n_masked:
        return data
    if nan_policy == "marginalize":
        if data.dtype == object:
            data = _numbers_from_objects(data, name)
        elif data.dtype.kind in "iub":  # no NaN in integers or booleans
            data = data.astype(np.float64)
        elif data.dtype.kind not in "fc":  # text, dates: refused by the caller with its usual message
            return data
        filled = data.copy()
        filled[mask] = np.nan
        return filled
    entries = f"{n_masked} masked entr{'y' if n_masked == 1 else 'ies'}"
    drop_or_fill = (f"drop the rows that hold them ({name}[~{name}.mask.any(axis=1)]) or fill them "
                    f"({name}.filled(value))")  # fmt: skip
    if nan_policy == "raise":
        raise ValueError(
            f"{name} is a numpy.ma.MaskedArray with {entries}; masked entries are missing values. Pass "
            f'nan_policy="marginalize" to treat them as missing at random (exact missing-data EM), or '
            f"{drop_or_fill} before passing {name}."
        )
    raise ValueError(
        f"{name} is a numpy.ma.MaskedArray with {entries}; {name} cannot hold missing values. "
        f"{drop_or_fill[0].upper()}{drop_or_fill[1:]} before passing {name}."
    )


_SPARSE_MODULES = {"scipy.sparse": ".toarray()", "jax.experimental.sparse": ".todense()"}


def _reject_sparse(x, name: str) -> None:
    module = type(x).__module__ or ""
    for prefix, convert in _SPARSE_MODULES.items():
        if module == prefix or module.startswith(prefix + "."):
            shape = getattr(x, "shape", None)
            raise TypeError(
                f"{name} is a sparse matrix ({type(x).__name__}"
                + (f" of shape {tuple(shape)}" if shape is not None else "")
                + f"); sparse input is not supported. Convert it to a dense array with {name}{convert} "
                "if it fits in memory."
            )


def _numbers_from_objects(x: np.ndarray, name: str) -> np.ndarray:
    """An object array of numbers as float64, as scikit-learn's ``check_array`` converts it."""
    is_text = np.frompyfunc(lambda v: isinstance(v, (str, bytes)), 1, 1)
    if x.size and bool(np.any(is_text(x))):
        raise TypeError(
            f"{name} must be an array of numbers, got an object array holding strings; "
            f"convert them to numbers first (e.g. np.asarray({name}, dtype=float))."
        )
    try:
        return x.astype(np.float64)
    except (TypeError, ValueError):
        pass
    try:
        x.astype(np.complex128)
    except (TypeError, ValueError):
        first = next(v for v in x.ravel() if not isinstance(v, (numbers.Real, np.bool_)))
        raise TypeError(
            f"{name} must be an array of numbers, got an object array holding {type(first).__name__} "
            f"values such as {first!r}; convert them to numbers first."
        ) from None
    raise _complex_error(name, "complex values in an object array")


def _complex_error(name: str, what) -> ValueError:
    return ValueError(
        f"{name} must be real-valued, got {what}; complex data is not supported. Pass {name}.real if the "
        f"imaginary parts are zero, or the real and imaginary parts as separate features "
        f"(np.concatenate([{name}.real, {name}.imag], axis=-1))."
    )


def _host_numbers(x, name: str, nan_policy: str | None = None) -> np.ndarray:
    """``x`` as a real NumPy array of numbers, or an error naming ``name`` and the fix.

    ``nan_policy``: how masked entries of a ``numpy.ma.MaskedArray`` are read (:func:`_from_masked`).
    """
    if isinstance(x, (str, bytes)) or x is None:
        hint = " (text: parse it first, e.g. with np.loadtxt)" if isinstance(x, (str, bytes)) else ""
        raise TypeError(f"{name} must be an array of numbers, got {type(x).__name__}{hint}.")
    if isinstance(x, np.ma.MaskedArray):
        x = _from_masked(x, name, nan_policy)
    _reject_sparse(x, name)
    try:
        x = np.asarray(x)
    except Exception as err:  # ragged nested lists and the like
        raise TypeError(f"{name} must be an array of numbers; could not convert it: {err}") from None
    if x.dtype == object:
        x = _numbers_from_objects(x, name)
    if jnp.issubdtype(x.dtype, jnp.complexfloating):
        raise _complex_error(name, f"dtype {x.dtype}")
    # timedelta64 counts as an integer to NumPy; dates and durations need an explicit unit.
    if x.dtype.kind in "mM" or not (jnp.issubdtype(x.dtype, jnp.number) or x.dtype == bool):
        if x.dtype.kind in "USa":
            hint = f"; convert them to numbers first (e.g. np.asarray({name}, dtype=float))"
        elif x.dtype.kind in "mM":
            hint = f"; convert to numbers in a unit of your choice (e.g. {name} / np.timedelta64(1, 's'))"
        else:
            hint = ""
        raise TypeError(f"{name} must be an array of numbers, got an array of dtype {x.dtype}{hint}.")
    return x


def _cast_host(x: np.ndarray, dtype, name: str) -> np.ndarray:
    """``x.astype(dtype)``, refusing finite values that overflow to inf in ``dtype``.

    float64 data beyond float32's range (about 3.4e38) would otherwise reach
    the fit as inf and be reported as "contains inf", which the data does not.
    """
    if x.dtype == dtype:
        return x
    with np.errstate(over="ignore", invalid="ignore"):
        cast = x.astype(dtype)
    if jnp.issubdtype(x.dtype, jnp.floating) and x.size:
        overflow = np.isinf(cast) & np.isfinite(x)
        if overflow.any():
            biggest = float(np.max(np.abs(x[np.isfinite(x)])))
            raise ValueError(
                f"{name} has {int(overflow.sum())} finite value(s) too large for {np.dtype(dtype).name} "
                f"(largest magnitude {biggest:.3g}, the limit is {float(jnp.finfo(dtype).max):.3g}); rescale "
                "the data, or compute in float64 with jax.config.update('jax_enable_x64', True)."
            )
    return cast


def as_float_array(x, name: str, nan_policy: str | None = None):
    """Converts ``x`` to a floating JAX array (see :func:`_float_dtype` for the dtype).

    ``x`` may be a JAX array (left on its device), a NumPy array, a nested
    list, an object array of numbers or anything ``np.asarray`` converts.
    Masked arrays, sparse matrices, complex and non-numeric data are refused
    with an error naming ``name``, and so are values that overflow the dtype
    they are converted to; with ``nan_policy="marginalize"`` the masked
    entries of a masked array become NaN (missing).
    """
    if isinstance(x, jax.Array):
        if jnp.issubdtype(x.dtype, jnp.complexfloating):
            raise _complex_error(name, f"dtype {x.dtype}")
        if not (jnp.issubdtype(x.dtype, jnp.number) or x.dtype == bool):
            raise TypeError(f"{name} must be an array of numbers, got a JAX array of dtype {x.dtype}.")
        return jnp.asarray(x, dtype=_float_dtype(x))
    x = _host_numbers(x, name, nan_policy)
    return jnp.asarray(_cast_host(x, _float_dtype(x), name))


def host_float_array(x, name: str, nan_policy: str | None = None):
    """Like :func:`as_float_array` but stays on the host (NumPy): for data that must not
    be copied to a device whole (streamed batches, rows about to be sharded)."""
    x = _host_numbers(x, name, nan_policy)
    # float32 stays float32; float64 needs jax_enable_x64, as everywhere in gmm_jax.
    return _cast_host(x, _float_dtype(x), name)


NAN_POLICIES = ("raise", "marginalize")


def check_nan_policy(nan_policy):
    if nan_policy not in NAN_POLICIES:
        raise ValueError(f"nan_policy must be one of {NAN_POLICIES}, got {nan_policy!r}.")
    return nan_policy


@eager
def check_data(X, name: str = "X", min_samples: int = 1, nan_policy: str | None = None, keep_host: bool = False):
    """Validates a data matrix ``(n_samples, n_features)``; returns a float array.

    ``nan_policy="marginalize"`` accepts NaN entries (missing values), and
    reads the masked entries of a ``numpy.ma.MaskedArray`` as NaN; inf is
    still an error. ``"raise"`` refuses them and the error names the option;
    ``None`` (a function without the option) refuses them without naming it.

    ``keep_host``: host data (anything but a ``jax.Array``) is checked and
    returned as a NumPy array, for a caller that hands it to its compiled
    program as it is: no device operation runs, so none compiles. Otherwise
    the result is a JAX array.
    """
    if nan_policy is not None:
        check_nan_policy(nan_policy)
    if keep_host and not isinstance(X, jax.Array):
        X = host_float_array(X, name, nan_policy)
        _check_data_values(X, np, name, min_samples, nan_policy)
        return X
    X = as_float_array(X, name, nan_policy)
    return _check_data_values(X, jnp, name, min_samples, nan_policy)


def _check_data_values(X, xp, name, min_samples, nan_policy):
    """:func:`check_data`'s checks of shape and values, with ``xp`` (NumPy or ``jax.numpy``) as ``X`` is."""
    if X.ndim != 2:
        hint = " Reshape a single feature with X.reshape(-1, 1)." if X.ndim == 1 else ""
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {X.shape}.{hint}")
    if X.shape[0] < min_samples or X.shape[1] < 1:
        raise ValueError(
            f"{name} must have at least {min_samples} sample(s) and 1 feature, got shape {X.shape}."
        )
    if nan_policy == "marginalize":
        if is_concrete(X) and bool(xp.any(xp.isinf(X))):
            raise ValueError(
                f"{name} contains {int(xp.sum(xp.isinf(X)))} infinite value(s); with "
                'nan_policy="marginalize" only NaN marks a missing entry. Remove or replace them.'
            )
        return X
    if is_concrete(X) and not bool(xp.all(xp.isfinite(X))):
        n_bad = int(xp.sum(~xp.isfinite(X)))
        option = ', or pass nan_policy="marginalize" to treat NaN entries as missing at random' if nan_policy else ""
        raise ValueError(f"{name} contains {n_bad} NaN or infinite value(s); remove or impute them{option}.")
    return X


@eager
def check_observed_features(X, name: str = "X"):
    """For fitting with missing values: every feature needs an observed entry."""
    if is_concrete(X):
        xp = np if isinstance(X, np.ndarray) else jnp
        check_observed_columns(np.asarray(xp.any(~xp.isnan(X), axis=0)), name)
    return X


def check_observed_columns(observed, name: str = "X"):
    """As :func:`check_observed_features`, from ``observed`` (D,) bool: whether each feature has an observed entry."""
    observed = np.asarray(observed, bool)
    if not observed.any():
        raise ValueError(f"{name} has no observed entry (every value is NaN); there is nothing to fit.")
    never = np.flatnonzero(~observed)
    if never.size:
        raise ValueError(
            f"{name} has feature(s) {never.tolist()} missing (NaN) in every row; their distribution "
            "cannot be estimated. Drop those columns before fitting."
        )


@eager
def check_sample_weight(sample_weight, n_samples: int, dtype, keep_host: bool = False):
    """Validates ``sample_weight`` of shape ``(n_samples,)``; ``None`` means ones.

    ``keep_host``: as in :func:`check_data`, host weights (and ``None``) give a NumPy array.
    """
    host = keep_host and not isinstance(sample_weight, jax.Array)
    xp = np if host else jnp
    if sample_weight is None:
        return xp.ones((n_samples,), dtype)
    w = (host_float_array if host else as_float_array)(sample_weight, "sample_weight").astype(dtype)
    if w.shape != (n_samples,):
        raise ValueError(
            f"sample_weight must have shape (n_samples,) = ({n_samples},), got {w.shape}."
        )
    if is_concrete(w):
        if not bool(xp.all(xp.isfinite(w))) or bool(xp.any(w < 0)):
            raise ValueError("sample_weight must be finite and non-negative; got negative, NaN or inf entries.")
        if not bool(xp.any(w > 0)):
            raise ValueError("sample_weight is zero everywhere; at least one sample needs positive weight.")
    return w


def check_covariance_type(covariance_type):
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(f"covariance_type must be one of {COVARIANCE_TYPES}, got {covariance_type!r}.")
    return covariance_type


def check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} of type {type(value).__name__}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}.")
    return int(value)


def check_nonneg_float(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r} of type {type(value).__name__}.")
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value}.")
    return float(value)


def check_scalar_option(value, name, dtype):
    """A non-negative real option that stays traced (``tol``, ``reg_covar``): a 0-d array of ``dtype``.

    Python numbers and concrete arrays are checked (finite, ``>= 0``); a tracer
    (the option batched under the caller's ``vmap``, say) is checked for
    shape and kind only, and its values are the fit's to report.
    """
    if isinstance(value, jax.Array):
        if value.shape != () or not (jnp.issubdtype(value.dtype, jnp.floating) or jnp.issubdtype(value.dtype, jnp.integer)):
            raise TypeError(f"{name} must be a real scalar, got an array of shape {value.shape} and dtype {value.dtype}.")
        if is_concrete(value):
            check_nonneg_float(float(value), name)
        return value.astype(dtype)
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value.item()
    return np.asarray(check_nonneg_float(value, name), dtype)  # host: no device operation to compile


def check_init(init):
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}.")
    return init


def check_verbose(verbose):
    if verbose not in (True, False):
        raise TypeError(f"verbose must be True or False, got {verbose!r}.")
    return bool(verbose)


def _component_count(array, covariance_type):
    """How many components the third array of a constructor implies (``None`` for tied)."""
    if covariance_type == "tied" or array.ndim == 0:
        return None
    return array.shape[0]


@eager
def check_parameter_arrays(weights, means, third, covariance_type, what):
    """Checks the arrays given to a ``GMMParams`` constructor; returns them as arrays.

    A shape mismatch is blamed on the array the other two disagree with: with
    ``weights`` ``(3,)``, ``means`` ``(2, D)`` and three covariances, ``means``.
    """
    check_covariance_type(covariance_type)
    means = as_float_array(means, "means")
    if means.ndim != 2:
        hint = " For a single feature pass means.reshape(-1, 1)." if means.ndim == 1 else ""
        raise ValueError(f"means must have shape (n_components, n_features), got {means.shape}.{hint}")
    if 0 in means.shape:
        raise ValueError(
            f"means must hold at least one component and one feature, got shape {means.shape}."
        )
    weights = as_float_array(weights, "weights").astype(means.dtype)
    third = as_float_array(third, what).astype(means.dtype)
    n_components, n_features = means.shape
    if weights.shape != (n_components,):
        k = weights.shape[0] if weights.ndim == 1 else None
        if k is not None and _component_count(third, covariance_type) == k:
            raise ValueError(
                f"means must have shape (n_components, n_features) = ({k}, {n_features}) to match weights "
                f"{weights.shape} and {what} {third.shape}, got {means.shape}: one mean per component."
            )
        raise ValueError(
            f"weights must have shape (n_components,) = ({n_components},) to match means {means.shape}, "
            f"got {weights.shape}."
        )
    expected = expected_factor_shape(covariance_type, n_components, n_features)
    if third.shape != expected:
        raise ValueError(
            f"{what} for covariance_type={covariance_type!r} with {n_components} components and "
            f"{n_features} features must have shape {expected}, got {third.shape}."
        )
    if is_concrete(weights):
        if not bool(jnp.all(jnp.isfinite(weights))) or bool(jnp.any(weights < 0)):
            raise ValueError(f"weights must be finite and non-negative, got {np.asarray(weights).tolist()}.")
        total = float(jnp.sum(weights))
        if not np.isclose(total, 1.0, rtol=1e-4, atol=1e-4):
            raise ValueError(f"weights must sum to 1, got a sum of {total:.6g}; divide by their sum.")
    for array, label in ((means, "means"), (third, what)):
        if is_concrete(array) and not bool(jnp.all(jnp.isfinite(array))):
            n_bad = int(jnp.sum(~jnp.isfinite(array)))
            raise ValueError(
                f"{label} contains NaN or inf ({n_bad} of {array.size} entries); every parameter must be "
                "finite (check the fit's status before using its parameters)."
            )
    return weights, means, third


def _index(where) -> str:
    return "[" + ", ".join(str(int(i)) for i in where) + "]"


@eager
def check_symmetric(matrices, covariance_type, what, input_dtype=None):
    """Refuses ``full``/``tied`` covariance or precision matrices that are not symmetric.

    The Cholesky factorisation reads one triangle only, so an asymmetric
    matrix would be silently replaced by a symmetric one. Asymmetry up to
    ``sqrt(eps)`` of ``sqrt(A_ii A_jj)`` (the scale of entry ``ij``; about
    3e-4 in float32, 1.5e-8 in float64) is accepted as rounding error of the
    sums the matrix came from. ``input_dtype``, the dtype the user's matrices
    had before conversion, sets the tolerance when it is the coarser one
    (float32 covariances stored with float64 means).
    """
    if covariance_type not in ("full", "tied") or not is_concrete(matrices):
        return
    a = np.asarray(matrices)
    eps = np.finfo(a.dtype).eps
    if input_dtype is not None and jnp.issubdtype(input_dtype, jnp.floating):
        eps = max(eps, jnp.finfo(input_dtype).eps)
    tol = float(np.sqrt(eps))
    a = a.astype(np.float64)
    stacked = a[None] if covariance_type == "tied" else a
    diagonal = np.abs(np.diagonal(stacked, axis1=-2, axis2=-1))
    scale = np.sqrt(diagonal[..., :, None] * diagonal[..., None, :])
    bad = np.abs(stacked - np.swapaxes(stacked, -1, -2)) > tol * scale
    if bad.any():
        where = tuple(np.argwhere(bad)[0])
        if covariance_type == "tied":
            where = where[1:]
        transposed = (*where[:-2], where[-1], where[-2])
        raise ValueError(
            f"{what} must be symmetric, but {what}{_index(where)} = {a[where]:.6g} while "
            f"{what}{_index(transposed)} = {a[transposed]:.6g}. If the difference is rounding error, "
            f"pass ({what} + np.swapaxes({what}, -1, -2)) / 2."
        )


@eager
def check_precisions_cholesky(factor, covariance_type, what="precisions_cholesky"):
    """Refuses precision factors whose density would be NaN or not normalised.

    ``full``/``tied`` factors must be upper-triangular (scikit-learn's
    ``precisions_cholesky_``): the log-determinant is the sum of the log
    diagonal, which holds for a triangular factor only. Every diagonal entry
    (every entry for ``diag``/``spherical``) must be positive.
    """
    if not is_concrete(factor):
        return
    f = np.asarray(factor)
    if covariance_type in ("full", "tied"):
        below = np.tril(f, -1) != 0
        if below.any():
            where = tuple(np.argwhere(below)[0])
            raise ValueError(
                f"{what} for covariance_type={covariance_type!r} must be upper-triangular (scikit-learn's "
                f"precisions_cholesky_, with precision = U @ U.T), but {what}{_index(where)} = {f[where]:.6g} "
                "lies below the diagonal. Build the parameters from covariances or precisions instead "
                "(GMMParams.from_covariances / GMMParams.from_precisions), or pass np.triu(...) if those "
                "entries are rounding noise."
            )
        diagonal = np.diagonal(f, axis1=-2, axis2=-1)
        label = "the diagonal of " + what
    else:
        diagonal = f
        label = what + " (one over the standard deviation)"
    bad = ~(diagonal > 0)
    if bad.any():
        where = tuple(np.argwhere(bad)[0])
        raise ValueError(
            f"{label} must be positive, got {diagonal[where]:.6g} at {_index(where)}: a zero or negative "
            "factor has no normalised density (its log-determinant is -inf or NaN). Build the parameters "
            "from covariances with GMMParams.from_covariances."
        )


@eager
def check_finite_factor(precisions_cholesky, what):
    if is_concrete(precisions_cholesky) and not bool(jnp.all(jnp.isfinite(precisions_cholesky))):
        fix = (
            "Add a small value to the diagonal (reg_covar) or check the input."
            if what == "covariances"
            else "Check the input: every precision matrix must be invertible."
        )
        raise ValueError(
            f"{what} must be symmetric positive definite (positive variances); the Cholesky "
            f"factorisation failed. {fix}"
        )


@functools.lru_cache(maxsize=None)
def _raw_key_shape(impl: str):
    del impl  # the cache key: the raw shape depends on the PRNG implementation
    return jax.eval_shape(lambda: jax.random.key_data(jax.random.key(0))).shape


def check_key(key, name: str = "key"):
    """Checks that ``key`` is one PRNG key; returns it (a raw NumPy key as a JAX array).

    Accepts a typed key (``jax.random.key(seed)``, also a tracer under
    ``jit``/``vmap``) or a raw ``uint32`` key (``jax.random.PRNGKey(seed)``).

    Raises:
      TypeError: naming ``name``, for an integer seed, any other object, or a
        batch of keys.
    """
    dtype = getattr(key, "dtype", None)
    if isinstance(key, (jax.Array, np.ndarray)) and dtype is not None:
        if jnp.issubdtype(dtype, jax.dtypes.prng_key):
            if key.shape == ():
                return key
            raise TypeError(
                f"{name} must be a single PRNG key, got a batch of keys of shape {key.shape}; map over the "
                f"keys with jax.vmap, or pass one of them ({name}[0])."
            )
        raw = _raw_key_shape(str(jax.config.jax_default_prng_impl))
        if dtype == np.uint32 and key.shape[-len(raw):] == raw:
            if key.shape == raw:
                return jnp.asarray(key)
            raise TypeError(
                f"{name} must be a single PRNG key, got a batch of raw keys of shape {key.shape}; map over "
                f"the keys with jax.vmap, or pass one of them ({name}[0])."
            )
    if dtype is not None:
        got = f"an array with dtype {dtype} and shape {getattr(key, 'shape', ())}"
    elif isinstance(key, (numbers.Number, str, bytes)):
        got = f"{type(key).__name__} {key!r}"
    else:
        got = type(key).__name__
    raise TypeError(
        f"{name} must be a JAX PRNG key such as jax.random.key(0), got {got}. "
        f"Make one from an integer seed with jax.random.key(seed)."
    )


@eager
def check_params_values(params, name: str = "params"):
    """For concrete parameters: finite leaves, non-negative weights, valid precision factors.

    ``GMMParams(...)`` and ``.replace`` do not validate (JAX rebuilds params
    on every unflatten), so a function that would turn invalid parameters
    into silent NaN output checks them here first.
    """
    for field in ("weights", "means", "precisions_cholesky"):
        leaf = getattr(params, field)
        if is_concrete(leaf) and not bool(jnp.all(jnp.isfinite(leaf))):
            raise ValueError(
                f"{name}.{field} contains NaN or inf; every parameter must be finite (after a fit, "
                "check FitResult.status; build parameters with GMMParams.from_covariances)."
            )
    if is_concrete(params.weights) and bool(jnp.any(params.weights < 0)):
        raise ValueError(f"{name}.weights must be non-negative, got {np.asarray(params.weights).tolist()}.")
    check_precisions_cholesky(params.precisions_cholesky, params.covariance_type, f"{name}.precisions_cholesky")
