"""Reliability promises of gorgon_rs (RELIABILITY.md lists which test proves which promise).

* Rust panics become ``gr.InternalError`` carrying the panic message; the interpreter, the
  graph and other machines live on (in-process and in a subprocess that must exit 0).
* Threads: machines run in parallel Python threads with the GIL released; results equal the
  single-threaded ones; one machine, one function or one graph used from several threads at
  once is serialized (never a torn value, never a crash).
* Arrays handed out (``node.value``, ``gr.function`` results, ``.grad``, ``watched``,
  ``gr.load``) own their memory: they outlive machines and graphs.
* Persistence: a process that dies between writing and renaming leaves the previous file
  intact; hostile files (deep JSON nesting, duplicate keys, lying lengths) raise
  ``gr.FormatError`` and change nothing.
* Allocation failures raise ``MemoryError`` (or ``gr.ShapeError`` for impossible sizes) when a
  machine is compiled, with the size in the message, and the process goes on.
* Bugs found by the fuzz suite, each with its minimal repro: a regression test once fixed, a
  strict xfail while open (the fix turns it into a pass: then remove the marker, and the
  matching entry of ``KNOWN_BUGS`` in ``tests/fuzz/_fuzz_outcomes.py`` or the workaround it names).

The memory-flatness loop is ``tests/fuzz/test_memory_soak.py`` (N=300 here, N=10,000 under
``make fuzz``).

This file holds the panic tests and the fuzz-suite findings; the other promises are tested in
``test_reliability_threads.py``, ``test_reliability_memory.py`` (arrays handed out, allocation
failures) and ``test_reliability_persistence.py``.
"""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

import gorgon_rs as gr
from gorgon_rs import _native

from _reliability_helpers import join_all, run_py

ALLOWED = (gr.Error, ValueError, TypeError, IndexError, MemoryError)


# ---------------------------------------------------------------------------------------------
# Panics
# ---------------------------------------------------------------------------------------------


def test_panic_carries_its_message_and_everything_lives_on():
    g = gr.Graph()
    x = g.vector(gr.float64, 3, name="x", value=[1.0, 2.0, 3.0])
    y = gr.sum(x * x)
    m = gr.TapeMachine(g)
    m.run_all()
    for i in range(50):
        with pytest.raises(gr.InternalError) as ei:
            _native._debug_panic(f"boom number {i} ✓")
        assert f"boom number {i} ✓" in str(ei.value)
        assert isinstance(ei.value, RuntimeError) and isinstance(ei.value, gr.Error)
    # the graph, the machine compiled before the panics and new ones all still work
    m.run_all()
    assert float(y.value) == 14.0
    x.let([0.0, 1.0, 2.0])
    assert float(gr.function([], y)()) == 5.0
    m.close()


def test_panics_in_many_threads_at_once():
    errors, caught = [], []

    def work(k):
        try:
            for i in range(100):
                try:
                    _native._debug_panic(f"t{k}-{i}")
                except gr.InternalError as e:
                    caught.append(f"t{k}-{i}" in str(e))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in ts:
        t.start()
    join_all(ts)
    assert not errors, errors
    assert caught == [True] * 400


def test_panic_in_a_subprocess_exits_cleanly():
    r = run_py("""
        import numpy as np, gorgon_rs as gr
        for i in range(200):
            try:
                gr._native._debug_panic("sub %d" % i)
            except gr.InternalError as e:
                assert ("sub %d" % i) in str(e)
        g = gr.Graph(); x = g.scalar(gr.float64, value=3.0)
        print("alive", float(gr.function([], x * 2.0)()))
    """)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    assert "alive 6.0" in r.stdout


