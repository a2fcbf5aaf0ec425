"""Densities, responsibilities, labels and information criteria of a fitted mixture."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from gmm_jax import _covariance, _sharding, _validation
from gmm_jax._precision import float32_matmuls
from gmm_jax._params import GMMParams

__all__ = ["log_prob", "predict_proba", "predict", "score", "n_parameters", "bic", "aic"]


def weighted_log_prob(params: GMMParams, X: jax.Array) -> jax.Array:
    """``log w_k + log N(x_n | mu_k, Sigma_k)`` for every sample and component: ``(N, K)``.

    Traceable; no validation. The building block of the E-step.
    """
    log_gauss = _covariance.log_gaussian_prob(X, params.means, params.precisions_cholesky, params.covariance_type)
    # A component with zero weight contributes -inf, which logsumexp handles.
    return log_gauss + jnp.log(params.weights)[None, :]


def centred_weighted_log_prob(params: GMMParams, X: jax.Array) -> jax.Array:
    """``weighted_log_prob`` evaluated in coordinates centred at the mixture's mean.

    Densities only depend on ``x - mu_k``; shifting data and means by the same
    point changes nothing mathematically but keeps float32 digits on data far
    from the origin (``X + 1e4``), where ``X @ U - mu @ U`` would cancel.
    """
    center = jax.lax.stop_gradient(params.weights @ params.means)  # (D,)
    return weighted_log_prob(params.replace(means=params.means - center[None, :]), X - center[None, :])


@jax.jit
@float32_matmuls
def _log_prob(params, X):
    return jax.nn.logsumexp(centred_weighted_log_prob(params, X), axis=1)


@jax.jit
@float32_matmuls
def _log_resp(params, X):
    wlp = centred_weighted_log_prob(params, X)
    return wlp - jax.nn.logsumexp(wlp, axis=1, keepdims=True)


def log_prob(params: GMMParams, X) -> jax.Array:
    """Log density of each sample under the mixture (scikit-learn's ``score_samples``).

    Args:
      params: the mixture.
      X: ``(n_samples, n_features)`` data.

    Returns:
      ``(n_samples,)`` log densities.

    Example:
      >>> import jax.numpy as jnp, gmm_jax as gmm
      >>> p = gmm.GMMParams.from_covariances(jnp.array([1.0]), jnp.zeros((1, 2)),
      ...                                    jnp.array([1.0]), "spherical")
      >>> float(gmm.log_prob(p, jnp.zeros((1, 2)))[0])  # -log(2 pi)
      -1.8378770664093453
    """
    X = _validation.check_params_and_data(params, X)
    return _log_prob(params.astype(X.dtype), X)


def predict_proba(params: GMMParams, X) -> jax.Array:
    """Posterior probability of each component for each sample: ``(n_samples, n_components)``.

    Example:
      >>> import jax.numpy as jnp, gmm_jax as gmm
      >>> p = gmm.GMMParams.from_covariances(jnp.array([0.5, 0.5]),
      ...     jnp.array([[-5.0], [5.0]]), jnp.array([1.0, 1.0]), "spherical")
      >>> gmm.predict_proba(p, jnp.array([[-5.0], [0.0]])).round(3).tolist()
      [[1.0, 0.0], [0.5, 0.5]]
    """
    X = _validation.check_params_and_data(params, X)
    return jnp.exp(_log_resp(params.astype(X.dtype), X))


def predict(params: GMMParams, X) -> jax.Array:
    """Most probable component of each sample: ``(n_samples,)`` integer labels.

    Example:
      >>> import jax.numpy as jnp, gmm_jax as gmm
      >>> p = gmm.GMMParams.from_covariances(jnp.array([0.5, 0.5]),
      ...     jnp.array([[-5.0], [5.0]]), jnp.array([1.0, 1.0]), "spherical")
      >>> gmm.predict(p, jnp.array([[-4.0], [6.0]])).tolist()
      [0, 1]
    """
    X = _validation.check_params_and_data(params, X)
    return jnp.argmax(_log_resp(params.astype(X.dtype), X), axis=1)


def score(params: GMMParams, X, sample_weight=None) -> jax.Array:
    """Mean log density of the samples (weighted mean when ``sample_weight`` is given).

    Example:
      >>> import jax.numpy as jnp, gmm_jax as gmm
      >>> p = gmm.GMMParams.from_covariances(jnp.array([1.0]), jnp.zeros((1, 1)),
      ...                                    jnp.array([1.0]), "spherical")
      >>> round(float(gmm.score(p, jnp.array([[-1.0], [1.0]]))), 4)  # -0.5 log(2 pi) - 0.5
      -1.4189
    """
    X = _validation.check_params_and_data(params, X)
    # Weights split like the rows of a sharded X (default ones included).
    w = _validation.check_sample_weight(_sharding.rows_like(X, sample_weight), X.shape[0], X.dtype)
    lp = _log_prob(params.astype(X.dtype), X)
    return jnp.sum(w * lp) / jnp.sum(w)


def n_parameters(params: GMMParams) -> int:
    """Number of free parameters: weights (K - 1), means (K D) and covariances.

    Example:
      >>> import jax.numpy as jnp, gmm_jax as gmm
      >>> p = gmm.GMMParams.from_covariances(jnp.full(3, 1 / 3), jnp.zeros((3, 2)),
      ...                                    jnp.ones(3), "spherical")
      >>> gmm.n_parameters(p)  # 2 weights + 6 mean entries + 3 variances
      11
    """
    _validation.check_params(params)
    k, d = params.n_components, params.n_features
    return (k - 1) + k * d + _covariance.n_covariance_parameters(params.covariance_type, k, d)


def bic(params: GMMParams, X) -> jax.Array:
    """Bayesian information criterion on ``X`` (lower is better), as scikit-learn defines it.

    ``-2 * N * score + n_parameters * log(N)``.

    Example:
      >>> import jax, gmm_jax as gmm
      >>> X = jax.random.normal(jax.random.key(0), (200, 2))
      >>> p1 = gmm.fit(jax.random.key(1), X, 1).params
      >>> p4 = gmm.fit(jax.random.key(1), X, 4).params
      >>> bool(gmm.bic(p1, X) < gmm.bic(p4, X))  # one Gaussian explains Gaussian data best
      True
    """
    X = _validation.check_params_and_data(params, X)
    n = X.shape[0]
    return -2.0 * score(params, X) * n + n_parameters(params) * math.log(n)


def aic(params: GMMParams, X) -> jax.Array:
    """Akaike information criterion on ``X`` (lower is better): ``-2 N score + 2 n_parameters``.

    Example:
      >>> import jax, gmm_jax as gmm
      >>> X = jax.random.normal(jax.random.key(0), (200, 2))
      >>> p = gmm.fit(jax.random.key(1), X, 2).params
      >>> bool(gmm.aic(p, X) < gmm.bic(p, X))  # log(200) > 2 per parameter
      True
    """
    X = _validation.check_params_and_data(params, X)
    return -2.0 * score(params, X) * X.shape[0] + 2 * n_parameters(params)
