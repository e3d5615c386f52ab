"""Worker of tests/test_distributed.py: train the digits MLP for a few steps, save the parameters.

Run alone with ``--reference`` it is the single-process oracle: no gr.distributed at all, the
plain solver, batches of the global size taken in order from
``numpy.random.default_rng([seed, epoch]).permutation(n)``. Run under ``mpiexec -n N`` (or
alone without ``--reference``) it is the data-parallel version: ``gr.distributed.init``,
``broadcast_parameters``, ``shard`` and ``DataParallel``, each rank taking ``B / N`` samples of
every batch. With a mean loss both take the same steps; the test compares the saved parameters.

Usage: python tests/mpi/train_digits.py --out DIR [--solver sgd|adam] [--steps 20] [--batch 64]
       [--reference]
Writes DIR/params_rank{R}.npz (every rank) with the float64 parameters after training.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

import gorgon_rs as gr
from gorgon_rs import nn
from gorgon_rs.datasets import train_test_split_digits

SEED = 7


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--solver", choices=("sgd", "adam"), default="sgd")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=64, help="global batch size")
    ap.add_argument("--reference", action="store_true", help="single process, no gr.distributed")
    args = ap.parse_args()

    if args.reference:
        rank, size = 0, 1
    else:
        rank, size = gr.distributed.init()
    if args.batch % size:
        raise SystemExit(f"--batch {args.batch} is not a multiple of {size} ranks")
    b = args.batch // size

    gr.seed(SEED)
    X_train, y_train, _, _ = train_test_split_digits(0.2, seed=0)
    X_train = X_train / 16.0

    g = gr.Graph()
    fc1 = nn.Linear(g, 64, 32, dtype=gr.float64, name="fc1")
    fc2 = nn.Linear(g, 32, 10, dtype=gr.float64, name="fc2")
    X = g.matrix(gr.float64, (b, 64), name="X")
    y = g.vector(gr.int64, b, name="y")
    loss = nn.cross_entropy(fc2(gr.tanh(fc1(X))), y)  # reduction="mean"
    params = fc1.parameters() + fc2.parameters()
    gr.grad(loss, params)

    make = {"sgd": lambda: gr.solvers.SGD(lr=0.5, momentum=0.9),
            "adam": lambda: gr.solvers.Adam(lr=0.01)}[args.solver]
    if args.reference:
        solver = make()
    else:
        # Every rank drew the same weights from gr.seed; broadcasting anyway is what a real
        # script does (and overwrites with identical values here).
        gr.distributed.broadcast_parameters(params)
        solver = gr.distributed.DataParallel(make())

    n = len(X_train)
    steps_per_epoch = (n // size) // b
    step, epoch = 0, 0
    with gr.TapeMachine(g) as m:
        while step < args.steps:
            if args.reference:
                order = np.random.default_rng([SEED, epoch]).permutation(n)
            else:
                order = gr.distributed.shard(n, epoch, seed=SEED)
            for k in range(steps_per_epoch):
                if step == args.steps:
                    break
                idx = order[k * b:(k + 1) * b]
                X.let(X_train[idx])
                y.let(y_train[idx])
                m.run_all()
                solver.step(params)
                m.reset()
                step += 1
            epoch += 1

    os.makedirs(args.out, exist_ok=True)
    np.savez(os.path.join(args.out, f"params_rank{rank}.npz"), **{p.name: p.value for p in params})
    print(f"rank {rank}/{size}: trained {step} steps, batch {b} per rank", flush=True)


if __name__ == "__main__":
    main()
