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
(``_pass.accumulate_statistics``, ``_em.params_from_statistics``). They are
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

from gmm_jax import _driver, _em, _pass, _rows, _tuning, _validation
from gmm_jax._em import FitResult, SufficientStatistics
from gmm_jax._params import GMMParams, check_init_params
from gmm_jax._precision import float32_matmuls

__all__ = ["fit_online", "OnlineState", "OnlineFitResult"]


class OnlineState(NamedTuple):
    """Where an online fit stopped: pass it as ``state=`` to resume exactly there.

    Attributes:
      params: the current parameters, in coordinates centred at ``center``.
      statistics: the running average of per-sample sufficient statistics,
        around ``params.means``.
      center: ``(D,)`` the working origin (the first batch's weighted mean).
      step: ``()`` int, batches applied so far (over all calls).
    """

    params: GMMParams
    statistics: SufficientStatistics
    center: jax.Array
    step: jax.Array


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


@functools.partial(jax.jit, static_argnames=("chunk_size", "tuning", "first"))
@float32_matmuls
def _online_step(running, params, X, w, center, rho, reg_covar, chunk_size, tuning, first):
    batch = _pass.accumulate_statistics(params, X, w, chunk_size, center, tuning)
    batch = jax.tree_util.tree_map(lambda a: a / batch.weight_sum, batch)  # per-sample averages
    running = batch if first else jax.tree_util.tree_map(lambda s, b: (1 - rho) * s + rho * b, running, batch)
    new = _em.params_from_statistics(running, params.means, params.covariance_type, reg_covar, previous=params)
    ok = _em.all_finite(new)
    new = jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new, params)
    running = _recenter(running, params.means, new.means, params.covariance_type, tuning)
    return running, new, batch.log_likelihood, ok


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

    Returns:
      An ``OnlineFitResult``: the fields of a ``FitResult`` and ``state``.
      ``log_likelihood`` has one entry per batch of this call: the batch's
      mean log-likelihood under the parameters *before* its update (a
      held-out, "prequential" score). ``n_iter`` is the number of batches of
      this call (``state.step`` counts all); ``converged`` is always
      ``False`` (online EM has no stopping rule).

    Raises:
      ValueError: bad options or batches (naming the batch), an empty
        stream, or an update that made the parameters non-finite (the same
        error as :func:`gmm_jax.fit`).

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
    """
    _validation.check_key(key)
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
    if state is not None:
        if not isinstance(state, OnlineState):
            raise TypeError(f"state must be the OnlineState of an earlier fit_online result, got {type(state).__name__}.")
        if init_params is not None:
            raise ValueError("pass either state (to resume) or init_params (to start from parameters), not both.")
        check_init_params(state.params, options.n_components, state.params.n_features, covariance_type)

    if state is None:
        params = center = running = None
        t = 0
    else:
        params, running, center, t = state.params, state.statistics, state.center, int(state.step)
    trace, status, n_batches, dtype = [], _em.STATUS_OK, 0, None if params is None else params.means.dtype
    for index, batch in enumerate(iterator):
        if max_batches is not None and n_batches >= max_batches:
            break
        X, w = _driver.read_batch(batch, f"batch {index} (0-based)", None if params is None else params.n_features,
                                  dtype)  # fmt: skip
        if X.shape[0] == 0 or not (w > 0).any():
            continue
        dtype = X.dtype
        if params is None:
            params, center = _first_params(key, X, w, init_params, reg_covar.astype(X.dtype), options)
        start = time.perf_counter()
        rho = jnp.asarray((t + 1.0) ** -float(step_exponent), X.dtype)
        running, params, ll, ok = _online_step(
            running, params, jnp.asarray(X), jnp.asarray(w), center, rho, reg_covar.astype(X.dtype),
            chunk_size=_driver.batch_layout(options, X.shape[0], X.shape[1]), tuning=options.tuning,
            first=running is None,
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
    new_state = OnlineState(params, running, center, jnp.asarray(t, int32))
    return OnlineFitResult(*_driver.uncentred(result, center), new_state)


def _first_params(key, X, w, init_params, reg_covar, options):
    """``(starting parameters centred at the working origin, the origin)`` from the first batch."""
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
    center = _driver.data_center(jnp.asarray(X), jnp.asarray(w))
    return _driver.initialize(key, jnp.asarray(X), jnp.asarray(w), center, reg_covar, options), center
