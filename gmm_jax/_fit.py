"""`fit`: validation, initialisation, restarts by `vmap`, best-restart selection."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from gmm_jax import _em, _init, _rows, _sharding, _validation
from gmm_jax._precision import float32_matmuls
from gmm_jax._em import FitResult
from gmm_jax._params import GMMParams

__all__ = ["fit"]

# tol and reg_covar are traced: changing them does not recompile.
_STATIC = ("n_components", "covariance_type", "init", "n_init", "max_iter", "chunk_size", "verbose")


def _select_best(results: FitResult) -> FitResult:
    """The restart with the highest final lower bound among those that stayed finite."""
    ok = (results.status == _em.STATUS_OK) & jnp.isfinite(results.lower_bound)
    score = jnp.where(ok, results.lower_bound, -jnp.inf)
    # Failed restarts still rank among themselves, so an all-failed fit reports failure.
    best = jnp.where(jnp.any(ok), jnp.argmax(score), jnp.argmax(jnp.nan_to_num(results.lower_bound, nan=-jnp.inf)))
    return jax.tree_util.tree_map(lambda a: a[best], results)


# Restarts of a fit at least this big (rows x components x features) run one
# after another. Under vmap the products gain a second batch dimension, which
# XLA's CPU kernels handle several times slower, and a large restart keeps
# the machine busy by itself. Small fits (the seed scenario) run their
# restarts side by side; either way each restart stops at its own
# convergence (see _loops).
_SEQUENTIAL_RESTARTS_SIZE = 2**17


def _restarts_in_sequence(n_samples, n_features, n_components):
    return n_samples * n_features * n_components >= _SEQUENTIAL_RESTARTS_SIZE


@functools.partial(jax.jit, static_argnames=_STATIC)
@float32_matmuls
def _fit(key, X, w, init_params, tol, reg_covar, *, n_components, covariance_type, init, n_init, max_iter, chunk_size, verbose):
    # All the work happens in coordinates centred at the weighted data mean,
    # so float32 keeps its digits on data far from the origin. Rows are
    # centred chunk by chunk: no centred copy of X is held.
    center = jax.lax.stop_gradient(_init.weighted_mean(X, w))

    def single(key):
        if init_params is None:
            start = _init.initialize(key, X, w, n_components, covariance_type, init, reg_covar, chunk_size, center)
        else:
            start = init_params.replace(means=init_params.means - center[None])
        return _em.run_em(
            start, X, w, max_iter=max_iter, tol=tol, reg_covar=reg_covar,
            chunk_size=chunk_size, center=center, verbose=verbose,
        )  # fmt: skip

    if n_init == 1:
        result = single(key)
    else:
        keys = jax.random.split(key, n_init)
        if _restarts_in_sequence(*X.shape, n_components):
            results = jax.lax.map(single, keys)
        else:
            results = jax.vmap(single)(keys)
        result = _select_best(results)
    params = result.params.replace(means=result.params.means + center[None])
    return result._replace(params=params)


def _check_key(key):
    if isinstance(key, jax.Array) and (
        jnp.issubdtype(key.dtype, jax.dtypes.prng_key) or (key.dtype == jnp.uint32 and key.shape == (2,))
    ):
        return key
    raise TypeError(
        f"key must be a JAX PRNG key such as jax.random.key(0), got {type(key).__name__}"
        + (f" with dtype {key.dtype} and shape {key.shape}" if hasattr(key, "dtype") else "")
        + "."
    )


def fit(
    key,
    X,
    n_components: int,
    *,
    covariance_type: str = "full",
    init: str = "kmeans",
    n_init: int = 1,
    max_iter: int = 100,
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
    sample_weight=None,
    init_params: GMMParams | None = None,
    verbose: bool = False,
    chunk_size: int | None = None,
) -> FitResult:
    """Fits a Gaussian mixture to ``X`` by expectation-maximisation.

    A pure function of its arrays; the options are static. Restarts of small
    fits run at once under ``vmap`` (large ones in sequence); the whole
    function can itself be ``vmap``-ed over ``(key, X, sample_weight)`` to
    fit many datasets in one call (pad ragged datasets with zero
    ``sample_weight``). Each fit or restart stops at its own convergence,
    under ``vmap`` too, and is differentiable (``jax.grad``, ``jax.jacfwd``).

    Args:
      key: PRNG key (``jax.random.key(seed)``); the only source of randomness.
      X: ``(n_samples, n_features)`` data. float32 stays float32; float64
        needs ``jax_enable_x64``.
      n_components: number of mixture components, ``1 <= K <= n_samples``.
      covariance_type: ``"full"``, ``"tied"``, ``"diag"`` or ``"spherical"``.
      init: ``"kmeans"`` (k-means++ seeding then Lloyd), ``"k-means++"``
        (seeding only), ``"random"`` (random responsibilities) or
        ``"random_from_data"`` (random rows as means). Ignored when
        ``init_params`` is given.
      n_init: number of restarts; the one with the best final lower bound wins.
        Restart ``r`` uses ``jax.random.split(key, n_init)[r]``.
      max_iter: maximum number of EM iterations (``0`` returns the start).
      tol: stop when the mean log-likelihood changes by less than ``tol``;
        ``0.0`` runs exactly ``max_iter`` iterations.
      reg_covar: non-negative value added to the covariance diagonal.
      sample_weight: optional ``(n_samples,)`` non-negative weights; an
        integer weight counts a row that many times.
      init_params: a ``GMMParams`` to start from (warm start).
      verbose: print each iteration's log-likelihood from inside the compiled
        loop (free when off: it is a static option).
      chunk_size: rows per chunk in each pass (static); default chooses a size
        that bounds memory for large data. For ``X`` sharded along the rows,
        rows per chunk within each device's shard.

    Sharded data: ``X`` (and ``sample_weight``) may be a ``jax.Array`` split
    along the sample axis over a ``Mesh`` (see :mod:`gmm_jax.distributed`).
    Each device then works on its own rows, the parameters are replicated,
    and XLA reduces the sufficient statistics across devices; no device
    gathers ``X``.

    Returns:
      A ``FitResult``: ``params``, ``log_likelihood`` ``(max_iter,)``,
      ``n_iter``, ``converged``, ``lower_bound``, ``status`` (``0`` when
      every step stayed finite, ``1`` when a covariance became singular or
      non-finite) and ``n_empty`` (components left without data).

    Raises:
      ValueError, TypeError: bad arrays or options, before anything is traced.
      ValueError: outside ``jit``/``vmap``, when every restart hit a
        non-finite covariance (with ``reg_covar=0``); under a transformation
        the same failure shows as ``status == 1``.

    Example:
      >>> import jax, jax.numpy as jnp, gmm_jax as gmm
      >>> key_a, key_b, key_fit = jax.random.split(jax.random.key(0), 3)
      >>> X = jnp.concatenate([jax.random.normal(key_a, (100, 2)) - 4,
      ...                      jax.random.normal(key_b, (100, 2)) + 4])
      >>> result = gmm.fit(key_fit, X, 2, n_init=2)
      >>> bool(result.converged), sorted(result.params.weights.round(2).tolist())
      (True, [0.5, 0.5])
    """
    _check_key(key)
    X = _validation.check_data(X)
    n_samples, n_features = X.shape
    n_components, n_init, max_iter, tol, reg_covar = _validation.check_fit_options(
        n_samples, n_components, covariance_type, init, n_init, max_iter, tol, reg_covar
    )
    # Row-sharded X (one block of rows per device): weights are split the same
    # way and chunking stays within each device's block, so no device gathers X.
    n_blocks = _sharding.row_blocks(X)
    w = _validation.check_sample_weight(_sharding.rows_like(X, sample_weight), n_samples, X.dtype)
    if init_params is not None:
        _validation.check_init_params(init_params, n_components, n_features, covariance_type)
        init_params = init_params.astype(X.dtype)
    if verbose not in (True, False):
        raise TypeError(f"verbose must be True or False, got {verbose!r}.")
    if chunk_size is None:
        chunk_size = _rows.default_chunk_size(n_samples // n_blocks, n_components, n_features, covariance_type)
    else:
        chunk_size = _validation._check_int(chunk_size, "chunk_size", 1)
    if n_blocks > 1:
        chunk_size = _rows.RowBlocks(n_blocks, chunk_size)
    result = _fit(
        key, X, w, init_params, jnp.asarray(tol, X.dtype), jnp.asarray(reg_covar, X.dtype),
        n_components=n_components, covariance_type=covariance_type, init=init, n_init=n_init,
        max_iter=max_iter, chunk_size=chunk_size, verbose=bool(verbose),
    )  # fmt: skip
    if _validation.is_concrete(result.status) and int(result.status) != _em.STATUS_OK:
        raise ValueError(
            "Fitting the mixture model failed because some components have ill-defined empirical "
            "covariance (for instance caused by singleton or collapsed samples). Try to decrease the "
            "number of components, increase reg_covar, or scale the input data."
        )
    return result
