"""A multilayer perceptron (64 → 128 → 64 → 10, ReLU, dropout) on the 8x8 digits.

Shows layers (``gr.nn.Linear``), dropout only in the training graph, ``gr.nn.cross_entropy``
with integer labels, ``gr.solvers.Adam`` with minibatches, and an evaluation graph that gets
the trained weights by name. The minibatch loop is ``train_epochs`` in ``_training.py``.

Run:  python examples/mlp_digits.py [--epochs 30] [--steps N]
"""

from __future__ import annotations

import os
import sys

import gorgon_rs as gr
from gorgon_rs import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import digit_images, parser  # noqa: E402
from _training import train_epochs  # noqa: E402


def build_mlp(g: gr.Graph, batch: int, training: bool, p_drop: float = 0.2) -> tuple[gr.Node, gr.Node, list[gr.Node]]:
    fc1, fc2, fc3 = nn.Linear(g, 64, 128), nn.Linear(g, 128, 64), nn.Linear(g, 64, 10)
    X = g.matrix(gr.float32, (batch, 64), name="X")
    h = nn.dropout(gr.relu(fc1(X)), p_drop, training=training)
    h = nn.dropout(gr.relu(fc2(h)), p_drop, training=training)
    return X, fc3(h), fc1.parameters() + fc2.parameters() + fc3.parameters()


def main() -> None:
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    args = ap.parse_args()

    gr.seed(0)
    X_train, y_train, X_test, y_test = digit_images()
    X_train, X_test = X_train.reshape(-1, 64), X_test.reshape(-1, 64)
    B = args.batch_size

    g = gr.Graph()
    X, logits, params = build_mlp(g, B, training=True)
    y = g.vector(gr.int64, B, name="y")
    loss = nn.cross_entropy(logits, y)
    gr.grad(loss, params)

    g_eval = gr.Graph()
    X_eval, logits_eval, params_eval = build_mlp(g_eval, len(X_test), training=False)
    X_eval.let(X_test)

    solver = gr.solvers.Adam(lr=args.lr)
    acc = train_epochs(g, g_eval, X=X, y=y, loss=loss, params=params, solver=solver, X_train=X_train, y_train=y_train,
                       batch_size=B, logits_eval=logits_eval, y_test=y_test, eval_nodes=params_eval, train_nodes=params,
                       epochs=args.epochs, steps=args.steps)
    print(f"test accuracy: {acc:.3f}")


if __name__ == "__main__":
    main()
