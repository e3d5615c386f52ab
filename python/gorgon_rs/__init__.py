"""gorgon_rs: Gorgonia-style expression graphs, automatic differentiation and tape machines
in Rust, with a NumPy-first Python API (the contract is API.md).

Example:
    >>> import gorgon_rs as gr
    >>> g = gr.Graph()
    >>> x = g.scalar(gr.float64, name="x")
    >>> y = g.scalar(gr.float64, name="y")
    >>> z = x + y
    >>> dx, dy = gr.grad(z, [x, y])
    >>> with gr.TapeMachine(g) as m:
    ...     x.let(2.0); y.let(2.5); m.run_all()
    ...     print(z.value, x.grad, y.grad)
    4.5 1.0 1.0

The package layout: ``errors`` (exception classes), ``graph`` (Graph, Node, lifting),
``ops`` (operation functions), ``machines`` (TapeMachine, LispMachine, function), ``cuda``,
and the helper modules ``nn``, ``solvers``, ``init``, ``io``, ``datasets`` and (optional)
``distributed``. The compiled core is ``gorgon_rs._native``.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
from typing import TYPE_CHECKING, Any, Callable, Optional, Union
from typing import cast as _cast

import numpy as np
import numpy.typing as npt

from .errors import (  # noqa: F401  (re-exported)
    DeviceError,
    DTypeError,
    Error,
    FormatError,
    GraphError,
    InternalError,
    NumericError,
    ShapeError,
)
from . import _native
from .graph import Graph, Node, _apply, _where, as_dtype
from .ops import *  # noqa: F401,F403  (every op function of API.md)
from .ops import __all__ as _ops_all
from .machines import CompiledFunction, LispMachine, TapeMachine, function
from . import cuda

if TYPE_CHECKING:  # what the dynamic imports below provide, for type checkers
    from . import datasets, distributed, init, io, nn, plot, solvers
    from .io import load, plot_history, save

__version__ = "0.1.0"

float32 = np.dtype("float32")
float64 = np.dtype("float64")
int32 = np.dtype("int32")
int64 = np.dtype("int64")
bool_ = np.dtype("bool")


def to_dot(g: Union[Graph, Node]) -> str:
    """Graphviz DOT text of a graph (op names, shapes, dtypes; gradient nodes dashed red).

    A node stands for its graph.

    Example:
        >>> g = gr.Graph(); x = g.scalar(gr.float64, name="x")
        >>> gr.to_dot(g).startswith("digraph")
        True
    """
    if isinstance(g, Node):
        g = g.graph
    if not isinstance(g, Graph):
        raise TypeError(f"to_dot takes a Graph, got {type(g).__name__}")
    return g.to_dot()


def render(g: Union[Graph, Node], path: Union[str, "os.PathLike[str]"], format: Optional[str] = None) -> str:
    """Draw the graph with Graphviz's ``dot`` into ``path`` (format from the extension:
    svg, png, pdf, ...). Raises RuntimeError saying how to install Graphviz when ``dot`` is
    missing. Returns the path.

    Example:
        >>> g = gr.Graph(); x = g.scalar(gr.float64, name="x"); y = gr.exp(x)
        >>> import shutil
        >>> if shutil.which("dot"):                    # Graphviz installed
        ...     print(gr.render(g, "graph.svg"))
        ... else:
        ...     print("graph.svg")
        graph.svg
    """
    p = os.fspath(path)
    fmt = format or (os.path.splitext(p)[1].lstrip(".").lower() or "svg")
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError(
            "gr.render needs Graphviz's `dot` program, which is not installed (or not on PATH). "
            "Install it with `apt-get install graphviz` (Debian/Ubuntu), `brew install graphviz` (macOS) "
            "or `conda install graphviz`; gr.to_dot(g) gives the DOT text without it.")
    r = subprocess.run([dot, f"-T{fmt}", "-o", p], input=to_dot(g).encode(), capture_output=True)
    if r.returncode != 0:
        raise RuntimeError(f"gr.render: `dot -T{fmt}` failed: {r.stderr.decode(errors='replace').strip()}")
    return p


def from_dlpack(obj: Any) -> npt.NDArray[Any]:
    """A NumPy array sharing ``obj``'s memory where it can (any ``__dlpack__`` producer on
    the CPU: PyTorch, JAX, CuPy host arrays, NumPy), ready for ``let``. Node values are NumPy
    arrays, so they export through DLPack as they are (``torch.from_dlpack(node.value)``).

    Example:
        >>> a = np.arange(3.0)
        >>> b = gr.from_dlpack(a)
        >>> b.ctypes.data == a.ctypes.data             # the same memory, no copy
        True
        >>> x = gr.Graph().vector(gr.float64, 3); x.let(b)

    An array on a GPU (JAX or PyTorch CUDA arrays) is copied to the host when its producer
    can do that through DLPack (NumPy ≥ 2.1); otherwise this raises BufferError saying so.
    """
    try:
        return np.from_dlpack(obj)
    except BufferError as first:
        try:
            return np.from_dlpack(obj, device="cpu", copy=True)  # type: ignore[call-arg,unused-ignore]
        except (TypeError, ValueError, BufferError, NotImplementedError):
            raise BufferError(
                f"gr.from_dlpack: {type(obj).__name__} is not in host memory and could not be "
                f"copied there through DLPack ({first}); copy it to the CPU first (e.g. "
                "np.asarray(x), x.cpu())") from first


def seed(n: int) -> None:
    """Make every initializer and dropout mask reproducible.

    Example:
        >>> gr.seed(0)
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0 or n >= 2**64:
        raise ValueError(f"seed must be an int in [0, 2**64), got {n!r}")
    _native.seed(int(n))
    try:
        from . import init as _init
    except ImportError:  # pragma: no cover - init is optional while it is being written
        return
    reseed = getattr(_init, "_reseed", None)
    if reseed is not None:
        reseed(int(n))


