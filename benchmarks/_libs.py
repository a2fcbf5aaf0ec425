"""The three libraries behind one small interface, plus shared data.

Every library gets the same float32 data and, where the case fixes it, the same
starting parameters (weights, means, covariances); only the EM loop differs.
A ``Prepared`` fit is compiled (for the JAX libraries) before it is timed, so
compilation is reported on its own and never counted as iteration time.
"""

from __future__ import annotations

import dataclasses
import importlib
import time
import warnings
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np


# --------------------------------------------------------------------- data


def make_blobs(rng: np.random.Generator, n: int, d: int, k: int, conditioned: bool = False) -> np.ndarray:
    """``(n, d)`` float32 draws from a random ``k``-component Gaussian mixture.

    The default blobs are elongated: each scale matrix has positive entries,
    whose covariance condition number grows fast with ``d`` (about 1e7 at
    d=32, beyond float32: scikit-learn's float32 fit fails on N=1e6 of them
    and gmm_jax's on N=1e7); the whole-fit case c uses them. ``conditioned=True``
    draws each scale as a random rotation times singular values in [0.5, 1.5]
    (condition number <= 9): the per-iteration cases use those.
    """
    centers = rng.normal(scale=4.0, size=(k, d))
    if conditioned:
        q, _ = np.linalg.qr(rng.normal(size=(k, d, d)))
        scales = q * rng.uniform(0.5, 1.5, size=(k, 1, d))
    else:
        scales = rng.uniform(0.5, 1.5, size=(k, d, d)) / np.sqrt(d)
    labels = rng.integers(0, k, size=n)
    X = np.empty((n, d), dtype=np.float32)
    step = 1 << 18  # bounded temporaries for the large cases
    for start in range(0, n, step):
        lab = labels[start:start + step]
        z = rng.standard_normal(size=(lab.size, d))
        X[start:start + step] = centers[lab] + np.einsum("nd,nde->ne", z, scales[lab])
    return X


@dataclasses.dataclass(frozen=True)
class Start:
    """Starting parameters in scikit-learn shapes, float64 (cast per library)."""

    weights: np.ndarray      # (K,)
    means: np.ndarray        # (K, D)
    covariances: np.ndarray  # full (K, D, D) | tied (D, D) | diag (K, D)
    covariance_type: str

    @property
    def precisions(self) -> np.ndarray:
        """scikit-learn's ``precisions_init``: inverse covariances."""
        if self.covariance_type in ("full", "tied"):
            return np.linalg.inv(self.covariances)
        return 1.0 / self.covariances


def make_start(rng: np.random.Generator, X: np.ndarray, k: int, covariance_type: str) -> Start:
    """Means at ``k`` random samples, every covariance the data covariance."""
    means = X[rng.choice(X.shape[0], size=k, replace=False)].astype(np.float64)
    sub = X[: min(X.shape[0], 100_000)].astype(np.float64)
    cov = np.cov(sub, rowvar=False) + 1e-6 * np.eye(X.shape[1])
    if covariance_type == "full":
        covariances = np.repeat(cov[None], k, axis=0)
    elif covariance_type == "tied":
        covariances = cov
    elif covariance_type == "diag":
        covariances = np.repeat(np.diag(cov)[None], k, axis=0)
    else:
        raise ValueError(f"benchmarks use 'full', 'tied' or 'diag', got {covariance_type!r}")
    return Start(np.full(k, 1.0 / k), means, covariances, covariance_type)


# ------------------------------------------------------------------ timing


def block(x: Any) -> Any:
    return jax.block_until_ready(x)


def best_of(fn: Callable[[], Any], repeats: int, budget_s: float = 60.0) -> tuple[float, Any]:
    """Smallest wall time of ``repeats`` calls of ``fn`` and the last output.

    A call slow enough that the repeats would exceed ``budget_s`` is repeated
    only twice (the slow peers in the big cases).
    """
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = block(fn())
        times.append(time.perf_counter() - t0)
        if len(times) >= 2 and sum(times) > budget_s:
            break
    return min(times), out


@dataclasses.dataclass
class Fitted:
    """What every library returns, in scikit-learn's shapes (numpy)."""

    n_iter: int
    weights: np.ndarray
    means: np.ndarray
    precisions_cholesky: np.ndarray


@dataclasses.dataclass
class Prepared:
    """A fit ready to time: ``run()`` does the whole fit and blocks on it."""

    run: Callable[[], Any]
    summarize: Callable[[Any], Fitted]
    compile_s: float | None = None
    note: str | None = None
    threads: int | None = None  # scikit-learn: BLAS/OpenMP threads used (None: default)
    compiled: Any = None  # gmm_jax: the compiled program (benchmarks.profile_pass reads its text)


# ------------------------------------------------------------------ gmm_jax


