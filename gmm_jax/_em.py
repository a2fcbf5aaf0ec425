"""The EM algorithm: E-step, M-step, sufficient statistics and the scanned loop.

One EM iteration is one pass over the data that accumulates sufficient
statistics (``SufficientStatistics``) chunk by chunk, followed by a small
closed-form update (``params_from_statistics``). The same two functions serve
in-memory fits, sharded fits (the sums are reduced across devices by XLA) and
streamed fits (the sums are accumulated across host batches).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from gmm_jax import _covariance, _loops, _rows, _validation
from gmm_jax._precision import float32_matmuls
from gmm_jax._likelihood import centred_weighted_log_prob, weighted_log_prob
from gmm_jax._params import GMMParams

__all__ = ["FitResult", "SufficientStatistics", "e_step", "m_step", "STATUS_OK", "STATUS_NON_FINITE"]

STATUS_OK = 0
# An M-step produced non-finite parameters: a covariance that is singular (or
# singular up to rounding noise, see ``_covariance``) with reg_covar=0, a
# failed Cholesky, or NaN/inf from anywhere. The fit stopped and kept the last
# finite parameters.
STATUS_NON_FINITE = 1


class SufficientStatistics(NamedTuple):
    """Weighted sums over samples that determine one M-step.

    All moments are taken around ``shift`` (``(K, D)``, the current means), which
    keeps float32 accurate; see ``_covariance``.
    """

    log_likelihood: jax.Array  # () sum_n w_n log p(x_n | params)
    weight_sum: jax.Array  # () sum_n w_n
    nk: jax.Array  # (K,) sum_n w_n r_nk
    s1: jax.Array  # (K, D) sum_n w_n r_nk (x_n - shift_k)
    s2: jax.Array  # full/tied (K, D, D), diag/spherical (K, D): second moments around shift


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
        non-finite (then ``n_iter == 0`` and the parameters are the start).
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


def statistics_from_responsibilities(X, resp, shift, covariance_type, log_likelihood=None, weight_sum=None):
    """Sufficient statistics of a chunk given its (sample-weighted) responsibilities ``(B, K)``."""
    nk = resp.sum(axis=0)
    s1 = resp.T @ X - nk[:, None] * shift
    s2 = _covariance.covariance_model(covariance_type).second_moment(X, resp, shift)
    zero = jnp.zeros((), X.dtype)
    return SufficientStatistics(
        zero if log_likelihood is None else log_likelihood,
        zero if weight_sum is None else weight_sum,
        nk,
        s1,
        s2,
    )


# Up to this many components, reductions over the component axis of a (K, B)
# chunk are written as a chain of K - 1 element-wise operations on its rows.
# XLA fuses such a chain with its neighbours (the exp, the division) into one
# loop over the chunk, whereas a reduce over the short leading axis becomes
# its own kernel: on CPU a separate library call per chunk, which for K = 16
# made the logsumexp about as costly as the Mahalanobis norms. Beyond this
# size the chain would bloat the program for little gain.
_UNROLL_COMPONENTS = 32


def _over_components(op, reduction, a):
    """Reduction of ``a`` (K, B) over its leading axis: (B,); ``op`` is ``reduction``'s binary form."""
    if a.shape[0] > _UNROLL_COMPONENTS:
        return reduction(a, axis=0)
    out = a[0]
    for row in range(1, a.shape[0]):
        out = op(out, a[row])
    return out


def _fused_chunk(model, consts, log_weights, X, w):
    """E-step and M-step sums of one chunk, reusing the E-step's per-row work (see ``_covariance``).

    Component-major: log-densities and responsibilities are ``(K, B)``.
    """
    log_gauss, feats = model.chunk_log_prob(consts, X)
    wlp = log_gauss + log_weights[:, None]  # (K, B)
    # logsumexp and the responsibilities from a single exp per entry.
    top = _over_components(jnp.maximum, jnp.max, wlp)
    top = jax.lax.stop_gradient(jnp.where(jnp.isfinite(top), top, 0.0))
    e = jnp.exp(wlp - top[None, :])
    total = _over_components(jnp.add, jnp.sum, e)
    resp = e * (w / total)[None, :]  # sample-weighted responsibilities
    log_norm = top + jnp.log(total)
    # Zero-weight rows (padding) must not turn a -inf density into NaN.
    ll = jnp.sum(jnp.where(w > 0, w * log_norm, 0.0))
    return ll, jnp.sum(w), jnp.sum(resp, axis=1), model.chunk_sums(consts, feats, resp)


def accumulate_statistics(params: GMMParams, X, w, chunk_size=None, center=None) -> SufficientStatistics:
    """One E-step pass over ``X`` (in row chunks, centred at ``center``), around the current means."""
    model = _covariance.covariance_model(params.covariance_type)
    consts = model.pass_constants(params.means, params.precisions_cholesky)
    chunk = functools.partial(_fused_chunk, model, consts, jnp.log(params.weights))
    ll, weight_sum, nk, sums = _rows.sum_over_rows(
        lambda Xc, wc, _: chunk(Xc, wc), X, w, chunk_size, center, unroll=model.pass_unroll()
    )
    s1, s2 = model.moments_from_sums(consts, sums, nk, params.means)
    return SufficientStatistics(ll, weight_sum, nk, s1, s2)


