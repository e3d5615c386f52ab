"""Reliability promises of gorgon_rs about memory (RELIABILITY.md lists which test proves which
promise; the other reliability tests are in ``test_reliability*.py``).

* Arrays handed out (``node.value``, ``gr.function`` results, ``.grad``, ``watched``,
  ``gr.load``) own their memory: they outlive machines and graphs.
* Allocation failures raise ``MemoryError`` (or ``gr.ShapeError`` for impossible sizes) when a
  machine is compiled, with the size in the message, and the process goes on.

The memory-flatness loop is ``tests/fuzz/test_memory_soak.py`` (N=300 here, N=10,000 under
``make fuzz``).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import gorgon_rs as gr


# ---------------------------------------------------------------------------------------------
# Memory handed out
# ---------------------------------------------------------------------------------------------


def test_arrays_handed_out_outlive_machines_and_graphs(tmp_path):
    rng = np.random.default_rng(0)
    g = gr.Graph()
    x = g.matrix(gr.float32, (32, 8), name="x", value=rng.normal(size=(32, 8)))
    w = g.matrix(gr.float32, (8, 4), name="w", value=rng.normal(size=(8, 4)))
    h = x @ w
    cost = gr.mean(gr.square(h))
    gr.grad(cost, [w])
    m = gr.TapeMachine(g, watch=[h])
    m.run_all()
    held = {"h": h.value, "cost": cost.value, "w.grad": w.grad, "watched": m.watched[h][0], "x": x.value}
    f = gr.function([x], [h, cost])
    fh, fc = f(rng.normal(size=(32, 8)).astype(np.float32))
    held.update(fh=fh, fc=fc)
    gr.save(tmp_path / "w.safetensors", [w])
    held["loaded"] = gr.load(tmp_path / "w.safetensors")["w"]
    copies = {k: np.array(v, copy=True) for k, v in held.items()}
    m.close()
    f.close()
    del m, f, g, x, w, h, cost  # freed by reference counting, no garbage-collector call
    churn = [np.full(1 << 14, 3.0) for _ in range(200)]  # reuse what was freed
    for k, v in held.items():
        np.testing.assert_array_equal(v, copies[k], err_msg=k)
        assert v.flags.owndata or v.base is not None
        v[...] = 0  # writable, and writing touches nothing of gorgon's
    del churn


def test_later_runs_never_change_arrays_already_handed_out():
    g = gr.Graph()
    x = g.vector(gr.float64, 1000, name="x", value=np.arange(1000.0))
    y = gr.exp(x * 1e-3)
    m = gr.TapeMachine(g)
    m.run_all()
    first = y.value
    copy = first.copy()
    f = gr.function([x], y)
    r1 = f(np.zeros(1000))
    r1c = r1.copy()
    for i in range(5):
        x.let(np.full(1000, float(i)))
        m.run_all()
        f(np.full(1000, -float(i)))
    np.testing.assert_array_equal(first, copy)
    np.testing.assert_array_equal(r1, r1c)
    m.close()


# ---------------------------------------------------------------------------------------------
# Allocation failures
# ---------------------------------------------------------------------------------------------


def _alive():
    g = gr.Graph()
    x = g.vector(gr.float64, 3, value=[1.0, 2.0, 3.0])
    np.testing.assert_array_equal(gr.function([], x * 2.0)(), [2.0, 4.0, 6.0])


@pytest.mark.parametrize("maker", ["tape", "lisp", "function"])
def test_huge_intermediate_raises_memory_error_at_compile_with_the_size(maker):
    g = gr.Graph()
    a = g.matrix(gr.float64, (2**20, 1), name="a")
    b = g.matrix(gr.float64, (1, 2**20), name="b")
    outer = a * b  # (2**20, 2**20) float64 = 8 TiB
    total = gr.sum(outer)
    build = {"tape": lambda: gr.TapeMachine(g, outputs=[total]), "lisp": lambda: gr.LispMachine(g, backprop=False),
             "function": lambda: gr.function([a, b], total)}[maker]
    with pytest.raises((MemoryError, gr.ShapeError)) as ei:
        build()
    msg = str(ei.value)
    assert "8796093022208" in msg or "(1048576, 1048576)" in msg, msg
    _alive()


def test_input_of_1e12_elements_raises_at_compile_with_the_size():
    g = gr.Graph()
    x = g.vector(gr.float32, 10**12, name="x")
    with pytest.raises((MemoryError, gr.ShapeError)) as ei:
        gr.TapeMachine(g, outputs=[x + 1.0])
    assert "1000000000000" in str(ei.value) or "4000000000000" in str(ei.value), str(ei.value)
    with pytest.raises((MemoryError, gr.ShapeError)):
        gr.LispMachine(g, backprop=False)
    with pytest.raises((MemoryError, gr.ShapeError)):
        gr.function([x], x * 2.0)
    # an input is bound, not allocated: a program that only reduces it compiles fine
    gr.function([x], gr.sum(x)).close()
    _alive()


def test_failed_compiles_do_not_leak():
    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    g = gr.Graph()
    small = g.matrix(gr.float64, (512, 512), name="small", value=np.ones((512, 512)))
    big = g.tensor(gr.float64, (2**20, 2**20), name="big")
    outs = [small * 2.0 + 1.0, gr.exp(small), big * 2.0]  # 4 MiB of buffers planned before the failure
    for _ in range(5):
        with pytest.raises((MemoryError, gr.ShapeError)):
            gr.TapeMachine(g, outputs=outs)
    before = rss()
    for _ in range(100):
        with pytest.raises((MemoryError, gr.ShapeError)):
            gr.TapeMachine(g, outputs=outs)
    grown = rss() - before
    assert grown < 32 * 2**20, f"100 failed compiles grew RSS by {grown / 2**20:.1f} MiB"
