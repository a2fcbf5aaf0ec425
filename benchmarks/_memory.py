"""Peak memory of one ``gmm.fit`` (or one scoring call), measured in a fresh process.

``python -m benchmarks._memory --n 10000000 --d 16 --k 64`` prints one JSON
line; ``--what log_prob`` or ``--what predict_proba`` measures that function
instead of the fit (on a K-component mixture with identity covariances). X is
built first and the call is compiled ahead of time, so the number is what the
call itself needs on top of X (and of its output, for scoring):

* CPU: the kernel's peak resident set (``VmHWM``) is reset just before the fit
  (``/proc/self/clear_refs``), so ``peak = X + (VmHWM - VmRSS before)``.
* GPU/TPU: the device allocator's ``peak_bytes_in_use``, which includes X.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--d", type=int, required=True)
    parser.add_argument("--k", type=int, required=True)
    parser.add_argument("--covariance-type", default="full")
    parser.add_argument("--max-iter", type=int, default=3)
    parser.add_argument("--init", default="kmeans",
                        help="gmm.fit's init, or 'params' to start EM from given parameters")
    parser.add_argument("--what", default="fit", choices=("fit", "log_prob", "predict_proba"),
                        help="the call measured")
    args = parser.parse_args()

    import jax
    import jax.numpy as jnp
    import numpy as np

    import gmm_jax as gmm

    # X in bounded pieces so generating it leaves no large temporaries behind.
    rng = np.random.default_rng(0)
    X_np = np.empty((args.n, args.d), np.float32)
    step = 1 << 20
    for start in range(0, args.n, step):
        rows = min(step, args.n - start)
        X_np[start:start + rows] = rng.standard_normal((rows, args.d), np.float32)
        X_np[start:start + rows, 0] += 6.0 * rng.integers(0, 4, rows)
    X = jax.device_put(X_np)
    del X_np
    X = jax.block_until_ready(X)
    x_bytes = X.size * X.dtype.itemsize

    options = dict(covariance_type=args.covariance_type, max_iter=args.max_iter, tol=0.0)
    start = gmm.GMMParams.from_covariances(
        jnp.full(args.k, 1.0 / args.k), X[:: args.n // args.k][: args.k],
        jnp.broadcast_to(jnp.eye(args.d), (args.k, args.d, args.d)), "full")
    if args.init == "params":
        options["init_params"] = start
    else:
        options["init"] = args.init
    if args.what == "fit":
        fn = jax.jit(lambda key, X: gmm.fit(key, X, args.k, **options))
    else:
        score = getattr(gmm, args.what)
        fn = jax.jit(lambda key, X: score(start, X))
    key = jax.random.key(0)
    compiled = fn.lower(key, X).compile()
    out_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree_util.tree_leaves(
        jax.eval_shape(fn, key, X))) if args.what != "fit" else 0

    device = jax.devices()[0]
    stats = device.memory_stats() if device.platform != "cpu" else None
    if stats:
        before = stats["bytes_in_use"]
    else:
        if not _reset_peak_rss():
            print(json.dumps({"error": "cannot reset the peak RSS (/proc/self/clear_refs)"}))
            return
        before = _status_kib("VmRSS") * 1024

    t0 = time.perf_counter()
    result = jax.block_until_ready(compiled(key, X))
    seconds = time.perf_counter() - t0

    if stats:
        peak = device.memory_stats()["peak_bytes_in_use"]
        method = f"{device.platform} allocator peak_bytes_in_use (includes X)"
    else:
        peak = x_bytes + _status_kib("VmHWM") * 1024 - before
        method = f"X + (peak RSS during {args.what} - RSS before it)"
    print(json.dumps({
        "what": args.what, "n": args.n, "d": args.d, "k": args.k, "covariance_type": args.covariance_type,
        "init": args.init, "max_iter": args.max_iter,
        "n_iter": int(result.n_iter) if args.what == "fit" else None,
        "x_bytes": x_bytes, "output_bytes": out_bytes, "peak_bytes": peak, "peak_over_x": peak / x_bytes,
        "peak_over_x_plus_output": peak / (x_bytes + out_bytes),
        "extra_bytes": peak - x_bytes - out_bytes, "seconds": seconds, "method": method,
    }))


if __name__ == "__main__":
    main()
