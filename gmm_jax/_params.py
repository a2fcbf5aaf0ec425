"""`GMMParams`: the immutable parameter pytree of a Gaussian mixture."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from gmm_jax import _covariance, _validation
from gmm_jax._precision import float32_matmuls

__all__ = ["GMMParams", "COVARIANCE_TYPES", "check_params", "check_params_and_data", "check_init_params"]

COVARIANCE_TYPES = _covariance.COVARIANCE_TYPES


@dataclasses.dataclass(frozen=True)
class GMMParams:
    """Parameters of a Gaussian mixture, stored as scikit-learn stores them.

    The covariance is kept as the Cholesky factor of the precision, as
    scikit-learn keeps it: the log-density of a sample is then a triangular
    matrix product, a squared norm and a sum of log-diagonals, with no
    inverse and no determinant (the README's "Design" section says where
    that math lives). The constructor does no validation: JAX calls it on
    every unflatten, under ``jit`` and ``vmap``, where the leaves are tracers
    or placeholders. Build parameters with the validated constructors
    :meth:`from_covariances`, :meth:`from_precisions` or
    :meth:`from_precisions_cholesky`.

    Attributes:
      weights: ``(n_components,)`` mixing weights, non-negative, sum to one.
      means: ``(n_components, n_features)`` component means.
      precisions_cholesky: Cholesky factors of the precision matrices, in
        scikit-learn's ``precisions_cholesky_`` shapes and meaning:
        ``full`` ``(K, D, D)`` upper-triangular ``U`` with
        ``precision = U @ U.T``; ``tied`` ``(D, D)``; ``diag`` ``(K, D)``;
        ``spherical`` ``(K,)`` (one over the standard deviation).
      covariance_type: ``"full" | "tied" | "diag" | "spherical"``. Static
        metadata, not a leaf: it decides shapes and control flow.

    Example:
      >>> import jax.numpy as jnp, gmm_jax as gmm
      >>> params = gmm.GMMParams.from_covariances(
      ...     weights=jnp.array([0.4, 0.6]),
      ...     means=jnp.array([[0.0, 0.0], [3.0, 3.0]]),
      ...     covariances=jnp.array([1.0, 0.5]),
      ...     covariance_type="spherical")
      >>> params.n_components, params.n_features
      (2, 2)
      >>> params.covariances.round(3).tolist()
      [1.0, 0.5]
    """

    weights: jax.Array  # (K,)
    means: jax.Array  # (K, D)
    precisions_cholesky: jax.Array  # shape depends on covariance_type
    covariance_type: str = dataclasses.field(default="full", metadata=dict(static=True))

    @classmethod
    def from_covariances(cls, weights, means, covariances, covariance_type: str = "full") -> GMMParams:
        """Builds parameters from covariances in scikit-learn's shapes.

        Args:
          weights: ``(K,)`` mixing weights.
          means: ``(K, D)`` component means.
          covariances: ``full`` ``(K, D, D)``, ``tied`` ``(D, D)``,
            ``diag`` ``(K, D)`` or ``spherical`` ``(K,)``; symmetric positive
            definite (positive variances).
          covariance_type: one of ``"full"``, ``"tied"``, ``"diag"``,
            ``"spherical"``.

        Returns:
          The ``GMMParams``, with the precision Cholesky factors computed once.

        Raises:
          ValueError: if the shapes disagree with each other or with the
            covariance type, or (for concrete arrays) the weights are negative
            or do not sum to one, or the covariances are not symmetric (beyond
            rounding error: ``sqrt(eps)`` of ``sqrt(C_ii C_jj)``) or not
            positive definite.

        Example:
          >>> import gmm_jax as gmm
          >>> p = gmm.GMMParams.from_covariances(
          ...     [0.5, 0.5], [[0.0, 0.0], [2.0, 2.0]], [[1.0, 0.5], [0.5, 1.0]], "tied")
          >>> p.precisions_cholesky.shape
          (2, 2)
          >>> gmm.GMMParams.from_covariances(
          ...     [0.5, 0.5], [[0.0, 0.0], [2.0, 2.0]], [[1.0, 0.5], [0.0, 1.0]], "tied")  # doctest: +ELLIPSIS
          Traceback (most recent call last):
          ...
          ValueError: covariances must be symmetric, but covariances[0, 1] = 0.5 while covariances[1, 0] = 0. ...
        """
        input_dtype = getattr(covariances, "dtype", None)
        weights, means, covariances = _validation.check_parameter_arrays(
            weights, means, covariances, covariance_type, what="covariances"
        )
        _validation.check_symmetric(covariances, covariance_type, "covariances", input_dtype=input_dtype)
        precisions_cholesky = _covariance.precisions_cholesky_from_covariances(covariances, covariance_type)
        _validation.check_finite_factor(precisions_cholesky, "covariances")
        return cls(weights, means, precisions_cholesky, covariance_type)

    @classmethod
    def from_precisions(cls, weights, means, precisions, covariance_type: str = "full") -> GMMParams:
        """Builds parameters from precisions (inverse covariances) in scikit-learn's shapes.

        These are the shapes of scikit-learn's ``precisions_init`` and
        ``precisions_``, so ``GMMParams.from_precisions(m.weights_, m.means_,
        m.precisions_, m.covariance_type)`` imports a fitted model too.

        Args:
          weights: ``(K,)`` mixing weights.
          means: ``(K, D)`` component means.
          precisions: ``full`` ``(K, D, D)``, ``tied`` ``(D, D)``, ``diag``
            ``(K, D)`` or ``spherical`` ``(K,)``; symmetric positive definite
            (positive precisions).
          covariance_type: one of ``"full"``, ``"tied"``, ``"diag"``,
            ``"spherical"``.

        Returns:
          The ``GMMParams``. The precision factor comes from one Cholesky
          factorisation of the precision itself: nothing is inverted.

        Raises:
          ValueError: as :meth:`from_covariances`, for the precisions.

        Example:
          >>> import gmm_jax as gmm
          >>> p = gmm.GMMParams.from_precisions([0.3, 0.7], [[0.0], [5.0]], [4.0, 0.25], "spherical")
          >>> p.covariances.tolist()
          [0.25, 4.0]
        """
        input_dtype = getattr(precisions, "dtype", None)
        weights, means, precisions = _validation.check_parameter_arrays(
            weights, means, precisions, covariance_type, what="precisions"
        )
        _validation.check_symmetric(precisions, covariance_type, "precisions", input_dtype=input_dtype)
        if covariance_type in ("diag", "spherical"):
            _validation.check_precisions_cholesky(precisions, covariance_type, "precisions")
        precisions_cholesky = _covariance.precisions_cholesky_from_precisions(precisions, covariance_type)
        _validation.check_finite_factor(precisions_cholesky, "precisions")
        _validation.check_precisions_cholesky(precisions_cholesky, covariance_type)
        return cls(weights, means, precisions_cholesky, covariance_type)

    @classmethod
    def from_precisions_cholesky(cls, weights, means, precisions_cholesky, covariance_type: str = "full") -> GMMParams:
        """Builds parameters from precision Cholesky factors (``precisions_cholesky_``).

        This is the form scikit-learn's fitted ``GaussianMixture`` exposes, so
        ``GMMParams.from_precisions_cholesky(m.weights_, m.means_,
        m.precisions_cholesky_, m.covariance_type)`` imports a sklearn model.

        Args:
          weights: ``(K,)`` mixing weights.
          means: ``(K, D)`` component means.
          precisions_cholesky: ``full`` ``(K, D, D)`` or ``tied`` ``(D, D)``
            upper-triangular ``U`` with ``precision = U @ U.T`` and a positive
            diagonal; ``diag`` ``(K, D)`` or ``spherical`` ``(K,)`` positive
            (one over the standard deviation).
          covariance_type: one of ``"full"``, ``"tied"``, ``"diag"``,
            ``"spherical"``.

        Returns:
          The ``GMMParams``, holding exactly these factors.

        Raises:
          ValueError: if the shapes disagree, or (for concrete arrays) the
            weights are negative or do not sum to one, or a factor is not
            finite, not upper-triangular or has a diagonal entry ``<= 0``.

        Example:
          >>> import gmm_jax as gmm
          >>> p = gmm.GMMParams.from_precisions_cholesky([1.0], [[0.0]], [2.0], "spherical")
          >>> p.covariances.tolist()
          [0.25]
        """
        weights, means, precisions_cholesky = _validation.check_parameter_arrays(
            weights, means, precisions_cholesky, covariance_type, what="precisions_cholesky"
        )
        _validation.check_precisions_cholesky(precisions_cholesky, covariance_type)
        return cls(weights, means, precisions_cholesky, covariance_type)

    @property
    @float32_matmuls
    def covariances(self) -> jax.Array:
        """Covariances in scikit-learn's shapes (computed from the precision factor)."""
        return _covariance.covariances_from_precisions_cholesky(self.precisions_cholesky, self.covariance_type)

    @property
    @float32_matmuls
    def precisions(self) -> jax.Array:
        """Precision matrices (inverse covariances) in scikit-learn's shapes."""
        return _covariance.precisions_from_precisions_cholesky(self.precisions_cholesky, self.covariance_type)

    @property
    def n_components(self) -> int:
        return self.means.shape[-2]

    @property
    def n_features(self) -> int:
        return self.means.shape[-1]

    @property
    def dtype(self):
        return self.means.dtype

    def astype(self, dtype) -> GMMParams:
        """Returns a copy with every leaf cast to ``dtype``."""
        return jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), self)

    def replace(self, **changes) -> GMMParams:
        """Returns a copy with the given fields replaced (no validation)."""
        return dataclasses.replace(self, **changes)


