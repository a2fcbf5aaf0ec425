"""The ``gmm-jax`` command line.

``gmm-jax demo``  samples the tutorial's three-component mixture, fits it
                  by EM and writes four figures.
``gmm-jax fit``   fits a mixture to a CSV or ``.npy`` file and saves it.

Run ``gmm-jax COMMAND --help`` for the options. Problems with the input
(missing file, non-numeric or ragged rows, NaN, too few rows) are reported
as one line on stderr with exit status 2.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

EXIT_OK = 0
EXIT_USAGE = 2  # bad input or options, as argparse uses

# The tutorial's ground truth: three isotropic components in 2-D.
DEMO_WEIGHTS = (0.5, 0.2, 0.3)
DEMO_MEANS = ((-1.0, -1.0), (1.0, -1.5), (0.0, 2.0))
DEMO_VARIANCE = 0.3
DEMO_N_SAMPLES = 500
DEMO_FIGURES = ("true_mixture.png", "fitted_mixture.png",
                "em_log_likelihood.png", "true_vs_learned.png")

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
INITS = ("kmeans", "k-means++", "random", "random_from_data")


class DataError(ValueError):
    """A data file that cannot be fitted; the message is shown to the user."""


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the ``gmm-jax`` command and returns its exit status.

    Args:
      argv: the arguments after the program name; ``sys.argv[1:]`` when None.

    Returns:
      0 on success, 2 for unusable input or options.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return args.run(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gmm-jax",
        description="Gaussian mixture models fitted by EM in JAX.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser(
        "demo", help="fit the tutorial's 3-component mixture and plot it",
        description=(
            "Sample 500 points from a known 3-component mixture in 2-D, fit "
            "a mixture to them by EM (k-means initialisation), compare the "
            "result with the truth and write four PNG figures."))
    demo.add_argument("--out", metavar="DIR", default="demo_out",
                      help="folder for the figures (default: %(default)s)")
    demo.add_argument("--seed", metavar="N", type=int, default=0,
                      help="random seed (default: %(default)s)")
    demo.set_defaults(run=run_demo)

    fit = commands.add_parser(
        "fit", help="fit a mixture to a CSV or .npy data file",
        description=(
            "Fit a Gaussian mixture to DATA, a CSV file (one sample per row, "
            "an optional header row) or a .npy array of shape "
            "(n_samples, n_features). Prints a summary and saves the "
            "parameters; load them with gmm_jax.load(path)."))
    fit.add_argument("data", metavar="DATA", help="CSV or .npy file")
    fit.add_argument("--components", "-k", metavar="K", type=_positive_int,
                     required=True, help="number of mixture components")
    fit.add_argument("--covariance-type", choices=COVARIANCE_TYPES,
                     default="full", help="(default: %(default)s)")
    fit.add_argument("--init", choices=INITS, default="kmeans",
                     help="initialisation (default: %(default)s)")
    fit.add_argument("--n-init", metavar="R", type=_positive_int, default=1,
                     help="restarts; the best is kept (default: %(default)s)")
    fit.add_argument("--max-iter", metavar="M", type=_positive_int,
                     default=100, help="EM iterations at most "
                     "(default: %(default)s)")
    fit.add_argument("--tol", type=float, default=1e-3,
                     help="stop when the mean log-likelihood changes by less "
                     "(default: %(default)s)")
    fit.add_argument("--reg-covar", metavar="EPS", type=float, default=1e-6,
                     help="added to the covariance diagonal "
                     "(default: %(default)s)")
    fit.add_argument("--seed", metavar="S", type=int, default=0,
                     help="random seed (default: %(default)s)")
    fit.add_argument("--out", metavar="PATH", default="model.npz",
                     help="where to save the parameters (default: "
                     "%(default)s)")
    fit.add_argument("--plot", metavar="PNG", default=None,
                     help="also draw the fit (first two features, or "
                     "--features) to this image file")
    fit.add_argument("--features", metavar=("I", "J"), type=int, nargs=2,
                     default=(0, 1), help="the two features to plot "
                     "(default: 0 1)")
    fit.add_argument("--delimiter", default=None,
                     help="CSV delimiter (default: ',', or tab for .tsv)")
    fit.add_argument("--verbose", "-v", action="store_true",
                     help="print the log-likelihood of every EM iteration")
    fit.set_defaults(run=run_fit)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


# --------------------------------------------------------------------------
# gmm-jax demo


def run_demo(args: argparse.Namespace) -> int:
    """``gmm-jax demo``: the tutorial scenario from sampling to figures."""
    import jax
    import jax.numpy as jnp

    import gmm_jax as gmm

    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return _fail("demo", f"cannot create output folder {out}: {e.strerror}")

    print(f"gmm-jax demo (seed {args.seed})")
    print(f"True mixture: {len(DEMO_WEIGHTS)} components in 2-D, covariance "
          f"{DEMO_VARIANCE}·I for each")
    for k, (w, m) in enumerate(zip(DEMO_WEIGHTS, DEMO_MEANS)):
        print(f"  component {k}: weight {w:.1f}, mean ({m[0]:+.1f}, {m[1]:+.1f})")
    true_params = gmm.GMMParams.from_covariances(
        jnp.asarray(DEMO_WEIGHTS), jnp.asarray(DEMO_MEANS),
        jnp.full((len(DEMO_WEIGHTS),), DEMO_VARIANCE),
        covariance_type="spherical")

    sample_key, fit_key = jax.random.split(jax.random.key(args.seed))
    X, true_labels = gmm.sample(sample_key, true_params, DEMO_N_SAMPLES)
    X_np, true_np = np.asarray(X), np.asarray(true_labels)
    counts = np.bincount(true_np, minlength=len(DEMO_WEIGHTS))
    print(f"\nSampled {DEMO_N_SAMPLES} points; per component:")
    for k, (c, w) in enumerate(zip(counts, DEMO_WEIGHTS)):
        print(f"  component {k}: {c} samples (expected {w * DEMO_N_SAMPLES:.0f})")

    n_components, max_iter, tol = len(DEMO_WEIGHTS), 200, 1e-6
    print(f"\nFitting {n_components} components (full covariances, k-means "
          f"initialisation, tol {tol:g}, at most {max_iter} iterations)...")
    start = time.perf_counter()
    result = gmm.fit(fit_key, X, n_components, covariance_type="full",
                     init="kmeans", max_iter=max_iter, tol=tol, verbose=True)
    n_iter = int(result.n_iter)
    trace = np.asarray(result.log_likelihood)
    elapsed = time.perf_counter() - start
    sys.stdout.flush()
    status = "converged" if bool(result.converged) else "did NOT converge"
    print(f"EM {status} after {n_iter} iterations in {elapsed:.2f} s "
          "(including JIT compilation)")
    print(f"  mean log-likelihood per sample: {trace[0]:.4f} after the first "
          f"iteration, {trace[n_iter - 1]:.4f} at the end "
          f"(total {trace[n_iter - 1] * DEMO_N_SAMPLES:.1f})")

    pred_np = np.asarray(gmm.predict(result.params, X))
    accuracy, mapping = gmm.metrics.clustering_accuracy(true_np, pred_np)
    # EM numbers components arbitrarily. Renumber the fit in the order of
    # the true components it recovered, so that "component k" (and its
    # colour in the figures) means the same thing in the truth and the fit.
    order = _order_like_truth(np.asarray(mapping), n_components)
    fitted = gmm.GMMParams.from_covariances(
        result.params.weights[order], result.params.means[order],
        result.params.covariances[order], covariance_type="full")
    renumber = np.empty(n_components, dtype=np.int64)
    renumber[order] = np.arange(n_components)
    matched_pred = renumber[pred_np]
    print("\nRecovered parameters (fitted components renumbered to match the "
          "true ones):")
    weights = np.asarray(fitted.weights)
    means = np.asarray(fitted.means)
    covariances = np.asarray(fitted.covariances)
    for k in range(n_components):
        m, c, tm = means[k], covariances[k], DEMO_MEANS[k]
        print(f"  component {k}:")
        print(f"    weight      true {DEMO_WEIGHTS[k]:.3f}   fitted "
              f"{weights[k]:.3f}")
        print(f"    mean        true ({tm[0]:+.3f}, {tm[1]:+.3f})   fitted "
              f"({m[0]:+.3f}, {m[1]:+.3f})")
        print(f"    covariance  true [[{DEMO_VARIANCE:.3f}, 0.000], [0.000, "
              f"{DEMO_VARIANCE:.3f}]]   fitted [[{c[0, 0]:.3f}, {c[0, 1]:+.3f}]"
              f", [{c[1, 0]:+.3f}, {c[1, 1]:.3f}]]")
    n_right = int(np.sum(matched_pred == true_np))
    print(f"\nClustering accuracy: {100 * float(accuracy):.1f}% ({n_right} of "
          f"{DEMO_N_SAMPLES} points; labels matched up to permutation)")

    paths = _demo_figures(out, X_np, true_np, matched_pred, true_params,
                          fitted, result)
    print("\nWrote figures:")
    for path in paths:
        print(f"  {path}")
    return EXIT_OK


def _order_like_truth(mapping: np.ndarray, n_components: int) -> np.ndarray:
    """The fitted component index for each true component.

    ``mapping[fitted] = true`` comes from ``clustering_accuracy``; it is
    shorter than ``n_components`` when a fitted component predicts no point,
    and holds -1 for an unmatched one. Those fill the remaining places.
    """
    order = np.full(n_components, -1, dtype=np.int64)
    for fitted_k, true_k in enumerate(mapping):
        if 0 <= true_k < n_components:
            order[true_k] = fitted_k
    leftover = [k for k in range(n_components) if k not in set(order.tolist())]
    order[order < 0] = leftover
    return order


def _demo_figures(out, X, true_labels, pred_labels, true_params, fitted,
                  result):
    from matplotlib.figure import Figure  # no pyplot: no GUI backend needed

    from gmm_jax import plot

    paths = [out / name for name in DEMO_FIGURES]

    fig = Figure(figsize=(6, 5), layout="constrained")
    plot.plot_data(X, true_labels, means=true_params.means, ax=fig.subplots(),
                   title="Samples from the true mixture (stars: true means)")
    fig.savefig(paths[0], dpi=110)

    fig = Figure(figsize=(6, 5), layout="constrained")
    plot.plot_density(fitted, X, ax=fig.subplots(),
                      title="Fitted mixture: density contours, 1σ and 2σ "
                      "ellipses")
    fig.savefig(paths[1], dpi=110)

    fig = Figure(figsize=(6, 4), layout="constrained")
    plot.plot_log_likelihood(result, ax=fig.subplots(),
                             title="EM log-likelihood")
    fig.savefig(paths[2], dpi=110)

    fig = Figure(figsize=(10, 4.2), layout="constrained")
    axes = fig.subplots(1, 2, sharex=True, sharey=True)
    plot.plot_label_comparison(X, true_labels, pred_labels, ax=axes)
    fig.savefig(paths[3], dpi=110)
    return paths


# --------------------------------------------------------------------------
# gmm-jax fit


def run_fit(args: argparse.Namespace) -> int:
    """``gmm-jax fit``: read, validate, fit, summarise, save, plot."""
    try:
        X = read_data(args.data, delimiter=args.delimiter)
        n_samples, n_features = X.shape
        if n_samples < args.components:
            raise DataError(
                f"{args.data}: {n_samples} sample(s) but --components "
                f"{args.components}; a mixture needs at least as many samples "
                "as components")
        if args.plot and n_features < 2:
            raise DataError(
                f"{args.data}: --plot needs at least 2 features, the data "
                f"has {n_features}")
        if args.plot and not all(0 <= f < n_features for f in args.features):
            raise DataError(
                f"--features {args.features[0]} {args.features[1]}: the data "
                f"has features 0 to {n_features - 1}")
        if args.plot and args.features[0] == args.features[1]:
            raise DataError("--features: pick two different features")
    except DataError as e:
        return _fail("fit", str(e))

    import jax

    import gmm_jax as gmm

    # float64 when jax_enable_x64 is on, else float32; converting here keeps
    # JAX from warning that it truncates the float64 array it was handed.
    X = X.astype(jax.dtypes.canonicalize_dtype(np.float64))
    try:
        result = gmm.fit(
            jax.random.key(args.seed), X, args.components,
            covariance_type=args.covariance_type, init=args.init,
            n_init=args.n_init, max_iter=args.max_iter, tol=args.tol,
            reg_covar=args.reg_covar, verbose=args.verbose)
    except (ValueError, TypeError) as e:  # the core's option checks
        return _fail("fit", _one_line(e))
    params = result.params
    Xj = jax.numpy.asarray(X)
    n_iter = int(result.n_iter)
    mean_ll = float(result.lower_bound)
    bic = float(gmm.bic(params, Xj))
    sys.stdout.flush()

    print(f"Fitted {args.components} component(s), {args.covariance_type} "
          f"covariances, to {n_samples} samples x {n_features} features "
          f"from {args.data}")
    if bool(result.converged):
        print(f"  converged:      yes, after {n_iter} iterations "
              f"(tol {args.tol:g})")
    else:
        print(f"  converged:      NO, stopped at --max-iter {args.max_iter}; "
              "try a larger --max-iter or a looser --tol")
    if int(result.status) != 0:
        print("  warning:        an EM step produced non-finite parameters "
              "(a collapsing covariance); the fit stopped at the last finite "
              "ones. Increase --reg-covar or scale the data.")
    print(f"  log-likelihood: {mean_ll:.4f} per sample "
          f"(total {mean_ll * n_samples:.2f})")
    print(f"  BIC:            {bic:.2f}")
    weights = np.asarray(params.weights)
    means = np.asarray(params.means)
    print("  component  weight  mean")
    for k in range(args.components):
        mean = np.array2string(means[k], precision=3, suppress_small=True,
                               max_line_width=10_000, threshold=12)
        print(f"  {k:>9}  {weights[k]:6.3f}  {mean}")

    try:
        gmm.save(args.out, params)
    except OSError as e:
        return _fail("fit", f"cannot write {args.out}: {e.strerror}")
    print(f"Saved parameters to {args.out} (read them back with "
          "gmm_jax.load)")

    if args.plot:
        from matplotlib.figure import Figure

        from gmm_jax import plot

        fig = Figure(figsize=(6, 5), layout="constrained")
        plot.plot_density(params, X, labels=np.asarray(gmm.predict(params, Xj)),
                          features=tuple(args.features), ax=fig.subplots(),
                          title=f"{Path(args.data).name}: {args.components}-"
                          "component fit")
        try:
            fig.savefig(args.plot, dpi=110)
        except (OSError, ValueError) as e:
            return _fail("fit", f"cannot write plot {args.plot}: "
                         f"{_one_line(e)}")
        print(f"Wrote plot to {args.plot}")
    return EXIT_OK


def read_data(path: str, *, delimiter: str | None = None) -> np.ndarray:
    """Reads a data file into a finite (n_samples, n_features) float array.

    Args:
      path: a ``.npy`` file, or a delimited text file with one sample per
        row. Blank lines and lines starting with ``#`` are skipped; a first
        row with no numbers in it is taken as a header.
      delimiter: column separator for text files; ``","`` by default, tab
        for ``.tsv`` files.

    Returns:
      float64 array of shape (n_samples, n_features).

    Raises:
      DataError: with a one-line message naming the file and the problem.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"{path}: no such file")
    if p.is_dir():
        raise DataError(f"{path}: is a folder, expected a CSV or .npy file")
    if p.suffix.lower() == ".npy":
        X, line_numbers = _read_npy(p, path), None
    else:
        if delimiter is None:
            delimiter = "\t" if p.suffix.lower() == ".tsv" else ","
        X, line_numbers = _read_text(p, path, delimiter)
    if X.size == 0:
        raise DataError(f"{path}: no data rows (empty, or only a header, "
                        "comments or blank lines); expected one sample per row")
    bad = ~np.isfinite(X)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        where = (f"row {row}" if line_numbers is None
                 else f"line {line_numbers[row]}")
        raise DataError(
            f"{path}: {int(bad.any(axis=1).sum())} row(s) contain NaN or "
            f"infinite values, the first at {where}, column {col + 1}; remove "
            "or impute them before fitting")
    return X


