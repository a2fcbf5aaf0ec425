"""`fit_online`: stochastic (online) EM, one pass over a possibly unbounded stream. Approximate.

Cappé & Moulines (2009): keep a running average ``S`` of the *per-sample*
sufficient statistics, and after each mini-batch ``b`` with statistics
``s_b`` set ``S <- (1 - rho_t) S + rho_t s_b`` and apply the ordinary M-step
to ``S``. With step sizes ``rho_t = (t + 1) ** -step_exponent``,
``0.5 < step_exponent <= 1``, the parameters converge to a stationary point of
the likelihood as the stream goes on; after a finite stream they are an
approximation of the batch EM fit, not equal to it (use
:func:`gmm_jax.fit_stream` for exact EM over data that can be read again).

The statistics come from the engine like every other fit's
(``_em.statistics``: the fused pass, or its missing-data variant with
``nan_policy="marginalize"``; ``_em.params_from_statistics``, ML or MAP with a
prior). They are
taken around the current means, which move after each batch, so the running
average is re-expressed around the new means before the next batch (exactly;
see :func:`_recenter`). The running average, the parameters and the step
count are returned as an :class:`OnlineState`, so a later call resumes exactly
where this one stopped.
"""

from __future__ import annotations

import functools
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gmm_jax import _driver, _em, _missing, _pass, _rows, _tuning, _validation
from gmm_jax._em import FitResult, SufficientStatistics
from gmm_jax._params import GMMParams, check_init_params
from gmm_jax._precision import float32_matmuls, with_matmul_precision

__all__ = ["fit_online", "OnlineState", "OnlineFitResult"]


class OnlineState(NamedTuple):
    """Where an online fit stopped: pass it as ``state=`` to resume exactly there.

    Attributes:
      params: the current parameters, in coordinates centred at ``center``.
      statistics: the running average of per-sample sufficient statistics,
        around ``params.means``.
      center: ``(D,)`` the working origin (the first batch's weighted mean).
      step: ``()`` int, batches applied so far (over all calls).
      n_samples_seen: ``()`` the total sample weight of those batches (rows
        with nothing observed excluded): the number of samples the running
        statistics stand for, unless ``total_samples`` says otherwise.
    """

    params: GMMParams
    statistics: SufficientStatistics
    center: jax.Array
    step: jax.Array
    n_samples_seen: jax.Array


# The fields of a FitResult, in its order, then the state: written once, in _em.
OnlineFitResult = NamedTuple("OnlineFitResult", [*FitResult.__annotations__.items(), ("state", OnlineState)])
OnlineFitResult.__doc__ = """What :func:`fit_online` returns: the fields of a ``FitResult`` plus the ``state`` to resume from."""
OnlineFitResult.__module__ = __name__


def _recenter(stats: SufficientStatistics, old_shift, new_shift, covariance_type, tuning) -> SufficientStatistics:
    """The same statistics taken around ``new_shift`` instead of ``old_shift`` (both ``(K, D)``).

    Around any shift ``a``, the second moment of component ``k`` is its moment
    about its own mean ``m_k`` plus ``nk (m_k - a)(m_k - a)^T`` (element-wise
    squares for diagonal types). So moving the shift adds the second moment of
    one pseudo-point ``m_k`` of mass ``nk`` around ``new_shift`` and removes it
    around ``old_shift``: computed by the pass itself, for every covariance type.
    """
    nk = stats.nk
    means = old_shift + stats.s1 / jnp.maximum(nk, jnp.finfo(nk.dtype).tiny)[:, None]
    ones = jnp.ones(nk.shape, nk.dtype)

    def around(shift):  # pseudo-point k belongs to component k only, with mass nk
        return _pass.statistics_from_responsibilities(lambda *_: jnp.diag(nk), means, ones, shift, covariance_type,
                                                      tuning)  # fmt: skip

    return stats._replace(
        s1=stats.s1 + nk[:, None] * (old_shift - new_shift),
        s2=stats.s2 + around(new_shift).s2 - around(old_shift).s2,
    )


