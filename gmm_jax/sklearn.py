"""A scikit-learn estimator over gmm_jax: ``GaussianMixture``.

The drop-in replacement for :class:`sklearn.mixture.GaussianMixture`: the same
constructor, fitted attributes and methods, so it goes into a ``Pipeline``,
``GridSearchCV``, ``clone`` or ``pickle`` unchanged, while every fit, score
and sample runs through gmm_jax's compiled engine (``gmm.fit``,
``gmm.log_prob``, ``gmm.sample``, ...). It is a thin layer: it validates the
arguments as scikit-learn does, turns ``random_state`` into a JAX key, calls
the engine, and stores the result as numpy arrays. It holds no numerical code
of its own.

scikit-learn is not a dependency of gmm_jax; install it with
``pip install "gmm-jax[sklearn]"``. This module is imported on first use of
``gmm_jax.GaussianMixture`` (``import gmm_jax`` never imports scikit-learn).

Example:
  >>> import numpy as np
  >>> from gmm_jax.sklearn import GaussianMixture
  >>> rng = np.random.default_rng(0)
  >>> X = np.concatenate([rng.normal(-4, 1, (100, 2)), rng.normal(4, 1, (100, 2))])
  >>> model = GaussianMixture(n_components=2, random_state=0).fit(X)
  >>> sorted(model.means_[:, 0].round().tolist()), model.converged_
  ([-4.0, 4.0], True)
"""

from __future__ import annotations

import numbers
import time
import warnings

import jax
import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as _SklearnGaussianMixture
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

import gmm_jax as gmm
from gmm_jax import _covariance, _validation
from gmm_jax._driver import restart_keys
from gmm_jax._precision import MATMUL_PRECISIONS

__all__ = ["GaussianMixture"]

_NOT_CONVERGED = (
    "Best performing initialization did not converge. Try different init parameters, "
    "or increase max_iter, tol, or check for degenerate data."
)


def _check_shape(array, shape, name):
    if array.shape != shape:
        raise ValueError(f"The parameter '{name}' should have the shape of {shape}, but got {array.shape}")


def _check_weights(weights, n_components):
    weights = check_array(weights, dtype=[np.float64, np.float32], ensure_2d=False)
    _check_shape(weights, (n_components,), "weights")
    if np.any(weights < 0.0) or np.any(weights > 1.0):
        # scikit-learn's message, whose two numbers are named the other way round.
        raise ValueError(
            "The parameter 'weights' should be in the range [0, 1], but got "
            f"max value {np.min(weights):.5f}, min value {np.max(weights):.5f}"
        )
    atol = 1e-6 if weights.dtype == np.float32 else 1e-8
    if not np.allclose(abs(1.0 - np.sum(weights)), 0.0, atol=atol):
        raise ValueError(f"The parameter 'weights' should be normalized, but got sum(weights) = {np.sum(weights):.5f}")
    return weights


def _check_means(means, n_components, n_features):
    means = check_array(means, dtype=[np.float64, np.float32], ensure_2d=False)
    _check_shape(means, (n_components, n_features), "means")
    return means


def _check_precisions(precisions, covariance_type, n_components, n_features):
    precisions = check_array(
        precisions, dtype=[np.float64, np.float32], ensure_2d=False, allow_nd=covariance_type == "full"
    )
    shapes = {
        "full": (n_components, n_features, n_features),
        "tied": (n_features, n_features),
        "diag": (n_components, n_features),
        "spherical": (n_components,),
    }
    _check_shape(precisions, shapes[covariance_type], f"{covariance_type} precision")
    if covariance_type in ("full", "tied"):
        matrices = precisions.reshape((-1, n_features, n_features))
        symmetric = np.allclose(matrices, np.swapaxes(matrices, -1, -2))
        if not (symmetric and np.all(np.linalg.eigvalsh(matrices) > 0.0)):
            raise ValueError(f"'{covariance_type} precision' should be symmetric, positive-definite")
    elif np.any(precisions <= 0.0):
        raise ValueError(f"'{covariance_type} precision' should be positive")
    return precisions


