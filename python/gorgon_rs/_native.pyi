"""Type stubs of the native extension ``gorgon_rs._native`` (built from crates/pybridge).

This file is the contract between the Rust bridge and the Python package. Users never import
``_native`` directly; the public API is in ``gorgon_rs/__init__.py`` and ../shared/API.md.

Conventions
- Node ids are ``int`` indices into a Graph's arena; a negative or unknown id raises GraphError.
- ``location`` is the user's ``"file.py:LINE"`` captured by the Python layer (sys._getframe).
- dtypes cross the boundary as NumPy names: "float32", "float64", "int32", "int64", "bool".
- Every function raises the exception classes of ``gorgon_rs.errors`` (ShapeError, DTypeError,
  GraphError, NumericError, FormatError, DeviceError, InternalError) or MemoryError /
  FileNotFoundError / OSError; a Rust panic becomes InternalError (never PanicException).
  An exception raised by a custom op's Python callback comes back unchanged.
- Long-running calls (runs, compilation, solver steps, file I/O) release the GIL; no call
  blocks on a Rust lock while holding the GIL. A run of a tiny program (a few small
  elementwise steps: ``TapeMachine::is_quick`` in crates/autodiff/src/vm.rs) whose locks are
  free runs with the GIL held: releasing and re-taking it would cost more than the run.
- Arrays returned are always new NumPy arrays (never views of machine buffers).
"""
from typing import Any, Callable, Optional, Self, Sequence, final

import numpy.typing as npt

__all__ = [
    "Graph", "NodeBase", "TapeMachine", "LispMachine", "Function", "LentBuffer", "CustomOp", "solver_step", "save_safetensors",
    "load_safetensors", "seed", "cuda_is_available", "cuda_device_count", "cuda_unavailable_reason", "cuda_memory_info",
    "simd_level", "_debug_panic", "dtypes",
]

# The classes are PyO3 classes: built by ``__new__`` (there is no Python ``__init__``) and
# final (they cannot be subclassed), except ``NodeBase``, the base of ``gorgon_rs.Node``. A default written ``...`` is an empty list (``watch``).
# ``python -m mypy.stubtest gorgon_rs._native`` (run by ``make test``) checks this file
# against the compiled module.

