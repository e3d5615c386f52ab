"""Machines and compiled functions: ``gr.TapeMachine``, ``gr.LispMachine``, ``gr.function``.

A machine compiles a graph once (in Rust, GIL released) and runs it many times; the hot
methods (``run_all``, ``reset``) are the native methods themselves, bound on the instance,
so a call costs no Python frame. ``gr.function`` returns the native ``Function`` object: one
native call binds the inputs, runs and returns the outputs' values.

This module owns device-string checking (``"cpu"``, ``"cuda"``, ``"cuda:N"``), the mapping of
watched node ids back to :class:`~gorgon_rs.graph.Node` objects, and the context-manager
protocol. It holds no numerics.

Example:
    >>> import gorgon_rs as gr
    >>> g = gr.Graph()
    >>> x = g.scalar(gr.float64, name="x"); y = g.scalar(gr.float64, name="y")
    >>> z = x + y
    >>> with gr.TapeMachine(g) as m:
    ...     x.let(2.0); y.let(2.5); m.run_all()
    ...     print(z.value)
    4.5
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Protocol, Self, Sequence, TypeVar, Union, cast, overload

import numpy.typing as npt

from . import _native
from .errors import DeviceError, GraphError
from .graph import Graph, Node, _convert_for, _same_graph

__all__ = ["TapeMachine", "LispMachine", "function", "check_device", "CompiledFunction"]

_R_co = TypeVar("_R_co", covariant=True)

_CUDA_RE = re.compile(r"(?:cuda|gpu)(?::(\d+))?")


def check_device(device: str) -> str:
    """Validates a device string: ``"cpu"`` passes; ``"cuda"``/``"cuda:N"`` raise
    :class:`~gorgon_rs.DeviceError` with the reason when that device cannot be used; anything
    else is a ValueError.

    Example:
        >>> check_device("cpu")
        'cpu'
    """
    if not isinstance(device, str):
        raise TypeError(f"device must be a str such as 'cpu' or 'cuda:0', got {type(device).__name__}")
    d = device.strip().lower()
    if d == "cpu":
        return d
    m = _CUDA_RE.fullmatch(d)
    if m is None:
        raise ValueError(f"unknown device {device!r}: use 'cpu', 'cuda' or 'cuda:N'")
    if not _native.cuda_is_available():
        reason = _native.cuda_unavailable_reason() or "no usable CUDA device"
        raise DeviceError(f"device {device!r} is not available: {reason}")
    n = int(m.group(1) or 0)
    count = _native.cuda_device_count()
    if n >= count:
        raise DeviceError(f"device {device!r} is not available: there {'is' if count == 1 else 'are'} {count} CUDA device(s)")
    return f"cuda:{n}"


def _graph_of(g: Union[Graph, Node]) -> Graph:
    if isinstance(g, Graph):
        return g
    if isinstance(g, Node):
        return g.graph
    raise TypeError(f"expected a gorgon_rs Graph, got {type(g).__name__}")


def _ids(g: Graph, nodes: Union[Node, Iterable[Node], None], what: str) -> list[int]:
    if nodes is None:
        return []
    if isinstance(nodes, Node):
        nodes = [nodes]
    out = []
    for n in nodes:
        if not isinstance(n, Node):
            raise TypeError(f"{what} takes nodes, got {type(n).__name__}")
        if n.graph is not g:
            raise GraphError(f"{what}: node {n._describe()} belongs to another graph than the machine's")
        out.append(n._id)
    return out


class _Machine:
    """What both machines share: running, resetting, closing, inspecting."""

    _m: Union[_native.TapeMachine, _native.LispMachine]
    graph: Graph
    device: str

    def _bind_fast_methods(self) -> None:
        # The native bound methods themselves: no Python frame per call.
        fast = cast(Any, self)  # instance attributes shadowing the methods below
        fast.run_all = self._m.run_all
        fast.reset = self._m.reset

    def run_all(self) -> None:
        """Run the program once (the GIL is released while it runs; a tiny program of a few
        small elementwise steps runs at once with it held, which is cheaper).

        Example:
            >>> g = gr.Graph(); x = g.scalar(gr.float64, value=2.0); y = x * x
            >>> with gr.TapeMachine(g) as m:
            ...     m.run_all()
            ...     print(float(y.value))
            4.0
        """
        self._m.run_all()

    def reset(self) -> None:
        """Forget the last run's results; bound input/variable values stay.

        Example:
            >>> g = gr.Graph(); x = g.scalar(gr.float64, value=2.0); y = x * x
            >>> with gr.TapeMachine(g) as m:
            ...     m.run_all(); m.reset()
            ...     print(y.has_value, float(x.value))
            False 2.0
        """
        self._m.reset()

    def close(self) -> None:
        """Free every buffer the machine holds, now. Later runs raise GraphError; values of
        inputs/variables and arrays already returned stay valid. ``with`` calls it.

        Example:
            >>> g = gr.Graph(); x = g.scalar(gr.float64, value=2.0); y = x * x
            >>> m = gr.TapeMachine(g); m.run_all(); m.close()
            >>> m.closed, float(x.value)
            (True, 2.0)
        """
        self._m.close()

    @property
    def closed(self) -> bool:
        """True after :meth:`close`.

        Example:
            >>> with gr.TapeMachine(gr.Graph()) as m:
            ...     pass
            >>> m.closed
            True
        """
        return self._m.closed

    def program(self) -> list[str]:
        """The compiled program, one printable instruction per line.

        Example:
            >>> g = gr.Graph(); x = g.scalar(gr.float64, name="x"); y = g.scalar(gr.float64, name="y")
            >>> z = x + y
            >>> with gr.TapeMachine(g) as m:
            ...     print(len(m.program()) >= 1)
            True
        """
        return list(self._m.program())

    @property
    def watched(self) -> dict[Node, list[npt.NDArray[Any]]]:
        """The values recorded for each watched node, one array per run.

        Example:
            >>> g = gr.Graph(); x = g.scalar(gr.float64); y = x * 2
            >>> with gr.TapeMachine(g, watch=[y]) as m:
            ...     for v in (1.0, 2.0):
            ...         x.let(v); m.run_all()
            ...     print([float(a) for a in m.watched[y]])
            [2.0, 4.0]
        """
        g = self.graph
        return {g._node(i): v for i, v in self._m.watched().items()}

    @property
    def trace(self) -> list[str]:
        """Per-instruction timings of the last run (with ``trace=True``).

        Example:
            >>> g = gr.Graph(); x = g.scalar(gr.float64, value=1.0); y = gr.exp(x)
            >>> with gr.TapeMachine(g, trace=True) as m:
            ...     m.run_all()
            ...     print(len(m.trace) > 0)
            True
        """
        return list(self._m.trace_log())

    def trace_log(self) -> list[str]:
        """Same as :attr:`trace`.

        Example:
            >>> with gr.TapeMachine(gr.Graph(), trace=True) as m:
            ...     log = m.trace_log()
        """
        return list(self._m.trace_log())

    def transfers(self) -> tuple[int, int]:
        """``(uploads, downloads)``: how many tensors were copied between host and device so
        far. A GPU machine copies only when a bound value changed (``let``) and when a value
        is read (``.value``); a CPU machine always reports ``(0, 0)``.

        Example:
            >>> with gr.TapeMachine(gr.Graph()) as m:
            ...     m.transfers()
            (0, 0)
        """
        up, down = self._m.transfers()
        return int(up), int(down)

    @property
    def device_name(self) -> str:
        """``"cpu"``, or the name of the GPU this machine runs on.

        Example:
            >>> with gr.TapeMachine(gr.Graph()) as m:
            ...     m.device_name
            'cpu'
        """
        return str(self._m.device_name)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class TapeMachine(_Machine):
    """Compiles a graph once into a flat program and runs it many times.

    Args:
        g: the graph.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (DeviceError with the reason when the
            device cannot be used).
        watch: nodes whose values are recorded after each run (:attr:`watched`).
        nan_guard: raise NumericError naming the first node producing NaN/Inf.
        trace: record per-instruction timings (:attr:`trace`).
        outputs: compile only what these nodes need (default: the whole graph).

    Example:
        >>> g = gr.Graph()
        >>> x = g.scalar(gr.float64, name="x"); y = g.scalar(gr.float64, name="y")
        >>> z = x + y
        >>> with gr.TapeMachine(g) as m:               # compiles once
        ...     for a in (1.0, 2.0):
        ...         x.let(a); y.let(2.5); m.run_all()  # runs many times
        ...         print(float(z.value))
        3.5
        4.5
    """

    def __init__(self, g: Union[Graph, Node], device: str = "cpu", watch: Union[Node, Iterable[Node], None] = None,
                 nan_guard: bool = False, trace: bool = False, outputs: Union[Node, Iterable[Node], None] = None) -> None:
        self.graph = _graph_of(g)
        dev = check_device(device)
        outs = None if outputs is None else _ids(self.graph, outputs, "TapeMachine(outputs=)")
        self._m = _native.TapeMachine(self.graph._g, dev, _ids(self.graph, watch, "TapeMachine(watch=)"),
                                      bool(nan_guard), bool(trace), outs)
        self.device = dev
        self._bind_fast_methods()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<gorgon_rs.TapeMachine on {self.device}, {state}, {len(self.program())} instructions>"


class LispMachine(_Machine):
    """The eager machine: runs forward, then backprop from the graph's one scalar cost.

    With ``backprop=True`` the cost is the one scalar float node that no other node uses
    (none or several: GraphError); after :meth:`run_all`, ``.grad`` is set on every float
    input and variable the cost depends on.

    Example:
        >>> g = gr.Graph()
        >>> w = g.vector(gr.float64, 2, name="w", value=[1.0, -2.0])
        >>> cost = gr.sum(w * w)                       # the one scalar cost
        >>> with gr.LispMachine(g) as m:
        ...     m.run_all()
        ...     print(float(cost.value), w.grad.tolist())
        5.0 [2.0, -4.0]
    """

    def __init__(self, g: Union[Graph, Node], backprop: bool = True, device: str = "cpu",
                 watch: Union[Node, Iterable[Node], None] = None, nan_guard: bool = False, trace: bool = False) -> None:
        self.graph = _graph_of(g)
        dev = check_device(device)
        self._m = _native.LispMachine(self.graph._g, bool(backprop), dev, _ids(self.graph, watch, "LispMachine(watch=)"),
                                      bool(nan_guard), bool(trace))
        self.device = dev
        self._bind_fast_methods()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<gorgon_rs.LispMachine on {self.device}, {state}>"


class CompiledFunction(Protocol[_R_co]):
    """The type of what :func:`function` returns (a native object): ``f(*values)`` returns
    one array (``CompiledFunction[NDArray]``, for a single output node) or a list of arrays
    (``CompiledFunction[list[NDArray]]``, for a list of outputs).

    Example:
        >>> g = gr.Graph(); x = g.vector(gr.float64, 2)
        >>> f: gr.CompiledFunction[np.ndarray] = gr.function(x, x * 2)
        >>> f([1.0, 2.0]).tolist(), f.n_inputs
        ([2.0, 4.0], 1)
        >>> f.close()
    """

    def __call__(self, *values: Any) -> _R_co:
        """Bind each input (like ``let``), run with the GIL released (a tiny program runs with
        it held), return the outputs."""
        ...

    def close(self) -> None:
        """Free the compiled program's buffers now (later calls raise GraphError)."""
        ...

    def program(self) -> list[str]:
        """The compiled program, one printable instruction per line."""
        ...

    @property
    def n_inputs(self) -> int:
        """How many values a call takes."""
        ...


