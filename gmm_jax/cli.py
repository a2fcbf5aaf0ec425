"""The ``gmm-jax`` command line.

``gmm-jax demo``  samples the tutorial's three-component mixture, fits it
                  by EM and writes four figures.
``gmm-jax fit``   fits a mixture to a CSV, ``.npy`` or ``.npz`` file and
                  saves it.

Run ``gmm-jax COMMAND --help`` for the options. Every problem with the input
or the options (a missing file, a non-numeric cell, an output path that would
overwrite the data, an out-of-range option) is reported as one line on stderr
with exit status 2; output piped into a reader that stops early (``| head``)
ends the printing quietly, and the command still finishes its work.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import os
import sys
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
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
INITS = ("kmeans", "k-means++", "random", "random_from_data", "hierarchical")

# Bounds that turn an absurd option into a clear message instead of an
# overflow deep inside JAX. Seeds: jax.random.key keeps 32 bits unless x64
# is on, so larger seeds would silently collide with smaller ones.
MAX_SEED = 2**32 - 1
MAX_ITER = 1_000_000   # the trace holds one value per iteration

# name -> (delimiter, how it is echoed); None splits on runs of whitespace.
DELIMITERS = {
    ",": (",", "comma"), "comma": (",", "comma"),
    ";": (";", "semicolon"), "semicolon": (";", "semicolon"),
    "\t": ("\t", "tab"), "\\t": ("\t", "tab"), "tab": ("\t", "tab"),
    " ": (None, "whitespace"), "space": (None, "whitespace"),
    "whitespace": (None, "whitespace"),
}
_SNIFF_ORDER = ("\t", ";", ",", None)   # preferred first when tied
_SNIFF_LINES = 200
_MISSING = {"NA", "N/A", "NAN", "NULL", "NONE", "?", "-", "."}  # as R, pandas, SPSS write them
_PLOT_INSTALL_HINT = 'pip install "gmm-jax[plot]"'


class DataError(ValueError):
    """A data file that cannot be fitted; the message is shown to the user."""


# --------------------------------------------------------------------------
# entry point


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the ``gmm-jax`` command and returns its exit status.

    Args:
      argv: the arguments after the program name; ``sys.argv[1:]`` when None.

    Returns:
      0 on success, 2 for unusable input or options.
    """
    stdout = sys.stdout
    sys.stdout = _PipeSafe(stdout)
    try:
        parser = _parser()
        try:
            args = parser.parse_args(argv)
        except _UsageError as e:
            return _fail(e.prog, e.message)
        if args.command is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        try:
            return args.run(args)
        except DataError as e:
            return _fail(args.command, str(e))
        except MemoryError:
            return _fail(args.command, "not enough memory for this data and "
                         "these options; use fewer rows, components or "
                         "restarts (--n-init)")
        except KeyboardInterrupt:
            return _fail(args.command, "interrupted")
    finally:
        sys.stdout.flush()
        sys.stdout = stdout


class _PipeSafe(io.TextIOBase):
    """stdout that goes quiet when its reader has gone away (``| head``).

    The command keeps running (a model is still saved); only its printing
    stops. The file descriptor is pointed at /dev/null so that Python's
    final flush at exit cannot fail either.
    """

    def __init__(self, stream):
        self._stream = stream
        self._gone = False

    def write(self, text):
        if not self._gone:
            try:
                self._stream.write(text)
            except BrokenPipeError:
                self._go_quiet()
        return len(text)

    def flush(self):
        if not self._gone:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._go_quiet()

    def writable(self):
        return True

    def _go_quiet(self):
        self._gone = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, io.UnsupportedOperation):
            pass  # not a real file (a test's capture): nothing will flush it


