"""Sums and means over trailing axes run in one pass with the elementwise tree that feeds
them (``sum(x * x)`` without a temporary), and give the unfused program's results."""

from __future__ import annotations

import numpy as np
import pytest

import gorgon_rs as gr
from _fusion_helpers import fused_and_unfused


@pytest.mark.parametrize(("axis", "keepdims", "fused"), [
    (None, False, True), ((1, 2), False, True), (-1, True, True), (2, False, True),
    (0, False, False), ((0, 2), False, False),
])
@pytest.mark.parametrize("red", ["sum", "mean"])
def test_trailing_axis_reductions_fuse(red: str, axis: object, keepdims: bool, fused: bool) -> None:
    rng = np.random.default_rng(3)
    A, B = rng.standard_normal((2, 2, 30, 1100)).astype(np.float64)
    g = gr.Graph()
    a = g.tensor(gr.float64, A.shape, name="a")
    b = g.tensor(gr.float64, B.shape, name="b")
    fn = getattr(gr, red)
    f = gr.function([a, b], fn(gr.tanh(a * b) - b * b, axis=axis, keepdims=keepdims))
    prog = f.program()
    assert (len(prog) == 1 and "∘fused(" in prog[0]) == fused, prog
    want = getattr(np, red)(np.tanh(A * B) - B * B, axis=axis, keepdims=keepdims)
    got = f(A, B)
    assert np.shape(got) == np.shape(want)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_float32_sum_of_squares_is_accurate() -> None:
    x = np.full(3_000_001, 0.1, np.float32)
    g = gr.Graph()
    v = g.vector(gr.float32, x.size, name="x")
    f = gr.function([v], gr.sum(v * v))
    assert len(f.program()) == 1
    got = float(f(x))
    want = float(np.sum(x.astype(np.float64) ** 2))
    assert abs(got - want) / want < 1e-5


def test_unfused_gives_the_same_numbers() -> None:
    code = (
        "import numpy as np, gorgon_rs as gr\n"
        "g = gr.Graph(); x = g.matrix(gr.float64, (64, 3000), name='x')\n"
        "f = gr.function([x], gr.mean(gr.sigmoid(x) * x, axis=1))\n"
        "v = np.linspace(-3, 3, 64 * 3000).reshape(64, 3000)\n"
        "print(len(f.program())); print(repr(f(v).tolist()))\n"
    )
    (n_fused, fused), (n_plain, plain) = fused_and_unfused(code)
    assert n_fused == 1 and n_plain == 3
    np.testing.assert_allclose(fused, plain, rtol=1e-13)


def test_gradients_of_a_fused_loss() -> None:
    # The loss is compiled fused; its gradient graph is unaffected.
    rng = np.random.default_rng(4)
    X = rng.standard_normal((16, 50))
    g = gr.Graph()
    x = g.matrix(gr.float64, X.shape, name="x")
    loss = gr.mean((x * 3.0 - 1.0) * (x * 3.0 - 1.0))
    (gx,) = gr.grad(loss, [x])
    f = gr.function([x], [loss, gx])
    lv, gv = f(X)
    np.testing.assert_allclose(lv, np.mean((3 * X - 1) ** 2), rtol=1e-12)
    np.testing.assert_allclose(gv, 6 * (3 * X - 1) / X.size, rtol=1e-12)
