"""Per-iteration EM time against rows per chunk, to set the tuning table's chunk target for a device (``_tuning``).

    python -m benchmarks.chunk_sweep            # prints a Markdown table

Full covariances from one fixed start, ``tol=0``; per-iteration time is
``(t(max_iter=6) - t(max_iter=1)) / 5``, best of 3, compile excluded, as in
``benchmarks.run``. Data are drawn on the device, so nothing is transferred.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import _libs

# (N, D, K, rows per chunk to try); None processes all rows at once.
SIZES = [
    (10_000_000, 32, 64, [4096, 8192, 32768, 131072]),
    (1_000_000, 16, 16, [16384, 65536, 262144, None]),
]


def per_iteration(X, start: _libs.Start, chunk_size, m=6, repeats=3) -> float:
    """Per-iteration time of ``gmm.fit`` from ``start`` with ``chunk_size`` rows per chunk."""
    def best(max_iter):
        fit = _libs.gmm_jax_prepare(X, start, n_components=start.means.shape[0], covariance_type="full",
                                    max_iter=max_iter, tol=0.0, chunk_size=chunk_size)
        _libs.block(fit.run())  # warm-up
        return _libs.best_of(fit.run, repeats)[0]

    return (best(m) - best(1)) / (m - 1)


def main() -> None:
    print(f"device: {jax.devices()[0].device_kind}; jax {jax.__version__}\n")
    print("| N | D | K | rows per chunk | elements per chunk (K·D·rows) | ms / iteration | nominal TFLOP/s |")
    print("|---|---|---|---|---|---|---|")
    for n, d, k, chunks in SIZES:
        X = jax.random.normal(jax.random.key(1), (n, d), jnp.float32) * 3
        start = _libs.Start(np.full(k, 1.0 / k), np.asarray(X[:k]), np.broadcast_to(np.eye(d) * 9, (k, d, d)), "full")
        for chunk in chunks:
            t = per_iteration(X, start, chunk)
            rows = n if chunk is None else chunk
            print(f"| {n:,} | {d} | {k} | {chunk or 'all'} | 2^{(k * d * rows).bit_length() - 1} "
                  f"| {t * 1e3:.2f} | {4 * n * k * d * d / t / 1e12:.1f} |", flush=True)


if __name__ == "__main__":
    main()