class _UsageError(Exception):
    def __init__(self, prog, message):
        super().__init__(message)
        self.prog, self.message = prog, message


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and a usage hint), exit 2."""

    def error(self, message):
        command = self.prog.removeprefix("gmm-jax").strip() or None
        hint = f"gmm-jax {command} --help" if command else "gmm-jax --help"
        raise _UsageError(command, f"{message} (see {hint})")


def _parser() -> argparse.ArgumentParser:
    from gmm_jax import __version__

    parser = _Parser(
        prog="gmm-jax",
        description="Gaussian mixture models fitted by EM in JAX.")
    parser.add_argument("--version", action="version",
                        version=f"gmm-jax {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser(
        "demo", help="fit the tutorial's 3-component mixture and plot it",
        description=(
            "Sample 500 points from a known 3-component mixture in 2-D, fit "
            "a mixture to them by EM (k-means initialisation), compare the "
            "result with the truth and write four PNG figures."))
    demo.add_argument("--out", metavar="DIR", default="demo_out",
                      help="folder for the figures (default: %(default)s)")
    demo.add_argument("--seed", metavar="N", type=_seed, default=0,
                      help="random seed (default: %(default)s)")
    demo.set_defaults(run=run_demo)

    fit = commands.add_parser(
        "fit", help="fit a mixture to a CSV, .npy or .npz data file",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Fit a Gaussian mixture to DATA and save its parameters (read them\n"
            "back with gmm_jax.load(path)).\n\n"
            "DATA is a text file with one sample per row, or a .npy / .npz\n"
            "array of shape (n_samples, n_features). In text files the\n"
            "delimiter (comma, semicolon, tab or whitespace) is detected, a\n"
            "first row with a non-number in it is the header, blank lines and\n"
            "'#' comments are skipped. scikit-learn's bundled CSV files (a\n"
            "first line 'n_samples,n_features,class names', the class in the\n"
            "last column) are recognised: the class becomes the label column.\n"
            "With --label-column the labels are left out of the fit and the\n"
            "clustering accuracy against them is reported."))
    fit.add_argument("data", metavar="DATA", help="CSV/TSV/text, .npy or .npz file")
    fit.add_argument("--components", "-k", metavar="K", type=_positive_int,
                     required=True, help="number of mixture components")
    fit.add_argument("--covariance-type", choices=COVARIANCE_TYPES,
                     default="full", help="(default: %(default)s)")
    fit.add_argument("--init", choices=INITS, default="kmeans",
                     help="initialisation (default: %(default)s)")
    fit.add_argument("--n-init", metavar="R", type=_positive_int, default=1,
                     help="restarts; the best is kept (default: %(default)s)")
    fit.add_argument("--max-iter", metavar="M", type=_max_iter, default=100,
                     help="EM iterations at most, 1 to 1000000 "
                     "(default: %(default)s)")
    fit.add_argument("--tol", type=_nonnegative_float, default=1e-3,
                     help="stop when the mean log-likelihood changes by less "
                     "(default: %(default)s)")
    fit.add_argument("--reg-covar", metavar="EPS", type=_nonnegative_float,
                     default=1e-6, help="added to the covariance diagonal "
                     "(default: %(default)s)")
    fit.add_argument("--seed", metavar="S", type=_seed, default=0,
                     help="random seed, 0 to 4294967295 (default: %(default)s)")
    fit.add_argument("--out", metavar="PATH", default="model.npz",
                     help="where to save the parameters (default: "
                     "%(default)s)")
    fit.add_argument("--plot", metavar="PNG", default=None,
                     help="also draw the fit (first two features, or "
                     "--features) to this image file")
    fit.add_argument("--features", metavar=("X", "Y"), nargs=2,
                     default=None, help="the two fitted features to plot, by "
                     "header name or position among the fitted features "
                     "(default: the first two)")
    _add_reading_options(fit)
    fit.add_argument("--verbose", "-v", action="store_true",
                     help="print the log-likelihood of every EM iteration")
    fit.set_defaults(run=run_fit)

    select = commands.add_parser(
        "select", help="choose K and the covariance type by BIC (mclust's table)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Fit every number of components in --components with every\n"
            "covariance type, print the criterion table (lower is better) and\n"
            "the chosen model, save the chosen model and draw the table.\n"
            "DATA is read as by 'gmm-jax fit'."))
    select.add_argument("data", metavar="DATA", help="CSV/TSV/text, .npy or .npz file")
    select.add_argument("--components", "-k", metavar="RANGE", type=_components, default=list(range(1, 11)),
                        help="numbers of components: '1-10', '2,4,8' or '3' (default: 1-10)")
    select.add_argument("--covariance-types", metavar="TYPE", nargs="+", choices=COVARIANCE_TYPES,
                        default=list(COVARIANCE_TYPES), help="(default: all four)")
    select.add_argument("--criterion", choices=("bic", "aic", "icl"), default="bic",
                        help="(default: %(default)s)")
    select.add_argument("--init", choices=INITS, default="kmeans", help="initialisation (default: %(default)s)")
    select.add_argument("--n-init", metavar="R", type=_positive_int, default=1,
                        help="restarts of every fit; the best is kept (default: %(default)s)")
    select.add_argument("--max-iter", metavar="M", type=_max_iter, default=100,
                        help="EM iterations at most, 1 to 1000000 (default: %(default)s)")
    select.add_argument("--tol", type=_nonnegative_float, default=1e-3, help="(default: %(default)s)")
    select.add_argument("--reg-covar", metavar="EPS", type=_nonnegative_float, default=1e-6,
                        help="added to the covariance diagonal (default: %(default)s)")
    select.add_argument("--seed", metavar="S", type=_seed, default=0,
                        help="random seed, 0 to 4294967295 (default: %(default)s)")
    select.add_argument("--out", metavar="PATH", default="model.npz",
                        help="where to save the chosen model (default: %(default)s)")
    select.add_argument("--plot", metavar="PNG", default="selection.png",
                        help="the criterion plot (default: %(default)s)")
    _add_reading_options(select)
    select.set_defaults(run=run_select)
    return parser


def _add_reading_options(command) -> None:
    """The options that say how to read DATA (shared by ``fit`` and ``select``)."""
    data = command.add_argument_group("reading DATA")
    data.add_argument("--columns", metavar="COL", nargs="+", default=None,
                      help="the feature columns to fit, by header name or "
                      "0-based index (negative counts from the end); "
                      "default: every column but the label column")
    data.add_argument("--label-column", metavar="COL", default=None,
                      help="a column of class labels (any values): left out "
                      "of the fit, used to report the clustering accuracy")
    data.add_argument("--skip-rows", metavar="N", type=_nonnegative_int,
                      default=0, help="ignore the first N lines of a text "
                      "file (a title, a count line)")
    data.add_argument("--delimiter", type=_delimiter, default=None,
                      help="comma, semicolon, tab (or '\\t'), whitespace, or "
                      "any single character (default: detected)")
    data.add_argument("--key", metavar="NAME", default=None,
                      help="the array to fit in an .npz archive with several")


def _int(text: str) -> int:
    """An integer, also written as ``1e3`` or ``1_000`` (not 2.5, not 1e999)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not math.isfinite(value) or value != int(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer")
    return int(value)


def _components(text: str) -> list[int]:
    """``'1-10'``, ``'2,4,8'`` or ``'3'`` as a list of positive ints."""
    values = []
    for part in text.split(","):
        low, sep, high = part.strip().partition("-")
        try:
            start, stop = int(low), int(high) if sep else int(low)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a range like 1-10 or a list like 2,4,8") from None
        if start < 1 or stop < start or stop > 10_000:
            raise argparse.ArgumentTypeError(f"{part!r}: numbers of components go from 1 up (to at most 10000)")
        values.extend(range(start, stop + 1))
    if len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"{text!r} repeats a number of components")
    return values


