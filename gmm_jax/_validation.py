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

INITS = ("kmeans", "k-means++", "random", "random_from_data")


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


def _float_dtype(x):
    # canonicalize: numpy float64 becomes float32 unless jax_enable_x64 is on,
    # without JAX's "requested dtype not available" warning.
    if jnp.issubdtype(x.dtype, jnp.floating):
        return jax.dtypes.canonicalize_dtype(x.dtype)
    return jax.dtypes.canonicalize_dtype(float)  # float32, or float64 under jax_enable_x64


def _host_numbers(x, name: str) -> np.ndarray:
    """``x`` as a real NumPy array of numbers, or a ``TypeError`` naming ``name``."""
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"{name} must be an array of numbers, got {type(x).__name__}.")
    try:
        x = np.asarray(x)
    except Exception as err:  # ragged nested lists and the like
        raise TypeError(f"{name} must be an array of numbers; could not convert it: {err}") from None
    if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise TypeError(f"{name} must be an array of numbers, got an array of dtype {x.dtype}.")
    if np.issubdtype(x.dtype, np.complexfloating):
        raise TypeError(f"{name} must be real, got dtype {x.dtype}.")
    return x


def as_float_array(x, name: str):
    """Converts ``x`` to a floating JAX array, keeping float32/float64 as given."""
    if isinstance(x, jax.Array):
        if jnp.issubdtype(x.dtype, jnp.complexfloating):
            raise TypeError(f"{name} must be real, got dtype {x.dtype}.")
    else:
        x = _host_numbers(x, name)
    return jnp.asarray(x, dtype=_float_dtype(x))


def host_float_array(x, name: str):
    """Like :func:`as_float_array` but stays on the host (NumPy): for data that must not
    be copied to a device whole (streamed batches, rows about to be sharded)."""
    x = _host_numbers(x, name)
    # float32 stays float32; float64 needs jax_enable_x64, as everywhere in gmm_jax.
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
    return x.astype(jax.dtypes.canonicalize_dtype(dtype), copy=False)


@eager
def check_data(X, name: str = "X", min_samples: int = 1):
    """Validates a data matrix ``(n_samples, n_features)``; returns a float array."""
    X = as_float_array(X, name)
    if X.ndim != 2:
        hint = " Reshape a single feature with X.reshape(-1, 1)." if X.ndim == 1 else ""
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {X.shape}.{hint}")
    if X.shape[0] < min_samples or X.shape[1] < 1:
        raise ValueError(
            f"{name} must have at least {min_samples} sample(s) and 1 feature, got shape {X.shape}."
        )
    if is_concrete(X) and not bool(jnp.all(jnp.isfinite(X))):
        n_bad = int(jnp.sum(~jnp.isfinite(X)))
        raise ValueError(
            f"{name} contains {n_bad} NaN or infinite value(s); remove or impute them before fitting."
        )
    return X


@eager
def check_sample_weight(sample_weight, n_samples: int, dtype):
    """Validates ``sample_weight`` of shape ``(n_samples,)``; ``None`` means ones."""
    if sample_weight is None:
        return jnp.ones((n_samples,), dtype)
    w = as_float_array(sample_weight, "sample_weight").astype(dtype)
    if w.shape != (n_samples,):
        raise ValueError(
            f"sample_weight must have shape (n_samples,) = ({n_samples},), got {w.shape}."
        )
    if is_concrete(w):
        if not bool(jnp.all(jnp.isfinite(w))) or bool(jnp.any(w < 0)):
            raise ValueError("sample_weight must be finite and non-negative; got negative, NaN or inf entries.")
        if not bool(jnp.any(w > 0)):
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
    return jnp.asarray(check_nonneg_float(value, name), dtype)


def check_key(key, name: str = "key"):
    """``key`` if it is a JAX PRNG key (new-style or a raw ``uint32[2]``), else a ``TypeError``."""
    if isinstance(key, jax.Array) and (
        jnp.issubdtype(key.dtype, jax.dtypes.prng_key) or (key.dtype == jnp.uint32 and key.shape == (2,))
    ):
        return key
    raise TypeError(
        f"{name} must be a JAX PRNG key such as jax.random.key(0), got {type(key).__name__}"
        + (f" with dtype {key.dtype} and shape {key.shape}" if hasattr(key, "dtype") else "")
        + "."
    )


def check_init(init):
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}.")
    return init


def check_verbose(verbose):
    if verbose not in (True, False):
        raise TypeError(f"verbose must be True or False, got {verbose!r}.")
    return bool(verbose)


@eager
def check_parameter_arrays(weights, means, third, covariance_type, what):
    """Checks the arrays given to a ``GMMParams`` constructor; returns them as arrays."""
    check_covariance_type(covariance_type)
    means = as_float_array(means, "means")
    if means.ndim != 2:
        raise ValueError(f"means must have shape (n_components, n_features), got {means.shape}.")
    n_components, n_features = means.shape
    weights = as_float_array(weights, "weights").astype(means.dtype)
    if weights.shape != (n_components,):
        raise ValueError(
            f"weights must have shape (n_components,) = ({n_components},) to match means {means.shape}, "
            f"got {weights.shape}."
        )
    third = as_float_array(third, what).astype(means.dtype)
    expected = expected_factor_shape(covariance_type, n_components, n_features)
    if third.shape != expected:
        raise ValueError(
            f"{what} for covariance_type={covariance_type!r} with {n_components} components and "
            f"{n_features} features must have shape {expected}, got {third.shape}."
        )
    if is_concrete(weights):
        if not bool(jnp.all(jnp.isfinite(weights))) or bool(jnp.any(weights < 0)):
            raise ValueError("weights must be finite and non-negative.")
        total = float(jnp.sum(weights))
        if not np.isclose(total, 1.0, rtol=1e-4, atol=1e-4):
            raise ValueError(f"weights must sum to 1, got a sum of {total:.6g}; divide by their sum.")
    if is_concrete(means) and not bool(jnp.all(jnp.isfinite(means))):
        raise ValueError("means contains NaN or inf.")
    if is_concrete(third) and not bool(jnp.all(jnp.isfinite(third))):
        raise ValueError(f"{what} contains NaN or inf.")
    return weights, means, third


@eager
def check_finite_factor(precisions_cholesky, what):
    if is_concrete(precisions_cholesky) and not bool(jnp.all(jnp.isfinite(precisions_cholesky))):
        raise ValueError(
            f"{what} must be symmetric positive definite (positive variances); the Cholesky "
            "factorisation failed. Add a small value to the diagonal (reg_covar) or check the input."
        )
