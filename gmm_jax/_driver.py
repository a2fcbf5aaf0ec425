"""One driver for every fit: options, centring, restarts, the result, the failure rule, batches.

``fit``, ``fit_stream`` and ``fit_online`` (and ``select``) are thin entry
points over this module. Each does only what is its own (where the rows come
from); everything else is here, once:

* **validation**: :func:`fit_options` checks every static option into one
  hashable :class:`FitOptions`; :func:`check_tolerances` turns ``tol`` and
  ``reg_covar`` into traced scalars (changing them never recompiles, and they
  may be batched under ``vmap``);
* **centring**: all work happens in coordinates centred at a robust centre of
  the data (:func:`data_center`: the weighted mean, or a median where a few
  far rows move the mean out of the data; :func:`centred`, :func:`uncentred`),
  so float32 keeps its digits on data far from the origin;
* **restarts**: nested keys (:func:`restart_keys`: restart 0 is the
  ``n_init=1`` fit), side by side under ``vmap`` or in sequence, the best
  final lower bound kept (:func:`best_restart`);
* **the failure rule** (:func:`check_result`): outside transformations a
  failed fit raises one ``ValueError`` and a fit that stopped at ``max_iter``
  warns (:class:`ConvergenceWarning`); inside, ``FitResult.status`` and
  ``converged`` say it;
* **batches** (:func:`read_batch`): one reader for ``fit_stream`` and
  ``fit_online``.
"""

from __future__ import annotations

import functools
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gmm_jax import _em, _hierarchical, _init, _missing, _pass, _prior, _rows, _tuning, _validation
from gmm_jax._em import EMData, FitResult
from gmm_jax._params import GMMParams, check_init_params
from gmm_jax._precision import float32_matmuls
from gmm_jax._tuning import Tuning

__all__ = [
    "ConvergenceWarning",
    "FitOptions",
    "fit_options",
    "check_tolerances",
    "restart_keys",
    "fit_in_memory",
    "fit_program",
    "fit_size",
    "check_result",
    "read_batch",
]


class ConvergenceWarning(UserWarning):
    """A fit stopped at ``max_iter`` before its change fell below ``tol`` (scikit-learn's warning)."""


class FitOptions(NamedTuple):
    """The static options of a fit, validated once (hashable: a ``jit`` static argument)."""

    n_components: int
    covariance_type: str
    init: str
    n_init: int
    max_iter: int
    chunk_size: int | _rows.RowBlocks | None  # rows per chunk (per device for sharded X); None: one chunk
    verbose: bool
    tuning: Tuning
    differentiate: str = "unrolled"  # "unrolled" | "implicit": how a fit's derivatives are formed
    n_slots: int | None = None  # missing data: at most this many NaN per row (_missing); None: complete data
    slot_groups: _missing.SlotGroups | None = None  # missing data: EM on rows sorted by NaN count (_missing)


DIFFERENTIATE = ("unrolled", "implicit")


