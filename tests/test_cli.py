"""The gmm-jax command line: demo end to end, fit round trip, real files, bad input.

Commands run in-process through ``main(argv)``; only the end-to-end demo, the
``python -m gmm_jax`` check and the closed-pipe check start a new interpreter
(they share the suite's persistent compilation cache, see tests/conftest.py).
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import sklearn
import jax
import numpy as np
import pytest

import gmm_jax as gmm
from gmm_jax.cli import DEMO_FIGURES, main

ROOT = Path(__file__).resolve().parents[1]
SKLEARN_DATA = Path(sklearn.__file__).parent / "datasets" / "data"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _subprocess_env():
    env = dict(os.environ, MPLBACKEND="Agg")
    # The checkout under test comes first, whatever else is installed.
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def _two_blobs(n=60):
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 2
    return rng.normal(size=(n, 2)) * 0.5 + 4.0 * labels[:, None]


@pytest.fixture
def csv_file(tmp_path):
    path = tmp_path / "data.csv"
    np.savetxt(path, _two_blobs(), delimiter=",", header="x,y", comments="")
    return path


def _run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------
# gmm-jax demo


def test_cli_choices_are_the_library_choices():
    """The command line keeps its own lists (its --help imports no JAX); they must not drift."""
    from gmm_jax import _validation, cli

    assert cli.INITS == _validation.INITS
    assert cli.COVARIANCE_TYPES == _validation.COVARIANCE_TYPES


@pytest.mark.slow
def test_demo_writes_four_figures_and_recovers_the_clusters(tmp_path):
    installed = shutil.which("gmm-jax", path=str(Path(sys.executable).parent))
    command = [installed] if installed else [sys.executable, "-m", "gmm_jax"]
    out = tmp_path / "figures"
    proc = subprocess.run(
        [*command, "demo", "--out", str(out), "--seed", "0"],
        capture_output=True, text=True, cwd=tmp_path, env=_subprocess_env(),
        timeout=300)
    assert proc.returncode == 0, proc.stderr
    for name in DEMO_FIGURES:
        data = (out / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000, name
    assert re.search(r"component 0: \d+ samples", proc.stdout)
    assert "converged after" in proc.stdout
    accuracy = float(re.search(r"accuracy: ([\d.]+)%", proc.stdout).group(1))
    assert accuracy >= 95.0


def test_python_dash_m_gmm_jax_runs_the_command_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "gmm_jax", "fit", "absent.csv", "-k", "2"],
        capture_output=True, text=True, cwd=tmp_path, env=_subprocess_env(),
        timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    # The last line: a GPU-less jaxlib may warn on stderr before it.
    assert proc.stderr.strip().splitlines()[-1] == (
        "gmm-jax fit: error: absent.csv: no such file")


# --------------------------------------------------------------------------
# gmm-jax fit


@pytest.mark.slow
def test_fit_round_trip_saved_model_predicts_like_the_fit(
        tmp_path, csv_file, capsys):
    model, figure = tmp_path / "model.npz", tmp_path / "fit.png"
    code, out, err = _run(["fit", csv_file, "--components", 2, "--seed", 3,
                           "--out", model, "--plot", figure], capsys)
    assert code == 0, err
    for field in ("converged:", "log-likelihood:", "BIC:", "weight"):
        assert field in out

    X = np.loadtxt(csv_file, delimiter=",", skiprows=1)
    loaded = gmm.load(model)
    reference = gmm.fit(jax.random.key(3), X, 2).params
    np.testing.assert_array_equal(gmm.predict(loaded, X),
                                  gmm.predict(reference, X))
    np.testing.assert_array_equal(loaded.means, reference.means)
    assert loaded.covariance_type == "full"
    assert figure.read_bytes().startswith(PNG_SIGNATURE)


@pytest.mark.slow
def test_fit_reads_npy_keeps_the_covariance_type_and_plots_chosen_features(
        tmp_path, capsys):
    X = np.concatenate([_two_blobs(), _two_blobs()[:, :1] * 0.5], axis=1)
    np.save(tmp_path / "data.npy", X)
    code, _, err = _run(["fit", tmp_path / "data.npy", "-k", 2,
                         "--covariance-type", "diag", "--features", 2, 0,
                         "--out", tmp_path / "m.npz",
                         "--plot", tmp_path / "f.png"], capsys)
    assert code == 0, err
    assert gmm.load(tmp_path / "m.npz").covariance_type == "diag"
    assert (tmp_path / "f.png").read_bytes().startswith(PNG_SIGNATURE)


def test_fit_rejects_plot_features_the_data_does_not_have(csv_file, capsys):
    _assert_fails_with(["fit", csv_file, "-k", 2, "--plot", "x.png",
                        "--features", 0, 5], capsys, "--features 5: out of range",
                       "2 fitted features")


def _assert_fails_with(argv, capsys, *fragments, prog="gmm-jax fit"):
    code, out, err = _run(argv, capsys)
    assert code == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{prog}: error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_fit_missing_file(tmp_path, capsys):
    _assert_fails_with(["fit", tmp_path / "nope.csv", "-k", 2], capsys,
                       "nope.csv", "no such file")


def test_fit_empty_file(tmp_path, capsys):
    path = tmp_path / "empty.csv"
    path.write_text("")
    _assert_fails_with(["fit", path, "-k", 2], capsys, "empty.csv",
                       "no data rows")


def test_fit_header_only_file_counts_as_empty(tmp_path, capsys):
    path = tmp_path / "header.csv"
    path.write_text("x,y\n")
    _assert_fails_with(["fit", path, "-k", 2], capsys, "no data rows")


def test_fit_non_numeric_value(tmp_path, capsys):
    path = tmp_path / "words.csv"
    path.write_text("x,y\n1.0,2.0\n3.0,four\n")
    _assert_fails_with(["fit", path, "-k", 2], capsys,
                       "line 3, column 2", "'four' is not a number")


def test_fit_non_numeric_npy_array(tmp_path, capsys):
    path = tmp_path / "words.npy"
    np.save(path, np.array([["a", "b"], ["c", "d"]]))
    _assert_fails_with(["fit", path, "-k", 2], capsys, "expected numbers")


def test_fit_ragged_rows(tmp_path, capsys):
    path = tmp_path / "ragged.csv"
    path.write_text("1,2\n3,4\n5,6,7\n")
    _assert_fails_with(["fit", path, "-k", 2], capsys,
                       "line 3 has 3 value(s) but line 1 has 2", "ragged")


def test_fit_nan_values(tmp_path, capsys):
    path = tmp_path / "nan.csv"
    path.write_text("1,2\n3,nan\n5,6\n")
    _assert_fails_with(["fit", path, "-k", 2], capsys,
                       "NaN", "line 2, column 2")


def test_fit_nan_values_in_npy(tmp_path, capsys):
    X = _two_blobs()
    X[7, 1] = np.nan
    np.save(tmp_path / "nan.npy", X)
    _assert_fails_with(["fit", tmp_path / "nan.npy", "-k", 2], capsys,
                       "NaN", "row 7, column 2")


def test_fit_fewer_rows_than_components(tmp_path, capsys):
    path = tmp_path / "short.csv"
    path.write_text("1,2\n3,4\n")
    _assert_fails_with(["fit", path, "-k", 3], capsys,
                       "2 sample(s) but --components 3")


def test_fit_three_dimensional_npy_array(tmp_path, capsys):
    np.save(tmp_path / "cube.npy", np.zeros((4, 2, 2)))
    _assert_fails_with(["fit", tmp_path / "cube.npy", "-k", 2], capsys,
                       "shape (4, 2, 2)")


def test_fit_binary_file_that_is_not_csv(tmp_path, capsys):
    path = tmp_path / "data.bin"
    path.write_bytes(b"\xff\xfe\x00\x81" * 10)
    _assert_fails_with(["fit", path, "-k", 2], capsys, "not a text file")


def test_fit_without_a_command_prints_help_and_fails(capsys):
    code, _, err = _run([], capsys)
    assert code == 2 and "demo" in err and "fit" in err


def test_order_like_truth_fills_in_components_that_predict_nothing():
    from gmm_jax.cli import _order_like_truth

    # fitted 0 -> true 2, fitted 1 -> true 0; fitted 2 predicted no point.
    np.testing.assert_array_equal(_order_like_truth(np.array([2, 0]), 3),
                                  [1, 2, 0])
    np.testing.assert_array_equal(_order_like_truth(np.array([1, -1, 0]), 3),
                                  [2, 0, 1])


# --------------------------------------------------------------------------
# real files: scikit-learn's bundled CSVs as shipped, delimiters, columns


def _accuracy(out):
    return float(re.search(r"accuracy: +([\d.]+)%", out).group(1))


@pytest.mark.parametrize("label_column", [None, "4", "-1"])
def test_fit_reads_sklearn_iris_csv_as_shipped(tmp_path, capsys, label_column):
    # First line "150,4,setosa,versicolor,virginica": a count line, and the
    # last column is the class. It must be neither parsed as data nor fitted.
    extra = [] if label_column is None else ["--label-column", label_column]
    code, out, err = _run(["fit", SKLEARN_DATA / "iris.csv", "-k", 3,
                           "--out", tmp_path / "m.npz", *extra], capsys)
    assert code == 0, err
    assert "150 samples x 4 features" in out
    assert "scikit-learn count line" in out
    assert "3 classes (setosa, versicolor, virginica)" in out
    assert _accuracy(out) >= 90.0
    assert gmm.load(tmp_path / "m.npz").n_features == 4
    X = np.loadtxt(SKLEARN_DATA / "iris.csv", delimiter=",", skiprows=1)[:, :4]
    reference = gmm.fit(jax.random.key(0), X, 3).params
    np.testing.assert_allclose(gmm.load(tmp_path / "m.npz").means,
                               reference.means, rtol=1e-6)


@pytest.mark.slow
def test_fit_reads_sklearn_wine_csv_as_shipped_with_label_column(
        tmp_path, capsys):
    code, out, err = _run(["fit", SKLEARN_DATA / "wine_data.csv", "-k", 3,
                           "--covariance-type", "diag", "--label-column", 13,
                           "--out", tmp_path / "m.npz"], capsys)
    assert code == 0, err
    assert "178 samples x 13 features" in out
    assert "class_0" in out and "class_2" in out
    assert _accuracy(out) >= 90.0


def test_fit_iris_without_its_count_line_uses_the_label_column_index(
        tmp_path, capsys):
    code, out, err = _run(["fit", SKLEARN_DATA / "iris.csv", "-k", 3,
                           "--skip-rows", 1, "--label-column", 4,
                           "--out", tmp_path / "m.npz"], capsys)
    assert code == 0, err
    assert "skipped the first 1 line" in out
    assert "labels: column 4, 3 classes (0, 1, 2)" in out
    assert _accuracy(out) >= 90.0


def _write(path, X, delimiter, header=("x", "y")):
    lines = [delimiter.join(header)] if header else []
    lines += [delimiter.join(repr(float(v)) for v in row) for row in X]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("delimiter, name, suffix", [
    (";", "semicolon", ".csv"), ("\t", "tab", ".tsv"), ("\t", "tab", ".txt"),
    ("   ", "whitespace", ".txt"), (", ", "comma", ".csv")])
def test_fit_detects_the_delimiter_and_says_which(tmp_path, capsys, delimiter,
                                                  name, suffix):
    X = _two_blobs()
    path = _write(tmp_path / f"data{suffix}", X, delimiter)
    code, out, err = _run(["fit", path, "-k", 2, "--out", tmp_path / "m.npz"],
                          capsys)
    assert code == 0, err
    assert f"delimiter: {name} (detected" in out
    reference = gmm.fit(jax.random.key(0), X, 2).params
    np.testing.assert_allclose(gmm.load(tmp_path / "m.npz").means,
                               reference.means, rtol=1e-6)


def test_fit_reads_np_savetxt_output_without_options(tmp_path, capsys):
    np.savetxt(tmp_path / "data.txt", _two_blobs())      # space-separated
    code, out, err = _run(["fit", tmp_path / "data.txt", "-k", 2,
                           "--out", tmp_path / "m.npz"], capsys)
    assert code == 0, err
    assert "60 samples x 2 features" in out


@pytest.mark.parametrize("spelling", ["\\t", "tab", "TAB", "\t"])
def test_fit_accepts_tab_delimiter_spellings(tmp_path, capsys, spelling):
    path = _write(tmp_path / "data.tsv", _two_blobs(), "\t")
    code, out, err = _run(["fit", path, "-k", 2, "--delimiter", spelling,
                           "--out", tmp_path / "m.npz"], capsys)
    assert code == 0, err
    assert "delimiter: tab" in out


@pytest.mark.slow
def test_fit_uses_header_names_in_summary_and_on_plot_axes(
        tmp_path, capsys, monkeypatch):
    from matplotlib.figure import Figure

    X = np.concatenate([_two_blobs(), _two_blobs()[:, :1]], axis=1)
    path = _write(tmp_path / "d.csv", X, ",",
                  header=("sepal length", "width", "depth"))
    saved = []
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: saved.append(fig))
    code, out, err = _run(["fit", path, "-k", 2, "--out", tmp_path / "m.npz",
                           "--plot", tmp_path / "f.png",
                           "--features", "depth", "sepal length"], capsys)
    assert code == 0, err
    assert re.search(r"^  sepal length +[-\d.]+ +[-\d.]+$", out, re.M)
    assert re.search(r"^  depth +[-\d.]+", out, re.M)
    ax = saved[0].axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("depth", "sepal length")


def test_fit_columns_by_name_and_index_select_the_features(tmp_path, capsys):
    X = np.concatenate([_two_blobs(), np.arange(60.0)[:, None]], axis=1)
    path = _write(tmp_path / "d.csv", X, ",", header=("a", "b", "c"))
    for columns in (["a", "b"], ["0", "-2"], ["a,b"]):
        code, out, err = _run(["fit", path, "-k", 2, "--columns", *columns,
                               "--out", tmp_path / "m.npz"], capsys)
        assert code == 0, err
        assert "60 samples x 2 features" in out
        np.testing.assert_allclose(
            gmm.load(tmp_path / "m.npz").means,
            gmm.fit(jax.random.key(0), X[:, :2], 2).params.means, rtol=1e-6)


def test_fit_string_label_column_is_left_out_and_scored(tmp_path, capsys):
    X, labels = _two_blobs(), np.arange(60) % 2
    lines = ["x;y;species"] + [f"{a};{b};{'ab'[t]}"
                               for (a, b), t in zip(X, labels)]
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    code, out, err = _run(["fit", tmp_path / "d.csv", "-k", 2,
                           "--label-column", "species",
                           "--out", tmp_path / "m.npz"], capsys)
    assert code == 0, err
    assert "labels: column 'species', 2 classes (a, b)" in out
    assert _accuracy(out) == 100.0


@pytest.mark.parametrize("cell, message", [
    ("NA", "'NA' is a missing value; remove or impute"),
    ("", "an empty value where a number was expected")])
def test_fit_missing_cells_are_named_as_missing(tmp_path, capsys, cell, message):
    (tmp_path / "d.csv").write_text(f"x,y\n1,2\n{cell},3\n4,5\n")
    _assert_fails_with(["fit", tmp_path / "d.csv", "-k", 2], capsys,
                       f"line 3, column 1 ('x'): {message}")


def test_fit_string_column_without_label_option_names_the_fix(tmp_path, capsys):
    (tmp_path / "d.csv").write_text("x,y,species\n1,2,a\n3,4,b\n")
    _assert_fails_with(["fit", tmp_path / "d.csv", "-k", 2], capsys,
                       "line 2, column 3 ('species'): 'a' is not a number",
                       "--label-column species")


def test_fit_drops_a_pandas_index_column(tmp_path, capsys):
    X = _two_blobs()
    lines = [",x,y"] + [f"{i},{a},{b}" for i, (a, b) in enumerate(X)]
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    code, out, err = _run(["fit", tmp_path / "d.csv", "-k", 2,
                           "--out", tmp_path / "m.npz"], capsys)
    assert code == 0, err
    assert "row index: not fitted" in out and "x 2 features" in out


def test_fit_reads_r_write_table_row_names(tmp_path, capsys):
    # R's write.table(df, sep=";"): the header has no cell for the row names.
    X = _two_blobs()
    lines = ['"x";"y"'] + [f'"{i + 1}";{a};{b}' for i, (a, b) in enumerate(X)]
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    code, out, err = _run(["fit", tmp_path / "d.csv", "-k", 2,
                           "--out", tmp_path / "m.npz"], capsys)
    assert code == 0, err
    assert "first column holds row names" in out and "x 2 features" in out
    np.testing.assert_allclose(
        gmm.load(tmp_path / "m.npz").means,
        gmm.fit(jax.random.key(0), X, 2).params.means, rtol=1e-6)


def test_fit_hints_at_a_numeric_column_that_looks_like_labels(tmp_path, capsys):
    X = np.concatenate([_two_blobs(), (np.arange(60) % 2)[:, None]], axis=1)
    path = _write(tmp_path / "d.csv", X, ",", header=("x", "y", "target"))
    code, out, err = _run(["fit", path, "-k", 2, "--out", tmp_path / "m.npz"],
                          capsys)
    assert code == 0, err
    assert "pass --label-column target" in out


def test_fit_first_line_that_is_not_a_header_names_skip_rows(tmp_path, capsys):
    path = tmp_path / "d.csv"
    path.write_text("my measurements\n1,2\n3,4\n5,6\n")
    _assert_fails_with(["fit", path, "-k", 2], capsys,
                       "line 1 has 1 cell(s) but the data rows have 2",
                       "--skip-rows 1")


def test_fit_reads_an_npz_array_chosen_by_key(tmp_path, capsys):
    np.savez(tmp_path / "d.npz", X=_two_blobs(), other=np.zeros(3))
    _assert_fails_with(["fit", tmp_path / "d.npz", "-k", 2], capsys,
                       "holds 2 arrays (X, other)", "--key")
    code, out, err = _run(["fit", tmp_path / "d.npz", "-k", 2, "--key", "X",
                           "--out", tmp_path / "m.npz"], capsys)
    assert code == 0, err
    _assert_fails_with(["fit", tmp_path / "m.npz", "-k", 2], capsys,
                       "saved gmm_jax model, not data")


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0
    assert capsys.readouterr().out.strip() == f"gmm-jax {gmm.__version__}"


# --------------------------------------------------------------------------
# errors that help, and no data lost


@pytest.mark.parametrize("flag", ["--out", "--plot"])
@pytest.mark.parametrize("name", ["victim.npy", "victim.csv"])
def test_fit_refuses_to_write_over_its_data(tmp_path, capsys, flag, name,
                                            monkeypatch):
    path = tmp_path / name
    if name.endswith(".npy"):
        np.save(path, _two_blobs())
    else:
        np.savetxt(path, _two_blobs(), delimiter=",")
    before = path.read_bytes()
    monkeypatch.chdir(tmp_path)
    other = "--plot" if flag == "--out" else "--out"
    _assert_fails_with(["fit", path, "-k", 2, flag, f"./{name}",
                        other, "other.png" if other == "--plot" else "m.npz"],
                       capsys, f"{flag} ./{name} is the data file",
                       f"choose another {flag}")
    assert path.read_bytes() == before


def test_fit_output_problems_are_one_line(tmp_path, csv_file, capsys):
    _assert_fails_with(["fit", csv_file, "-k", 2, "--out",
                        tmp_path / "no" / "such" / "folder" / "m.npz"],
                       capsys, "cannot write --out", "No such file or directory")
    _assert_fails_with(["fit", csv_file, "-k", 2, "--out", tmp_path / "m.npz",
                        "--plot", tmp_path / "fit.xyz"], capsys,
                       "unknown image format 'xyz'", ".png")
    assert not (tmp_path / "m.npz").exists()      # refused before fitting


def test_fit_refuses_the_same_path_for_model_and_plot(tmp_path, csv_file, capsys):
    _assert_fails_with(["fit", csv_file, "-k", 2, "--out", tmp_path / "a",
                        "--plot", tmp_path / "a"], capsys, "the same file")


@pytest.mark.parametrize("argv, fragments", [
    (["--max-iter", "1e10"], ["argument --max-iter", "more than 1000000"]),
    (["--max-iter", "2.5"], ["argument --max-iter", "not an integer"]),
    (["--seed", str(2**70)], ["argument --seed", "0 to 4294967295"]),
    (["--seed", "-1"], ["argument --seed", "out of range"]),
    (["--delimiter", "ab"], ["argument --delimiter", "'ab' is not one character"]),
    (["--tol", "nan"], ["argument --tol", "finite number"]),
    (["--reg-covar", "-1e-6"], ["argument --reg-covar"]),
    (["--components", "0"], ["argument --components", "at least 1"]),
    (["--covariance-type", "ful"], ["argument --covariance-type", "invalid choice"]),
    (["--label-column", "9"], ["--label-column 9: out of range"]),
    (["--columns", "z"], ["--columns z: no such column", "'x', 'y'"]),
    (["--key", "X"], ["--key X: only .npz"]),
])
def test_bad_options_are_one_line_and_exit_2(csv_file, capsys, argv, fragments):
    base = [] if "--components" in argv else ["-k", "2"]
    _assert_fails_with(["fit", csv_file, *base, *argv], capsys, *fragments)


def test_unknown_option_is_one_line(capsys):
    _assert_fails_with(["--bogus"], capsys, "unrecognized arguments",
                       prog="gmm-jax")


def test_npy_header_claiming_terabytes_is_refused_before_reading(
        tmp_path, capsys):
    path = tmp_path / "huge.npy"
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": "<f8", "fortran_order": False,
                "shape": (10**9, 1000)})
        f.write(b"\0" * 64)
    _assert_fails_with(["fit", path, "-k", 2], capsys,
                       "shape (1000000000, 1000)", "8.0 TB", "truncated")


@pytest.mark.slow
def test_closed_output_pipe_ends_quietly_and_the_model_is_saved(
        tmp_path, csv_file):
    # `gmm-jax fit ... | head -1`: the reader leaves, the fit still finishes.
    proc = subprocess.Popen(
        [sys.executable, "-m", "gmm_jax", "fit", str(csv_file), "-k", "2",
         "--out", str(tmp_path / "m.npz")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
        env=_subprocess_env())
    proc.stdout.close()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert b"Traceback" not in err and b"BrokenPipe" not in err
    assert gmm.load(tmp_path / "m.npz").n_components == 2


# --------------------------------------------------------------------------
# gmm-jax select


@pytest.mark.slow
def test_select_prints_the_table_saves_the_chosen_model_and_draws_it(csv_file, tmp_path, capsys):
    out_model, out_plot = tmp_path / "chosen.npz", tmp_path / "bic.png"
    code, out, err = _run(["select", csv_file, "--components", "1-3", "--covariance-types", "full", "spherical",
                           "--out", out_model, "--plot", out_plot], capsys)  # fmt: skip
    assert code == 0, err
    assert "BIC (lower is better" in out and "full" in out and "spherical" in out
    chosen = re.search(r"Chosen: (\d+) component\(s\), (\w+) covariances", out)
    X = np.loadtxt(csv_file, delimiter=",", skiprows=1)
    sel = gmm.select(jax.random.key(0), X, [1, 2, 3], covariance_types=("full", "spherical"))
    assert (int(chosen.group(1)), chosen.group(2)) == (int(sel.best_n_components), sel.best_covariance_type) == (2, "spherical")
    np.testing.assert_allclose(gmm.load(out_model).means, sel.best.params.means, rtol=1e-6)
    assert out_plot.stat().st_size > 0


@pytest.mark.parametrize("components", ["0-3", "3-1", "a-b", "1,1"])
def test_select_refuses_a_bad_range_of_components(csv_file, capsys, components):
    _assert_fails_with(["select", csv_file, "--components", components], capsys, "--components",
                       prog="gmm-jax select")
