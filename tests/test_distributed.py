"""Fits on data sharded over devices equal single-device fits, and never gather X.

Several CPU devices exist only if ``XLA_FLAGS`` is set before JAX starts, so
the multi-device checks run in a fresh interpreter.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

import gmm_jax as gmm

ROOT = Path(__file__).resolve().parents[1]

SHARDED_SCRIPT = textwrap.dedent(
    """
    import json, re, time
    import jax, jax.numpy as jnp, numpy as np
    import gmm_jax as gmm
    from gmm_jax import _driver, _rows, _stream, _tuning

    jax.config.update("jax_numpy_rank_promotion", "raise")  # as in the suite's conftest
    assert jax.device_count() == 4, jax.devices()
    rng = np.random.default_rng(0)
    n, d, k = 2000, 3, 3
    X = (rng.normal(size=(n, d)) + rng.integers(0, 3, size=(n, 1)) * 4.0 + 100.0).astype(np.float32)
    X_sharded, w_sharded = gmm.distributed.shard(X)
    out = {"x_spec": str(X_sharded.sharding.spec), "w_spec": str(w_sharded.sharding.spec)}

    def max_diff(a, b):
        return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
                   for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))

    fits = {}
    configs = {  # (covariance_type, init, chunk_size): unchunked and chunked within each device
        "full/kmeans": ("full", "kmeans", None),
        "diag/random_from_data/chunked": ("diag", "random_from_data", 64),
    }
    for name, (covariance_type, init, chunk) in configs.items():
        kwargs = dict(covariance_type=covariance_type, init=init, max_iter=10, tol=0.0)
        t0 = time.perf_counter()
        one = gmm.fit(jax.random.key(1), X, k, **kwargs)
        t1 = time.perf_counter()
        sharded = gmm.fit(jax.random.key(1), X_sharded, k, sample_weight=w_sharded, chunk_size=chunk, **kwargs)
        t2 = time.perf_counter()
        fits[name] = {
            "params": max_diff(one.params, sharded.params),
            "trace": max_diff(one.log_likelihood, sharded.log_likelihood),
            "param_spec": str(sharded.params.means.sharding.spec),
            "seconds": [t1 - t0, t2 - t1],
        }
    out["fits"] = fits

    # Out of core on several devices: each streamed batch split over the mesh.
    start, source = one.params, lambda: (X[i : i + 250] for i in range(0, n, 250))
    kwargs = dict(covariance_type="diag", init_params=start, max_iter=5, tol=0.0)
    in_memory = gmm.fit(jax.random.key(1), X, k, **kwargs)
    streamed = gmm.fit_stream(jax.random.key(1), source, k, mesh=gmm.distributed.data_mesh(), **kwargs)
    out["stream"] = {"params": max_diff(in_memory.params, streamed.params),
                     "param_spec": str(streamed.params.means.sharding.spec)}
    params = one.params
    out["predict"] = {
        name: max_diff(getattr(gmm, name)(params, X), getattr(gmm, name)(params, X_sharded))
        for name in ("log_prob", "predict_proba", "predict")
    }
    out["predict_spec"] = str(gmm.log_prob(params, X_sharded).sharding.spec)
    out["score"] = abs(float(gmm.score(params, X)) - float(gmm.score(params, X_sharded)))

    def all_gathers(compiled_text):
        return re.findall(r"= (\\S+) all-gather(?:-start)?\\(", compiled_text)

    hlo = {}
    for name, (covariance_type, init, chunk) in configs.items():
        t0 = time.perf_counter()
        # The same compiled program gmm.fit runs for the sharded fit above.
        # Arguments exactly as gmm.fit passes them, so this is a cache hit.
        options = _driver.FitOptions(n_components=k, covariance_type=covariance_type, init=init, n_init=1,
            max_iter=10, chunk_size=_rows.RowBlocks(4, chunk), verbose=False, tuning=_tuning.CPU)
        program = _driver.fit_program.pick(options.tuning, _driver.fit_size(X_sharded.shape, options))
        lowered = program.lower(
            jax.random.key(1), X_sharded, w_sharded, None, jnp.asarray(0.0, X.dtype), jnp.asarray(1e-6, X.dtype),
            jnp.asarray(-jnp.inf, X.dtype), options=options)
        text = lowered.compile().as_text()
        hlo["fit/" + name] = {"all_gather": all_gathers(text), "all_reduce": text.count("all-reduce"),
                              "seconds": time.perf_counter() - t0}
    batch, batch_w = gmm.distributed.shard(X[:250])
    replicated = jax.sharding.NamedSharding(batch.sharding.mesh, jax.sharding.PartitionSpec())
    start_replicated, center_replicated = jax.device_put((start, jnp.zeros(d, X.dtype)), replicated)
    text = _stream._batch_statistics.lower(
        start_replicated, batch, batch_w, center_replicated, chunk_size=_rows.RowBlocks(4, None), tuning=_tuning.CPU
    ).compile().as_text()
    hlo["fit_stream batch step"] = {"all_gather": all_gathers(text), "all_reduce": text.count("all-reduce")}
    for name in ("log_prob", "predict_proba", "predict"):
        text = jax.jit(getattr(gmm, name)).lower(params, X_sharded).compile().as_text()
        hlo[name] = {"all_gather": all_gathers(text), "all_reduce": text.count("all-reduce")}
    out["hlo"] = hlo
    print("RESULT" + json.dumps(out))
    """
)


def run_with_devices(script, n_devices, timeout=150):
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={n_devices}"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT"))
    return json.loads(line[len("RESULT"):])


@pytest.mark.slow
def test_fit_on_four_sharded_cpu_devices_equals_single_device_fit_and_never_gathers_x():
    out = run_with_devices(SHARDED_SCRIPT, 4)
    assert out["x_spec"] == str(P("data", None))
    assert out["w_spec"] == str(P("data"))
    for name, diffs in out["fits"].items():
        # float32 data around 100: agreement to float32 rounding of the sums.
        assert diffs["params"] < 2e-3, (name, diffs)
        assert diffs["trace"] < 1e-4, (name, diffs)
        assert diffs["param_spec"] == str(P()), name  # parameters replicated
    assert out["predict"]["predict"] == 0
    assert out["predict"]["log_prob"] < 1e-3 and out["predict"]["predict_proba"] < 1e-4
    assert out["predict_spec"] == str(P("data"))
    assert out["score"] < 1e-4
    assert out["stream"]["params"] < 2e-3 and out["stream"]["param_spec"] == str(P())
    rows_per_device = 2000 // 4
    for name, ops in out["hlo"].items():
        # Any all-gather left is of per-device partial results (arg-max
        # candidates: a few values per device), never of rows.
        for shape in ops["all_gather"]:
            dims = [int(x) for x in shape[shape.index("[") + 1 : shape.index("]")].split(",") if x]
            assert max(dims, default=0) < rows_per_device, (name, shape)
    assert all(out["hlo"]["fit/" + name]["all_reduce"] > 0 for name in out["fits"])
    assert out["hlo"]["fit_stream batch step"]["all_reduce"] > 0  # the statistics are reduced across devices
    assert not any(out["hlo"][name]["all_gather"] for name in ("log_prob", "predict_proba", "predict"))


def test_shard_pads_with_zero_weight_rows_on_one_device():
    X = np.arange(14.0, dtype=np.float32).reshape(7, 2)
    X_sharded, w = gmm.distributed.shard(X, sample_weight=np.full(7, 2.0))
    assert X_sharded.shape[0] % jax.device_count() == 0
    np.testing.assert_array_equal(np.asarray(X_sharded)[:7], X)
    assert float(w.sum()) == 14.0 and X_sharded.dtype == np.float32


def test_shard_rejects_bad_inputs_with_the_shape_received():
    with pytest.raises(ValueError, match=r"2-D.*\(5,\)"):
        gmm.distributed.shard(np.zeros(5))
    with pytest.raises(ValueError, match=r"sample_weight.*\(4,\).*\(3,\)"):
        gmm.distributed.shard(np.zeros((4, 2)), sample_weight=np.ones(3))
    with pytest.raises(TypeError, match="Mesh"):
        gmm.distributed.shard(np.zeros((4, 2)), mesh="data")
