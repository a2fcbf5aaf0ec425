"""Where an EM iteration's time goes on CPU: thread time per XLA operation.

    python -m benchmarks.profile_pass [--n 1000000] [--d 16] [--k 16] [--iters 6]

Fits full covariances on benchmark case a's data (by default N=10^6, D=16,
K=16) from a fixed start for ``--iters`` iterations, once under
``jax.profiler`` with XLA's per-operation trace events switched on
(``--xla_cpu_enable_xprof_traceme``, set here before JAX starts). Prints, per
EM iteration: the wall time untraced and traced, the busy time of each
thread, and the operations grouped by kind and output shape, largest first.
The sum of the operations' times over the wall time shows how well the
runtime keeps the cores busy; the table shows which operations to work on.
This is how the full pass of ``gmm_jax/_pass.py`` was tuned (see
benchmarks/README.md). CPU only: on a GPU use the profiler's own tools.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

_FLAG = "--xla_cpu_enable_xprof_traceme=true"
if "jax" in sys.modules and _FLAG not in os.environ.get("XLA_FLAGS", ""):
    print("note: jax was imported before this module; XLA's per-operation events may be missing", file=sys.stderr)
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _FLAG).strip()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import _libs  # noqa: E402

# Runtime bookkeeping and Python frames, not operations of the program.
_NOT_OPS = ("ThunkExecutor", "Await", "Pjit", "Executable")
# Control flow whose events enclose their bodies' operations (counted on their own).
_CONTROL = re.compile(r"(while|conditional|call)(\.\d+)?$")


def _is_op(name: str) -> bool:
    return not name.startswith("$") and not any(s in name for s in _NOT_OPS) and not _CONTROL.match(name)


def _kinds(hlo_text: str) -> dict[str, str]:
    """Fusion name -> "<output shape> <root op>" from a compiled module's text."""
    roots = {}
    for m in re.finditer(r"\n%(\S+) \(.*?\n((?:.*\n)*?)\}", hlo_text):
        root = re.findall(r"ROOT %\S+ = \S+ (\w+)\(", m.group(2))
        roots[m.group(1)] = root[0] if root else "?"
    kinds = {}
    for m in re.finditer(r"%(\S+) = (\S+) fusion\(.*?calls=%([\w.-]+)", hlo_text):
        kinds[m.group(1)] = f"{m.group(2)} {roots.get(m.group(3), '?')}"
    return kinds


def _events(trace_dir: Path) -> list[dict]:
    (path,) = trace_dir.glob("**/*.trace.json.gz")
    return [e for e in json.loads(gzip.open(path).read())["traceEvents"] if e.get("ph") == "X"]


def profile(n: int, d: int, k: int, iters: int) -> dict:
    rng = np.random.default_rng(0)
    X = _libs.make_blobs(rng, n, d, k)
    start = _libs.make_start(rng, X, k, "full")
    fit = _libs.gmm_jax_prepare(jnp.asarray(X), start, n_components=k, covariance_type="full",
                                max_iter=iters, tol=0.0)
    _libs.block(fit.run())  # warm-up
    t0 = time.perf_counter()
    _libs.block(fit.run())
    wall = (time.perf_counter() - t0) / iters
    with tempfile.TemporaryDirectory() as tmp:
        with jax.profiler.trace(tmp, create_perfetto_trace=True):
            t0 = time.perf_counter()
            _libs.block(fit.run())
            traced = (time.perf_counter() - t0) / iters
        events = _events(Path(tmp))
    kinds = _kinds(fit.compiled.as_text())
    by_kind: dict[str, float] = collections.defaultdict(float)
    by_thread: dict[int, float] = collections.defaultdict(float)
    for e in events:
        name = e["name"]
        if not _is_op(name):
            continue
        kind = kinds.get(name)
        key = f"{name.rstrip('0123456789').rstrip('.')} {kind}" if kind else name
        by_kind[key] += e["dur"] / 1e6 / iters
        by_thread[e["tid"]] += e["dur"] / 1e6 / iters
    return {"wall_s": wall, "traced_wall_s": traced, "threads_s": sorted(by_thread.values(), reverse=True),
            "ops_s": dict(sorted(by_kind.items(), key=lambda kv: -kv[1]))}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--d", type=int, default=16)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--iters", type=int, default=6, help="EM iterations per fit (tol=0)")
    parser.add_argument("--top", type=int, default=15, help="operation kinds to print")
    args = parser.parse_args(argv)
    if jax.default_backend() != "cpu":
        parser.error("XLA's per-operation events are a CPU runtime feature; use the profiler's GPU tools")
    res = profile(args.n, args.d, args.k, args.iters)
    ms = 1e3
    busy = sum(res["threads_s"])
    print(f"N={args.n}, D={args.d}, K={args.k}, full; per EM iteration inside fit:")
    print(f"  wall {res['wall_s'] * ms:.1f} ms (traced {res['traced_wall_s'] * ms:.1f} ms); "
          f"operations {busy * ms:.1f} ms of thread time, per thread "
          + ", ".join(f"{t * ms:.1f}" for t in res["threads_s"] if t * ms >= 0.05) + " ms")
    for key, t in list(res["ops_s"].items())[: args.top]:
        print(f"  {t * ms:8.2f} ms  {key}")
    return res


if __name__ == "__main__":
    main()
