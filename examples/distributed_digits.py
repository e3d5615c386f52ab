"""Data-parallel training of a small convnet on the 8x8 digits with MPI (gr.distributed).

conv(1→32, 3×3, pad 1) → relu → maxpool 2 → conv(32→64, 3×3, pad 1) → relu → maxpool 2 →
dense(256→128) → relu → dense(128→10), float32, Adam, a global batch of 64 split evenly over
the ranks. Every rank builds the same graph; rank 0's initial weights are broadcast;
``gr.distributed.shard`` gives each rank its part of every epoch; ``DataParallel`` averages the
gradients over the ranks before each Adam step, so every rank keeps identical weights. Rank 0
evaluates on the test set and prints the accuracy once.

Run:  mpiexec -n 2 python examples/distributed_digits.py [--epochs 10] [--steps N] [--out out]
      python examples/distributed_digits.py                 (one process: rank 0 of 1)
(as root add --allow-run-as-root; for more ranks than cores add --oversubscribe)
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

import gorgon_rs as gr
from gorgon_rs import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import Progress, accuracy, copy_values, digit_images, parser  # noqa: E402


def build(g: gr.Graph, batch: int) -> tuple[gr.Node, gr.Node, list[gr.Node]]:
    """Returns (X, logits, parameters) for a graph of a fixed batch size."""
    conv1 = nn.Conv2d(g, 1, 32, 3, padding=1, name="conv1")
    conv2 = nn.Conv2d(g, 32, 64, 3, padding=1, name="conv2")
    fc1 = nn.Linear(g, 64 * 2 * 2, 128, name="fc1")
    fc2 = nn.Linear(g, 128, 10, name="fc2")
    X = g.tensor(gr.float32, (batch, 1, 8, 8), name="X")
    h = nn.max_pool2d(gr.relu(conv1(X)), 2)          # (batch, 32, 4, 4)
    h = nn.max_pool2d(gr.relu(conv2(h)), 2)          # (batch, 64, 2, 2)
    h = gr.relu(fc1(gr.reshape(h, (batch, 64 * 2 * 2))))
    logits = fc2(h)
    params = [p for layer in (conv1, conv2, fc1, fc2) for p in layer.parameters()]
    return X, logits, params


def main() -> None:
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=64, help="global batch, split over the ranks")
    ap.add_argument("--lr", type=float, default=2e-3)
    args = ap.parse_args()

    rank, size = gr.distributed.init()
    if args.batch_size % size:
        raise SystemExit(f"--batch-size {args.batch_size} must be a multiple of the {size} ranks")
    b = args.batch_size // size  # this rank's part of every batch

    gr.seed(0)
    X_train, y_train, X_test, y_test = digit_images()
    n = len(X_train)

    g = gr.Graph()
    X, logits, params = build(g, b)
    y = g.vector(gr.int64, b, name="y")
    loss = nn.cross_entropy(logits, y)  # mean over the local batch: the rank average is the global mean
    gr.grad(loss, params)

    gr.distributed.broadcast_parameters(params, root=0)
    solver = gr.distributed.DataParallel(gr.solvers.Adam(lr=args.lr))
    if rank == 0:
        print(f"{size} rank(s), {b} samples per rank per step (global batch {b * size})", flush=True)

    steps_per_epoch = (n // size) // b  # the same on every rank, so no rank waits forever
    steps_left = args.steps
    with gr.TapeMachine(g) as m:
        for epoch in range(args.epochs):
            nb = steps_per_epoch if steps_left is None else min(steps_per_epoch, steps_left)
            if nb <= 0:
                break
            order = gr.distributed.shard(n, epoch)
            bar = Progress(nb, f"epoch {epoch + 1}", enabled=rank == 0)
            t0 = time.perf_counter()
            total = 0.0
            for k in range(nb):
                idx = order[k * b:(k + 1) * b]
                X.let(X_train[idx])
                y.let(y_train[idx])
                m.run_all()
                solver.step(params)
                total += float(loss.value)
                m.reset()
                bar.update(1)
            bar.close()
            seconds = time.perf_counter() - t0
            mean_loss = float(gr.distributed.allreduce(np.array([total / nb]), "mean")[0])
            if rank == 0:
                print(f"epoch {epoch + 1:2d}  loss {mean_loss:.4f}  {1e3 * seconds / nb:.1f} ms/step", flush=True)
            if steps_left is not None:
                steps_left -= nb

    if rank == 0:
        g_eval = gr.Graph()
        X_eval, logits_eval, params_eval = build(g_eval, len(X_test))
        copy_values(params_eval, params)
        X_eval.let(X_test)
        with gr.TapeMachine(g_eval) as m_eval:
            m_eval.run_all()
            acc = accuracy(logits_eval.value, y_test)
        os.makedirs(args.out, exist_ok=True)
        path = os.path.join(args.out, "distributed_convnet.safetensors")
        gr.save(path, params)
        print(f"saved the model to {path}")
        print(f"test accuracy: {acc:.3f}", flush=True)


if __name__ == "__main__":
    main()