def fit_options(
    *, n_samples, n_features, n_components, covariance_type, init, n_init, max_iter, verbose, chunk_size, tuning,
    n_blocks=1, differentiate="unrolled", n_slots=None,
) -> FitOptions:  # fmt: skip
    """Validates the static options of any fit.

    Args:
      n_samples: rows of the data (``None`` for a stream, whose length is not
        known yet: ``n_components`` is checked against it later, and the
        default ``chunk_size`` is chosen per batch).
      n_blocks: row blocks of sharded data (chunks stay within each block).
      n_slots: missing data: the bound on NaN entries per row (None: complete data).
    """
    n_components = _validation.check_int(n_components, "n_components", 1)
    if n_samples is not None and n_components > n_samples:
        raise ValueError(
            f"n_components={n_components} must be <= n_samples={n_samples}; use fewer components or more data."
        )
    _validation.check_covariance_type(covariance_type)
    _validation.check_init(init)
    n_init = _validation.check_int(n_init, "n_init", 1)
    max_iter = _validation.check_int(max_iter, "max_iter", 0)
    verbose = _validation.check_verbose(verbose)
    if chunk_size is not None:
        chunk_size = _validation.check_int(chunk_size, "chunk_size", 1)
    elif n_samples is not None and n_slots is not None:
        chunk_size = _missing.missing_chunk_size(n_samples // n_blocks, n_components, n_features, covariance_type,
                                                 n_slots, tuning)  # fmt: skip
    elif n_samples is not None:
        chunk_size = _pass.chunk_rows(n_samples // n_blocks, n_components, n_features, covariance_type, tuning)
    if n_blocks > 1:
        chunk_size = _rows.RowBlocks(n_blocks, chunk_size)
    if differentiate not in DIFFERENTIATE:
        raise ValueError(f"differentiate must be one of {DIFFERENTIATE}, got {differentiate!r}.")
    return FitOptions(n_components, covariance_type, init, n_init, max_iter, chunk_size, verbose, tuning, differentiate,
                      n_slots)  # fmt: skip


def with_slot_groups(options: FitOptions, X, chunk_size=None) -> FitOptions:
    """``options`` with the slot groups of a concrete ``X`` with missing data (``_missing.slot_groups``).

    ``chunk_size``: the caller's (validated) rows per chunk, or None. Sharded
    rows keep one bound for all rows: sorting them would gather them.
    """
    if options.n_slots is None or isinstance(options.chunk_size, _rows.RowBlocks):
        return options
    groups = _missing.slot_groups(X, options.covariance_type, options.n_components, options.tuning, chunk_size)
    return options._replace(slot_groups=groups)


def batch_layout(options: FitOptions, n_rows: int, n_features: int, n_devices: int = 1, n_slots=None):
    """Rows per chunk for one batch of ``n_rows`` (split over ``n_devices``) of a stream.

    ``n_slots``: the batch's bound on NaN entries per row (missing data), None for complete data.
    """
    if options.chunk_size:
        chunk = options.chunk_size
    elif n_slots is not None:
        chunk = _missing.missing_chunk_size(n_rows // n_devices, options.n_components, n_features,
                                            options.covariance_type, n_slots, options.tuning)  # fmt: skip
    else:
        chunk = _pass.chunk_rows(n_rows // n_devices, options.n_components, n_features, options.covariance_type,
                                 options.tuning)  # fmt: skip
    return _rows.RowBlocks(n_devices, chunk) if n_devices > 1 else chunk


# Rows are padded (with zero weight) up to a bucket so that a new N within a
# bucket reuses the compiled fit: four buckets per doubling (at most 25%
# padding), for data of up to this many rows (beyond, compiling is a small
# part of a fit and padding would copy X).
_BUCKET_MAX_ROWS = 2**16


def bucket_size(n_rows: int) -> int:
    """Rows of the bucket holding ``n_rows``: the next multiple of 2**(floor(log2(n - 1)) - 2), at least 8."""
    if n_rows <= 8:
        return 8
    step = 2 ** max(int(np.floor(np.log2(n_rows - 1))) - 2, 0)
    return -(-n_rows // step) * step


def pad_to_bucket(X, w):
    """``(X, w)`` padded with zero-weight copies of the last row up to :func:`bucket_size`.

    Only for unsharded data of up to ``_BUCKET_MAX_ROWS`` rows (under the
    caller's ``jit`` too, so a jitted fit runs the same program as the eager
    one; sharded arrays keep their shape). Zero-weight rows change no
    sum, no draw of the initialisations (inverse-CDF sampling ignores them,
    random starts are keyed by row) and no result.
    """
    n = X.shape[0]
    if n > _BUCKET_MAX_ROWS:
        return X, w
    if _validation.is_concrete(X) and (not getattr(X, "is_fully_addressable", True)
                                       or len(getattr(X, "devices", lambda: [None])()) > 1):  # fmt: skip
        return X, w
    n_pad = bucket_size(n) - n
    if n_pad == 0:
        return X, w
    xp = np if isinstance(X, np.ndarray) and isinstance(w, np.ndarray) else jnp  # host data stays on the host
    return (xp.concatenate([X, xp.broadcast_to(X[-1:], (n_pad, X.shape[1]))]),
            xp.concatenate([w, xp.zeros((n_pad,), w.dtype)]))  # fmt: skip


def check_tolerances(tol, reg_covar, dtype):
    """``(tol, reg_covar)`` as traced scalars of ``dtype`` (checked when concrete)."""
    return (
        _validation.check_scalar_option(tol, "tol", dtype),
        _validation.check_scalar_option(reg_covar, "reg_covar", dtype),
    )


def check_warm_start(init_params, init_lower_bound, n_components, n_features, covariance_type, dtype):
    """``(init_params as dtype or None, init_lower_bound as a scalar)``; the bound needs ``init_params``."""
    if init_params is not None:
        init_params = check_init_params(init_params, n_components, n_features, covariance_type).astype(dtype)
        _validation.check_params_values(init_params, "init_params")
    if init_lower_bound is None:
        return init_params, np.asarray(-np.inf, dtype)
    if init_params is None:
        raise ValueError(
            "init_lower_bound is the lower bound of the fit that produced init_params; pass init_params too."
        )
    if isinstance(init_lower_bound, jax.Array) and not _validation.is_concrete(init_lower_bound):
        return init_params, init_lower_bound.astype(dtype)
    value = float(np.asarray(init_lower_bound))
    if np.isnan(value) or value == np.inf:
        raise ValueError(f"init_lower_bound must be a finite number or -inf, got {init_lower_bound!r}.")
    return init_params, np.asarray(value, dtype)


# ---------------------------------------------------------------------------
# Centring and restarts.


def centred(params: GMMParams, center) -> GMMParams:
    """``params`` in coordinates centred at ``center`` (``(D,)``)."""
    return params.replace(means=params.means - center[None, :])


def centred_prior(prior, center):
    """A ``ConjugatePrior`` in coordinates centred at ``center`` (its mean moves; nothing else does)."""
    return None if prior is None else prior.replace(mean=prior.mean - center)


def check_prior(prior, n_features, covariance_type, dtype):
    """A validated ``ConjugatePrior`` of ``dtype``, or None."""
    return None if prior is None else _prior.check_prior(prior, n_features, covariance_type).astype(dtype)


def uncentred(result: FitResult, center) -> FitResult:
    """A result from centred coordinates back to the data's."""
    return result._replace(params=result.params.replace(means=result.params.means + center[None, :]))


def restart_keys(key, n_init: int):
    """Nested restart keys: restart 0 is ``key`` itself (the ``n_init=1`` fit), restart r is ``fold_in(key, r)``.

    So adding restarts never changes the earlier ones, and ``n_init=5`` is
    never worse than ``n_init=1`` with the same key.
    """
    others = [jax.random.fold_in(key, r) for r in range(1, n_init)]
    return jnp.stack([key, *others]) if others else key[None]


def best_restart(results: FitResult) -> FitResult:
    """The restart with the highest final lower bound among those that stayed finite."""
    ok = (results.status == _em.STATUS_OK) & jnp.isfinite(results.lower_bound)
    score = jnp.where(ok, results.lower_bound, -jnp.inf)
    # Failed restarts still rank among themselves, so an all-failed fit reports failure.
    fallback = jnp.argmax(jnp.nan_to_num(results.lower_bound, nan=-jnp.inf))
    best = jnp.where(jnp.any(ok), jnp.argmax(score), fallback)
    return jax.tree_util.tree_map(lambda a: a[best], results)


def in_sequence(n_samples, n_features, options: FitOptions):
    """Whether independent fits of this size (restarts, or the K of a selection) run one after another.

    Under vmap the products gain a second batch dimension, which XLA's CPU
    kernels handle several times slower, and a large fit keeps the machine
    busy by itself (see ``_tuning.Tuning.sequential_restarts_size``).
    """
    return n_samples * n_features * options.n_components >= options.tuning.sequential_restarts_size


def invalid_weights(w) -> jax.Array:
    """``()`` bool: weights that are negative, non-finite or all zero (checked in the trace)."""
    return ~(jnp.all(jnp.isfinite(w)) & jnp.all(w >= 0) & jnp.any(w > 0))


def center_restarts(options: FitOptions) -> range:
    """The restarts of a fit that start from k-means or k-means++ centres (``_init.start_centers``).

    All of them for ``init="kmeans"`` or ``"k-means++"``; with
    ``"hierarchical"`` every restart but the first (which cuts the tree);
    none for the other inits.
    """
    if options.init in _init.CENTER_INITS:
        return range(options.n_init)
    return range(1, options.n_init) if options.init == "hierarchical" else range(0)


def start_centers(key, X, w, center, options: FitOptions, n_active=None):
    """``(len(center_restarts(options)), K, D)``: those restarts' centres (centred), as :func:`fit_restarts` draws them.

    They depend on the covariance type only through ``options.chunk_size``,
    so one computation serves the fits of several types (``_select``).
    None where no restart starts from centres.
    """
    restarts = center_restarts(options)
    if not restarts:
        return None
    init = options.init if options.init in _init.CENTER_INITS else "kmeans"
    X_init = X if options.n_slots is None else _missing.initial_data(X, center)
    keys = restart_keys(key, options.n_init)[restarts.start:]

    def one(key):
        return _init.start_centers(key, X_init, w, options.n_components, init, options.chunk_size,
                                   options.covariance_type, center, options.tuning, n_active)  # fmt: skip

    if len(restarts) == 1:
        return one(keys[0])[None]
    return jax.lax.map(one, keys) if in_sequence(*X.shape, options) else jax.vmap(one)(keys)


def fit_restarts(key, X, w, init_params, tol, reg_covar, init_lower_bound, options: FitOptions, center,
                 n_active=None, prior=None, hierarchy=None, centers=None) -> FitResult:  # fmt: skip
    """Initialisation, EM and the best of ``options.n_init`` restarts, in coordinates centred at ``center``.

    ``n_active`` (traced): fit only the first ``n_active`` of the
    ``options.n_components`` components, the others switched off, exactly as
    a fit with ``n_active`` components (model selection). ``prior``: a
    ``ConjugatePrior`` in the data's coordinates (MAP-EM), or None.
    ``hierarchy``: the tree of ``init="hierarchical"`` (:func:`hierarchical_tree`),
    built here when None. A tree has one cut per ``K``, so with
    ``init="hierarchical"`` restart 0 starts from it and the others from k-means.
    ``centers``: the centres of the restarts that start from them
    (:func:`start_centers`), computed here when None.
    """
    prior = centred_prior(prior, center)
    # Missing data: the start is computed on the rows with each NaN replaced
    # by the centre of its column (_missing.initial_data), then EM is exact.
    X_init = X if options.n_slots is None else _missing.initial_data(X, center)
    hierarchical = options.init == "hierarchical" and init_params is None
    if hierarchical and hierarchy is None:
        hierarchy = hierarchical_tree(key, X, w, center, options)
    active = None if n_active is None else jnp.arange(options.n_components) < n_active

    def start(key, init, centers=None):
        if init_params is not None:
            return centred(init_params, center)
        return _init.initialize(key, X_init, w, options.n_components, options.covariance_type, init, reg_covar,
                                options.chunk_size, center, options.tuning, n_active, prior, hierarchy,
                                centers)  # fmt: skip

    # Missing data in slot groups: EM runs on the rows sorted by their NaN
    # count (sorted once, shared by the restarts); the start above used X.
    X_em, w_em, slots = X, w, options.n_slots
    if options.slot_groups is not None:
        (X_em, w_em), slots = _missing.sorted_rows(X, w), options.slot_groups

    def run(start, restart):
        data = EMData(X_em, w_em, tol, reg_covar, center, init_lower_bound, restart, active, prior)
        return _em.run_em(start, data, max_iter=options.max_iter, chunk_size=options.chunk_size,
                          tuning=options.tuning, verbose=options.verbose, n_slots=slots)  # fmt: skip

    if options.n_init == 1:
        result = run(start(key, options.init, None if centers is None else centers[0]), jnp.zeros((), jnp.int32))
    else:
        keys, restarts = restart_keys(key, options.n_init), jnp.arange(options.n_init, dtype=jnp.int32)
        batched = (lambda f, xs: jax.lax.map(f, xs)) if in_sequence(*X.shape, options) else (lambda f, xs: jax.vmap(f)(xs))
        if hierarchical:
            others = batched(lambda a: start(a[0], "kmeans", a[1]), (keys[1:], centers))
            starts = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a[None], b]), start(key, options.init), others)
            results = batched(lambda a: run(*a), (starts, restarts))
        else:
            results = batched(lambda a: run(start(a[0], options.init, a[2]), a[1]), (keys, restarts, centers))
        result = best_restart(results)
    status = jnp.where(invalid_weights(w), _em.STATUS_INVALID_WEIGHTS, result.status).astype(jnp.int32)
    return result._replace(status=status)


