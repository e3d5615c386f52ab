"""Graphs, nodes, let/value, operators, indexing and error messages (API.md "Graph and nodes")."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import gorgon_rs as gr


def here() -> str:
    """``test_graph.py:LINE`` of the caller's next line."""
    f = sys._getframe(1)
    return f"test_graph.py:{f.f_lineno + 1}"


# ---------------------------------------------------------------------------------------------
# The seed example
# ---------------------------------------------------------------------------------------------


def seed_graph():
    g = gr.Graph()
    x = g.scalar(gr.float64, name="x")
    y = g.scalar(gr.float64, name="y")
    z = x + y
    return g, x, y, z


def test_seed_example_tape_machine(capsys):
    g, x, y, z = seed_graph()
    dx, dy = gr.grad(z, [x, y])
    with gr.TapeMachine(g) as m:
        x.let(2.0)
        y.let(2.5)
        m.run_all()
        print(z.value)
    assert capsys.readouterr().out == "4.5\n"
    assert float(x.grad) == 1.0 and float(y.grad) == 1.0
    assert float(dx.value) == 1.0


def test_seed_example_lisp_machine(capsys):
    g, x, y, z = seed_graph()
    m = gr.LispMachine(g, backprop=True)
    x.let(2.0)
    y.let(2.5)
    m.run_all()
    print(z.value)
    assert capsys.readouterr().out == "4.5\n"
    assert float(x.grad) == 1.0 and float(y.grad) == 1.0
    m.close()


def test_function_seed():
    g, x, y, z = seed_graph()
    f = gr.function(inputs=[x, y], outputs=z)
    r = f(2.0, 2.5)
    assert isinstance(r, np.ndarray) and r.shape == () and float(r) == 4.5


# ---------------------------------------------------------------------------------------------
# Node attributes
# ---------------------------------------------------------------------------------------------


def test_node_attributes():
    g = gr.Graph()
    x = g.scalar(gr.float64, name="x")
    v = g.vector(gr.float32, 10, name="v")
    W = g.matrix(gr.float32, (784, 128), name="W", init=gr.init.glorot_uniform())
    X = g.tensor(gr.float32, (64, 1, 28, 28), name="X")
    c = g.constant(np.eye(3))
    s = g.constant(2.5)
    assert (x.name, x.shape, x.dtype, x.ndim) == ("x", (), np.dtype("float64"), 0)
    assert (v.shape, v.dtype, v.ndim) == ((10,), np.dtype("float32"), 1)
    assert W.shape == (784, 128) and W.value.dtype == np.float32 and W.value.shape == (784, 128)
    assert X.shape == (64, 1, 28, 28) and X.ndim == 4
    assert c.dtype == np.float64 and np.array_equal(c.value, np.eye(3))
    assert s.shape == () and float(s.value) == 2.5
    for n in (x, v, W, X, c):
        assert n.graph is g
    assert gr.float32 == np.dtype("float32") and gr.bool_ == np.dtype("bool")
    assert g.scalar("int32").dtype == np.int32  # dtype names are accepted
    y = x * 2
    assert y.name is None and "op:mul" == y.kind
    y.name = "twice"
    assert y.name == "twice"
    assert "twice" in repr(y)
    # identity semantics: nodes are hashable dict keys, == is not elementwise
    assert {x: 1}[x] == 1 and (x == x) is True


def test_same_expression_is_same_node():
    g = gr.Graph()
    x = g.vector(gr.float64, 3, name="x")
    assert (x + 1) is (x + 1)


def test_value_without_binding_raises_graph_error():
    g = gr.Graph()
    x = g.vector(gr.float64, 3, name="lonely")
    with pytest.raises(gr.GraphError, match="lonely"):
        x.value
    assert x.grad is None


# ---------------------------------------------------------------------------------------------
# let: shapes, dtypes, same_kind casting, zero copy
# ---------------------------------------------------------------------------------------------


def test_let_shape_error_names_node():
    g = gr.Graph()
    x = g.vector(gr.float32, 3, name="xs")
    with pytest.raises(gr.ShapeError, match="xs") as ei:
        x.let(np.zeros(4, np.float32))
    assert "(4,)" in str(ei.value) and "(3,)" in str(ei.value)
    with pytest.raises(gr.ShapeError, match="xs"):
        x.let([1.0, 2.0])
    with pytest.raises(ValueError):  # ShapeError is a ValueError
        x.let(np.zeros((3, 1)))


