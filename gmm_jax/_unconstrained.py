"""An unconstrained parametrisation of a mixture: free real arrays <-> ``GMMParams``.

A gradient step on ``GMMParams`` leaves the simplex (weights) and the cone
of positive-definite matrices (covariances). :func:`to_unconstrained` maps
parameters to free arrays where any step is allowed, and
:func:`from_unconstrained` maps *every* real array back to valid parameters;
the two are exact inverses of each other (a bijection).

The choices, and why:

* weights: ``K - 1`` logits relative to the last component,
  ``w = softmax([logits, 0])``. ``K`` logits would be redundant (adding a
  constant changes nothing), so no inverse could return the logits it was
  given.
* means: unchanged.
* covariances: the Cholesky factor of the *precision* that ``GMMParams``
  stores (``precision = U U^T``, ``U`` upper triangular), with the log of its
  diagonal. The negative log-likelihood is convex in ``U`` and its
  log-diagonal enters as ``-sum(log diag U)`` plus a quadratic: no inverse,
  no determinant, no triangular solve between the free arrays and the
  density, and nothing to clip. ``full``/``tied`` factors are packed as their
  upper triangle (row-major, ``jnp.triu_indices`` order), so no entry is
  ignored.

Leading batch axes are allowed on every array (one mixture per example, as
in a mixture density network): shapes below are per mixture.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from gmm_jax import _validation
from gmm_jax._params import GMMParams, check_params

__all__ = ["UnconstrainedParams", "to_unconstrained", "from_unconstrained"]


class UnconstrainedParams(NamedTuple):
    """Free real arrays that :func:`from_unconstrained` maps to a ``GMMParams``.

    Shapes per mixture (any leading batch axes are shared by all three):

    Attributes:
      weight_logits: ``(K - 1,)`` ``log(w_k / w_K)``.
      means: ``(K, D)`` component means.
      precisions_cholesky: the precision's Cholesky factor ``U`` with
        ``log`` on its diagonal. ``full`` ``(K, D (D + 1) / 2)`` and ``tied``
        ``(D (D + 1) / 2,)``: the upper triangle, row by row; ``diag``
        ``(K, D)``: ``-log`` of the standard deviations; ``spherical``
        ``(K,)``: the same, one per component.
    """

    weight_logits: jax.Array
    means: jax.Array
    precisions_cholesky: jax.Array


def _n_packed(n_features):
    return n_features * (n_features + 1) // 2


def to_unconstrained(params: GMMParams) -> UnconstrainedParams:
    """Free arrays of ``params``: weight logits, means, log-diagonal precision Cholesky factors.

    The exact inverse of :func:`from_unconstrained`. A weight of exactly zero
    has no finite logit (``-inf``); fitted weights are never exactly zero.

    Args:
      params: a ``GMMParams``, optionally with leading batch axes on its leaves.

    Returns:
      ``UnconstrainedParams`` (shapes in its docstring).

    Example:
      >>> import jax.numpy as jnp, gmm_jax as gmm
      >>> params = gmm.GMMParams.from_covariances(
      ...     jnp.array([0.25, 0.75]), jnp.array([[0.0, 0.0], [3.0, 3.0]]),
      ...     jnp.array([[[1.0, 0.5], [0.5, 2.0]], [[1.0, 0.0], [0.0, 1.0]]]), "full")
      >>> raw = gmm.to_unconstrained(params)
      >>> raw.weight_logits.shape, raw.means.shape, raw.precisions_cholesky.shape
      ((1,), (2, 2), (2, 3))
      >>> back = gmm.from_unconstrained(raw, "full")
      >>> bool(jnp.allclose(back.covariances, params.covariances, rtol=1e-12))
      True
    """
    check_params(params, allow_batch=True)
    log_w = jnp.log(params.weights)
    logits = log_w[..., :-1] - log_w[..., -1:]
    factor = params.precisions_cholesky
    if params.covariance_type in ("full", "tied"):
        d = params.n_features
        rows, cols = jnp.triu_indices(d)
        packed = factor[..., rows, cols]
        on_diagonal = jnp.broadcast_to(rows == cols, packed.shape)
        # The log is taken of the (positive) diagonal only: a where of log(x)
        # for every x would put NaN into the derivative of negative entries.
        packed = jnp.where(on_diagonal, jnp.log(jnp.where(on_diagonal, packed, 1.0)), packed)
    else:
        packed = jnp.log(factor)
    return UnconstrainedParams(logits, params.means, packed)


def from_unconstrained(raw, covariance_type: str = "full") -> GMMParams:
    """The ``GMMParams`` of free arrays: valid for *every* real input.

    Weights are ``softmax([weight_logits, 0])`` (on the simplex), and the
    precision factors have ``exp`` of the free diagonal on their diagonal
    (positive definite). Differentiable, traceable, and the exact inverse of
    :func:`to_unconstrained`. Leading batch axes pass through (see the
    module docstring); evaluate such batched parameters with ``jax.vmap``.

    Args:
      raw: an ``UnconstrainedParams`` (or any triple ``(weight_logits,
        means, precisions_cholesky)`` with its shapes).
      covariance_type: ``"full"``, ``"tied"``, ``"diag"`` or ``"spherical"``
        (static).

    Returns:
      The ``GMMParams``.

    Raises:
      ValueError: the shapes do not fit together or the covariance type.

    Example:
      >>> import jax, jax.numpy as jnp, gmm_jax as gmm
      >>> raw = gmm.UnconstrainedParams(
      ...     weight_logits=jnp.array([0.0, 1.0]),      # K = 3
      ...     means=jax.random.normal(jax.random.key(0), (3, 2)),
      ...     precisions_cholesky=jnp.array([-0.5, 0.0, 0.5]))
      >>> params = gmm.from_unconstrained(raw, "spherical")
      >>> [round(float(w), 3) for w in params.weights], [round(float(c), 3) for c in params.covariances]
      ([0.212, 0.576, 0.212], [2.718, 1.0, 0.368])
    """
    _validation.check_covariance_type(covariance_type)
    if not (isinstance(raw, tuple) and len(raw) == 3):
        raise TypeError(
            "raw must be an UnconstrainedParams(weight_logits, means, precisions_cholesky) "
            f"(as returned by to_unconstrained), got {type(raw).__name__}."
        )
    logits, means, packed = (jnp.asarray(a) for a in raw)
    dtype = jnp.result_type(logits, means, packed)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(float)
    logits, means, packed = (a.astype(dtype) for a in (logits, means, packed))
    if means.ndim < 2:
        raise ValueError(f"raw.means must have shape (..., n_components, n_features), got {means.shape}.")
    *batch, k, d = means.shape
    batch = tuple(batch)
    expected = {
        "full": (*batch, k, _n_packed(d)),
        "tied": (*batch, _n_packed(d)),
        "diag": (*batch, k, d),
        "spherical": (*batch, k),
    }[covariance_type]
    if logits.shape != (*batch, k - 1) or packed.shape != expected:
        raise ValueError(
            f"raw arrays do not fit together for covariance_type={covariance_type!r}: means "
            f"{means.shape} (n_components={k}, n_features={d}) needs weight_logits of shape "
            f"{(*batch, k - 1)} and precisions_cholesky of shape {expected}; got {logits.shape} "
            f"and {packed.shape}. Build them with to_unconstrained(params)."
        )
    zeros = jnp.zeros((*batch, 1), dtype)
    weights = jax.nn.softmax(jnp.concatenate([logits, zeros], axis=-1), axis=-1)
    if covariance_type in ("full", "tied"):
        rows, cols = jnp.triu_indices(d)
        on_diagonal = jnp.broadcast_to(rows == cols, packed.shape)
        # exp of the diagonal only: exp of a large off-diagonal entry would be
        # inf, and inf x 0 a NaN in the derivative.
        values = jnp.where(on_diagonal, jnp.exp(jnp.where(on_diagonal, packed, 0.0)), packed)
        factor = jnp.zeros((*packed.shape[:-1], d, d), dtype).at[..., rows, cols].set(values)
    else:
        factor = jnp.exp(packed)
    return GMMParams(weights, means, factor, covariance_type)
