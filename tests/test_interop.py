"""DLPack interop: ``gr.from_dlpack`` takes any ``__dlpack__`` producer (NumPy, PyTorch, JAX)
without copying where it can, and node values (NumPy arrays) export through DLPack as they are.

Zero-copy is proven by data pointers: NumPy's ``ctypes.data``, PyTorch's ``data_ptr()`` and,
for values bound with ``let``, the pointer the native graph stores (``Graph.value_ptr``).
PyTorch and JAX are optional: their tests skip when they are not installed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import gorgon_rs as gr

DTYPES = ["float32", "float64", "int32", "int64", "bool"]


def _stored_ptr(node: gr.Node) -> int:
    """Where the native graph keeps a leaf's value (0 when it holds none)."""
    return int(node.graph._g.value_ptr(node._id))


# ---------------------------------------------------------------------------------------------
# NumPy's own DLPack
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_numpy_round_trip_is_zero_copy(dtype: str) -> None:
    a = (np.arange(12) % 3).astype(dtype).reshape(3, 4)
    b = gr.from_dlpack(a)
    assert isinstance(b, np.ndarray)
    assert b.dtype == a.dtype and b.shape == a.shape
    assert b.ctypes.data == a.ctypes.data, "from_dlpack copied a NumPy array"
    np.testing.assert_array_equal(b, a)
    # back out through DLPack: still the same memory
    c = np.from_dlpack(b)
    assert c.ctypes.data == a.ctypes.data


@pytest.mark.parametrize("dtype", DTYPES)
def test_let_keeps_a_dlpack_array_without_copying(dtype: str) -> None:
    a = (np.arange(6) % 2).astype(dtype)
    g = gr.Graph()
    x = g.vector(dtype, 6, name="x")
    x.let(gr.from_dlpack(a))
    assert _stored_ptr(x) == a.ctypes.data, "let copied a C-contiguous array of the node's dtype"
    np.testing.assert_array_equal(x.value, a)


def test_strided_dlpack_views_are_converted_correctly() -> None:
    base = np.arange(24.0).reshape(4, 6)
    view = base[::2, 1::2]  # non-contiguous: DLPack carries the strides
    b = gr.from_dlpack(view)
    assert b.ctypes.data == view.ctypes.data and b.strides == view.strides
    g = gr.Graph()
    x = g.matrix(gr.float64, (2, 3), name="x")
    x.let(b)  # copied once into a contiguous buffer by let
    np.testing.assert_array_equal(x.value, view)
    y = x * 2.0
    with gr.TapeMachine(g) as m:
        m.run_all()
        np.testing.assert_array_equal(y.value, view * 2.0)


def test_node_values_export_through_dlpack() -> None:
    g = gr.Graph()
    x = g.vector(gr.float32, 4, name="x", value=[1.0, 2.0, 3.0, 4.0])
    y = gr.exp(x)
    with gr.TapeMachine(g) as m:
        m.run_all()
        v = y.value
    assert hasattr(v, "__dlpack__") and hasattr(v, "__dlpack_device__")
    assert v.__dlpack_device__() == (1, 0)  # (kDLCPU, 0)
    w = np.from_dlpack(v)
    assert w.ctypes.data == v.ctypes.data
    np.testing.assert_allclose(w, np.exp(np.array([1, 2, 3, 4], np.float32)), rtol=1e-6)
    # a node value can feed another graph through DLPack, still without a copy
    g2 = gr.Graph()
    z = g2.vector(gr.float32, 4, name="z")
    z.let(gr.from_dlpack(v))
    assert _stored_ptr(z) == v.ctypes.data


def test_from_dlpack_rejects_non_producers() -> None:
    with pytest.raises((TypeError, AttributeError)):
        gr.from_dlpack(object())


# ---------------------------------------------------------------------------------------------
# PyTorch and JAX (optional)
# ---------------------------------------------------------------------------------------------


def test_torch_tensor_in_and_node_value_out() -> None:
    torch: Any = pytest.importorskip("torch")
    t = torch.arange(6, dtype=torch.float32)
    a = gr.from_dlpack(t)
    assert a.ctypes.data == t.data_ptr(), "from_dlpack copied a CPU torch tensor"
    g = gr.Graph()
    x = g.vector(gr.float32, 6, name="x")
    x.let(a)
    assert _stored_ptr(x) == t.data_ptr()
    cost = gr.sum(x * x)
    (dx,) = gr.grad(cost, [x])
    with gr.TapeMachine(g) as m:
        m.run_all()
        grad = x.grad
        assert grad is not None
        back = torch.from_dlpack(grad)  # node values go to torch without a copy
        assert back.data_ptr() == grad.ctypes.data
        assert torch.equal(back, 2 * t)
    # memory is shared: a change made through torch shows in the array gr holds
    t[0] = 100.0
    assert a[0] == 100.0


def test_torch_dtypes_map_to_numpy() -> None:
    torch: Any = pytest.importorskip("torch")
    for tdt, name in [(torch.float32, "float32"), (torch.float64, "float64"), (torch.int32, "int32"),
                      (torch.int64, "int64"), (torch.bool, "bool")]:
        a = gr.from_dlpack(torch.zeros(3, dtype=tdt))
        assert a.dtype == np.dtype(name)


def test_jax_array_in() -> None:
    jnp: Any = pytest.importorskip("jax.numpy")
    jax: Any = pytest.importorskip("jax")
    # On a GPU machine JAX puts arrays on the GPU: from_dlpack copies those to the host.
    j = jax.device_put(jnp.arange(5, dtype=jnp.float32) * 0.5, jax.devices("cpu")[0])
    a = gr.from_dlpack(j)
    if jax.default_backend() != "cpu":
        np.testing.assert_array_equal(gr.from_dlpack(jnp.arange(5, dtype=jnp.float32)), np.arange(5, dtype=np.float32))
    np.testing.assert_array_equal(a, np.arange(5, dtype=np.float32) * 0.5)
    g = gr.Graph()
    x = g.vector(gr.float32, 5, name="x")
    x.let(a)
    f = gr.function(x, gr.sum(x))
    assert float(f(a)) == pytest.approx(5.0)
