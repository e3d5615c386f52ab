"""Every op of API.md "Operations" against NumPy (values), gradient checks by central
differences in float64, and second derivatives (gradients of gradients)."""

from __future__ import annotations

import numpy as np
import pytest

import gorgon_rs as gr

EPS, ATOL, RTOL = 1e-6, 1e-5, 1e-3


def evaluate(build, *arrays, dtype=np.float64):
    """Values of ``build(*nodes)`` (a node or a list) with the inputs bound to ``arrays``."""
    g = gr.Graph()
    nodes = [g.tensor(dtype, np.shape(a), name=f"in{i}", value=np.asarray(a, dtype=dtype)) for i, a in enumerate(arrays)]
    out = build(*nodes)
    outs = out if isinstance(out, list) else [out]
    with gr.TapeMachine(g) as m:
        m.run_all()
        vals = [o.value for o in outs]
    return vals if isinstance(out, list) else vals[0]


def check_grad(build, *arrays, seed=0):
    """Analytic gradients of sum(build(*x) * R) against central differences."""
    rng = np.random.default_rng(seed)
    g = gr.Graph()
    nodes = [g.tensor(gr.float64, np.shape(a), name=f"x{i}") for i, a in enumerate(arrays)]
    out = build(*nodes)
    R = g.constant(rng.uniform(0.5, 1.5, out.shape))
    cost = gr.sum(out * R)
    grads = gr.grad(cost, nodes)
    f = gr.function(nodes, [cost] + grads)
    xs = [np.array(a, dtype=np.float64) for a in arrays]
    res = f(*xs)
    analytic = res[1:]
    for k, x in enumerate(xs):
        num = np.zeros_like(x)
        for idx in np.ndindex(x.shape):
            old = x[idx]
            x[idx] = old + EPS
            fp = float(f(*xs)[0])
            x[idx] = old - EPS
            fm = float(f(*xs)[0])
            x[idx] = old
            num[idx] = (fp - fm) / (2 * EPS)
        np.testing.assert_allclose(analytic[k], num, atol=ATOL, rtol=RTOL, err_msg=f"gradient of input {k}")


def check_second(build, *arrays, seed=1, eps=1e-5):
    """Hessian-vector products from gr.grad of gr.grad against differences of the gradient."""
    rng = np.random.default_rng(seed)
    g = gr.Graph()
    nodes = [g.tensor(gr.float64, np.shape(a), name=f"x{i}") for i, a in enumerate(arrays)]
    out = build(*nodes)
    cost = gr.sum(out * g.constant(rng.uniform(0.5, 1.5, out.shape)))
    g1 = gr.grad(cost, nodes)
    vs = [rng.normal(size=np.shape(a)) for a in arrays]
    s = gr.sum(g1[0] * g.constant(vs[0]))
    for gi, v in zip(g1[1:], vs[1:]):
        s = s + gr.sum(gi * g.constant(v))
    hv = gr.grad(s, nodes, allow_unused=True)
    f = gr.function(nodes, g1 + hv)
    xs = [np.array(a, dtype=np.float64) for a in arrays]
    n = len(xs)
    analytic = f(*xs)[n:]
    plus = f(*[x + eps * v for x, v in zip(xs, vs)])[:n]
    minus = f(*[x - eps * v for x, v in zip(xs, vs)])[:n]
    for k in range(n):
        num = (plus[k] - minus[k]) / (2 * eps)
        np.testing.assert_allclose(analytic[k], num, atol=1e-5, rtol=1e-3, err_msg=f"H·v for input {k}")


rng0 = np.random.default_rng(42)
POS = rng0.uniform(0.3, 2.0, (2, 3))
ANY = rng0.uniform(-2.0, 2.0, (2, 3))
AWAY = np.where(np.abs(ANY) < 0.2, 0.7, ANY)  # away from kinks at 0

sigmoid = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
softplus = lambda x: np.log1p(np.exp(x))  # noqa: E731

