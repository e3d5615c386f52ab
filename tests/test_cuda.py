"""The GPU suite: the CPU suite's ops, parametrized by device, with values and gradients of
``device="cuda"`` machines compared against the CPU machine (float32 and float64).

Without a usable CUDA device every test here skips, and the skip reason printed by pytest
(``-rs``) is the probe's reason (no driver library, no device, NVRTC missing). The one test
that always runs checks exactly that: without a GPU, ``device="cuda"`` is a DeviceError.
"""

from __future__ import annotations

import numpy as np
import pytest

import gorgon_rs as gr
from test_ops import AWAY, ANY, BINARY, MATMUL_SHAPES, POS, REDUCE, SHAPES, UNARY

HAVE_GPU = gr.cuda.is_available()
REASON = "" if HAVE_GPU else f"no usable CUDA device: {gr.cuda.unavailable_reason()}"
gpu = pytest.mark.skipif(not HAVE_GPU, reason=REASON)

TOL = {np.float32: (2e-4, 1e-5), np.float64: (1e-10, 1e-12)}


def test_without_a_gpu_cuda_is_a_device_error_with_the_reason():
    if HAVE_GPU:
        with pytest.raises(gr.DeviceError, match="not available"):
            gr.TapeMachine(gr.Graph(), device=f"cuda:{gr.cuda.device_count()}")
        return
    assert gr.cuda.device_count() == 0
    reason = gr.cuda.unavailable_reason()
    assert reason
    for dev in ("cuda", "cuda:0"):
        with pytest.raises(gr.DeviceError, match="not available") as ei:
            gr.TapeMachine(gr.Graph(), device=dev)
        assert reason in str(ei.value)
        with pytest.raises(gr.DeviceError):
            gr.LispMachine(gr.Graph(), device=dev)
        g = gr.Graph()
        x = g.scalar(gr.float64)
        with pytest.raises(gr.DeviceError):
            gr.function(x, x * 2, device=dev)
    with pytest.raises(gr.DeviceError):
        gr.cuda.memory_info()


def run_both(build, arrays, dtype, grads=True, seed=0):
    """Builds ``build(*inputs)`` (and, with ``grads``, the gradients of sum(out * R)), runs it
    on the CPU and on the GPU, and returns both lists of values."""
    rng = np.random.default_rng(seed)
    g = gr.Graph()
    nodes = [g.tensor(dtype, np.shape(a), name=f"x{i}", value=np.asarray(a, dtype=dtype)) for i, a in enumerate(arrays)]
    out = build(*nodes)
    outs = [out]
    if grads and out.dtype in (gr.float32, gr.float64):
        cost = gr.sum(out * g.constant(rng.uniform(0.5, 1.5, out.shape).astype(dtype)))
        outs += gr.grad(cost, nodes)
    results = []
    for dev in ("cpu", "cuda"):
        with gr.TapeMachine(g, device=dev) as m:
            m.run_all()
            results.append([np.array(o.value) for o in outs])
    return results


def assert_same(cpu, gpu_vals, dtype, what=""):
    rtol, atol = TOL[dtype]
    assert len(cpu) == len(gpu_vals)
    for k, (a, b) in enumerate(zip(cpu, gpu_vals)):
        assert a.shape == b.shape and a.dtype == b.dtype, f"{what} output {k}: {a.shape} {a.dtype} vs {b.shape} {b.dtype}"
        np.testing.assert_allclose(b, a, rtol=rtol, atol=atol, err_msg=f"{what} output {k} (0 = value, then gradients)")


DTYPES = [np.float32, np.float64]


@gpu
@pytest.mark.parametrize("name,op,ref,x,diff", UNARY, ids=[u[0] for u in UNARY])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_unary(name, op, ref, x, diff, dtype):
    cpu, dev = run_both(op, [x], dtype, grads=diff)
    assert_same(cpu, dev, dtype, name)


@gpu
@pytest.mark.parametrize("name,op,ref", BINARY, ids=[b[0] for b in BINARY])
@pytest.mark.parametrize("sa,sb", SHAPES, ids=[f"{a}x{b}" for a, b in SHAPES])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_binary(name, op, ref, sa, sb, dtype):
    rng = np.random.default_rng(3)
    a, b = rng.uniform(0.5, 2.0, sa), rng.uniform(0.5, 2.0, sb)
    cpu, dev = run_both(op, [a, b], dtype)
    assert_same(cpu, dev, dtype, name)


