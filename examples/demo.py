"""gorgon_rs demo: a small convnet learns the 8x8 handwritten digits (`make demo`).

What it shows, end to end:
  * a training graph (conv → relu → maxpool → conv → relu → maxpool → dense → relu → dense,
    float32) with symbolic gradients (``gr.grad``) compiled once into a ``gr.TapeMachine``;
  * minibatch training with ``gr.solvers.Adam`` (cosine learning-rate decay), a progress bar per epoch (tqdm if present);
  * a separate evaluation graph (the whole test set in one batch) that gets the weights by name;
  * ``gr.save`` of the weights to out/digits.safetensors and ``gr.plot_history`` of the curves
    to out/digits_history.png;
  * reloading the weights into a fresh graph and evaluating again. The last line printed is
    ``test accuracy: 0.9xx`` from that reloaded model.

Run:  python examples/demo.py [--epochs 15] [--steps N] [--out out]
"""

from __future__ import annotations

import math
import os
import sys
import time

import numpy as np

import gorgon_rs as gr
from gorgon_rs import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import Progress, accuracy, batches, copy_values, digit_images, parser, save_plot  # noqa: E402

DTYPE = gr.float32


def build_convnet(g: gr.Graph, batch: int) -> tuple[gr.Node, gr.Node, list[gr.Node]]:
    """The model in graph ``g`` for a fixed batch size: returns (X input, logits, parameters).

    Layer names (conv0.weight, ..., linear1.bias) come from creation order, so every graph
    built by this function has the same parameter names.
    """
    conv1 = nn.Conv2d(g, 1, 16, 3, padding=1, dtype=DTYPE)      # (B, 16, 8, 8)
    conv2 = nn.Conv2d(g, 16, 32, 3, padding=1, dtype=DTYPE)     # (B, 32, 4, 4)
    fc1 = nn.Linear(g, 32 * 2 * 2, 64, dtype=DTYPE)
    fc2 = nn.Linear(g, 64, 10, dtype=DTYPE)
    X = g.tensor(DTYPE, (batch, 1, 8, 8), name="X")
    h = nn.max_pool2d(gr.relu(conv1(X)), 2)                    # (B, 16, 4, 4)
    h = nn.max_pool2d(gr.relu(conv2(h)), 2)                    # (B, 32, 2, 2)
    h = gr.relu(fc1(gr.reshape(h, (batch, 32 * 2 * 2))))
    logits = fc2(h)
    params = conv1.parameters() + conv2.parameters() + fc1.parameters() + fc2.parameters()
    return X, logits, params


def evaluate(machine: gr.TapeMachine, X: gr.Node, logits: gr.Node, images: np.ndarray, labels: np.ndarray) -> float:
    X.let(images)
    machine.run_all()
    acc = accuracy(logits.value, labels)
    machine.reset()
    return acc


def main() -> None:
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    gr.seed(args.seed)
    X_train, y_train, X_test, y_test = digit_images()
    n_train, n_test, B = len(X_train), len(X_test), args.batch_size
    print(f"digits: {n_train} training and {n_test} test images of 8x8; batch {B}, {args.epochs} epochs")

    # training graph: loss and its gradients, compiled once
    g = gr.Graph()
    X, logits, params = build_convnet(g, B)
    y = g.vector(gr.int64, B, name="y")
    loss = nn.cross_entropy(logits, y)
    gr.grad(loss, params)
    solver = gr.solvers.Adam(lr=args.lr)

    # evaluation graph: the whole test set as one batch
    g_eval = gr.Graph()
    X_eval, logits_eval, params_eval = build_convnet(g_eval, n_test)

    rng = np.random.default_rng(args.seed)
    history: dict[str, list[float]] = {"loss": [], "train_accuracy": [], "test_accuracy": []}
    steps_left = args.steps
    t0 = time.perf_counter()
    with gr.TapeMachine(g) as m, gr.TapeMachine(g_eval) as m_eval:
        for epoch in range(1, args.epochs + 1):
            # cosine annealing: lr at the first epoch, about lr/100 at the last
            solver.lr = args.lr * 0.5 * (1 + math.cos(math.pi * (epoch - 1) / args.epochs))
            nb = n_train // B
            if steps_left is not None:
                nb = min(nb, steps_left)
            bar = Progress(nb, f"epoch {epoch}/{args.epochs}")
            losses: list[float] = []
            correct, seen = 0, 0
            te = time.perf_counter()
            for idx in batches(n_train, B, rng):
                if len(losses) == nb:
                    break
                X.let(X_train[idx])
                y.let(y_train[idx])
                m.run_all()
                solver.step(params)
                lv = float(loss.value)
                correct += int((logits.value.argmax(axis=1) == y_train[idx]).sum())
                seen += B
                m.reset()
                losses.append(lv)
                bar.update(1, loss=lv)
            bar.close()
            copy_values(params_eval, params)
            test_acc = evaluate(m_eval, X_eval, logits_eval, X_test, y_test)
            history["loss"].append(float(np.mean(losses)))
            history["train_accuracy"].append(correct / max(seen, 1))
            history["test_accuracy"].append(test_acc)
            print(f"epoch {epoch:2d}/{args.epochs}  loss {history['loss'][-1]:.4f}  "
                  f"train acc {history['train_accuracy'][-1]:.3f}  test acc {test_acc:.3f}  "
                  f"({time.perf_counter() - te:.2f} s)", flush=True)
            if steps_left is not None:
                steps_left -= len(losses)
                if steps_left <= 0:
                    break
    print(f"trained in {time.perf_counter() - t0:.1f} s")

    weights_path = os.path.join(args.out, "digits.safetensors")
    gr.save(weights_path, params)
    print(f"saved {len(params)} tensors to {weights_path}")
    plot_path = save_plot(history, os.path.join(args.out, "digits_history.png"))
    if plot_path:
        print(f"saved training curves to {plot_path}")

    # a fresh graph, weights from the file only
    g_new = gr.Graph()
    X_new, logits_new, params_new = build_convnet(g_new, n_test)
    gr.load(weights_path, params_new)
    with gr.TapeMachine(g_new) as m_new:
        acc = evaluate(m_new, X_new, logits_new, X_test, y_test)
    print(f"test accuracy: {acc:.3f}")


if __name__ == "__main__":
    main()