UNARY = [
    ("neg", gr.neg, np.negative, ANY, True),
    ("abs", gr.abs, np.abs, AWAY, True),
    ("sign", gr.sign, np.sign, AWAY, False),
    ("exp", gr.exp, np.exp, ANY, True),
    ("log", gr.log, np.log, POS, True),
    ("log1p", gr.log1p, np.log1p, POS - 0.2, True),
    ("expm1", gr.expm1, np.expm1, ANY, True),
    ("log2", gr.log2, np.log2, POS, True),
    ("sqrt", gr.sqrt, np.sqrt, POS, True),
    ("square", gr.square, np.square, ANY, True),
    ("cube", gr.cube, lambda x: x ** 3, ANY, True),
    ("inverse", gr.inverse, lambda x: 1 / x, AWAY, True),
    ("inverse_sqrt", gr.inverse_sqrt, lambda x: 1 / np.sqrt(x), POS, True),
    ("sin", gr.sin, np.sin, ANY, True),
    ("cos", gr.cos, np.cos, ANY, True),
    ("tanh", gr.tanh, np.tanh, ANY, True),
    ("sigmoid", gr.sigmoid, sigmoid, ANY, True),
    ("softplus", gr.softplus, softplus, ANY, True),
    ("relu", gr.relu, lambda x: np.maximum(x, 0), AWAY, True),
    ("mish", gr.mish, lambda x: x * np.tanh(softplus(x)), ANY, True),
    ("floor", gr.floor, np.floor, ANY + 0.013, False),
    ("ceil", gr.ceil, np.ceil, ANY + 0.013, False),
    ("leaky_relu", lambda x: gr.leaky_relu(x, 0.1), lambda x: np.where(x > 0, x, 0.1 * x), AWAY, True),
    ("clip", lambda x: gr.clip(x, -1.0, 1.0), lambda x: np.clip(x, -1, 1), np.where(np.abs(np.abs(AWAY) - 1) < 0.1, 0.5, AWAY), True),
]


@pytest.mark.parametrize("name,op,ref,x,diff", UNARY, ids=[u[0] for u in UNARY])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unary_values(name, op, ref, x, diff, dtype):
    v = evaluate(op, x, dtype=dtype)
    assert v.dtype == dtype and v.shape == x.shape
    np.testing.assert_allclose(v, ref(x.astype(dtype)), rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)


@pytest.mark.parametrize("name,op,ref,x,diff", [u for u in UNARY if u[4]], ids=[u[0] for u in UNARY if u[4]])
def test_unary_gradients(name, op, ref, x, diff):
    check_grad(op, x)


BINARY = [
    ("add", gr.add, np.add),
    ("sub", gr.sub, np.subtract),
    ("mul", gr.mul, np.multiply),
    ("div", gr.div, np.divide),
    ("pow", gr.pow, np.power),
    ("maximum", gr.maximum, np.maximum),
    ("minimum", gr.minimum, np.minimum),
]
SHAPES = [((2, 3), (2, 3)), ((2, 3), (3,)), ((3, 1), (1, 4)), ((), (2, 2)), ((2, 1, 3), (2, 1))]


@pytest.mark.parametrize("name,op,ref", BINARY, ids=[b[0] for b in BINARY])
@pytest.mark.parametrize("sa,sb", SHAPES, ids=[f"{a}x{b}" for a, b in SHAPES])
def test_binary_values_and_gradients(name, op, ref, sa, sb):
    rng = np.random.default_rng(3)
    a = rng.uniform(0.5, 2.0, sa)
    b = rng.uniform(0.5, 2.0, sb) + 0.05  # no ties for maximum/minimum
    np.testing.assert_allclose(evaluate(op, a, b), ref(a, b), rtol=1e-12)
    check_grad(op, a, b)


@pytest.mark.parametrize("name", ["lt", "le", "gt", "ge", "eq", "ne"])
def test_comparisons(name):
    a = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    b = np.array([2.0, 2.0, 2.0])
    v = evaluate(getattr(gr, name), a, b)
    want = getattr(np, {"lt": "less", "le": "less_equal", "gt": "greater", "ge": "greater_equal",
                        "eq": "equal", "ne": "not_equal"}[name])(a, b)
    assert v.dtype == np.float64
    np.testing.assert_array_equal(v, want.astype(np.float64))


def test_where_and_clip_nodes():
    rng = np.random.default_rng(4)
    c = np.array([[1.0, 0.0, -2.0]])
    a, b = rng.normal(size=(2, 3)), rng.normal(size=(3,))
    np.testing.assert_array_equal(evaluate(gr.where, c, a, b), np.where(c != 0, a, b))
    check_grad(lambda a, b: gr.where(np.array([[True, False, True], [False, True, False]]), a, b), a, b)
    lo, hi = np.full((2, 3), -0.5), np.full((2, 3), 0.5)
    np.testing.assert_allclose(evaluate(gr.clip, a, lo, hi), np.clip(a, lo, hi))