def hierarchical_tree(key, X, w, center, options: FitOptions):
    """The agglomeration ``init="hierarchical"`` cuts (``_hierarchical.tree``), or None for other inits.

    Built once and cut at every ``K`` of a selection. Missing entries are
    filled as for every start (:func:`_missing.initial_data`).
    """
    if options.init != "hierarchical":
        return None
    X_init = X if options.n_slots is None else _missing.initial_data(X, center)
    return _hierarchical.tree(key, X_init, w, options.chunk_size)


def data_center(X, w, options: FitOptions):
    """The working origin of a fit: a robust centre of the (observed) data, ``_rows.robust_center``."""
    return _data_center(X, w, options.n_slots is not None)


@functools.partial(jax.jit, static_argnames=("missing",))  # one program outside a fit (a stream's sample, ...)
def _data_center(X, w, missing: bool):
    return jax.lax.stop_gradient(_rows.robust_center(X, w, missing=missing))


def fit_weights(X, w, options: FitOptions):
    """The weights EM uses: rows with nothing observed carry no information (missing data)."""
    return w if options.n_slots is None else _missing.informative_weights(X, w)


def fit_size(shape, options: FitOptions) -> int:
    """Rows x features x components x restarts: the size that picks a fit's compiler options (``_tuning.SizedJit``)."""
    return shape[0] * shape[1] * options.n_components * options.n_init