@gpu
@pytest.mark.parametrize("name,op,ref", REDUCE, ids=[r[0] for r in REDUCE])
@pytest.mark.parametrize("axis", [None, 0, 1, -1, (0, 2)], ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_reductions(name, op, ref, axis, dtype):
    x = np.random.default_rng(4).uniform(0.5, 1.5, (3, 4, 5))
    cpu, dev = run_both(lambda t: op(t, axis=axis), [x], dtype)
    assert_same(cpu, dev, dtype, name)


@gpu
@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES, ids=[f"{a}@{b}" for a, b in MATMUL_SHAPES])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_matmul(sa, sb, dtype):
    rng = np.random.default_rng(8)
    cpu, dev = run_both(gr.matmul, [rng.normal(size=sa), rng.normal(size=sb)], dtype)
    assert_same(cpu, dev, dtype, "matmul")


@gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_large_matmul_through_cublas(dtype):
    rng = np.random.default_rng(9)
    a, b = rng.normal(size=(130, 257)), rng.normal(size=(257, 65))
    cpu, dev = run_both(lambda x, y: gr.matmul(gr.transpose(gr.transpose(x)), y), [a, b], dtype)
    rtol = 1e-3 if dtype == np.float32 else 1e-10
    for c, d in zip(cpu, dev):
        np.testing.assert_allclose(d, c, rtol=rtol, atol=rtol)


SHAPE_OPS = [
    ("transpose", lambda x: gr.transpose(x, (2, 0, 1))),
    ("reshape", lambda x: gr.reshape(x, (4, 6))),
    ("concat", lambda x: gr.concat([x, x * 2], axis=1)),
    ("stack", lambda x: gr.stack([x, gr.exp(x)], axis=0)),
    ("squeeze_expand", lambda x: gr.squeeze(gr.expand_dims(x, 1), 1)),
    ("broadcast_to", lambda x: gr.broadcast_to(gr.sum(x, axis=0, keepdims=True), (3, 2, 4))),
    ("slice", lambda x: x[1:, ::2, 1]),
    ("take", lambda x: gr.take(x, np.array([2, 0, 2, 1]), axis=2)),
    ("softmax", lambda x: gr.softmax(x, axis=-1)),
    ("log_softmax", lambda x: gr.log_softmax(x, axis=1)),
    ("norm", lambda x: gr.norm(x)),
    ("where", lambda x: gr.where(x > 0.2, x * x, -x)),
    ("tensordot", lambda x: gr.tensordot(x, gr.transpose(x, (1, 0, 2)), axes=([0, 2], [1, 2]))),
]


@gpu
@pytest.mark.parametrize("name,build", SHAPE_OPS, ids=[s[0] for s in SHAPE_OPS])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_shape_and_index_ops(name, build, dtype):
    x = np.random.default_rng(5).uniform(-1.0, 1.0, (3, 2, 4))
    cpu, dev = run_both(build, [x], dtype)
    assert_same(cpu, dev, dtype, name)


@gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_argmax_cast_and_integer_ops(dtype):
    x = np.random.default_rng(6).normal(size=(4, 5))
    cpu, dev = run_both(lambda t: gr.argmax(t, axis=1), [x], dtype, grads=False)
    np.testing.assert_array_equal(dev[0], cpu[0])
    cpu, dev = run_both(lambda t: gr.cast(gr.floor(t * 3), gr.int64) + 1, [x], dtype, grads=False)
    np.testing.assert_array_equal(dev[0], cpu[0])


NN = [
    ("conv2d", lambda x, w: gr.nn.conv2d(x, w, stride=1, padding=1)),
    ("conv2d_stride2", lambda x, w: gr.nn.conv2d(x, w, stride=2, padding=0)),
    ("max_pool2d", lambda x, w: gr.nn.max_pool2d(gr.nn.conv2d(x, w, padding=1), 2)),
    ("avg_pool2d", lambda x, w: gr.nn.avg_pool2d(gr.nn.conv2d(x, w, padding=1), 2)),
]