@final
class Graph:
    def __new__(cls, stabilize: bool = True) -> Self: ...
    @property
    def stabilize(self) -> bool: ...
    @property
    def id(self) -> int:
        """A process-unique id of the graph."""
    def leaf(self, dtype: str, shape: Sequence[int], name: Optional[str] = None, location: Optional[str] = None) -> int:
        """An input/variable node (holds a value once ``let`` binds one). Negative dims: ShapeError."""
    def constant(self, value: Any, name: Optional[str] = None, location: Optional[str] = None) -> int:
        """A constant node holding a copy of ``value`` (dtype kept; other numeric dtypes become
        float64; non-numeric values raise DTypeError). Small unnamed constants are shared."""
    def apply(self, op: str, inputs: Sequence[int], attrs: Optional[dict[str, Any]] = None,
              location: Optional[str] = None) -> int:
        """Builds (or finds, by hash-consing) an op node; shape/dtype checked now. Op names and
        attrs are listed in crates/autodiff/src/op.rs (``Op::parse``). Attr values: None, bool,
        int, float, str (dtype names) or sequences of ints."""
    def apply_node(self, op: str, inputs: list[int], attrs: Optional[dict[str, Any]] = None,
                   location: Optional[str] = None) -> tuple[int, Optional[str], tuple[int, ...], str]:
        """``apply``, also returning ``(id, name, shape, dtype)`` of the node in the same call."""
    def apply_custom(self, op: "CustomOp", inputs: Sequence[int], location: Optional[str] = None) -> int:
        """Builds a node of a Python custom op (output dtype: the first input's)."""
    def node_info(self, id: int) -> tuple[Optional[str], tuple[int, ...], str, str]:
        """(name, shape, dtype, kind) where kind is "leaf", "constant", "op:<name>" or "grad:<name>"."""
    def label(self, id: int) -> str:
        """The node's name, or a generated ``op#id`` label (as used in messages)."""
    def location(self, id: int) -> Optional[str]:
        """Where the node was built (``file.py:LINE``), if known."""
    def inputs(self, id: int) -> list[int]:
        """Operand ids of a node."""
    def set_name(self, id: int, name: str) -> None: ...
    def let(self, id: int, value: Any) -> bool:
        """Binds a value to a leaf without any conversion work and returns True: a NumPy array
        of exactly the node's dtype (kept without a copy when C-contiguous and aligned), or a
        Python scalar (bool/int/float) for a 0-d node where NumPy's same_kind rule allows it.
        Returns False, binding nothing, for anything else: the Python layer then converts the
        value once (``same_kind`` casting) and calls again. GraphError for a non-leaf node (checked
        first); ShapeError for an exact-dtype array of the wrong shape."""
    def has_value(self, id: int) -> bool:
        """True when ``value(id)`` would succeed."""
    def value(self, id: int) -> npt.NDArray[Any]:
        """A new array with the node's current value (leaf/constant, or from the last machine
        run that computed it); GraphError naming the node when it has none."""
    def value_ptr(self, id: int) -> int:
        """The data pointer of a leaf's or constant's stored value (0 when none): lets tests
        prove that ``let`` kept a NumPy array without copying it."""
    def grad_value(self, id: int) -> Optional[npt.NDArray[Any]]:
        """d(cost)/d(node) from the last run that computed it, else None."""
    def set_grad(self, id: int, value: npt.NDArray[Any]) -> None:
        """Overwrites the gradient of ``id`` computed by the last run (e.g. all-reduced), so
        solvers see it. ShapeError when shape/dtype differ; GraphError when none was computed."""
    def grad(self, cost: int, wrt: Sequence[int], allow_unused: bool = False) -> list[int]:
        """Symbolic reverse mode: new nodes in this graph."""
    def add_update(self, target: int, value: int) -> None:
        """After every run of a machine that contains ``value``, copy its value into leaf ``target``."""
    def to_dot(self) -> str: ...
    def num_nodes(self) -> int: ...
    def same(self, other: "Graph") -> bool: ...

class NodeBase:
    """The native part of ``gorgon_rs.Node`` (the one native class meant to be subclassed):
    the node's graph and id, and the let/run/value cycle's per-call methods at C level."""
    def __new__(cls, graph: Graph, id: int) -> Self:
        """A handle on node ``id`` of ``graph`` (checked when used: GraphError for an id the
        graph does not have, as for the Graph methods)."""
    def let(self, value: npt.ArrayLike) -> None:
        """``Graph.let(id, value)``; a value it refuses is converted by
        ``gorgon_rs.graph._convert_for`` (NumPy ``same_kind`` casting) and bound."""
    @property
    def value(self) -> npt.NDArray[Any]:
        """``Graph.value(id)``: a new array with the node's current value."""

@final
class TapeMachine:
    def __new__(cls, graph: Graph, device: str = "cpu", watch: Sequence[int] = ..., nan_guard: bool = False,
                trace: bool = False, outputs: Optional[Sequence[int]] = None) -> Self:
        """Compiles the graph (or only what ``outputs`` and ``watch`` need) into a program, GIL
        released. device "cuda"/"cuda:N" runs it on that GPU (DeviceError with the reason when
        it cannot be used); unknown device: ValueError."""
    def run_all(self) -> None:
        """Runs the program once with the GIL released (a tiny program: held)."""
    def reset(self) -> None: ...
    def close(self) -> None:
        """Frees every buffer now (idempotent); later runs raise GraphError."""
    @property
    def closed(self) -> bool: ...
    def program(self) -> list[str]: ...
    def watched(self) -> dict[int, list[npt.NDArray[Any]]]: ...
    def trace_log(self) -> list[str]: ...
    def output_values(self, ids: Sequence[int]) -> list[npt.NDArray[Any]]: ...
    def transfers(self) -> tuple[int, int]: ...
    @property
    def device_name(self) -> str: ...

