"""A whole-graph TapeMachine fuses the elementwise nodes the user built (bias adds with
broadcasting, activations) into single loops, yet every node's ``.value`` still works: values
of fused-away nodes are recomputed from what the run kept. Results equal the unfused
program's (GORGON_FUSE=0) and NumPy's."""

from __future__ import annotations

import numpy as np
import pytest

import gorgon_rs as gr
from _fusion_helpers import fused_and_unfused


def _convish() -> tuple[gr.Graph, dict[str, gr.Node], dict[str, np.ndarray]]:
    rng = np.random.default_rng(7)
    vals = {"x": rng.standard_normal((4, 8, 30, 30)), "b": rng.standard_normal(8), "s": rng.standard_normal((1, 8, 1, 1))}
    g = gr.Graph()
    x = g.tensor(gr.float64, vals["x"].shape, name="x", value=vals["x"])
    b = g.vector(gr.float64, 8, name="b", value=vals["b"])
    s = g.tensor(gr.float64, (1, 8, 1, 1), name="s", value=vals["s"])
    pre = x * s + b.reshape(1, 8, 1, 1)
    act = gr.relu(pre)
    out = gr.tanh(act) * 0.5
    total = gr.sum(out)
    return g, {"pre": pre, "act": act, "out": out, "total": total, "x": x}, vals


def test_fused_nodes_still_have_values() -> None:
    g, n, v = _convish()
    m = gr.TapeMachine(g)
    m.run_all()
    pre = v["x"] * v["s"] + v["b"].reshape(1, 8, 1, 1)
    act = np.maximum(pre, 0)
    out = np.tanh(act) * 0.5
    np.testing.assert_allclose(n["pre"].value, pre, rtol=1e-14)
    np.testing.assert_allclose(n["act"].value, act, rtol=1e-14)
    np.testing.assert_allclose(n["out"].value, out, rtol=1e-14)
    np.testing.assert_allclose(n["total"].value, out.sum(), rtol=1e-12)
    assert any("fused(" in line for line in m.program()), m.program()
    # A second run with new input values: recomputed values follow.
    n["x"].let(v["x"] * 2)
    m.run_all()
    np.testing.assert_allclose(n["pre"].value, v["x"] * 2 * v["s"] + v["b"].reshape(1, 8, 1, 1), rtol=1e-14)


def test_watched_nodes_are_not_fused_away() -> None:
    g, n, v = _convish()
    m = gr.TapeMachine(g, watch=[n["pre"]])
    m.run_all()
    pre = v["x"] * v["s"] + v["b"].reshape(1, 8, 1, 1)
    # The watched node keeps an instruction (and a buffer) of its own.
    assert any(line.split(" = ")[1].startswith("fused(add") for line in m.program()), m.program()
    np.testing.assert_allclose(m.watched[n["pre"]][0], pre, rtol=1e-14)
    np.testing.assert_allclose(n["out"].value, np.tanh(np.maximum(pre, 0)) * 0.5, rtol=1e-14)


def test_training_graph_matches_unfused_program() -> None:
    code = (
        "import numpy as np, gorgon_rs as gr\n"
        "rng = np.random.default_rng(1)\n"
        "g = gr.Graph()\n"
        "x = g.matrix(gr.float64, (256, 100), name='x', value=rng.standard_normal((256, 100)))\n"
        "W = g.matrix(gr.float64, (100, 120), name='W', value=rng.standard_normal((100, 120)) * 0.1)\n"
        "b = g.vector(gr.float64, 120, name='b', value=rng.standard_normal(120))\n"
        "h = gr.relu(x @ W + b)\n"
        "loss = gr.mean(gr.sigmoid(h) * h)\n"
        "gW, gb = gr.grad(loss, [W, b])\n"
        "m = gr.TapeMachine(g); m.run_all()\n"
        "print(len(m.program()))\n"
        "print(repr([float(loss.value), gW.value.ravel().tolist(), gb.value.tolist(), h.value.ravel()[:50].tolist()]))\n"
    )
    (n_fused, fused), (n_plain, plain) = fused_and_unfused(code)
    assert n_fused < n_plain
    for a, b in zip(fused, plain):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_nan_guard_blames_the_node_that_made_the_nan() -> None:
    g = gr.Graph()
    n = 50_000
    x = g.vector(gr.float64, n, name="x", value=-np.ones(n))
    r = gr.sqrt(x)
    r.name = "root"
    y = gr.tanh(r * 2.0)
    y.name = "later"
    with gr.TapeMachine(g, nan_guard=True) as m:
        assert not any("fused(" in line for line in m.program())
        with pytest.raises(gr.NumericError, match="root"):
            m.run_all()
    # Without the guard the same graph fuses.
    with gr.TapeMachine(g) as m:
        assert any("fused(" in line for line in m.program())
