"""Conjugate priors and the MAP M-step (Fraley & Raftery 2007, as R's mclust computes it).

A ``ConjugatePrior`` puts on each component

* a normal prior on the mean, ``mu_k | Sigma_k ~ N(mean, Sigma_k / shrinkage)``
  (dropped when ``shrinkage == 0``, as mclust does), and
* an inverse-Wishart prior ``IW(dof, scale)`` on a full or tied covariance, or
  inverse-gamma priors ``IG(dof / 2, scale / 2)`` on each diagonal variance
  (``diag``) or on the single variance (``spherical``),

and a symmetric Dirichlet prior with concentration ``weight_concentration`` on
the weights (``1`` = no effect; mclust has no weight prior). The M-step then
returns the posterior mode (MAP) instead of the maximum-likelihood estimate:
with ``n_k``, ``xbar_k``, the scatter ``W_k = sum_i r_ik (x_i - xbar_k)(x_i -
xbar_k)^T`` and ``B_k = kappa n_k / (kappa + n_k) (xbar_k - mean)(xbar_k -
mean)^T``,

=============  =====================================================================
means          ``(n_k xbar_k + kappa mean) / (n_k + kappa)``
``full``       ``Sigma_k = (scale + W_k + B_k) / (dof + n_k + D + 2)``
``tied``       ``Sigma = (scale + sum_k W_k + sum_k B_k) / (dof + N + D + K + 1)``
``diag``       ``sigma2_kd = (scale + W_k,dd + B_k,dd) / (dof + n_k + 3)``
``spherical``  ``sigma2_k = (scale + tr W_k + tr B_k) / (dof + (n_k + 1) D + 2)``
weights        ``(n_k + alpha - 1) / (N + K (alpha - 1))``
=============  =====================================================================

These are mclust's Fortran M-steps ``msvvvp``, ``mseeep``, ``msvvip`` and
``msviip`` (mclust 6.0.0; its EM loops ``mevvvp``, ``meeeep``, ``mevvip``
use the same formulas when ``shrinkage > 0``, and the tests check that
mclust's converged fits are fixed points of this M-step). With
``shrinkage == 0`` mclust's M-steps drop the mean's prior, and with it the
``+1`` (full, diag), ``+K`` (tied) and ``+D`` (spherical) in the
denominators; so does this module (mclust's EM loop ``mevvvp`` keeps the
``+1`` for ``full`` even then; ``shrinkage == 0`` is not mclust's default).
Every denominator is the exponent of ``log det Sigma`` (or ``log sigma2``) in
the log density that :func:`log_prior` returns, so the M-step maximises
exactly the expected complete-data log-likelihood plus :func:`log_prior`,
and MAP-EM never decreases ``log-likelihood + log_prior``. (mclust's own
log-prior value for ``VII`` uses the exponent ``(dof + 3) / 2`` whatever
``D``, which is not the density its M-step maximises for ``D > 1``; that
value plays no part in mclust's BIC, which uses the plain log-likelihood at
the MAP estimate, and it is not followed here.)

The M-step works from the engine's sufficient statistics accumulated around a
``shift`` (see ``_covariance``): ``nk`` (K,), ``s1 = sum r (x - shift)``
(K, D) and ``s2`` (full/tied (K, D, D), diag/spherical (K, D)), so it plugs
into the in-memory, sharded and streamed passes unchanged. The per-type
formulas are the classes ``_Full``, ``_Tied``, ``_Diag`` and ``_Spherical``
below, chosen by the static type string.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import xlogy

from gmm_jax import _covariance, _validation

__all__ = ["ConjugatePrior", "posterior_mode", "log_prior", "check_prior"]


@dataclasses.dataclass(frozen=True)
class ConjugatePrior:
    """Conjugate prior hyperparameters of a Gaussian mixture, with mclust's names.

    An immutable pytree: every field is a leaf, so a prior passes through
    ``jit`` and ``vmap`` like the data. The constructor does no validation
    (JAX calls it on every unflatten); :meth:`create` validates, and
    :func:`gmm_jax.fit` validates the prior it receives before tracing.

    Attributes:
      mean: ``(n_features,)`` prior mean of every component mean.
      shrinkage: ``()`` kappa >= 0, the prior's weight on ``mean`` in units of
        samples; ``0`` drops the prior on the means.
      dof: ``()`` degrees of freedom nu; ``> n_features - 1``.
      scale: ``(n_features, n_features)`` inverse-Wishart scale Lambda for
        ``full``/``tied``; ``()`` inverse-gamma scale for ``diag``/``spherical``.
      weight_concentration: ``()`` alpha >= 1 of a symmetric Dirichlet prior on
        the weights; ``1`` (default) is no prior.

    Example:
      >>> import jax, gmm_jax as gmm
      >>> X = jax.random.normal(jax.random.key(0), (100, 2))
      >>> prior = gmm.ConjugatePrior.default(X, 3, "full")   # mclust's defaultPrior
      >>> round(float(prior.shrinkage), 6), float(prior.dof), prior.scale.shape
      (0.01, 4.0, (2, 2))
      >>> result = gmm.fit(jax.random.key(1), X, 3, prior=prior)
      >>> bool(result.converged)
      True
    """

    mean: jax.Array  # (D,)
    shrinkage: jax.Array  # ()
    dof: jax.Array  # ()
    scale: jax.Array  # (D, D) full/tied; () diag/spherical
    weight_concentration: jax.Array = 1.0  # ()

    @classmethod
    def create(cls, mean, shrinkage, dof, scale, weight_concentration=1.0) -> ConjugatePrior:
        """A validated prior.

        Raises:
          ValueError: wrong shapes (``mean`` not 1-D, ``scale`` neither a scalar
            nor ``(D, D)``), ``shrinkage < 0``, ``dof <= D - 1``, a scale that
            is not positive (definite), or ``weight_concentration < 1``.
        """
        prior = cls(mean, shrinkage, dof, scale, weight_concentration)
        return check_prior(prior)

    @classmethod
    def default(cls, X, n_components: int, covariance_type: str = "full", *, shrinkage: float = 0.01) -> ConjugatePrior:
        """mclust's ``defaultPrior(X, G = n_components, modelName)``.

        ``mean`` = the column means of ``X``; ``shrinkage`` = 0.01; ``dof`` =
        ``D + 2``; ``scale`` = ``var(X) / K^(2/D)`` (the sample covariance, with
        ``N - 1``) for ``full``/``tied`` -- its diagonal when ``N <= D`` -- and
        ``sum_d var(X_d) / D / K^(2/D)`` for ``diag``/``spherical``.

        Args:
          X: ``(n_samples, n_features)`` data, ``n_samples >= 2``.
          n_components: K, the number of components of the fit the prior is for.
          covariance_type: ``"full"``, ``"tied"``, ``"diag"`` or ``"spherical"``.
          shrinkage: kappa (mclust's ``priorControl(shrinkage=...)``).

        Example:
          >>> import numpy as np, gmm_jax as gmm
          >>> X = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [2.0, 4.0]])
          >>> p = gmm.ConjugatePrior.default(X, 2, "diag")
          >>> round(float(p.scale), 6)            # (4/3 + 16/3) / 2 / 2
          1.666667
        """
        X = _validation.check_data(X, min_samples=2)
        _validation.check_covariance_type(covariance_type)
        k = _validation.check_int(n_components, "n_components", 1)
        shrinkage = _validation.check_nonneg_float(shrinkage, "shrinkage")
        n_samples, n_features = X.shape
        dtype = X.dtype
        mean = jnp.mean(X, axis=0)
        centred = X - mean[None, :]
        factor = (1.0 / k) ** (2.0 / n_features)
        if covariance_type in ("full", "tied"):
            var = centred.T @ centred / (n_samples - 1)
            if n_samples <= n_features:
                var = jnp.diag(jnp.diagonal(var))
            scale = factor * var
        else:
            scale = factor * jnp.sum(centred * centred) / (n_samples - 1) / n_features
        return check_prior(
            cls(mean, jnp.asarray(shrinkage, dtype), jnp.asarray(n_features + 2.0, dtype), scale, jnp.asarray(1.0, dtype)),
            n_features,
            covariance_type,
        )

    @property
    def n_features(self) -> int:
        return jnp.shape(self.mean)[-1]

    def astype(self, dtype) -> ConjugatePrior:
        """A copy with every leaf a ``dtype`` array."""
        return jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), self)

    def replace(self, **changes) -> ConjugatePrior:
        """A copy with the given fields replaced (no validation)."""
        return dataclasses.replace(self, **changes)


jax.tree_util.register_dataclass(
    ConjugatePrior,
    data_fields=["mean", "shrinkage", "dof", "scale", "weight_concentration"],
    meta_fields=[],
)


def _concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _scalar(value, name):
    """``value`` as a float when concrete (``None`` under a trace), after checking it is a scalar."""
    if jnp.shape(value) != ():
        raise ValueError(f"prior.{name} must be a scalar, got shape {jnp.shape(value)}.")
    if not _concrete(value):
        return None
    number = float(np.asarray(value, dtype=np.float64))
    if not np.isfinite(number):
        raise ValueError(f"prior.{name} must be finite, got {number}.")
    return number


def check_prior(prior, n_features=None, covariance_type=None) -> ConjugatePrior:
    """Validates ``prior`` against the data's features and the covariance type, before tracing.

    Shapes are always checked; values (positivity, ``dof > D - 1``, a
    positive definite scale) when the leaves are concrete. ``n_features`` and
    ``covariance_type`` are optional; when given, the prior must match them (a
    ``(D, D)`` scale for ``full``/``tied``, a scalar for ``diag``/``spherical``).
    Returns the prior with every leaf a float array (the mean's dtype).
    """
    if not isinstance(prior, ConjugatePrior):
        raise TypeError(
            f"prior must be a ConjugatePrior (e.g. ConjugatePrior.default(X, n_components, covariance_type)), "
            f"got {type(prior).__name__}."
        )
    shape = jnp.shape(prior.mean)
    if len(shape) != 1 or shape[0] < 1:
        raise ValueError(f"prior.mean must have shape (n_features,), got {shape}.")
    d = shape[0]
    if n_features is not None and d != n_features:
        raise ValueError(
            f"prior.mean has {d} features but the data has {n_features}; build the prior from the same data."
        )
    if _concrete(prior.mean) and not np.all(np.isfinite(np.asarray(prior.mean, dtype=np.float64))):
        raise ValueError("prior.mean contains NaN or inf.")
    shrinkage = _scalar(prior.shrinkage, "shrinkage")
    if shrinkage is not None and shrinkage < 0:
        raise ValueError(f"prior.shrinkage must be >= 0, got {shrinkage}.")
    dof = _scalar(prior.dof, "dof")
    if dof is not None and dof <= d - 1:
        raise ValueError(f"prior.dof must be > n_features - 1 = {d - 1}, got {dof}; mclust's default is n_features + 2.")
    alpha = _scalar(prior.weight_concentration, "weight_concentration")
    if alpha is not None and alpha < 1:
        raise ValueError(
            f"prior.weight_concentration must be >= 1 (the posterior mode of the weights needs it), got {alpha}."
        )
    scale_shape = jnp.shape(prior.scale)
    if scale_shape == ():
        if covariance_type in ("full", "tied"):
            raise ValueError(
                f"prior.scale must be a ({d}, {d}) matrix for covariance_type={covariance_type!r}, got a scalar; "
                f"use ConjugatePrior.default(X, n_components, {covariance_type!r})."
            )
        scale = _scalar(prior.scale, "scale")
        if scale is not None and scale <= 0:
            raise ValueError(f"prior.scale must be a positive number, got {scale}.")
    elif scale_shape == (d, d):
        if covariance_type in ("diag", "spherical"):
            raise ValueError(
                f"prior.scale must be a scalar for covariance_type={covariance_type!r}, got shape {scale_shape}; "
                f"use ConjugatePrior.default(X, n_components, {covariance_type!r})."
            )
        if _concrete(prior.scale):
            scale = np.asarray(prior.scale, dtype=np.float64)
            if not np.all(np.isfinite(scale)) or not np.allclose(scale, scale.T, rtol=1e-6, atol=0):
                raise ValueError("prior.scale must be a finite symmetric matrix.")
            if np.linalg.eigvalsh(scale).min() <= 0:
                raise ValueError("prior.scale must be positive definite.")
    else:
        raise ValueError(f"prior.scale must be a scalar or have shape ({d}, {d}), got {scale_shape}.")
    dtype = jnp.asarray(prior.mean).dtype
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.asarray(1.0).dtype
    return prior.astype(dtype)


# ---------------------------------------------------------------------------
# Per covariance type: the posterior mode of the covariances from the pooled
# scatter ``W + B``, and the covariance part of the log prior. ``m`` is 1.0
# when the means have a prior (shrinkage > 0) and 0.0 otherwise.


def _outer(a):
    return a[..., :, None] * a[..., None, :]


class _Full:
    @staticmethod
    def scatter(s2, s1, nk_safe, c, delta):
        # W_k + B_k: (K, D, D). W = s2 - s1 s1^T / n.
        return s2 - _outer(s1) / nk_safe[:, None, None] + c[:, None, None] * _outer(delta)

    @staticmethod
    def covariances(scatter, nk, prior, m, reg_covar, on):
        d = scatter.shape[-1]
        cov = (prior.scale[None] + scatter) / (prior.dof + nk + d + 1 + m)[:, None, None]
        return cov + reg_covar * jnp.eye(d, dtype=cov.dtype)[None]

    @staticmethod
    def log_prior(params, prior, m, on):
        u = params.precisions_cholesky  # (K, D, D)
        d = u.shape[-1]
        log_det_cov = -2.0 * jnp.sum(jnp.log(_covariance.matrix_diagonal(u)), axis=-1)  # (K,)
        precision = u @ jnp.swapaxes(u, -1, -2)
        trace = jnp.sum(prior.scale[None] * precision, axis=(-2, -1))
        y = jnp.einsum("kd,kde->ke", params.means - prior.mean[None], u)
        maha = jnp.sum(y * y, axis=-1)
        return jnp.sum(on * (-0.5 * (prior.dof + d + 1 + m) * log_det_cov - 0.5 * trace - 0.5 * prior.shrinkage * maha))


class _Tied:
    scatter = staticmethod(_Full.scatter)

    @staticmethod
    def covariances(scatter, nk, prior, m, reg_covar, on):
        k, d = jnp.sum(on), scatter.shape[-1]  # the components in use
        cov = (prior.scale + jnp.sum(scatter, axis=0)) / (prior.dof + jnp.sum(nk) + d + 1 + k * m)
        return cov + reg_covar * jnp.eye(d, dtype=cov.dtype)

    @staticmethod
    def log_prior(params, prior, m, on):
        u = params.precisions_cholesky  # (D, D)
        k, d = jnp.sum(on), params.means.shape[-1]
        log_det_cov = -2.0 * jnp.sum(jnp.log(_covariance.matrix_diagonal(u)))
        trace = jnp.sum(prior.scale * (u @ u.T))
        y = (params.means - prior.mean[None]) @ u
        maha = jnp.sum(on[:, None] * y * y)
        return -0.5 * (prior.dof + d + 1 + k * m) * log_det_cov - 0.5 * trace - 0.5 * prior.shrinkage * maha


class _Diag:
    @staticmethod
    def scatter(s2, s1, nk_safe, c, delta):
        # Per feature: (K, D).
        return s2 - s1 * s1 / nk_safe[:, None] + c[:, None] * delta * delta

    @staticmethod
    def covariances(scatter, nk, prior, m, reg_covar, on):
        return (prior.scale + scatter) / (prior.dof + nk + 2 + m)[:, None] + reg_covar

    @staticmethod
    def log_prior(params, prior, m, on):
        precision = params.precisions_cholesky**2  # (K, D)
        log_var = -jnp.log(precision)
        diff = params.means - prior.mean[None]
        return jnp.sum(
            on[:, None]
            * (-0.5 * (prior.dof + 2 + m) * log_var - 0.5 * (prior.scale + prior.shrinkage * diff * diff) * precision)
        )


class _Spherical:
    @staticmethod
    def scatter(s2, s1, nk_safe, c, delta):
        # Traces: (K,).
        return jnp.sum(_Diag.scatter(s2, s1, nk_safe, c, delta), axis=-1)

    @staticmethod
    def covariances(scatter, nk, prior, m, reg_covar, on):
        d = prior.mean.shape[-1]
        return (prior.scale + scatter) / (prior.dof + nk * d + 2 + d * m) + reg_covar

    @staticmethod
    def log_prior(params, prior, m, on):
        precision = params.precisions_cholesky**2  # (K,)
        d = params.means.shape[-1]
        diff = params.means - prior.mean[None]
        dist = jnp.sum(diff * diff, axis=-1)
        return jnp.sum(
            on
            * (
                -0.5 * (prior.dof + 2 + d * m) * (-jnp.log(precision))
                - 0.5 * (prior.scale + prior.shrinkage * dist) * precision
            )
        )


_RULES = {"full": _Full, "tied": _Tied, "diag": _Diag, "spherical": _Spherical}


def _rule(covariance_type):
    _covariance.covariance_model(covariance_type)  # raises the usual error for an unknown type
    return _RULES[covariance_type]


def posterior_mode(nk, s1, s2, shift, covariance_type: str, reg_covar, prior: ConjugatePrior, active=None):
    """The MAP M-step: weights, means and covariances from sufficient statistics.

    Args:
      nk: ``(K,)`` responsibility mass of each component.
      s1: ``(K, D)`` ``sum_n r_nk (x_n - shift_k)``.
      s2: second moments around ``shift``: ``full``/``tied`` ``(K, D, D)``,
        ``diag``/``spherical`` ``(K, D)`` (per feature).
      shift: ``(K, D)`` the point the moments were accumulated around.
      covariance_type: static type string.
      reg_covar: added to the diagonal of the posterior-mode covariances.
      prior: the ``ConjugatePrior`` (in the same coordinates as ``shift``).
      active: optional ``(K,)`` bool, the components in use (model
        selection); the others get weight 0 and do not count in the
        Dirichlet normaliser or the pooled (tied) covariance.

    Returns:
      ``(weights (K,), means (K, D), covariances)`` with covariances in
      scikit-learn's shapes. A component with no mass gets the prior's mode
      (mean ``prior.mean``, covariance from ``prior.scale`` alone) when
      ``shrinkage > 0``.

    Example:
      >>> import jax.numpy as jnp
      >>> from gmm_jax._prior import ConjugatePrior, posterior_mode
      >>> prior = ConjugatePrior(jnp.zeros(1), 1.0, 3.0, 2.0)
      >>> # one component, 4 points 0, 0, 2, 2 (mean 1, scatter 4) around shift 0
      >>> w, mu, var = posterior_mode(jnp.array([4.0]), jnp.array([[4.0]]), jnp.array([[8.0]]),
      ...                             jnp.zeros((1, 1)), "diag", 0.0, prior)
      >>> round(float(mu[0, 0]), 6), round(float(var[0, 0]), 6)   # 4/(4+1);  (2 + 4 + 4/5)/(3 + 4 + 3)
      (0.8, 0.68)
    """
    rule = _rule(covariance_type)
    dtype = s1.dtype
    prior = prior.astype(dtype)
    eps = jnp.finfo(dtype).eps
    on = _in_use(active, nk.shape[0], dtype)
    n_components = jnp.sum(on)
    kappa, alpha = prior.shrinkage, prior.weight_concentration
    m = (kappa > 0).astype(dtype)
    # 10 eps, as the ML M-step: a component with no mass (and no prior on its
    # mean) divides safely.
    nk_safe = nk + 10 * eps
    # Means: shift + (s1 + kappa (mean - shift)) / (n + kappa), i.e. the
    # prior-weighted average of xbar and the prior mean, without forming the
    # raw first moment (float32 accuracy, see _covariance).
    to_prior = prior.mean[None, :] - shift
    means = shift + (s1 + kappa * to_prior) / (nk_safe + kappa)[:, None]
    delta = s1 / nk_safe[:, None] - to_prior  # xbar - prior mean
    c = kappa * nk / (kappa + nk_safe)
    scatter = rule.scatter(s2, s1, nk_safe, c, delta)
    covariances = rule.covariances(scatter, nk, prior, m, reg_covar, on)
    weights = on * (nk + alpha - 1) / (jnp.sum(nk) + n_components * (alpha - 1))
    return weights, means, covariances


def _in_use(active, n_components, dtype):
    """``(K,)`` 1.0 for the components in use, 0.0 for those switched off."""
    return jnp.ones(n_components, dtype) if active is None else jnp.asarray(active).astype(dtype)


def log_prior(params, prior: ConjugatePrior, active=None) -> jax.Array:
    """Log density of ``prior`` at ``params``, up to a constant that depends only on the prior.

    ``log p(weights) + sum_k log p(mean_k, Sigma_k)``, with the exponents the
    MAP M-step (:func:`posterior_mode`) maximises; MAP-EM never decreases
    ``sum_n log p(x_n | params) + log_prior(params, prior)``.

    Args:
      params: a ``GMMParams`` (any covariance type).
      prior: a ``ConjugatePrior`` in the same coordinates.
      active: optional ``(K,)`` bool: only these components are in the model
        (model selection switches the others off).

    Returns:
      ``()`` the log prior density (minus its normalising constant).

    Example:
      >>> import jax.numpy as jnp, gmm_jax as gmm
      >>> from gmm_jax._prior import log_prior
      >>> prior = gmm.ConjugatePrior(jnp.zeros(2), 0.0, 4.0, 1.0)
      >>> near = gmm.GMMParams.from_covariances(jnp.ones(1), jnp.zeros((1, 2)), jnp.array([0.2]), "spherical")
      >>> far = gmm.GMMParams.from_covariances(jnp.ones(1), jnp.zeros((1, 2)), jnp.array([5.0]), "spherical")
      >>> bool(log_prior(near, prior) > log_prior(far, prior))   # the mode is scale / (dof + 2) = 1/6
      True
    """
    rule = _rule(params.covariance_type)
    dtype = params.means.dtype
    prior = prior.astype(dtype)
    m = (prior.shrinkage > 0).astype(dtype)
    on = _in_use(active, params.weights.shape[0], dtype)
    weights_term = jnp.sum(on * xlogy(prior.weight_concentration - 1, jnp.where(on > 0, params.weights, 1.0)))
    return weights_term + rule.log_prior(params, prior, m, on)