def fit_in_memory(key, X, w, init_params, tol, reg_covar, init_lower_bound, options: FitOptions, prior=None) -> FitResult:
    """The compiled fit of rows held in memory (one device or sharded): initialise, EM, restarts."""
    program = fit_program.pick(options.tuning, fit_size(X.shape, options))
    return program(key, X, w, init_params, tol, reg_covar, init_lower_bound, options, prior)


@functools.partial(_tuning.SizedJit, static_argnames=("options",))
@float32_matmuls
def fit_program(key, X, w, init_params, tol, reg_covar, init_lower_bound, options: FitOptions, prior=None) -> FitResult:
    """:func:`fit_in_memory`'s program, compiled for small or for large problems (``fit_program.pick``)."""
    w = fit_weights(X, w, options)
    center = data_center(X, w, options)
    if options.differentiate == "unrolled":
        result = fit_restarts(key, X, w, init_params, tol, reg_covar, init_lower_bound, options, center,
                              prior=prior)  # fmt: skip
        return uncentred(result, center)
    # Implicit: the iterations run without derivatives; the converged
    # parameters get theirs from the fixed-point equation (_em.implicit_fixed_point).
    X_, w_, reg_, init_, prior_ = jax.lax.stop_gradient((X, w, reg_covar, init_params, prior))
    result = fit_restarts(key, X_, w_, init_, tol, reg_, init_lower_bound, options, center, prior=prior_)
    params = _em.implicit_fixed_point(result.params, X, w, reg_covar, center, chunk_size=options.chunk_size,
                                      tuning=options.tuning, n_slots=options.n_slots,
                                      prior=centred_prior(prior_, center))  # fmt: skip
    return uncentred(result._replace(params=params), center)


