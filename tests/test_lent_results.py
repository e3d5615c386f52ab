"""Large results of compiled functions are lent to NumPy without a copy (the machine's buffer
becomes the array's memory); a later call never writes into an array the caller still holds,
and buffers the caller lets go of are reused."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

import gorgon_rs as gr

N = 100_000  # above the lending threshold


def _fn(dtype: object = gr.float64) -> tuple[gr.Graph, gr.Node, gr.Node, Any]:
    g = gr.Graph()
    x = g.vector(dtype, N, name="x")
    z = gr.tanh(x * 2.0 + 1.0)
    return g, x, z, gr.function([x], z)


def test_held_results_survive_later_calls() -> None:
    _, _, z, f = _fn()
    xs = [np.full(N, v) for v in (0.0, 0.5, -1.0, 2.0)]
    results = [f(v) for v in xs]
    for v, r in zip(xs, results):
        np.testing.assert_allclose(r, np.tanh(v * 2 + 1), rtol=1e-12)
    assert len({r.ctypes.data for r in results}) == len(results)
    # The node's value is the last call's.
    np.testing.assert_allclose(z.value, np.tanh(xs[-1] * 2 + 1), rtol=1e-12)


def test_results_are_writable_and_private() -> None:
    _, _, z, f = _fn()
    r = f(np.zeros(N))
    assert r.flags.writeable and r.shape == (N,) and r.dtype == np.float64
    r[:] = 7.0
    # Writing into one's result does not change the next call's.
    r2 = f(np.zeros(N))
    np.testing.assert_allclose(r2, np.tanh(np.ones(N)), rtol=1e-12)
    assert (r == 7.0).all()
    assert not np.shares_memory(r, r2)


def test_a_dropped_result_buffer_is_reused() -> None:
    _, _, _, f = _fn(gr.float32)
    x = np.ones(N, np.float32)
    addr = f(x).ctypes.data  # dropped at once
    assert f(x).ctypes.data == addr
    held = f(x)
    other = f(x)
    assert other.ctypes.data != held.ctypes.data
    np.testing.assert_array_equal(held, other)


def test_views_keep_the_buffer_alive() -> None:
    _, _, _, f = _fn()
    view = f(np.full(N, 0.25))[10:20]
    for _ in range(3):
        f(np.full(N, 3.0))
    np.testing.assert_allclose(view, np.tanh(np.full(10, 1.5)), rtol=1e-12)


def test_a_repeated_output_is_two_arrays() -> None:
    g = gr.Graph()
    x = g.vector(gr.float64, N, name="x")
    z = x * 3.0
    f = gr.function([x], [z, z])
    a, b = f(np.ones(N))
    assert not np.shares_memory(a, b)
    a[:] = 0
    assert (b == 3.0).all()


def test_results_outlive_the_function() -> None:
    _, _, _, f = _fn()
    r = f(np.zeros(N))
    f.close()
    del f
    np.testing.assert_allclose(r, np.tanh(np.ones(N)), rtol=1e-12)


@pytest.mark.parametrize(("dtype", "np_dtype"), [(gr.float32, np.float32), (gr.float64, np.float64),
                                                  (gr.int32, np.int32), (gr.int64, np.int64)])
def test_every_dtype(dtype: object, np_dtype: type) -> None:
    g = gr.Graph()
    x = g.vector(dtype, N, name="x")
    f = gr.function([x], [x + x, x > x])
    v = (np.arange(N) % 100).astype(np_dtype)
    s, c = f(v)
    np.testing.assert_array_equal(s, v + v)
    assert c.dtype == v.dtype and not c.any()  # comparisons keep the dtype (0/1)


def test_threads_hold_their_own_results() -> None:
    _, _, _, f = _fn()
    errors: list[BaseException] = []

    def worker(v: float) -> None:
        try:
            for _ in range(20):
                r = f(np.full(N, v))
                np.testing.assert_allclose(r, np.tanh(np.full(N, v * 2 + 1)), rtol=1e-12)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    ts = [threading.Thread(target=worker, args=(float(k),)) for k in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors[0]
