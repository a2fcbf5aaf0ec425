"""First-call and second-call wall time of ``fit`` and ``select``, in a fresh process.

``python -m benchmarks._latency`` prints one JSON line: for the seed problem
(500 x 2, K=3) and scikit-learn's iris (150 x 4, K=3), the first call (which
compiles) and the best of three later calls, for gmm_jax and scikit-learn,
and gmmx's first call on the seed fit. ``compile_s`` is the first call minus
the second: the compile time a notebook user waits for once per shape.
"""

from __future__ import annotations

import json
import time


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    later = []
    for _ in range(3):
        t0 = time.perf_counter()
        fn()
        later.append(time.perf_counter() - t0)
    return {"first_s": first, "second_s": min(later), "compile_s": first - min(later)}


def main() -> None:
    import jax
    import numpy as np
    from sklearn.datasets import load_iris
    from sklearn.mixture import GaussianMixture

    import gmm_jax as gmm

    truth = gmm.GMMParams.from_covariances(
        np.array([0.5, 0.2, 0.3]), np.array([[-1.0, -1.0], [1.0, -1.5], [0.0, 2.0]]), np.full(3, 0.3), "spherical")
    seed, _ = gmm.sample(jax.random.key(0), truth, 500)
    seed = np.asarray(seed)
    iris = load_iris().data.astype(np.float32)
    key = jax.random.key(1)
    calls = {
        "fit seed": lambda: jax.block_until_ready(gmm.fit(key, seed, 3).params),
        "fit iris": lambda: jax.block_until_ready(gmm.fit(key, iris, 3).params),
        "select seed (K=1..6 x 4)": lambda: jax.block_until_ready(gmm.select(key, seed, range(1, 7)).criterion),
        "select iris (K=1..6 x 4)": lambda: jax.block_until_ready(gmm.select(key, iris, range(1, 7)).criterion),
        "sklearn fit seed": lambda: GaussianMixture(3, random_state=0).fit(seed),
        "sklearn fit iris": lambda: GaussianMixture(3, random_state=0).fit(iris),
        "sklearn select seed (loop)": lambda: [GaussianMixture(k, covariance_type=c, random_state=0).fit(seed).bic(seed)
                                               for c in gmm.COVARIANCE_TYPES for k in range(1, 7)],
    }
    result = {"calls": {name: _timed(fn) for name, fn in calls.items()}}
    try:
        import gmmx  # noqa: F401

        from benchmarks import _libs

        start = _libs.make_start(np.random.default_rng(2), seed, 3, "full")
        t0 = time.perf_counter()
        prep = _libs.PREPARE["gmmx"](jax.numpy.asarray(seed), start, n_components=3, covariance_type="full",
                                     max_iter=100, tol=1e-3)
        prep.run()
        result["gmmx_first_fit_s"] = time.perf_counter() - t0
    except Exception as error:  # gmmx is optional for this case
        result["gmmx_first_fit_s"] = None
        result["gmmx_note"] = repr(error)
    result["compile_ratio_to_gmmx"] = (
        result["calls"]["fit seed"]["compile_s"] / result["gmmx_first_fit_s"] if result["gmmx_first_fit_s"] else None)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
