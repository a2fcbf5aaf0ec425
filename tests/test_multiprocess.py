"""Two `jax.distributed` processes on 127.0.0.1, each holding half the rows, fit the single-process model."""

import os
import re
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import gmm_jax as gmm

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_two_processes_with_half_the_rows_each_fit_the_same_model_as_one_process(tmp_path):
    rng = np.random.default_rng(0)
    n = 2000
    X = (rng.normal(size=(n, 3)) + rng.integers(0, 3, size=(n, 1)) * 4.0 + 10.0).astype(np.float32)
    np.save(tmp_path / "X.npy", X)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    command = [
        sys.executable, "-m", "gmm_jax.examples.multiprocess_fit", "--processes", "2", "--local-devices", "2",
        "--data", str(tmp_path / "X.npy"), "--output", str(tmp_path / "params.npz"),
        "--components", "3", "--covariance-type", "full", "--max-iter", "10", "--tol", "0", "--seed", "0",
        "--timeout", "100",
    ]  # fmt: skip
    # The launcher stops both processes after --timeout; the outer timeout is a backstop.
    for _ in range(2):  # the free port found by the launcher may be taken before the coordinator binds it
        proc = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=150)
        if proc.returncode == 0 or "address already in use" not in (proc.stdout + proc.stderr).lower():
            break
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "[process 0/2] 1000 local rows of 2000 on 2 of 4 devices" in proc.stdout
    assert "[process 1/2] 1000 local rows of 2000 on 2 of 4 devices" in proc.stdout

    # --output is written with gmm.save, so gmm.load reads it.
    distributed = gmm.load(tmp_path / "params.npz")
    single = gmm.fit(jax.random.key(0), X, 3, covariance_type="full", max_iter=10, tol=0.0)
    assert int(single.n_iter) == 10
    assert proc.stdout.count("10 iterations in") == 2
    assert distributed.covariance_type == "full"
    for name in ("weights", "means", "precisions_cholesky"):
        np.testing.assert_allclose(getattr(distributed, name), getattr(single.params, name), rtol=1e-4, atol=1e-4, err_msg=name)
    bounds = [float(b) for b in re.findall(r"lower bound (-?[0-9.]+)", proc.stdout)]
    assert len(bounds) == 2
    np.testing.assert_allclose(bounds, float(single.lower_bound), rtol=1e-5)
