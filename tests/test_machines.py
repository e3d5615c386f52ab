"""Machines and compiled functions (API.md "Machines"): options, program listings, closing,
LispMachine vs TapeMachine + grad, threads, and custom ops."""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

import gorgon_rs as gr


def here() -> str:
    f = sys._getframe(1)
    return f"test_machines.py:{f.f_lineno + 1}"


def small_graph():
    g = gr.Graph()
    x = g.vector(gr.float64, 3, name="x", value=[1.0, 2.0, 3.0])
    w = g.vector(gr.float64, 3, name="w", value=[0.5, -1.0, 2.0])
    h = gr.tanh(x * w)
    h.name = "h"
    cost = gr.sum(h * h)
    cost.name = "cost"
    return g, x, w, h, cost


def test_watch_records_each_run():
    g, x, w, h, cost = small_graph()
    with gr.TapeMachine(g, watch=[h, x]) as m:
        m.run_all()
        x.let([0.0, 0.0, 0.0])
        m.run_all()
        rec = m.watched
    assert set(rec) == {h, x}
    assert len(rec[h]) == 2 and len(rec[x]) == 2
    np.testing.assert_allclose(rec[h][0], np.tanh(np.array([0.5, -2.0, 6.0])))
    np.testing.assert_array_equal(rec[h][1], [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(rec[x][0], [1.0, 2.0, 3.0])


def test_watch_with_outputs_compiles_watched_nodes():
    g, x, w, h, cost = small_graph()
    other = gr.exp(x)
    with gr.TapeMachine(g, watch=[other], outputs=[cost]) as m:
        m.run_all()
        np.testing.assert_allclose(m.watched[other][0], np.exp([1.0, 2.0, 3.0]))


def test_nan_guard():
    g = gr.Graph()
    x = g.vector(gr.float64, 2, name="x", value=[1.0, 0.0])
    loc = here()
    bad = gr.log(x) * 0.0
    bad.name = "zero_times_inf"
    with gr.TapeMachine(g, nan_guard=True) as m:
        with pytest.raises(gr.NumericError) as ei:
            m.run_all()
    msg = str(ei.value)
    assert loc in msg and ("zero_times_inf" in msg or "log" in msg), msg
    with gr.TapeMachine(g) as m:  # without the guard the run completes
        m.run_all()
        assert np.isnan(bad.value[1])


def test_trace_and_program():
    g, x, w, h, cost = small_graph()
    gr.grad(cost, [w])
    with gr.TapeMachine(g, trace=True) as m:
        prog = m.program()
        assert isinstance(prog, list) and all(isinstance(p, str) for p in prog)
        assert any("tanh" in p for p in prog)
        m.run_all()
        assert len(m.trace) > 0 and all(isinstance(t, str) for t in m.trace)
    with gr.TapeMachine(g) as m:
        m.run_all()
        assert m.trace == []


def test_function_single_and_list_outputs():
    g = gr.Graph()
    x = g.vector(gr.float32, 3, name="x")
    y = g.scalar(gr.float32, name="y")
    s = x * y
    t = gr.sum(s)
    f1 = gr.function([x, y], t)
    f2 = gr.function(inputs=[x, y], outputs=[s, t])
    r = f1(np.array([1, 2, 3], np.float32), 2.0)
    assert isinstance(r, np.ndarray) and r.dtype == np.float32 and float(r) == 12.0
    r2 = f2([1, 2, 3], 3)  # lists and ints converted with same_kind rules
    assert isinstance(r2, list) and len(r2) == 2
    np.testing.assert_array_equal(r2[0], [3, 6, 9])
    assert float(r2[1]) == 18.0
    # results are new arrays each call
    a, b = f1([1, 1, 1], 1.0), f1([2, 2, 2], 1.0)
    assert float(a) == 3.0 and float(b) == 6.0
    with pytest.raises(gr.DTypeError):
        f1(np.array([1 + 1j, 0, 0]), 1.0)
    with pytest.raises(gr.ShapeError):
        f1(np.zeros(4, np.float32), 1.0)
    with pytest.raises(TypeError):
        f1(np.zeros(3, np.float32))


def test_function_compiles_only_what_outputs_need():
    g = gr.Graph()
    x = g.scalar(gr.float64, name="x")
    unbound = g.scalar(gr.float64, name="unbound")
    y = x * 2.0
    _ = unbound + 1.0
    f = gr.function([x], y)
    assert float(f(4.0)) == 8.0
    with pytest.raises(gr.GraphError, match="unbound"):
        gr.TapeMachine(g).run_all()


def random_graph(seed, g):
    rng = np.random.default_rng(seed)
    leaves = [g.vector(gr.float64, 4, name=f"v{i}", value=rng.uniform(0.5, 1.5, 4)) for i in range(3)]
    nodes = list(leaves)
    unary = [gr.tanh, gr.sigmoid, gr.exp, lambda n: gr.log(n * n + 1.0), gr.softplus, gr.sin]
    binary = [gr.add, gr.sub, gr.mul, lambda a, b: a / (b * b + 1.0), gr.maximum]
    for _ in range(8):
        if rng.random() < 0.5:
            n = unary[rng.integers(len(unary))](nodes[rng.integers(len(nodes))])
        else:
            a, b = rng.integers(len(nodes), size=2)
            n = binary[rng.integers(len(binary))](nodes[a], nodes[b])
        nodes.append(n)
    cost = gr.sum(nodes[-1] * nodes[-2]) + gr.mean(nodes[-3])
    return leaves, cost


@pytest.mark.parametrize("seed", range(6))
def test_lisp_machine_equals_tape_machine_with_grad(seed):
    g1 = gr.Graph()
    leaves1, cost1 = random_graph(seed, g1)
    grads1 = gr.grad(cost1, leaves1, allow_unused=True)
    with gr.TapeMachine(g1) as m:
        m.run_all()
        want_cost = cost1.value
        want = [d.value for d in grads1]
        via_grad = [l.grad for l in leaves1]
    g2 = gr.Graph()
    leaves2, cost2 = random_graph(seed, g2)
    m2 = gr.LispMachine(g2, backprop=True)
    m2.run_all()
    np.testing.assert_allclose(cost2.value, want_cost, rtol=1e-12)
    for l2, w, v in zip(leaves2, want, via_grad):
        got = l2.grad
        if got is None:  # the cost does not depend on this leaf
            np.testing.assert_array_equal(w, 0.0)
            continue
        np.testing.assert_allclose(got, w, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(v, w, rtol=1e-12)
    m2.close()


def test_lisp_machine_needs_one_cost():
    g = gr.Graph()
    x = g.vector(gr.float64, 2, name="x", value=[1.0, 2.0])
    _ = gr.sum(x)
    _ = gr.mean(x)
    with pytest.raises(gr.GraphError, match="cost"):
        gr.LispMachine(g)
    h = gr.Graph()
    y = h.vector(gr.float64, 2, value=[1.0, 2.0])
    _ = y * 2.0
    with pytest.raises(gr.GraphError):
        gr.LispMachine(h)
    m = gr.LispMachine(h, backprop=False)
    m.run_all()


def test_close_frees_and_later_run_raises():
    g, x, w, h, cost = small_graph()
    m = gr.TapeMachine(g)
    m.run_all()
    held = cost.value
    m.close()
    m.close()  # idempotent
    assert m.closed
    with pytest.raises(gr.GraphError):
        m.run_all()
    np.testing.assert_array_equal(x.value, [1.0, 2.0, 3.0])
    assert held.shape == ()
    with pytest.raises(gr.GraphError):
        cost.value


def test_context_manager_and_reset():
    g, x, w, h, cost = small_graph()
    with gr.TapeMachine(g) as m:
        m.run_all()
        v = float(cost.value)
        m.reset()
        with pytest.raises(gr.GraphError):
            cost.value  # reset forgets results ...
        np.testing.assert_array_equal(w.value, [0.5, -1.0, 2.0])  # ... but keeps bound values
        m.run_all()
        assert float(cost.value) == v
    assert m.closed


def test_dropping_machine_frees_it():
    g, x, w, h, cost = small_graph()
    m = gr.TapeMachine(g)
    m.run_all()
    del m  # reference counting frees it at once: no garbage-collector call is needed
    with pytest.raises(gr.GraphError):
        cost.value


def test_devices():
    g, *_ = small_graph()
    if not gr.cuda.is_available():
        assert gr.cuda.device_count() == 0
        for dev in ("cuda", "cuda:0", "cuda:3"):
            with pytest.raises(gr.DeviceError) as ei:
                gr.TapeMachine(g, device=dev)
            assert gr.cuda.unavailable_reason() in str(ei.value)
    with pytest.raises(ValueError):
        gr.TapeMachine(g, device="tpu")
    with gr.TapeMachine(g, device="cpu") as m:
        m.run_all()


def test_threads_two_machines_equal_results():
    g = gr.Graph()
    x = g.matrix(gr.float64, (64, 64), name="x", value=np.random.default_rng(0).normal(size=(64, 64)))
    y = gr.sum(gr.tanh(x @ x) * 0.5, axis=0)
    m1, m2 = gr.TapeMachine(g), gr.TapeMachine(g)
    m1.run_all()
    want = y.value
    errors, results = [], []
    barrier = threading.Barrier(8)

    def work(k):
        try:
            m = m1 if k % 2 else m2
            barrier.wait()
            for _ in range(20):
                m.run_all()
                results.append(y.value)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "deadlock"
    assert not errors, errors
    assert len(results) == 160
    for r in results:
        np.testing.assert_allclose(r, want, rtol=1e-12)
    m1.close()
    m2.close()


def test_function_calls_from_threads_do_not_interleave():
    g = gr.Graph()
    x = g.vector(gr.float64, 3, name="x")
    y = g.scalar(gr.float64, name="y")
    f = gr.function([x, y], gr.sum(x * y))
    errors = []

    def work(k):
        try:
            for i in range(50):
                a = np.full(3, float(k))
                r = f(a, float(i))
                assert float(r) == 3.0 * k * i, (k, i, float(r))
        except Exception as e:  # pragma: no cover
            errors.append(e)

    ts = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in ts), "deadlock"
    assert not errors, errors[:3]


RACE = """
import threading, numpy as np, gorgon_rs as gr
g = gr.Graph()
w = g.matrix(gr.float64, (100, 100), name="w", value=np.random.default_rng(0).normal(size=(100, 100)) * 0.01)
cost = gr.sum(gr.tanh(w @ w))
gr.grad(cost, [w])
m = gr.TapeMachine(g)
m.run_all()
opt = gr.solvers.SGD(lr=1e-3)
stop = []
def runner():
    while not stop:
        m.run_all()
        w.value; w.grad; cost.value
t = threading.Thread(target=runner)
t.start()
for i in range(200):
    opt.step([w])
    float(cost.value)
stop.append(1)
t.join()
print("ok")
"""


def test_solver_steps_values_and_runs_in_threads_do_not_deadlock():
    import subprocess
    r = subprocess.run([sys.executable, "-c", RACE], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_run_releases_the_gil():
    g = gr.Graph()
    x = g.matrix(gr.float64, (300, 300), value=np.ones((300, 300)) * 0.001)
    y = x
    for _ in range(8):
        y = gr.tanh(y @ x)
    m = gr.TapeMachine(g)
    ticks = []
    done = threading.Event()

    def ticker():
        while not done.is_set():
            ticks.append(1)

    t = threading.Thread(target=ticker)
    t.start()
    try:
        for _ in range(3):
            m.run_all()
    finally:
        done.set()
        t.join()
    assert len(ticks) > 0
    m.close()


# ---------------------------------------------------------------------------------------------
# Custom ops
# ---------------------------------------------------------------------------------------------


def test_custom_op_forward_backward_shape_fn():
    square_sum = gr.custom_op(
        lambda a, b: (a * a + b).astype(a.dtype),
        lambda gout, a, b: (2 * a * gout, gout),
        name="square_plus",
    )
    rowsum = gr.custom_op(lambda a: a.sum(axis=1), lambda gout, a: (np.repeat(gout[:, None], a.shape[1], 1),),
                          shape_fn=lambda s: (s[0],), name="rowsum")
    g = gr.Graph()
    a = g.matrix(gr.float64, (2, 3), name="a", value=np.arange(6.0).reshape(2, 3))
    b = g.matrix(gr.float64, (2, 3), name="b", value=np.ones((2, 3)))
    y = square_sum(a, b)
    r = rowsum(y)
    assert r.shape == (2,)
    cost = gr.sum(r * 2.0)
    da, db = gr.grad(cost, [a, b])
    with gr.TapeMachine(g) as m:
        m.run_all()
        av = np.arange(6.0).reshape(2, 3)
        np.testing.assert_allclose(y.value, av * av + 1)
        np.testing.assert_allclose(r.value, (av * av + 1).sum(axis=1))
        np.testing.assert_allclose(da.value, 4 * av)
        np.testing.assert_allclose(db.value, np.full((2, 3), 2.0))
    assert "square_plus" in gr.to_dot(g)


def test_custom_op_exception_propagates_unchanged():
    class Boom(Exception):
        pass

    def forward(a):
        raise Boom("from user code")

    op = gr.custom_op(forward, name="boom")
    g = gr.Graph()
    x = g.vector(gr.float64, 2, value=[1.0, 2.0])
    y = op(x)
    with gr.TapeMachine(g) as m:
        with pytest.raises(Boom, match="from user code"):
            m.run_all()
    no_back = gr.custom_op(lambda a: a, name="noback")
    with pytest.raises(gr.GraphError, match="backward"):
        gr.grad(gr.sum(no_back(x)), [x])


def test_custom_op_threads():
    op = gr.custom_op(lambda a: a * 2, lambda gout, a: (gout * 2,), name="dbl")
    g = gr.Graph()
    x = g.vector(gr.float64, 3, value=[1.0, 2.0, 3.0])
    y = gr.sum(op(x))
    ms = [gr.TapeMachine(g) for _ in range(2)]
    out, errors = [], []

    def work(k):
        try:
            for _ in range(25):
                ms[k % 2].run_all()
                out.append(float(y.value))
        except Exception as e:  # pragma: no cover
            errors.append(e)

    ts = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in ts), "deadlock"
    assert not errors and out == [12.0] * 150