@overload
def function(inputs: Union[Node, Sequence[Node]], outputs: Node, device: str = "cpu") -> CompiledFunction[npt.NDArray[Any]]: ...


@overload
def function(inputs: Union[Node, Sequence[Node]], outputs: Sequence[Node], device: str = "cpu") -> CompiledFunction[list[npt.NDArray[Any]]]: ...


def function(inputs: Union[Node, Sequence[Node]], outputs: Union[Node, Sequence[Node]], device: str = "cpu") -> CompiledFunction[Any]:
    """Compile a callable: ``f(*values)`` binds each input, runs, and returns the output's
    value (one array for a single output node, a list for a list of outputs).

    Only what ``outputs`` need is compiled. Values follow ``let``'s rules (zero-copy for
    C-contiguous arrays of the input's dtype, ``same_kind`` conversion otherwise). The
    returned object also has ``close()``, ``program()`` and ``n_inputs``
    (:class:`CompiledFunction`). ``device`` is ``"cpu"``, ``"cuda"`` or ``"cuda:N"``, as for
    :class:`TapeMachine`.

    Example:
        >>> g = gr.Graph(); x = g.scalar(gr.float64); y = g.scalar(gr.float64)
        >>> f = gr.function(inputs=[x, y], outputs=x + y)
        >>> f(2.0, 2.5)
        array(4.5)
        >>> gr.function([x, y], [x + y, x * y])(2.0, 3.0)
        [array(5.), array(6.)]
    """
    ins: list[Node] = [inputs] if isinstance(inputs, Node) else list(inputs)
    single = isinstance(outputs, Node)
    outs: list[Node] = [outputs] if isinstance(outputs, Node) else list(outputs)
    nodes = ins + outs
    for n in nodes:
        if not isinstance(n, Node):
            raise TypeError(f"function: inputs and outputs must be nodes, got {type(n).__name__}")
    if not outs:
        raise ValueError("function: give at least one output node")
    g = _same_graph("function", nodes)

    def convert(i: int, value: Any) -> npt.NDArray[Any]:
        return _convert_for(ins[i], value)

    dev = check_device(device)
    f = _native.Function(g._g, [n._id for n in ins], [n._id for n in outs], single, convert, dev)
    return cast("CompiledFunction[Any]", f)