@pytest.mark.parametrize("value", [
    np.array([1 + 2j, 0, 0]),
    np.array(["a", "b", "c"]),
    np.array([object(), None, 1], dtype=object),
])
def test_let_refuses_what_same_kind_refuses(value):
    g = gr.Graph()
    x = g.vector(gr.float32, 3, name="xf")
    with pytest.raises(gr.DTypeError, match="xf"):
        x.let(value)


def test_let_float_to_int_is_refused():
    g = gr.Graph()
    i = g.vector(gr.int64, 2, name="idx")
    with pytest.raises(gr.DTypeError, match="idx"):
        i.let(np.array([1.0, 2.0]))
    with pytest.raises(TypeError):  # DTypeError is a TypeError
        i.let([1.5, 2.5])
    s = g.scalar(gr.int32, name="k")
    with pytest.raises(gr.DTypeError):
        s.let(2.5)
    s.let(3)
    assert s.value.dtype == np.int32 and int(s.value) == 3


def test_let_same_kind_conversions():
    g = gr.Graph()
    x = g.vector(gr.float32, 3)
    x.let(np.array([1.5, 2.5, 3.5]))  # float64 -> float32
    assert x.value.dtype == np.float32 and np.array_equal(x.value, [1.5, 2.5, 3.5])
    x.let(np.array([1, 2, 3], dtype=np.int64))  # int -> float
    assert np.array_equal(x.value, [1, 2, 3])
    x.let([True, False, True])
    assert np.array_equal(x.value, [1, 0, 1])
    s = g.scalar(gr.float64)
    s.let(7)
    assert s.value.dtype == np.float64 and float(s.value) == 7.0
    s.let(np.float32(0.5))
    assert float(s.value) == 0.5
    i = g.vector(gr.int64, 2)
    i.let(np.array([1, 2], dtype=np.int32))  # int32 -> int64
    assert i.value.dtype == np.int64


def test_let_zero_copy_proven_by_pointer():
    g = gr.Graph()
    x = g.matrix(gr.float32, (3, 4), name="x")
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    x.let(a)
    assert g._g.value_ptr(x._id) == a.ctypes.data
    # the value read back is a new array
    v = x.value
    assert v.ctypes.data != a.ctypes.data and np.array_equal(v, a)
    # a converted array is copied once (the pointer differs from the source)
    b = np.arange(12, dtype=np.float64).reshape(3, 4)
    x.let(b)
    assert g._g.value_ptr(x._id) != b.ctypes.data
    # non-contiguous input of the right dtype: copied
    c = np.arange(24, dtype=np.float32).reshape(3, 8)[:, ::2]
    x.let(c)
    assert g._g.value_ptr(x._id) != c.ctypes.data and np.array_equal(x.value, c)
    # the zero-copy value keeps the array alive
    d = np.ones((3, 4), np.float32) * 5
    ptr = d.ctypes.data
    x.let(d)
    del d
    assert g._g.value_ptr(x._id) == ptr and float(x.value.sum()) == 60.0


def test_gr_let_function():
    g = gr.Graph()
    x = g.vector(gr.float64, 2)
    gr.let(x, [3, 4])
    assert np.array_equal(x.value, [3.0, 4.0])


def test_values_are_not_mutated_by_later_runs():
    g = gr.Graph()
    x = g.vector(gr.float64, 3, name="x")
    y = x * 2.0
    with gr.TapeMachine(g) as m:
        x.let(np.array([1.0, 2.0, 3.0]))
        m.run_all()
        first = y.value
        held = y.value
        x.let(np.array([10.0, 20.0, 30.0]))
        m.run_all()
        second = y.value
    assert np.array_equal(first, [2.0, 4.0, 6.0]) and np.array_equal(held, [2.0, 4.0, 6.0])
    assert np.array_equal(second, [20.0, 40.0, 60.0])
    # values stay readable after close for leaves; arrays already returned stay valid
    assert np.array_equal(x.value, [10.0, 20.0, 30.0])
    assert np.array_equal(first, [2.0, 4.0, 6.0])