@functools.partial(jax.jit, static_argnames=("chunk_size", "tuning", "first", "n_slots"))
@float32_matmuls
def _online_step(running, params, X, w, center, rho, reg_covar, chunk_size, tuning, first, n_slots=None, prior=None,
                 n_represented=None):  # fmt: skip
    # The engine's E-step sums: the missing-data ones when n_slots is not None (as fit's).
    batch = _em.statistics(params, X, w, chunk_size, center, tuning, n_slots)
    batch = jax.tree_util.tree_map(lambda a: a / batch.weight_sum, batch)  # per-sample averages
    running = batch if first else jax.tree_util.tree_map(lambda s, b: (1 - rho) * s + rho * b, running, batch)
    # The ML M-step does not depend on the statistics' scale; the MAP one
    # weighs the prior against the samples the average stands for.
    totals = running if prior is None else jax.tree_util.tree_map(lambda a: a * n_represented, running)
    new = _em.params_from_statistics(totals, params.means, params.covariance_type, reg_covar, previous=params,
                                     prior=prior)  # fmt: skip
    ok = _em.all_finite(new)
    new = jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new, params)
    running = _recenter(running, params.means, new.means, params.covariance_type, tuning)
    return running, new, batch.log_likelihood, ok


@with_matmul_precision
def fit_online(
    key,
    batches,
    n_components: int,
    *,
    covariance_type: str = "full",
    init: str = "kmeans",
    reg_covar: float = 1e-6,
    init_params: GMMParams | None = None,
    state: OnlineState | None = None,
    step_exponent: float = 0.6,
    max_batches: int | None = None,
    verbose: bool = False,
    chunk_size: int | None = None,
    nan_policy: str = "raise",
    prior=None,
    total_samples: float | None = None,
    matmul_precision: str | None = None,
) -> OnlineFitResult:
    """Fits a Gaussian mixture by online (stochastic) EM in one pass over ``batches``. Approximate.

    Each mini-batch updates a running average of the sufficient statistics
    with weight ``(t + 1) ** -step_exponent`` and applies the M-step, so the
    stream is read once and may be unbounded (stop it with ``max_batches``).
    The result approaches the batch EM fit as more data arrives but does not
    equal it; for exact EM over re-readable data use :func:`gmm_jax.fit_stream`.

    Args:
      key: PRNG key for the initialisation.
      batches: an iterable (a generator is fine: it is read once) of arrays
        ``(n_b, n_features)`` or pairs ``(array, sample_weight)``. Batches of
        a few thousand rows or more keep the updates stable.
      n_components: number of components; the first batch needs at least as many rows.
      covariance_type: ``"full"``, ``"tied"``, ``"diag"`` or ``"spherical"``.
      init: initialisation method of :func:`gmm_jax.fit`, run on the first
        batch. Ignored with ``init_params`` or ``state``.
      reg_covar: non-negative value added to the covariance diagonal (traced).
      init_params: a ``GMMParams`` to start from.
      state: the ``state`` of an earlier ``fit_online`` result: continue it
        (running statistics, step count and parameters), exactly as if its
        batches and these had come in one call.
      step_exponent: ``kappa`` in ``rho_t = (t + 1) ** -kappa``, in ``(0.5, 1]``;
        smaller forgets the start faster.
      max_batches: stop after this many batches of this call (``None``: the whole iterable).
      verbose: print each batch's mean log-likelihood before its update.
      chunk_size: rows per chunk inside each batch's compiled step.
      nan_policy: ``"raise"`` (default): NaN in a batch is an error.
        ``"marginalize"``: NaN entries (and the masked entries of a
        ``numpy.ma.MaskedArray`` batch) are missing at random, and each
        batch's statistics are the missing-data statistics of
        :func:`gmm_jax.fit` with the same option (exact missing-data E-step).
        Rows with nothing observed carry no weight; the start is computed
        from the first batch with each NaN replaced by its centre, as ``fit``
        does; inf is an error. For ``full`` and ``tied`` covariances the
        compiled step is specialised to the largest number of NaN entries in
        one row of the batches read so far (its cost grows with it), so it
        compiles again only when a batch holds a row with more NaN than any
        before: a few times at most, in the first batches.
      prior: optional ``ConjugatePrior``: MAP online EM, with the M-step of
        :func:`gmm_jax.fit` with a prior (``_em.params_from_statistics``).
        The running statistics are per-sample averages, so they are scaled
        to the number of samples they stand for before the MAP M-step, and
        the prior weighs against the data as in ``fit(prior=)`` on that
        many samples. By default that number is the total weight of the
        batches applied so far (``state.n_samples_seen``): right for a
        stream of new data, where after ``n`` samples the prior should
        count as much as in a fit of those ``n``. ``log_likelihood`` stays
        the plain held-out log-likelihood (no prior term).
      total_samples: with ``prior``, the number of samples (or total sample
        weight) the running statistics stand for instead of the samples seen
        so far. When the batches replay a finite data set for several epochs,
        pass its size, ``len(X)``: the prior then weighs as in ``fit(X,
        prior=prior)``, whose MAP fit the online fit approaches (counting
        every epoch's rows as new samples would let the prior fade away).
      matmul_precision: as in :func:`gmm_jax.fit`, for every batch's step
        (``"tf32"`` and ``"bf16_3x"`` are faster on GPUs, less accurate).

    Returns:
      An ``OnlineFitResult``: the fields of a ``FitResult`` and ``state``.
      ``log_likelihood`` has one entry per batch of this call: the batch's
      mean log-likelihood under the parameters *before* its update (a
      held-out, "prequential" score). ``n_iter`` is the number of batches of
      this call (``state.step`` counts all); ``converged`` is always
      ``False`` (online EM has no stopping rule).

    Raises:
      ValueError: bad options or batches (naming the batch), NaN values
        (unless ``nan_policy="marginalize"``), an empty stream, or an update
        that made the parameters non-finite (the same error as
        :func:`gmm_jax.fit`).
      TypeError: ``prior`` is not a ``ConjugatePrior``.

    Example:
      >>> import jax, numpy as np, gmm_jax as gmm
      >>> rng = np.random.default_rng(0)
      >>> def stream():  # e.g. data arriving from a sensor: read once
      ...     for _ in range(20):
      ...         labels = rng.integers(0, 2, 500)
      ...         yield (rng.normal(size=(500, 2)) + 6.0 * labels[:, None]).astype(np.float32)
      >>> result = gmm.fit_online(jax.random.key(0), stream(), 2, covariance_type="diag")
      >>> int(result.n_iter), sorted(result.params.means[:, 0].round().astype(int).tolist())
      (20, [0, 6])
      >>> more = gmm.fit_online(jax.random.key(0), stream(), 2, covariance_type="diag", state=result.state)
      >>> int(more.state.step)
      40
      >>> prior = gmm.ConjugatePrior.create(mean=np.full(2, 3.0), shrinkage=0.01, dof=4.0, scale=1.0)
      >>> mapped = gmm.fit_online(jax.random.key(0), stream(), 2, covariance_type="diag", prior=prior)  # MAP
      >>> sorted(mapped.params.means[:, 0].round().astype(int).tolist())
      [0, 6]
    """
    del matmul_precision  # in force around this call (with_matmul_precision)
    _validation.check_key(key)
    _validation.check_nan_policy(nan_policy)
    missing = nan_policy == "marginalize"
    if callable(batches) and not hasattr(batches, "__iter__"):
        batches = batches()
    try:
        iterator = iter(batches)
    except TypeError:
        raise TypeError(f"batches must be an iterable of arrays, got {type(batches).__name__}.") from None
    options = _driver.fit_options(
        n_samples=None, n_features=None, n_components=n_components, covariance_type=covariance_type, init=init,
        n_init=1, max_iter=0, verbose=verbose, chunk_size=chunk_size, tuning=_tuning.for_platform(jax.default_backend()),
    )  # fmt: skip
    _, reg_covar = _driver.check_tolerances(0.0, reg_covar, jnp.result_type(float))
    if isinstance(step_exponent, bool) or not 0.5 < float(step_exponent) <= 1.0:
        raise ValueError(f"step_exponent must be in (0.5, 1], got {step_exponent!r}.")
    if max_batches is not None:
        max_batches = _validation.check_int(max_batches, "max_batches", 1)
    if prior is not None:  # the type and values now; the number of features once it is known
        _driver.check_prior(prior, None, covariance_type, jnp.result_type(float))
    if total_samples is not None:
        if prior is None:
            raise ValueError("total_samples sets how much the data weighs against the prior; it needs prior= too.")
        total_samples = _validation.check_nonneg_float(total_samples, "total_samples")
        if total_samples <= 0:
            raise ValueError(f"total_samples must be > 0, got {total_samples}.")
    if state is not None:
        if not isinstance(state, OnlineState):
            raise TypeError(f"state must be the OnlineState of an earlier fit_online result, got {type(state).__name__}.")
        if init_params is not None:
            raise ValueError("pass either state (to resume) or init_params (to start from parameters), not both.")
        check_init_params(state.params, options.n_components, state.params.n_features, covariance_type)

    if state is None:
        params = center = running = None
        t, n_seen = 0, 0.0
    else:
        params, running, center, t = state.params, state.statistics, state.center, int(state.step)
        n_seen = float(state.n_samples_seen)
    trace, status, n_batches, dtype = [], _em.STATUS_OK, 0, None if params is None else params.means.dtype
    centred_prior = None
    if prior is not None and params is not None:
        centred_prior = _driver.centred_prior(_driver.check_prior(prior, params.n_features, covariance_type, dtype),
                                              center)  # fmt: skip
    max_missing = 0  # the most NaN entries in one row of the batches read so far
    for index, batch in enumerate(iterator):
        if max_batches is not None and n_batches >= max_batches:
            break
        X, w = _driver.read_batch(batch, f"batch {index} (0-based)", None if params is None else params.n_features,
                                  dtype, nan_policy)  # fmt: skip
        n_slots = None
        if missing:  # rows with nothing observed carry no weight, as in fit
            w = np.where(np.isnan(X).all(axis=1), np.zeros((), w.dtype), w)
            max_missing = max(max_missing, _missing.max_missing(X))
            n_slots = max_missing if covariance_type in ("full", "tied") else 0
        if X.shape[0] == 0 or not (w > 0).any():
            continue
        dtype = X.dtype
        if params is None:
            checked = None if prior is None else _driver.check_prior(prior, X.shape[1], covariance_type, dtype)
            params, center = _first_params(key, X, w, init_params, reg_covar.astype(X.dtype),
                                           options._replace(n_slots=n_slots), checked)  # fmt: skip
            centred_prior = None if prior is None else _driver.centred_prior(checked, center)
        start = time.perf_counter()
        rho = jnp.asarray((t + 1.0) ** -float(step_exponent), X.dtype)
        n_seen += float(w.sum(dtype=np.float64))
        n_represented = None if prior is None else jnp.asarray(total_samples or n_seen, X.dtype)
        running, params, ll, ok = _online_step(
            running, params, jnp.asarray(X), jnp.asarray(w), center, rho, reg_covar.astype(X.dtype),
            chunk_size=_driver.batch_layout(options, X.shape[0], X.shape[1], n_slots=n_slots), tuning=options.tuning,
            first=running is None, n_slots=n_slots, prior=centred_prior, n_represented=n_represented,
        )  # fmt: skip
        trace.append(float(ll))
        if verbose:
            print(f"  batch {t + 1:5d}   log-likelihood {trace[-1]: .8f}   {X.shape[0]} rows in "
                  f"{time.perf_counter() - start:.2f} s", flush=True)  # fmt: skip
        if not bool(ok):
            status = _em.STATUS_NON_FINITE
        t += 1
        n_batches += 1
    if params is None:
        raise ValueError("the stream is empty: batches yielded no rows with positive weight.")
    dtype = params.means.dtype
    int32 = jnp.int32
    n_empty = jnp.zeros((), int32) if running is None else jnp.sum(_em.empty_components(running.nk)).astype(int32)
    last = trace[-1] if trace else -np.inf
    result = FitResult(params, jnp.asarray(trace, dtype), jnp.asarray(n_batches, int32), jnp.asarray(False),
                       jnp.asarray(last, dtype), jnp.asarray(status, int32), n_empty)  # fmt: skip
    # Online EM has no stopping rule, so no ConvergenceWarning: tol=0.
    _driver.check_result(result, 0.0, "fit_online")
    new_state = OnlineState(params, running, center, jnp.asarray(t, int32), jnp.asarray(n_seen, dtype))
    return OnlineFitResult(*_driver.uncentred(result, center), new_state)


