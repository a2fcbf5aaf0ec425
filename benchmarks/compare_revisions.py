"""Time this checkout's gmm_jax against another revision of it, in one process, on the same data.

    python -m benchmarks.compare_revisions --baseline 474986b            # cases a-f, two sizes each
    python -m benchmarks.compare_revisions --baseline 474986b --cases d,e --quick

The baseline's ``gmm_jax/`` is taken from git (``git archive REV gmm_jax``),
renamed ``gmm_jax_baseline`` (its absolute imports rewritten to match) and
imported beside this checkout's package, so both run in one process, on one
copy of the data, under one machine load. Each timed repeat runs the two
revisions back to back, alternating which goes first, and the best of the
repeats is kept for each: a slow spell of the machine (benchmarks/README.md)
hits both. The cases are those of ``benchmarks.run`` (a, b, t: per EM iteration
from one start; c: whole fits with restarts; d: the seed scenario; e: 1,000
fits under one ``vmap``; f: case a against a plain ``jnp.dot``; g: one model
selection over K and the four covariance types), each at its
``benchmarks.run`` size and at a second, smaller size, so that a cache cliff
at one size does not decide the comparison. Compile times are reported
separately, and each case checks that both revisions computed the same fit
(mean log-likelihood with one scorer).

Writes ``<out>/<device>.json`` and ``<out>/<device>.md``.
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import _libs, _machine
from benchmarks.run import RESULTS, _square_dot_time

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "gmm_jax_baseline"
CURRENT = "gmm_jax"


def import_revision(rev: str) -> str:
    """Imports ``gmm_jax`` as of git revision ``rev`` under the name ``gmm_jax_baseline``; returns its commit."""
    commit = subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.strip()
    archive = subprocess.run(["git", "archive", rev, "gmm_jax"], cwd=ROOT, capture_output=True, check=True).stdout
    folder = Path(tempfile.mkdtemp(prefix="gmm_jax_baseline_"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    package = folder / BASELINE
    (folder / "gmm_jax").rename(package)
    for source in package.rglob("*.py"):
        source.write_text(re.sub(r"\bgmm_jax\b", BASELINE, source.read_text()))
    sys.path.insert(0, str(folder))
    importlib.import_module(BASELINE)
    return commit


def _alternating_best(runs: dict, repeats: int) -> tuple[dict, dict]:
    """Best wall time of each ``runs[name]()`` over ``repeats`` rounds, the order alternating per round."""
    names = list(runs)
    times = {name: [] for name in names}
    outputs = {}
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            t0 = time.perf_counter()
            outputs[name] = _libs.block(runs[name]())
            times[name].append(time.perf_counter() - t0)
    return {name: min(t) for name, t in times.items()}, outputs


def _params_of(package: str, start: _libs.Start, covariance_type: str, dtype):
    gmm = importlib.import_module(package)
    return gmm.GMMParams.from_covariances(jnp.asarray(start.weights, dtype), jnp.asarray(start.means, dtype),
                                          jnp.asarray(start.covariances, dtype), covariance_type=covariance_type)


def per_iteration(size: dict, covariance_type: str, repeats: int, iters: int) -> dict:
    """Cases a, b and t: per-EM-iteration time of both revisions from one start (as ``benchmarks.run``)."""
    rng = np.random.default_rng(0)
    X = _libs.make_blobs(rng, size["n"], size["d"], size["k"], conditioned=True)
    start = _libs.make_start(rng, X, size["k"], covariance_type)
    X_dev = jax.block_until_ready(jnp.asarray(X))
    common = dict(n_components=size["k"], covariance_type=covariance_type, tol=0.0)
    runs, prepared = {}, {}
    for package in (CURRENT, BASELINE):
        for m in (1, iters):
            prep = _libs.gmm_jax_prepare(X_dev, start, max_iter=m, package=package, **common)
            prep.run()  # warm-up
            runs[(package, m)], prepared[(package, m)] = prep.run, prep
    best, outputs = _alternating_best(runs, repeats)
    out = {}
    for package in (CURRENT, BASELINE):
        fitted = [prepared[(package, m)].summarize(outputs[(package, m)]) for m in (1, iters)]
        if [f.n_iter for f in fitted] != [1, iters]:
            raise RuntimeError(f"{package} ran {[f.n_iter for f in fitted]} iterations, not [1, {iters}]")
        out[package] = {
            "per_iter_s": (best[(package, iters)] - best[(package, 1)]) / (iters - 1),
            "compile_s": prepared[(package, iters)].compile_s,
            "mean_log_likelihood": _libs.mean_log_likelihood(X, fitted[1], covariance_type),
        }
    return out


def _whole_fits(X: np.ndarray, start, common: dict, repeats: int) -> dict:
    """Whole ``gmm.fit`` calls of both revisions on ``X`` (``start=None``: each initialises), timed side by side."""
    X_dev = jax.block_until_ready(jnp.asarray(X))
    prepared = {p: _libs.gmm_jax_prepare(X_dev, start, package=p, **common) for p in (CURRENT, BASELINE)}
    for prep in prepared.values():
        prep.run()  # warm-up
    best, outputs = _alternating_best({p: prep.run for p, prep in prepared.items()}, repeats)
    out = {}
    for p, prep in prepared.items():
        fitted = prep.summarize(outputs[p])
        out[p] = {"fit_s": best[p], "compile_s": prep.compile_s, "n_iter": fitted.n_iter,
                  "mean_log_likelihood": _libs.mean_log_likelihood(X, fitted, common["covariance_type"])}
    return out


def whole_fit(size: dict, repeats: int) -> dict:
    """Case c: whole fits with restarts at default tol, each revision's own k-means init."""
    X = _libs.make_blobs(np.random.default_rng(1), size["n"], size["d"], size["k"])
    common = dict(n_components=size["k"], covariance_type="full", max_iter=100, tol=1e-3, n_init=size["n_init"])
    return _whole_fits(X, None, common, repeats)


