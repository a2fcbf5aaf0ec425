"""gmm_jax: Gaussian mixture models fitted by EM in JAX.

A pure-functional core (an immutable ``GMMParams`` pytree, jit-compiled EM
whose loop is a ``lax.while_loop`` that stops at convergence, restarts under
``vmap``) that runs unchanged on CPU and GPU, and composes with ``jit``,
``vmap``, ``grad`` (derivatives through a ``custom_jvp``) and sharding.

Example:
  >>> import jax, gmm_jax as gmm
  >>> truth = gmm.GMMParams.from_covariances(
  ...     weights=jax.numpy.array([0.5, 0.2, 0.3]),
  ...     means=jax.numpy.array([[-1.0, -1.0], [1.0, -1.5], [0.0, 2.0]]),
  ...     covariances=jax.numpy.full(3, 0.3), covariance_type="spherical")
  >>> X, labels = gmm.sample(jax.random.key(1), truth, 500)
  >>> result = gmm.fit(jax.random.key(2), X, 3, n_init=4)
  >>> accuracy, _ = gmm.metrics.clustering_accuracy(labels, gmm.predict(result.params, X))
  >>> accuracy > 0.9
  True
"""

from importlib import metadata as _metadata

from gmm_jax import distributed, interop, metrics
from gmm_jax._cache import enable_compilation_cache
from gmm_jax._driver import ConvergenceWarning
from gmm_jax._em import FitResult, SufficientStatistics, e_step, m_step
from gmm_jax._fit import fit
from gmm_jax._gradient import GradientFitResult, fit_gradient
from gmm_jax._init import kmeans
from gmm_jax._io import load, save
from gmm_jax._likelihood import aic, bic, log_prob, n_parameters, predict, predict_proba, score
from gmm_jax._missing import impute
from gmm_jax._online import OnlineFitResult, OnlineState, fit_online
from gmm_jax._params import COVARIANCE_TYPES, GMMParams
from gmm_jax._prior import ConjugatePrior
from gmm_jax._sampling import sample
from gmm_jax._select import SelectionResult, select
from gmm_jax._stream import fit_stream
from gmm_jax._unconstrained import UnconstrainedParams, from_unconstrained, to_unconstrained

try:
    __version__ = _metadata.version("gmm-jax")
except _metadata.PackageNotFoundError:  # a source checkout never installed
    __version__ = "0.1.0"


def __getattr__(name):
    # `gmm.plot` is imported on first use, so `import gmm_jax` stays free of
    # matplotlib (slow to import, and unused by code that only fits).
    if name == "plot":
        import importlib

        return importlib.import_module("gmm_jax.plot")
    if name == "GaussianMixture":
        # The scikit-learn estimator; scikit-learn is an optional dependency,
        # imported only here (pip install "gmm-jax[sklearn]").
        from gmm_jax.sklearn import GaussianMixture

        return GaussianMixture
    raise AttributeError(f"module 'gmm_jax' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), "plot", "GaussianMixture"})  # tab completion offers the lazy names


__all__ = [
    "COVARIANCE_TYPES",
    "ConjugatePrior",
    "ConvergenceWarning",
    "FitResult",
    "GMMParams",
    "GradientFitResult",
    "SufficientStatistics",
    "UnconstrainedParams",
    "aic",
    "bic",
    "distributed",
    "e_step",
    "enable_compilation_cache",
    "fit",
    "fit_gradient",
    "fit_online",
    "fit_stream",
    "impute",
    "from_unconstrained",
    "interop",
    "kmeans",
    "load",
    "log_prob",
    "m_step",
    "metrics",
    "n_parameters",
    "OnlineFitResult",
    "OnlineState",
    "plot",
    "predict",
    "predict_proba",
    "sample",
    "save",
    "score",
    "select",
    "SelectionResult",
    "to_unconstrained",
]
