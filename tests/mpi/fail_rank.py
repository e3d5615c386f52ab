"""Worker of tests/test_distributed.py: one rank fails in the middle of data-parallel training.

Usage: mpiexec -n N python tests/mpi/fail_rank.py raise|exit [--rank 1] [--at 3]

Every rank trains a tiny model with ``DataParallel``; at step ``--at`` the rank ``--rank``
either raises an uncaught exception (``raise``) or dies at once without any cleanup
(``exit``: ``os._exit(3)``), while the other ranks are about to wait in the gradient all-reduce.
The job must end non-zero, quickly, with a message naming the rank, never hang.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

import gorgon_rs as gr


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=("raise", "exit"))
    ap.add_argument("--rank", type=int, default=1)
    ap.add_argument("--at", type=int, default=3)
    args = ap.parse_args()

    rank, size = gr.distributed.init()
    gr.seed(0)
    g = gr.Graph()
    w = g.vector(gr.float64, 4, name="w", init=gr.init.gaussian())
    x = g.vector(gr.float64, 4, name="x")
    cost = gr.sum(gr.square(w - x))
    gr.grad(cost, [w])
    gr.distributed.broadcast_parameters([w])
    opt = gr.distributed.DataParallel(gr.solvers.SGD(lr=0.1))
    rng = np.random.default_rng(rank)
    with gr.TapeMachine(g) as m:
        for step in range(1000):
            if step == args.at and rank == args.rank:
                if args.mode == "raise":
                    raise RuntimeError(f"deliberate failure at step {step}")
                os._exit(3)
            x.let(rng.standard_normal(4))
            m.run_all()
            opt.step([w])
            m.reset()
    print(f"rank {rank}: finished (should not happen)", flush=True)


if __name__ == "__main__":
    main()