jax.tree_util.register_dataclass(
    GMMParams,
    data_fields=["weights", "means", "precisions_cholesky"],
    meta_fields=["covariance_type"],
)


def check_params(params, name: str = "params", allow_batch: bool = False):
    """Checks ``params`` is a ``GMMParams`` of one mixture (or, with ``allow_batch``, of leading batch axes)."""
    if not isinstance(params, GMMParams):
        raise TypeError(
            f"{name} must be a GMMParams (build one with GMMParams.from_covariances), "
            f"got {type(params).__name__}."
        )
    means_shape = getattr(params.means, "shape", None)
    if means_shape is not None and (len(means_shape) < 2 if allow_batch else len(means_shape) != 2):
        raise ValueError(
            f"{name} must be one mixture, with means of shape (n_components, n_features), got means of shape "
            f"{tuple(means_shape)}"
            + (
                f": a batch of {means_shape[0]} mixtures (from a vmapped fit). Use jax.vmap over them, or "
                f"pick one with jax.tree_util.tree_map(lambda a: a[i], {name})."
                if len(means_shape) > 2
                else "."
            )
        )
    return params


def check_params_and_data(params, X, name: str = "X", nan_policy: str = "raise", keep_host: bool = False):
    """Validates ``params`` and a data matrix whose features match them; returns ``X`` as an array.

    ``keep_host``: host data stays a NumPy array (``_validation.check_data``).
    """
    check_params(params)
    X = _validation.check_data(X, name, nan_policy=nan_policy, keep_host=keep_host)
    if X.shape[1] != params.n_features:
        raise ValueError(
            f"{name} has {X.shape[1]} features but the mixture has {params.n_features}; "
            "pass data with the same features the model was fitted on."
        )
    return X


def check_init_params(init_params, n_components, n_features, covariance_type) -> GMMParams:
    """Checks a warm start against the fit's options (type and shapes)."""
    check_params(init_params, "init_params")
    if init_params.covariance_type != covariance_type:
        raise ValueError(
            f"init_params has covariance_type={init_params.covariance_type!r} but the fit asks for "
            f"covariance_type={covariance_type!r}; they must match."
        )
    expected = {
        "weights": (n_components,),
        "means": (n_components, n_features),
        "precisions_cholesky": _covariance.expected_factor_shape(covariance_type, n_components, n_features),
    }
    for field, shape in expected.items():
        got = getattr(init_params, field).shape
        if got != shape:
            raise ValueError(
                f"init_params.{field} must have shape {shape} for n_components={n_components}, "
                f"n_features={n_features}, got {got}."
            )
    return init_params
