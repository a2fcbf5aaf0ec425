"""The hierarchical start's agglomeration (``_hierarchical.vvv_merges``), and against an earlier revision.

``python -m benchmarks.hierarchical [--baseline REV] [--out DIR]`` from the
repository root (float64, as mclust). For S rows in D features (blobs), it
times the ``hcVVV`` merges of ``S`` whitened rows: compile once, then the
best of 3 runs. With ``--baseline``, the same call of ``gmm_jax`` as of git
revision ``REV`` runs beside it in one process, alternating, and the two
trees are checked to be the same. It also times the merge costs' log
determinant of 1,000 matrices both ways (``_hierarchical._logdet_pd``: the
unrolled column-by-column Cholesky against ``jnp.linalg.slogdet``), the
measurement behind ``_COLUMNWISE_LOGDET_D``. Writes ``hierarchical.json`` and
``hierarchical.md`` under ``DIR`` (default: print only).
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import _machine  # noqa: E402
from benchmarks.compare_revisions import BASELINE, _alternating_best, import_revision  # noqa: E402

SIZES = ((500, 8), (1000, 2), (1000, 8), (1000, 16))
LOGDET_D = (2, 3, 4, 8, 12, 14, 16)


def _compile_seconds(f, Z) -> float:
    t0 = time.perf_counter()
    f.lower(Z).compile()
    return time.perf_counter() - t0


def measure(baseline: str | None = None, repeats: int = 3) -> dict:
    from gmm_jax import _hierarchical

    modules = {"gmm_jax": _hierarchical}
    report = {"machine": _machine.describe(), "sizes": []}
    if baseline is not None:
        report["baseline"] = import_revision(baseline)
        modules[BASELINE] = importlib.import_module(f"{BASELINE}._hierarchical")
    rng = np.random.default_rng(0)
    for n, d in SIZES:
        X = rng.normal(size=(n, d)) + rng.integers(0, 4, (n, 1)) * 3.0
        Z = _hierarchical.whiten(jnp.asarray(X))
        compile_s = {name: _compile_seconds(m.vvv_merges, Z) for name, m in modules.items()}
        runs = {name: (lambda m=m: m.vvv_merges(Z)) for name, m in modules.items()}
        best, outputs = _alternating_best(runs, repeats)
        row = {"rows": n, "features": d, "seconds": best, "compile_seconds": compile_s}
        if baseline is not None:
            row["same_tree"] = bool(np.array_equal(np.asarray(outputs["gmm_jax"]), np.asarray(outputs[BASELINE])))
        report["sizes"].append(row)
        print(json.dumps(row), flush=True)
    report["logdet"] = logdet_kernels(rng, repeats=20)
    return report


def logdet_kernels(rng, repeats: int, n_matrices: int = 1000) -> list:
    """Median seconds of the log determinant of ``n_matrices`` D×D SPD matrices, column by column and by slogdet."""
    from gmm_jax import _hierarchical

    def slogdet(A):
        sign, logdet = jnp.linalg.slogdet(A)
        return jnp.where(sign > 0, logdet, -jnp.inf)

    def columnwise(A):  # the unrolled Cholesky at every D (the threshold lifted while tracing)
        threshold, _hierarchical._COLUMNWISE_LOGDET_D = _hierarchical._COLUMNWISE_LOGDET_D, A.shape[-1]
        try:
            return _hierarchical._logdet_pd(A)
        finally:
            _hierarchical._COLUMNWISE_LOGDET_D = threshold

    rows = []
    for d in LOGDET_D:
        B = rng.normal(size=(n_matrices, d, d + 3))
        A = jnp.asarray(B @ B.transpose(0, 2, 1))
        seconds = {}
        for name, f in (("columnwise", jax.jit(columnwise)), ("slogdet", jax.jit(slogdet))):
            f(A).block_until_ready()
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                f(A).block_until_ready()
                times.append(time.perf_counter() - t0)
            seconds[name] = float(np.median(times))
        rows.append({"features": d, "matrices": n_matrices, "seconds": seconds})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def markdown(report: dict) -> str:
    names = list(report["sizes"][0]["seconds"])
    m = report["machine"]
    lines = [f"# hcVVV agglomeration (`_hierarchical.vvv_merges`), float64\n\n- machine: {_machine.device_label(m)}; "
             f"jax {m['versions'].get('jax')}, numpy {m['versions'].get('numpy')}\n"]
    if "baseline" in report:
        lines.append(f"Baseline: `gmm_jax` at {report['baseline']} (`{BASELINE}`), same process, alternating.\n")
    header = " | ".join(f"{n}: run s | {n}: compile s" for n in names)
    lines.append(f"| S rows | D | {header} |" + (" same tree |" if "baseline" in report else ""))
    lines.append("|---|---|" + "---|---|" * len(names) + ("---|" if "baseline" in report else ""))
    for row in report["sizes"]:
        cells = " | ".join(f"{row['seconds'][n]:.3f} | {row['compile_seconds'][n]:.2f}" for n in names)
        same = f" {row['same_tree']} |" if "baseline" in report else ""
        lines.append(f"| {row['rows']} | {row['features']} | {cells} |{same}")
    if report.get("logdet"):
        n = report["logdet"][0]["matrices"]
        lines.append(f"\nLog determinant of {n} SPD matrices (median of 20, ms; `_COLUMNWISE_LOGDET_D`):\n")
        lines.append("| D | column by column | slogdet |")
        lines.append("|---|---|---|")
        for row in report["logdet"]:
            t = row["seconds"]
            lines.append(f"| {row['features']} | {t['columnwise'] * 1e3:.3f} | {t['slogdet'] * 1e3:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", help="a git revision to run beside the checkout")
    parser.add_argument("--out", type=Path, help="folder for hierarchical.json and hierarchical.md")
    args = parser.parse_args(argv)
    report = measure(args.baseline)
    text = markdown(report)
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "hierarchical.json").write_text(json.dumps(report, indent=1))
        (args.out / "hierarchical.md").write_text(text)
    return report


if __name__ == "__main__":
    main()
