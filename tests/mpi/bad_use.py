"""Worker of tests/test_distributed.py: misuse must raise the same error class on every rank.

Usage: mpiexec -n N python tests/mpi/bad_use.py CASE

CASE is one of
  before_init  collectives called before gr.distributed.init()   -> GraphError on every rank
  shape        rank 1's parameter has another shape               -> ShapeError on every rank
  count        rank 1 passes one parameter more                   -> ShapeError on every rank
  dtype        rank 1's parameter is float32, the others float64  -> DTypeError on every rank
  nograd       rank 1 passes a parameter without gradient         -> GraphError on every rank

Each rank prints one line per checked call: ``rank R CALL: ErrorClass: message`` (or
``rank R CALL: no error``) and then exits normally, so the job ends with status 0.
"""

from __future__ import annotations

import os
import sys

import numpy as np

import gorgon_rs as gr


def report(rank: int, call: str, fn) -> None:
    try:
        fn()
    except gr.Error as e:
        print(f"rank {rank} {call}: {type(e).__name__}: {e}", flush=True)
    else:
        print(f"rank {rank} {call}: no error", flush=True)


def main() -> None:
    case = sys.argv[1]
    if case == "before_init":
        rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", os.environ.get("PMI_RANK", "0")))
        g = gr.Graph()
        w = g.vector(gr.float64, 3, name="w", init=gr.init.zeros())
        report(rank, "broadcast_parameters", lambda: gr.distributed.broadcast_parameters([w]))
        report(rank, "allreduce_gradients", lambda: gr.distributed.allreduce_gradients([w]))
        report(rank, "DataParallel.step",
               lambda: gr.distributed.DataParallel(gr.solvers.SGD(lr=0.1)).step([w]))
        report(rank, "shard", lambda: gr.distributed.shard(10))
        report(rank, "barrier", gr.distributed.barrier)
        return

    rank, size = gr.distributed.init()
    odd = rank == 1
    g = gr.Graph()
    dtype = gr.float32 if case == "dtype" and odd else gr.float64
    n = 4 if case == "shape" and odd else 3
    w = g.vector(dtype, n, name="w", init=gr.init.ones())
    b = g.scalar(dtype, name="b", init=gr.init.zeros())
    params = [w, b]
    if case == "count" and odd:
        params.append(g.scalar(dtype, name="extra", init=gr.init.zeros()))
    spare = g.scalar(dtype, name="spare", init=gr.init.zeros())  # never differentiated
    cost = gr.sum(gr.square(w))
    for p in params[1:]:
        cost = cost + p * p
    gr.grad(cost, params)
    if case == "nograd" and odd:
        params = [w, spare]

    if case != "nograd":
        report(rank, "broadcast_parameters", lambda: gr.distributed.broadcast_parameters(params))
    with gr.TapeMachine(g) as m:
        m.run_all()
        report(rank, "allreduce_gradients", lambda: gr.distributed.allreduce_gradients(params))
    # the process group still works after an error
    total = gr.distributed.allreduce(np.array([1.0]))
    print(f"rank {rank} after: {float(total[0]):g} of {size}", flush=True)


if __name__ == "__main__":
    main()