def test_integer_ops():
    g = gr.Graph()
    i = g.vector(gr.int32, 4, value=[5, -3, 0, 8])
    j = g.vector(gr.int32, 4, value=[2, 2, 3, -3])
    exprs = [i + j, i - j, i * j, i // j, gr.maximum(i, j), gr.abs(i), -i, gr.square(i), i / j, gr.sqrt(gr.abs(i)),
             gr.lt(i, j), gr.sum(i), gr.prod(j), gr.max(i), gr.mean(i)]
    with gr.TapeMachine(g) as m:
        m.run_all()
        vals = [e.value for e in exprs]
    iv, jv = np.array([5, -3, 0, 8], np.int32), np.array([2, 2, 3, -3], np.int32)
    want = [iv + jv, iv - jv, iv * jv, iv // jv, np.maximum(iv, jv), np.abs(iv), -iv, np.square(iv), iv / jv,
            np.sqrt(np.abs(iv)), (iv < jv).astype(np.int32), np.sum(iv, dtype=np.int32), np.prod(jv, dtype=np.int32),
            iv.max(), iv.mean()]
    for v, w in zip(vals, want):
        assert v.dtype == np.asarray(w).dtype, (v.dtype, np.asarray(w).dtype)
        np.testing.assert_allclose(v, w)


REDUCE = [
    ("sum", gr.sum, np.sum),
    ("mean", gr.mean, np.mean),
    ("max", gr.max, np.max),
    ("min", gr.min, np.min),
    ("prod", gr.prod, np.prod),
    ("logsumexp", gr.logsumexp, lambda x, axis=None, keepdims=False: np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims))),
]
AXES = [None, 0, 1, -1, (0, 2), (0, 1, 2)]


@pytest.mark.parametrize("name,op,ref", REDUCE, ids=[r[0] for r in REDUCE])
@pytest.mark.parametrize("axis", AXES, ids=[str(a) for a in AXES])
@pytest.mark.parametrize("keepdims", [False, True])
def test_reductions(name, op, ref, axis, keepdims):
    x = np.random.default_rng(5).uniform(0.5, 1.5, (2, 3, 4))
    v = evaluate(lambda n: op(n, axis=axis, keepdims=keepdims), x)
    w = ref(x, axis=axis, keepdims=keepdims)
    assert v.shape == np.shape(w)
    np.testing.assert_allclose(v, w, rtol=1e-12)
    if keepdims is False and axis in (None, 1, (0, 2)):
        check_grad(lambda n: op(n, axis=axis), x[:, :2, :2])


def test_norm():
    x = np.random.default_rng(6).normal(size=(3, 4))
    for p in (2, 1, np.inf, -np.inf, 3):
        for axis in (None, 0, 1):
            v = evaluate(lambda n: gr.norm(n, p=p, axis=axis), x)
            w = np.linalg.norm(x, ord=p, axis=axis) if axis is not None else np.linalg.norm(x.ravel(), ord=p)
            np.testing.assert_allclose(v, w, rtol=1e-12)
    check_grad(lambda n: gr.norm(n), x)
    check_grad(lambda n: gr.norm(n, p=1, axis=0), x)


def test_argmax_argmin():
    x = np.random.default_rng(7).normal(size=(3, 4, 5))
    for axis in (None, 0, 1, -1):
        for kd in (False, True):
            a = evaluate(lambda n: gr.argmax(n, axis=axis, keepdims=kd), x)
            b = evaluate(lambda n: gr.argmin(n, axis=axis, keepdims=kd), x)
            assert a.dtype == np.int64
            np.testing.assert_array_equal(a, np.argmax(x, axis=axis, keepdims=kd))
            np.testing.assert_array_equal(b, np.argmin(x, axis=axis, keepdims=kd))


MATMUL_SHAPES = [((2, 3), (3, 4)), ((3,), (3, 4)), ((2, 3), (3,)), ((3,), (3,)), ((5, 2, 3), (3, 4)),
                 ((2, 1, 2, 3), (4, 3, 2)), ((4, 2, 3), (3,))]


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES, ids=[f"{a}@{b}" for a, b in MATMUL_SHAPES])
def test_matmul(sa, sb):
    rng = np.random.default_rng(8)
    a, b = rng.normal(size=sa), rng.normal(size=sb)
    v = evaluate(gr.matmul, a, b)
    assert v.shape == np.matmul(a, b).shape
    np.testing.assert_allclose(v, np.matmul(a, b), rtol=1e-10, atol=1e-12)
    check_grad(gr.matmul, a, b)