@gpu
@pytest.mark.parametrize("name,build", NN, ids=[n[0] for n in NN])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_conv_and_pooling(name, build, dtype):
    rng = np.random.default_rng(7)
    x, w = rng.normal(size=(2, 3, 6, 6)), rng.normal(size=(4, 3, 3, 3))
    cpu, dev = run_both(build, [x, w], dtype)
    rtol = 1e-3 if dtype == np.float32 else 1e-10
    for c, d in zip(cpu, dev):
        np.testing.assert_allclose(d, c, rtol=rtol, atol=rtol)


@gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_cross_entropy_and_losses(dtype):
    rng = np.random.default_rng(11)
    logits, labels = rng.normal(size=(8, 5)), rng.integers(0, 5, 8)
    cpu, dev = run_both(lambda z: gr.nn.cross_entropy(z, labels), [logits], dtype)
    assert_same(cpu, dev, dtype, "cross_entropy")
    t = rng.uniform(0.1, 0.9, (8, 5))
    cpu, dev = run_both(lambda z: gr.nn.binary_cross_entropy(gr.sigmoid(z), t), [logits], dtype)
    assert_same(cpu, dev, dtype, "binary_cross_entropy")


def _mlp(dtype, device, steps=5, solver="adam"):
    """A few training steps of a small MLP; returns the loss history and final weights."""
    gr.seed(0)
    rng = np.random.default_rng(12)
    X, y = rng.normal(size=(32, 10)).astype(dtype), rng.integers(0, 3, 32)
    g = gr.Graph()
    x = g.tensor(dtype, (32, 10), name="x", value=X)
    l1, l2 = gr.nn.Linear(g, 10, 16, dtype=dtype), gr.nn.Linear(g, 16, 3, dtype=dtype)
    loss = gr.nn.cross_entropy(l2(gr.relu(l1(x))), y)
    params = l1.parameters() + l2.parameters()
    gr.grad(loss, params)
    opt = gr.solvers.Adam(lr=0.01) if solver == "adam" else gr.solvers.SGD(lr=0.1, momentum=0.9)
    hist = []
    with gr.TapeMachine(g, device=device) as m:
        for _ in range(steps):
            m.run_all()
            hist.append(float(loss.value))
            opt.step(params)
    return hist, [np.array(p.value) for p in params]


@gpu
@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_mlp_training_matches_the_cpu(solver):
    h_cpu, w_cpu = _mlp(np.float64, "cpu", solver=solver)
    h_gpu, w_gpu = _mlp(np.float64, "cuda", solver=solver)
    np.testing.assert_allclose(h_gpu, h_cpu, rtol=1e-9)
    for a, b in zip(w_cpu, w_gpu):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)
    assert h_gpu[-1] < h_gpu[0]


@gpu
def test_lisp_machine_backprop_on_the_gpu():
    rng = np.random.default_rng(13)
    res = []
    for dev in ("cpu", "cuda"):
        g = gr.Graph()
        w = g.matrix(gr.float64, (3, 2), name="w", value=rng.normal(size=(3, 2)) * 0 + np.arange(6).reshape(3, 2) / 7)
        x = g.matrix(gr.float64, (4, 3), name="x", value=np.linspace(-1, 1, 12).reshape(4, 3))
        cost = gr.mean(gr.tanh(x @ w))
        with gr.LispMachine(g, device=dev) as m:
            m.run_all()
            res.append((float(cost.value), np.array(w.grad)))
    assert res[1][0] == pytest.approx(res[0][0], rel=1e-12)
    np.testing.assert_allclose(res[1][1], res[0][1], rtol=1e-10)


@gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_function_on_the_gpu(dtype):
    g = gr.Graph()
    a, b, c = (g.vector(dtype, 1000, name=n) for n in "abc")
    f = gr.function([a, b, c], gr.tanh(a * b + c), device="cuda")
    rng = np.random.default_rng(14)
    for _ in range(3):
        xs = [rng.normal(size=1000).astype(dtype) for _ in range(3)]
        np.testing.assert_allclose(f(*xs), np.tanh(xs[0] * xs[1] + xs[2]), rtol=TOL[dtype][0] * 10, atol=1e-6)
    f.close()