def seed_fit(size: dict, repeats: int) -> dict:
    """Case d: the seed scenario, 100 fixed iterations from one start, and its compile time."""
    rng = np.random.default_rng(2)
    X = _libs.make_blobs(rng, size["n"], size["d"], size["k"])
    start = _libs.make_start(rng, X, size["k"], "full")
    common = dict(n_components=size["k"], covariance_type="full", max_iter=100, tol=0.0)
    return _whole_fits(X, start, common, repeats)


def batched(size: dict, repeats: int) -> dict:
    """Case e: independent seed-sized datasets in one ``jax.vmap(gmm.fit)`` call (default options)."""
    rng = np.random.default_rng(3)
    b, k = size["datasets"], size["k"]
    Xs = np.stack([_libs.make_blobs(rng, size["n"], size["d"], k) for _ in range(b)])
    Xs_dev = jax.block_until_ready(jnp.asarray(Xs))
    keys = jax.random.split(jax.random.key(0), b)
    compiled, compile_s = {}, {}
    for p in (CURRENT, BASELINE):
        gmm = importlib.import_module(p)
        t0 = time.perf_counter()
        compiled[p] = jax.jit(jax.vmap(lambda key, X, gmm=gmm: gmm.fit(key, X, k))).lower(keys, Xs_dev).compile()
        compile_s[p] = time.perf_counter() - t0
        compiled[p](keys, Xs_dev)
    best, outputs = _alternating_best({p: (lambda p=p: compiled[p](keys, Xs_dev)) for p in compiled}, repeats)
    out = {}
    for p in compiled:
        params = outputs[p].params
        ll = [_libs.mean_log_likelihood(Xs[i], _libs.Fitted(0, np.asarray(params.weights[i]),
              np.asarray(params.means[i]), np.asarray(params.precisions_cholesky[i])), "full") for i in range(b)]
        out[p] = {"fit_s": best[p], "compile_s": compile_s[p], "mean_n_iter": float(np.mean(outputs[p].n_iter)),
                  "mean_log_likelihood": float(np.mean(ll))}
    return out


