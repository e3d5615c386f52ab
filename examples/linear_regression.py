"""Linear regression by gradient descent: recover y = X·w + b from noisy samples.

Builds ``pred = X @ w + b`` in float64, the mean squared error with ``gr.nn.mse_loss``, its
gradients with ``gr.grad``, and trains with ``gr.solvers.SGD`` on a ``gr.TapeMachine``; then
compares the learned weights with NumPy's least-squares solution.

Run:  python examples/linear_regression.py [--steps 200] [--lr 0.1]
"""

from __future__ import annotations

import os
import sys

import numpy as np

import gorgon_rs as gr

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import parser  # noqa: E402


def main() -> None:
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--lr", type=float, default=0.1)
    args = ap.parse_args()
    steps = args.steps if args.steps is not None else 200

    rng = np.random.default_rng(0)
    true_w, true_b = np.array([2.0, -3.4, 1.7]), 4.2
    X_data = rng.normal(size=(256, 3))
    y_data = X_data @ true_w + true_b + 0.01 * rng.normal(size=256)

    gr.seed(0)
    g = gr.Graph()
    X = g.matrix(gr.float64, X_data.shape, name="X")
    y = g.vector(gr.float64, len(y_data), name="y")
    w = g.vector(gr.float64, 3, name="w", init=gr.init.gaussian(0.0, 0.1))
    b = g.scalar(gr.float64, name="b", init=gr.init.zeros())
    pred = gr.matmul(X, w) + b
    loss = gr.nn.mse_loss(pred, y)
    gr.grad(loss, [w, b])

    X.let(X_data)
    y.let(y_data)
    solver = gr.solvers.SGD(lr=args.lr)
    with gr.TapeMachine(g) as m:
        for step in range(1, steps + 1):
            m.run_all()
            solver.step([w, b])
            if step == 1 or step % 50 == 0 or step == steps:
                print(f"step {step:4d}  mse {float(loss.value):.6f}")
            m.reset()

    A = np.hstack([X_data, np.ones((len(X_data), 1))])
    lstsq = np.linalg.lstsq(A, y_data, rcond=None)[0]
    print("learned  w =", np.round(w.value, 4), " b =", round(float(b.value), 4))
    print("lstsq    w =", np.round(lstsq[:3], 4), " b =", round(float(lstsq[3]), 4))
    print("true     w =", true_w, " b =", true_b)


if __name__ == "__main__":
    main()