def test_matmul_float32_and_errors():
    rng = np.random.default_rng(9)
    a, b = rng.normal(size=(4, 5)).astype(np.float32), rng.normal(size=(5, 3)).astype(np.float32)
    v = evaluate(gr.matmul, a, b, dtype=np.float32)
    assert v.dtype == np.float32
    np.testing.assert_allclose(v, a @ b, rtol=1e-5, atol=1e-5)
    g = gr.Graph()
    with pytest.raises(gr.ShapeError):
        gr.matmul(g.matrix(gr.float32, (2, 3)), g.matrix(gr.float32, (2, 3)))
    with pytest.raises(gr.ShapeError):
        gr.matmul(g.scalar(gr.float32), g.matrix(gr.float32, (2, 3)))


def test_dot_outer_tensordot():
    rng = np.random.default_rng(10)
    a, b = rng.normal(size=(2, 3, 4)), rng.normal(size=(4, 5))
    np.testing.assert_allclose(evaluate(gr.dot, a, b), np.dot(a, b), rtol=1e-10)
    u, w = rng.normal(size=4), rng.normal(size=4)
    np.testing.assert_allclose(evaluate(gr.dot, u, w), np.dot(u, w), rtol=1e-10)
    np.testing.assert_allclose(evaluate(gr.dot, a, u), np.dot(a, u), rtol=1e-10)
    np.testing.assert_allclose(evaluate(gr.outer, u, w[:3]), np.outer(u, w[:3]), rtol=1e-12)
    c = rng.normal(size=(4, 3, 2))
    np.testing.assert_allclose(evaluate(lambda x, y: gr.tensordot(x, y, axes=([1, 2], [1, 0])), a, c),
                               np.tensordot(a, c, axes=([1, 2], [1, 0])), rtol=1e-10)
    np.testing.assert_allclose(evaluate(lambda x, y: gr.tensordot(x, y, 1), a, b), np.tensordot(a, b, 1), rtol=1e-10)
    check_grad(lambda x, y: gr.tensordot(x, y, axes=([1, 2], [1, 0])), a, c)
    check_grad(gr.outer, u, w)


def test_shape_ops_values_and_gradients():
    rng = np.random.default_rng(11)
    x = rng.normal(size=(2, 3, 4))
    y = rng.normal(size=(2, 1, 4))
    cases = [
        (lambda n: gr.reshape(n, (4, -1)), lambda a: a.reshape(4, -1)),
        (lambda n: gr.transpose(n), lambda a: a.transpose()),
        (lambda n: gr.transpose(n, (1, 0, 2)), lambda a: a.transpose(1, 0, 2)),
        (lambda n: gr.expand_dims(n, 1), lambda a: np.expand_dims(a, 1)),
        (lambda n: gr.expand_dims(n, (0, -1)), lambda a: np.expand_dims(a, (0, -1))),
        (lambda n: gr.broadcast_to(n[:, :1, :], (2, 5, 4)), lambda a: np.broadcast_to(a[:, :1, :], (2, 5, 4))),
        (lambda n: gr.squeeze(n[:, :1, :]), lambda a: np.squeeze(a[:, :1, :])),
        (lambda n: gr.squeeze(n[:1, :, :1], axis=0), lambda a: np.squeeze(a[:1, :, :1], axis=0)),
        (lambda n: gr.softmax(n, axis=1), lambda a: np.exp(a) / np.exp(a).sum(axis=1, keepdims=True)),
        (lambda n: gr.log_softmax(n), lambda a: a - np.log(np.exp(a).sum(axis=-1, keepdims=True))),
        (lambda n: gr.take(n, [2, 0, -1], axis=1), lambda a: np.take(a, [2, 0, -1], axis=1)),
        (lambda n: gr.take(n, np.array([[1, 0], [1, 1]]), axis=0), lambda a: np.take(a, [[1, 0], [1, 1]], axis=0)),
    ]
    for build, ref in cases:
        np.testing.assert_allclose(evaluate(build, x), ref(x), rtol=1e-12)
        check_grad(build, x)
    pairs = [
        (lambda a, b: gr.concat([a, b], axis=1), lambda a, b: np.concatenate([a, b], axis=1)),
        (lambda a, b: gr.stack([a[:, :1, :], b], axis=0), lambda a, b: np.stack([a[:, :1, :], b], axis=0)),
        (lambda a, b: gr.stack([a[:, 0, :], b[:, 0, :]], axis=-1), lambda a, b: np.stack([a[:, 0, :], b[:, 0, :]], axis=-1)),
    ]
    for build, ref in pairs:
        np.testing.assert_allclose(evaluate(build, x, y), ref(x, y), rtol=1e-12)
        check_grad(build, x, y)


