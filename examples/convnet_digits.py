"""A convnet with batch normalization on the 8x8 digits; weights and running statistics saved.

conv(1→16) → BatchNorm2d → relu → maxpool → conv(16→32) → BatchNorm2d → relu → maxpool →
dense(128→64) → relu → dense(64→10). The training graph normalizes with batch statistics
and updates the running statistics after every run; the evaluation graph (layers built with
``training=False``) uses the running statistics. Parameters, buffers and the solver state
are saved with ``gr.save`` and the model is reloaded into a fresh graph. The minibatch loop is
``train_epochs`` in ``_training.py``.

Run:  python examples/convnet_digits.py [--epochs 10] [--steps N] [--out out]
"""

from __future__ import annotations

import os
import sys

import gorgon_rs as gr
from gorgon_rs import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import accuracy, digit_images, parser  # noqa: E402
from _training import train_epochs  # noqa: E402


def build(g: gr.Graph, batch: int, training: bool) -> tuple[gr.Node, gr.Node, list[gr.Node], list[gr.Node]]:
    """Returns (X, logits, parameters, buffers) for a graph of a fixed batch size."""
    conv1, bn1 = nn.Conv2d(g, 1, 16, 3, padding=1), nn.BatchNorm2d(g, 16)
    conv2, bn2 = nn.Conv2d(g, 16, 32, 3, padding=1), nn.BatchNorm2d(g, 32)
    fc1, fc2 = nn.Linear(g, 128, 64), nn.Linear(g, 64, 10)
    bn1.training = bn2.training = training
    X = g.tensor(gr.float32, (batch, 1, 8, 8), name="X")
    h = nn.max_pool2d(gr.relu(bn1(conv1(X))), 2)
    h = nn.max_pool2d(gr.relu(bn2(conv2(h))), 2)
    h = gr.relu(fc1(gr.reshape(h, (batch, 128))))
    logits = fc2(h)
    layers = [conv1, bn1, conv2, bn2, fc1, fc2]
    params = [p for layer in layers for p in layer.parameters()]
    buffers = [b for layer in layers for b in layer.buffers()]
    return X, logits, params, buffers


def main() -> None:
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    gr.seed(0)
    X_train, y_train, X_test, y_test = digit_images()
    B = args.batch_size

    g = gr.Graph()
    X, logits, params, buffers = build(g, B, training=True)
    y = g.vector(gr.int64, B, name="y")
    loss = nn.cross_entropy(logits, y)
    gr.grad(loss, params)

    g_eval = gr.Graph()
    X_eval, logits_eval, params_eval, buffers_eval = build(g_eval, len(X_test), training=False)
    X_eval.let(X_test)

    solver = gr.solvers.Adam(lr=args.lr)
    train_epochs(g, g_eval, X=X, y=y, loss=loss, params=params, solver=solver, X_train=X_train, y_train=y_train,
                 batch_size=B, logits_eval=logits_eval, y_test=y_test, eval_nodes=params_eval + buffers_eval,
                 train_nodes=params + buffers, epochs=args.epochs, steps=args.steps)

    model_path = os.path.join(args.out, "convnet_bn.safetensors")
    state_path = os.path.join(args.out, "convnet_bn_adam.safetensors")
    gr.save(model_path, params + buffers)
    gr.save(state_path, solver.state_dict())
    print(f"saved the model to {model_path} and the solver state to {state_path}")

    g_new = gr.Graph()
    X_new, logits_new, params_new, buffers_new = build(g_new, len(X_test), training=False)
    gr.load(model_path, params_new + buffers_new)
    X_new.let(X_test)
    with gr.TapeMachine(g_new) as m_new:
        m_new.run_all()
        acc_new = accuracy(logits_new.value, y_test)
    resumed = gr.solvers.Adam(lr=args.lr)
    resumed.load_state_dict(gr.load(state_path), params=params)
    print(f"solver state restored at step {resumed.t}")
    print(f"test accuracy: {acc_new:.3f}")


if __name__ == "__main__":
    main()