@functools.partial(jax.jit, static_argnames=("options",))
@float32_matmuls
def initialize(key, X, w, center, reg_covar, options: FitOptions, prior=None) -> GMMParams:
    """The compiled initialisation of a stream's sample or an online fit's first batch (centred).

    With missing data (``options.n_slots`` not None) the start is computed as
    in :func:`fit_restarts`: rows with nothing observed get no weight and
    each NaN is replaced by ``center`` (``_missing.initial_data``).
    """
    if options.n_slots is not None:
        w = fit_weights(X, w, options)
        X = _missing.initial_data(X, center)
    chunk = _pass.chunk_rows(X.shape[0], options.n_components, X.shape[1], options.covariance_type, options.tuning)
    return _init.initialize(key, X, w, options.n_components, options.covariance_type, options.init, reg_covar,
                            chunk, center, options.tuning, prior=centred_prior(prior, center))  # fmt: skip


# ---------------------------------------------------------------------------
# The failure rule.

FAILURE_MESSAGE = (
    "Fitting the mixture model failed because some components have ill-defined empirical "
    "covariance (for instance caused by singleton or collapsed samples). Try to decrease the "
    "number of components, increase reg_covar, or scale the input data."
)


def check_result(result: FitResult, tol, what: str = "fit") -> FitResult:
    """Outside transformations: raise for a failed fit, warn for one that did not converge.

    Inside ``jit``/``vmap``/``grad`` nothing can be raised: ``status`` and
    ``converged`` carry the same information.
    """
    if not _validation.is_concrete(result.status):
        return result
    status = int(result.status)
    if status == _em.STATUS_NON_FINITE:
        raise ValueError(FAILURE_MESSAGE)
    if status != _em.STATUS_OK:
        raise ValueError(f"{what} failed with status {status}.")
    tol = float(tol) if _validation.is_concrete(tol) else 0.0
    max_iter = result.log_likelihood.shape[-1]
    if tol > 0 and max_iter > 0 and _validation.is_concrete(result.converged) and not bool(result.converged):
        warnings.warn(
            f"{what} did not converge in max_iter={max_iter} iterations (the last change of the mean "
            f"log-likelihood was above tol={tol:g}). Try a larger max_iter, a larger tol, or another start.",
            ConvergenceWarning,
            stacklevel=3,
        )
    return result


