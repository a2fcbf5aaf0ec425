"""gmm_jax's best BIC per (K, covariance type) against mclust's ``mclustBIC``.

``python -m tests.reference.compare_bic [--init kmeans|hierarchical] [--n-init 10] [--select]``
from the repository root (float64). For each reference dataset, K = 1..9 and
the four covariance types, it fits ``gmm.fit(..., n_init=N)`` without a prior
(default ``reg_covar``) and with ``ConjugatePrior.default`` (``reg_covar=0``),
takes gmm_jax's BIC (scikit-learn's sign: lower is better) and compares it
with ``-mclustBIC`` from ``mclust_reference.json``. A cell counts as "as good
as mclust" when gmm_jax's BIC is at most mclust's + 0.5; cells where mclust
returned NA are left out. ``--init hierarchical`` starts instead from
``gmm_jax._hierarchical`` (one agglomeration per dataset, cut at each K),
plus ``n_init - 1`` k-means restarts; ``--improve earlier.json`` refits only
the cells of an earlier run that were worse than mclust and keeps the better
of the two BICs (so "k-means restarts, then a hierarchical start" costs
only those cells). Writes ``bic_comparison_<init>.json`` (or ``--output``)
and prints a table. ``--select`` fills the table with one ``gmm.select``
call per dataset and prior setting instead of separate fits (written to
``bic_comparison_select_<init>.json``).
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

import gmm_jax as gmm  # noqa: E402

try:
    from . import mclust_data  # noqa: E402
except ImportError:  # run as a file
    import mclust_data  # noqa: E402

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
K_RANGE = range(1, 10)


def _best_fit(key, X, k, covariance_type, prior, n_init, init):
    reg_covar = 0.0 if prior is not None else 1e-6
    fits = []
    if init == "hierarchical" and k > 1:
        from gmm_jax import _hierarchical

        start = _hierarchical.initial_params(X, k, covariance_type, prior=prior, reg_covar=reg_covar)
        try:
            fits.append(gmm.fit(key, X, k, covariance_type=covariance_type, init_params=start, prior=prior,
                                reg_covar=reg_covar, max_iter=1000, tol=1e-6))  # fmt: skip
        except ValueError:
            pass
        n_init = n_init - 1
    if n_init > 0:
        try:
            fits.append(gmm.fit(key, X, k, covariance_type=covariance_type, n_init=n_init, prior=prior,
                                reg_covar=reg_covar, max_iter=1000, tol=1e-6))  # fmt: skip
        except ValueError:
            pass
    if not fits:
        return np.inf
    return min(float(gmm.bic(f.params, X)) for f in fits)


def compare(init="kmeans", n_init=10, names=mclust_data.DATASETS, only_worse_than=None,
            types=COVARIANCE_TYPES, labels=("no_prior", "prior")):  # fmt: skip
    """Best BIC per cell; with ``only_worse_than`` (an earlier result), only the cells that were worse than mclust."""
    reference = json.loads((mclust_data.HERE / "mclust_reference.json").read_text())
    out = {}
    for name in names:
        X = mclust_data.load(name)
        mclust = reference["datasets"][name]["bic"]
        out[name] = {}
        for with_prior in (False, True):
            label = "prior" if with_prior else "no_prior"
            if label not in labels:
                continue
            cells = {}
            for covariance_type in types:
                ours, theirs = [], []
                for k in K_RANGE:
                    prior = gmm.ConjugatePrior.default(X, k, covariance_type) if with_prior else None
                    t = time.perf_counter()
                    value = mclust[label][covariance_type][k - 1]
                    theirs.append(None if value is None else -value)
                    if only_worse_than is not None:
                        earlier = only_worse_than.get(name, {}).get(label, {}).get(covariance_type)
                        before = None if earlier is None else earlier["gmm_jax"][k - 1]
                        if before is None or theirs[-1] is None or before <= theirs[-1] + 0.5:
                            ours.append(before)
                            continue
                        ours.append(min(before, _best_fit(jax.random.key(k), X, k, covariance_type, prior, n_init, init)))
                    else:
                        ours.append(_best_fit(jax.random.key(k), X, k, covariance_type, prior, n_init, init))
                    if ours[-1] is None:
                        continue
                    print(f"{name:9s} {label:8s} {covariance_type:9s} K={k}  gmm_jax {ours[-1]:10.3f}  "
                          f"mclust {theirs[-1] if theirs[-1] is not None else float('nan'):10.3f}  "
                          f"({time.perf_counter() - t:.1f} s)", flush=True)  # fmt: skip
                cells[covariance_type] = dict(gmm_jax=ours, mclust=theirs)
            out[name][label] = cells
    return out


def compare_select(init="hierarchical", n_init=10, names=mclust_data.DATASETS, labels=("no_prior", "prior")):
    """The same table from one ``gmm.select`` call per dataset and prior setting (the user's way)."""
    reference = json.loads((mclust_data.HERE / "mclust_reference.json").read_text())
    out = {}
    for name in names:
        X = mclust_data.load(name)
        mclust = reference["datasets"][name]["bic"]
        out[name] = {}
        for label in labels:
            with_prior = label == "prior"
            t = time.perf_counter()
            sel = gmm.select(jax.random.key(0), X, K_RANGE, covariance_types=COVARIANCE_TYPES, init=init,
                             n_init=n_init, max_iter=1000, tol=1e-6, prior="default" if with_prior else "none",
                             reg_covar=0.0 if with_prior else 1e-6)  # fmt: skip
            table = np.asarray(sel.criterion)
            cells = {}
            for t_index, covariance_type in enumerate(COVARIANCE_TYPES):
                theirs = [None if v is None else -v for v in mclust[label][covariance_type]]
                ours = [float(v) if np.isfinite(v) else None for v in table[t_index]]
                cells[covariance_type] = dict(gmm_jax=ours, mclust=theirs)
            out[name][label] = cells
            print(f"{name} {label}: select in {time.perf_counter() - t:.1f} s", flush=True)
    return out


def summarise(out):
    lines = ["| dataset | prior | cells | as good as mclust (<= +0.5) | worse cells: (type, K, gmm_jax - mclust) |", "|---|---|---|---|---|"]
    for name, by_prior in out.items():
        for label, cells in by_prior.items():
            good, total, worse = 0, 0, []
            for covariance_type, values in cells.items():
                for k, (a, b) in enumerate(zip(values["gmm_jax"], values["mclust"]), start=1):
                    if a is None or b is None:  # not run, or mclust's fit failed (NA)
                        continue
                    total += 1
                    if a <= b + 0.5:
                        good += 1
                    else:
                        worse.append(f"{covariance_type} {k} {a - b:+.1f}")
            if total:
                lines.append(f"| {name} | {label} | {total} | {good}/{total} = {good / total:.0%} | {'; '.join(worse)} |")
    return "\n".join(lines)


def parse_logs(paths):
    """Rebuilds ``compare``'s result from its printed lines (runs split over processes, or interrupted)."""
    out = {}
    for path in paths:
        for line in open(path):
            parts = line.split()
            if len(parts) < 8 or parts[4] != "gmm_jax" or not parts[3].startswith("K="):
                continue
            name, label, covariance_type, k = parts[0], parts[1], parts[2], int(parts[3][2:])
            ours, theirs = float(parts[5]), float(parts[7])
            cell = out.setdefault(name, {}).setdefault(label, {}).setdefault(
                covariance_type, dict(gmm_jax=[None] * len(K_RANGE), mclust=[None] * len(K_RANGE))
            )
            cell["gmm_jax"][k - 1] = ours
            cell["mclust"][k - 1] = None if np.isnan(theirs) else theirs
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--init", default="kmeans", choices=("kmeans", "hierarchical"))
    parser.add_argument("--n-init", type=int, default=10)
    parser.add_argument("--datasets", nargs="*", default=list(mclust_data.DATASETS), choices=mclust_data.DATASETS)
    parser.add_argument(
        "--improve", metavar="JSON",
        help="an earlier bic_comparison_*.json: refit only its cells worse than mclust and keep the better BIC",
    )  # fmt: skip
    parser.add_argument("--output", help="default: bic_comparison_<init>.json beside this file")
    parser.add_argument("--types", nargs="*", default=list(COVARIANCE_TYPES), choices=COVARIANCE_TYPES)
    parser.add_argument("--priors", nargs="*", default=["no_prior", "prior"], choices=["no_prior", "prior"])
    parser.add_argument("--select", action="store_true", help="one gmm.select call per dataset and prior setting")
    parser.add_argument("--from-logs", nargs="*", metavar="LOG", help="only rebuild the result from printed lines")
    args = parser.parse_args()
    if args.from_logs:
        out = parse_logs(args.from_logs)
        record = dict(init=args.init, n_init=args.n_init, improves=args.improve, cells=out)
        open(args.output or mclust_data.HERE / f"bic_comparison_{args.init}.json", "w").write(json.dumps(record, indent=1))
        print(summarise(out))
        return
    earlier = json.loads(open(args.improve).read())["cells"] if args.improve else None
    if args.select:
        out = compare_select(args.init, args.n_init, args.datasets, args.priors)
    else:
        out = compare(args.init, args.n_init, args.datasets, earlier, args.types, args.priors)
    path = args.output or mclust_data.HERE / f"bic_comparison_{'select_' if args.select else ''}{args.init}.json"
    record = dict(init=args.init, n_init=args.n_init, improves=args.improve, select=args.select, cells=out)
    open(path, "w").write(json.dumps(record, indent=1))
    print(summarise(out))


if __name__ == "__main__":
    main()