def params_from_statistics(stats: SufficientStatistics, shift, covariance_type, reg_covar, previous=None) -> GMMParams:
    """The M-step: new parameters from sufficient statistics accumulated around ``shift``.

    A component whose mass is below the rounding noise of the sums (it received
    no responsibility) would get an undefined covariance; it keeps its
    ``previous`` mean and covariance instead, with a weight of (almost) zero,
    so the parameters stay finite and the component can still recapture data.
    """
    model = _covariance.covariance_model(covariance_type)
    eps = jnp.finfo(stats.s1.dtype).eps
    # scikit-learn adds 10 eps to nk so that empty components divide safely.
    nk = stats.nk + 10 * eps
    d = stats.s1 / nk[:, None]
    means = shift + d
    covariances = model.covariances_from_moments(stats.s2, nk, d, reg_covar)
    factor = model.factor_from_covariances(covariances)
    # Unless reg_covar is above one rounding unit of the second moments (then
    # it bounds every variance from below by construction), each conditional
    # variance (Cholesky pivot) must stand above the rounding noise of the
    # moments it was computed from. A covariance that is positive definite
    # only by rounding (collinear points with reg_covar=0) would give a finite
    # precision made of noise; it is marked as zero variance (an infinite
    # factor), which the EM loop reports as status 1.
    pivots = 1.0 / jnp.square(model.diagonal(factor))
    raw = model.diagonal(model.covariances_from_moments(stats.s2, nk, jnp.zeros_like(d), 0.0))
    singular = (pivots <= shift.shape[-1] * eps * raw) & (reg_covar <= eps * raw)
    factor = model.mark_singular(factor, singular)
    weights = nk / jnp.sum(nk)
    if previous is not None and covariance_type != "tied":
        empty = empty_components(stats.nk)
        means = jnp.where(empty[:, None], previous.means, means)
        keep = empty.reshape(empty.shape + (1,) * (factor.ndim - 1))
        factor = jnp.where(keep, previous.precisions_cholesky, factor)
    return GMMParams(weights, means, factor, covariance_type)


def empty_components(nk) -> jax.Array:
    """``(K,)`` bool: components whose mass ``nk`` is below the rounding noise of the sums."""
    return nk <= 16 * jnp.finfo(nk.dtype).eps * jnp.sum(nk)


def all_finite(tree) -> jax.Array:
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def em_iteration(params: GMMParams, X, w, reg_covar, chunk_size=None, center=None):
    """One EM iteration. Returns ``(mean log-likelihood of params, new params, n_empty)``.

    ``params`` live in coordinates centred at ``center`` (``None``: raw
    coordinates); ``n_empty`` counts the components that received no mass.
    """
    stats = accumulate_statistics(params, X, w, chunk_size, center)
    new = params_from_statistics(stats, params.means, params.covariance_type, reg_covar, previous=params)
    n_empty = jnp.sum(empty_components(stats.nk)).astype(jnp.int32)
    return stats.log_likelihood / stats.weight_sum, new, n_empty


def _print_progress(iteration, log_likelihood, change):
    print(f"  iteration {int(iteration):4d}   log-likelihood {float(log_likelihood): .8f}   change {float(change): .3e}")