def _jax_key(random_state):
    """A JAX key from scikit-learn's ``random_state`` (an int, a RandomState or None)."""
    if isinstance(random_state, numbers.Integral):
        seed = int(random_state)
    else:  # draws from the RandomState (or numpy's global one for None), as sklearn does
        seed = int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
    return jax.random.key(np.uint32(seed))


class GaussianMixture(DensityMixin, BaseEstimator):
    """Gaussian mixture fitted by EM in JAX, with scikit-learn's interface.

    Same parameters, attributes and methods as
    :class:`sklearn.mixture.GaussianMixture`; the work runs in gmm_jax's
    compiled engine (:func:`gmm_jax.fit` and the scoring functions), on CPU
    or GPU. Restarts (``n_init``) run together in one compiled call.

    Differences from scikit-learn, all on purpose:

    * ``random_state`` seeds a JAX key, so the same seed gives a different
      (equally valid) start than scikit-learn's ``KMeans`` would. An int seeds
      the key directly; a ``RandomState`` or ``None`` draws the seed from it.
    * ``fit`` takes ``sample_weight`` (an integer weight counts a row that
      many times).
    * float32 input is fitted in float32 and float64 in float64; float64
      needs ``jax.config.update("jax_enable_x64", True)``, otherwise JAX
      computes in float32.
    * ``verbose`` prints scikit-learn's lines after each compiled fit (EM
      runs inside one compiled loop); the ``time lapse`` of an iteration line
      is the fit's wall time shared evenly among its iterations. With
      ``n_init > 1`` the restarts run together and the lines are those of the
      best one.
    * With a partial start (some of ``weights_init``, ``means_init``,
      ``precisions_init``), the missing parameters come from ``init_params``'s
      start (as scikit-learn) for each restart; with all three given, the
      restarts would be identical and one fit runs.

    Args:
      n_components: number of mixture components.
      covariance_type: ``"full"``, ``"tied"``, ``"diag"`` or ``"spherical"``.
      tol: convergence threshold on the change of the mean per-sample
        log-likelihood (the lower bound).
      reg_covar: non-negative value added to the diagonal of the covariances.
      max_iter: maximum number of EM iterations; ``0`` stores the start.
      n_init: number of restarts; the best final lower bound is kept.
      init_params: ``"kmeans"``, ``"k-means++"``, ``"random"``,
        ``"random_from_data"`` or ``"hierarchical"`` (as in
        :func:`gmm_jax.fit`'s ``init``).
      weights_init: ``(n_components,)`` starting weights, or None.
      means_init: ``(n_components, n_features)`` starting means, or None.
      precisions_init: starting precisions (inverse covariances) in
        scikit-learn's shapes — ``full`` ``(n_components, n_features,
        n_features)``, ``tied`` ``(n_features, n_features)``, ``diag``
        ``(n_components, n_features)``, ``spherical`` ``(n_components,)`` —
        or None.
      random_state: int, ``numpy.random.RandomState`` or None: the source of
        the JAX key for the start and for :meth:`sample`.
      warm_start: if True, each ``fit`` after the first starts from the
        previous solution (one start, ``n_init`` ignored) and measures its
        first change against the previous ``lower_bound_``, so a fit resumed
        at convergence converges on its first iteration.
      verbose: ``0`` silent, ``1`` one line per restart and iteration,
        ``2`` with times and log-likelihood changes.
      verbose_interval: iterations between two printed lines.
      chunk_size: rows per chunk in each pass of the engine (bounds memory
        for large data); None chooses one (:func:`gmm_jax.fit`).
      matmul_precision: the arithmetic of the engine's matrix products in
        ``fit`` and in every scoring method: None (full float32 unless
        ``jax.default_matmul_precision`` chose otherwise), ``"float32"``,
        ``"bf16_3x"`` or ``"tf32"`` (as in :func:`gmm_jax.fit`; the last two
        are faster on GPUs and less accurate).

    Attributes:
      weights_: ``(n_components,)`` mixing weights.
      means_: ``(n_components, n_features)`` component means.
      covariances_: covariances in scikit-learn's shapes (as
        ``precisions_init``).
      precisions_: precision matrices, the inverses of ``covariances_``.
      precisions_cholesky_: Cholesky factors of the precisions
        (``precision = U @ U.T``), scikit-learn's shapes.
      converged_: whether the best restart converged before ``max_iter``.
      n_iter_: EM iterations the best restart ran.
      lower_bound_: mean log-likelihood at the last E-step of the best
        restart (``-inf`` when ``max_iter == 0``).
      lower_bounds_: list of the best restart's lower bound at every
        iteration.
      n_features_in_: number of features seen in ``fit``.
      feature_names_in_: ``(n_features_in_,)`` column names, when ``X`` had
        string column names (a pandas DataFrame).
      params_: the fitted :class:`gmm_jax.GMMParams` (JAX arrays), for the
        functional API (``gmm.log_prob(model.params_, X)``, ``jax.vmap``...).

    Example:
      >>> import numpy as np
      >>> from gmm_jax.sklearn import GaussianMixture
      >>> X = np.random.default_rng(0).normal(size=(300, 2)) * [1.0, 3.0]
      >>> model = GaussianMixture(n_components=1, covariance_type="diag", random_state=0).fit(X)
      >>> model.covariances_.round(0).tolist()
      [[1.0, 9.0]]
      >>> model.predict(X[:3]).tolist(), model.score_samples(X[:3]).shape
      ([0, 0, 0], (3,))
    """

    _parameter_constraints: dict = {
        **_SklearnGaussianMixture._parameter_constraints,
        "init_params": [StrOptions(set(_validation.INITS))],  # scikit-learn's four and mclust's "hierarchical"
        "chunk_size": [numbers.Integral, None],
        "matmul_precision": [StrOptions(set(MATMUL_PRECISIONS)), None],
    }

    def __init__(
        self,
        n_components=1,
        *,
        covariance_type="full",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weights_init=None,
        means_init=None,
        precisions_init=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
        chunk_size=None,
        matmul_precision=None,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.chunk_size = chunk_size
        self.matmul_precision = matmul_precision

    # ------------------------------------------------------------------
    # Fitting

    def fit(self, X, y=None, sample_weight=None):
        """Fits the mixture to ``X`` by EM (``n_init`` restarts, best kept).

        Args:
          X: ``(n_samples, n_features)`` array-like.
          y: ignored.
          sample_weight: optional ``(n_samples,)`` non-negative weights.

        Returns:
          self, fitted.

        Raises:
          ValueError: bad parameters or data (scikit-learn's messages), or a
            fit in which every restart met a singular covariance (increase
            ``reg_covar``).

        Warns:
          sklearn.exceptions.ConvergenceWarning: the best restart did not
            converge within ``max_iter`` iterations.
        """
        self._validate_params()
        X = validate_data(self, X, dtype=[np.float64, np.float32], ensure_min_samples=2)
        n_samples, n_features = X.shape
        if n_samples < self.n_components:
            raise ValueError(
                "Expected n_samples >= n_components "
                f"but got n_components = {self.n_components}, n_samples = {n_samples}"
            )
        if sample_weight is not None:
            sample_weight = check_array(sample_weight, ensure_2d=False, dtype=X.dtype, input_name="sample_weight")
        options = dict(
            covariance_type=self.covariance_type, init=self.init_params, max_iter=self.max_iter, tol=self.tol,
            reg_covar=self.reg_covar, sample_weight=sample_weight, chunk_size=self.chunk_size,
            matmul_precision=self.matmul_precision,
        )  # fmt: skip
        warm = self.warm_start and hasattr(self, "converged_")
        key = None if warm else _jax_key(self.random_state)
        bound = None
        started = time.perf_counter()
        # gmm.fit warns in its own words; this estimator warns once, in scikit-learn's.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", gmm.ConvergenceWarning)
            if warm:
                bound = self.lower_bound_ if np.isfinite(self.lower_bound_) else None
                runs = [self._fit_from(jax.random.key(0), X, self.params_.astype(X.dtype), bound, options)]
            else:
                runs = self._fit_restarts(key, X, n_features, options)
        seconds = time.perf_counter() - started
        best = max(range(len(runs)), key=lambda r: float(runs[r].lower_bound))
        if self.verbose:
            together = len(runs) == 1 and self.n_init > 1 and not warm
            for r, result in enumerate(runs):
                restarts = f"0 to {self.n_init - 1} (fitted together; the best one's lines)" if together else f"{r}"
                self._print_verbose(restarts, result, seconds / len(runs), bound)
        self._store(runs[best])
        if not self.converged_ and self.max_iter > 0:
            warnings.warn(_NOT_CONVERGED, ConvergenceWarning)
        return self

    def _fit_from(self, key, X, start, bound, options):
        return gmm.fit(key, X, self.n_components, n_init=1, init_params=start, init_lower_bound=bound, **options)

    def _fit_restarts(self, key, X, n_features, options):
        """Fits from the given or the ``init_params`` starts; a list of FitResults."""
        given = self._given_start(n_features, X.dtype)
        if given is None:
            return [gmm.fit(key, X, self.n_components, n_init=self.n_init, **options)]
        weights, means, factor = given
        if weights is not None and means is not None and factor is not None:
            start = gmm.GMMParams.from_precisions_cholesky(weights, means, factor, self.covariance_type)
            return [self._fit_from(key, X, start, None, options)]
        # A partial start: each restart takes the engine's start (max_iter=0
        # returns it) and replaces the given fields.
        start_options = {**options, "max_iter": 0}
        runs = []
        for restart_key in restart_keys(key, self.n_init):  # the engine's nested restarts
            start = gmm.fit(restart_key, X, self.n_components, **start_options).params
            changes = dict(weights=weights, means=means, precisions_cholesky=factor)
            start = start.replace(**{name: jax.numpy.asarray(v) for name, v in changes.items() if v is not None})
            runs.append(self._fit_from(restart_key, X, start, None, options))
        return runs

    def _given_start(self, n_features, dtype):
        """The checked ``*_init`` arrays in X's dtype (None for those not given), or None."""
        if self.weights_init is None and self.means_init is None and self.precisions_init is None:
            return None
        k = self.n_components
        weights = None if self.weights_init is None else _check_weights(self.weights_init, k).astype(dtype)
        means = None if self.means_init is None else _check_means(self.means_init, k, n_features).astype(dtype)
        factor = None
        if self.precisions_init is not None:
            precisions = _check_precisions(self.precisions_init, self.covariance_type, k, n_features)
            factor = np.asarray(_covariance.precisions_cholesky_from_precisions(precisions.astype(dtype),
                                                                                self.covariance_type))
        return weights, means, factor

    def _store(self, result):
        params = result.params
        n_iter = int(result.n_iter)
        self.params_ = params
        self.weights_ = np.asarray(params.weights)
        self.means_ = np.asarray(params.means)
        self.covariances_ = np.asarray(params.covariances)
        self.precisions_ = np.asarray(params.precisions)
        self.precisions_cholesky_ = np.asarray(params.precisions_cholesky)
        self.converged_ = bool(result.converged)
        self.n_iter_ = n_iter
        # scikit-learn leaves the bound at -inf when no iteration ran.
        self.lower_bound_ = float(result.lower_bound) if self.max_iter > 0 else -np.inf
        self.lower_bounds_ = np.asarray(result.log_likelihood[:n_iter]).tolist()

    def _print_verbose(self, restarts, result, seconds, previous):
        """scikit-learn's verbose lines for one compiled fit (printed after it ran)."""
        print(f"Initialization {restarts}")
        n_iter = int(result.n_iter)
        trace = np.asarray(result.log_likelihood[:n_iter], dtype=float)
        per_iteration = seconds / max(n_iter, 1)
        changes = np.diff(trace, prepend=-np.inf if previous is None else previous)
        for i in range(self.verbose_interval, n_iter + 1, self.verbose_interval):
            if self.verbose == 1:
                print(f"  Iteration {i}")
            else:
                print(
                    f"  Iteration {i}\t time lapse {per_iteration * self.verbose_interval:.5f}s\t "
                    f"ll change {changes[i - 1]:.5f}"
                )
        if self.max_iter == 0:
            return
        message = "converged" if bool(result.converged) else "did not converge"
        if self.verbose == 1:
            print(f"Initialization {message}.")
        else:
            print(f"Initialization {message}. time lapse {seconds:.5f}s\t lower bound {float(result.lower_bound):.5f}.")

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fits the mixture and returns the most probable component of each row of ``X``.

        The same as ``fit(X).predict(X)``.

        Returns:
          ``(n_samples,)`` integer labels.
        """
        return self.fit(X, sample_weight=sample_weight).predict(X)

    # ------------------------------------------------------------------
    # Using a fitted mixture

    def _model_and_data(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        # The wider of the data's and the model's precision, as numpy would compute.
        return self.params_, X.astype(np.result_type(X.dtype, self.params_.dtype), copy=False)

    def score_samples(self, X):
        """Log density of each row of ``X`` under the mixture: ``(n_samples,)``."""
        return np.asarray(gmm.log_prob(*self._model_and_data(X), matmul_precision=self.matmul_precision))

    def score(self, X, y=None):
        """Mean log density of the rows of ``X`` (a float; higher is better)."""
        return float(gmm.score(*self._model_and_data(X), matmul_precision=self.matmul_precision))

    def predict(self, X):
        """Most probable component of each row of ``X``: ``(n_samples,)`` integer labels."""
        return np.asarray(gmm.predict(*self._model_and_data(X), matmul_precision=self.matmul_precision)).astype(np.intp)

    def predict_proba(self, X):
        """Posterior probability of each component for each row: ``(n_samples, n_components)``."""
        return np.asarray(gmm.predict_proba(*self._model_and_data(X), matmul_precision=self.matmul_precision))

    def sample(self, n_samples=1):
        """Draws ``n_samples`` rows from the fitted mixture.

        The key comes from ``random_state`` (an int seed draws the same rows
        at every call, as in scikit-learn).

        Returns:
          ``(X (n_samples, n_features), y (n_samples,))``: the rows and the
          component each came from.
        """
        check_is_fitted(self)
        if not isinstance(n_samples, numbers.Integral) or n_samples < 1:
            raise ValueError(
                f"Invalid value for 'n_samples': {n_samples} . The sampling requires at least one sample."
            )
        n_samples = int(n_samples)
        # The number of draws is static in the compiled sampler: drawing at
        # least 1,024 rows, or the next power of two, and keeping the first
        # n_samples (still independent draws) compiles once for every small
        # n_samples and once per doubling above, not once per n_samples.
        n_draws = max(1024, 1 << (n_samples - 1).bit_length())
        X, labels = gmm.sample(_jax_key(self.random_state), self.params_, n_draws)
        return np.asarray(X[:n_samples]), np.asarray(labels[:n_samples]).astype(np.intp)

    def _n_parameters(self):
        """Number of free parameters of the model (scikit-learn's private name)."""
        check_is_fitted(self)
        return gmm.n_parameters(self.params_)

    def bic(self, X):
        """Bayesian information criterion on ``X`` (lower is better)."""
        return float(gmm.bic(*self._model_and_data(X), matmul_precision=self.matmul_precision))

    def aic(self, X):
        """Akaike information criterion on ``X`` (lower is better)."""
        return float(gmm.aic(*self._model_and_data(X), matmul_precision=self.matmul_precision))
