"""Reliability promises of gorgon_rs under threads (RELIABILITY.md lists which test proves which
promise; the other reliability tests are in ``test_reliability*.py``).

Machines run in parallel Python threads with the GIL released; results equal the
single-threaded ones; one machine, one function or one graph used from several threads at
once is serialized (never a torn value, never a crash).
"""

from __future__ import annotations

import threading
import time

import numpy as np

import gorgon_rs as gr

from _reliability_helpers import join_all


# ---------------------------------------------------------------------------------------------
# Threads
# ---------------------------------------------------------------------------------------------


def _thread_model(seed: int):
    g = gr.Graph()
    rng = np.random.default_rng(seed)
    x = g.matrix(gr.float64, (48, 32), name="x")
    w = g.matrix(gr.float64, (32, 16), name="w", value=rng.normal(size=(32, 16)))
    h = gr.tanh(x @ w)
    cost = gr.mean(gr.softmax(h, axis=1) * h) + gr.sum(gr.square(w)) * 1e-3
    (dw,) = gr.grad(cost, [w])
    return g, x, w, cost, dw


def _inputs(seed: int, n: int):
    rng = np.random.default_rng(1000 + seed)
    return [rng.normal(size=(48, 32)) for _ in range(n)]


def test_8_threads_with_2_machines_each_match_single_threaded_results():
    n_threads, n_runs = 8, 6
    want = {}
    for k in range(n_threads):  # single-threaded reference, one graph per thread
        g, x, w, cost, dw = _thread_model(k)
        with gr.TapeMachine(g) as m:
            for j, xv in enumerate(_inputs(k, n_runs)):
                x.let(xv)
                m.run_all()
                want[k, j] = (cost.value, dw.value)
    got, errors = {}, []
    barrier = threading.Barrier(n_threads)

    def work(k):
        try:
            g, x, w, cost, dw = _thread_model(k)
            tape = gr.TapeMachine(g)
            f = gr.function([x], [cost, dw])
            barrier.wait()
            for j, xv in enumerate(_inputs(k, n_runs)):
                if j % 2:
                    c, d = f(xv)
                else:
                    x.let(xv)
                    tape.run_all()
                    c, d = cost.value, dw.value
                got[k, j] = (c, d)
            tape.close()
            f.close()
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    ts = [threading.Thread(target=work, args=(k,), name=f"worker{k}") for k in range(n_threads)]
    for t in ts:
        t.start()
    join_all(ts)
    assert not errors, errors
    assert sorted(got) == sorted(want)
    for key, (c, d) in want.items():
        np.testing.assert_allclose(got[key][0], c, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(got[key][1], d, rtol=1e-12, atol=1e-15)


def test_run_all_releases_the_gil_while_it_runs():
    g = gr.Graph()
    x = g.matrix(gr.float64, (256, 256), name="x", value=np.full((256, 256), 1e-3))
    y = x
    for _ in range(10):
        y = gr.tanh(y @ x)
    m = gr.TapeMachine(g)
    m.run_all()  # warm up
    t0 = time.perf_counter()
    m.run_all()
    single = time.perf_counter() - t0
    runs = max(1, int(0.3 / max(single, 1e-4)))
    stamps: list[float] = []
    stop = threading.Event()

    def python_work():
        n = 0
        while not stop.is_set():
            n += 1
            if n % 100 == 0:
                stamps.append(time.perf_counter())

    t = threading.Thread(target=python_work)
    t.start()
    try:
        time.sleep(0.05)
        spans = []
        for _ in range(runs):
            a = time.perf_counter()
            m.run_all()
            spans.append((a, time.perf_counter()))
    finally:
        stop.set()
        t.join()
    m.close()
    # progress made by the Python thread strictly inside native runs (away from their edges,
    # where the interpreter could switch threads around the call)
    inside = 0
    for a, b in spans:
        pad = (b - a) * 0.1
        inside += sum(1 for s in stamps if a + pad < s < b - pad)
    assert inside > 0, f"no Python progress during {runs} runs of {single * 1e3:.1f} ms: the GIL was held"


def test_one_function_hammered_from_4_threads_returns_each_callers_own_result():
    g = gr.Graph()
    x = g.vector(gr.float64, 4096, name="x")
    y = x * 2.0 + 1.0
    s = gr.sum(y)
    f = gr.function([x], [y, s])
    errors, checked = [], [0]

    def work(k):
        try:
            for i in range(150):
                c = float(k * 1000 + i)
                yv, sv = f(np.full(4096, c))
                assert (yv == 2 * c + 1).all(), f"torn result: {np.unique(yv)[:4]} for input {c}"
                assert float(sv) == 4096 * (2 * c + 1)
                checked[0] += 1
        except BaseException as e:
            errors.append(e)

    ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in ts:
        t.start()
    join_all(ts)
    assert not errors, errors[:3]
    assert checked[0] == 600


def test_one_machine_hammered_with_run_let_and_value_stays_consistent():
    g = gr.Graph()
    x = g.vector(gr.float64, 4096, name="x", value=np.zeros(4096))
    y = x * 2.0 + 1.0
    s = gr.sum(y)
    m = gr.TapeMachine(g)
    lets = {0.0}
    lock = threading.Lock()
    errors, seen = [], [0]
    stop = time.monotonic() + 2.0

    def runner():
        try:
            while time.monotonic() < stop:
                m.run_all()
        except BaseException as e:
            errors.append(e)

    def letter():
        try:
            i = 0
            while time.monotonic() < stop:
                i += 1
                with lock:
                    lets.add(float(i))
                x.let(np.full(4096, float(i)))
        except BaseException as e:
            errors.append(e)

    def reader():
        try:
            while time.monotonic() < stop:
                try:
                    yv, sv = y.value, s.value
                except gr.GraphError:
                    continue  # nothing computed yet
                u = np.unique(yv)
                assert len(u) == 1, f"torn y: {u[:4]}"
                with lock:
                    assert (u[0] - 1) / 2 in lets, u[0]
                assert np.isfinite(sv)
                xv = x.value
                assert len(np.unique(xv)) == 1, "torn x"
                seen[0] += 1
        except BaseException as e:
            errors.append(e)

    ts = [threading.Thread(target=f) for f in (runner, runner, letter, reader)]
    for t in ts:
        t.start()
    join_all(ts)
    m.close()
    assert not errors, errors[:3]
    assert seen[0] > 0


def test_graph_grows_while_machines_run_and_a_machine_closes_under_a_runner():
    g = gr.Graph()
    x = g.matrix(gr.float64, (64, 64), name="x", value=np.eye(64))
    y = gr.sum(gr.tanh(x @ x))
    machines = [gr.TapeMachine(g) for _ in range(2)]
    errors, built = [], []
    stop = time.monotonic() + 1.5

    def runner(m):
        try:
            while time.monotonic() < stop:
                try:
                    m.run_all()
                except gr.GraphError:
                    return  # closed under us: a clean error, never a crash
        except BaseException as e:
            errors.append(e)

    def builder(k):
        try:
            i = 0
            while time.monotonic() < stop:
                i += 1
                n = gr.exp(x[k % 64]) * float(i) if i % 2 else gr.mean(x, axis=k % 2)
                assert n.shape == ((64,) if i % 2 else (64,))
                built.append(n)
        except BaseException as e:
            errors.append(e)

    def closer():
        time.sleep(0.5)
        machines[1].close()

    ts = ([threading.Thread(target=runner, args=(m,)) for m in machines]
          + [threading.Thread(target=builder, args=(k,)) for k in range(3)] + [threading.Thread(target=closer)])
    for t in ts:
        t.start()
    join_all(ts)
    assert not errors, errors[:3]
    assert machines[1].closed
    machines[0].run_all()
    np.testing.assert_allclose(float(y.value), 64 * np.tanh(1.0), rtol=1e-12)
    # every node built concurrently computes
    vals = gr.function([], built[:50])()
    assert all(v.shape == (64,) for v in vals)
    machines[0].close()


def test_custom_op_callbacks_during_runs_never_deadlock_with_let_build_and_read():
    # a custom op re-acquires the GIL from inside run_all (machine and graph locks held) while
    # other threads, holding the GIL, bind values, read values and build nodes
    def forward(a):
        time.sleep(0.0002)
        return a * 2

    op = gr.custom_op(forward, lambda gout, a: (2 * gout,), name="slow_double")
    g = gr.Graph()
    x = g.vector(gr.float64, 100, name="x", value=np.zeros(100))
    y = gr.sum(op(x))
    gr.grad(y, [x])
    m = gr.TapeMachine(g)
    stop = time.monotonic() + 1.5
    errors, counts = [], [0, 0, 0]

    def runner():
        try:
            while time.monotonic() < stop:
                m.run_all()
                counts[0] += 1
        except BaseException as e:
            errors.append(e)

    def letter():
        try:
            i = 0
            while time.monotonic() < stop:
                i += 1
                x.let(np.full(100, float(i)))
                counts[1] += 1
                try:
                    y.value, x.grad
                except gr.GraphError:
                    pass
        except BaseException as e:
            errors.append(e)

    def builder():
        try:
            while time.monotonic() < stop:
                gr.exp(x) * 2.0
                f = gr.function([], op(x))
                f()
                f.close()
                counts[2] += 1
        except BaseException as e:
            errors.append(e)

    ts = [threading.Thread(target=fn, daemon=True) for fn in (runner, runner, letter, builder)]
    for t in ts:
        t.start()
    join_all(ts, timeout=60)
    m.close()
    assert not errors, errors[:3]
    assert min(counts) > 0, counts