def test_user_array_not_changed_by_solver_step():
    g = gr.Graph()
    w = g.vector(gr.float64, 2, name="w")
    a = np.array([1.0, 2.0])
    w.let(a)
    cost = gr.sum(w * w)
    gr.grad(cost, [w])
    opt = gr.solvers.SGD(lr=0.1)
    with gr.TapeMachine(g) as m:
        m.run_all()
        opt.step([w])
    assert np.array_equal(a, [1.0, 2.0])
    assert np.allclose(w.value, [0.8, 1.6])


# ---------------------------------------------------------------------------------------------
# Operators and broadcasting vs NumPy
# ---------------------------------------------------------------------------------------------


def run(nodes, g):
    with gr.TapeMachine(g) as m:
        m.run_all()
        return [n.value for n in nodes]


OPS = [
    ("+", lambda a, b: a + b),
    ("-", lambda a, b: a - b),
    ("*", lambda a, b: a * b),
    ("/", lambda a, b: a / b),
    ("**", lambda a, b: a ** b),
    ("<", lambda a, b: a < b),
    ("<=", lambda a, b: a <= b),
    (">", lambda a, b: a > b),
    (">=", lambda a, b: a >= b),
]


@pytest.mark.parametrize("sym,fn", OPS, ids=[o[0] for o in OPS])
@pytest.mark.parametrize("sa,sb", [((2, 3), (2, 3)), ((2, 3), (3,)), ((4, 1), (1, 5)), ((), (2, 2)), ((2, 1, 3), (4, 1))])
def test_binary_operators_broadcast_like_numpy(sym, fn, sa, sb):
    rng = np.random.default_rng(0)
    a = rng.uniform(0.5, 2.0, sa)
    b = rng.uniform(0.5, 2.0, sb)
    g = gr.Graph()
    A = g.tensor(gr.float64, sa, value=a)
    B = g.tensor(gr.float64, sb, value=b)
    (out,) = run([fn(A, B)], g)
    want = fn(a, b)
    assert out.shape == want.shape
    np.testing.assert_allclose(out, np.asarray(want, dtype=np.float64), rtol=1e-12)


def test_scalars_lists_and_arrays_are_lifted():
    g = gr.Graph()
    x = g.vector(gr.float32, 3, value=[1.0, 2.0, 3.0])
    exprs = [x + 1, 1 + x, 2 * x, x / 2, 1 / x, x - 0.5, 3 - x, x ** 2, 2 ** x, -x, abs(-x),
             x + [1, 2, 3], np.array([1, 1, 1], np.float32) * x, x @ np.ones(3, np.float32)]
    vals = run(exprs, g)
    xv = np.array([1.0, 2.0, 3.0], np.float32)
    want = [xv + 1, 1 + xv, 2 * xv, xv / 2, 1 / xv, xv - 0.5, 3 - xv, xv ** 2, 2 ** xv, -xv, np.abs(xv),
            xv + [1, 2, 3], xv, xv @ np.ones(3, np.float32)]
    for v, w in zip(vals, want):
        assert v.dtype == np.float32
        np.testing.assert_allclose(v, w, rtol=1e-6)


