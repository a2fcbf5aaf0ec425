"""`fit_stream` is the in-memory EM read in batches: same steps as `fit`, bounded memory, clear errors."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest

import gmm_jax as gmm

ROOT = Path(__file__).resolve().parents[1]


def _blobs(n, d=3, seed=0, offset=50.0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, d)) + rng.integers(0, 3, size=(n, 1)) * 4.0 + offset).astype(np.float32)


def _batches(X, n_batches, w=None):
    size = -(-len(X) // n_batches)
    if w is None:
        return lambda: (X[i : i + size] for i in range(0, len(X), size))
    return lambda: ((X[i : i + size], w[i : i + size]) for i in range(0, len(X), size))


N_ROWS, MAX_ITER = 3001, 8  # one data shape and one max_iter: the tests share compiled steps


@pytest.fixture(scope="module")
def data():
    X = _blobs(N_ROWS)  # 3001 rows: a ragged last batch
    starts = {
        covariance_type: gmm.fit(jax.random.key(0), X, 3, covariance_type=covariance_type, max_iter=1).params
        for covariance_type in ("full", "diag")
    }
    return X, starts


def _assert_results_close(a, b, atol):
    assert int(a.n_iter) == int(b.n_iter)
    assert bool(a.converged) == bool(b.converged)
    assert a.params.means.dtype == b.params.means.dtype == np.float32
    for name in ("weights", "means", "precisions_cholesky"):
        np.testing.assert_allclose(getattr(a.params, name), getattr(b.params, name), rtol=1e-4, atol=atol, err_msg=name)
    np.testing.assert_allclose(a.log_likelihood, b.log_likelihood, rtol=1e-5, atol=1e-5)


def test_fit_stream_over_memory_mapped_npy_in_ten_batches_equals_fit(tmp_path, data):
    X, starts = data
    np.save(tmp_path / "X.npy", X)
    X_mapped = np.load(tmp_path / "X.npy", mmap_mode="r")
    kwargs = dict(covariance_type="full", init_params=starts["full"], max_iter=MAX_ITER, tol=0.0)
    in_memory = gmm.fit(jax.random.key(1), X, 3, **kwargs)
    streamed = gmm.fit_stream(jax.random.key(1), _batches(X_mapped, 10), 3, **kwargs)
    _assert_results_close(in_memory, streamed, atol=1e-4)


@pytest.mark.slow
def test_fit_stream_with_weighted_batches_equals_weighted_fit(data):
    X, starts = data
    w = np.random.default_rng(2).integers(0, 4, size=len(X)).astype(np.float32)
    kwargs = dict(covariance_type="diag", init_params=starts["diag"], max_iter=MAX_ITER, tol=0.0)
    in_memory = gmm.fit(jax.random.key(1), X, 3, sample_weight=w, **kwargs)
    streamed = gmm.fit_stream(jax.random.key(1), _batches(X, 10, w), 3, **kwargs)
    _assert_results_close(in_memory, streamed, atol=1e-4)


@pytest.mark.slow
def test_fit_stream_initialises_from_the_stream_and_converges_like_fit(data):
    # With fewer rows than init_sample_size the sample is every row, in order,
    # so the initialisation is fit's own.
    X = data[0]
    in_memory = gmm.fit(jax.random.key(4), X, 3, covariance_type="diag")
    streamed = gmm.fit_stream(jax.random.key(4), _batches(X, 10), 3, covariance_type="diag")
    _assert_results_close(in_memory, streamed, atol=1e-3)
    assert bool(streamed.converged)


def test_fit_stream_resumes_from_its_own_params(data):
    X, starts = data
    source = _batches(X, 10)
    kwargs = dict(covariance_type="diag", tol=0.0)
    whole = gmm.fit_stream(jax.random.key(0), source, 3, init_params=starts["diag"], max_iter=8, **kwargs)
    first = gmm.fit_stream(jax.random.key(0), source, 3, init_params=starts["diag"], max_iter=5, **kwargs)
    resumed = gmm.fit_stream(jax.random.key(0), source, 3, init_params=first.params, max_iter=3, **kwargs)
    np.testing.assert_allclose(resumed.params.means, whole.params.means, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(resumed.log_likelihood, whole.log_likelihood[5:], rtol=1e-6, atol=1e-5)


def test_fit_stream_prints_one_line_per_pass_only_when_verbose(capsys, data, monkeypatch):
    from gmm_jax import _stream

    X, starts = data
    # Not a terminal or a notebook (another test in this process may have imported ipykernel).
    monkeypatch.setattr(_stream, "_interactive", lambda: False)
    kwargs = dict(covariance_type="diag", init_params=starts["diag"], max_iter=3, tol=0.0)
    gmm.fit_stream(jax.random.key(0), _batches(X, 10), 3, **kwargs)
    assert capsys.readouterr().out == ""
    gmm.fit_stream(jax.random.key(0), _batches(X, 10), 3, verbose=True, **kwargs)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all("log-likelihood" in line and f"{N_ROWS} rows" in line for line in lines)


def test_fit_stream_draws_a_progress_bar_per_pass_on_a_terminal(capsys, data, monkeypatch):
    from gmm_jax import _stream

    X, starts = data
    monkeypatch.setattr(_stream, "_interactive", lambda: True)
    gmm.fit_stream(jax.random.key(0), _batches(X, 10), 3, covariance_type="diag", init_params=starts["diag"],
                   max_iter=2, tol=0.0, verbose=True)  # fmt: skip
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "pass 1" in captured.err and "pass 2" in captured.err and "log-likelihood" in captured.err
    # Every row counted: pass 1 learns the stream's length, later passes show it as the total.
    assert f"pass 1: {N_ROWS / 1000:.2f}k rows" in captured.err
    assert f"{N_ROWS / 1000:.2f}k/{N_ROWS / 1000:.2f}k" in captured.err


def test_fit_stream_names_the_batch_with_the_wrong_number_of_features():
    def source():
        yield np.zeros((10, 3), np.float32)
        yield np.zeros((10, 3), np.float32)
        yield np.zeros((10, 4), np.float32)

    with pytest.raises(ValueError, match=r"batch 2 \(0-based\) of pass 0 has 4 features but earlier batches have 3"):
        gmm.fit_stream(jax.random.key(0), source, 2)


def test_fit_stream_rejects_an_empty_stream():
    with pytest.raises(ValueError, match="stream is empty"):
        gmm.fit_stream(jax.random.key(0), lambda: iter([]), 2)
    with pytest.raises(ValueError, match="stream is empty"):
        gmm.fit_stream(jax.random.key(0), lambda: iter([np.zeros((0, 2))]), 2)


def test_fit_stream_rejects_one_shot_iterators_and_generators():
    X = _blobs(100)
    generator = (X[i : i + 10] for i in range(0, 100, 10))
    with pytest.raises(TypeError, match="callable.*one-shot generator.*lambda"):
        gmm.fit_stream(jax.random.key(0), generator, 2)
    with pytest.raises(TypeError, match="callable.*one-shot list_iterator"):
        gmm.fit_stream(jax.random.key(0), iter([X]), 2)
    with pytest.raises(TypeError, match=r"got a list; pass source=lambda: iter\(batches\)"):
        gmm.fit_stream(jax.random.key(0), [X], 2)
    # A callable that hands back the same (exhausted) iterator is caught on the next pass.
    shared = iter([X[:50], X[50:]])
    with pytest.raises(ValueError, match="same iterator twice"):
        gmm.fit_stream(jax.random.key(0), lambda: shared, 2, init="random_from_data")


def test_fit_stream_rejects_a_stream_that_changes_between_passes(data):
    X, starts = data
    calls = []

    def growing():  # e.g. a file still being written
        calls.append(None)
        return iter([X[: N_ROWS - 10], X[: len(calls)]])

    with pytest.raises(ValueError, match=rf"yielded {N_ROWS - 7} rows in pass 1 but {N_ROWS - 8} before"):
        gmm.fit_stream(jax.random.key(0), growing, 3, covariance_type="diag", init_params=starts["diag"])


def test_fit_stream_checks_values_and_options():
    X = _blobs(50)
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"batch 1 \(0-based\).*NaN"):
        gmm.fit_stream(jax.random.key(0), lambda: iter([X, bad]), 2)
    with pytest.raises(ValueError, match="n_components=60 must be <= n_samples=50"):
        gmm.fit_stream(jax.random.key(0), lambda: iter([X]), 60)
    with pytest.raises(ValueError, match="covariance_type"):
        gmm.fit_stream(jax.random.key(0), lambda: iter([X]), 2, covariance_type="ful")
    with pytest.raises(ValueError, match=r"sample_weight in batch 0.*\(50,\)"):
        gmm.fit_stream(jax.random.key(0), lambda: iter([(X, np.ones(3))]), 2)


MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    import jax, numpy as np
    import gmm_jax as gmm

    tmp, batch_rows, d = sys.argv[1], 20_000, 8
    sizes = json.loads(sys.argv[2])

    def npy_batches(path):
        # Plain reads, no memory map: every byte this process holds is its own
        # (anonymous) memory, so the kernel's peak RSS measures it honestly.
        def source():
            with open(path, "rb") as f:
                version = np.lib.format.read_magic(f)
                read_header = {(1, 0): np.lib.format.read_array_header_1_0}.get(
                    version, np.lib.format.read_array_header_2_0)
                (n, width), _, dtype = read_header(f)
                for start in range(0, n, batch_rows):
                    yield np.fromfile(f, dtype, count=min(batch_rows, n - start) * width).reshape(-1, width)
        return source

    def peak_mib():
        # VmHWM: the kernel's peak resident set of this process's memory. Not
        # ru_maxrss, which Linux carries over from the parent across exec.
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:")) / 1024

    def fit(name):
        return gmm.fit_stream(jax.random.key(0), npy_batches(f"{tmp}/{name}.npy"), 3,
                              covariance_type="diag", max_iter=2, tol=0.0, verbose=True)

    out = {"baseline": peak_mib()}
    # Warm up on the small stream first (compilation, allocator pools), so
    # the comparison below sees only what depends on the stream's length.
    fit("small"), fit("small")
    for name in sizes:  # small first: the large run can only add to the peak
        t = time.perf_counter()
        result = fit(name)
        result.params.means.block_until_ready()
        out[name] = peak_mib()
        out[name + "_seconds"] = time.perf_counter() - t
    # The meter is sensitive: holding the large array whole raises the peak by its size.
    whole = np.concatenate(list(npy_batches(f"{tmp}/large.npy")()))
    out["holding_large"] = peak_mib()
    out["large_mib"] = whole.nbytes / 2**20
    out["batch_mib"] = batch_rows * d * 4 / 2**20
    print("RESULT" + json.dumps(out))
    """
)