def test_a_panic_inside_a_run_surfaces_with_its_message_and_the_machine_goes_on():
    # a Rust panic raised from inside run_all (here by a custom op's callback) comes back as
    # InternalError carrying the message; the machine, the graph and other machines go on
    state = {"boom": True}

    def forward(a):
        if state["boom"]:
            _native._debug_panic("panic inside a run")
        return a * 2

    op = gr.custom_op(forward, name="maybe_panic")
    g = gr.Graph()
    x = g.vector(gr.float64, 3, name="x", value=[1.0, 2.0, 3.0])
    y = gr.sum(op(x))
    z = x * 3.0
    m = gr.TapeMachine(g)
    with pytest.raises(gr.InternalError, match="panic inside a run"):
        m.run_all()
    np.testing.assert_array_equal(gr.function([], z)(), [3.0, 6.0, 9.0])
    state["boom"] = False
    m.run_all()
    assert float(y.value) == 12.0
    m.close()


# ---------------------------------------------------------------------------------------------
# Bugs found by the fuzz suite: regression tests of the fixed ones; open ones are strict xfails
# (the fix makes them pass; then remove the marker and the KNOWN_BUGS entry)
# ---------------------------------------------------------------------------------------------


# Fuzz finding, fixed: argmax/argmin along an axis of an array with another zero-length axis panics in Rust
# (reduce.rs: 'chunk size must be non-zero') -> InternalError
def test_argmax_of_zero_size_array_does_not_panic():
    g = gr.Graph()
    x = g.tensor(gr.float32, (1, 0), name="x", value=np.zeros((1, 0), np.float32))
    out = gr.function([], [gr.argmax(x, axis=0), gr.argmin(x, axis=0, keepdims=True)])()
    np.testing.assert_array_equal(out[0], np.argmax(np.zeros((1, 0)), axis=0))
    assert out[0].shape == (0,) and out[1].shape == (1, 0) and out[0].dtype == np.int64


# Fuzz finding, fixed: the gradient of prod is NaN where a factor is 0 (computed as prod/x)
def test_prod_gradient_with_a_zero_factor():
    g = gr.Graph()
    x = g.vector(gr.float64, 3, name="x", value=[0.0, 2.0, 3.0])
    (dx,) = gr.grad(gr.prod(x), [x])
    np.testing.assert_array_equal(gr.function([], dx)(), [6.0, 0.0, 0.0])
    y = g.vector(gr.float64, 3, name="y", value=[0.0, 0.0, 3.0])
    (dy,) = gr.grad(gr.prod(y), [y])
    np.testing.assert_array_equal(gr.function([], dy)(), [0.0, 0.0, 0.0])


