"""Logistic regression: tell the handwritten digit 3 from 8 (8x8 digits, 64 pixels).

``p = sigmoid(X @ w + b)`` with ``gr.nn.binary_cross_entropy``, full-batch training with
``gr.solvers.Adam``, and test accuracy on held-out images.

Run:  python examples/logistic_regression.py [--steps 300]
"""

from __future__ import annotations

import os
import sys

import numpy as np

import gorgon_rs as gr
from gorgon_rs.datasets import train_test_split_digits

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import parser  # noqa: E402


def subset(X: np.ndarray, y: np.ndarray, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    keep = (y == a) | (y == b)
    return np.ascontiguousarray(X[keep] / 16.0), (y[keep] == b).astype(np.float64)


def main() -> None:
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--lr", type=float, default=0.05)
    args = ap.parse_args()
    steps = args.steps if args.steps is not None else 300

    X_tr, y_tr, X_te, y_te = train_test_split_digits(0.3, seed=1)
    X_train, t_train = subset(X_tr, y_tr, 3, 8)
    X_test, t_test = subset(X_te, y_te, 3, 8)
    print(f"3 vs 8: {len(X_train)} training and {len(X_test)} test images")

    gr.seed(0)
    g = gr.Graph()
    X = g.matrix(gr.float64, X_train.shape, name="X")
    t = g.vector(gr.float64, len(t_train), name="t")
    w = g.vector(gr.float64, 64, name="w", init=gr.init.zeros())
    b = g.scalar(gr.float64, name="b", init=gr.init.zeros())
    p = gr.sigmoid(gr.matmul(X, w) + b)
    loss = gr.nn.binary_cross_entropy(p, t)
    gr.grad(loss, [w, b])

    X.let(X_train)
    t.let(t_train)
    solver = gr.solvers.Adam(lr=args.lr)
    with gr.TapeMachine(g) as m:
        for step in range(1, steps + 1):
            m.run_all()
            solver.step([w, b])
            if step == 1 or step % 50 == 0 or step == steps:
                acc = float(((p.value > 0.5) == (t_train > 0.5)).mean())
                print(f"step {step:4d}  loss {float(loss.value):.4f}  train acc {acc:.3f}")
            m.reset()

    # evaluation without a graph: the model is tiny
    z = X_test @ w.value + float(b.value)
    print(f"test accuracy: {float(((z > 0) == (t_test > 0.5)).mean()):.3f}")


if __name__ == "__main__":
    main()