@final
class LispMachine:
    def __new__(cls, graph: Graph, backprop: bool = True, device: str = "cpu", watch: Sequence[int] = ...,
                nan_guard: bool = False, trace: bool = False) -> Self: ...
    def run_all(self) -> None: ...
    def reset(self) -> None: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    def program(self) -> list[str]: ...
    def watched(self) -> dict[int, list[npt.NDArray[Any]]]: ...
    def trace_log(self) -> list[str]: ...
    def output_values(self, ids: Sequence[int]) -> list[npt.NDArray[Any]]: ...
    def transfers(self) -> tuple[int, int]: ...
    @property
    def device_name(self) -> str: ...

@final
class LentBuffer:
    """The base object of a NumPy array over a result buffer a machine lent out (large
    results of compiled functions reach Python without a copy; the buffer returns to its
    machine when the last array over it is gone)."""
    def __len__(self) -> int: ...

@final
class Function:
    """A compiled callable (what ``gr.function`` returns): ``f(*values)`` binds each input leaf
    (like ``Graph.let``; other values go through ``converter(index, value) -> ndarray``), runs
    with the GIL released and returns the outputs' values: one array when ``single``, else a list."""
    def __new__(cls, graph: Graph, inputs: Sequence[int], outputs: Sequence[int], single: bool,
                converter: Callable[[int, Any], npt.NDArray[Any]], device: str = "cpu") -> Self: ...
    def __call__(self, *args: Any) -> Any: ...
    def close(self) -> None: ...
    def program(self) -> list[str]: ...
    @property
    def n_inputs(self) -> int: ...

@final
class CustomOp:
    """A user op: ``forward(*arrays) -> array``; ``backward(grad_out, *arrays) -> tuple of
    grads`` (optional); ``shape_fn(*shapes) -> shape`` (optional; default: the first operand's).
    Callbacks run with the GIL re-acquired from inside a run; they get new arrays."""
    def __new__(cls, forward: Callable[..., Any], backward: Optional[Callable[..., Any]] = None,
                shape_fn: Optional[Callable[..., Any]] = None, name: Optional[str] = None) -> Self: ...
    @property
    def name(self) -> str: ...
    @property
    def has_backward(self) -> bool: ...

def solver_step(graph: Graph, rule: str, hyper: dict[str, float], prep: dict[str, Optional[float]], t: int,
                params: Sequence[int], states: Sequence[list[npt.NDArray[Any]]]) -> None:
    """One fused update of each parameter leaf from its gradient, in Rust (GIL released).
    rule: "sgd" (lr, momentum, nesterov, dampening) | "adagrad" (lr, eps) | "rmsprop" (lr, alpha, eps)
    | "adam" (lr, beta1, beta2, eps) | "adamw" (+ weight_decay) | "adadelta" (lr, rho, eps) | "bb" (lr).
    prep: batch_size, clip (None = off), l1, l2. states[i] are that parameter's state arrays
    (writable, C-contiguous float32/float64, same shape/dtype as the parameter), updated in place;
    lengths per rule: sgd 1 (momentum buffer, unused when momentum == 0), adagrad 1, rmsprop 1,
    adam/adamw 2, adadelta 2, bb 2 (previous w, previous g).
    t is the 1-based step count. A parameter without a gradient raises GraphError naming it."""

def save_safetensors(path: str, items: Sequence[tuple[str, npt.NDArray[Any]]]) -> None:
    """Writes a temporary file in the same folder, fsyncs, then renames over ``path``."""
def load_safetensors(path: str) -> dict[str, npt.NDArray[Any]]:
    """FormatError for truncated/corrupt/hostile files, FileNotFoundError when missing."""

def seed(n: int) -> None: ...
def cuda_is_available() -> bool: ...
def cuda_device_count() -> int: ...
def cuda_unavailable_reason() -> Optional[str]: ...
def cuda_memory_info(device: int = 0) -> tuple[int, int]: ...
def simd_level() -> str:
    """"avx512", "avx2", "neon" or "scalar" (GORGON_SIMD can lower it)."""
def dtypes() -> list[str]:
    """The dtype names the bridge accepts."""
def _debug_panic(message: str) -> None:
    """Panics inside Rust on purpose (tests the panic → InternalError conversion)."""
