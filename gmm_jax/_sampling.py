"""Drawing samples from a mixture."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

from gmm_jax import _validation
from gmm_jax._precision import float32_matmuls
from gmm_jax._params import GMMParams, check_params

__all__ = ["sample"]


def _scale_factors(params: GMMParams):
    """Per-component ``A_k`` with ``x = mu_k + z @ A_k`` for standard normal ``z``.

    From the precision factor ``U`` (``precision = U U^T``): ``A = U^{-1}``, so
    ``cov(z A) = A^T A = (U U^T)^{-1}``. Shapes: full ``(K, D, D)``; the other
    types give per-feature scales ``(K, D)``.
    """
    pc = params.precisions_cholesky
    k, d = params.n_components, params.n_features
    if params.covariance_type in ("full", "tied"):
        pc = jnp.broadcast_to(pc, (k, d, d))
        eye = jnp.broadcast_to(jnp.eye(d, dtype=pc.dtype), (k, d, d))
        return solve_triangular(pc, eye, lower=False)
    return jnp.broadcast_to((1.0 / pc).reshape(k, -1), (k, d))


@functools.partial(jax.jit, static_argnames=("n_samples",))
@float32_matmuls
def _sample(key, params, n_samples):
    label_key, noise_key = jax.random.split(key)
    labels = jax.random.categorical(label_key, jnp.log(params.weights), shape=(n_samples,))
    z = jax.random.normal(noise_key, (n_samples, params.n_features), params.means.dtype)
    scale = _scale_factors(params)[labels]
    if scale.ndim == 3:
        noise = jnp.einsum("nd,nde->ne", z, scale)
    else:
        noise = z * scale
    return params.means[labels] + noise, labels


def sample(key, params: GMMParams, n_samples: int):
    """Draws samples from the mixture.

    Args:
      key: PRNG key (``jax.random.key(seed)``).
      params: the mixture (one ``GMMParams``, not a batch).
      n_samples: number of samples (static), ``>= 1``.

    Returns:
      ``(X (n_samples, n_features), labels (n_samples,))``: the samples in
      random order and the component each was drawn from.

    Example:
      >>> import jax, jax.numpy as jnp, gmm_jax as gmm
      >>> p = gmm.GMMParams.from_covariances(jnp.array([0.25, 0.75]),
      ...     jnp.array([[0.0], [10.0]]), jnp.array([1.0, 1.0]), "spherical")
      >>> X, labels = gmm.sample(jax.random.key(0), p, 4000)
      >>> X.shape, bool(0.72 < labels.mean() < 0.78)  # about 3/4 from component 1
      ((4000, 1), True)

    Raises:
      TypeError: if ``key`` is not a single PRNG key (an integer seed, say),
        ``params`` is not a ``GMMParams`` or ``n_samples`` is not an integer.
      ValueError: if ``n_samples < 1``, ``params`` is a batch of mixtures,
        or (for concrete parameters) holds NaN/inf, negative weights or an
        invalid precision factor (possible through ``GMMParams(...)`` or
        ``.replace``, which do not validate).
    """
    key = _validation.check_key(key)
    check_params(params)
    _validation.check_params_values(params)
    n_samples = _validation.check_int(n_samples, "n_samples", 1)
    return _sample(key, params, n_samples)
