"""Memory: build, run and drop graphs, machines and functions in a loop; resident memory
(``/proc/self/statm``) after warm-up stays flat within 5%.

N = 300 cycles in ``make test``; N = 10,000 when ``GORGON_FUZZ_EXAMPLES`` is set (``make fuzz``).
Each cycle uses a different mix (elementwise chains that fuse, matmul, reductions, symbolic
gradients, a LispMachine with backprop, ``gr.function``, a custom op, a failed compile, a
closed machine run) so that every owner of native memory is created and dropped. A few of
the arrays handed out along the way are kept (``node.value``, function results, ``.grad``,
``watched``) and must still hold their values after their machine and graph are gone.
"""

from __future__ import annotations

import collections
import ctypes
import os
import sys

import numpy as np
import pytest

import gorgon_rs as gr
from _fuzzlib import LONG

N = 10_000 if LONG else 300
PAGE = os.sysconf("SC_PAGE_SIZE")

try:
    _libc = ctypes.CDLL("libc.so.6")
except OSError:  # pragma: no cover - not glibc
    _libc = None


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def settled_rss() -> int:
    """RSS after giving free heap pages back (glibc ``malloc_trim``), so that what remains is
    memory something still holds. No garbage-collector call: everything gorgon_rs hands out is
    freed by reference counting."""
    if _libc is not None:
        _libc.malloc_trim(0)
    return rss_bytes()


_double = gr.custom_op(lambda a: (2 * a).astype(a.dtype), lambda g, a: (2 * g,), name="double")


def one_cycle(i: int, rng: np.random.Generator, keep: collections.deque) -> None:
    kind = i % 6
    g = gr.Graph()
    x = g.matrix(gr.float32, (16, 16), name="x", value=rng.normal(size=(16, 16)).astype(np.float32))
    w = g.matrix(gr.float32, (16, 16), name="w", value=rng.normal(size=(16, 16)).astype(np.float32))
    if kind == 0:  # fused elementwise chain through gr.function
        y = gr.tanh(x * 0.5 + 1.0) * gr.sigmoid(x)
        f = gr.function([x], y)
        out = f(rng.normal(size=(16, 16)).astype(np.float32))
        keep.append((out, out.copy()))
        f.close()
    elif kind == 1:  # matmul + reduction + gradient on a TapeMachine, watched
        cost = gr.mean(gr.square(x @ w))
        (dw,) = gr.grad(cost, [w])
        with gr.TapeMachine(g, watch=[cost]) as m:
            m.run_all()
            m.run_all()
            v, gw = cost.value, w.grad
            rec = m.watched[cost][0]
        keep.extend([(v, v.copy()), (gw, gw.copy()), (rec, rec.copy())])
    elif kind == 2:  # LispMachine with backprop
        cost = gr.sum(gr.softmax(x @ w, axis=1) * x)
        m = gr.LispMachine(g, backprop=True)
        m.run_all()
        gx = x.grad
        keep.append((gx, gx.copy()))
        m.close()
    elif kind == 3:  # custom op (Python callbacks from inside a run) and a dropped, unclosed machine
        y = gr.sum(_double(x) * w)
        m = gr.TapeMachine(g)
        m.run_all()
        keep.append((y.value, y.value.copy()))
        del m
    elif kind == 4:  # a compile that fails for lack of memory, then a closed machine used again
        big = g.tensor(gr.float64, (2**20, 2**20), name="big")
        with pytest.raises((MemoryError, gr.ShapeError)):
            gr.TapeMachine(g, outputs=[big * 2.0])
        m = gr.TapeMachine(g, outputs=[x + w])
        m.close()
        with pytest.raises(gr.GraphError):
            m.run_all()
    else:  # integer and boolean graph, reset, values read after reset/close
        k = g.vector(gr.int64, 16, name="k", value=rng.integers(0, 16, size=16))
        t = gr.take(x, k) @ w
        a = gr.argmax(t, axis=1)
        with gr.TapeMachine(g) as m:
            m.run_all()
            av = a.value
            m.reset()
            m.run_all()
        keep.append((av, av.copy()))


def test_build_run_drop_keeps_memory_flat():
    rng = np.random.default_rng(1234)
    keep: collections.deque = collections.deque(maxlen=12)
    warm = max(60, N // 20)
    for i in range(warm):
        one_cycle(i, rng, keep)
    before = settled_rss()
    samples = []
    for i in range(warm, warm + N):
        one_cycle(i, rng, keep)
        if (i - warm) % max(1, N // 5) == 0:
            samples.append(settled_rss())
    after = settled_rss()
    growth = (after - before) / before
    msg = (f"{N} build/run/drop cycles: RSS {before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB "
           f"({growth:+.1%}); samples {[round(s / 2**20, 1) for s in samples]} MiB")
    print(msg, file=sys.stderr)
    assert growth <= 0.05, msg
    # arrays handed out earlier outlive their machines and graphs
    junk = [np.full(4096, 7.0) for _ in range(64)]  # reuse freed memory
    for a, c in keep:
        np.testing.assert_array_equal(a, c)
    del junk