def run_em(params: GMMParams, X, w, *, max_iter, tol, reg_covar, chunk_size=None, center=None, verbose=False) -> FitResult:
    """EM from ``params`` for at most ``max_iter`` iterations (traceable).

    Stops once the change of the mean log-likelihood is below ``tol``
    (scikit-learn's rule: the parameters after the converging M-step are
    kept). The loop is a ``while_loop`` that stops at convergence, under
    ``vmap`` too (``_loops.while_loop`` compacts the batch as fits finish).
    A ``while_loop`` cannot be reverse-differentiated, so derivatives (a
    ``custom_jvp``) come from the same iterations written as a ``lax.scan``
    over ``max_iter`` steps that skips the finished ones with ``lax.cond``:
    ``jax.grad``, ``jax.jacfwd`` and ``jax.hessian`` of a fit all work.
    """
    dtype = X.dtype
    int32 = jnp.int32

    def start(params):
        start_ok = all_finite(params)
        return (
            params,
            jnp.asarray(-jnp.inf, dtype),  # previous log-likelihood
            ~start_ok,  # done
            jnp.asarray(False),  # converged
            jnp.zeros((), int32),  # n_iter
            jnp.where(start_ok, STATUS_OK, STATUS_NON_FINITE).astype(int32),
            jnp.zeros((), int32),  # n_empty
        )

    def iterate(data, carry, i):
        X, w, tol, reg_covar, center = data
        params, prev_ll, _, _, n_iter, status, n_empty = carry
        ll, new, new_empty = em_iteration(params, X, w, reg_covar, chunk_size, center)
        ok = all_finite(new) & jnp.isfinite(ll)
        change = ll - prev_ll
        converged = ok & (jnp.abs(change) < tol)
        if verbose:
            jax.debug.callback(_print_progress, i + 1, ll, change)
        params = jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new, params)
        return (
            params,
            jnp.where(jnp.isfinite(ll), ll, prev_ll),
            converged | ~ok,
            converged,
            jnp.where(ok, i + 1, n_iter).astype(int32),
            jnp.where(ok, status, STATUS_NON_FINITE).astype(int32),
            jnp.where(ok, new_empty, n_empty),
        )

    def scanned(params, *data):
        def step(carry, i):
            carry = jax.lax.cond(carry[2], lambda c, _: c, lambda c, i: iterate(data, c, i), carry, i)
            return carry, carry[1]

        return jax.lax.scan(step, start(params), jnp.arange(max_iter, dtype=int32))

    def looped(params, *data):
        def running(data, state):
            carry, i, _ = state
            return ~carry[2] & (i < max_iter)

        def body(data, state):
            carry, i, trace = state
            carry = iterate(data, carry, i)
            return carry, i + 1, trace.at[i].set(carry[1])

        init = (start(params), jnp.zeros((), int32), jnp.zeros((max_iter,), dtype))
        carry, n_run, trace = _loops.while_loop(running, body, data, init)
        # As the scan's: entries after the last iteration repeat its value.
        return carry, jnp.where(jnp.arange(max_iter) < n_run, trace, carry[1])

    @jax.custom_jvp
    def em(params, *data):
        return looped(params, *data)

    @em.defjvp
    def em_jvp(primals, tangents):
        return jax.jvp(scanned, primals, tangents)

    if max_iter == 0:
        carry, trace = start(params), jnp.zeros((0,), dtype)
    else:
        carry, trace = em(params, X, w, tol, reg_covar, center)
    params, lower_bound, _, converged, n_iter, status, n_empty = carry
    if max_iter == 0:
        stats = accumulate_statistics(params, X, w, chunk_size, center)
        lower_bound = stats.log_likelihood / stats.weight_sum
    return FitResult(params, trace, n_iter, converged, lower_bound, status, n_empty)


# ---------------------------------------------------------------------------
# Public single steps.


@jax.jit
@float32_matmuls
def _e_step(params, X, w):
    wlp = centred_weighted_log_prob(params, X)
    log_norm = jax.nn.logsumexp(wlp, axis=1)
    mean_ll = jnp.sum(w * log_norm) / jnp.sum(w)
    return mean_ll, wlp - log_norm[:, None]


def e_step(params: GMMParams, X, sample_weight=None):
    """The E-step: mean log-likelihood and log responsibilities.

    Args:
      params: current mixture.
      X: ``(n_samples, n_features)``.
      sample_weight: optional ``(n_samples,)`` non-negative weights.

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
    X = _validation.check_params_and_data(params, X)
    w = _validation.check_sample_weight(sample_weight, X.shape[0], X.dtype)
    return _e_step(params.astype(X.dtype), X, w)


@functools.partial(jax.jit, static_argnames=("covariance_type",))
@float32_matmuls
def _m_step(X, log_resp, w, reg_covar, covariance_type):
    resp = jnp.exp(log_resp) * w[:, None]
    nk = resp.sum(axis=0) + 10 * jnp.finfo(X.dtype).eps
    shift = (resp.T @ X) / nk[:, None]  # accumulate around the new means: exact second moments
    stats = statistics_from_responsibilities(X, resp, shift, covariance_type)
    return params_from_statistics(stats, shift, covariance_type, reg_covar)


def m_step(X, log_resp, covariance_type: str, reg_covar: float = 1e-6, sample_weight=None) -> GMMParams:
    """The M-step: weights, means and covariances from log responsibilities.

    Matches scikit-learn's ``_estimate_gaussian_parameters`` (with ``10 eps``
    added to each component's mass and ``reg_covar`` to each variance).

    Args:
      X: ``(n_samples, n_features)``.
      log_resp: ``(n_samples, n_components)`` log responsibilities.
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
    log_resp = _validation.as_float_array(log_resp, "log_resp").astype(X.dtype)
    if log_resp.ndim != 2 or log_resp.shape[0] != X.shape[0]:
        raise ValueError(
            f"log_resp must have shape (n_samples, n_components) with n_samples={X.shape[0]}, got {log_resp.shape}."
        )
    reg_covar = _validation._check_nonneg_float(reg_covar, "reg_covar")
    w = _validation.check_sample_weight(sample_weight, X.shape[0], X.dtype)
    return _m_step(X, log_resp, w, reg_covar, covariance_type)
