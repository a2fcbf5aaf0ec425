"""Densities, responsibilities, labels and information criteria of a fitted mixture.

Every function here runs the EM pass's own kernels (``_pass.map_scores``)
over row chunks, so scoring is as lean as fitting: memory is bounded by a
chunk plus the output, never an ``(N, K, D)`` array, and for row-sharded ``X``
the per-row outputs stay split like ``X``. The work happens in coordinates
centred at the mixture's mean: densities only depend on ``x - mu_k``, and
shifting both by the same point keeps float32 digits on data far from the
origin (``X + 1e4``), where ``X @ U - mu @ U`` would cancel.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from gmm_jax import _covariance, _missing, _pass, _rows, _sharding, _tuning, _validation
from gmm_jax._params import GMMParams, check_params, check_params_and_data
from gmm_jax._precision import float32_matmuls, with_matmul_precision

__all__ = ["log_prob", "predict_proba", "predict", "score", "n_parameters", "bic", "aic", "scores"]


def layout(params: GMMParams, X, tuning: _tuning.Tuning):
    """Static row layout of a scoring pass over ``X``: rows per chunk, per device for sharded ``X``."""
    n_blocks = _sharding.row_blocks(X)
    chunk = _pass.chunk_rows(X.shape[0] // n_blocks, params.n_components, params.n_features,
                             params.covariance_type, tuning)  # fmt: skip
    return _rows.RowBlocks(n_blocks, chunk) if n_blocks > 1 else chunk


@functools.partial(_tuning.SizedJit, static_argnames=("what", "chunk_size", "tuning"))
@float32_matmuls
def _scores(params, X, what, chunk_size, tuning):
    center = jax.lax.stop_gradient(_rows.mixture_center(params))  # (D,)
    return _pass.map_scores(params.replace(means=params.means - center[None, :]), X, what, chunk_size, center, tuning)


def scores(params: GMMParams, X, what: str, nan_policy: str = "raise"):
    """``_pass.map_scores`` of validated ``params`` and ``X`` (an array of their dtype), compiled.

    ``nan_policy="marginalize"``: through the missing-data pass (``_missing``),
    whose densities are those of each row's observed entries.
    """
    if nan_policy == "marginalize":
        n_slots, chunk_size = _missing.scoring_options(params, X)
        log_resp, log_norm = _missing.log_resp_and_norm(params.astype(X.dtype), X, n_slots=n_slots, chunk_size=chunk_size)
        return {"log_prob": log_norm, "proba": jnp.exp(log_resp), "log_resp": log_resp,
                "labels": jnp.argmax(log_resp, axis=1).astype(jnp.int32),
                "log_resp_and_log_prob": (log_resp, log_norm)}[what]  # fmt: skip
    tuning = _tuning.for_data(X)
    program = _scores.pick(tuning, X.shape[0] * params.n_components * params.n_features)
    return program(params.astype(X.dtype), X, what, layout(params, X, tuning), tuning)


@with_matmul_precision
def log_prob(params: GMMParams, X, nan_policy: str = "raise", *, matmul_precision: str | None = None) -> jax.Array:
    """Log density of each sample under the mixture (scikit-learn's ``score_samples``).

    Args:
      params: the mixture.
      X: ``(n_samples, n_features)`` data.
      nan_policy: ``"raise"`` (default) rejects NaN; ``"marginalize"``
        treats NaN entries as missing at random: each row's log density is
        the marginal log density of its observed entries (0 for a row with
        nothing observed: observing nothing has probability 1). The same
        option, with the same meaning, is on every scoring function.
      matmul_precision: the precision of float32 matrix products, as in
        :func:`gmm_jax.fit` (default: full float32); on every scoring
        function.

    Returns:
      ``(n_samples,)`` log densities.

    Example:
      >>> import jax.numpy as jnp, gmm_jax as gmm
      >>> p = gmm.GMMParams.from_covariances(jnp.array([1.0]), jnp.zeros((1, 2)),
      ...                                    jnp.array([1.0]), "spherical")
      >>> round(float(gmm.log_prob(p, jnp.zeros((1, 2)))[0]), 6)  # -log(2 pi)
      -1.837877
    """
    del matmul_precision  # in force around this call (with_matmul_precision)
    X = check_params_and_data(params, X, nan_policy=nan_policy, keep_host=True)
    return scores(params, X, "log_prob", nan_policy)


@with_matmul_precision
def predict_proba(params: GMMParams, X, nan_policy: str = "raise", *, matmul_precision: str | None = None) -> jax.Array:
    """Posterior probability of each component for each sample: ``(n_samples, n_components)``.

    Example:
      >>> import jax.numpy as jnp, gmm_jax as gmm
      >>> p = gmm.GMMParams.from_covariances(jnp.array([0.5, 0.5]),
      ...     jnp.array([[-5.0], [5.0]]), jnp.array([1.0, 1.0]), "spherical")
      >>> gmm.predict_proba(p, jnp.array([[-5.0], [0.0]])).round(3).tolist()
      [[1.0, 0.0], [0.5, 0.5]]
    """
    del matmul_precision  # in force around this call (with_matmul_precision)
    X = check_params_and_data(params, X, nan_policy=nan_policy, keep_host=True)
    return scores(params, X, "proba", nan_policy)


@with_matmul_precision
def predict(params: GMMParams, X, nan_policy: str = "raise", *, matmul_precision: str | None = None) -> jax.Array:
    """Most probable component of each sample: ``(n_samples,)`` integer labels.

    Example:
      >>> import jax.numpy as jnp, gmm_jax as gmm
      >>> p = gmm.GMMParams.from_covariances(jnp.array([0.5, 0.5]),
      ...     jnp.array([[-5.0], [5.0]]), jnp.array([1.0, 1.0]), "spherical")
      >>> gmm.predict(p, jnp.array([[-4.0], [6.0]])).tolist()
      [0, 1]
    """
    del matmul_precision  # in force around this call (with_matmul_precision)
    X = check_params_and_data(params, X, nan_policy=nan_policy, keep_host=True)
    return scores(params, X, "labels", nan_policy)


def _weights_of(X, sample_weight, nan_policy="raise"):
    # Weights split like the rows of a sharded X (default ones included);
    # rows with nothing observed carry no information.
    w = _validation.check_sample_weight(_sharding.rows_like(X, sample_weight), X.shape[0], X.dtype, keep_host=True)
    return _missing.informative_weights(X, w) if nan_policy == "marginalize" else w


@with_matmul_precision
def score(
    params: GMMParams, X, sample_weight=None, nan_policy: str = "raise", *, matmul_precision: str | None = None
) -> jax.Array:
    """Mean log density of the samples (weighted mean when ``sample_weight`` is given).

    ``nan_policy="marginalize"``: the mean observed-data log density over the
    rows with at least one observed entry (see :func:`log_prob`).

    Example:
      >>> import jax.numpy as jnp, gmm_jax as gmm
      >>> p = gmm.GMMParams.from_covariances(jnp.array([1.0]), jnp.zeros((1, 1)),
      ...                                    jnp.array([1.0]), "spherical")
      >>> round(float(gmm.score(p, jnp.array([[-1.0], [1.0]]))), 4)  # -0.5 log(2 pi) - 0.5
      -1.4189
    """
    del matmul_precision  # in force around this call (with_matmul_precision)
    X = check_params_and_data(params, X, nan_policy=nan_policy, keep_host=True)
    w = _weights_of(X, sample_weight, nan_policy)
    return _summary(scores(params, X, "log_prob", nan_policy), w)


def _weighted_mean(values, w):
    # Zero-weight rows (padding) count for nothing, even where their density is -inf.
    return jnp.sum(jnp.where(w > 0, w * values, 0.0)) / jnp.sum(w)


@functools.partial(jax.jit, static_argnames=("criterion",))
def _summary(log_prob, w, n_params=0, criterion=None):
    """The weighted mean of ``log_prob`` (``criterion=None``), or ``"bic"``/``"aic"`` from it.

    One compiled program instead of a dozen eager operations, each of which
    would compile on its first call.
    """
    mean = _weighted_mean(log_prob, w)
    if criterion is None:
        return mean
    n = jnp.sum(w)  # the number of samples a weighted (or zero-padded) dataset stands for
    per_parameter = jnp.log(n) if criterion == "bic" else 2.0
    return -2.0 * mean * n + n_params * per_parameter


def n_parameters(params: GMMParams) -> int:
    """Number of free parameters: weights (K - 1), means (K D) and covariances.

    Example:
      >>> import jax.numpy as jnp, gmm_jax as gmm
      >>> p = gmm.GMMParams.from_covariances(jnp.full(3, 1 / 3), jnp.zeros((3, 2)),
      ...                                    jnp.ones(3), "spherical")
      >>> gmm.n_parameters(p)  # 2 weights + 6 mean entries + 3 variances
      11
    """
    check_params(params)
    return n_free_parameters(params.covariance_type, params.n_components, params.n_features)


def n_free_parameters(covariance_type: str, n_components, n_features):
    """Free parameters of a ``covariance_type`` mixture of ``n_components`` (an int or an array) in ``D``."""
    k, d = n_components, n_features
    return (k - 1) + k * d + _covariance.n_covariance_parameters(covariance_type, k, d)


def _criterion(params, X, sample_weight, criterion, nan_policy):
    X = check_params_and_data(params, X, nan_policy=nan_policy, keep_host=True)
    w = _weights_of(X, sample_weight, nan_policy)
    return _summary(scores(params, X, "log_prob", nan_policy), w, n_parameters(params), criterion)


@with_matmul_precision
def bic(
    params: GMMParams, X, sample_weight=None, nan_policy: str = "raise", *, matmul_precision: str | None = None
) -> jax.Array:
    """Bayesian information criterion on ``X`` (lower is better), as scikit-learn defines it.

    ``-2 * log-likelihood + n_parameters * log(N)``. With ``sample_weight``,
    the log-likelihood is weighted and ``N`` is the sum of the weights, so
    zero-weight padding rows change nothing; with ``nan_policy="marginalize"``
    the log-likelihood is the observed-data one and rows with nothing
    observed do not count.

    Example:
      >>> import jax, gmm_jax as gmm
      >>> X = jax.random.normal(jax.random.key(0), (200, 2))
      >>> p1 = gmm.fit(jax.random.key(1), X, 1).params
      >>> p4 = gmm.fit(jax.random.key(1), X, 4).params
      >>> bool(gmm.bic(p1, X) < gmm.bic(p4, X))  # one Gaussian explains Gaussian data best
      True
    """
    del matmul_precision  # in force around this call (with_matmul_precision)
    return _criterion(params, X, sample_weight, "bic", nan_policy)


@with_matmul_precision
def aic(
    params: GMMParams, X, sample_weight=None, nan_policy: str = "raise", *, matmul_precision: str | None = None
) -> jax.Array:
    """Akaike information criterion on ``X`` (lower is better): ``-2 log-likelihood + 2 n_parameters``.

    ``sample_weight`` and ``nan_policy`` as in :func:`bic`.

    Example:
      >>> import jax, gmm_jax as gmm
      >>> X = jax.random.normal(jax.random.key(0), (200, 2))
      >>> p = gmm.fit(jax.random.key(1), X, 2).params
      >>> bool(gmm.aic(p, X) < gmm.bic(p, X))  # log(200) > 2 per parameter
      True
    """
    del matmul_precision  # in force around this call (with_matmul_precision)
    return _criterion(params, X, sample_weight, "aic", nan_policy)

