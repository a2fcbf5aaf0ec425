"""`fit`: the entry point for rows held in memory (one device, or sharded), over the driver."""

from __future__ import annotations

from gmm_jax import _driver, _missing, _pass, _sharding, _tuning, _validation
from gmm_jax._em import FitResult
from gmm_jax._params import GMMParams
from gmm_jax._precision import with_matmul_precision

__all__ = ["fit"]


@with_matmul_precision
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
    init_lower_bound=None,
    differentiate: str = "unrolled",
    nan_policy: str = "raise",
    prior=None,
    matmul_precision: str | None = None,
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
        (seeding only), ``"random"`` (random responsibilities),
        ``"random_from_data"`` (random rows as means) or ``"hierarchical"``
        (mclust's start: the classification of its model-based
        agglomeration ``hcVVV`` cut at ``K``, on at most 1,000 rows drawn
        uniformly; with ``n_init > 1`` restart 0 starts from it and the
        others from k-means). Ignored when ``init_params`` is given.
      n_init: number of restarts; the one with the best final lower bound wins.
        Restarts are nested: restart 0 uses ``key`` itself (it is the
        ``n_init=1`` fit) and restart ``r`` uses ``jax.random.fold_in(key, r)``,
        so more restarts never give a worse result.
      max_iter: maximum number of EM iterations (``0`` returns the start).
      tol: stop when the mean log-likelihood changes by less than ``tol``;
        ``0.0`` runs exactly ``max_iter`` iterations. Traced: changing it
        does not recompile, and it may be batched under ``vmap``.
      reg_covar: non-negative value added to the covariance diagonal.
        Traced, like ``tol``.
      sample_weight: optional ``(n_samples,)`` non-negative weights; an
        integer weight counts a row that many times.
      init_params: a ``GMMParams`` to start from (warm start).
      init_lower_bound: with ``init_params``, the lower bound of the fit that
        produced them (``FitResult.lower_bound``): the first iteration's
        change is measured from it, so a warm start at a converged fit
        converges in one iteration (scikit-learn's ``warm_start``). Default:
        the first iteration only measures.
      verbose: print each iteration's log-likelihood, with the restart
        number, from inside the compiled loop (free when off: a static option).
      differentiate: how derivatives of the result are formed (static).
        ``"unrolled"`` (default): through the EM iterations (``jax.grad``,
        ``jax.jacfwd``, ``jax.hessian``; memory grows with the iterations).
        ``"implicit"``: reverse mode only, from the fixed-point equation of
        the EM map at the returned parameters, so memory does not grow with
        ``max_iter``; equal to the unrolled derivative at convergence. Only
        ``params`` carry derivatives then (not the trace).
      nan_policy: ``"raise"`` (default): NaN in ``X`` is an error.
        ``"marginalize"``: NaN entries are missing at random and EM is the
        exact missing-data EM (observed-entry densities in the E-step,
        conditional means and covariances in the M-step; see
        ``gmm_jax._missing``). Rows with nothing observed carry no
        information and are ignored; ``log_likelihood`` is the mean
        observed-data log-likelihood of the other rows. The start (``init``)
        is computed on the data with each NaN replaced by its column's
        observed mean. inf is an error under both policies.
      prior: optional ``ConjugatePrior`` (e.g. ``ConjugatePrior.default(X, K,
        covariance_type)``, mclust's default): every M-step, the first one
        from the initialisation included, is then the posterior mode (MAP-EM,
        Fraley & Raftery 2007), and ``log_likelihood``, ``lower_bound`` and
        ``tol`` refer to the penalised objective, the mean per-sample
        ``log-likelihood + log prior / N`` (up to the prior's constant). The
        prior keeps covariances positive definite, so ``reg_covar=0`` is safe.
      matmul_precision: ``None`` (default: full float32 products, unless
        ``jax.default_matmul_precision`` chose otherwise), ``"float32"``,
        ``"bf16_3x"`` or ``"tf32"``: the precision of float32 matrix
        products on accelerators (JAX's dot-algorithm presets; a CPU computes
        full float32 for all three). The README's "Precision of matrix
        products" has each one's measured accuracy. Static: each value
        compiles once.
      chunk_size: rows per chunk in each EM pass (static); default chooses a
        size that bounds memory for large data. The k-means start's passes
        hold fewer values per row and take proportionally more rows, for the
        same memory. For ``X`` sharded along the rows, rows per chunk within
        each device's shard.

    Compiling: the fit compiles once per shape of ``X`` and set of static
    options. Up to 65,536 rows, ``X`` is padded inside ``fit`` with
    zero-weight rows to one of four sizes per doubling, so a new number of
    rows in the same size bucket reuses the compiled fit (the result is the
    same: zero-weight rows change nothing). :func:`gmm_jax.enable_compilation_cache`
    keeps compiled fits across Python sessions.

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

    Warns:
      ConvergenceWarning: outside ``jit``/``vmap``, when ``tol > 0`` and the
        fit stopped at ``max_iter`` (under a transformation: ``converged``).

    Example:
      >>> import jax, jax.numpy as jnp, gmm_jax as gmm
      >>> key_a, key_b, key_fit = jax.random.split(jax.random.key(0), 3)
      >>> X = jnp.concatenate([jax.random.normal(key_a, (100, 2)) - 4,
      ...                      jax.random.normal(key_b, (100, 2)) + 4])
      >>> result = gmm.fit(key_fit, X, 2, n_init=2)
      >>> bool(result.converged), sorted(result.params.weights.round(2).tolist())
      (True, [0.5, 0.5])
    """
    del matmul_precision  # in force around this call (with_matmul_precision)
    _validation.check_key(key)
    X = _validation.check_data(X, nan_policy=nan_policy, keep_host=True)  # host data is checked on the host
    n_samples, n_features = X.shape
    n_slots = None
    if nan_policy == "marginalize":
        _validation.check_observed_features(X)
        _validation.check_covariance_type(covariance_type)
        # A static bound on the NaN entries per row (D under a transformation).
        n_slots = _missing.max_missing(X) if covariance_type in ("full", "tied") else 0
    tuning = _tuning.for_data(X)
    # Row-sharded X (one block of rows per device): weights are split the same
    # way and chunking stays within each device's block, so no device gathers X.
    n_blocks = _sharding.row_blocks(X)
    options = _driver.fit_options(
        n_samples=n_samples, n_features=n_features, n_components=n_components, covariance_type=covariance_type,
        init=init, n_init=n_init, max_iter=max_iter, verbose=verbose, chunk_size=chunk_size, tuning=tuning,
        n_blocks=n_blocks, differentiate=differentiate, n_slots=n_slots,
    )  # fmt: skip
    options = _driver.with_slot_groups(options, X, chunk_size)
    tol, reg_covar = _driver.check_tolerances(tol, reg_covar, X.dtype)
    w = _validation.check_sample_weight(_sharding.rows_like(X, sample_weight), n_samples, X.dtype, keep_host=True)
    init_params, init_lower_bound = _driver.check_warm_start(
        init_params, init_lower_bound, options.n_components, n_features, covariance_type, X.dtype)  # fmt: skip
    if n_blocks == 1 and chunk_size is None and n_slots is None:  # a new N in the same bucket reuses the compiled fit
        X, w = _driver.pad_to_bucket(X, w)
        options = options._replace(chunk_size=_pass.chunk_rows(X.shape[0], options.n_components, n_features,
                                                               covariance_type, tuning))  # fmt: skip
    prior = _driver.check_prior(prior, n_features, covariance_type, X.dtype)
    result = _driver.fit_in_memory(key, X, w, init_params, tol, reg_covar, init_lower_bound, options, prior)
    return _driver.check_result(result, tol)
