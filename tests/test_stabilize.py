"""The 12 stabilization rewrites of API.md: with ``gr.Graph(stabilize=True)`` (the default)
the rewritten graph stays finite and accurate at extreme inputs where the naive graph
(``stabilize=False``) overflows, underflows or cancels."""

from __future__ import annotations

import numpy as np
import pytest

import gorgon_rs as gr


def build_and_run(stabilize, build, x, grad=False):
    g = gr.Graph(stabilize=stabilize)
    X = g.tensor(gr.float64, np.shape(x), name="x", value=np.asarray(x, dtype=np.float64))
    y = build(X)
    outs = [y]
    if grad:
        (dx,) = gr.grad(gr.sum(y), [X])
        outs.append(dx)
    with gr.TapeMachine(g) as m:
        m.run_all()
        vals = [o.value for o in outs]
    return vals if grad else vals[0]


def stable_and_naive(build, x, grad=False):
    return build_and_run(True, build, x, grad), build_and_run(False, build, x, grad)


def test_log_one_plus_x():
    for build in (lambda x: gr.log(1 + x), lambda x: gr.log(x + 1)):
        s, n = stable_and_naive(build, 1e-20)
        assert float(s) == pytest.approx(1e-20, rel=1e-12)
        assert float(n) == 0.0  # cancellation in the naive graph


def test_log_one_minus_x():
    s, n = stable_and_naive(lambda x: gr.log(1 - x), 1e-20)
    assert float(s) == pytest.approx(-1e-20, rel=1e-12)
    assert float(n) == 0.0


def test_exp_minus_one():
    s, n = stable_and_naive(lambda x: gr.exp(x) - 1, 1e-20)
    assert float(s) == pytest.approx(1e-20, rel=1e-12)
    assert float(n) == 0.0


def test_log_sigmoid():
    (s, ds), (n, dn) = stable_and_naive(lambda x: gr.log(gr.sigmoid(x)), -800.0, grad=True)
    assert float(s) == pytest.approx(-800.0, rel=1e-12)
    assert float(ds) == pytest.approx(1.0, rel=1e-12)  # d/dx log σ(x) = 1 − σ(x)
    assert not np.isfinite(n)


def test_log_one_minus_sigmoid():
    (s, ds), (n, dn) = stable_and_naive(lambda x: gr.log(1 - gr.sigmoid(x)), 800.0, grad=True)
    assert float(s) == pytest.approx(-800.0, rel=1e-12)
    assert float(ds) == pytest.approx(-1.0, rel=1e-12)
    assert not np.isfinite(n)


def test_one_minus_sigmoid():
    s, n = stable_and_naive(lambda x: 1 - gr.sigmoid(x), 40.0)
    want = 1 / (1 + np.exp(40.0))
    assert float(s) == pytest.approx(want, rel=1e-12)
    assert float(n) == 0.0  # 1 − 1 in the naive graph


def test_log1p_exp():
    (s, ds), (n, dn) = stable_and_naive(lambda x: gr.log1p(gr.exp(x)), 800.0, grad=True)
    assert float(s) == pytest.approx(800.0, rel=1e-12)
    assert float(ds) == pytest.approx(1.0, rel=1e-12)
    assert not np.isfinite(n)


def test_log1p_minus_sigmoid():
    s, n = stable_and_naive(lambda x: gr.log1p(-gr.sigmoid(x)), 800.0)
    assert float(s) == pytest.approx(-800.0, rel=1e-12)
    assert not np.isfinite(n)


def test_log_softmax():
    logits = np.array([[1e4, 0.0, -1e4], [3.0, 1.0, 2.0]])
    (s, ds), (n, dn) = stable_and_naive(lambda x: gr.log(gr.softmax(x, axis=-1)), logits, grad=True)
    want = logits - (np.max(logits, axis=1, keepdims=True)
                     + np.log(np.exp(logits - logits.max(axis=1, keepdims=True)).sum(axis=1, keepdims=True)))
    np.testing.assert_allclose(s, want, rtol=1e-12)
    assert np.all(np.isfinite(ds))
    assert not np.all(np.isfinite(n))


def test_double_negation():
    g = gr.Graph()
    x = g.vector(gr.float64, 3, name="x")
    assert -(-x) is x
    assert gr.neg(gr.neg(x)) is x
    h = gr.Graph(stabilize=False)
    y = h.vector(gr.float64, 3, name="y")
    assert -(-y) is not y
    s, n = stable_and_naive(lambda v: -(-v), np.array([1.0, -2.0]))
    np.testing.assert_array_equal(s, n)


@pytest.mark.parametrize("shape,axis,keepdims", [((2,), None, False), ((2, 2), -1, True), ((2, 2), 0, True)])
def test_softmax_from_exp_over_sum(shape, axis, keepdims):
    x = np.array([1000.0, 0.0] if len(shape) == 1 else [[1000.0, 0.0], [0.0, 1000.0]])
    build = lambda v: gr.exp(v) / gr.sum(gr.exp(v), axis=axis, keepdims=keepdims)  # noqa: E731
    s, n = stable_and_naive(build, x)
    ax = -1 if axis is None else axis
    want = np.exp(x - x.max(axis=ax, keepdims=True))
    want = want / want.sum(axis=ax, keepdims=True)
    np.testing.assert_allclose(s, want, rtol=1e-12)
    assert not np.all(np.isfinite(n))


def test_log_sum_exp():
    x = np.array([1000.0, 1000.0])
    (s, ds), (n, dn) = stable_and_naive(lambda v: gr.log(gr.sum(gr.exp(v))), x, grad=True)
    assert float(s) == pytest.approx(1000.0 + np.log(2.0), rel=1e-12)
    np.testing.assert_allclose(ds, [0.5, 0.5], rtol=1e-12)
    assert not np.isfinite(n)
    xs = np.array([[1000.0, 999.0], [-1000.0, -1001.0]])
    s2, n2 = stable_and_naive(lambda v: gr.log(gr.sum(gr.exp(v), axis=1)), xs)
    np.testing.assert_allclose(s2, xs.max(axis=1) + np.log1p(np.exp(-1.0)), rtol=1e-12)
    assert not np.all(np.isfinite(n2))


def test_rewrites_change_the_program():
    g = gr.Graph()
    x = g.vector(gr.float64, 3, name="x")
    y = gr.log(1 + x)
    assert y.kind == "op:log1p"
    assert gr.log(gr.sigmoid(x)).kind == "op:neg"
    assert gr.log(gr.softmax(x)).kind == "op:log_softmax"
    assert gr.log(gr.sum(gr.exp(x))).kind == "op:logsumexp"
    h = gr.Graph(stabilize=False)
    z = h.vector(gr.float64, 3, name="z")
    assert gr.log(1 + z).kind == "op:log"
    assert g.stabilize and not h.stabilize
