"""`fit_online`: stochastic (online) EM, one pass over a possibly unbounded stream. Approximate.

Cappé & Moulines (2009): keep a running average ``S`` of the *per-sample*
sufficient statistics, and after each mini-batch ``b`` with statistics
``s_b`` set ``S <- (1 - rho_t) S + rho_t s_b`` and apply the ordinary M-step
to ``S``. With step sizes ``rho_t = (t + 1) ** -step_exponent``,
``0.5 < step_exponent <= 1``, the parameters converge to a stationary point of
the likelihood as the stream goes on; after a finite stream they are an
approximation of the batch EM fit, not equal to it (use
:func:`gmm_jax.fit_stream` for exact EM over data that can be read again).

The statistics come from the same functions as every other fit
(``_em.accumulate_statistics``, ``_em.params_from_statistics``). They are
taken around the current means, which move after each batch, so the running
average is re-expressed around the new means before the next batch (exactly;
see :func:`_recenter`).
"""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

from gmm_jax import _em, _init, _rows, _validation
from gmm_jax._precision import float32_matmuls
from gmm_jax._em import FitResult, SufficientStatistics
from gmm_jax._params import GMMParams

__all__ = ["fit_online"]


def _recenter(stats: SufficientStatistics, old_shift, new_shift, covariance_type) -> SufficientStatistics:
    """The same statistics taken around ``new_shift`` instead of ``old_shift`` (both ``(K, D)``).

    Around any shift ``a``, the second moment of component ``k`` is its moment
    about its own mean ``m_k`` plus ``nk (m_k - a)(m_k - a)^T`` (element-wise
    squares for diagonal types). So moving the shift adds the second moment of
    one pseudo-point ``m_k`` of mass ``nk`` around ``new_shift`` and removes it
    around ``old_shift``: computed by the covariance model itself, for every
    covariance type.
    """
    nk = stats.nk
    means = old_shift + stats.s1 / jnp.maximum(nk, jnp.finfo(nk.dtype).tiny)[:, None]
    point_mass = jnp.diag(nk)  # (K, K): pseudo-point k belongs to component k only
    around_new = _em.statistics_from_responsibilities(means, point_mass, new_shift, covariance_type)
    around_old = _em.statistics_from_responsibilities(means, point_mass, old_shift, covariance_type)
    return stats._replace(
        s1=stats.s1 + nk[:, None] * (old_shift - new_shift),
        s2=stats.s2 + around_new.s2 - around_old.s2,
    )


@functools.partial(jax.jit, static_argnames=("reg_covar", "chunk_size", "first"))
@float32_matmuls
def _online_step(running, params, X, w, center, rho, reg_covar, chunk_size, first):
    batch = _em.accumulate_statistics(params, X, w, chunk_size, center)
    batch = jax.tree_util.tree_map(lambda a: a / batch.weight_sum, batch)  # per-sample averages
    running = batch if first else jax.tree_util.tree_map(lambda s, b: (1 - rho) * s + rho * b, running, batch)
    new = _em.params_from_statistics(running, params.means, params.covariance_type, reg_covar, previous=params)
    ok = _em.all_finite(new)
    new = jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new, params)
    running = _recenter(running, params.means, new.means, params.covariance_type)
    return running, new, batch.log_likelihood, ok


@functools.partial(jax.jit, static_argnames=("n_components", "covariance_type", "init", "reg_covar", "chunk_size"))
@float32_matmuls
def _initialize(key, X, w, center, n_components, covariance_type, init, reg_covar, chunk_size):
    return _init.initialize(key, X, w, n_components, covariance_type, init, reg_covar, chunk_size, center)


def _as_batch(batch, index, n_features):
    X, w = batch if isinstance(batch, tuple) and len(batch) == 2 else (batch, None)
    X = _validation.host_float_array(X, f"X in batch {index}")
    if X.ndim != 2 or (n_features is not None and X.shape[1] != n_features):
        raise ValueError(
            f"X in batch {index} (0-based) has shape {X.shape}; every batch must be 2-D with "
            f"{n_features if n_features is not None else 'the same number of'} features."
        )
    if not np.isfinite(X).all():
        raise ValueError(f"X in batch {index} (0-based) contains NaN or infinite values.")
    w = np.ones((X.shape[0],), X.dtype) if w is None else _validation.host_float_array(w, "sample_weight").astype(X.dtype)
    if w.shape != (X.shape[0],) or not np.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"sample_weight in batch {index} (0-based) must be finite, non-negative, shape ({X.shape[0]},).")
    return X, w


