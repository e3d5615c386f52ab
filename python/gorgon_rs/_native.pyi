"""Type stubs of the native extension ``gorgon_rs._native`` (built from crates/pybridge).

This file is the contract between the Rust bridge and the Python package. Users never import
``_native`` directly; the public API is in ``gorgon_rs/__init__.py`` and ../shared/API.md.

Conventions
- Node ids are ``int`` indices into a Graph's arena.
- ``location`` is the user's ``"file.py:LINE"`` captured by the Python layer (sys._getframe).
- dtypes cross the boundary as NumPy names: "float32", "float64", "int32", "int64", "bool".
- Every function raises the exception classes of ``gorgon_rs.errors`` (ShapeError, DTypeError,
  GraphError, NumericError, FormatError, DeviceError, InternalError) or MemoryError; a Rust panic
  becomes InternalError. Long-running calls release the GIL.
"""
from typing import Any, Optional, Sequence
import numpy as np
import numpy.typing as npt

class Graph:
    def __init__(self, stabilize: bool = True) -> None: ...
    @property
    def stabilize(self) -> bool: ...
    def leaf(self, dtype: str, shape: Sequence[int], name: Optional[str], location: Optional[str]) -> int:
        """An input/variable node (holds a value once ``let`` binds one)."""
    def constant(self, value: npt.NDArray[Any], name: Optional[str], location: Optional[str]) -> int:
        """A constant node holding a copy of ``value`` (dtype kept)."""
    def apply(self, op: str, inputs: Sequence[int], attrs: dict[str, Any], location: Optional[str]) -> int:
        """Builds (or finds, by hash-consing) an op node; shape/dtype checked now. Op names and
        attrs are listed in crates/autodiff/src/op.rs (``Op::parse``)."""
    def node_info(self, id: int) -> tuple[Optional[str], tuple[int, ...], str, str]:
        """(name, shape, dtype, kind) where kind is "leaf", "constant", "op:<name>" or "grad:<name>"."""
    def set_name(self, id: int, name: str) -> None: ...
    def let(self, id: int, value: npt.NDArray[Any]) -> None:
        """Binds a value to a leaf; same-dtype C-contiguous arrays are kept without a copy."""
    def value(self, id: int) -> npt.NDArray[Any]:
        """A fresh copy of the node's current value (leaf/constant, or from the last machine run)."""
    def grad_value(self, id: int) -> Optional[npt.NDArray[Any]]:
        """d(cost)/d(node) from the last run that computed it, else None."""
    def grad(self, cost: int, wrt: Sequence[int], allow_unused: bool = False) -> list[int]:
        """Symbolic reverse mode: new nodes in this graph."""
    def add_update(self, target: int, value: int) -> None:
        """After every run of a machine that contains ``value``, copy its value into leaf ``target``."""
    def to_dot(self) -> str: ...
    def num_nodes(self) -> int: ...
    def same(self, other: "Graph") -> bool: ...

class TapeMachine:
    def __init__(self, graph: Graph, device: str = "cpu", watch: Sequence[int] = (), nan_guard: bool = False,
                 trace: bool = False, outputs: Optional[Sequence[int]] = None) -> None:
        """Compiles the graph (or only what ``outputs`` need) into a program."""
    def run_all(self) -> None: ...
    def reset(self) -> None: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    def program(self) -> list[str]: ...
    def watched(self) -> dict[int, list[npt.NDArray[Any]]]: ...
    def trace_log(self) -> list[str]: ...
    def output_values(self, ids: Sequence[int]) -> list[npt.NDArray[Any]]: ...

class LispMachine:
    def __init__(self, graph: Graph, backprop: bool = True, device: str = "cpu", watch: Sequence[int] = (),
                 nan_guard: bool = False, trace: bool = False) -> None: ...
    def run_all(self) -> None: ...
    def reset(self) -> None: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    def program(self) -> list[str]: ...
    def watched(self) -> dict[int, list[npt.NDArray[Any]]]: ...
    def trace_log(self) -> list[str]: ...

def solver_step(graph: Graph, rule: str, hyper: dict[str, float], prep: dict[str, Optional[float]], t: int,
                params: Sequence[int], states: Sequence[list[npt.NDArray[Any]]]) -> None:
    """One fused update of each parameter leaf from its gradient, in Rust.
    rule: "sgd" (lr, momentum, nesterov, dampening) | "adagrad" (lr, eps) | "rmsprop" (lr, alpha, eps)
    | "adam" (lr, beta1, beta2, eps) | "adamw" (+ weight_decay) | "adadelta" (lr, rho, eps) | "bb" (lr).
    prep: batch_size, clip (None = off), l1, l2. states[i] are that parameter's state arrays
    (float, same shape/dtype as the parameter), updated in place; lengths per rule: sgd 1 (momentum
    buffer, unused when momentum == 0), adagrad 1, rmsprop 1, adam/adamw 2, adadelta 2, bb 2 (previous w, previous g).
    t is the 1-based step count. A parameter without a gradient raises GraphError naming it."""

def save_safetensors(path: str, items: Sequence[tuple[str, npt.NDArray[Any]]]) -> None:
    """Writes a temporary file in the same folder, fsyncs, then renames over ``path``."""
def load_safetensors(path: str) -> dict[str, npt.NDArray[Any]]:
    """FormatError for truncated/corrupt/hostile files, FileNotFoundError when missing."""

def seed(n: int) -> None: ...
def cuda_is_available() -> bool: ...
def cuda_device_count() -> int: ...
def cuda_unavailable_reason() -> Optional[str]: ...
def simd_level() -> str: ...
def _debug_panic(message: str) -> None:
    """Panics inside Rust on purpose (tests the panic → InternalError conversion)."""