def _first_params(key, X, w, init_params, reg_covar, options, prior=None):
    """``(starting parameters centred at the working origin, the origin)`` from the first batch.

    With missing data (``options.n_slots`` not None) ``w`` is already zero
    on the rows with nothing observed, and the start is computed as in ``fit``
    (``_driver.initialize``: each NaN replaced by the batch's centre).
    """
    if init_params is not None:
        check_init_params(init_params, options.n_components, X.shape[1], options.covariance_type)
        params = init_params.astype(X.dtype)
        center = _rows.mixture_center(params)
        return _driver.centred(params, center), center
    if X.shape[0] < options.n_components:
        raise ValueError(
            f"the first batch has {X.shape[0]} rows; initialising {options.n_components} components "
            "needs at least as many. Use larger batches or pass init_params."
        )
    if options.n_slots is not None:
        never = np.flatnonzero(np.all(np.isnan(X[w > 0]), axis=0))
        if never.size:
            raise ValueError(
                f"the first batch misses feature(s) {never.tolist()} (NaN) in every row, and the start is "
                "computed from the first batch; use larger batches or pass init_params."
            )
    center = _driver.data_center(jnp.asarray(X), jnp.asarray(w), options)
    return _driver.initialize(key, jnp.asarray(X), jnp.asarray(w), center, reg_covar, options, prior), center