@gpu
def test_transfers_happen_only_at_let_and_value():
    g = gr.Graph()
    x = g.matrix(gr.float32, (64, 64), name="x", value=np.ones((64, 64), np.float32))
    w = g.matrix(gr.float32, (64, 64), name="w", value=np.full((64, 64), 0.5, np.float32))
    y = gr.sum(gr.relu(x @ w) * 2)
    with gr.TapeMachine(g, device="cuda") as m:
        assert m.device_name != "cpu"
        m.run_all()
        up0, down0 = m.transfers()
        for _ in range(5):
            m.run_all()  # nothing rebound: no copies
        assert m.transfers() == (up0, down0)
        assert float(y.value) == pytest.approx(64 * 64 * 32 * 2)
        up1, down1 = m.transfers()
        assert up1 == up0 and down1 == down0 + 1
        x.let(np.full((64, 64), 2.0, np.float32))
        m.run_all()
        assert m.transfers()[0] == up0 + 1  # only the rebound leaf goes up
        assert float(y.value) == pytest.approx(64 * 64 * 64 * 2)


@gpu
def test_nan_guard_and_watch_on_the_gpu():
    g = gr.Graph()
    x = g.vector(gr.float64, 3, name="x", value=np.array([1.0, -1.0, 2.0]))
    lx = gr.log(x)
    y = gr.sum(lx)
    with gr.TapeMachine(g, device="cuda", watch=[lx]) as m:
        x.let(np.array([1.0, 2.0, 3.0]))
        m.run_all()
        np.testing.assert_allclose(m.watched[lx][0], np.log([1.0, 2.0, 3.0]))
    x.let(np.array([1.0, -1.0, 2.0]))
    with gr.TapeMachine(g, device="cuda", nan_guard=True) as m:
        with pytest.raises(gr.NumericError, match="log"):
            m.run_all()
    del y


@gpu
def test_closed_gpu_machine_raises_and_close_is_idempotent():
    g = gr.Graph()
    x = g.scalar(gr.float32, value=2.0)
    y = x * 3
    m = gr.TapeMachine(g, device="cuda")
    m.run_all()
    assert float(y.value) == 6.0
    m.close()
    m.close()
    assert m.closed
    with pytest.raises(gr.GraphError):
        m.run_all()


@gpu
def test_a_thousand_gpu_machines_free_their_memory():
    """Create, run and close 1,000 machines: cuMemGetInfo's free memory returns to its
    starting value within 1 MiB. A machine held open throughout keeps the context alive so
    the readings compare like with like."""
    g = gr.Graph()
    x = g.matrix(gr.float32, (256, 256), name="x", value=np.ones((256, 256), np.float32))
    w = g.matrix(gr.float32, (256, 256), name="w", value=np.full((256, 256), 0.01, np.float32))
    loss = gr.mean(gr.tanh(x @ w))
    gr.grad(loss, [w])
    keep = gr.TapeMachine(g, device="cuda")
    keep.run_all()

    def cycle(k):
        if k % 2:
            with gr.TapeMachine(g, device="cuda") as m:
                m.run_all()
        else:
            m = gr.TapeMachine(g, device="cuda")
            m.run_all()
            del m  # dropped without close(): freed by Drop

    for k in range(5):
        cycle(k)
    free0, total = gr.cuda.memory_info()
    for k in range(1000):
        cycle(k)
    free1, _ = gr.cuda.memory_info()
    keep.close()
    assert abs(free1 - free0) <= 1 << 20, f"free device memory {free0} -> {free1} of {total} bytes after 1,000 machines"


FUSED = [
    ("tanh_fma", lambda a, b, c: gr.tanh(a * b + c)),
    ("scalar_and_where", lambda a, b, c: gr.where(a > 0.1, gr.exp(-a * 2.0) + b, gr.sigmoid(c) * 3.0)),
    ("clip_pow_leaky", lambda a, b, c: gr.clip(gr.pow(gr.abs(a) + 0.5, b), -1.0, 2.5) + gr.leaky_relu(c, 0.1)),
    ("mish_softplus", lambda a, b, c: gr.mish(a) * gr.softplus(b) - gr.square(c) / (1.0 + gr.abs(a))),
]


@gpu
@pytest.mark.parametrize("name,build", FUSED, ids=[f[0] for f in FUSED])
@pytest.mark.parametrize("n", [1, 7, 1001, 4096])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_fused_kernels_match_the_cpu(name, build, n, dtype):
    """Elementwise trees compiled for outputs only are fused into one generated kernel
    (vector loads plus a scalar tail: odd lengths check the tail)."""
    rng = np.random.default_rng(15)
    vals = [rng.uniform(-1.5, 1.5, n).astype(dtype) for _ in range(3)]
    res = []
    for dev in ("cpu", "cuda"):
        g = gr.Graph()
        a, b, c = (g.vector(dtype, n, name=k, value=v) for k, v in zip("abc", vals))
        y = build(a, b, c)
        with gr.TapeMachine(g, device=dev, outputs=[y]) as m:
            if dev == "cuda" and n > 1:  # one-element outputs are not worth a fused kernel
                assert any("fused" in line for line in m.program()), m.program()
            m.run_all()
            res.append(np.array(y.value))
    rtol, atol = TOL[dtype]
    np.testing.assert_allclose(res[1], res[0], rtol=rtol * 10, atol=atol * 10)


