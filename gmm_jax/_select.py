"""`select`: model selection over numbers of components and covariance types, one program per type.

mclust's ``mclustBIC`` in one call: a table of an information criterion over
``K`` x covariance type. For each covariance type, every ``K`` is fitted by
one compiled program: ``K_max`` components with those beyond ``K`` switched
off (weight 0, no responsibility, not initialised, not counted as
parameters), batched over ``K`` (side by side under ``vmap`` for small
problems, one after another for large ones, like restarts). Each entry is the
``gmm.fit`` at that ``K`` with the same key (up to rounding), and the sweep
compiles once per covariance type whatever the list of ``K``. The k-means
starts do not depend on the covariance type, so with several types they are
computed once, by their own program, for every sweep.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gmm_jax import _driver, _likelihood, _missing, _pass, _prior, _sharding, _tuning, _validation
from gmm_jax._em import STATUS_OK, FitResult
from gmm_jax._params import GMMParams
from gmm_jax._precision import float32_matmuls, with_matmul_precision

__all__ = ["select", "SelectionResult", "CRITERIA"]

CRITERIA = ("bic", "aic", "icl")


@dataclasses.dataclass(frozen=True)
class SelectionResult:
    """What :func:`gmm_jax.select` returns: the criterion table and the chosen model.

    Attributes:
      criterion: ``(len(covariance_types), len(n_components))`` the criterion
        of each fit, lower is better (scikit-learn's sign; mclust's BIC is
        ``-criterion``); ``inf`` where a fit failed.
      n_components: ``(len(n_components),)`` int, the numbers of components tried.
      lower_bound, converged, n_iter, status: ``(types, K)`` of each fit, as
        in ``FitResult``.
      best_type_index: ``()`` int, row of the chosen model in the table.
      best_n_components: ``()`` int, its number of components.
      best: the chosen ``FitResult`` (its parameters have exactly
        ``best_n_components`` components). Under ``jit``/``vmap`` with more
        than one covariance type it is ``None`` (the types have different
        shapes): use ``fits``.
      fits: one ``FitResult`` per covariance type, batched over
        ``n_components`` (parameters with ``max(n_components)`` components,
        those beyond each ``K`` with weight 0).
      covariance_types: the types tried, in table order (static).
      criterion_name: ``"bic"``, ``"aic"`` or ``"icl"`` (static).
    """

    criterion: jax.Array
    n_components: jax.Array
    lower_bound: jax.Array
    converged: jax.Array
    n_iter: jax.Array
    status: jax.Array
    best_type_index: jax.Array
    best_n_components: jax.Array
    best: FitResult | None
    fits: tuple
    covariance_types: tuple = dataclasses.field(metadata=dict(static=True))
    criterion_name: str = dataclasses.field(default="bic", metadata=dict(static=True))

    @property
    def best_covariance_type(self) -> str:
        """The chosen covariance type (needs a concrete result: outside ``jit``/``vmap``)."""
        return self.covariance_types[int(self.best_type_index)]


jax.tree_util.register_dataclass(
    SelectionResult,
    data_fields=["criterion", "n_components", "lower_bound", "converged", "n_iter", "status", "best_type_index",
                 "best_n_components", "best", "fits"],  # fmt: skip
    meta_fields=["covariance_types", "criterion_name"],
)


def _sized(program, X, n_components, options: _driver.FitOptions):
    """``program`` (a ``_tuning.SizedJit``) compiled for the size of a sweep over ``n_components``."""
    return program.pick(options.tuning, _driver.fit_size(X.shape, options) * n_components.shape[0])


def _over_components(at, n_components, xs, X, options: _driver.FitOptions):
    """``at(k, x)`` for every ``K`` of the sweep: one after another for large problems, else side by side."""
    if _driver.in_sequence(*X.shape, options):
        return jax.lax.map(lambda a: at(*a), (n_components, xs))
    return jax.vmap(at)(n_components, xs)


@functools.partial(_tuning.SizedJit, static_argnames=("options",))
@float32_matmuls
def _start_centers(key, X, w, n_components, options: _driver.FitOptions):
    """``(len(n_components), restarts, K_max, D)``: the k-means start centres of every ``K``, or None.

    They do not depend on the covariance type (``_init.start_centers``), so
    they are computed once, here, for every type's sweep; ``options`` sets
    their chunking.
    """
    w = _driver.fit_weights(X, w, options)
    center = _driver.data_center(X, w, options)
    return _over_components(lambda k, _: _driver.start_centers(key, X, w, center, options, n_active=k),
                            n_components, None, X, options)  # fmt: skip


@functools.partial(_tuning.SizedJit, static_argnames=("options",))
@float32_matmuls
def _sweep_program(key, X, w, tol, reg_covar, n_components, options: _driver.FitOptions, prior=None, hierarchy=None,
                   centers=None):  # fmt: skip
    """Fits of every ``K`` in ``n_components`` (traced ``(len,)``) with ``options.n_components = K_max``.

    ``hierarchy``: with ``init="hierarchical"``, the tree of :func:`_tree`;
    ``centers``: the start centres of :func:`_start_centers` (None: computed here).
    """
    w = _driver.fit_weights(X, w, options)  # with missing data, rows with nothing observed count for nothing
    center = _driver.data_center(X, w, options)
    no_bound = jnp.asarray(-jnp.inf, X.dtype)

    def at(k, centers):
        result = _driver.fit_restarts(key, X, w, None, tol, reg_covar, no_bound, options, center, n_active=k,
                                      prior=prior, hierarchy=hierarchy, centers=centers)  # fmt: skip
        fitted = _driver.uncentred(result, center)
        if options.n_slots is None:
            sums = _pass.criterion_sums(result.params, X, w, options.chunk_size, center, options.tuning)
        else:  # the observed-data log-likelihood, through the missing-data pass
            slots = options.n_slots if options.slot_groups is None else options.slot_groups
            sums = _missing.criterion_sums(fitted.params, X, w, slots, options.chunk_size)
        return fitted, sums

    return _over_components(at, n_components, centers, X, options)


@functools.partial(jax.jit, static_argnames=("options",))
def _tree(key, X, w, options: _driver.FitOptions):
    """The tree of ``init="hierarchical"``, built once for every covariance type and every ``K``."""
    w = _driver.fit_weights(X, w, options)
    return _driver.hierarchical_tree(key, X, w, _driver.data_center(X, w, options), options)


def _check_components(n_components, n_samples):
    try:
        values = list(n_components) if not isinstance(n_components, int) else [n_components]
    except TypeError:
        raise TypeError(f"n_components must be an int or a sequence of ints, got {n_components!r}.") from None
    if not values:
        raise ValueError("n_components is empty; pass e.g. range(1, 11).")
    values = [_validation.check_int(k, "n_components", 1) for k in values]
    if len(set(values)) != len(values):
        raise ValueError(f"n_components has repeated values: {values}.")
    if max(values) > n_samples:
        raise ValueError(f"n_components goes up to {max(values)} but X has {n_samples} samples; use fewer components.")
    return values


def _check_types(covariance_types):
    if isinstance(covariance_types, str):
        covariance_types = (covariance_types,)
    covariance_types = tuple(covariance_types)
    if not covariance_types:
        raise ValueError("covariance_types is empty; pass e.g. ('full', 'diag').")
    for t in covariance_types:
        _validation.check_covariance_type(t)
    if len(set(covariance_types)) != len(covariance_types):
        raise ValueError(f"covariance_types has repeated values: {covariance_types}.")
    return covariance_types


class _Table(NamedTuple):
    """The rows of a :class:`SelectionResult`, ``(len(covariance_types), len(n_components))`` each."""

    criterion: jax.Array
    n_components: jax.Array  # (len(n_components),) int32
    lower_bound: jax.Array
    converged: jax.Array
    n_iter: jax.Array
    status: jax.Array
    best_type_index: jax.Array  # () int32: the row of the lowest criterion
    best_index: jax.Array  # () int32: its column
    best_n_components: jax.Array  # () int32: its K


@functools.partial(jax.jit, static_argnames=("missing", "ks", "covariance_types", "criterion"))
def _table(fits, sums, X, w, missing: bool, ks: tuple, covariance_types: tuple, criterion: str) -> _Table:
    """Every cell's criterion from its sweep's sums, in one program (no small operations compiled one by one).

    ``fits`` and ``sums``: per covariance type, the ``FitResult`` and the
    ``(log_likelihood, classification)`` sums of :func:`_sweep_program` (``(len(ks),)`` each).
    """
    n = jnp.sum(_missing.informative_weights(X, w) if missing else w)  # the samples the weights stand for
    criteria = []
    for covariance_type, fit, (log_likelihood, classification) in zip(covariance_types, fits, sums):
        n_params = jnp.asarray([_likelihood.n_free_parameters(covariance_type, k, X.shape[1]) for k in ks], X.dtype)
        penalty = 2.0 * n_params if criterion == "aic" else n_params * jnp.log(n)
        value = -2.0 * log_likelihood + penalty
        if criterion == "icl":
            value = value - 2.0 * classification
        ok = (fit.status == STATUS_OK) & jnp.isfinite(value)
        criteria.append(jnp.where(ok, value, jnp.inf))
    names = ("lower_bound", "converged", "n_iter", "status")
    rows = {name: jnp.stack([getattr(fit, name) for fit in fits]) for name in names}
    criterion_table = jnp.stack(criteria)
    best_type, best = jnp.divmod(jnp.argmin(criterion_table).astype(jnp.int32), len(ks))
    k_array = jnp.asarray(ks, jnp.int32)
    return _Table(criterion_table, k_array, best_type_index=best_type, best_index=best,
                  best_n_components=k_array[best], **rows)  # fmt: skip


@functools.partial(jax.jit, static_argnames=("k",))
def _best_fit(fits: FitResult, index, k: int) -> FitResult:
    """Cell ``index`` of a sweep's fits, trimmed to its ``k`` active components (:func:`_trim`)."""
    return _trim(jax.tree_util.tree_map(lambda a: a[index], fits), k)