def test_integer_rules_follow_numpy():
    g = gr.Graph()
    i = g.vector(gr.int64, 3, value=[7, -7, 4])
    exprs = [i + 1, i * 2, i / 2, i // 2, i + 0.5, i / i]
    vals = run(exprs, g)
    iv = np.array([7, -7, 4])
    want = [iv + 1, iv * 2, iv / 2, iv // 2, iv + 0.5, iv / iv]
    for v, w in zip(vals, want):
        assert v.dtype == w.dtype, (v.dtype, w.dtype)
        np.testing.assert_array_equal(v, w)


def test_float32_float64_mixing_raises_naming_both():
    g = gr.Graph()
    a = g.vector(gr.float32, 3, name="single")
    b = g.vector(gr.float64, 3, name="double")
    with pytest.raises(gr.DTypeError) as ei:
        a + b
    msg = str(ei.value)
    assert "single" in msg and "double" in msg and "float32" in msg and "float64" in msg
    with pytest.raises(gr.DTypeError):
        a * np.ones(3)  # a float64 array keeps its dtype


def test_matmul_operator_and_transpose():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(2, 3)), rng.normal(size=(3, 4))
    g = gr.Graph()
    A = g.matrix(gr.float64, (2, 3), value=a)
    B = g.matrix(gr.float64, (3, 4), value=b)
    r, t, rs = run([A @ B, A.T, A.reshape(3, -1)], g)
    np.testing.assert_allclose(r, a @ b, rtol=1e-12)
    np.testing.assert_array_equal(t, a.T)
    np.testing.assert_array_equal(rs, a.reshape(3, -1))


def test_methods_sum_mean_max_min():
    a = np.arange(24, dtype=np.float64).reshape(2, 3, 4) - 7
    g = gr.Graph()
    A = g.tensor(gr.float64, a.shape, value=a)
    exprs = [A.sum(), A.sum(axis=1), A.sum(axis=(0, 2), keepdims=True), A.mean(axis=-1), A.max(axis=0),
             A.min(), A.max(axis=(1, 2), keepdims=True)]
    want = [a.sum(), a.sum(axis=1), a.sum(axis=(0, 2), keepdims=True), a.mean(axis=-1), a.max(axis=0), a.min(),
            a.max(axis=(1, 2), keepdims=True)]
    for v, w in zip(run(exprs, g), want):
        assert v.shape == w.shape
        np.testing.assert_allclose(v, w, rtol=1e-12)
    assert float(run([A.sum()], g)[0]) == float(a.sum())


# ---------------------------------------------------------------------------------------------
# Indexing vs NumPy
# ---------------------------------------------------------------------------------------------

KEYS = [
    0, -1, 2, slice(None), slice(1, 3), slice(None, None, -1), slice(None, None, 2), slice(3, 0, -2),
    (0, 1), (-1, slice(None), 2), (Ellipsis, 1), (1, Ellipsis), (None, 0), (slice(None), None, 1),
    (Ellipsis, None), (slice(1, None), slice(None, None, -1), slice(0, 4, 3)), (slice(5, 1), 0),
    (2, -2, -1), (None, Ellipsis, None),
]


@pytest.mark.parametrize("key", KEYS, ids=[repr(k) for k in KEYS])
def test_indexing_like_numpy(key):
    a = np.arange(60, dtype=np.float64).reshape(3, 4, 5)
    g = gr.Graph()
    A = g.tensor(gr.float64, a.shape, value=a)
    y = A[key]
    want = a[key]
    assert y.shape == want.shape
    (v,) = run([y], g)
    np.testing.assert_array_equal(v, want)


def test_indexing_errors():
    g = gr.Graph()
    A = g.matrix(gr.float64, (3, 4), name="A")
    with pytest.raises((IndexError, gr.ShapeError)):
        A[3]
    with pytest.raises((IndexError, gr.ShapeError)):
        A[0, -5]
    with pytest.raises(IndexError):
        A[0, 0, 0]


def test_indexing_gradient():
    a = np.arange(12, dtype=np.float64).reshape(3, 4)
    g = gr.Graph()
    A = g.matrix(gr.float64, (3, 4), value=a)
    cost = gr.sum(A[1:, ::-2] * 3.0)
    (dA,) = gr.grad(cost, [A])
    (v,) = run([dA], g)
    want = np.zeros_like(a)
    want[1:, ::-2] = 3.0
    np.testing.assert_array_equal(v, want)


# ---------------------------------------------------------------------------------------------
# Misuse raises GraphError naming the nodes
# ---------------------------------------------------------------------------------------------


def test_unbound_input_at_run_time():
    g = gr.Graph()
    x = g.vector(gr.float64, 2, name="unbound_x")
    y = x * 2
    with gr.TapeMachine(g) as m:
        with pytest.raises(gr.GraphError, match="unbound_x"):
            m.run_all()


def test_closed_machine():
    g, x, y, z = seed_graph()
    m = gr.TapeMachine(g)
    x.let(1.0)
    y.let(2.0)
    m.run_all()
    m.close()
    assert m.closed
    with pytest.raises(gr.GraphError, match="closed"):
        m.run_all()
    assert float(x.value) == 1.0  # leaf values survive close
    with pytest.raises(gr.GraphError):
        z.value  # op results were freed


def test_let_on_op_node():
    g, x, y, z = seed_graph()
    with pytest.raises(gr.GraphError, match="not an input"):
        z.let(1.0)
    c = g.constant(np.ones(2))
    with pytest.raises(gr.GraphError):
        c.let(np.zeros(2))


def test_two_graphs_in_one_op_names_both():
    g1, g2 = gr.Graph(), gr.Graph()
    a = g1.vector(gr.float64, 2, name="from_g1")
    b = g2.vector(gr.float64, 2, name="from_g2")
    for build in (lambda: a + b, lambda: gr.matmul(a, b), lambda: gr.concat([a, b]), lambda: gr.where(a, a, b)):
        with pytest.raises(gr.GraphError) as ei:
            build()
        assert "from_g1" in str(ei.value) and "from_g2" in str(ei.value)
    with pytest.raises(gr.GraphError):
        gr.grad(gr.sum(a), [b])
    with pytest.raises(gr.GraphError):
        gr.TapeMachine(g1, watch=[b])


def test_bad_node_ids_are_graph_errors():
    g = gr.Graph()
    x = g.scalar(gr.float64)
    with pytest.raises(gr.GraphError):
        g._g.value(12345)
    with pytest.raises(gr.GraphError):
        g._g.apply("add", [x._id, 999], {}, None)
    with pytest.raises(gr.GraphError):
        g._g.node_info(-1)


# ---------------------------------------------------------------------------------------------
# Error messages: op, operand names, shapes as tuples, dtypes, user location
# ---------------------------------------------------------------------------------------------


def test_shape_error_message_contents():
    g = gr.Graph()
    a = g.matrix(gr.float32, (2, 3), name="left")
    b = g.matrix(gr.float32, (4, 5), name="right")
    with pytest.raises(gr.ShapeError) as ei:
        loc = here()
        a + b
    msg = str(ei.value)
    for part in ("add", "left", "right", "(2, 3)", "(4, 5)", "float32", loc):
        assert part in msg, (part, msg)


def test_matmul_error_message_contents():
    g = gr.Graph()
    a = g.matrix(gr.float64, (2, 3), name="P")
    b = g.vector(gr.float64, 4, name="q")
    with pytest.raises(gr.ShapeError) as ei:
        loc = here()
        a @ b
    msg = str(ei.value)
    for part in ("matmul", "P", "q", "(2, 3)", "(4,)", "float64", loc):
        assert part in msg, (part, msg)
    s = g.scalar(gr.float64, name="s0")
    with pytest.raises(gr.ShapeError, match="0-d"):
        gr.matmul(s, a)


def test_dtype_error_message_contents():
    g = gr.Graph()
    a = g.vector(gr.int64, 3, name="ints")
    with pytest.raises(gr.DTypeError) as ei:
        loc = here()
        gr.softmax(gr.cast(a, gr.bool_))
    msg = str(ei.value)
    assert "softmax" in msg and "bool" in msg and loc in msg, msg


def test_reduction_error_message_contents():
    g = gr.Graph()
    a = g.matrix(gr.float64, (0, 3), name="empty")
    with pytest.raises(gr.ShapeError) as ei:
        loc = here()
        gr.max(a, axis=0)
    msg = str(ei.value)
    assert "max" in msg and "empty" in msg and "(0, 3)" in msg and loc in msg, msg
    assert gr.sum(a, axis=0).shape == (3,)


def test_nan_guard_names_node_and_location():
    g = gr.Graph()
    x = g.vector(gr.float64, 2, name="x", value=[-1.0, 4.0])
    loc = here()
    y = gr.sqrt(x)
    y.name = "root"
    with gr.TapeMachine(g, nan_guard=True) as m:
        with pytest.raises(gr.NumericError) as ei:
            m.run_all()
    msg = str(ei.value)
    assert "root" in msg and loc in msg, msg
    assert isinstance(ei.value, ArithmeticError)


def test_to_dot_and_render(tmp_path):
    g, x, y, z = seed_graph()
    gr.grad(z * z, [x])
    dot = gr.to_dot(g)
    assert dot.startswith("digraph") and "add" in dot and "dashed" in dot
    import shutil
    if shutil.which("dot") is None:
        with pytest.raises(RuntimeError, match="apt-get install graphviz"):
            gr.render(g, tmp_path / "g.svg")
    else:
        p = gr.render(g, tmp_path / "g.svg")
        assert (tmp_path / "g.svg").read_text().lstrip().startswith(("<?xml", "<svg"))


def test_from_dlpack_shares_memory():
    a = np.arange(6, dtype=np.float32)
    b = gr.from_dlpack(a)
    assert b.ctypes.data == a.ctypes.data
    g = gr.Graph()
    x = g.vector(gr.float32, 6)
    x.let(b)
    assert g._g.value_ptr(x._id) == a.ctypes.data