@gpu
def test_solver_steps_stay_on_the_device_and_values_come_home():
    """SGD on a GPU machine updates the device copies: no upload of the weights on the next
    run; ``.value``, another (CPU) machine and ``close`` all see the updated weights."""
    rng = np.random.default_rng(16)
    g = gr.Graph()
    x = g.matrix(gr.float64, (16, 8), name="x", value=rng.normal(size=(16, 8)))
    w = g.matrix(gr.float64, (8, 4), name="w", value=rng.normal(size=(8, 4)))
    b = g.vector(gr.float64, 4, name="b", value=np.zeros(4))
    loss = gr.mean(gr.square(gr.tanh(x @ w + b) - 0.5))
    gr.grad(loss, [w, b])
    opt = gr.solvers.SGD(lr=0.5)
    w0 = np.array(w.value)
    m = gr.TapeMachine(g, device="cuda")
    m.run_all()
    gw = np.array(w.grad)
    opt.step([w, b])
    m.run_all()
    up0 = m.transfers()[0]
    opt.step([w, b])
    m.run_all()
    assert m.transfers()[0] == up0, "a device-side step must not upload the weights again"
    gpu_loss = float(loss.value)
    # .value fetches the device copy (one step by hand checks the first update)
    w_now = np.array(w.value)
    assert not np.allclose(w_now, w0)
    # a CPU machine on the same graph runs on the updated weights
    with gr.TapeMachine(g) as cpu:
        cpu.run_all()
        assert float(loss.value) == pytest.approx(gpu_loss, rel=1e-12)
    # after a host-side let, the GPU machine uploads the new value
    w.let(w0)
    b.let(np.zeros(4))
    m.run_all()
    assert m.transfers()[0] == up0 + 2
    opt2 = gr.solvers.SGD(lr=0.5)
    opt2.step([w, b])
    m.close()  # writes the device copy back
    np.testing.assert_allclose(np.array(w.value), w0 - 0.5 * gw, rtol=1e-12)


@gpu
@pytest.mark.parametrize("make", [
    lambda: gr.solvers.SGD(lr=0.1, momentum=0.9, nesterov=True),
    lambda: gr.solvers.Adam(lr=0.01),
    lambda: gr.solvers.AdamW(lr=0.01, weight_decay=0.1),
    lambda: gr.solvers.RMSProp(lr=0.01),
    lambda: gr.solvers.AdaGrad(lr=0.1),
    lambda: gr.solvers.SGD(lr=0.1, clip=0.05, l2=1e-3, batch_size=4),
], ids=["sgd_nesterov", "adam", "adamw", "rmsprop", "adagrad", "sgd_prep"])
def test_every_solver_steps_on_the_device_like_the_cpu(make):
    rng = np.random.default_rng(17)
    X, W = rng.normal(size=(16, 8)), rng.normal(size=(8, 4))
    out = []
    for dev in ("cpu", "cuda"):
        g = gr.Graph()
        x = g.matrix(gr.float64, (16, 8), name="x", value=X)
        w = g.matrix(gr.float64, (8, 4), name="w", value=W)
        loss = gr.mean(gr.square(gr.tanh(x @ w) - 0.5))
        gr.grad(loss, [w])
        opt = make()
        with gr.TapeMachine(g, device=dev) as m:
            for _ in range(4):
                m.run_all()
                opt.step([w])
        out.append((np.array(w.value), {k: np.array(v) for k, v in opt.state_dict().items()}))
    np.testing.assert_allclose(out[1][0], out[0][0], rtol=1e-10, atol=1e-12)
    assert out[1][1].keys() == out[0][1].keys()
    for k in out[0][1]:
        np.testing.assert_allclose(out[1][1][k], out[0][1][k], rtol=1e-10, atol=1e-12, err_msg=k)
