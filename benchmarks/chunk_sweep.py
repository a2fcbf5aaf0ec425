"""Per-iteration EM time against rows per chunk, to set ``_rows``' chunk targets for a device.

    python -m benchmarks.chunk_sweep            # prints a Markdown table

Full covariances from one fixed start, ``tol=0``; per-iteration time is
``(t(max_iter=6) - t(max_iter=1)) / 5``, best of 3, compile excluded, as in
``benchmarks.run``. Data are drawn on the device, so nothing is transferred.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp

import gmm_jax as gmm

# (N, D, K, rows per chunk to try); None processes all rows at once.
SIZES = [
    (10_000_000, 32, 64, [4096, 8192, 32768, 131072]),
    (1_000_000, 16, 16, [16384, 65536, 262144, None]),
]


def per_iteration(X, params, chunk_size, m=6, repeats=3) -> float:
    def best(max_iter):
        fn = jax.jit(lambda X, p: gmm.fit(jax.random.key(0), X, p.n_components, init_params=p,
                                          max_iter=max_iter, tol=0.0, chunk_size=chunk_size))
        jax.block_until_ready(fn(X, params))
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            jax.block_until_ready(fn(X, params))
            times.append(time.perf_counter() - t0)
        return min(times)

    return (best(m) - best(1)) / (m - 1)


def main() -> None:
    print(f"device: {jax.devices()[0].device_kind}; jax {jax.__version__}\n")
    print("| N | D | K | rows per chunk | elements per chunk (K·D·rows) | ms / iteration | nominal TFLOP/s |")
    print("|---|---|---|---|---|---|---|")
    for n, d, k, chunks in SIZES:
        X = jax.random.normal(jax.random.key(1), (n, d), jnp.float32) * 3
        cov = jnp.broadcast_to(jnp.eye(d, dtype=jnp.float32) * 9, (k, d, d))
        params = gmm.GMMParams.from_covariances(jnp.full((k,), 1.0 / k, jnp.float32), X[:k], cov, "full")
        for chunk in chunks:
            t = per_iteration(X, params, chunk)
            rows = n if chunk is None else chunk
            print(f"| {n:,} | {d} | {k} | {chunk or 'all'} | 2^{(k * d * rows).bit_length() - 1} "
                  f"| {t * 1e3:.2f} | {4 * n * k * d * d / t / 1e12:.1f} |", flush=True)


if __name__ == "__main__":
    main()