def selection(size: dict, repeats: int) -> dict:
    """Case g: one ``gmm.select`` call, K = 1..k_max x the four covariance types, defaults (as ``benchmarks.run``)."""
    X = _libs.make_blobs(np.random.default_rng(4), size["n"], size["d"], 5)
    X_dev = jax.block_until_ready(jnp.asarray(X))
    ks = list(range(1, size["k_max"] + 1))
    runs, compile_s = {}, {}
    for p in (CURRENT, BASELINE):
        gmm = importlib.import_module(p)
        runs[p] = lambda gmm=gmm: gmm.select(jax.random.key(0), X_dev, ks)
        t0 = time.perf_counter()
        _libs.block(runs[p]())
        compile_s[p] = time.perf_counter() - t0  # the first call: compiles the sweeps
    best, outputs = _alternating_best(runs, repeats)
    # "Same fit": the chosen model's mean log-likelihood (its lower bound), and the same choice.
    return {p: {"fit_s": best[p], "compile_s": compile_s[p],
                "mean_log_likelihood": float(outputs[p].best.lower_bound),
                "choice": f"{outputs[p].best_covariance_type} K={int(outputs[p].best_n_components)}"}
            for p in runs}


# case -> (title, timed measure, the two sizes (benchmarks.run's first), function(size, repeats))
CASES = {
    "a": ("full covariance, per EM iteration", "per_iter_s",
          [dict(n=1_000_000, d=16, k=16), dict(n=100_000, d=16, k=16)],
          lambda size, repeats: per_iteration(size, "full", repeats, iters=11)),
    "b": ("diag covariance, per EM iteration", "per_iter_s",
          [dict(n=1_000_000, d=64, k=64), dict(n=100_000, d=64, k=64)],
          lambda size, repeats: per_iteration(size, "diag", repeats, iters=6)),
    "t": ("tied covariance, per EM iteration", "per_iter_s",
          [dict(n=200_000, d=16, k=16), dict(n=100_000, d=8, k=10)],
          lambda size, repeats: per_iteration(size, "tied", repeats, iters=11)),
    "c": ("full covariance, n_init=8 restarts, whole fit (own k-means init)", "fit_s",
          [dict(n=100_000, d=8, k=8, n_init=8), dict(n=20_000, d=8, k=8, n_init=8)], whole_fit),
    "d": ("seed scenario: 100 iterations after compilation", "fit_s",
          [dict(n=500, d=2, k=3), dict(n=5_000, d=2, k=3)], seed_fit),
    "e": ("seed-sized datasets, one jax.vmap(gmm.fit) call", "fit_s",
          [dict(datasets=1000, n=500, d=2, k=3), dict(datasets=100, n=500, d=2, k=3)], batched),
    "g": ("model selection, K = 1..10 x 4 types, one gmm.select call", "fit_s",
          [dict(n=100_000, d=8, k_max=10), dict(n=30_000, d=8, k_max=10)], selection),
}
QUICK_SIZES = {
    "a": dict(n=20_000, d=8, k=4), "b": dict(n=20_000, d=16, k=8), "t": dict(n=20_000, d=8, k=4),
    "c": dict(n=5_000, d=4, k=4, n_init=2),
    "d": dict(n=500, d=2, k=3), "e": dict(datasets=20, n=500, d=2, k=3), "g": dict(n=3_000, d=4, k_max=4),
}


def roofline(case_a: dict, repeats: int) -> dict:
    """Case f: case a's nominal FLOPs (4 N K D^2) as one plain float32 ``jnp.dot``, against each revision's iteration."""
    size, times = case_a["size"], case_a["revisions"]
    flops = 4.0 * size["n"] * size["k"] * size["d"] ** 2
    t_dot, dot_size = _square_dot_time(flops, repeats)
    return {"size": size, "dot_s": t_dot, "dot_size": dot_size,
            "revisions": {p: {"fraction_of_matmul_speed": t_dot / times[p]["per_iter_s"]} for p in times}}


