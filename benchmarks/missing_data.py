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
    python -m benchmarks.missing_data --cases full --groups  # and the pass of each slot group alone
    python -m benchmarks.missing_data --cases full --exactly 1,2,3,6,11  # every row missing exactly m entries
    python -m benchmarks.missing_data --cases full --exactly 2,3,4,5,6 --patterns  # sums per row / per pattern
    python -m benchmarks.missing_data --cases full --first-fit  # compile + run of the first gmm.fit, then the second
"""

from __future__ import annotations

import argparse
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

from gmm_jax import _em, _missing, _pass, _rows, _tuning
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


def group_times(params, X_sorted, w, groups, center, tuning, repeats):
    """Seconds of the E-step pass of each slot group alone (its rows of the sorted data)."""
    @functools.partial(jax.jit, static_argnames=("groups",))
    def statistics(params, X, w, groups):
        return _em.statistics(params, X, w, None, center, tuning, groups)

    times, start = [], 0
    for group in groups.groups:
        rows = slice(start, start + group[0])
        one = _missing.SlotGroups((group,))
        times.append(_best(lambda: statistics(params, X_sorted[rows], w[rows], one), repeats))
        start += group[0]
    return times


def _setup(n, d, k, seed):
    """Complete float32 data of ``k`` clusters, unit weights, the platform's tuning, and one compiled iteration."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=4.0, size=(k, d))
    X = (centers[rng.integers(0, k, n)] + rng.normal(size=(n, d))).astype(np.float32)
    w = jnp.ones((n,), jnp.float32)
    tuning = _tuning.for_platform(jax.default_backend())
    center = jnp.zeros((d,), jnp.float32)

    @functools.partial(jax.jit, static_argnames=("n_slots", "chunk_size"))
    def iteration(params, X, n_slots, chunk_size):
        # What one iteration of gmm.fit runs: the pass (or its missing-data variant), then the M-step.
        stats = _em.statistics(params, X, w, chunk_size, center, tuning, n_slots)
        update = _em.em_update(stats, params, jnp.float32(1e-6))
        return update.log_likelihood, update.params

    return rng, X, w, tuning, center, iteration


def exactly_missing(covariance_type, n, d, k, counts, repeats, seed=0, patterns=False):
    """Seconds of one iteration when every row misses exactly ``m`` entries, for each ``m`` in ``counts``.

    The cost of one slot count: every row's bound is its count (one group).
    With ``patterns``, ``(per row, per pattern)`` for each ``m``: the rows
    sorted by pattern (``_missing.sorted_rows``) as one slot group, its
    conditional covariances summed per row and per pattern, timed in turn.
    """
    rng, X, w, tuning, _, iteration = _setup(n, d, k, seed)
    params = _start(rng, X, k, covariance_type)
    out = {}
    for m in counts:
        X_missing = X.copy()
        np.put_along_axis(X_missing, np.argsort(rng.random((n, d)), axis=1)[:, :m], np.nan, axis=1)
        chunk = _missing.missing_chunk_size(n, k, d, covariance_type, m, tuning)
        if not patterns:
            out[m] = _best(lambda: iteration(params, jnp.asarray(X_missing), m, chunk), repeats)
            continue
        X_sorted, _ = jax.jit(_missing.sorted_rows)(jnp.asarray(X_missing), w)
        rows = n if chunk is None else _rows.even_chunks(n, chunk)[1]
        n_patterns = _missing._most_patterns(_missing._pattern_words(np.isnan(np.asarray(X_sorted))), rows)
        per_row, per_pattern = (_missing.SlotGroups((_missing.SlotGroup(n, m, chunk, p),)) for p in (0, n_patterns))
        times = {0: [], 1: []}
        for _ in range(2):  # alternated: this machine's speed drifts
            times[0].append(_best(lambda: iteration(params, X_sorted, per_row, None), repeats))
            times[1].append(_best(lambda: iteration(params, X_sorted, per_pattern, None), repeats))
        out[m] = (min(times[0]), min(times[1]), n_patterns / rows)
    return out


def first_fit(covariance_type, n, d, k, fraction, seed=0, max_iter=5):
    """Seconds of the first and of the second ``gmm.fit`` on the case's data with NaN: compile and run.

    Meaningful in a fresh process (nothing compiled before): the first call
    compiles the fit's program, each slot group's pass included.
    """
    import gmm_jax as gmm

    rng, X, _, _, _, _ = _setup(n, d, k, seed)
    X[rng.random(X.shape) < fraction] = np.nan
    calls = []
    for _ in range(2):
        t = time.perf_counter()
        fitted = gmm.fit(jax.random.key(0), X, k, covariance_type=covariance_type, nan_policy="marginalize",
                         max_iter=max_iter, tol=0.0)  # fmt: skip
        jax.block_until_ready(fitted.params)
        calls.append(time.perf_counter() - t)
    return calls[0], calls[1], float(fitted.lower_bound)