def _write_npy(path, n, d, seed):
    """A float32 ``(n, d)`` .npy written in blocks (the test process never holds it whole)."""
    rng = np.random.default_rng(seed)
    with open(path, "wb") as f:
        np.lib.format.write_array_header_2_0(f, {"descr": "<f4", "fortran_order": False, "shape": (n, d)})
        for start in range(0, n, 250_000):
            m = min(250_000, n - start)
            f.write((rng.normal(size=(m, d)) + rng.integers(0, 3, size=(m, 1)) * 5.0).astype(np.float32).tobytes())


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak RSS from Linux /proc")
def test_fit_stream_peak_memory_is_bounded_by_the_batch_not_by_the_stream(tmp_path):
    # Data written here, measured in a fresh process that only reads it.
    sizes = {"small": 100_000, "large": 4_000_000}
    for i, (name, n) in enumerate(sizes.items()):
        _write_npy(tmp_path / f"{name}.npy", n, 8, i)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, str(tmp_path), json.dumps(sizes)],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(next(l for l in proc.stdout.splitlines() if l.startswith("RESULT"))[len("RESULT") :])
    print(out, proc.stdout)
    assert "4000000 rows" in proc.stdout  # the large stream was read whole, pass after pass
    growth = out["large"] - out["small"]  # 40x the rows (119 MiB more data), same batches
    assert growth < 0.25 * out["large_mib"], out
    assert out["holding_large"] - out["large"] > 0.8 * out["large_mib"], out