def gmm_jax_prepare(X: jax.Array, start: Start | None, *, n_components: int,
                    covariance_type: str, max_iter: int, tol: float,
                    n_init: int = 1, seed: int = 0, chunk_size: int | None = None,
                    package: str = "gmm_jax") -> Prepared:
    """``gmm.fit`` jitted for these options; ``start=None`` lets it initialise.

    ``chunk_size`` (rows per chunk; ``None``: gmm_jax's default) is for
    benchmarks.chunk_sweep; ``package`` names the module to time (another
    revision of gmm_jax under another name, for benchmarks.compare_revisions).
    """
    gmm = importlib.import_module(package)

    dtype = X.dtype
    key = jax.random.key(seed)
    options = dict(covariance_type=covariance_type, max_iter=max_iter, tol=tol, n_init=n_init)
    if chunk_size is not None:
        options["chunk_size"] = chunk_size
    if start is None:
        fn = jax.jit(lambda key, X: gmm.fit(key, X, n_components, **options))
        args = (key, X)
    else:
        params = gmm.GMMParams.from_covariances(
            jnp.asarray(start.weights, dtype), jnp.asarray(start.means, dtype),
            jnp.asarray(start.covariances, dtype), covariance_type=covariance_type)
        fn = jax.jit(lambda key, X, p: gmm.fit(key, X, n_components, init_params=p, **options))
        args = (key, X, params)
    t0 = time.perf_counter()
    compiled = fn.lower(*args).compile()
    compile_s = time.perf_counter() - t0

    def summarize(result: Any) -> Fitted:
        p = result.params
        return Fitted(int(result.n_iter), np.asarray(p.weights), np.asarray(p.means),
                      np.asarray(p.precisions_cholesky))

    return Prepared(lambda: compiled(*args), summarize, compile_s, compiled=compiled)


# ------------------------------------------------------------------ scikit-learn


def sklearn_prepare(X: np.ndarray, start: Start | None, *, n_components: int,
                    covariance_type: str, max_iter: int, tol: float,
                    n_init: int = 1, seed: int = 0, threads: int | None | str = "auto") -> Prepared:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture
    from threadpoolctl import threadpool_limits

    kwargs = dict(n_components=n_components, covariance_type=covariance_type,
                  max_iter=max_iter, tol=tol, n_init=n_init, random_state=seed)
    if start is not None:
        kwargs.update(weights_init=start.weights, means_init=start.means,
                      precisions_init=start.precisions)

    def run_with(threads: int | None) -> Any:
        with warnings.catch_warnings(), threadpool_limits(limits=threads):
            warnings.simplefilter("ignore", ConvergenceWarning)
            return GaussianMixture(**kwargs).fit(X)

    # scikit-learn's BLAS/OpenMP pools spin-wait; on a busy machine one thread
    # can beat the default by 10x, so give it whichever is faster here.
    if threads == "auto":
        timings = {}
        for candidate in (None, 1):
            run_with(candidate)  # warm-up
            t0 = time.perf_counter()
            run_with(candidate)
            timings[candidate] = time.perf_counter() - t0
        threads = min(timings, key=timings.get)
    best = threads

    def summarize(est: Any) -> Fitted:
        return Fitted(int(est.n_iter_), est.weights_, est.means_, est.precisions_cholesky_)

    return Prepared(lambda: run_with(best), summarize, None,
                    note="BLAS threads: " + ("default" if best is None else str(best)),
                    threads=best)


# ------------------------------------------------------------------ gmmx


def gmmx_supports(covariance_type: str, n_init: int, start: Start | None) -> str | None:
    """Why gmmx cannot run a case, or None when it can."""
    if covariance_type not in ("full", "diag"):
        return f"gmmx has no {covariance_type!r} covariances"
    if n_init != 1:
        return "gmmx does not support n_init > 1"
    if start is None:
        return "gmmx initialises with scikit-learn's KMeans outside JAX; timed only from given parameters"
    return None


def gmmx_prepare(X: jax.Array, start: Start, *, n_components: int,
                 covariance_type: str, max_iter: int, tol: float,
                 n_init: int = 1, seed: int = 0) -> Prepared:
    """gmmx's ``EMFitter.fit`` (jitted by gmmx itself) from the given start."""
    from gmmx import EMFitter, GaussianMixtureModelJax

    model = GaussianMixtureModelJax.from_squeezed(
        means=jnp.asarray(start.means, jnp.float32),
        covariances=jnp.asarray(start.covariances, jnp.float32),
        weights=jnp.asarray(start.weights, jnp.float32),
        covariance_type=covariance_type,
    )
    fitter = EMFitter(max_iter=max_iter, tol=tol, reg_covar=1e-6)
    # gmmx jits ``fit`` on first call; time that call minus a warm call.
    t0 = time.perf_counter()
    block(fitter.fit(X, model))
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    block(fitter.fit(X, model))
    warm = time.perf_counter() - t0

    def summarize(result: Any) -> Fitted:
        g = result.gmm
        return Fitted(int(result.n_iter), g.weights_numpy, g.means_numpy,
                      g.covariances.precisions_cholesky_numpy)

    return Prepared(lambda: fitter.fit(X, model), summarize, max(first - warm, 0.0))


PREPARE = {"gmm_jax": gmm_jax_prepare, "sklearn": sklearn_prepare, "gmmx": gmmx_prepare}


def mean_log_likelihood(X: np.ndarray, fitted: Fitted, covariance_type: str) -> float:
    """Score any library's final parameters with one scorer (scikit-learn's)."""
    from sklearn.mixture import GaussianMixture

    est = GaussianMixture(len(fitted.weights), covariance_type=covariance_type)
    est.weights_ = np.asarray(fitted.weights, np.float64)
    est.means_ = np.asarray(fitted.means, np.float64)
    est.precisions_cholesky_ = np.asarray(fitted.precisions_cholesky, np.float64)
    return float(est.score(X))
