"""Bridges to the distribution libraries of the JAX ecosystem: numpyro and TensorFlow Probability.

``to_numpyro(params)`` and ``to_tfp(params)`` return that library's
``MixtureSameFamily`` of multivariate normals, whose ``log_prob`` equals
:func:`gmm_jax.log_prob`; ``from_numpyro`` and ``from_tfp`` read such a
mixture back into a ``GMMParams``. Everything stays traceable and
differentiable (a mixture can be built inside a numpyro model or a jitted
loss).

The libraries are optional: ``pip install "gmm-jax[interop]"`` installs
them (numpyro, and TensorFlow Probability's JAX substrate, for which jax
0.10 needs the ``tfp-nightly`` build). They are imported only when a bridge
is called.

Components, per covariance type:

* ``full`` / ``tied``: ``MultivariateNormal(loc, scale_tril=L)`` (numpyro),
  ``MultivariateNormalTriL`` (TFP), with ``L = U^{-T}`` from the stored
  precision factor ``U`` (one triangular solve: ``Sigma = L L^T``).
* ``diag`` / ``spherical``: independent normals, ``Independent(Normal(loc,
  scale), 1)`` (numpyro) and ``MultivariateNormalDiag(loc, scale_diag)``
  (TFP): no ``D x D`` matrix is built.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

from gmm_jax import _covariance, _validation
from gmm_jax._params import GMMParams, check_params

__all__ = ["to_numpyro", "from_numpyro", "to_tfp", "from_tfp"]

_INSTALL = 'pip install "gmm-jax[interop]"'


def _import_numpyro():
    try:
        import numpyro.distributions as dist
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(f"gmm_jax.interop.to_numpyro/from_numpyro need numpyro: {_INSTALL}") from error
    return dist


def _import_tfd():
    try:
        with warnings.catch_warnings():
            # The JAX substrate of TFP reads deprecated jax.core names at import
            # time; that is TFP's business, not the caller's.
            warnings.simplefilter("ignore", DeprecationWarning)
            from tensorflow_probability.substrates import jax as tfp

            tfd = tfp.distributions
            tfd.MixtureSameFamily  # the substrate loads lazily, on first use: load it here
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"gmm_jax.interop.to_tfp/from_tfp need TensorFlow Probability's JAX substrate: {_INSTALL}"
        ) from error
    return tfd


def _scale_tril(params: GMMParams):
    """``(K, D, D)`` lower-triangular ``L`` with ``L L^T`` the covariance: ``L = U^{-T}``."""
    k, d = params.n_components, params.n_features
    factor = jnp.broadcast_to(params.precisions_cholesky, (k, d, d))
    eye = jnp.broadcast_to(jnp.eye(d, dtype=factor.dtype), (k, d, d))
    return jnp.swapaxes(solve_triangular(factor, eye, lower=False), -1, -2)


def _scale_diag(params: GMMParams):
    """``(K, D)`` standard deviations of the ``diag`` / ``spherical`` components."""
    k, d = params.n_components, params.n_features
    return jnp.broadcast_to((1.0 / params.precisions_cholesky).reshape(k, -1), (k, d))


def _checked(params):
    check_params(params)
    if params.weights.ndim != 1:
        raise ValueError(
            f"params carry batch axes (weights of shape {params.weights.shape}); build one "
            "distribution per mixture under jax.vmap, or index the batch first."
        )
    return params


def to_numpyro(params: GMMParams):
    """The mixture as ``numpyro.distributions.MixtureSameFamily`` (log densities equal ``gmm.log_prob``).

    Example:
      >>> import jax, jax.numpy as jnp, gmm_jax as gmm
      >>> params = gmm.GMMParams.from_covariances(jnp.array([0.3, 0.7]),
      ...     jnp.array([[0.0, 0.0], [2.0, 1.0]]), jnp.array([1.0, 0.5]), "spherical")
      >>> mixture = gmm.interop.to_numpyro(params)
      >>> X = jnp.array([[0.0, 1.0], [2.0, 2.0]])
      >>> with jax.numpy_rank_promotion("allow"):   # numpyro broadcasts ranks implicitly
      ...     lp = mixture.log_prob(X)
      >>> bool(jnp.allclose(lp, gmm.log_prob(params, X)))
      True
    """
    params = _checked(params)
    dist = _import_numpyro()
    mixing = dist.Categorical(logits=jnp.log(params.weights))
    if params.covariance_type in ("full", "tied"):
        components = dist.MultivariateNormal(loc=params.means, scale_tril=_scale_tril(params))
    else:
        components = dist.Independent(dist.Normal(params.means, _scale_diag(params)), 1)
    return dist.MixtureSameFamily(mixing, components)


def to_tfp(params: GMMParams):
    """The mixture as TFP-on-JAX's ``tfd.MixtureSameFamily`` (log densities equal ``gmm.log_prob``).

    Example:
      >>> import jax, jax.numpy as jnp, gmm_jax as gmm
      >>> params = gmm.GMMParams.from_covariances(jnp.array([0.3, 0.7]),
      ...     jnp.array([[0.0, 0.0], [2.0, 1.0]]), jnp.array([1.0, 0.5]), "spherical")
      >>> mixture = gmm.interop.to_tfp(params)
      >>> X = jnp.array([[0.0, 1.0], [2.0, 2.0]])
      >>> with jax.numpy_rank_promotion("allow"):   # tfp broadcasts ranks implicitly
      ...     lp = mixture.log_prob(X)
      >>> bool(jnp.allclose(lp, gmm.log_prob(params, X)))
      True
    """
    params = _checked(params)
    tfd = _import_tfd()
    mixing = tfd.Categorical(logits=jnp.log(params.weights))
    if params.covariance_type in ("full", "tied"):
        components = tfd.MultivariateNormalTriL(loc=params.means, scale_tril=_scale_tril(params))
    else:
        components = tfd.MultivariateNormalDiag(loc=params.means, scale_diag=_scale_diag(params))
    return tfd.MixtureSameFamily(mixture_distribution=mixing, components_distribution=components)


def _from_moments(weights, means, covariances, covariance_type, source):
    """``GMMParams`` from ``(K,)`` weights, ``(K, D)`` means and ``(K, D, D)`` covariances."""
    _validation.check_covariance_type(covariance_type)
    k, d = means.shape
    if covariance_type == "full":
        reduced = covariances
    elif covariance_type == "tied":
        reduced = covariances[0]
        _require(jnp.allclose(covariances, reduced[None]), source, "tied", "the components' covariances differ")
    else:
        variances = jnp.diagonal(covariances, axis1=-2, axis2=-1)  # (K, D)
        off_diagonal = covariances * (1 - jnp.eye(d, dtype=covariances.dtype))[None]
        _require(jnp.all(off_diagonal == 0), source, covariance_type, "the covariances have off-diagonal entries")
        if covariance_type == "diag":
            reduced = variances
        else:
            reduced = variances[:, 0]
            _require(jnp.allclose(variances, reduced[:, None]), source, "spherical", "the variances differ by feature")
    factor = _covariance.precisions_cholesky_from_covariances(reduced, covariance_type)
    return GMMParams(weights, means, factor, covariance_type)


def _require(condition, source, covariance_type, why):
    if _validation.is_concrete(condition) and not bool(condition):
        raise ValueError(
            f"{source} cannot be read as covariance_type={covariance_type!r}: {why}. "
            "Choose a more general covariance_type (\"full\" always works)."
        )


def _default_type(is_diagonal):
    return "diag" if is_diagonal else "full"


def from_numpyro(mixture, covariance_type: str | None = None) -> GMMParams:
    """``GMMParams`` of a numpyro ``MixtureSameFamily`` of (multivariate) normals.

    Args:
      mixture: a ``MixtureSameFamily`` whose components are a
        ``MultivariateNormal`` or an ``Independent`` ``Normal`` with one event
        dimension (what :func:`to_numpyro` builds), with batch shape ``()``.
      covariance_type: the type to read it as; default ``"full"`` for
        multivariate normal components and ``"diag"`` for independent ones.
        ``"tied"`` and ``"spherical"`` need components that are so.

    Raises:
      TypeError: not a mixture of normals of these kinds.
      ValueError: the components do not fit ``covariance_type``.
    """
    dist = _import_numpyro()
    if not isinstance(mixture, dist.MixtureSameFamily):
        raise TypeError(f"mixture must be a numpyro MixtureSameFamily, got {type(mixture).__name__}.")
    components = mixture.component_distribution
    weights = jax.nn.softmax(mixture.mixing_distribution.logits, axis=-1)
    if isinstance(components, dist.MultivariateNormal):
        means, covariances, diagonal = components.loc, components.covariance_matrix, False
    elif (
        isinstance(components, dist.Independent)
        and isinstance(components.base_dist, dist.Normal)
        and components.reinterpreted_batch_ndims == 1
    ):
        means = components.base_dist.loc
        scale = jnp.broadcast_to(components.base_dist.scale, means.shape)
        covariances = jax.vmap(jnp.diag)(jnp.square(scale)) if means.ndim == 2 else None
        diagonal = True
    else:
        raise TypeError(
            "mixture's components must be a MultivariateNormal or Independent(Normal, 1), "
            f"got {type(components).__name__}."
        )
    return _read(weights, means, covariances, covariance_type or _default_type(diagonal), "the numpyro mixture")


def from_tfp(mixture, covariance_type: str | None = None) -> GMMParams:
    """``GMMParams`` of a TFP-on-JAX ``MixtureSameFamily`` of multivariate normals.

    Any multivariate normal components with a ``covariance()`` work
    (``MultivariateNormalTriL``, ``MultivariateNormalFullCovariance``,
    ``MultivariateNormalDiag``, ...).

    Args:
      mixture: a ``tfd.MixtureSameFamily`` with batch shape ``()``.
      covariance_type: the type to read it as; default ``"diag"`` for
        ``MultivariateNormalDiag`` components and ``"full"`` otherwise.

    Raises:
      TypeError: not a mixture of multivariate normals.
      ValueError: the components do not fit ``covariance_type``.
    """
    tfd = _import_tfd()
    if not isinstance(mixture, tfd.MixtureSameFamily):
        raise TypeError(f"mixture must be a tfd.MixtureSameFamily, got {type(mixture).__name__}.")
    components = mixture.components_distribution
    if not hasattr(components, "covariance") or len(components.event_shape) != 1:
        raise TypeError(f"mixture's components must be multivariate normals, got {type(components).__name__}.")
    weights = jax.nn.softmax(mixture.mixture_distribution.logits_parameter(), axis=-1)
    diagonal = isinstance(components, tfd.MultivariateNormalDiag)
    return _read(
        weights, components.mean(), components.covariance(), covariance_type or _default_type(diagonal), "the TFP mixture"
    )


def _read(weights, means, covariances, covariance_type, source):
    if weights.ndim != 1 or means.ndim != 2 or covariances is None or covariances.shape != (*means.shape, means.shape[1]):
        raise ValueError(
            f"{source} must hold one mixture (batch shape ()), with weights (K,), means (K, D) and "
            f"covariances (K, D, D); got weights {weights.shape} and means {means.shape}. Index the batch first."
        )
    dtype = means.dtype
    return _from_moments(weights.astype(dtype), means, covariances.astype(dtype), covariance_type, source)
