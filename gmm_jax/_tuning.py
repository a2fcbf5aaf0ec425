"""Platform-dependent choices of the engine, one value per platform.

Every choice that depends on the hardware lives here, as one immutable
:class:`Tuning` per platform. It is chosen once per call from the device that
holds ``X`` (:func:`for_data`), before tracing, and passed down as static
configuration: the pass, the row chunking and the restarts read it, none of
them asks ``jax.default_backend()``. Every field names the rule it encodes;
the measurements behind the numbers are in ``benchmarks/README.md``
("Tuning table"). Tests run both tables on the CPU (they must compute the same
numbers), so no branch is untested.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax

__all__ = ["Tuning", "CPU", "ACCELERATOR", "for_data", "for_platform", "SizedJit", "FAST_COMPILE"]


class Tuning(NamedTuple):
    """Static, hashable tuning of the engine for one platform.

    Attributes:
      chunk_elements: elements of the largest per-chunk intermediate of a
        pass (it sets the rows per chunk with the pass's per-row width). CPU:
        near cache (4 MiB of float32); a GPU wants far more rows per kernel.
      min_chunk_rows: never fewer rows per chunk than this (loop overhead).
      full_unroll: chunks per loop step of the full-covariance pass. On CPU
        independent chunks in one step let XLA's runtime overlap them; a GPU
        runs kernels in order, so there it would only grow the program.
      small_d: up to this many features the full pass and k-means multiply
        element-wise instead of calling a matrix product (tiny GEMMs waste a
        kernel, and under ``vmap`` become thousands of GEMM calls).
      pairwise_norms_max_d: up to this many features the full pass sums the
        Mahalanobis norms as a pairwise sum of rows that XLA fuses into the
        element-wise loops (CPU); beyond, or with 0, a reduction.
      unroll_components: up to this many components, reductions over the
        component axis are chains of element-wise operations (fused), beyond
        it a reduction.
      feature_loop_d: up to this many features k-means sums exact distances
        feature by feature, with rows on the fast axis.
      diag_expand_min_size: a diag/spherical or tied pass over fewer rows x
        components x features is explicit differences (tied: the full
        pass's); from this size on it uses matrix products where their
        rounding is within budget (``_pass.DiagPass``, ``_pass.TiedPass``).
      sequential_restarts_size: restarts of a fit (and the ``K`` of a
        selection) of at least this many rows x components x features run
        one after another (``lax.map``) instead of side by side under
        ``vmap``. On a CPU always (0): a batched loop runs until its slowest
        member converges, gains little from two cores and compiles about
        1.5x longer; an accelerator runs small fits side by side in parallel.
      slot_groups_min_rows: from this many rows on, missing data with full
        or tied covariances is scored and fitted in slot groups
        (``_missing.SlotGroups``). Each group is compiled, and the groups
        follow the data's counts of NaN per row, so data of the same shape
        can compile again; below this size the pass with one bound for all
        rows costs less than that.
      pattern_sums_max_share: a slot group whose chunks hold at most this
        many distinct missingness patterns per row sums the conditional
        covariances once per pattern instead of once per row
        (``_missing.MissingFull``): with few patterns the pattern sums cost
        a fraction of placing each row's block, with nearly one pattern per
        row they add work.
      fast_compile_max_size: programs up to this many rows x components x
        features (times restarts or fits) are compiled with
        :data:`FAST_COMPILE`: on small problems the compile is most of the
        wait, on large ones the iterations are (:class:`SizedJit`).
    """

    chunk_elements: int
    min_chunk_rows: int
    full_unroll: int
    small_d: int
    pairwise_norms_max_d: int
    unroll_components: int
    feature_loop_d: int
    diag_expand_min_size: int
    sequential_restarts_size: int
    slot_groups_min_rows: int
    fast_compile_max_size: int
    pattern_sums_max_share: float


# benchmarks/README.md, "Tuning table", has the measurement behind each value.
CPU = Tuning(
    chunk_elements=2**20,
    min_chunk_rows=256,
    full_unroll=4,
    small_d=4,
    pairwise_norms_max_d=16,
    unroll_components=32,
    feature_loop_d=16,
    diag_expand_min_size=2**17,
    sequential_restarts_size=0,  # always: side by side, a batched loop compiles longer and is no faster here
    slot_groups_min_rows=2**14,
    fast_compile_max_size=2**22,
    pattern_sums_max_share=0.25,
)

ACCELERATOR = CPU._replace(
    chunk_elements=2**27,  # H200: 318 -> 272 ms per iteration at N=1e7, D=32, K=64 (2**24 -> 2**27)
    full_unroll=1,
    pairwise_norms_max_d=0,
    sequential_restarts_size=2**17,
    fast_compile_max_size=0,  # FAST_COMPILE holds CPU options only
)


def for_platform(platform: str) -> Tuning:
    """The tuning of a platform name (``"cpu"``, ``"gpu"``, ``"cuda"``, ``"tpu"``, ...)."""
    return CPU if platform == "cpu" else ACCELERATOR


def for_data(X) -> Tuning:
    """The tuning for the device that holds ``X``.

    A concrete ``jax.Array`` says where it lives; host data (NumPy) and
    tracers inside a caller's ``jit`` will be placed on the default device.
    """
    if isinstance(X, jax.Array) and not isinstance(X, jax.core.Tracer):
        platforms = {device.platform for device in X.devices()}
        if len(platforms) == 1:
            return for_platform(platforms.pop())
    return for_platform(jax.default_backend())


try:  # True outside every transformation: the only place a jit takes compiler options
    from jax._src.core import trace_state_clean as _outside_transformations
except ImportError:  # another JAX: the default options everywhere

    def _outside_transformations() -> bool:
        return False


# XLA's CPU compiler without its MLIR fusion emitters: the seed fit compiles
# in 0.9 s instead of 1.5 s, and large iterations run 5-29% slower
# (benchmarks/README.md, "Compile time").
FAST_COMPILE = {"xla_cpu_use_fusion_emitters": False}


class SizedJit:
    """``jax.jit`` of one function twice over, picked by the size of the problem.

    ``pick(tuning, size)`` is the function compiled with :data:`FAST_COMPILE`
    up to ``tuning.fast_compile_max_size``, and with XLA's defaults beyond.
    Both give the same results up to rounding. Under a transformation (a
    caller's ``jit``, ``vmap`` or ``grad``) it is always the default one: in
    a caller's ``jit`` it is inlined into the caller's program and compiled
    with the caller's options.

    Example:
      >>> import jax.numpy as jnp
      >>> from gmm_jax import _tuning
      >>> double = _tuning.SizedJit(lambda x: 2 * x)
      >>> int(double.pick(_tuning.CPU, 3)(jnp.array(2)))
      4
    """

    def __init__(self, fun, **jit_kwargs):
        functools.update_wrapper(self, fun)
        self.default = jax.jit(fun, **jit_kwargs)
        self.fast = jax.jit(fun, compiler_options=FAST_COMPILE, **jit_kwargs)

    def pick(self, tuning: Tuning, size: int):
        # JAX refuses compiler options on a jit inside another trace (jit, scan,
        # make_jaxpr): there the caller's program and options decide anyway.
        fast = size <= tuning.fast_compile_max_size and _outside_transformations()
        return self.fast if fast else self.default

    def _cache_size(self) -> int:
        """Programs compiled so far, both variants together (for tests that count compilations)."""
        return self.default._cache_size() + self.fast._cache_size()
