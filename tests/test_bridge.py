"""The native bridge: panics become gr.InternalError, huge shapes fail cleanly, native
entry points validate their arguments, and property tests of broadcasting and reductions
against NumPy (hypothesis)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gorgon_rs as gr
from gorgon_rs import _native


def test_panic_becomes_internal_error_and_interpreter_survives():
    with pytest.raises(gr.InternalError, match="deliberate boom"):
        _native._debug_panic("deliberate boom")
    assert issubclass(gr.InternalError, RuntimeError) and issubclass(gr.InternalError, gr.Error)
    # again, and normal work continues afterwards
    with pytest.raises(RuntimeError):
        _native._debug_panic("second")
    g = gr.Graph()
    x = g.scalar(gr.float64, value=1.5)
    f = gr.function([x], x * 2.0)
    assert float(f(2.0)) == 4.0


def test_panic_in_subprocess_does_not_crash():
    code = (
        "import gorgon_rs as gr\n"
        "try:\n"
        "    gr._native._debug_panic('x')\n"
        "except gr.InternalError as e:\n"
        "    print('caught', type(e).__name__)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "caught InternalError" in r.stdout


def test_huge_shape_is_an_error_not_a_crash():
    g = gr.Graph()
    with pytest.raises((MemoryError, gr.ShapeError)):
        g.tensor(gr.float64, (2 ** 40, 2 ** 40))
    big = g.tensor(gr.float32, (2 ** 20, 2 ** 20), name="big")  # 4 TiB: a node is fine ...
    with pytest.raises((MemoryError, gr.ShapeError)):
        m = gr.TapeMachine(g, outputs=[big * 2.0])  # ... allocating its buffers is not
        m.close()
    with pytest.raises((MemoryError, gr.ShapeError)):
        gr.broadcast_to(g.scalar(gr.float64), (2 ** 62, 4))


def test_errors_are_the_python_classes():
    for name in ("ShapeError", "DTypeError", "GraphError", "NumericError", "FormatError", "DeviceError",
                 "InternalError"):
        cls = getattr(gr, name)
        assert issubclass(cls, gr.Error)
    assert issubclass(gr.ShapeError, ValueError) and issubclass(gr.DTypeError, TypeError)
    assert issubclass(gr.GraphError, RuntimeError) and issubclass(gr.NumericError, ArithmeticError)
    assert issubclass(gr.FormatError, ValueError) and issubclass(gr.DeviceError, RuntimeError)
    with pytest.raises(gr.DTypeError):
        gr.Graph()._g.leaf("complex128", [2], None, None)
    with pytest.raises(FileNotFoundError):
        _native.load_safetensors("/nonexistent/dir/file.safetensors")


def test_native_argument_validation():
    g = gr.Graph()
    x = g.vector(gr.float64, 2)
    with pytest.raises(gr.GraphError):
        g._g.apply("no_such_op", [x._id], {}, None)
    with pytest.raises(gr.GraphError):
        g._g.grad(x._id + 10, [x._id])
    with pytest.raises(gr.ShapeError):
        g._g.leaf("float32", [-1], None, None)
    assert _native.simd_level() in ("scalar", "avx2", "avx512", "neon")
    assert gr.simd_level() == _native.simd_level()


def test_safetensors_roundtrip(tmp_path):
    p = str(tmp_path / "t.safetensors")
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.array([1, 2], dtype=np.int64)
    _native.save_safetensors(p, [("a", a), ("b", b)])
    d = _native.load_safetensors(p)
    np.testing.assert_array_equal(d["a"], a)
    assert d["a"].dtype == np.float32 and d["b"].dtype == np.int64
    with open(p, "r+b") as f:
        f.truncate(20)
    with pytest.raises(gr.FormatError):
        _native.load_safetensors(p)


def test_set_grad_overwrites_computed_gradient():
    g = gr.Graph()
    w = g.vector(gr.float64, 2, name="w", value=[1.0, 2.0])
    cost = gr.sum(w * w)
    gr.grad(cost, [w])
    with gr.TapeMachine(g) as m:
        m.run_all()
        np.testing.assert_array_equal(w.grad, [2.0, 4.0])
        g._g.set_grad(w._id, np.array([10.0, 20.0]))
        np.testing.assert_array_equal(w.grad, [10.0, 20.0])
        with pytest.raises(gr.ShapeError):
            g._g.set_grad(w._id, np.zeros(3))


# ---------------------------------------------------------------------------------------------
# Property tests against NumPy
# ---------------------------------------------------------------------------------------------

dims = st.integers(min_value=1, max_value=4)


@st.composite
def broadcastable_pair(draw):
    nd = draw(st.integers(min_value=0, max_value=4))
    shape = [draw(dims) for _ in range(nd)]
    a = [d if draw(st.booleans()) else 1 for d in shape]
    b = [d if draw(st.booleans()) else 1 for d in shape]
    a = a[draw(st.integers(min_value=0, max_value=nd)):]
    b = b[draw(st.integers(min_value=0, max_value=nd)):]
    return tuple(a), tuple(b)


BIN = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide, "maximum": np.maximum,
    "minimum": np.minimum, "lt": np.less, "ge": np.greater_equal,
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shapes=broadcastable_pair(), op=st.sampled_from(sorted(BIN)), dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2 ** 16))
def test_broadcasting_binary_ops_match_numpy(shapes, op, dtype, seed):
    sa, sb = shapes
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.5, 2.0, sa).astype(dtype)
    b = rng.uniform(0.5, 2.0, sb).astype(dtype)
    g = gr.Graph()
    A = g.tensor(dtype, sa, value=a)
    B = g.tensor(dtype, sb, value=b)
    f = gr.function([], getattr(gr, op)(A, B))
    got = f()
    want = BIN[op](a, b).astype(dtype)
    assert got.shape == want.shape and got.dtype == dtype
    np.testing.assert_allclose(got, want, rtol=1e-6 if dtype == np.float32 else 1e-14)


@st.composite
def reduction_case(draw):
    nd = draw(st.integers(min_value=0, max_value=4))
    shape = tuple(draw(dims) for _ in range(nd))
    if nd == 0 or draw(st.booleans()):
        axis = None
    else:
        axes = draw(st.lists(st.integers(min_value=-nd, max_value=nd - 1), min_size=1, max_size=nd,
                             unique_by=lambda a: a % nd))
        axis = axes[0] if len(axes) == 1 and draw(st.booleans()) else tuple(axes)
    return shape, axis, draw(st.booleans())


RED = {"sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min, "prod": np.prod}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=reduction_case(), op=st.sampled_from(sorted(RED)), seed=st.integers(0, 2 ** 16))
def test_reductions_match_numpy(case, op, seed):
    shape, axis, keepdims = case
    x = np.random.default_rng(seed).uniform(0.5, 1.5, shape)
    g = gr.Graph()
    X = g.tensor(gr.float64, shape, value=x)
    f = gr.function([], getattr(gr, op)(X, axis=axis, keepdims=keepdims))
    got = f()
    want = RED[op](x, axis=axis, keepdims=keepdims)
    assert got.shape == np.shape(want)
    np.testing.assert_allclose(got, want, rtol=1e-12)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=reduction_case(), seed=st.integers(0, 2 ** 16))
def test_reduction_gradients_match_numpy_rules(case, seed):
    shape, axis, keepdims = case
    x = np.random.default_rng(seed).uniform(0.5, 1.5, shape)
    g = gr.Graph()
    X = g.tensor(gr.float64, shape, value=x)
    s = gr.sum(gr.mean(X, axis=axis, keepdims=keepdims) * 3.0)
    (dX,) = gr.grad(s, [X])
    f = gr.function([], dX)
    n = x.size / max(np.mean(x, axis=axis, keepdims=keepdims).size, 1)
    np.testing.assert_allclose(f(), np.full(shape, 3.0 / n), rtol=1e-12)