def _positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def _nonnegative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _max_iter(text: str) -> int:
    value = _positive_int(text)
    if value > MAX_ITER:
        raise argparse.ArgumentTypeError(
            f"{text} is more than {MAX_ITER}; EM that has not converged in a "
            "million iterations will not: loosen --tol instead")
    return value


def _seed(text: str) -> int:
    value = _int(text)
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(
            f"{text} is out of range; pick a seed from 0 to {MAX_SEED}")
    return value


def _nonnegative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(
            f"must be a finite number >= 0, got {text}")
    return value


def _delimiter(text: str):
    if text.lower() in DELIMITERS:
        return DELIMITERS[text.lower()]
    if len(text) == 1 and text not in "\"\r\n":
        return (text, repr(text))
    raise argparse.ArgumentTypeError(
        f"{text!r} is not one character; use comma, semicolon, tab (or "
        "'\\t'), whitespace, or a single character")


# --------------------------------------------------------------------------
# gmm-jax demo


def run_demo(args: argparse.Namespace) -> int:
    """``gmm-jax demo``: the tutorial scenario from sampling to figures."""
    _require_matplotlib()
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

    paths = demo_figures(out, X_np, true_np, matched_pred, true_params,
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


def demo_figures(out, X, true_labels, pred_labels, true_params, fitted,
                 result):
    """Writes the demo's four figures into the folder ``out``; returns paths."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend needed

    from gmm_jax import plot

    paths = [Path(out) / name for name in DEMO_FIGURES]

    fig = Figure(figsize=(6, 5.4), layout="constrained")
    plot.plot_data(X, true_labels, means=true_params.means, ax=fig.subplots(),
                   title="Samples from the true mixture (stars: true means)")
    fig.savefig(paths[0], dpi=110)

    fig = Figure(figsize=(6.6, 5.4), layout="constrained")
    plot.plot_density(fitted, X, ax=fig.subplots(), filled=True,
                      title="Fitted mixture: component contours, 1σ and 2σ "
                      "ellipses")
    fig.savefig(paths[1], dpi=110)

    fig = Figure(figsize=(6, 4), layout="constrained")
    plot.plot_log_likelihood(result, n_samples=X.shape[0], ax=fig.subplots(),
                             title="EM log-likelihood")
    fig.savefig(paths[2], dpi=110)

    fig = Figure(figsize=(9, 5.6), layout="constrained")
    axes = fig.subplots(1, 2, sharex=True, sharey=True)
    plot.plot_label_comparison(X, true_labels, pred_labels, ax=axes)
    fig.savefig(paths[3], dpi=110)
    return paths


# --------------------------------------------------------------------------
# gmm-jax fit


def run_fit(args: argparse.Namespace) -> int:
    """``gmm-jax fit``: read, validate, fit, summarise, save, plot."""
    _check_outputs(args)
    table = read_table(args.data, delimiter=args.delimiter,
                       columns=args.columns, label_column=args.label_column,
                       skip_rows=args.skip_rows, key=args.key)
    X, names = table.X, table.names
    n_samples, n_features = X.shape
    if n_samples < args.components:
        raise DataError(
            f"{args.data}: {n_samples} sample(s) but --components "
            f"{args.components}; a mixture needs at least as many samples "
            "as components")
    plotted = _plot_features(args, names) if args.plot else None

    import jax

    import gmm_jax as gmm

    print(f"Read {args.data}: {n_samples} samples x {n_features} features")
    for note in table.notes:
        print(f"  {note}")
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
    pred = np.asarray(gmm.predict(params, Xj))
    sys.stdout.flush()

    print(f"Fitted {args.components} component(s), {args.covariance_type} "
          f"covariances")
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

    matches = [""] * args.components
    accuracy = None
    if table.labels is not None:
        accuracy, mapping = gmm.metrics.clustering_accuracy(table.labels, pred)
        for k, true_k in enumerate(np.asarray(mapping)):
            if true_k >= 0:
                matches[k] = str(table.classes[true_k])
        n_right = round(float(accuracy) * n_samples)
        print(f"  accuracy:       {100 * float(accuracy):.1f}% against "
              f"{table.label_name} ({n_right} of {n_samples}; "
              f"{len(table.classes)} classes, labels matched up to "
              "permutation)")
    _print_components(params, names, pred, matches)

    try:
        gmm.save(args.out, params)
    except OSError as e:
        return _fail("fit", f"cannot write --out {args.out}: "
                     f"{e.strerror or _one_line(e)}")
    print(f"Saved parameters to {args.out} (read them back with "
          "gmm_jax.load)")

    if args.plot:
        from matplotlib.figure import Figure

        from gmm_jax import plot

        fig = Figure(figsize=(6.6, 5.4), layout="constrained")
        title = f"{Path(args.data).name}: {args.components}-component fit"
        if accuracy is not None:
            title += f" (accuracy {float(accuracy):.1%})"
        plot.plot_density(params, X, labels=pred, features=plotted,
                          feature_names=names, ax=fig.subplots(),
                          title=title)
        try:
            fig.savefig(args.plot, dpi=110)
        except (OSError, ValueError) as e:
            return _fail("fit", f"cannot write --plot {args.plot}: "
                         f"{_one_line(e)}")
        print(f"Wrote plot to {args.plot}")
    return EXIT_OK


def run_select(args: argparse.Namespace) -> int:
    """``gmm-jax select``: read, fit every (type, K), print the table and the choice, save, plot."""
    _check_outputs(args)
    table = read_table(args.data, delimiter=args.delimiter, columns=args.columns, label_column=args.label_column,
                       skip_rows=args.skip_rows, key=args.key)
    X, names = table.X, table.names
    n_samples, n_features = X.shape
    if n_samples < max(args.components):
        raise DataError(f"{args.data}: {n_samples} sample(s) but --components goes up to {max(args.components)}; "
                        "a mixture needs at least as many samples as components")

    import jax

    import gmm_jax as gmm

    print(f"Read {args.data}: {n_samples} samples x {n_features} features")
    for note in table.notes:
        print(f"  {note}")
    X = X.astype(jax.dtypes.canonicalize_dtype(np.float64))
    types = list(dict.fromkeys(args.covariance_types))
    try:
        sel = gmm.select(jax.random.key(args.seed), X, args.components, covariance_types=types,
                         criterion=args.criterion, init=args.init, n_init=args.n_init, max_iter=args.max_iter,
                         tol=args.tol, reg_covar=args.reg_covar)
    except (ValueError, TypeError) as e:
        return _fail("select", _one_line(e))
    values = np.asarray(sel.criterion)
    name = args.criterion.upper()
    width = max(11, *(len(t) for t in types))
    print(f"{name} (lower is better; 'failed' where a fit broke down):")
    print(f"  {'K':>4}  " + "  ".join(f"{t:>{width}}" for t in types))
    for j, k in enumerate(args.components):
        cells = [f"{v:>{width}.2f}" if np.isfinite(v) else f"{'failed':>{width}}" for v in values[:, j]]
        print(f"  {k:>4}  " + "  ".join(cells))
    chosen_k, chosen_type = int(sel.best_n_components), sel.best_covariance_type
    print(f"Chosen: {chosen_k} component(s), {chosen_type} covariances ({name} {float(np.min(values)):.2f})")
    params = sel.best.params
    if table.labels is not None:
        pred = np.asarray(gmm.predict(params, jax.numpy.asarray(X)))
        accuracy, _ = gmm.metrics.clustering_accuracy(table.labels, pred)
        print(f"  accuracy:       {100 * float(accuracy):.1f}% against {table.label_name} "
              f"({len(table.classes)} classes, labels matched up to permutation)")
    try:
        gmm.save(args.out, params)
    except OSError as e:
        return _fail("select", f"cannot write --out {args.out}: {e.strerror or _one_line(e)}")
    print(f"Saved the chosen model to {args.out} (read it back with gmm_jax.load)")
    if args.plot:
        from matplotlib.figure import Figure

        from gmm_jax import plot

        fig = Figure(figsize=(6.6, 4.8), layout="constrained")
        plot.selection(sel, ax=fig.subplots(), title=f"{Path(args.data).name}: model selection")
        try:
            fig.savefig(args.plot, dpi=110)
        except (OSError, ValueError) as e:
            return _fail("select", f"cannot write --plot {args.plot}: {_one_line(e)}")
        print(f"Wrote plot to {args.plot}")
    return EXIT_OK


def _print_components(params, names, pred, matches) -> None:
    """One column per component, one row per feature, names on the left."""
    weights = np.asarray(params.weights)
    means = np.asarray(params.means)
    counts = np.bincount(pred, minlength=len(weights))
    heads = [f"comp {k}" + (f" ({m})" if m else "") for k, m in enumerate(matches)]
    width = max(9, *(len(h) for h in heads))
    left = max(12, *(len(n) for n in names))
    print(f"  {'mean / weight':<{left}}  " + "  ".join(f"{h:>{width}}" for h in heads))
    print(f"  {'weight':<{left}}  " + "  ".join(f"{w:>{width}.3f}" for w in weights))
    print(f"  {'points':<{left}}  " + "  ".join(f"{c:>{width}d}" for c in counts))
    for d, name in enumerate(names):
        print(f"  {name:<{left}}  " + "  ".join(
            f"{_number(means[k, d]):>{width}}" for k in range(len(weights))))


def _number(value: float) -> str:
    return f"{value:.4g}" if abs(value) >= 1e5 or (value and abs(value) < 1e-3) \
        else f"{value:.3f}"


def _plot_features(args, names: list[str]) -> tuple[int, int]:
    if len(names) < 2:
        raise DataError(
            f"{args.data}: --plot needs at least 2 features, the data has "
            f"{len(names)}")
    if args.features is None:
        return (0, 1)
    chosen = tuple(_resolve(f, names, "--features", len(names),
                            what="fitted feature") for f in args.features)
    if chosen[0] == chosen[1]:
        raise DataError(
            f"--features {' '.join(args.features)}: pick two different features")
    return chosen


def _check_outputs(args) -> None:
    """Refuses output paths that would overwrite the data or each other."""
    data = Path(args.data)
    outputs = [("--out", args.out)] + ([("--plot", args.plot)] if args.plot else [])
    for flag, path in outputs:
        if _same_file(path, data):
            raise DataError(
                f"{flag} {path} is the data file {args.data}; writing there "
                f"would destroy the data: choose another {flag} path")
        if Path(path).is_dir():
            raise DataError(f"{flag} {path} is a folder; give a file name")
    if args.plot and _same_file(args.plot, args.out):
        raise DataError(
            f"--plot {args.plot} and --out {args.out} are the same file; "
            "give them different names")
    if args.plot:
        _require_matplotlib()
        from matplotlib.figure import Figure

        formats = Figure().canvas.get_supported_filetypes()
        suffix = Path(args.plot).suffix.lower().lstrip(".")
        if suffix not in formats:
            raise DataError(
                f"--plot {args.plot}: "
                + (f"unknown image format {suffix!r}" if suffix else
                   "no file extension to choose the image format")
                + "; end the name in .png, .pdf or .svg")


def _same_file(a, b) -> bool:
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise DataError(
            f"plotting needs matplotlib, which is not installed: "
            f"{_PLOT_INSTALL_HINT}") from None


# --------------------------------------------------------------------------
# reading data files


@dataclass
class Table:
    """A data file as read for fitting.

    Attributes:
      X: (n_samples, n_features) finite float64 features.
      names: one name per feature (the header's, or ``x{column}``).
      labels: (n_samples,) integer class indices, or None without labels.
      classes: the class of each label index, as written in the file.
      label_name: how the label column is named in messages.
      notes: what was decided while reading (delimiter, header, skipped
        columns), echoed to the user.
    """

    X: np.ndarray
    names: list[str]
    labels: np.ndarray | None = None
    classes: list[str] = field(default_factory=list)
    label_name: str = ""
    notes: list[str] = field(default_factory=list)


def read_data(path: str, *, delimiter: str | None = None) -> np.ndarray:
    """Reads a data file into a finite (n_samples, n_features) float array.

    The features of :func:`read_table` without its names and labels.
    """
    spec = None if delimiter is None else _delimiter(delimiter)
    return read_table(path, delimiter=spec).X


def read_table(path: str, *, delimiter=None, columns=None, label_column=None,
               skip_rows: int = 0, key: str | None = None) -> Table:
    """Reads a data file: features, their names, and optional labels.

    Args:
      path: a ``.npy`` or ``.npz`` file, or a delimited text file with one
        sample per row.
      delimiter: ``(delimiter, name)`` as the ``--delimiter`` option parses
        it (``None`` as the delimiter splits on whitespace); detected when
        None.
      columns: the feature columns, as header names or indices (strings or
        ints); every column but the label column when None.
      label_column: a header name or index of a column of class labels.
      skip_rows: physical lines ignored at the top of a text file.
      key: the array of an ``.npz`` archive to read.

    Returns:
      a :class:`Table`.

    Raises:
      DataError: with a one-line message naming the file, the problem, and
        the option that fixes it.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"{path}: no such file")
    if p.is_dir():
        raise DataError(f"{path}: is a folder, expected a data file")
    suffix = p.suffix.lower()
    if key is not None and suffix != ".npz":
        raise DataError(f"--key {key}: only .npz archives hold named arrays")
    if suffix in (".npy", ".npz"):
        if skip_rows:
            raise DataError("--skip-rows applies to text files; slice the "
                            "array instead")
        array, notes = (_read_npy(p, path) if suffix == ".npy"
                        else _read_npz(p, path, key))
        if array.ndim == 1:  # one feature
            array = array[:, None]
        if array.ndim != 2:
            raise DataError(f"{path}: array has shape {array.shape}, expected "
                            "(n_samples, n_features)")
        cells = array
        names = [f"x{j}" for j in range(array.shape[1])]
        line_numbers, header = None, False
        default_label, classes, index_column = None, None, None
    else:
        (cells, names, line_numbers, header, notes, default_label,
         classes, index_column) = _read_text(p, path, delimiter, skip_rows)
    n_columns = len(names)

    label_index = None
    if label_column is not None:
        label_index = _resolve(label_column, names, "--label-column",
                               n_columns, header=header)
    elif default_label is not None:
        label_index = default_label
    if columns is None:
        feature_index = [j for j in range(n_columns) if j != label_index]
        if index_column is not None and label_index != index_column:
            dropped = index_column
            feature_index.remove(dropped)
            notes.append(f"column {dropped} (unnamed) holds row names or a "
                         "row index: not fitted (choose with --columns)")
    else:
        feature_index = [_resolve(c, names, "--columns", n_columns,
                                  header=header)
                         for tokens in columns for c in _split_list(tokens, names)]
        if len(set(feature_index)) != len(feature_index):
            raise DataError("--columns names a column twice")
        if label_index is not None and label_index in feature_index:
            raise DataError(
                f"--columns includes the label column {names[label_index]!r}; "
                "labels are not features")
    if not feature_index:
        raise DataError(f"{path}: no feature columns left to fit")

    X = _numbers(cells, feature_index, names, line_numbers, path,
                 label_index, header)
    result = Table(X=X, names=[names[j] for j in feature_index], notes=notes)
    if label_index is not None:
        raw = np.asarray(cells[:, label_index])
        values, labels = np.unique(raw.astype(str) if raw.dtype.kind in "OUS"
                                   else raw, return_inverse=True)
        result.labels = labels.reshape(-1).astype(np.int64)
        result.classes = [_class_name(v, classes) for v in values]
        result.label_name = (f"column {label_index}" if not header
                             else f"column {names[label_index]!r}")
        result.notes.append(
            f"labels: {result.label_name}, {len(values)} classes "
            f"({', '.join(result.classes[:6])}"
            f"{', ...' if len(values) > 6 else ''}); not fitted")
    else:
        _hint_label_like_columns(X, [_ref(names, j, header) for j in feature_index],
                                 result.names, result.notes)
    if X.size == 0 or X.shape[0] == 0:
        raise DataError(f"{path}: no data rows (empty, or only a header, "
                        "comments or blank lines); expected one sample per row")
    return result


def _class_name(value, classes) -> str:
    # scikit-learn's count line names the classes 0, 1, 2, ... in order.
    if classes is not None:
        try:
            number = float(value)
            if number == int(number) and 0 <= int(number) < len(classes):
                return classes[int(number)]
        except (TypeError, ValueError):
            pass
    text = str(value)
    if text.endswith(".0") and text[:-2].lstrip("-").isdigit():
        text = text[:-2]
    return text


def _split_list(token, names):
    """``--columns a,b`` as well as ``--columns a b`` (unless 'a,b' is a name)."""
    token = str(token)
    if token in names or "," not in token:
        return [token]
    return [t.strip() for t in token.split(",") if t.strip()]


def _resolve(token, names, flag, n_columns, header=True, what="column") -> int:
    token = str(token)
    if header and token in names:
        return names.index(token)
    try:
        index = int(token)
    except ValueError:
        known = ", ".join(repr(n) for n in names[:20])
        where = (f"the {what}s are {known}" if header else
                 f"the file has no header, so name {what}s by index")
        raise DataError(f"{flag} {token}: no such {what}; {where}") from None
    if not -n_columns <= index < n_columns:
        raise DataError(
            f"{flag} {token}: out of range; there are {n_columns} {what}s, "
            f"0 to {n_columns - 1} (or -1 for the last)")
    return index % n_columns


def _index_column(header_cells, cells) -> int | None:
    """0 when the first column is unnamed and holds 0, 1, 2, ... (or 1, 2, ...):
    the row index pandas' ``to_csv`` writes."""
    if len(header_cells) < 2 or header_cells[0] not in ("", "Unnamed: 0"):
        return None
    try:
        first = np.asarray(cells[:, 0], dtype=np.float64)
    except ValueError:
        return None
    if first.size and first[0] in (0, 1) and np.array_equal(
            first, first[0] + np.arange(first.size)):
        return 0
    return None


def _ref(names, j, header) -> str:
    """How to name column ``j`` on the command line."""
    return names[j] if header and " " not in names[j] else str(j)


def _hint_label_like_columns(X, refs, names, notes) -> None:
    """A feature column of a few small integers is probably a class label."""
    if X.shape[0] < 20:
        return
    for j, name in enumerate(names):
        column = X[:, j]
        if (np.all(column == np.round(column)) and column.min() >= 0
                and len(np.unique(column)) <= min(10, X.shape[0] // 10)):
            notes.append(
                f"note: {name!r} holds only {len(np.unique(column))} distinct "
                f"integers; if it is a class label, pass --label-column "
                f"{refs[j]} to leave it out of the fit")


def _numbers(cells, feature_index, names, line_numbers, path, label_index,
             header):
    if cells.dtype.kind in "biuf":
        X = np.asarray(cells[:, feature_index], dtype=np.float64)
        if cells.dtype == bool:
            raise DataError(f"{path}: array has dtype bool, expected numbers")
    else:
        try:  # one numpy conversion; the cell-by-cell loop only to explain
            X = cells[:, feature_index].astype(np.float64)
        except ValueError:
            X = None
        for j in feature_index if X is None else ():
            for i, text in enumerate(cells[:, j]):
                if _is_number(text):
                    continue
                where = (f"{path}: line {line_numbers[i]}, column {j + 1} "
                         f"({names[j]!r})")
                if text.strip().upper() in _MISSING:
                    raise DataError(
                        f"{where}: {text!r} is a missing value; remove or "
                        "impute the rows with missing values before fitting")
                what = (f"{text!r} is not a number" if text
                        else "an empty value where a number was expected")
                hint = ("" if label_index is not None or not text else
                        "; if this column holds class labels pass "
                        f"--label-column {_ref(names, j, header)}, "
                        "or choose the numeric columns with --columns")
                raise DataError(f"{where}: {what}{hint}")
    bad = ~np.isfinite(X)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        where = (f"row {row}" if line_numbers is None
                 else f"line {line_numbers[row]}")
        raise DataError(
            f"{path}: {int(bad.any(axis=1).sum())} row(s) contain NaN or "
            f"infinite values, the first at {where}, column "
            f"{feature_index[col] + 1}; remove or impute them before fitting")
    return X


def _check_npy_header(f, path) -> None:
    """Refuses an .npy whose header claims more data than the file holds."""
    start = f.tell()
    try:
        version = np.lib.format.read_magic(f)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, _, dtype = read_header(f)
    except (ValueError, OSError, EOFError, SyntaxError) as e:
        raise DataError(f"{path}: not a readable .npy file ({_one_line(e)})")
    claimed = math.prod(shape) * dtype.itemsize
    available = os.fstat(f.fileno()).st_size - f.tell()
    if claimed > available:
        raise DataError(
            f"{path}: the header claims an array of shape {shape} "
            f"({_bytes(claimed)} of {dtype}) but the file holds "
            f"{_bytes(available)}; the file is truncated or corrupt")
    f.seek(start)


def _bytes(n: int) -> str:
    for unit in ("bytes", "kB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} bytes"


def _read_npy(p: Path, path: str):
    try:
        with open(p, "rb") as f:
            _check_npy_header(f, path)
            X = np.load(f, allow_pickle=False)
    except DataError:
        raise
    except (ValueError, OSError, EOFError) as e:
        raise DataError(f"{path}: not a readable .npy file ({_one_line(e)})")
    return _numeric_array(X, path), []


def _read_npz(p: Path, path: str, key: str | None):
    try:
        archive = np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not a readable .npz archive ({_one_line(e)})")
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: holds a single array; name it .npy")
    with archive:
        keys = list(archive.files)
        if "format" in keys and "precisions_cholesky" in keys:
            raise DataError(f"{path}: is a saved gmm_jax model, not data; "
                            "read it with gmm_jax.load")
        if not keys:
            raise DataError(f"{path}: the archive is empty")
        if key is None:
            if len(keys) > 1:
                raise DataError(
                    f"{path}: holds {len(keys)} arrays ({', '.join(keys[:10])}"
                    "); pick one with --key NAME")
            key = keys[0]
        elif key not in keys:
            raise DataError(f"--key {key}: {path} has no such array; it holds "
                            f"{', '.join(keys[:10])}")
        try:
            X = archive[key]
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
            raise DataError(f"{path}: array {key!r} is not readable "
                            f"({_one_line(e)})")
    return _numeric_array(X, path), [f"array {key!r} of the archive"]


def _numeric_array(X, path):
    if X.dtype == bool or not (np.issubdtype(X.dtype, np.integer)
                               or np.issubdtype(X.dtype, np.floating)):
        raise DataError(f"{path}: array has dtype {X.dtype}, expected numbers")
    return X


def _split(line: str, delimiter) -> list[str]:
    if delimiter is None:
        return line.split()
    return [c.strip() for c in next(csv.reader([line], delimiter=delimiter))]


def _sniff(lines: list[str]):
    """The delimiter that splits the lines into equal rows of most numbers."""
    sample = lines[1:_SNIFF_LINES] if len(lines) > 1 else lines
    best, best_score = None, None
    for order, delimiter in enumerate(_SNIFF_ORDER):
        try:
            rows = [_split(line, delimiter) for line in sample]
        except csv.Error:
            continue
        widths = {len(r) for r in rows}
        width = max(widths)
        numeric = sum(_is_number(c) for r in rows for c in r) / max(
            1, sum(len(r) for r in rows))
        score = (len(widths) == 1 and width > 1, numeric, len(widths) == 1,
                 width > 1, -order)
        if best_score is None or score > best_score:
            best, best_score = delimiter, score
    return best


def _read_text(p: Path, path: str, delimiter, skip_rows: int):
    """Parses a delimited text file."""
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text file; expected a CSV file or a "
                        ".npy array")
    physical = text.splitlines()
    notes = []
    if skip_rows:
        if skip_rows >= len(physical):
            raise DataError(f"{path}: --skip-rows {skip_rows} skips the whole "
                            f"file ({len(physical)} lines)")
        notes.append(f"skipped the first {skip_rows} line(s) (--skip-rows)")
    content = [(n, line) for n, line in enumerate(physical, start=1)
               if n > skip_rows and line.strip()
               and not line.lstrip().startswith("#")]
    if not content:
        raise DataError(f"{path}: no data rows (empty, or only a header, "
                        "comments or blank lines); expected one sample per row")
    lines = [line for _, line in content]
    if delimiter is None:
        sep = _sniff(lines)
        name = {",": "comma", ";": "semicolon", "\t": "tab",
                None: "whitespace"}[sep]
        if all(len(_split(line, sep)) == 1 for line in lines[:_SNIFF_LINES]):
            notes.insert(0, "one column: no comma, semicolon, tab or space "
                         "between values (set one with --delimiter)")
        else:
            notes.insert(0, f"delimiter: {name} (detected; set it with "
                         "--delimiter)")
    else:
        sep, name = delimiter
        notes.insert(0, f"delimiter: {name}")
    try:
        if sep is None:
            split = [line.split() for _, line in content]
        else:
            split = [[c.strip() for c in cells] for cells in
                     csv.reader((line for _, line in content), delimiter=sep)]
        rows = [(n, cells) for (n, _), cells in zip(content, split)]
    except csv.Error as e:
        raise DataError(f"{path}: cannot parse as delimited text ({e})")

    default_label, classes, header = None, None, False
    first_line, first = rows[0]
    count_line = _count_line(first, rows[1:])
    if count_line is not None:
        n_features, classes = count_line
        rows = rows[1:]
        default_label = n_features
        notes.append(
            f"line {first_line} is a scikit-learn count line "
            f"({len(rows)} samples, {n_features} features, classes "
            f"{', '.join(classes) or 'unnamed'}): the last column is the "
            "label")
    elif any(not _is_number(c) for c in first):
        header = True
        rows = rows[1:]
        if not rows:
            raise DataError(
                f"{path}: no data rows, only the header on line {first_line}; "
                "expected one sample per row")
    width = len(rows[0][1]) if rows else 0
    row_names = header and len(first) == width - 1 and width > 2
    if row_names:  # R's write.table: no header cell above the row names
        first = ["", *first]
    if header and len(first) != width:
        raise DataError(
            f"{path}: line {first_line} has {len(first)} cell(s) but the data "
            f"rows have {width}; if line {first_line} is not a header (a "
            "title or a count line), skip it with --skip-rows "
            f"{first_line}")
    for line, cells in rows:
        if len(cells) != width:
            raise DataError(
                f"{path}: line {line} has {len(cells)} value(s) but line "
                f"{rows[0][0]} has {width}; every row needs the same number "
                f"of features (ragged rows; delimiter: {name})")
    cells = np.array([c for _, c in rows], dtype=object).reshape(len(rows), width)
    index_column = None
    if header:
        names = [c or f"column {j}" for j, c in enumerate(first)]
        notes.append(f"header: line {first_line} ({_shorten(first)})")
        numeric = [c for c in first if _is_number(c)]
        if numeric:
            notes.append(
                f"note: the header holds numbers ({_shorten(numeric, 3)}); if "
                f"line {first_line} is not a header but a count line or data, "
                f"pass --skip-rows {first_line}")
        if len(set(names)) != len(names):
            notes.append("note: the header repeats a name; name columns by "
                         "index")
        index_column = 0 if row_names else _index_column(first, cells)
        if row_names:
            notes.append(f"line {first_line} names one column fewer than the "
                         "rows have: the first column holds row names")
    else:
        names = [f"x{j}" for j in range(width)]
    return (cells, names, [n for n, _ in rows], header, notes, default_label,
            classes, index_column)


def _count_line(first: list[str], rows) -> tuple[int, list[str]] | None:
    """scikit-learn's ``n_samples,n_features,class names...`` first line."""
    if len(first) < 2 or not rows:
        return None
    try:
        n_samples, n_features = int(first[0]), int(first[1])
    except ValueError:
        return None
    widths = {len(c) for _, c in rows}
    if n_samples == len(rows) and widths == {n_features + 1}:
        return n_features, [c for c in first[2:] if c]
    return None


def _shorten(cells, limit=6) -> str:
    shown = ", ".join(cells[:limit])
    return shown + (f", ... ({len(cells)} columns)" if len(cells) > limit else "")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())


def _fail(command: str | None, message: str) -> int:
    prog = f"gmm-jax {command}" if command else "gmm-jax"
    print(f"{prog}: error: {message}", file=sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