def _markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        f"# gmm_jax {report['current']} against {report['baseline']}, side by side",
        "",
        f"- when: {report['date']}; command: `{report['command']}`",
        f"- machine: {_machine.device_label(m)}; jax {m['versions'].get('jax')}, numpy {m['versions'].get('numpy')}",
        "- one process, the same float32 data for both; each repeat runs both revisions back to back "
        f"(alternating which first), best of {report['repeats']}; compile timed separately.",
        "- 'ratio' is baseline time / current time: above 1, the current code is faster.",
        "",
        "| case | size | current | baseline | ratio | compile current / baseline | same fit (mean log-lik.) |",
        "|---|---|---|---|---|---|---|",
    ]
    for letter, entry in report["cases"].items():
        for run in entry["runs"]:
            size = ", ".join(f"{k}={v:,}" if isinstance(v, int) else f"{k}={v}" for k, v in run["size"].items())
            if letter == "f":
                cur, base = (run["revisions"][p]["fraction_of_matmul_speed"] for p in (CURRENT, BASELINE))
                lines.append(f"| f: {entry['title']} | {size} | {cur:.0%} of matmul | {base:.0%} of matmul | "
                             f"{cur / base:.2f} | – | – |")
                continue
            key = entry["measure"]
            cur, base = run["revisions"][CURRENT], run["revisions"][BASELINE]
            unit = "/ iter" if key == "per_iter_s" else "/ call"
            same = f"{cur['mean_log_likelihood']:.5f} / {base['mean_log_likelihood']:.5f}"
            compile_ = f"{cur['compile_s']:.2f} s / {base['compile_s']:.2f} s"
            lines.append(f"| {letter}: {entry['title']} | {size} | {cur[key] * 1e3:.2f} ms {unit} | "
                         f"{base[key] * 1e3:.2f} ms {unit} | {base[key] / cur[key]:.2f} | {compile_} | {same} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="git revision to compare against (e.g. 474986b)")
    parser.add_argument("--cases", default="a,b,c,d,e,f", help="comma list from a,b,c,d,e,f,g,t (f needs a)")
    parser.add_argument("--repeats", type=int, default=5, help="alternating rounds; the best of each is kept")
    parser.add_argument("--quick", action="store_true", help="one tiny size per case (a smoke test)")
    parser.add_argument("--out", type=Path, default=RESULTS / "round2" / "revisions")
    args = parser.parse_args(argv)
    letters = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = sorted(set(letters) - set(CASES) - {"f"})
    if unknown:
        parser.error(f"unknown case(s) {unknown}; choose from a,b,c,d,e,f,g,t")
    if "f" in letters and "a" not in letters:
        parser.error("case f compares case a's iteration with a matmul: add a to --cases")
    baseline = import_revision(args.baseline)
    machine = _machine.describe()
    report = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
              "command": "python -m benchmarks.compare_revisions " + " ".join(argv if argv is not None else sys.argv[1:]),
              "baseline": baseline, "current": machine.get("gmm_jax_commit") or "working tree",
              "repeats": args.repeats, "machine": machine, "cases": {}}
    for letter in letters:
        if letter == "f":
            continue
        title, measure, sizes, fn = CASES[letter]
        entry = {"title": title, "measure": measure, "runs": []}
        for size in [QUICK_SIZES[letter]] if args.quick else sizes:
            print(f"case {letter} {size}", flush=True)
            revisions = fn(size, args.repeats)
            ratio = revisions[BASELINE][measure] / revisions[CURRENT][measure]
            print(f"    current {revisions[CURRENT][measure] * 1e3:.2f} ms, baseline "
                  f"{revisions[BASELINE][measure] * 1e3:.2f} ms: ratio {ratio:.2f}", flush=True)
            entry["runs"].append({"size": size, "revisions": revisions, "ratio_baseline_over_current": ratio})
        report["cases"][letter] = entry
    if "f" in letters:
        runs = [roofline({"size": run["size"], "revisions": run["revisions"]}, args.repeats)
                for run in report["cases"]["a"]["runs"]]
        report["cases"]["f"] = {"title": "case a's iteration against a plain jnp.dot of its FLOPs",
                                "measure": "fraction_of_matmul_speed", "runs": runs}
    args.out.mkdir(parents=True, exist_ok=True)
    tag = machine["jax_backend"]
    (args.out / f"{tag}.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    (args.out / f"{tag}.md").write_text(_markdown(report))
    print(f"wrote {args.out / (tag + '.md')}", flush=True)
    return report


if __name__ == "__main__":
    main()
