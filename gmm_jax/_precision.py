"""Full float32 matrix products on every device, and the ``matmul_precision`` option.

On recent NVIDIA GPUs, XLA computes float32 matrix products in TF32 unless
asked otherwise: inputs rounded to 10 mantissa bits, a relative error near
3e-4 (measured on an H200: 2.9e-4 for a 512 x 512 product, 2.1e-7 with full
float32). For EM that is the error of every Mahalanobis distance and every
second moment, and a float32 fit on GPU would drift from the float64
solution by 1e-4 relative, where the CPU lands at 1e-6.

Every compiled entry point of the package is therefore traced under
``jax.default_matmul_precision("float32")``, unless the caller has chosen a
precision (``jax.default_matmul_precision(...)`` or the
``jax_default_matmul_precision`` option): then the caller's choice is kept,
e.g. ``"tensorfloat32"`` to trade those digits for speed. On a CPU nothing
changes: its float32 products are full float32 already.

The public entry points (``fit``, ``fit_stream``, ``select`` and the scoring
functions) take ``matmul_precision="float32" | "bf16_3x" | "tf32"`` for the
same choice per call (:func:`with_matmul_precision`); the accuracy of each,
measured against float64, is in the README ("Precision of matrix products").
"""

from __future__ import annotations

import contextlib
import functools

import jax
import jax.numpy as jnp


# Unit roundoff of a matrix product's inputs, by precision name: full float32
# keeps 24 bits, TF32 11, bfloat16 8 (jax.default_matmul_precision's names).
# "high" and BF16_BF16_F32_X3 split each input into two bfloat16 halves (16 bits).
_MANTISSA_BITS = {"tensorfloat32": 11, "tf32_tf32_f32": 11, "bfloat16": 8, "bf16_bf16_f32": 8, "fastest": 8,
                  "default": 8, "high": 16, "bf16_bf16_f32_x3": 16}

# matmul_precision's values: JAX's names for them (jax.default_matmul_precision).
MATMUL_PRECISIONS = {"float32": "float32", "bf16_3x": "BF16_BF16_F32_X3", "tf32": "tensorfloat32"}


def unit_roundoff(dtype) -> float:
    """The unit roundoff of matrix products on ``dtype`` under the matmul precision in force (trace time).

    Full precision: ``eps / 2`` of the dtype. With a reduced precision chosen
    by the caller (``"tensorfloat32"``, ``"bfloat16"``) float32 products round
    their inputs to fewer bits; the diag pass's rounding check uses this.
    """
    u = float(jnp.finfo(dtype).eps) / 2.0
    chosen = jax.config.jax_default_matmul_precision
    if chosen is not None and jnp.dtype(dtype) == jnp.float32:
        bits = _MANTISSA_BITS.get(str(chosen).lower())
        if bits is not None:
            u = max(u, 2.0**-bits)
    return u


def float32_matmuls(fn):
    """Decorator: trace ``fn`` with full float32 matrix products unless the caller chose a precision."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if jax.config.jax_default_matmul_precision is not None:
            return fn(*args, **kwargs)
        with jax.default_matmul_precision("float32"):
            return fn(*args, **kwargs)

    return wrapper


def check_matmul_precision(matmul_precision):
    """``matmul_precision`` validated (before tracing): ``None`` or a key of ``MATMUL_PRECISIONS``."""
    if matmul_precision is None or (isinstance(matmul_precision, str) and matmul_precision in MATMUL_PRECISIONS):
        return matmul_precision
    raise ValueError(
        f"matmul_precision must be one of {tuple(MATMUL_PRECISIONS)} (or None: full float32 unless "
        f"jax.default_matmul_precision chose otherwise), got {matmul_precision!r}."
    )


@contextlib.contextmanager
def matmul_precision_scope(matmul_precision):
    """Trace inside with the products of ``matmul_precision`` (``None``: leave the caller's choice)."""
    if matmul_precision is None:
        yield
        return
    with jax.default_matmul_precision(MATMUL_PRECISIONS[matmul_precision]):
        yield


def with_matmul_precision(fn):
    """Decorator of a public entry point with a keyword ``matmul_precision`` (in its own signature).

    Validates the value before anything is traced and runs ``fn`` under it.
    JAX's compilation cache keys on the matmul precision in force, so each
    value compiles its own program and switching back reuses the first.
    """

    @functools.wraps(fn)
    def wrapper(*args, matmul_precision=None, **kwargs):
        check_matmul_precision(matmul_precision)
        with matmul_precision_scope(matmul_precision):
            return fn(*args, matmul_precision=matmul_precision, **kwargs)

    return wrapper