def fit_online(
    key,
    batches,
    n_components: int,
    *,
    covariance_type: str = "full",
    init: str = "kmeans",
    reg_covar: float = 1e-6,
    init_params: GMMParams | None = None,
    step_exponent: float = 0.6,
    max_batches: int | None = None,
    verbose: bool = False,
    chunk_size: int | None = None,
) -> FitResult:
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
        batch. Ignored with ``init_params``.
      reg_covar: non-negative value added to the covariance diagonal.
      init_params: a ``GMMParams`` to start from.
      step_exponent: ``kappa`` in ``rho_t = (t + 1) ** -kappa``, in ``(0.5, 1]``;
        smaller forgets the start faster.
      max_batches: stop after this many batches (``None``: the whole iterable).
      verbose: print each batch's mean log-likelihood before its update.
      chunk_size: rows per chunk inside each batch's compiled step.

    Returns:
      A ``FitResult`` whose ``log_likelihood`` has one entry per batch: the
      batch's mean log-likelihood under the parameters *before* its update
      (a held-out, "prequential" score). ``n_iter`` is the number of batches;
      ``converged`` is always ``False`` (online EM has no stopping rule).

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
    """
    from gmm_jax._fit import _check_key

    _check_key(key)
    if callable(batches) and not hasattr(batches, "__iter__"):
        batches = batches()
    try:
        iterator = iter(batches)
    except TypeError:
        raise TypeError(f"batches must be an iterable of arrays, got {type(batches).__name__}.") from None
    n_components, _, _, _, reg_covar = _validation.check_fit_options(
        np.iinfo(np.int64).max, n_components, covariance_type, init, 1, 0, 0.0, reg_covar
    )
    if isinstance(step_exponent, bool) or not 0.5 < float(step_exponent) <= 1.0:
        raise ValueError(f"step_exponent must be in (0.5, 1], got {step_exponent!r}.")
    if max_batches is not None:
        max_batches = _validation._check_int(max_batches, "max_batches", 1)
    if chunk_size is not None:
        chunk_size = _validation._check_int(chunk_size, "chunk_size", 1)

    params = center = running = None
    trace, status, t = [], _em.STATUS_OK, 0
    for index, batch in enumerate(iterator):
        if max_batches is not None and t >= max_batches:
            break
        X, w = _as_batch(batch, index, None if params is None else params.n_features)
        if X.shape[0] == 0 or not (w > 0).any():
            continue
        if params is None:
            if init_params is not None:
                _validation.check_params(init_params, "init_params")
                _validation.check_init_params(init_params, n_components, X.shape[1], covariance_type)
                params = init_params.astype(X.dtype)
                center = params.weights @ params.means
                params = params.replace(means=params.means - center[None])
            else:
                if X.shape[0] < n_components:
                    raise ValueError(
                        f"the first batch has {X.shape[0]} rows; initialising {n_components} components "
                        "needs at least as many. Use larger batches or pass init_params."
                    )
                center = jnp.asarray((w.astype(np.float64) @ X) / w.sum(dtype=np.float64), X.dtype)
                params = _initialize(
                    key, jnp.asarray(X), jnp.asarray(w), center, n_components=n_components,
                    covariance_type=covariance_type, init=init, reg_covar=reg_covar,
                    chunk_size=_rows.default_chunk_size(X.shape[0], n_components, X.shape[1]),
                )  # fmt: skip
        start = time.perf_counter()
        chunk = chunk_size or _rows.default_chunk_size(X.shape[0], n_components, X.shape[1])
        rho = jnp.asarray((t + 1.0) ** -float(step_exponent), X.dtype)
        running, params, ll, ok = _online_step(
            running, params, jnp.asarray(X), jnp.asarray(w), center, rho,
            reg_covar=reg_covar, chunk_size=chunk, first=running is None,
        )  # fmt: skip
        trace.append(float(ll))
        if verbose:
            print(f"  batch {t + 1:5d}   log-likelihood {trace[-1]: .8f}   {X.shape[0]} rows in "
                  f"{time.perf_counter() - start:.2f} s", flush=True)  # fmt: skip
        if not bool(ok):
            status = _em.STATUS_NON_FINITE
        t += 1
    if params is None:
        raise ValueError("the stream is empty: batches yielded no rows with positive weight.")
    dtype = params.means.dtype
    params = params.replace(means=params.means + center[None])
    return FitResult(
        params,
        jnp.asarray(trace, dtype),
        jnp.asarray(t, jnp.int32),
        jnp.asarray(False),
        jnp.asarray(trace[-1], dtype),
        jnp.asarray(status, jnp.int32),
        jnp.sum(_em.empty_components(running.nk)).astype(jnp.int32),
    )
