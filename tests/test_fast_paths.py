"""The per-call fast paths of the let/run/value cycle and of compiled functions (small programs
run with the GIL held under one hold of the locks, scalars rebound in place, output arrays
made before the run) keep every semantic of the general path."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import gorgon_rs as gr


def _seed() -> tuple[gr.Graph, gr.Node, gr.Node, gr.Node]:
    g = gr.Graph()
    x = g.scalar(gr.float64, name="x")
    y = g.scalar(gr.float64, name="y")
    return g, x, y, x + y


def test_let_and_value_are_native_methods() -> None:
    # No Python frame per call: both are the native base class's own descriptors.
    assert "let" not in vars(gr.Node) and "value" not in vars(gr.Node)
    assert gr.Node.let is vars(gr._native.NodeBase)["let"]
    assert gr.Node.value is vars(gr._native.NodeBase)["value"]
    g, x, y, z = _seed()
    assert isinstance(x, gr._native.NodeBase)


def test_function_results_are_new_arrays_each_call() -> None:
    g, x, y, z = _seed()
    f = gr.function([x, y], z)
    a = f(2.0, 2.5)
    b = f(1.0, 1.0)
    assert a is not b and float(a) == 4.5 and float(b) == 2.0
    assert a.shape == () and a.dtype == np.float64
    a[()] = 100.0  # the caller owns it
    assert float(f(2.0, 2.5)) == 4.5
    f.close()


def test_function_inputs_of_every_kind_match_numpy() -> None:
    g = gr.Graph()
    s = g.scalar(gr.float32, name="s")
    v = g.vector(gr.float32, 3, name="v")
    f = gr.function([s, v], [v * s + 1.0, v, s])
    want = np.array([1.0, 2.0, 3.0], dtype=np.float32) * np.float32(2.0) + np.float32(1.0)
    for sv, vv in [(2.0, np.array([1.0, 2.0, 3.0], dtype=np.float32)),   # exact dtype: zero-copy
                   (2, [1, 2, 3]),                                          # int scalar, list
                   (np.float64(2.0), np.array([1.0, 2.0, 3.0])),            # conversions
                   (True + 1, np.arange(1, 4, dtype=np.int32))]:
        out, vo, so = f(sv, vv)
        np.testing.assert_array_equal(out, want)
        assert out.dtype == np.float32 and vo.dtype == np.float32 and so.dtype == np.float32
        np.testing.assert_array_equal(vo, [1.0, 2.0, 3.0])
        assert float(so) == 2.0
    with pytest.raises(gr.ShapeError):
        f(2.0, np.zeros(4, dtype=np.float32))
    with pytest.raises(gr.DTypeError):
        f(2.0, ["a", "b", "c"])
    with pytest.raises(TypeError):
        f(2.0)
    f.close()
    with pytest.raises(gr.GraphError):
        f(2.0, [1.0, 2.0, 3.0])


def test_rebinding_a_scalar_never_writes_into_a_bound_array() -> None:
    g, x, y, z = _seed()
    a = np.array(1.0)
    x.let(a)                                  # bound without a copy
    assert g._g.value_ptr(x._id) == a.ctypes.data
    x.let(5.0)                                # must not overwrite the caller's array
    assert float(a) == 1.0 and float(x.value) == 5.0
    v = x.value
    x.let(6.0)                                # values read earlier are copies
    assert float(v) == 5.0 and float(x.value) == 6.0


def test_cycle_with_watch_and_rebinding() -> None:
    g, x, y, z = _seed()
    with gr.TapeMachine(g, watch=[z]) as m:
        for k in range(5):
            x.let(float(k))
            y.let(k)                          # an int for a float64 node
            m.run_all()
            assert float(z.value) == 2.0 * k
        assert [float(a) for a in m.watched[z]] == [0.0, 2.0, 4.0, 6.0, 8.0]


def test_two_machines_on_one_graph_take_turns() -> None:
    # Each run makes its machine the graph's result source, quick path or not.
    g, x, y, z = _seed()
    x.let(1.0)
    y.let(2.0)
    m1, m2 = gr.TapeMachine(g), gr.TapeMachine(g)
    m1.run_all()
    x.let(10.0)
    m2.run_all()
    assert float(z.value) == 12.0
    x.let(100.0)
    m1.run_all()
    assert float(z.value) == 102.0
    m1.close()
    m2.close()


def test_threads_calling_one_function() -> None:
    g, x, y, z = _seed()
    f = gr.function([x, y], z)
    errors: list[str] = []

    def work(k: int) -> None:
        for i in range(2000):
            r = float(f(float(k), float(i)))
            if r != k + i:
                errors.append(f"{k}+{i} gave {r}")

    ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors[:5]