def _trim(result: FitResult, k: int) -> FitResult:
    """A masked fit's result with only its first ``k`` (active) components."""
    p = result.params
    factor = p.precisions_cholesky if p.covariance_type == "tied" else p.precisions_cholesky[:k]
    return result._replace(params=GMMParams(p.weights[:k], p.means[:k], factor, p.covariance_type))


@with_matmul_precision
def select(
    key,
    X,
    n_components=range(1, 11),
    *,
    covariance_types=("full", "tied", "diag", "spherical"),
    criterion: str = "bic",
    n_init: int = 1,
    init: str = "kmeans",
    max_iter: int = 100,
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
    sample_weight=None,
    chunk_size: int | None = None,
    prior="none",
    nan_policy: str = "raise",
    matmul_precision: str | None = None,
) -> SelectionResult:
    """Chooses the number of components and the covariance type by an information criterion.

    For each covariance type, every number of components is fitted in one
    compiled program (the components beyond each ``K`` switched off), so a
    sweep compiles once per type. Entry ``(t, j)`` is the fit
    ``gmm.fit(key, X, n_components[j], covariance_type=covariance_types[t], ...)``
    with the same key and options (equal up to rounding), scored on ``X``.

    Args:
      key: PRNG key, shared by every fit (as separate ``fit`` calls with one key).
      X: ``(n_samples, n_features)``; may be row-sharded as for :func:`gmm_jax.fit`.
      n_components: the numbers of components to try (ints ``>= 1``).
      covariance_types: the covariance types to try.
      criterion: ``"bic"`` (``-2 log L + p log N``), ``"aic"``
        (``-2 log L + 2 p``) or ``"icl"`` (BIC plus ``-2 sum_n log r_n,z_n``,
        the log responsibility of each sample's most probable component, as
        mclust's ``icl``); lower is better. ``N`` is the sum of the sample
        weights.
      n_init, init, max_iter, tol, reg_covar, sample_weight, chunk_size: as in
        :func:`gmm_jax.fit`, for every fit.
      prior: ``"none"`` (maximum likelihood), ``"default"`` (mclust's
        ``priorControl()``: ``ConjugatePrior.default(X, K, type)`` for each
        cell, whose scale depends on ``K``), or one ``ConjugatePrior`` for
        every cell. The criterion uses the plain log-likelihood of the MAP
        fit, as mclust's BIC does; with ``n_init > 1`` each cell keeps, as
        ``fit`` does, the restart of highest posterior, which is not always
        the one of lowest criterion (tests/reference/bic_comparison.md).
      nan_policy: as in :func:`gmm_jax.fit`: with ``"marginalize"`` every
        fit is the missing-data EM and the criterion uses the log-likelihood
        of the observed entries; ``N`` counts the rows with something
        observed. ``prior="default"`` needs complete data (pass a
        ``ConjugatePrior`` instead).
      matmul_precision: as in :func:`gmm_jax.fit`.

    Returns:
      A :class:`SelectionResult`.

    Example:
      >>> import jax, numpy as np, gmm_jax as gmm
      >>> rng = np.random.default_rng(0)
      >>> X = np.concatenate([rng.normal(-4, 1, (150, 2)), rng.normal(4, 1, (150, 2))])
      >>> sel = gmm.select(jax.random.key(0), X, range(1, 5), covariance_types=("full", "spherical"))
      >>> sel.criterion.shape, int(sel.best_n_components), sel.best_covariance_type
      ((2, 4), 2, 'spherical')
      >>> sel.best.params.n_components
      2
    """
    del matmul_precision  # in force around this call (with_matmul_precision)
    _validation.check_key(key)
    X = _validation.check_data(X, nan_policy=nan_policy, keep_host=True)  # host data is checked on the host
    n_samples, n_features = X.shape
    ks = _check_components(n_components, n_samples)
    covariance_types = _check_types(covariance_types)
    missing = nan_policy == "marginalize"
    if missing:
        _validation.check_observed_features(X)
        if isinstance(prior, str) and prior == "default":
            raise ValueError(
                "prior='default' is computed from complete data (mclust's defaultPrior), but "
                "nan_policy='marginalize' was given; pass a ConjugatePrior instead, e.g. "
                "gmm.ConjugatePrior.default of the complete rows."
            )
        # A static bound on the NaN entries per row, as in fit (D under a transformation).
        n_missing = _missing.max_missing(X)
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}.")
    if isinstance(prior, str) and prior not in ("none", "default"):
        raise ValueError(f"prior must be 'none', 'default' or a ConjugatePrior, got {prior!r}.")
    tuning = _tuning.for_data(X)
    n_blocks = _sharding.row_blocks(X)
    tol, reg_covar = _driver.check_tolerances(tol, reg_covar, X.dtype)
    w = _validation.check_sample_weight(_sharding.rows_like(X, sample_weight), n_samples, X.dtype, keep_host=True)
    # On the device once for every sweep (a transfer compiles nothing, unlike the checks it follows).
    X, w = (jax.device_put(a) if isinstance(a, np.ndarray) else a for a in (X, w))

    def options_of(covariance_type):
        return _driver.fit_options(
            n_samples=n_samples, n_features=n_features, n_components=max(ks), covariance_type=covariance_type,
            init=init, n_init=n_init, max_iter=max_iter, verbose=False, chunk_size=chunk_size, tuning=tuning,
            n_blocks=n_blocks, n_slots=(n_missing if covariance_type in ("full", "tied") else 0) if missing else None,
        )  # fmt: skip

    k_array = np.asarray(ks, np.int32)
    # The k-means starts of every K, once for all types, chunked for the full pass (the narrowest chunks).
    centers, center_options = None, options_of("full")
    if len(covariance_types) > 1 and _driver.center_restarts(center_options):
        centers = _sized(_start_centers, X, k_array, center_options)(key, X, w, k_array, center_options)
    fits, sums = [], []
    hierarchy = None
    for covariance_type in covariance_types:
        options = _driver.with_slot_groups(options_of(covariance_type), X, chunk_size)
        if init == "hierarchical" and hierarchy is None:
            hierarchy = _tree(key, X, w, options)
        sweep = _sized(_sweep_program, X, k_array, options)
        if isinstance(prior, str) and prior == "default":  # mclust's: a scale per K, so one sweep per K
            if centers is not None and _validation.is_concrete(centers):
                centers = np.asarray(centers)  # sliced per K on the host: no program compiled per slice
            parts = [sweep(key, X, w, tol, reg_covar, k_array[j:j + 1], options,
                           _driver.check_prior(_prior.ConjugatePrior.default(X, k, covariance_type), n_features,
                                               covariance_type, X.dtype), hierarchy,
                           None if centers is None else centers[j:j + 1]) for j, k in enumerate(ks)]  # fmt: skip
            result, cell_sums = jax.tree_util.tree_map(lambda *a: jnp.concatenate(a), *parts)
        else:
            cell_prior = None if isinstance(prior, str) and prior == "none" else prior
            cell_prior = _driver.check_prior(cell_prior, n_features, covariance_type, X.dtype)
            result, cell_sums = sweep(key, X, w, tol, reg_covar, k_array, options, cell_prior, hierarchy, centers)
        fits.append(result)
        sums.append(cell_sums)
    table = _table(tuple(fits), tuple(sums), X, w, missing, tuple(ks), covariance_types, criterion)
    best = None
    if _validation.is_concrete(table.best_index):
        j = int(table.best_index)
        best = _best_fit(fits[int(table.best_type_index)], j, ks[j])
    elif len(covariance_types) == 1:  # under a transformation: only one type's fits have a known shape
        best = jax.tree_util.tree_map(lambda a: a[table.best_index], fits[0])
    return SelectionResult(
        table.criterion, table.n_components, table.lower_bound, table.converged, table.n_iter, table.status,
        table.best_type_index, table.best_n_components, best, tuple(fits), covariance_types, criterion,
    )  # fmt: skip

