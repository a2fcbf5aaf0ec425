"""The EM algorithm: sufficient statistics to parameters, one iteration, the loop.

One EM iteration is one pass over the data that accumulates sufficient
statistics (``_pass.accumulate_statistics``), then :func:`em_update`: the
closed-form M-step (:func:`params_from_statistics`) and the bookkeeping of the
stopping rule (:func:`advance`). Every driver uses these same functions: the
compiled loop of in-memory and sharded fits (:func:`run_em`), the host loop
of ``fit_stream`` (one pass over the stream per iteration) and the running
averages of ``fit_online``.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from gmm_jax import _covariance, _loops, _missing, _pass, _prior, _rows, _tuning, _validation
from gmm_jax._likelihood import layout, scores
from gmm_jax._params import GMMParams, check_params_and_data
from gmm_jax._pass import SufficientStatistics
from gmm_jax._precision import float32_matmuls, with_matmul_precision

__all__ = [
    "FitResult",
    "SufficientStatistics",
    "e_step",
    "m_step",
    "STATUS_OK",
    "STATUS_NON_FINITE",
    "STATUS_INVALID_WEIGHTS",
]

STATUS_OK = 0
# An M-step produced non-finite parameters: a covariance that is singular (or
# singular up to rounding noise, see ``_covariance``) with reg_covar=0, a
# failed Cholesky, or NaN/inf from anywhere. The fit stopped and kept the last
# finite parameters.
STATUS_NON_FINITE = 1
# The sample weights of a fit traced under the caller's transformation were
# negative, non-finite or all zero (outside transformations that is an error
# raised before anything runs): the fit did not run and returns its start.
STATUS_INVALID_WEIGHTS = 2


class FitResult(NamedTuple):
    """What :func:`gmm_jax.fit` returns. Every field is an array, so results vmap.

    Attributes:
      params: the fitted ``GMMParams`` (best restart).
      log_likelihood: ``(max_iter,)`` mean per-sample log-likelihood computed
        in each iteration's E-step (the parameters after ``i`` M-steps, as
        scikit-learn's ``lower_bound_``); entries after convergence repeat the
        final value.
      n_iter: ``()`` int, iterations run (M-steps applied).
      converged: ``()`` bool, the change fell below ``tol`` before ``max_iter``.
      lower_bound: ``()`` the final mean log-likelihood (``log_likelihood[n_iter - 1]``).
      status: ``()`` int, ``0`` when every step was finite; ``1`` when an M-step
        produced non-finite parameters (e.g. a singular covariance with
        ``reg_covar=0``, or a failed Cholesky) and the fit stopped with the
        last finite parameters, or when the starting parameters were already
        non-finite (then ``n_iter == 0`` and the parameters are the start);
        ``2`` when the sample weights of a fit traced under ``jit``/``vmap``
        were negative, non-finite or all zero (the fit did not run).
      n_empty: ``()`` int, the number of components that received no
        responsibility in the last M-step applied (mass below the rounding
        noise of the sums). They keep their previous mean and covariance with
        a weight of almost zero (``tied``: their previous mean), so the
        parameters stay finite and the component can still recapture data.
    """

    params: GMMParams
    log_likelihood: jax.Array
    n_iter: jax.Array
    converged: jax.Array
    lower_bound: jax.Array
    status: jax.Array
    n_empty: jax.Array


# scikit-learn adds 10 eps to each component's mass so that empty components
# divide safely. Here it is 10 eps times the mean weight of a component's
# worth of data, so that scaling every sample weight by c scales nk, s1 and s2
# by c and leaves the fit unchanged (with unit weights and N = K rows it is
# scikit-learn's 10 eps; otherwise a relative change below 1e-14 in float64).
_NK_EPS = 10


def params_from_statistics(
    stats: SufficientStatistics, shift, covariance_type, reg_covar, previous=None, prior=None, active=None
) -> GMMParams:
    """The M-step: new parameters from sufficient statistics accumulated around ``shift``.

    With a ``prior`` (a ``ConjugatePrior`` in the coordinates of ``shift``)
    it is the posterior mode (MAP, ``_prior.posterior_mode``, mclust's);
    otherwise the maximum-likelihood update below.

    A component whose mass is below the rounding noise of the sums (it received
    no responsibility) would get an undefined covariance; it keeps its
    ``previous`` mean and covariance instead, with a weight of (almost) zero,
    so the parameters stay finite and the component can still recapture data.
    ``active`` (``(K,)`` bool, model selection) tells the MAP M-step which
    components are in the model; the ML M-step needs no such count.
    """
    if prior is not None:
        return _map_params_from_statistics(stats, shift, covariance_type, reg_covar, previous, prior, active)
    model = _covariance.covariance_model(covariance_type)
    eps = jnp.finfo(stats.s1.dtype).eps
    total = jnp.sum(stats.nk)
    nk = stats.nk + _NK_EPS * eps * total / stats.nk.shape[0]
    d = stats.s1 / nk[:, None]
    means = shift + d
    covariances = model.covariances_from_moments(stats.s2, nk, d, reg_covar)
    factor = model.factor_from_covariances(covariances)
    # Unless reg_covar is above the typical rounding noise of a Cholesky pivot
    # (sqrt(D) rounding units of the second moments, the statistical bound on
    # a sum of D rounded terms; then it bounds every variance from below), each
    # conditional variance (Cholesky pivot) must stand above the worst-case
    # noise (D units) of the moments it was computed from. A reg_covar below
    # the typical noise is itself drowned: float32 EM of 8 points in 12-D of
    # variance ~4 with reg_covar=1e-6 wandered by ~0.4 nats a sample from
    # iteration to iteration (tests/test_degenerate.py). A covariance that is
    # positive definite only by rounding (collinear points with reg_covar=0)
    # would give a finite precision made of noise; it is marked as zero
    # variance (an infinite factor), which the EM loop reports as status 1.
    pivots = 1.0 / jnp.square(model.diagonal(factor))
    raw = model.diagonal(model.covariances_from_moments(stats.s2, nk, jnp.zeros_like(d), 0.0))
    n_features = shift.shape[-1]
    singular = (pivots <= n_features * eps * raw) & (reg_covar <= math.sqrt(n_features) * eps * raw)
    factor = model.mark_singular(factor, singular)
    weights = nk / jnp.sum(nk)
    if previous is not None and covariance_type != "tied":
        empty = empty_components(stats.nk)
        means = jnp.where(empty[:, None], previous.means, means)
        keep = empty.reshape(empty.shape + (1,) * (factor.ndim - 1))
        factor = jnp.where(keep, previous.precisions_cholesky, factor)
    return GMMParams(weights, means, factor, covariance_type)


def _map_params_from_statistics(stats, shift, covariance_type, reg_covar, previous, prior, active=None) -> GMMParams:
    """The MAP M-step (``_prior.posterior_mode``) as ``GMMParams``.

    The prior's scale keeps every covariance positive definite, so no
    rounding-noise test is needed. With ``shrinkage > 0`` an empty component
    gets the prior's mode; without a prior on the means (``shrinkage == 0``)
    it keeps its ``previous`` mean and covariance, as in the ML M-step.
    """
    model = _covariance.covariance_model(covariance_type)
    weights, means, covariances = _prior.posterior_mode(
        stats.nk, stats.s1, stats.s2, shift, covariance_type, reg_covar, prior, active)  # fmt: skip
    factor = model.factor_from_covariances(covariances)
    if previous is not None and covariance_type != "tied":
        empty = empty_components(stats.nk) & ~(prior.shrinkage > 0)
        means = jnp.where(empty[:, None], previous.means, means)
        keep = empty.reshape(empty.shape + (1,) * (factor.ndim - 1))
        factor = jnp.where(keep, previous.precisions_cholesky, factor)
    return GMMParams(weights, means, factor, covariance_type)


def objective(stats: SufficientStatistics, params: GMMParams, prior=None, active=None) -> jax.Array:
    """The mean per-sample objective EM increases: log-likelihood, plus ``log_prior / N`` with a prior.

    ``active``: the components in the model (model selection), None for all.
    """
    total = stats.log_likelihood
    if prior is not None:
        total = total + _prior.log_prior(params, prior, active)
    return total / stats.weight_sum


def mask_components(params: GMMParams, active) -> GMMParams:
    """``params`` with the components outside ``active`` (``(K,)`` bool) switched off.

    An inactive component has weight exactly 0 (so it takes no responsibility:
    ``log 0 = -inf`` in the E-step), a zero mean and a unit precision factor
    (finite, so the fit's finiteness checks see only the active ones). Model
    selection fits every number of components in one program this way.
    """
    model = _covariance.covariance_model(params.covariance_type)
    weights = jnp.where(active, params.weights, 0.0)
    means = jnp.where(active[:, None], params.means, 0.0)
    factor = params.precisions_cholesky
    if params.covariance_type != "tied":
        unit = model.unit_factor(params.n_components, params.n_features, factor.dtype)
        factor = jnp.where(active.reshape(active.shape + (1,) * (factor.ndim - 1)), factor, unit)
    return GMMParams(weights / jnp.sum(weights), means, factor, params.covariance_type)


def empty_components(nk) -> jax.Array:
    """``(K,)`` bool: components whose mass ``nk`` is below the rounding noise of the sums."""
    return nk <= 16 * jnp.finfo(nk.dtype).eps * jnp.sum(nk)


def all_finite(tree) -> jax.Array:
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def statistics(params: GMMParams, X, w, chunk_size, center, tuning, n_slots=None) -> SufficientStatistics:
    """One E-step pass: the fused pass, or (``n_slots`` not None) its missing-data variant.

    ``n_slots`` (static) bounds the NaN entries per row of data with missing
    values (``_missing``), or is a ``_missing.SlotGroups`` of rows sorted by
    their NaN count (``_missing.sorted_rows``); ``None`` for complete data.
    """
    if n_slots is None:
        return _pass.accumulate_statistics(params, X, w, chunk_size, center, tuning)
    if isinstance(n_slots, _missing.SlotGroups):
        return SufficientStatistics(*_missing.accumulate_grouped(n_slots, params, X, w, center, tuning))
    model = _missing.missing_model(params.covariance_type, n_slots)
    return SufficientStatistics(*_missing.accumulate_sums(
        model, params.means, params.precisions_cholesky, params.weights, X, w, chunk_size, center))  # fmt: skip


class Update(NamedTuple):
    """One EM update from the statistics of the current parameters."""

    log_likelihood: jax.Array  # () mean log-likelihood of the current parameters
    params: GMMParams  # the new parameters
    ok: jax.Array  # () bool: new parameters and log-likelihood finite
    n_empty: jax.Array  # () int32: components that received no mass


def em_update(stats: SufficientStatistics, params: GMMParams, reg_covar, active=None, prior=None) -> Update:
    """The M-step of one EM iteration, from the statistics of ``params`` (around their means).

    ``active``: optional ``(K,)`` bool of the components in use (model
    selection); the others stay switched off (:func:`mask_components`).
    ``prior``: optional ``ConjugatePrior`` (centred like ``params``): the
    M-step is the posterior mode and the objective the penalised one.
    """
    new = params_from_statistics(stats, params.means, params.covariance_type, reg_covar, previous=params,
                                 prior=prior, active=active)  # fmt: skip
    empty = empty_components(stats.nk)
    if active is not None:
        new, empty = mask_components(new, active), empty & active
    log_likelihood = objective(stats, params, prior, active)
    ok = all_finite(new) & jnp.isfinite(log_likelihood)
    return Update(log_likelihood, new, ok, jnp.sum(empty).astype(jnp.int32))


class EMState(NamedTuple):
    """The state of an EM run between iterations (of the compiled loop or of a streamed fit)."""

    params: GMMParams
    log_likelihood: jax.Array  # () the last finite mean log-likelihood (or the start's bound)
    done: jax.Array  # () bool
    converged: jax.Array  # () bool
    n_iter: jax.Array  # () int32, M-steps applied
    status: jax.Array  # () int32
    n_empty: jax.Array  # () int32


def start_state(params: GMMParams, init_lower_bound) -> EMState:
    """The state before the first iteration; ``init_lower_bound`` is what the first change is measured from."""
    start_ok = all_finite(params)
    int32 = jnp.int32
    return EMState(
        params,
        jnp.asarray(init_lower_bound, params.means.dtype),
        ~start_ok,
        jnp.asarray(False),
        jnp.zeros((), int32),
        jnp.where(start_ok, STATUS_OK, STATUS_NON_FINITE).astype(int32),
        jnp.zeros((), int32),
    )


def advance(state: EMState, update: Update, tol, iteration) -> EMState:
    """The stopping rule, scikit-learn's: stop once the change is below ``tol``, keeping the converging M-step.

    An update that is not finite stops the run with ``status`` 1 and keeps the
    previous parameters.
    """
    ok = update.ok
    converged = ok & (jnp.abs(update.log_likelihood - state.log_likelihood) < tol)
    finite_ll = jnp.isfinite(update.log_likelihood)
    return EMState(
        jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), update.params, state.params),
        jnp.where(finite_ll, update.log_likelihood, state.log_likelihood),
        converged | ~ok,
        converged,
        jnp.where(ok, iteration + 1, state.n_iter).astype(jnp.int32),
        jnp.where(ok, state.status, STATUS_NON_FINITE).astype(jnp.int32),
        jnp.where(ok, update.n_empty, state.n_empty),
    )


def _print_progress(restart, iteration, log_likelihood, change):
    print(
        f"  restart {int(restart):3d}   iteration {int(iteration):4d}   "
        f"log-likelihood {float(log_likelihood): .8f}   change {float(change): .3e}"
    )


class EMData(NamedTuple):
    """What the loop reads but never changes (passed, not closed over: see ``_loops``)."""

    X: jax.Array
    w: jax.Array
    tol: jax.Array
    reg_covar: jax.Array
    center: jax.Array | None
    init_lower_bound: jax.Array
    restart: jax.Array
    active: jax.Array | None = None  # (K,) bool: components in use (model selection), None: all
    prior: _prior.ConjugatePrior | None = None  # centred like the parameters; None: maximum likelihood


def run_em(params: GMMParams, data: EMData, *, max_iter, chunk_size, tuning, verbose=False, n_slots=None) -> FitResult:
    """EM from ``params`` (centred at ``data.center``) for at most ``max_iter`` iterations (traceable).

    The loop is a ``while_loop`` that stops at convergence, under ``vmap``
    too (``_loops.while_loop`` compacts the batch as fits finish). A
    ``while_loop`` cannot be reverse-differentiated, so derivatives (a
    ``custom_jvp``) come from the same iterations written as a ``lax.scan``
    over ``max_iter`` steps that skips the finished ones with ``lax.cond``:
    ``jax.grad``, ``jax.jacfwd`` and ``jax.hessian`` of a fit all work.
    """
    dtype = data.X.dtype

    def iterate(data, state, i):
        stats = statistics(state.params, data.X, data.w, chunk_size, data.center, tuning, n_slots)
        update = em_update(stats, state.params, data.reg_covar, data.active, data.prior)
        if verbose:
            change = update.log_likelihood - state.log_likelihood
            jax.debug.callback(_print_progress, data.restart, i + 1, update.log_likelihood, change)
        return advance(state, update, data.tol, i)

    def scanned(params, data):
        # The trace is carried, not stacked as the scan's output: under vmap a
        # carry is batched on axis 0 like `looped`'s outputs, and custom_jvp
        # needs the primal function and its jvp to agree on that (a stacked
        # output is batched on axis 1: the tangents of the trace came out
        # transposed, and jax.grad of a fit with n_init > 1 failed).
        def step(loop, i):
            state, trace = loop
            # A select, not lax.cond(state.done, ...): under vmap (restarts,
            # batched fits) a cond with a batched predicate becomes a select
            # whose stop_gradient lands on the tangents once custom_jvp batches
            # this rule, and stop_gradient has no transpose. Finished members
            # iterate on stop_gradient-ed inputs, so their NaN cannot leak into
            # the derivative.
            frozen = jax.tree_util.tree_map(lambda x: jnp.where(state.done, jax.lax.stop_gradient(x), x), (data, state))
            new = iterate(*frozen, i)
            state = jax.tree_util.tree_map(lambda a, b: jnp.where(state.done, a, b), state, new)
            return (state, trace.at[i].set(state.log_likelihood)), None

        init = (start_state(params, data.init_lower_bound), jnp.zeros((max_iter,), dtype))
        return jax.lax.scan(step, init, jnp.arange(max_iter, dtype=jnp.int32))[0]

    def looped(params, data):
        def running(data, loop):
            state, i, _ = loop
            return ~state.done & (i < max_iter)

        def body(data, loop):
            state, i, trace = loop
            state = iterate(data, state, i)
            return state, i + 1, trace.at[i].set(state.log_likelihood)

        init = (start_state(params, data.init_lower_bound), jnp.zeros((), jnp.int32), jnp.zeros((max_iter,), dtype))
        state, n_run, trace = _loops.while_loop(running, body, data, init)
        # As the scan's: entries after the last iteration repeat its value.
        return state, jnp.where(jnp.arange(max_iter) < n_run, trace, state.log_likelihood)

    @jax.custom_jvp
    def em(params, data):
        return looped(params, data)

    @em.defjvp
    def em_jvp(primals, tangents):
        return jax.jvp(scanned, primals, tangents)

    if max_iter == 0:
        state, trace = start_state(params, data.init_lower_bound), jnp.zeros((0,), dtype)
        stats = statistics(params, data.X, data.w, chunk_size, data.center, tuning, n_slots)
        lower_bound = objective(stats, params, data.prior, data.active)
    else:
        state, trace = em(params, data)
        lower_bound = state.log_likelihood
    return FitResult(state.params, trace, state.n_iter, state.converged, lower_bound, state.status, state.n_empty)


# ---------------------------------------------------------------------------
# Implicit differentiation at the converged point.


def em_map(params: GMMParams, X, w, reg_covar, center, chunk_size, tuning, active=None, n_slots=None,
           prior=None) -> GMMParams:  # fmt: skip
    """``T(params)``: one EM iteration as a function (a converged fit is a fixed point ``T(p) = p``)."""
    stats = statistics(params, X, w, chunk_size, center, tuning, n_slots)
    return em_update(stats, params, reg_covar, active, prior).params


def _tree_sub(a, b):
    return jax.tree_util.tree_map(jnp.subtract, a, b)


def implicit_fixed_point(params: GMMParams, X, w, reg_covar, center, *, chunk_size, tuning, active=None, n_slots=None,
                         prior=None):  # fmt: skip
    """``params`` (a fixed point of the EM map), whose reverse-mode derivative is the implicit one.

    At a fixed point ``p* = T(p*, theta)`` of the EM map, with ``theta`` the
    data ``X``, ``w`` and ``reg_covar``, the implicit function theorem gives
    ``dp*/dtheta = (I - dT/dp)^-1 dT/dtheta``. The backward pass solves
    ``(I - dT/dp)^T v = g`` for the cotangent ``g`` (GMRES on vector-Jacobian
    products of one EM iteration), then returns ``v^T dT/dtheta``: the memory
    of one EM iteration, whatever the number of iterations the fit ran. The
    derivative with respect to the starting parameters is zero (a fixed point
    does not depend on where EM started). Forward-mode derivatives
    (``jacfwd``) are not defined for this path; use ``differentiate="unrolled"``.
    """

    def step(p, X, w, reg_covar, center):
        return em_map(p, X, w, reg_covar, center, chunk_size, tuning, active, n_slots, prior)

    @jax.custom_vjp
    def fixed(p, X, w, reg_covar, center):
        return p

    def fixed_fwd(p, X, w, reg_covar, center):
        return p, (p, X, w, reg_covar, center)

    def fixed_bwd(residuals, g):
        p, X, w, reg_covar, center = residuals
        _, vjp_params = jax.vjp(lambda q: step(q, X, w, reg_covar, center), p)
        v, _ = jax.scipy.sparse.linalg.gmres(
            lambda v: _tree_sub(v, vjp_params(v)[0]), g, tol=1e-12, atol=0.0, restart=30, maxiter=20,
            solve_method="batched",
        )  # fmt: skip
        _, vjp_data = jax.vjp(lambda X, w, r: step(p, X, w, r, center), X, w, reg_covar)
        dX, dw, dr = vjp_data(v)
        return jax.tree_util.tree_map(jnp.zeros_like, p), dX, dw, dr, jnp.zeros_like(center)

    fixed.defvjp(fixed_fwd, fixed_bwd)
    return fixed(params, X, w, reg_covar, center)


# ---------------------------------------------------------------------------
# Public single steps, through the same pass.


@functools.partial(jax.jit, static_argnames=("chunk_size", "tuning"))
@float32_matmuls
def _e_step(params, X, w, chunk_size, tuning):
    center = jax.lax.stop_gradient(_rows.mixture_center(params))
    centred = params.replace(means=params.means - center[None, :])
    log_resp, log_norm = _pass.map_scores(centred, X, "log_resp_and_log_prob", chunk_size, center, tuning)
    mean_ll = jnp.sum(jnp.where(w > 0, w * log_norm, 0.0)) / jnp.sum(w)
    return mean_ll, log_resp


@with_matmul_precision
def e_step(params: GMMParams, X, sample_weight=None, nan_policy: str = "raise", *, matmul_precision=None):
    """The E-step: mean log-likelihood and log responsibilities.

    Args:
      params: current mixture.
      X: ``(n_samples, n_features)``.
      sample_weight: optional ``(n_samples,)`` non-negative weights.
      nan_policy: ``"raise"`` (default) rejects NaN; ``"marginalize"``
        treats NaN entries as missing: densities and responsibilities use
        each row's observed entries, and the mean is over the rows with at
        least one observed entry.
      matmul_precision: as in :func:`gmm_jax.fit`.

    Returns:
      ``(mean_log_likelihood (), log_resp (n_samples, n_components))``; the
      mean is weighted by ``sample_weight`` when given.

    Example:
      >>> import jax.numpy as jnp, gmm_jax as gmm
      >>> p = gmm.GMMParams.from_covariances(jnp.array([0.5, 0.5]),
      ...     jnp.array([[-2.0], [2.0]]), jnp.array([1.0, 1.0]), "spherical")
      >>> ll, log_resp = gmm.e_step(p, jnp.array([[-2.0], [2.0]]))
      >>> jnp.exp(log_resp).sum(axis=1).round(6).tolist()
      [1.0, 1.0]
    """
    del matmul_precision  # in force around this call (with_matmul_precision)
    X = check_params_and_data(params, X, nan_policy=nan_policy)
    w = _validation.check_sample_weight(sample_weight, X.shape[0], X.dtype)
    if nan_policy == "marginalize":
        log_resp, log_norm = scores(params, X, "log_resp_and_log_prob", nan_policy)
        w = _missing.informative_weights(X, w)
        return jnp.sum(jnp.where(w > 0, w * log_norm, 0.0)) / jnp.sum(w), log_resp
    tuning = _tuning.for_data(X)
    return _e_step(params.astype(X.dtype), X, w, layout(params, X, tuning), tuning)


@functools.partial(jax.jit, static_argnames=("covariance_type", "tuning"))
@float32_matmuls
def _m_step(X, log_resp, w, reg_covar, covariance_type, tuning):
    resp = jnp.exp(log_resp) * w[:, None]
    nk = resp.sum(axis=0)
    # Accumulate around the new means: the second moments are then exact.
    shift = (resp.T @ X) / (nk + _NK_EPS * jnp.finfo(X.dtype).eps * jnp.sum(nk) / nk.shape[0])[:, None]
    stats = _pass.statistics_from_responsibilities(lambda Xc, r, _: r.T, X, resp, shift, covariance_type, tuning)
    return params_from_statistics(stats, shift, covariance_type, reg_covar)


def m_step(X, log_resp, covariance_type: str, reg_covar: float = 1e-6, sample_weight=None) -> GMMParams:
    """The M-step: weights, means and covariances from log responsibilities.

    Matches scikit-learn's ``_estimate_gaussian_parameters`` (with ``10 eps``
    of a component's mean mass added to each ``nk`` and ``reg_covar`` to each
    variance).

    Args:
      X: ``(n_samples, n_features)``.
      log_resp: ``(n_samples, n_components)`` log responsibilities: each row
        a log probability vector (entries ``<= 0`` whose exponentials sum to 1).
      covariance_type: ``"full" | "tied" | "diag" | "spherical"``.
      reg_covar: non-negative value added to the covariance diagonal.
      sample_weight: optional ``(n_samples,)`` non-negative weights.

    Returns:
      The new ``GMMParams``.

    Example:
      >>> import jax.numpy as jnp, gmm_jax as gmm
      >>> X = jnp.array([[0.0], [2.0], [10.0], [12.0]])
      >>> log_resp = jnp.log(jnp.array([[1.0, 0], [1, 0], [0, 1], [0, 1]]))
      >>> p = gmm.m_step(X, log_resp, "diag", reg_covar=0.0)
      >>> p.means.ravel().round(4).tolist(), p.covariances.ravel().round(4).tolist()
      ([1.0, 11.0], [1.0, 1.0])
    """
    X = _validation.check_data(X)
    _validation.check_covariance_type(covariance_type)
    log_resp = check_log_responsibilities(log_resp, X.shape[0], X.dtype)
    reg_covar = _validation.check_scalar_option(reg_covar, "reg_covar", X.dtype)
    w = _validation.check_sample_weight(sample_weight, X.shape[0], X.dtype)
    return _m_step(X, log_resp, w, reg_covar, covariance_type, _tuning.for_data(X))


@_validation.eager
def check_log_responsibilities(log_resp, n_samples, dtype):
    """``log_resp`` as an ``(n_samples, K)`` array of log probabilities, or a ``ValueError`` saying what is wrong."""
    log_resp = _validation.as_float_array(log_resp, "log_resp").astype(dtype)
    if log_resp.ndim != 2 or log_resp.shape[0] != n_samples:
        raise ValueError(
            f"log_resp must have shape (n_samples, n_components) with n_samples={n_samples}, got {log_resp.shape}."
        )
    if _validation.is_concrete(log_resp):
        if bool(jnp.any(jnp.isnan(log_resp))) or bool(jnp.any(log_resp == jnp.inf)):
            raise ValueError("log_resp contains NaN or +inf; it must hold log responsibilities (-inf is allowed).")
        row_sums = jnp.sum(jnp.exp(log_resp), axis=1)
        if bool(jnp.any(log_resp > 1e-6)) or not bool(jnp.allclose(row_sums, 1.0, rtol=1e-4, atol=1e-4)):
            hint = (" They look like probabilities: pass jnp.log(resp)." if bool(jnp.all(log_resp >= 0)) else "")
            raise ValueError(
                "log_resp must hold log responsibilities: rows whose exponentials sum to 1, got rows summing to "
                f"between {float(jnp.min(row_sums)):.4g} and {float(jnp.max(row_sums)):.4g}.{hint}"
            )
    return log_resp