# ---------------------------------------------------------------------------
# Batches of streamed and online fits.


def read_batch(batch, where: str, n_features: int | None, dtype, nan_policy: str = "raise"):
    """A batch ``X`` or ``(X, sample_weight)`` as validated host arrays ``(X (n, D), w (n,))``.

    Args:
      batch: what the source yielded.
      where: how to name the batch in errors (e.g. ``"batch 3 (0-based) of pass 1"``).
      n_features: the width of earlier batches (``None`` for the first).
      dtype: the dtype of earlier batches (``None`` for the first: this one's).
      nan_policy: as in ``fit``: ``"marginalize"`` keeps NaN entries (and
        masked entries of a ``numpy.ma.MaskedArray``, as NaN) as missing
        values; inf is an error under both policies.
    """
    if isinstance(batch, tuple):
        if len(batch) != 2:
            raise ValueError(f"{where} is a tuple of {len(batch)} items; a batch is X or (X, sample_weight).")
        X, w = batch
    else:
        X, w = batch, None
    X = _validation.host_float_array(X, f"X in {where}", nan_policy)
    if X.ndim != 2:
        raise ValueError(f"X in {where} must be 2-D (n_samples, n_features), got shape {X.shape}.")
    if n_features is None and X.shape[1] < 1:
        raise ValueError(f"X in {where} has no features (shape {X.shape}).")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(
            f"X in {where} has {X.shape[1]} features but earlier batches have {n_features}: {where} has "
            f"shape {X.shape}; every batch must have the same columns."
        )
    X = X.astype(X.dtype if dtype is None else dtype, copy=False)
    if nan_policy == "marginalize":
        if np.isinf(X).any():
            raise ValueError(
                f"X in {where} contains {int(np.isinf(X).sum())} infinite value(s); with "
                'nan_policy="marginalize" only NaN marks a missing entry. Remove or replace them.'
            )
    elif not np.isfinite(X).all():
        raise ValueError(
            f"X in {where} contains {int((~np.isfinite(X)).sum())} NaN or infinite value(s); remove or impute "
            'them, or pass nan_policy="marginalize" to treat NaN entries as missing at random.'
        )
    if w is None:
        return X, np.ones((X.shape[0],), X.dtype)
    w = _validation.host_float_array(w, f"sample_weight in {where}").astype(X.dtype, copy=False)
    if w.shape != (X.shape[0],):
        raise ValueError(f"sample_weight in {where} must have shape ({X.shape[0]},), got {w.shape}.")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"sample_weight in {where} must be finite and non-negative.")
    return X, w


def pad_rows(X, w, n_rows):
    """Pads a batch with zero-weight copies of its last row to ``n_rows`` (fewer compiled shapes)."""
    n_pad = n_rows - X.shape[0]
    if n_pad == 0:
        return X, w
    return np.concatenate([X, np.repeat(X[-1:], n_pad, axis=0)]), np.concatenate([w, np.zeros((n_pad,), w.dtype)])


def host_result(state: _em.EMState, trace, lower_bound, center) -> FitResult:
    """The ``FitResult`` of a fit driven from the host (a stream): the same fields as the compiled loop's."""
    result = FitResult(
        state.params,
        jnp.asarray(trace, state.params.means.dtype),
        state.n_iter,
        state.converged,
        jnp.asarray(lower_bound, state.params.means.dtype),
        state.status,
        state.n_empty,
    )
    return uncentred(result, center)
