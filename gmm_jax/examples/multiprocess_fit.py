"""Fit one Gaussian mixture over data spread across processes with ``jax.distributed``.

Each process holds only its own rows. ``gmm.distributed.shard`` turns them into
one global ``jax.Array`` split along the sample axis
(``jax.make_array_from_process_local_data``); ``gmm.fit`` is then called, the
same call, in every process. XLA's SPMD partitioner sums the sufficient
statistics across processes (gloo collectives on CPU, NCCL on GPUs); no
process ever sees another's rows, and every process ends with the same
replicated parameters.

On one machine (the launcher starts P processes on 127.0.0.1)::

    python -m gmm_jax.examples.multiprocess_fit --processes 2
    python -m gmm_jax.examples.multiprocess_fit --processes 2 --data X.npy --output params.npz
    python -c "import gmm_jax as gmm; print(gmm.load('params.npz').means)"

On a cluster, start the same script once per host with ``--process-id``
(the launcher is not used), pointing every process at the first host::

    # host 0                                     # host 1
    python -m gmm_jax.examples.multiprocess_fit \\   python -m gmm_jax.examples.multiprocess_fit \\
        --coordinator host0:12345 \\                  --coordinator host0:12345 \\
        --num-processes 2 --process-id 0 \\           --num-processes 2 --process-id 1 \\
        --data /shared/X.npy                          --data /shared/X.npy

Under SLURM, Open MPI or a TPU pod, ``jax.distributed.initialize()`` reads
all three from the environment: pass ``--process-id auto``. With GPUs, drop
the gloo setting (XLA uses NCCL) and each process shards over its local GPUs.
``--data`` is read with ``np.load(mmap_mode="r")``: process ``i`` touches only
its contiguous block of rows. Without ``--data`` each process draws its own
rows from a fixed synthetic mixture.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time

import numpy as np


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _local_rows(args, process_id, num_processes):
    """This process's rows: a contiguous block of ``--data``, or its own synthetic draw."""
    if args.data is not None:
        X = np.load(args.data, mmap_mode="r")
        bounds = np.linspace(0, X.shape[0], num_processes + 1).astype(int)
        return np.asarray(X[bounds[process_id] : bounds[process_id + 1]], dtype=np.float32)
    rng = np.random.default_rng([args.seed, process_id])
    n = args.samples_per_process
    centers = np.array([[-4.0, 0.0], [0.0, 4.0], [4.0, 0.0]])[: args.components]
    labels = rng.integers(0, len(centers), n)
    return (centers[labels % len(centers)] + rng.normal(size=(n, 2))).astype(np.float32)


def run_process(args) -> None:
    """One process of the job: join it, shard local rows, fit, report."""
    import jax

    # CPU collectives across processes go through gloo (TCP); GPUs use NCCL.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if args.process_id == "auto":
        jax.distributed.initialize(initialization_timeout=args.timeout)
    else:
        jax.distributed.initialize(
            coordinator_address=args.coordinator,
            num_processes=args.num_processes,
            process_id=int(args.process_id),
            initialization_timeout=args.timeout,
        )
    import gmm_jax as gmm

    process_id, num_processes = jax.process_index(), jax.process_count()
    X_local = _local_rows(args, process_id, num_processes)
    X, w = gmm.distributed.shard(X_local)
    start = time.perf_counter()
    result = gmm.fit(
        jax.random.key(args.seed), X, args.components, sample_weight=w,
        covariance_type=args.covariance_type, max_iter=args.max_iter, tol=args.tol,
    )  # fmt: skip
    # The parameters are replicated: every process can read them.
    weights = np.asarray(result.params.weights)
    print(
        f"[process {process_id}/{num_processes}] {X_local.shape[0]} local rows of {X.shape[0]} "
        f"on {jax.local_device_count()} of {jax.device_count()} devices; "
        f"{int(result.n_iter)} iterations in {time.perf_counter() - start:.2f} s, "
        f"lower bound {float(result.lower_bound):.6f}, weights {np.round(weights, 4).tolist()}",
        flush=True,
    )
    if args.output and process_id == 0:
        # gmm.save writes the documented parameter file (atomically), which
        # gmm.load reads back. The parameters are copied to this host first:
        # computing on the global arrays here, in one process only, would
        # start a computation the other processes never join.
        gmm.save(args.output, jax.tree_util.tree_map(np.asarray, result.params))
        print(f"[process 0] saved the parameters to {args.output}", flush=True)
    jax.distributed.shutdown()


def launch(args, argv) -> int:
    """Starts ``--processes`` copies of this script on 127.0.0.1 and waits for all of them."""
    coordinator = f"127.0.0.1:{_free_port()}"
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    if args.local_devices > 1:
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={args.local_devices}"
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "gmm_jax.examples.multiprocess_fit", *argv,
             "--coordinator", coordinator, "--num-processes", str(args.processes), "--process-id", str(i)],
            env=env,
        )  # fmt: skip
        for i in range(args.processes)
    ]
    deadline = time.monotonic() + args.timeout
    try:
        while True:
            codes = [child.poll() for child in children]
            if any(code not in (None, 0) for code in codes):
                print(f"a process failed (exit codes {codes}); stopping the others", file=sys.stderr)
                return 1
            if all(code == 0 for code in codes):
                return 0
            if time.monotonic() > deadline:
                print(f"timed out after {args.timeout} s; stopping the processes", file=sys.stderr)
                return 124
            time.sleep(0.05)
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=2, help="launch this many local processes (launcher mode)")
    parser.add_argument("--local-devices", type=int, default=1, help="CPU devices per launched process")
    parser.add_argument("--process-id", default=None, help="run as this process of a job (an int, or 'auto')")
    parser.add_argument("--num-processes", type=int, default=None)
    parser.add_argument("--coordinator", default=None, help="host:port of process 0")
    parser.add_argument("--data", default=None, help=".npy file; process i fits on its block of rows")
    parser.add_argument("--samples-per-process", type=int, default=10_000)
    parser.add_argument("--components", type=int, default=3)
    parser.add_argument("--covariance-type", default="full")
    parser.add_argument("--max-iter", type=int, default=100)
    parser.add_argument("--tol", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=None, help="process 0 saves the fitted parameters here with gmm.save (read them with gmm.load)")
    parser.add_argument("--timeout", type=int, default=120, help="seconds before a hung job is stopped")
    args = parser.parse_args(argv)
    if args.process_id is None:
        if args.processes < 1:
            parser.error("--processes must be >= 1")
        return launch(args, argv)
    if args.process_id != "auto" and (args.coordinator is None or args.num_processes is None):
        parser.error("--process-id needs --coordinator and --num-processes (or use --process-id auto)")
    run_process(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
