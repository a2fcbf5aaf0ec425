"""`fit_gradient`: a mixture fitted by gradient descent (optax) on the unconstrained parameters.

EM is the better algorithm for the plain maximum-likelihood fit (no step
size, monotone, few iterations). Gradient descent is the path for what EM
cannot do: a mixture term inside a larger loss, a mixture whose parameters
come out of a network, or mini-batches of a dataset streamed past the model.
This module is the plain version of that path, and a worked example of the
idiom: parameters -> :func:`to_unconstrained` -> optax steps on the free
arrays -> :func:`from_unconstrained`.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gmm_jax import _driver, _prior, _tuning, _validation
from gmm_jax._fit import fit
from gmm_jax._likelihood import log_prob
from gmm_jax._params import GMMParams, check_init_params
from gmm_jax._precision import float32_matmuls
from gmm_jax._unconstrained import from_unconstrained, to_unconstrained

__all__ = ["GradientFitResult", "fit_gradient", "DEFAULT_LEARNING_RATE"]

# Adam's step in the standardised coordinates the optimisation runs in (data
# centred and scaled to unit mean variance), so one rate suits any data
# scale. Measured on the seed scenario (tests/test_gradient.py): 1,000 full
# batch steps from the k-means start reach EM's log-likelihood within 1e-3
# nats per sample.
DEFAULT_LEARNING_RATE = 1e-2
# One instance, so that calls with the default optimizer reuse one compiled
# program (the optimizer is a static argument: its functions are traced in).
_DEFAULT_OPTIMIZER = optax.adam(DEFAULT_LEARNING_RATE)


class GradientFitResult(NamedTuple):
    """What :func:`fit_gradient` returns.

    Attributes:
      params: the fitted ``GMMParams`` (in the data's coordinates).
      loss: ``(n_steps,)`` the negative mean log-likelihood (weighted by
        ``sample_weight``) of the parameters *before* each step, on that
        step's batch: the whole data when ``batch_size`` is ``None``. With a
        prior, minus ``log_prior / N`` too (the negative mean log posterior).
      opt_state: the optimizer's final state, for resuming. It belongs to the
        free parameters in standardised coordinates (see :func:`fit_gradient`).
    """

    params: GMMParams
    loss: jax.Array  # (n_steps,)
    opt_state: Any


def _standardise(params: GMMParams, center, scale) -> GMMParams:
    # x' = (x - center) / scale: precision' = scale^2 precision, for every type.
    return params.replace(means=(params.means - center[None]) / scale, precisions_cholesky=params.precisions_cholesky * scale)


def _unstandardise(params: GMMParams, center, scale) -> GMMParams:
    return params.replace(means=params.means * scale + center[None], precisions_cholesky=params.precisions_cholesky / scale)


@functools.partial(jax.jit, static_argnames=("optimizer", "n_steps", "batch_size", "covariance_type"))
@float32_matmuls
def _descend(key, X, w, start, prior=None, *, optimizer, n_steps, batch_size, covariance_type):
    # The optimisation runs on standardised data (centred, unit mean variance):
    # a step size means the same thing whatever the data's units and offset.
    total = jnp.sum(w)
    center = jax.lax.stop_gradient((w @ X) / total)
    spread = jnp.sum(w[:, None] * jnp.square(X - center[None]), axis=0) / total
    scale = jax.lax.stop_gradient(jnp.sqrt(jnp.maximum(jnp.mean(spread), jnp.finfo(X.dtype).tiny)))
    Z = (X - center[None]) / scale
    # log p(x) = log p'(z) - D log(scale): the loss is reported in the data's units.
    log_jacobian = X.shape[1] * jnp.log(scale)

    def nll(raw, Z_batch, w_batch):
        params = from_unconstrained(raw, covariance_type)
        loss = -jnp.sum(w_batch * log_prob(params, Z_batch)) / jnp.sum(w_batch)
        if prior is not None:
            # MAP: the log prior (of the parameters in the data's coordinates,
            # where the prior is given) per sample of the whole data, as in
            # EM's penalised objective (FitResult.lower_bound).
            loss = loss - _prior.log_prior(_unstandardise(params, center, scale), prior) / total
        return loss

    raw = to_unconstrained(_standardise(start, center, scale))
    opt_state = optimizer.init(raw)
    if batch_size is not None:
        # Rows are drawn with probability proportional to their weight and
        # averaged unweighted: an unbiased estimate of the weighted mean, and
        # zero-weight rows (padding) are never drawn. Inverse-CDF sampling
        # from one cumulative sum, not a permutation per step.
        cdf = jnp.cumsum(w) / total

    def step(carry, step_key):
        raw, opt_state = carry
        if batch_size is None:
            Z_batch, w_batch = Z, w
        else:
            u = jax.random.uniform(step_key, (batch_size,), dtype=cdf.dtype)
            rows = jnp.minimum(jnp.searchsorted(cdf, u, side="right"), Z.shape[0] - 1)
            Z_batch, w_batch = Z[rows], jnp.ones((batch_size,), Z.dtype)
        loss, grads = jax.value_and_grad(nll)(raw, Z_batch, w_batch)
        updates, opt_state = optimizer.update(grads, opt_state, raw)
        return (optax.apply_updates(raw, updates), opt_state), loss + log_jacobian

    (raw, opt_state), losses = jax.lax.scan(step, (raw, opt_state), jax.random.split(key, n_steps))
    params = _unstandardise(from_unconstrained(raw, covariance_type), center, scale)
    return GradientFitResult(params, losses, opt_state)


def fit_gradient(
    key,
    X,
    n_components: int,
    *,
    optimizer: optax.GradientTransformation | None = None,
    n_steps: int = 1000,
    batch_size: int | None = None,
    covariance_type: str = "full",
    init: str = "kmeans",
    init_params: GMMParams | None = None,
    prior=None,
    sample_weight=None,
) -> GradientFitResult:
    """Fits a mixture by minimising the negative mean log-likelihood (or log posterior) with optax.

    The free arrays of :func:`to_unconstrained` (weight logits, means,
    log-diagonal precision Cholesky factors) are optimised, so every step
    gives valid parameters. The optimisation runs in standardised
    coordinates (data centred at its weighted mean and divided by one scale,
    the root mean variance), so the default learning rate suits any data
    scale; ``params`` come back in the data's coordinates. The whole loop is
    one compiled ``lax.scan``. The start is ``fit(key, X, n_components,
    init=init, max_iter=0)`` (the initialiser's parameters, no EM iteration),
    or ``init_params``.

    Prefer :func:`fit` (EM) for a plain maximum-likelihood fit: it needs no
    step size and converges in fewer passes. Use this path, or copy its
    loop, when the mixture is part of a larger objective.

    Args:
      key: PRNG key: split into the initialiser's key and the mini-batch draws.
      X: ``(n_samples, n_features)`` data.
      n_components: number of components, ``1 <= K <= n_samples``.
      optimizer: an ``optax.GradientTransformation``; default
        ``optax.adam(DEFAULT_LEARNING_RATE)`` (``1e-2``). It is a static
        argument: pass the same object again to reuse the compiled loop.
      n_steps: number of optimizer steps (static).
      batch_size: ``None`` for full-batch steps, or rows per step (static),
        drawn with replacement with probability proportional to
        ``sample_weight``.
      covariance_type: ``"full"``, ``"tied"``, ``"diag"`` or ``"spherical"``.
      init: the initialiser, as in :func:`fit`; ignored with ``init_params``.
      init_params: a ``GMMParams`` to start from.
      prior: optional :class:`ConjugatePrior` (in the data's coordinates):
        the loss is then the negative mean log posterior, the log-likelihood
        plus ``log_prior / N`` (``N`` the sum of the weights), the objective
        of ``fit(..., prior=prior)`` (``-FitResult.lower_bound``).
      sample_weight: optional ``(n_samples,)`` non-negative weights; the loss
        is the weighted mean.

    Returns:
      ``GradientFitResult(params, loss (n_steps,), opt_state)``.

    Raises:
      ValueError, TypeError: bad arrays or options, before anything is traced.

    Example:
      >>> import jax, jax.numpy as jnp, gmm_jax as gmm
      >>> X = jnp.concatenate([jax.random.normal(jax.random.key(0), (100, 2)) - 3,
      ...                      jax.random.normal(jax.random.key(1), (100, 2)) + 3])
      >>> res = gmm.fit_gradient(jax.random.key(2), X, 2, n_steps=300, covariance_type="diag")
      >>> res.loss.shape, bool(res.loss[-1] < res.loss[0])
      ((300,), True)
      >>> sorted(res.params.means[:, 0].round().tolist())
      [-3.0, 3.0]
    """
    _validation.check_key(key)
    X = _validation.check_data(X)
    n_samples, n_features = X.shape
    n_components = _driver.fit_options(
        n_samples=n_samples, n_features=n_features, n_components=n_components, covariance_type=covariance_type,
        init=init, n_init=1, max_iter=0, verbose=False, chunk_size=None, tuning=_tuning.for_data(X),
    ).n_components  # fmt: skip
    n_steps = _validation.check_int(n_steps, "n_steps", 1)
    if batch_size is not None:
        batch_size = _validation.check_int(batch_size, "batch_size", 1)
    if optimizer is None:
        optimizer = _DEFAULT_OPTIMIZER
    elif not (callable(getattr(optimizer, "init", None)) and callable(getattr(optimizer, "update", None))):
        raise TypeError(
            "optimizer must be an optax.GradientTransformation such as optax.adam(1e-2), "
            f"got {type(optimizer).__name__}."
        )
    w = _validation.check_sample_weight(sample_weight, n_samples, X.dtype)
    init_key, batch_key = jax.random.split(key)
    if init_params is None:
        start = fit(init_key, X, n_components, covariance_type=covariance_type, init=init, max_iter=0, sample_weight=w,
                    prior=prior).params  # fmt: skip
    else:
        check_init_params(init_params, n_components, n_features, covariance_type)
        start = init_params.astype(X.dtype)
    prior = _driver.check_prior(prior, n_features, covariance_type, X.dtype)
    return _descend(
        batch_key, X, w, start, prior, optimizer=optimizer, n_steps=n_steps, batch_size=batch_size,
        covariance_type=covariance_type,
    )  # fmt: skip