def run_case(covariance_type, n, d, k, fraction, repeats, seed=0, breakdown=False):
    rng, X, w, tuning, center, iteration = _setup(n, d, k, seed)
    X_missing = X.copy()
    X_missing[rng.random(X.shape) < fraction] = np.nan
    params = _start(rng, X, k, covariance_type)
    chunk = _pass.chunk_rows(n, k, d, covariance_type, tuning)
    n_slots = _missing.max_missing(X_missing) if covariance_type == "full" else 0
    chunk_missing = _missing.missing_chunk_size(n, k, d, covariance_type, n_slots, tuning)

    X_dev, Xm_dev = jnp.asarray(X), jnp.asarray(X_missing)
    complete = _best(lambda: iteration(params, X_dev, None, chunk), repeats)
    one_bound = _best(lambda: iteration(params, Xm_dev, n_slots, chunk_missing), repeats)
    groups = _missing.slot_groups(X_missing, covariance_type, k, tuning)
    missing, per_group = one_bound, None
    if groups is not None:
        X_sorted, _ = jax.jit(_missing.sorted_rows)(Xm_dev, w)  # once per fit, before the EM loop
        missing = _best(lambda: iteration(params, X_sorted, groups, None), repeats)
        if breakdown:
            per_group = group_times(params, X_sorted, w, groups, center, tuning, repeats)
    return dict(covariance_type=covariance_type, n=n, d=d, k=k, fraction=fraction, n_slots=n_slots,
                chunk_complete=chunk, chunk_missing=chunk_missing, groups=groups, per_group=per_group,
                complete_s=complete, one_bound_s=one_bound, missing_s=missing, ratio=missing / complete)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="full,diag")
    parser.add_argument("--n", type=int, default=None, help="override the rows of every case")
    parser.add_argument("--fraction", type=float, default=0.2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--groups", action="store_true", help="also time each slot group's pass alone")
    parser.add_argument("--exactly", default=None, help="comma-separated m: time rows missing exactly m entries")
    parser.add_argument("--first-fit", action="store_true",
                        help="time the first (compiling) and second gmm.fit call instead; run in a fresh process")
    parser.add_argument("--patterns", action="store_true",
                        help="with --exactly: the conditional covariances summed per row and per pattern")
    args = parser.parse_args(argv)
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind} ({jax.default_backend()})")
    for name in args.cases.split(","):
        size = dict(CASES[name])
        if args.n is not None:
            size["n"] = args.n
        if args.first_fit:
            first, second, lower_bound = first_fit(name, **size, fraction=args.fraction)
            print(f"{name:5s} N={size['n']:,} D={size['d']} K={size['k']} {100 * args.fraction:.0f}% MCAR: first "
                  f"gmm.fit (max_iter=5) {first:.2f} s, second {second:.3f} s, lower bound {lower_bound:.6f}",
                  flush=True)  # fmt: skip
            continue
        if args.exactly:
            counts = [int(m) for m in args.exactly.split(",")]
            timed = exactly_missing(name, **size, counts=counts, repeats=args.repeats, patterns=args.patterns)
            for m, seconds in timed.items():
                head = f"{name:5s} N={size['n']:,} D={size['d']} K={size['k']}, every row missing exactly {m}: "
                if args.patterns:
                    print(head + f"conditional covariances per row {1e3 * seconds[0]:.1f} ms, per pattern "
                          f"{1e3 * seconds[1]:.1f} ms ({seconds[2]:.3f} patterns per row of a chunk)", flush=True)
                else:
                    print(head + f"{1e3 * seconds:.1f} ms per iteration", flush=True)
            continue
        r = run_case(name, **size, fraction=args.fraction, repeats=args.repeats, breakdown=args.groups)
        print(f"{r['covariance_type']:5s} N={r['n']:,} D={r['d']} K={r['k']} {100 * r['fraction']:.0f}% MCAR "
              f"(slots {r['n_slots']}, chunks {r['chunk_complete']}/{r['chunk_missing']} rows): "
              f"complete {1e3 * r['complete_s']:.1f} ms, missing {1e3 * r['missing_s']:.1f} ms, "
              f"ratio {r['ratio']:.2f}x; one bound {1e3 * r['one_bound_s']:.1f} ms "
              f"({r['one_bound_s'] / r['complete_s']:.2f}x)", flush=True)
        if r["groups"] is not None:
            print("  slot groups (rows, slots, rows per chunk, patterns per chunk):", r["groups"].groups, flush=True)
        for (n_rows, n_slots, *_), seconds in zip(r["groups"].groups if r["per_group"] else (), r["per_group"] or ()):
            print(f"  group of {n_rows:,} rows, {n_slots} slots: {1e3 * seconds:.1f} ms "
                  f"({1e3 * seconds * 1e5 / n_rows:.0f} ms per 10^5 rows)", flush=True)


if __name__ == "__main__":
    main()
