"""gr.nn: forward passes against NumPy references, float64 gradient checks by central
differences, layers (parameters, names, init, input validation) and error messages."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import pytest

import gorgon_rs as gr
from gorgon_rs import nn

RNG = np.random.default_rng(1234)


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def leaf(g, arr, name):
    arr = np.asarray(arr)
    dt = arr.dtype
    if arr.ndim == 0:
        n = g.scalar(dt, name=name)
    elif arr.ndim == 1:
        n = g.vector(dt, arr.shape[0], name=name)
    elif arr.ndim == 2:
        n = g.matrix(dt, arr.shape, name=name)
    else:
        n = g.tensor(dt, arr.shape, name=name)
    n.let(arr)
    return n


def evaluate(build: Callable, *arrays, **kw):
    """Build ``build(*leaves, **kw)`` in a fresh graph over ``arrays`` and return its value."""
    g = gr.Graph()
    leaves = [leaf(g, a, f"in{i}") for i, a in enumerate(arrays)]
    out = build(*leaves, **kw)
    with gr.TapeMachine(g) as m:
        m.run_all()
        return out.value


def grad_check(build: Callable, *arrays, eps=1e-6, atol=1e-5, rtol=1e-3, wrt=None):
    """Compare gr.grad of sum(build(...)·R) with central differences for every float input."""
    g = gr.Graph()
    arrays = [np.array(a, dtype=np.float64) if np.asarray(a).dtype.kind == "f" else np.asarray(a) for a in arrays]
    leaves = [leaf(g, a, f"in{i}") for i, a in enumerate(arrays)]
    out = build(*leaves)
    R = np.random.default_rng(7).normal(size=out.shape)
    cost = gr.sum(out * g.constant(R)) if out.ndim else out
    idx = [i for i, a in enumerate(arrays) if a.dtype.kind == "f"] if wrt is None else list(wrt)
    grads = gr.grad(cost, [leaves[i] for i in idx])
    with gr.TapeMachine(g) as m:
        m.run_all()
        analytic = [np.array(gn.value) for gn in grads]
        m.reset()
        for k, i in enumerate(idx):
            base = arrays[i]
            num = np.zeros_like(base)
            for j in np.ndindex(base.shape):
                for sgn in (+1, -1):
                    x = base.copy()
                    x[j] += sgn * eps
                    leaves[i].let(x)
                    m.run_all()
                    num[j] += sgn * float(cost.value)
                    m.reset()
            leaves[i].let(base)
            num /= 2 * eps
            np.testing.assert_allclose(analytic[k], num, atol=atol, rtol=rtol, err_msg=f"input {i}")


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def conv2d_ref(x, w, b=None, stride=1, padding=0, dilation=1):
    (sh, sw), (ph, pw), (dh, dw) = pair(stride), pair(padding), pair(dilation)
    N, C, H, W = x.shape
    O, I, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    oh = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((N, O, oh, ow), dtype=np.float64)
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, i * dh: i * dh + sh * (oh - 1) + 1: sh, j * dw: j * dw + sw * (ow - 1) + 1: sw]
            out += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
    if b is not None:
        out += b.reshape(1, O, 1, 1)
    return out


def pool_ref(x, kernel, stride=None, padding=0, kind="max"):
    (kh, kw) = pair(kernel)
    (sh, sw) = pair(stride) if stride is not None else (kh, kw)
    (ph, pw) = pair(padding)
    N, C, H, W = x.shape
    fill = -np.inf if kind == "max" else 0.0
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    oh = (H + 2 * ph - kh) // sh + 1
    ow = (W + 2 * pw - kw) // sw + 1
    wins = np.stack([xp[:, :, i: i + sh * (oh - 1) + 1: sh, j: j + sw * (ow - 1) + 1: sw]
                     for i in range(kh) for j in range(kw)])
    return wins.max(axis=0) if kind == "max" else wins.sum(axis=0) / (kh * kw)


def log_softmax_ref(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


# ---------------------------------------------------------------------------------------------
# conv2d and pooling
# ---------------------------------------------------------------------------------------------

CONV_CASES = [
    ((2, 3, 7, 6), (4, 3, 3, 3), 1, 0, 1),
    ((2, 3, 7, 6), (4, 3, 3, 2), (2, 1), (1, 2), 1),
    ((1, 2, 9, 8), (3, 2, 3, 3), 2, 1, 2),
    ((2, 1, 5, 5), (2, 1, 1, 1), 1, 0, 1),
    ((1, 2, 8, 8), (2, 2, 5, 3), (3, 2), (2, 1), (1, 2)),
    ((3, 4, 5, 7), (5, 4, 2, 4), 1, 1, 1),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CONV_CASES, ids=[str(c) for c in CONV_CASES])
def test_conv2d_forward(case, dtype):
    xs, ws, stride, padding, dilation = case
    x, w, b = RNG.normal(size=xs).astype(dtype), RNG.normal(size=ws).astype(dtype), RNG.normal(size=ws[0]).astype(dtype)
    got = evaluate(lambda X, Wt, B: nn.conv2d(X, Wt, B, stride=stride, padding=padding, dilation=dilation), x, w, b)
    ref = conv2d_ref(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), stride, padding, dilation)
    assert got.dtype == dtype and got.shape == ref.shape
    tol = 1e-12 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol)


def test_conv2d_without_bias_and_shape():
    x, w = RNG.normal(size=(2, 3, 6, 6)), RNG.normal(size=(4, 3, 3, 3))
    got = evaluate(lambda X, Wt: nn.conv2d(X, Wt, padding=1), x, w)
    np.testing.assert_allclose(got, conv2d_ref(x, w, padding=1), rtol=1e-12, atol=1e-12)


def test_conv2d_grad():
    x, w, b = RNG.normal(size=(1, 2, 5, 4)), RNG.normal(size=(3, 2, 3, 2)), RNG.normal(size=3)
    grad_check(lambda X, Wt, B: nn.conv2d(X, Wt, B, stride=(2, 1), padding=(1, 1), dilation=(1, 2)), x, w, b)


def test_conv2d_grad_plain():
    x, w = RNG.normal(size=(2, 2, 4, 4)), RNG.normal(size=(2, 2, 2, 2))
    grad_check(lambda X, Wt: nn.conv2d(X, Wt), x, w)


POOL_CASES = [
    ((2, 3, 6, 6), 2, None, 0),
    ((1, 2, 7, 5), 3, 2, 1),
    ((2, 1, 5, 8), (2, 3), (1, 2), (1, 0)),
    ((1, 1, 4, 4), 1, None, 0),
]


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("case", POOL_CASES, ids=[str(c) for c in POOL_CASES])
def test_pool_forward(case, kind):
    xs, k, s, p = case
    x = RNG.normal(size=xs)
    f = nn.max_pool2d if kind == "max" else nn.avg_pool2d
    got = evaluate(lambda X: f(X, k, stride=s, padding=p), x)
    np.testing.assert_allclose(got, pool_ref(x, k, s, p, kind), rtol=1e-12, atol=1e-12)
    got32 = evaluate(lambda X: f(X, k, stride=s, padding=p), x.astype(np.float32))
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32, pool_ref(x, k, s, p, kind), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_grad(kind):
    # distinct values: no ties for max pooling
    x = RNG.permutation(np.arange(2 * 7 * 6, dtype=np.float64)).reshape(1, 2, 7, 6) / 10.0
    f = nn.max_pool2d if kind == "max" else nn.avg_pool2d
    grad_check(lambda X: f(X, 3, stride=2, padding=1), x)
    grad_check(lambda X: f(X, (2, 3)), x)


# ---------------------------------------------------------------------------------------------
# dropout
# ---------------------------------------------------------------------------------------------


def test_dropout_mask_scaling_and_gradient():
    p = 0.3
    g = gr.Graph()
    x = leaf(g, RNG.uniform(1.0, 2.0, size=(100, 100)), "x")
    y = nn.dropout(x, p)
    R = RNG.normal(size=(100, 100))
    (dx,) = gr.grad(gr.sum(y * g.constant(R)), [x])
    with gr.TapeMachine(g) as m:
        m.run_all()
        mask = y.value / x.value
        grad = dx.value
        m.reset()
        m.run_all()
        mask2 = y.value / x.value
    kept = mask != 0
    np.testing.assert_allclose(mask[kept], 1 / (1 - p), rtol=1e-12)
    assert abs((~kept).mean() - p) < 0.02
    np.testing.assert_allclose(grad, mask * R, rtol=1e-12, atol=1e-12)  # same mask as the forward
    assert not np.array_equal(mask, mask2)


def test_dropout_identity_cases():
    g = gr.Graph()
    x = g.matrix(gr.float32, (3, 4), name="x")
    assert nn.dropout(x, 0.5, training=False) is x
    assert nn.dropout(x, 0.0) is x
    x.let(np.ones((3, 4), np.float32))
    z = nn.dropout(x, 1.0)
    with gr.TapeMachine(g) as m:
        m.run_all()
        np.testing.assert_array_equal(z.value, np.zeros((3, 4), np.float32))
    for bad in (-0.1, 1.5, "0.5", True):
        with pytest.raises((ValueError, TypeError)):
            nn.dropout(x, bad)


# ---------------------------------------------------------------------------------------------
# batch norm
# ---------------------------------------------------------------------------------------------


def _bn_graph(x, training, momentum=0.1, eps=1e-5, dtype=np.float64):
    C = x.shape[1]
    g = gr.Graph()
    X = leaf(g, x.astype(dtype), "x")
    gamma = leaf(g, np.linspace(0.5, 1.5, C).astype(dtype), "gamma")
    beta = leaf(g, np.linspace(-1, 1, C).astype(dtype), "beta")
    rm = leaf(g, np.linspace(-0.2, 0.2, C).astype(dtype), "rm")
    rv = leaf(g, np.linspace(0.5, 2.0, C).astype(dtype), "rv")
    y = nn.batch_norm(X, gamma, beta, rm, rv, training=training, momentum=momentum, eps=eps)
    return g, X, y, gamma.value, beta.value, rm, rv


@pytest.mark.parametrize("shape", [(4, 3, 5, 2), (6, 5)])
def test_batch_norm_training_and_running_stats(shape):
    x = RNG.normal(1.0, 2.0, size=shape)
    axes = (0, 2, 3) if x.ndim == 4 else (0,)
    bshape = (1, -1, 1, 1) if x.ndim == 4 else (1, -1)
    g, X, y, gamma, beta, rm, rv = _bn_graph(x, True, momentum=0.2)
    rm0, rv0 = rm.value, rv.value
    mean, var = x.mean(axis=axes), x.var(axis=axes)
    n = x.size // x.shape[1]
    ref = (x - mean.reshape(bshape)) / np.sqrt(var.reshape(bshape) + 1e-5) * gamma.reshape(bshape) + beta.reshape(bshape)
    with gr.TapeMachine(g) as m:
        m.run_all()
        np.testing.assert_allclose(y.value, ref, rtol=1e-10, atol=1e-12)
        exp_m = 0.8 * rm0 + 0.2 * mean
        exp_v = 0.8 * rv0 + 0.2 * var * n / (n - 1)
        np.testing.assert_allclose(rm.value, exp_m, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(rv.value, exp_v, rtol=1e-12)
        m.reset()
        m.run_all()  # the update compounds on every run
        np.testing.assert_allclose(rm.value, 0.8 * exp_m + 0.2 * mean, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(rv.value, 0.8 * exp_v + 0.2 * var * n / (n - 1), rtol=1e-12)


@pytest.mark.parametrize("shape", [(4, 3, 5, 2), (6, 5)])
def test_batch_norm_eval(shape):
    x = RNG.normal(size=shape)
    bshape = (1, -1, 1, 1) if x.ndim == 4 else (1, -1)
    g, X, y, gamma, beta, rm, rv = _bn_graph(x, False)
    rm0, rv0 = rm.value, rv.value
    with gr.TapeMachine(g) as m:
        m.run_all()
        ref = (x - rm0.reshape(bshape)) / np.sqrt(rv0.reshape(bshape) + 1e-5) * gamma.reshape(bshape) + beta.reshape(bshape)
        np.testing.assert_allclose(y.value, ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(rm.value, rm0)   # eval never updates
        np.testing.assert_array_equal(rv.value, rv0)


def test_batch_norm_grad():
    x = RNG.normal(size=(3, 2, 2, 2))
    gamma, beta = np.array([0.7, 1.3]), np.array([0.1, -0.2])
    grad_check(lambda X, G, B: nn.batch_norm(X, G, B, None, None, training=True), x, gamma, beta)
    grad_check(lambda X: nn.batch_norm(X, None, None, None, None, training=True), RNG.normal(size=(5, 3)))


def test_batch_norm_errors():
    g = gr.Graph()
    x = g.tensor(gr.float32, (4, 3, 2, 2), name="x")
    v3 = g.vector(gr.float32, 3, name="v3", init=gr.init.ones())
    v4 = g.vector(gr.float32, 4, name="v4", init=gr.init.ones())
    with pytest.raises(gr.ShapeError, match=r"\(3,\)"):
        nn.batch_norm(x, v4, v3, v3, v3)
    with pytest.raises(gr.ShapeError):
        nn.batch_norm(g.vector(gr.float32, 5, name="flat"), None, None, None, None)
    with pytest.raises(ValueError):
        nn.batch_norm(x, v3, v3, None, None, training=False)
    with pytest.raises(gr.ShapeError):
        nn.batch_norm(g.tensor(gr.float32, (1, 3, 1, 1), name="one"), v3, v3, v3, v3)
    v3d = g.vector(gr.float64, 3, name="v3d", init=gr.init.ones())
    with pytest.raises(gr.DTypeError):
        nn.batch_norm(x, v3d, v3, v3, v3)


# ---------------------------------------------------------------------------------------------
# linear and losses
# ---------------------------------------------------------------------------------------------


def test_linear_forward_and_grad():
    x, w, b = RNG.normal(size=(5, 4)), RNG.normal(size=(4, 3)), RNG.normal(size=3)
    np.testing.assert_allclose(evaluate(nn.linear, x, w, b), x @ w + b, rtol=1e-12)
    np.testing.assert_allclose(evaluate(nn.linear, x, w), x @ w, rtol=1e-12)
    grad_check(nn.linear, x, w, b)
    x3 = RNG.normal(size=(2, 5, 4))
    np.testing.assert_allclose(evaluate(nn.linear, x3, w, b), x3 @ w + b, rtol=1e-12)


def test_linear_shape_errors():
    g = gr.Graph()
    x = g.matrix(gr.float32, (5, 4), name="x")
    w = g.matrix(gr.float32, (3, 2), name="w")
    with pytest.raises(gr.ShapeError, match=r"linear.*\(5, 4\)"):
        nn.linear(x, w)
    w2 = g.matrix(gr.float32, (4, 2), name="w2")
    with pytest.raises(gr.ShapeError):
        nn.linear(x, w2, g.vector(gr.float32, 3, name="b"))


def _ce_ref(z, t_index=None, t_prob=None, reduction="mean"):
    lp = log_softmax_ref(z)
    if t_index is not None:
        per = -lp[np.arange(len(z)), t_index]
    else:
        per = -(t_prob * lp).sum(axis=-1)
    return {"mean": per.mean(), "sum": per.sum(), "none": per}[reduction]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_index_targets(reduction):
    z = RNG.normal(size=(6, 4)) * 3
    t = np.array([0, 3, 1, 1, 2, 3])
    ref = _ce_ref(z, t_index=t, reduction=reduction)
    # numpy labels (constant), list labels, and an int64 input node
    np.testing.assert_allclose(evaluate(lambda Z: nn.cross_entropy(Z, t, reduction), z), ref, rtol=1e-12)
    np.testing.assert_allclose(evaluate(lambda Z: nn.cross_entropy(Z, t.tolist(), reduction), z), ref, rtol=1e-12)
    np.testing.assert_allclose(evaluate(lambda Z, T: nn.cross_entropy(Z, T, reduction), z, t), ref, rtol=1e-12)
    np.testing.assert_allclose(
        evaluate(lambda Z, T: nn.cross_entropy(Z, T, reduction), z, t.astype(np.int32)), ref, rtol=1e-12)
    z32 = evaluate(lambda Z: nn.cross_entropy(Z, t, reduction), z.astype(np.float32))
    assert z32.dtype == np.float32
    np.testing.assert_allclose(z32, ref, rtol=1e-5)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_probability_targets(reduction):
    z = RNG.normal(size=(5, 3))
    onehot = np.eye(3)[[0, 2, 1, 1, 0]]
    soft = RNG.dirichlet(np.ones(3), size=5)
    for t in (onehot, soft):
        ref = _ce_ref(z, t_prob=t, reduction=reduction)
        np.testing.assert_allclose(evaluate(lambda Z: nn.cross_entropy(Z, t, reduction), z), ref, rtol=1e-12)
        np.testing.assert_allclose(evaluate(lambda Z, T: nn.cross_entropy(Z, T, reduction), z, t), ref, rtol=1e-12)


def test_cross_entropy_single_example_and_extremes():
    z = np.array([1000.0, -1000.0, 0.0])
    got = evaluate(lambda Z: nn.cross_entropy(Z, np.int64(2)), z)
    np.testing.assert_allclose(got, 1000.0, rtol=1e-12)
    assert np.isfinite(got)


def test_cross_entropy_grad():
    z = RNG.normal(size=(4, 5))
    t = np.array([4, 0, 2, 2])
    grad_check(lambda Z: nn.cross_entropy(Z, t), z)
    grad_check(lambda Z: nn.cross_entropy(Z, t, "none"), z)
    soft = RNG.dirichlet(np.ones(5), size=4)
    grad_check(lambda Z, T: nn.cross_entropy(Z, T, "sum"), z, soft)


def test_cross_entropy_errors():
    g = gr.Graph()
    z = g.matrix(gr.float32, (4, 3), name="logits")
    with pytest.raises(ValueError, match="out of range"):
        nn.cross_entropy(z, np.array([0, 1, 3, 2]))
    with pytest.raises(ValueError, match="out of range"):
        nn.cross_entropy(z, np.array([0, -1, 1, 2]))
    with pytest.raises(ValueError, match="out of range"):
        nn.cross_entropy(z, g.constant(np.array([0, 1, 7, 2])))
    with pytest.raises(gr.DTypeError, match="integer"):
        nn.cross_entropy(z, np.array([0.0, 1.0, 2.0, 1.0]))
    with pytest.raises(gr.DTypeError):
        nn.cross_entropy(z, np.array([True, False, True, True]))
    with pytest.raises(gr.ShapeError, match=r"\(4,\)"):
        nn.cross_entropy(z, np.array([0, 1, 2]))
    with pytest.raises(gr.ShapeError):
        nn.cross_entropy(z, g.vector(gr.int64, 5, name="y5"))
    with pytest.raises(gr.ShapeError):
        nn.cross_entropy(z, np.ones((4, 4), np.float32))
    with pytest.raises(gr.DTypeError):
        nn.cross_entropy(z, g.matrix(gr.float64, (4, 3), name="p64"))
    with pytest.raises(gr.DTypeError):
        nn.cross_entropy(g.matrix(gr.int64, (4, 3), name="zi"), np.array([0, 1, 2, 1]))
    with pytest.raises(ValueError, match="reduction"):
        nn.cross_entropy(z, np.array([0, 1, 2, 1]), reduction="avg")
    with pytest.raises(gr.ShapeError):
        nn.cross_entropy(g.tensor(gr.float32, (2, 3, 4), name="z3"), np.zeros((2, 3), np.int64))


def test_binary_cross_entropy():
    p = RNG.uniform(0.05, 0.95, size=(4, 3))
    t = (RNG.uniform(size=(4, 3)) > 0.5).astype(np.float64)
    ref = -(t * np.log(p) + (1 - t) * np.log(1 - p)).mean()
    np.testing.assert_allclose(evaluate(lambda P: nn.binary_cross_entropy(P, t), p), ref, rtol=1e-12)
    np.testing.assert_allclose(evaluate(nn.binary_cross_entropy, p, t), ref, rtol=1e-12)
    grad_check(nn.binary_cross_entropy, p, t, wrt=[0])
    soft = RNG.uniform(size=(4, 3))
    grad_check(nn.binary_cross_entropy, p, soft)
    # clamped: finite at p = 0 and 1
    edge = evaluate(lambda P: nn.binary_cross_entropy(P, np.array([1.0, 0.0])), np.array([0.0, 1.0]))
    assert np.isfinite(edge) and edge > 20


def test_binary_cross_entropy_of_sigmoid_grad():
    z = RNG.normal(size=6)
    t = (RNG.uniform(size=6) > 0.5).astype(np.float64)
    grad_check(lambda Z: nn.binary_cross_entropy(gr.sigmoid(Z), t), z)
    np.testing.assert_allclose(
        evaluate(lambda Z: nn.binary_cross_entropy(gr.sigmoid(Z), t), z),
        -(t * np.log(sigmoid(z)) + (1 - t) * np.log(1 - sigmoid(z))).mean(), rtol=1e-10)


def test_mse_loss():
    a, b = RNG.normal(size=(3, 4)), RNG.normal(size=(3, 4))
    np.testing.assert_allclose(evaluate(nn.mse_loss, a, b), ((a - b) ** 2).mean(), rtol=1e-12)
    np.testing.assert_allclose(evaluate(lambda A: nn.mse_loss(A, b), a), ((a - b) ** 2).mean(), rtol=1e-12)
    np.testing.assert_allclose(evaluate(lambda A: nn.mse_loss(A, b, "sum"), a), ((a - b) ** 2).sum(), rtol=1e-12)
    grad_check(nn.mse_loss, a, b)
    g = gr.Graph()
    with pytest.raises(gr.ShapeError):
        nn.mse_loss(g.matrix(gr.float32, (3, 1), name="p"), g.vector(gr.float32, 3, name="q"))


# ---------------------------------------------------------------------------------------------
# layers
# ---------------------------------------------------------------------------------------------


def test_linear_layer():
    gr.seed(0)
    g = gr.Graph()
    fc = nn.Linear(g, 50, 7, dtype=gr.float64)
    fc2 = nn.Linear(g, 7, 3, bias=False)
    assert [p.name for p in fc.parameters()] == ["linear0.weight", "linear0.bias"]
    assert [p.name for p in fc2.parameters()] == ["linear1.weight"]
    assert fc.weight.shape == (50, 7) and fc.bias.shape == (7,)
    bound = 1 / math.sqrt(50)
    assert np.abs(fc.weight.value).max() <= bound and np.abs(fc.bias.value).max() <= bound
    assert np.abs(fc.weight.value).max() > 0.8 * bound
    x = RNG.normal(size=(4, 50))
    X = leaf(g, x, "x")
    y = fc(X)
    with gr.TapeMachine(g) as m:
        m.run_all()
        np.testing.assert_allclose(y.value, x @ fc.weight.value + fc.bias.value, rtol=1e-12)
    with pytest.raises(gr.ShapeError, match=r"linear0.*\(4, 49\)"):
        fc(g.matrix(gr.float64, (4, 49), name="bad"))
    with pytest.raises(gr.DTypeError):
        fc(g.matrix(gr.float32, (4, 50), name="x32"))


def test_layer_names_are_stable_across_graphs():
    def names():
        g = gr.Graph()
        layers = [nn.Conv2d(g, 1, 4, 3), nn.BatchNorm2d(g, 4), nn.Linear(g, 4, 2), nn.LSTMCell(g, 2, 3),
                  nn.Linear(g, 3, 1, name="head")]
        return [p.name for layer in layers for p in layer.parameters() + layer.buffers()]

    a, b = names(), names()
    assert a == b
    assert a == ["conv0.weight", "conv0.bias", "batchnorm0.weight", "batchnorm0.bias",
                 "batchnorm0.running_mean", "batchnorm0.running_var", "linear0.weight", "linear0.bias",
                 "lstmcell0.weight_ih", "lstmcell0.weight_hh", "lstmcell0.bias_ih", "lstmcell0.bias_hh",
                 "head.weight", "head.bias"]
    assert len(set(a)) == len(a)


def test_conv2d_layer():
    gr.seed(1)
    g = gr.Graph()
    conv = nn.Conv2d(g, 3, 5, (3, 2), stride=(1, 2), padding=1, dtype=gr.float64)
    assert conv.weight.shape == (5, 3, 3, 2) and conv.bias.shape == (5,)
    bound = 1 / math.sqrt(3 * 3 * 2)
    assert np.abs(conv.weight.value).max() <= bound and np.abs(conv.bias.value).max() <= bound
    x = RNG.normal(size=(2, 3, 6, 5))
    y = conv(leaf(g, x, "x"))
    with gr.TapeMachine(g) as m:
        m.run_all()
        ref = conv2d_ref(x, conv.weight.value, conv.bias.value, (1, 2), 1)
        np.testing.assert_allclose(y.value, ref, rtol=1e-12, atol=1e-12)
    with pytest.raises(gr.ShapeError, match=r"conv0.*\(2, 4, 6, 5\)"):
        conv(g.tensor(gr.float64, (2, 4, 6, 5), name="wrong_channels"))
    with pytest.raises(gr.ShapeError):
        conv(g.matrix(gr.float64, (2, 3), name="flat"))


def test_batchnorm2d_layer():
    g = gr.Graph()
    bn = nn.BatchNorm2d(g, 3, dtype=gr.float64, momentum=0.5)
    np.testing.assert_array_equal(bn.weight.value, np.ones(3))
    np.testing.assert_array_equal(bn.bias.value, np.zeros(3))
    np.testing.assert_array_equal(bn.running_mean.value, np.zeros(3))
    np.testing.assert_array_equal(bn.running_var.value, np.ones(3))
    assert all(a is b for a, b in zip(bn.parameters(), [bn.weight, bn.bias], strict=True))
    assert [p.name for p in bn.parameters()] == ["batchnorm0.weight", "batchnorm0.bias"]
    assert [b.name for b in bn.buffers()] == ["batchnorm0.running_mean", "batchnorm0.running_var"]
    x = RNG.normal(2.0, 3.0, size=(4, 3, 2, 2))
    y = bn(leaf(g, x, "x"))
    bn.eval()
    y_eval = bn(leaf(g, x, "x2"))
    assert y_eval.shape == x.shape
    with gr.TapeMachine(g) as m:
        m.run_all()
        mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
        np.testing.assert_allclose(y.value, (x - mean.reshape(1, 3, 1, 1)) / np.sqrt(var.reshape(1, 3, 1, 1) + 1e-5),
                                   rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(bn.running_mean.value, 0.5 * mean, rtol=1e-12)
        np.testing.assert_allclose(bn.running_var.value, 0.5 + 0.5 * var * 16 / 15, rtol=1e-12)
    with pytest.raises(gr.ShapeError, match="batchnorm0"):
        bn(g.tensor(gr.float64, (4, 2, 2, 2), name="bad"))


def _lstm_ref(x, h, c, Wih, Whh, bih, bhh):
    z = x @ Wih + bih + h @ Whh + bhh
    H = h.shape[-1]
    i, f, gg, o = sigmoid(z[:, :H]), sigmoid(z[:, H:2 * H]), np.tanh(z[:, 2 * H:3 * H]), sigmoid(z[:, 3 * H:])
    c2 = f * c + i * gg
    return o * np.tanh(c2), c2


def test_lstm_cell_forward():
    gr.seed(2)
    g = gr.Graph()
    cell = nn.LSTMCell(g, 4, 3, dtype=gr.float64)
    assert cell.weight_ih.shape == (4, 12) and cell.weight_hh.shape == (3, 12)
    assert cell.bias_ih.shape == (12,) and cell.bias_hh.shape == (12,)
    bound = 1 / math.sqrt(3)
    assert all(np.abs(p.value).max() <= bound for p in cell.parameters())
    x1, x2 = RNG.normal(size=(2, 4)), RNG.normal(size=(2, 4))
    X1, X2 = leaf(g, x1, "x1"), leaf(g, x2, "x2")
    h1, c1 = cell(X1)
    h2, c2 = cell(X2, (h1, c1))
    with gr.TapeMachine(g) as m:
        m.run_all()
        P = [p.value for p in cell.parameters()]
        zeros = np.zeros((2, 3))
        rh1, rc1 = _lstm_ref(x1, zeros, zeros, *P)
        rh2, rc2 = _lstm_ref(x2, rh1, rc1, *P)
        np.testing.assert_allclose(h1.value, rh1, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(c2.value, rc2, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(h2.value, rh2, rtol=1e-12, atol=1e-14)
    with pytest.raises(gr.ShapeError, match="lstmcell0"):
        cell(g.matrix(gr.float64, (2, 5), name="bad"))
    with pytest.raises(gr.ShapeError):
        cell(X1, (g.matrix(gr.float64, (2, 4), name="h_bad"), c1))


def test_lstm_cell_grad():
    gr.seed(3)
    x, h, c = RNG.normal(size=(2, 3)), RNG.normal(size=(2, 2)), RNG.normal(size=(2, 2))
    Wih, Whh = RNG.normal(size=(3, 8)) * 0.5, RNG.normal(size=(2, 8)) * 0.5
    bih, bhh = RNG.normal(size=8) * 0.1, RNG.normal(size=8) * 0.1

    def build(X, H, Cc, A, B, b1, b2):
        cell = nn.LSTMCell(X.graph, 3, 2, dtype=gr.float64)
        cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh = A, B, b1, b2
        h2, c2 = cell(X, (H, Cc))
        return h2 * 2.0 + c2

    grad_check(build, x, h, c, Wih, Whh, bih, bhh)


def test_layer_constructor_errors():
    g = gr.Graph()
    with pytest.raises(ValueError):
        nn.Linear(g, 0, 3)
    with pytest.raises(ValueError):
        nn.Conv2d(g, 3, 4, 0)
    with pytest.raises(TypeError):
        nn.Linear("not a graph", 3, 4)
    with pytest.raises(gr.DTypeError):
        nn.Linear(g, 3, 4, dtype=gr.int64)


def test_functional_argument_errors():
    g = gr.Graph()
    x = g.tensor(gr.float32, (2, 3, 5, 5), name="x")
    w = g.tensor(gr.float32, (4, 2, 3, 3), name="w")
    with pytest.raises(gr.ShapeError, match=r"3 channels.*\(4, 2, 3, 3\)"):
        nn.conv2d(x, w)
    with pytest.raises(gr.ShapeError):
        nn.conv2d(g.matrix(gr.float32, (2, 3), name="flat"), w)
    with pytest.raises(gr.ShapeError):
        nn.conv2d(x, g.tensor(gr.float32, (4, 3, 7, 7), name="big"))
    with pytest.raises(gr.ShapeError):
        nn.conv2d(x, g.tensor(gr.float32, (4, 3, 3, 3), name="w3"), g.vector(gr.float32, 3, name="b3"))
    with pytest.raises(ValueError):
        nn.conv2d(x, g.tensor(gr.float32, (4, 3, 3, 3), name="w4"), stride=0)
    with pytest.raises(gr.ShapeError):
        nn.max_pool2d(x, 6)
    with pytest.raises(gr.ShapeError):
        nn.avg_pool2d(g.matrix(gr.float32, (5, 5), name="m"), 2)
    with pytest.raises(TypeError):
        nn.max_pool2d(x, (2, 2, 2))
    with pytest.raises(ValueError):
        nn.max_pool2d(x, 2, padding=2)


def test_error_message_names_user_location():
    g = gr.Graph()
    x = g.tensor(gr.float32, (2, 3, 5, 5), name="x")
    w = g.tensor(gr.float32, (4, 2, 3, 3), name="w")
    with pytest.raises(gr.ShapeError, match=r"test_nn\.py:\d+"):
        nn.conv2d(x, w)


def test_conv2d_against_torch():
    torch = pytest.importorskip("torch")
    x, w, b = RNG.normal(size=(2, 3, 9, 7)), RNG.normal(size=(4, 3, 3, 2)), RNG.normal(size=4)
    got = evaluate(lambda X, Wt, B: nn.conv2d(X, Wt, B, stride=(2, 1), padding=(1, 1), dilation=(2, 1)), x, w, b)
    ref = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b), stride=(2, 1),
                                      padding=(1, 1), dilation=(2, 1)).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-10)


def test_cross_entropy_out_of_range_labels_at_run_time():
    g = gr.Graph()
    z = g.matrix(gr.float64, (2, 3), name="z")
    y = g.vector(gr.int64, 2, name="y")
    loss = nn.cross_entropy(z, y)
    z.let(np.zeros((2, 3)))
    y.let(np.array([0, 5]))
    with gr.TapeMachine(g) as m:
        with pytest.raises(ValueError, match="out of"):
            m.run_all()
    assert loss.shape == ()