def test_take_with_index_node_and_one_hot():
    g = gr.Graph()
    E = g.matrix(gr.float64, (5, 3), value=np.arange(15.0).reshape(5, 3))
    idx = g.vector(gr.int64, 4, value=[0, 4, 2, 2])
    rows = gr.take(E, idx)
    oh = gr.one_hot(idx, 5)
    oh64 = gr.one_hot(idx, 5, dtype=gr.float64)
    cost = gr.sum(rows)
    (dE,) = gr.grad(cost, [E])
    with gr.TapeMachine(g) as m:
        m.run_all()
        np.testing.assert_array_equal(rows.value, np.arange(15.0).reshape(5, 3)[[0, 4, 2, 2]])
        assert oh.value.dtype == np.float32 and oh64.value.dtype == np.float64
        np.testing.assert_array_equal(oh.value, np.eye(5, dtype=np.float32)[[0, 4, 2, 2]])
        np.testing.assert_array_equal(dE.value, np.array([[1.0] * 3, [0] * 3, [2] * 3, [0] * 3, [1] * 3]))
    with pytest.raises(IndexError):
        gr.take(E, [5])


def test_cast():
    x = np.array([1.7, -1.7, 0.0, 2.5])
    for dt in (gr.float32, gr.int32, gr.int64, gr.bool_):
        v = evaluate(lambda n: gr.cast(n, dt), x)
        assert v.dtype == dt
        np.testing.assert_array_equal(v, x.astype(dt))


def test_empty_reductions():
    g = gr.Graph()
    e = g.matrix(gr.float64, (0, 3), value=np.zeros((0, 3)))
    with pytest.raises(gr.ShapeError):
        gr.max(e, axis=0)
    with pytest.raises(gr.ShapeError):
        gr.min(e)
    s = gr.sum(e, axis=0)
    with gr.TapeMachine(g) as m:
        m.run_all()
        np.testing.assert_array_equal(s.value, np.zeros(3))


# ---------------------------------------------------------------------------------------------
# Second derivatives
# ---------------------------------------------------------------------------------------------

SECOND = [
    ("tanh", lambda x: gr.tanh(x), [ANY]),
    ("sigmoid", lambda x: gr.sigmoid(x), [ANY]),
    ("exp", lambda x: gr.exp(x), [ANY]),
    ("log", lambda x: gr.log(x), [POS]),
    ("mul", lambda x, y: x * y * x, [ANY, POS]),
    ("matmul", lambda a, b: gr.square(a @ b), [ANY, ANY.T.copy()]),
    ("softmax", lambda x: gr.softmax(x, axis=-1), [ANY]),
    ("log_softmax", lambda x: gr.log_softmax(x * x, axis=0), [ANY]),
]


@pytest.mark.parametrize("name,build,arrays", SECOND, ids=[s[0] for s in SECOND])
def test_second_derivatives(name, build, arrays):
    check_second(build, *arrays)


def test_elementwise_second_derivative_closed_form():
    x = np.linspace(-2, 2, 7)
    g = gr.Graph()
    X = g.vector(gr.float64, 7, value=x)
    outs = []
    for f in (gr.tanh, gr.sigmoid, gr.exp):
        (d1,) = gr.grad(gr.sum(f(X)), [X])
        (d2,) = gr.grad(gr.sum(d1), [X])
        outs.append(d2)
    with gr.TapeMachine(g) as m:
        m.run_all()
        t, s, e = np.tanh(x), sigmoid(x), np.exp(x)
        np.testing.assert_allclose(outs[0].value, -2 * t * (1 - t ** 2), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(outs[1].value, s * (1 - s) * (1 - 2 * s), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(outs[2].value, e, rtol=1e-12)