def _read_npy(p: Path, path: str) -> np.ndarray:
    try:
        X = np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise DataError(f"{path}: not a readable .npy file ({_one_line(e)})")
    if not isinstance(X, np.ndarray):
        raise DataError(f"{path}: expected one array, found an archive")
    if X.dtype == bool or not (np.issubdtype(X.dtype, np.integer)
                               or np.issubdtype(X.dtype, np.floating)):
        raise DataError(f"{path}: array has dtype {X.dtype}, expected numbers")
    if X.ndim == 1:  # one feature
        X = X[:, None]
    if X.ndim != 2:
        raise DataError(f"{path}: array has shape {X.shape}, expected "
                        "(n_samples, n_features)")
    return X.astype(np.float64)


def _read_text(p: Path, path: str,
               delimiter: str) -> tuple[np.ndarray, list[int]]:
    """Parses a delimited text file; also returns each row's line number."""
    try:
        with open(p, newline="", encoding="utf-8-sig") as f:
            lines = list(enumerate(csv.reader(f, delimiter=delimiter),
                                   start=1))
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text file; expected a CSV file or a "
                        ".npy array")
    except csv.Error as e:
        raise DataError(f"{path}: cannot parse as CSV ({e})")
    rows, numbers = [], []
    for line, cells in lines:
        cells = [c.strip() for c in cells]
        if not any(cells) or cells[0].startswith("#"):
            continue
        rows.append((line, cells))
    if rows and not any(_is_number(c) for c in rows[0][1]):
        header_line, header = rows.pop(0)
        width = len(header)
    else:
        header_line, width = None, len(rows[0][1]) if rows else 0
    first_line = header_line if header_line is not None else (
        rows[0][0] if rows else None)
    for line, cells in rows:
        if len(cells) != width:
            raise DataError(
                f"{path}: line {line} has {len(cells)} value(s) but line "
                f"{first_line} has {width}; every row needs the same number "
                "of features (ragged rows)")
        try:
            numbers.append([float(c) for c in cells])
        except ValueError:
            col = next(i for i, c in enumerate(cells) if not _is_number(c))
            what = (f"{cells[col]!r} is not a number" if cells[col]
                    else "an empty value where a number was expected")
            raise DataError(
                f"{path}: line {line}, column {col + 1}: {what}") from None
    X = np.asarray(numbers, dtype=np.float64).reshape(len(numbers), width)
    return X, [line for line, _ in rows]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())


def _fail(command: str, message: str) -> int:
    print(f"gmm-jax {command}: error: {message}", file=sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
