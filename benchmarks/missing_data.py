"""Issue 15, case h: one EM iteration with 20% of entries missing (MCAR) against the complete-data one.

Both iterations run the same way: one compiled call of the pass (the
sufficient statistics over all rows, chunked) plus the M-step, from the same
parameters, float32, timed as the best of ``--repeats`` calls after a
warm-up (compile excluded). The missing-data pass is ``_missing``'s as
``gmm.fit`` runs it: for full covariances on the rows sorted by their NaN
count, in slot groups (``_missing.slot_groups``), computed from the data
before the fit. ``one bound`` is the same pass with the largest count of NaN
per row as the slot count of every row (what sharded fits and streams run).

    python -m benchmarks.missing_data                      # full N=1e5 D=16 K=8; diag N=1e6 D=64 K=64
    python -m benchmarks.missing_data --cases full --n 20000
"""

from __future__ import annotations

import argparse
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

from gmm_jax import _em, _missing, _pass, _tuning
from gmm_jax._params import GMMParams

CASES = {"full": dict(n=100_000, d=16, k=8), "diag": dict(n=1_000_000, d=64, k=64)}


def _start(rng, X, k, covariance_type):
    means = X[rng.choice(X.shape[0], k, replace=False)]
    d = X.shape[1]
    if covariance_type == "full":
        covs = np.stack([np.eye(d) * X.var(0).mean()] * k)
    else:
        covs = np.tile(X.var(0), (k, 1))
    return GMMParams.from_covariances(np.full(k, 1.0 / k, np.float32), means, covs.astype(np.float32), covariance_type)


def _best(fn, repeats):
    jax.block_until_ready(fn())  # compile and warm up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return min(times)


def run_case(covariance_type, n, d, k, fraction, repeats, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=4.0, size=(k, d))
    X = (centers[rng.integers(0, k, n)] + rng.normal(size=(n, d))).astype(np.float32)
    X_missing = X.copy()
    X_missing[rng.random(X.shape) < fraction] = np.nan
    params = _start(rng, X, k, covariance_type)
    w = jnp.ones((n,), jnp.float32)
    tuning = _tuning.for_platform(jax.default_backend())
    chunk = _pass.chunk_rows(n, k, d, covariance_type, tuning)
    n_slots = _missing.max_missing(X_missing) if covariance_type == "full" else 0
    chunk_missing = _missing.missing_chunk_size(n, k, d, covariance_type, n_slots, tuning)
    center = jnp.zeros((d,), jnp.float32)

    @functools.partial(jax.jit, static_argnames=("n_slots", "chunk_size"))
    def iteration(params, X, n_slots, chunk_size):
        # What one iteration of gmm.fit runs: the pass (or its missing-data variant), then the M-step.
        stats = _em.statistics(params, X, w, chunk_size, center, tuning, n_slots)
        update = _em.em_update(stats, params, jnp.float32(1e-6))
        return update.log_likelihood, update.params

    X_dev, Xm_dev = jnp.asarray(X), jnp.asarray(X_missing)
    complete = _best(lambda: iteration(params, X_dev, None, chunk), repeats)
    one_bound = _best(lambda: iteration(params, Xm_dev, n_slots, chunk_missing), repeats)
    groups = _missing.slot_groups(X_missing, covariance_type, k, tuning)
    missing = one_bound
    if groups is not None:
        X_sorted, _ = jax.jit(_missing.sorted_rows)(Xm_dev, w)  # once per fit, before the EM loop
        missing = _best(lambda: iteration(params, X_sorted, groups, None), repeats)
    return dict(covariance_type=covariance_type, n=n, d=d, k=k, fraction=fraction, n_slots=n_slots,
                chunk_complete=chunk, chunk_missing=chunk_missing, groups=groups,
                complete_s=complete, one_bound_s=one_bound, missing_s=missing, ratio=missing / complete)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="full,diag")
    parser.add_argument("--n", type=int, default=None, help="override the rows of every case")
    parser.add_argument("--fraction", type=float, default=0.2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind} ({jax.default_backend()})")
    for name in args.cases.split(","):
        size = dict(CASES[name])
        if args.n is not None:
            size["n"] = args.n
        r = run_case(name, **size, fraction=args.fraction, repeats=args.repeats)
        print(f"{r['covariance_type']:5s} N={r['n']:,} D={r['d']} K={r['k']} {100 * r['fraction']:.0f}% MCAR "
              f"(slots {r['n_slots']}, chunks {r['chunk_complete']}/{r['chunk_missing']} rows): "
              f"complete {1e3 * r['complete_s']:.1f} ms, missing {1e3 * r['missing_s']:.1f} ms, "
              f"ratio {r['ratio']:.2f}x; one bound {1e3 * r['one_bound_s']:.1f} ms "
              f"({r['one_bound_s'] / r['complete_s']:.2f}x)", flush=True)
        if r["groups"] is not None:
            print("  slot groups (rows, slots, rows per chunk):", r["groups"].groups, flush=True)


if __name__ == "__main__":
    main()