def custom_op(forward: Callable[..., npt.ArrayLike], backward: Optional[Callable[..., Any]] = None,
              shape_fn: Optional[Callable[..., Any]] = None, name: Optional[str] = None) -> Callable[..., Node]:
    """A new op from NumPy functions; returns a function that builds its nodes.

    ``forward(*arrays) -> array``; ``backward(grad_out, *arrays) -> tuple of grads`` (one per
    input; optional: without it the op is not differentiable); ``shape_fn(*shapes) -> shape``
    (default: the first operand's shape). The output dtype is the first operand's.

    Example:
        >>> double = gr.custom_op(lambda a: 2 * a, lambda g, a: (2 * g,), name="double")
        >>> x = gr.Graph().vector(gr.float64, 3)
        >>> gr.function(x, double(x))([1.0, 2.0, 3.0]).tolist()
        [2.0, 4.0, 6.0]
    """
    if not callable(forward):
        raise TypeError("custom_op: forward must be callable")
    op = _native.CustomOp(forward, backward, shape_fn, name)

    def build(*inputs: Any) -> Node:
        from .graph import _lift, _same_graph

        nodes = [i for i in inputs if isinstance(i, Node)]
        if not nodes:
            raise TypeError(f"custom op {op.name}: needs at least one Node operand")
        g = _same_graph(op.name, nodes)
        ids = [_lift(i, nodes[0])._id for i in inputs]
        return g._node(g._g.apply_custom(op, ids, _where()))

    build.__name__ = op.name
    build.__doc__ = getattr(forward, "__doc__", None)
    _cast(Any, build).op = op
    return build


def simd_level() -> str:
    """The SIMD instruction set the CPU kernels use ("avx512", "avx2", "neon" or "scalar").

    ``GORGON_SIMD=scalar`` (set before the first use) forces the scalar fallback.

    Example:
        >>> gr.simd_level() in ("avx512", "avx2", "neon", "scalar")
        True
    """
    return _native.simd_level()


# Helper modules written alongside the core: each is optional while it is being written.
_SUBMODULES = ("init", "nn", "solvers", "io", "datasets")
for _m in _SUBMODULES:
    try:
        globals()[_m] = importlib.import_module(f".{_m}", __name__)
    except ImportError as _e:  # pragma: no cover - only while a module is missing
        if _e.name not in (f"{__name__}.{_m}",):
            raise
del _m

try:
    from .io import load, plot_history, save  # noqa: F401
except ImportError:  # pragma: no cover
    pass


def __getattr__(name: str) -> Any:
    # gr.distributed is imported on first use (it is an optional extra).
    if name in ("distributed", "plot"):
        mod = importlib.import_module(f".{name}", __name__)
        globals()[name] = mod
        return mod
    raise AttributeError(f"module 'gorgon_rs' has no attribute {name!r}")


__all__ = [
    "float32", "float64", "int32", "int64", "bool_",
    "Graph", "Node", "TapeMachine", "LispMachine", "function",
    "Error", "ShapeError", "DTypeError", "GraphError", "NumericError", "FormatError", "DeviceError", "InternalError",
    "to_dot", "render", "from_dlpack", "seed", "custom_op", "cuda", "simd_level", "as_dtype",
    "init", "nn", "solvers", "io", "datasets", "distributed", "save", "load", "plot_history", "CompiledFunction",
    *_ops_all,
]
