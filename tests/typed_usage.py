"""A typed user program: what an application written against gorgon_rs looks like to mypy.

``make test`` checks it with ``mypy --strict`` (with the package and the examples), and
tests/test_typing.py runs it, so the annotations it relies on are both precise and true.
``assert_type`` makes mypy fail when an API call loses its type (for example when it becomes
``Any``); at run time it does nothing.

Run it alone with ``python tests/typed_usage.py [folder]`` (files go to a temporary folder
unless one is given).
"""

from __future__ import annotations

import os
import sys
import tempfile
from typing import Any, Optional, assert_type

import numpy as np
import numpy.typing as npt

import gorgon_rs as gr
from gorgon_rs import nn


def seed_example() -> float:
    """Gorgonia's z = x + y, on a tape machine and as a compiled function."""
    g = gr.Graph()
    x = g.scalar(gr.float64, name="x")
    y = g.scalar(gr.float64, name="y")
    z = x + y
    assert_type(z, gr.Node)
    with gr.TapeMachine(g) as m:
        assert_type(m, gr.TapeMachine)
        x.let(2.0)
        y.let(2.5)
        m.run_all()
        value = z.value
        assert_type(value, npt.NDArray[Any])
    f = gr.function(inputs=[x, y], outputs=z)
    out = f(2.0, 2.5)
    assert_type(out, npt.NDArray[Any])
    both = gr.function([x, y], [z, x * y])(1.0, 2.0)
    assert_type(both, list[npt.NDArray[Any]])
    assert [float(a) for a in both] == [3.0, 2.0]
    return float(value)


def gradients() -> list[float]:
    """Symbolic gradients, read after a run; the eager machine's backprop."""
    g = gr.Graph()
    w = g.vector(gr.float64, 3, name="w", value=[1.0, 2.0, 3.0])
    x = g.vector(gr.float64, 3, name="x", value=[2.0, 0.5, 1.0])
    cost = gr.sum(gr.square(w * x - 1.0))
    grads = gr.grad(cost, [w])
    assert_type(grads, list[gr.Node])
    with gr.TapeMachine(g) as m:
        m.run_all()
        dw: Optional[npt.NDArray[Any]] = w.grad
        assert dw is not None
        result = [float(v) for v in dw]
    g2 = gr.Graph()
    v = g2.vector(gr.float64, 2, name="v", value=[1.0, -2.0])
    gr.sum(v * v)
    with gr.LispMachine(g2, backprop=True) as lm:
        assert_type(lm, gr.LispMachine)
        lm.run_all()
        assert v.grad is not None and v.grad.tolist() == [2.0, -4.0]
    return result


def train_mlp(folder: str) -> float:
    """A small classifier: layers, a loss, a solver, saving and loading the weights."""
    gr.seed(0)
    g = gr.Graph()
    fc1: nn.Linear = nn.Linear(g, 4, 16)
    fc2 = nn.Linear(g, 16, 3)
    X = g.matrix(gr.float32, (8, 4), name="X")
    y = g.vector(gr.int64, 8, name="y")
    logits = fc2(gr.relu(fc1(X)))
    loss = nn.cross_entropy(logits, y)
    assert_type(loss, gr.Node)
    assert_type(fc1.parameters(), list[gr.Node])
    params: list[gr.Node] = fc1.parameters() + fc2.parameters()
    gr.grad(loss, params)
    solver: gr.solvers.Solver = gr.solvers.Adam(lr=0.05)

    rng = np.random.default_rng(0)
    data: npt.NDArray[np.float32] = rng.normal(size=(8, 4)).astype(np.float32)
    labels: npt.NDArray[np.int64] = (data[:, 0] > 0).astype(np.int64)
    losses: list[float] = []
    with gr.TapeMachine(g) as m:
        for _ in range(30):
            X.let(data)
            y.let(labels)
            m.run_all()
            losses.append(float(loss.value))
            solver.step(params)
            m.reset()
    assert losses[-1] < losses[0], losses

    path = os.path.join(folder, "mlp.safetensors")
    gr.save(path, params)
    gr.save(os.path.join(folder, "solver.safetensors"), solver.state_dict())
    fresh = gr.Graph()
    copies = nn.Linear(fresh, 4, 16).parameters() + nn.Linear(fresh, 16, 3).parameters()
    loaded = gr.load(path, copies)
    assert_type(loaded, dict[str, npt.NDArray[Any]])
    assert all(np.array_equal(a.value, b.value) for a, b in zip(copies, params))
    return losses[-1]


def more_layers() -> tuple[int, ...]:
    """Convolution, pooling, batch norm, dropout and an LSTM step."""
    g = gr.Graph()
    conv = nn.Conv2d(g, 1, 4, 3, padding=1)
    bn = nn.BatchNorm2d(g, 4)
    images = g.tensor(gr.float32, (2, 1, 8, 8), name="images")
    h = nn.max_pool2d(gr.relu(bn(conv(images))), 2)
    h = nn.dropout(h, 0.25, training=True)
    cell = nn.LSTMCell(g, 4 * 4 * 4, 5)
    state: tuple[gr.Node, gr.Node] = cell(gr.reshape(h, (2, -1)))
    h2, c2 = cell(gr.reshape(h, (2, -1)), state)
    buffers: list[gr.Node] = bn.buffers()
    assert len(buffers) == 2 and c2.shape == (2, 5)
    return h2.shape


def initializers_and_devices() -> str:
    """Initializers are plain callables; devices are checked when a machine is made."""
    init: gr.init.Initializer = gr.init.he_normal()
    w: npt.NDArray[Any] = init((3, 2), "float32")
    assert w.shape == (3, 2)
    g = gr.Graph()
    W = g.matrix(gr.float32, (3, 2), name="W", init=gr.init.glorot_uniform())
    assert W.value.dtype == np.float32
    available: bool = gr.cuda.is_available()
    count: int = gr.cuda.device_count()
    if available and count > 0:
        return "cuda"
    try:
        gr.TapeMachine(g, device="cuda")
    except gr.DeviceError as e:
        reason: str = str(e)
        return reason
    return "cuda"


def interop_and_errors() -> int:
    """DLPack in, NumPy out; gorgon_rs errors are also the builtin exceptions."""
    a = np.arange(4.0)
    shared = gr.from_dlpack(a)
    assert_type(shared, npt.NDArray[Any])
    g = gr.Graph()
    v = g.vector(gr.float64, 4, name="v")
    v.let(shared)
    try:
        v.let(np.zeros(5))
    except ValueError as e:  # gr.ShapeError is a ValueError
        assert isinstance(e, gr.ShapeError)
    joined_before = gr.distributed.is_initialized()
    rank, size = gr.distributed.init()  # a lone process is rank 0 of 1
    assert_type(gr.distributed.shard(10), npt.NDArray[np.int64])
    if not joined_before:
        gr.distributed.finalize()
    return rank + size


def main(folder: Optional[str] = None) -> None:
    """Run every part; prints one line each."""
    with tempfile.TemporaryDirectory() as tmp:
        out = folder or tmp
        print("seed:", seed_example())
        print("gradients:", gradients())
        print("mlp loss:", round(train_mlp(out), 4))
        print("layers:", more_layers())
        print("device:", initializers_and_devices())
        print("interop:", interop_and_errors())


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
