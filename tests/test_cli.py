"""The gmm-jax command line: demo end to end, fit round trip, bad input files.

Commands run in-process through ``main(argv)``; only the end-to-end demo and
the ``python -m gmm_jax`` check start a new interpreter.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import gmm_jax as gmm
from gmm_jax.cli import DEMO_FIGURES, main

ROOT = Path(__file__).resolve().parents[1]
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
                        "--features", 0, 5], capsys, "--features 0 5")


def _assert_fails_with(argv, capsys, *fragments):
    code, out, err = _run(argv, capsys)
    assert code == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("gmm-jax fit: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


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