# Fuzz finding, fixed: float // computes floor(a / b), not NumPy's floor_divide (1.0 // 0.1 == 9.0, inf // 2 is
# nan, -1 // inf == -1)
def test_float_floordiv_follows_numpy():
    a = np.array([1.0, -1.0, np.inf, -1.0, 7.0], np.float64)
    b = np.array([0.1, 0.1, 2.0, np.inf, -2.0], np.float64)
    g = gr.Graph()
    x, y = g.vector(gr.float64, 5, value=a), g.vector(gr.float64, 5, value=b)
    with np.errstate(all="ignore"):
        want = a // b
    np.testing.assert_array_equal(gr.function([], x // y)(), want)


# Fuzz finding, fixed: concat of a single 0-d node returns it; NumPy (and gorgon for two 0-d nodes) refuse:
# zero-dimensional arrays cannot be concatenated
def test_concat_of_one_0d_node_is_refused():
    g = gr.Graph()
    s = g.scalar(gr.float32, value=1.0)
    with pytest.raises(gr.ShapeError):
        gr.concat([s, s])
    with pytest.raises(gr.ShapeError):
        gr.concat([s], axis=0)


# Fuzz finding, fixed: squeeze accepts a repeated axis (NumPy: ValueError 'repeated axis')
def test_squeeze_with_a_repeated_axis_is_refused():
    g = gr.Graph()
    x = g.tensor(gr.float32, (1, 3), value=np.zeros((1, 3)))
    with pytest.raises(ValueError):
        np.squeeze(np.zeros((1, 3)), (0, 0))
    with pytest.raises(gr.ShapeError):
        gr.squeeze(x, (0, 0))


# Fuzz finding, fixed: Python ints beyond int64/float64 leak OverflowError (pyo3/NumPy) instead of gorgon
# errors: shapes, leaky_relu alpha, gr.seed
def test_huge_python_ints_raise_gorgon_errors():
    g = gr.Graph()
    x = g.vector(gr.float32, 2, value=[1.0, 2.0])
    cases = {
        "g.tensor(float32, (2**63,))": lambda: g.tensor(gr.float32, (2**63,)),
        "g.tensor(float32, (2**70, 2))": lambda: g.tensor(gr.float32, (2**70, 2)),
        "gr.leaky_relu(x, 10**400)": lambda: gr.leaky_relu(x, 10**400),
        "gr.seed(2**70)": lambda: gr.seed(2**70),
    }
    leaks = {}
    for what, fn in cases.items():
        try:
            fn()
        except (gr.Error, ValueError, TypeError):
            continue
        except OverflowError as e:
            leaks[what] = str(e)
    assert not leaks, leaks


# Fuzz finding, fixed: a Python int that does not fit an int32 node raises OverflowError (NumPy 2's own rule
# leaks through _lift) instead of gr.DTypeError/ValueError
def test_python_int_out_of_range_for_an_int32_node():
    g = gr.Graph()
    i = g.vector(gr.int32, 2, value=[1, 2])
    with pytest.raises((gr.DTypeError, ValueError)):
        i + 2**40


# Fuzz finding, fixed: clip(x, lo, hi) with lo > hi on floats gives hi or lo depending on x; NumPy (and gorgon
# on ints, or with node bounds) gives hi everywhere
def test_clip_with_lo_above_hi_matches_numpy():
    v = np.array([[5.0, -5.0], [0.0, 1.0]], np.float32)
    g = gr.Graph()
    f = g.matrix(gr.float32, (2, 2), value=v)
    i = g.matrix(gr.int32, (2, 2), value=v.astype(np.int32))
    np.testing.assert_array_equal(gr.function([], gr.clip(i, 2, 1))(), np.clip(v.astype(np.int32), 2, 1))
    np.testing.assert_array_equal(gr.function([], gr.clip(f, 2, 1))(), np.clip(v, 2, 1))


def test_where_python_scalar_adopts_the_array_dtype():
    # found by the fuzz suite (gr.where(c, 0.001, np.array(0.0, np.float32)) was float64), fixed
    g = gr.Graph()
    c = g.vector(gr.float32, 2, value=[1.0, 0.0])
    for b in (np.array([2.0, 3.0], np.float32), np.array(2.0, np.float32)):
        out = gr.where(c, 0.001, b)
        assert out.dtype == np.float32
        np.testing.assert_array_equal(gr.function([], out)(), np.where([1.0, 0.0], 0.001, b))


# Fuzz finding, fixed: one_hot accepts a negative class count (silently n=0)
def test_one_hot_with_negative_n_is_refused():
    g = gr.Graph()
    k = g.vector(gr.int64, 2, value=[0, 1])
    with pytest.raises((gr.ShapeError, ValueError)):
        gr.one_hot(k, -1)


# Fuzz finding, fixed: the temp file of gr.save is named by process id only, so two threads saving to one path
# collide: one save fails with a misleading FileNotFoundError
def test_concurrent_saves_to_one_path(tmp_path):
    path = str(tmp_path / "ck.safetensors")
    gr.save(path, {"w": np.zeros(10, np.float32), "i": np.array(0)})
    errors, bad = [], []

    def saver(k):
        for i in range(25):
            v = k * 1000 + i
            try:
                gr.save(path, {"w": np.full(500_000 if k == 1 else 100_000, v, np.float32), "i": np.array(v)})
            except Exception as e:
                errors.append(f"{type(e).__name__}: {e}")

    def loader():
        for _ in range(60):
            try:
                d = gr.load(path)
                if not (d["w"] == d["i"]).all():
                    bad.append(int(d["i"]))
            except Exception as e:
                errors.append(f"load {type(e).__name__}: {e}")

    ts = [threading.Thread(target=saver, args=(k,)) for k in (1, 2)] + [threading.Thread(target=loader)]
    for t in ts:
        t.start()
    join_all(ts)
    assert not errors, errors[:3]
    assert not bad
    d = gr.load(path)
    assert (d["w"] == d["i"]).all()
    assert sorted(os.listdir(tmp_path)) == ["ck.safetensors"], "temp files left behind"


# Fuzz finding, fixed: a byte count that overflows (2**62 float32) is reported as 'cannot allocate 0 bytes ...
# needs 0 bytes'; the message must state the size asked for
def test_allocation_error_message_states_the_size_even_when_it_overflows():
    g = gr.Graph()
    d = g.vector(gr.float32, 2**62, name="d")
    with pytest.raises((MemoryError, gr.ShapeError)) as ei:
        gr.TapeMachine(g, outputs=[d + 1.0])
    msg = str(ei.value)
    assert "cannot allocate 0 bytes" not in msg and "needs 0 bytes" not in msg, msg
    assert "4611686018427387904" in msg, msg


# Fuzz finding, fixed: the gradient of pow at a zero base is NaN/-inf where it is 0: d(x**0)/dx and d(0**y)/dy
# for y > 0 (PyTorch gives 0)
def test_pow_gradient_at_a_zero_base():
    g = gr.Graph()
    x = g.scalar(gr.float64, name="x", value=0.0)
    y = g.scalar(gr.float64, name="y", value=2.0)
    (dx0,) = gr.grad(x ** 0.0, [x])
    dx, dy = gr.grad(x ** y, [x, y])
    assert [float(v) for v in gr.function([], [dx0, dx, dy])()] == [0.0, 0.0, 0.0]


# Fuzz finding, fixed: calling a closed gr.function binds its arguments to the graph's input leaves before
# raising GraphError (a failed call changes state)
def test_calling_a_closed_function_changes_nothing():
    g = gr.Graph()
    x = g.vector(gr.float64, 3, name="x", value=[0.0, 0.0, 1.0])
    f = gr.function([x], x * 2.0)
    f.close()
    with pytest.raises(gr.GraphError):
        f(np.array([5.0, 5.0, 5.0]))
    np.testing.assert_array_equal(x.value, [0.0, 0.0, 1.0])


# Fuzz finding, fixed: second derivatives of pow at a zero base were NaN where they are 0
# (d2(x**0)/dx2 and d2(0**y)/dy2: the where() guarding the first derivative leaked 0*inf)
def test_pow_second_derivative_at_a_zero_base():
    g = gr.Graph()
    x = g.scalar(gr.float64, name="x", value=0.0)
    y = g.scalar(gr.float64, name="y", value=2.0)
    (d1,) = gr.grad(x ** 0.0, [x])
    (d2,) = gr.grad(d1, [x])
    (e1,) = gr.grad(x ** y, [y])
    (e2,) = gr.grad(e1, [y])
    assert [float(v) for v in gr.function([], [d1, d2, e1, e2])()] == [0.0, 0.0, 0.0, 0.0]


# Fuzz finding, fixed: a node listed twice in watch= got two records per run in m.watched
# (API.md: watch records each node's value once per run)
def test_a_node_watched_twice_is_recorded_once_per_run():
    g = gr.Graph()
    x = g.scalar(gr.float32, name="x", value=1.0)
    y = -x
    with gr.TapeMachine(g, watch=[x, x, y]) as m:
        m.run_all()
        m.run_all()
        assert {n.name or "y": len(v) for n, v in m.watched.items()} == {"x": 2, "y": 2}


# fixed: mish inside a fused elementwise chain gave NaN at -inf (x*tanh(softplus(x)) = -inf*0)
def test_fused_mish_at_minus_infinity():
    g = gr.Graph(stabilize=False)
    x = g.vector(gr.float32, 2, name="x", value=[-np.inf, 0.0])
    np.testing.assert_array_equal(gr.function([], gr.mish(x))(), [0.0, 0.0])
    np.testing.assert_array_equal(gr.function([], gr.mish(x * 1.0))(), [0.0, 0.0])
