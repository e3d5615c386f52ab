"""The exception classes of gorgon_rs (API.md "Errors").

Every error gorgon_rs raises on purpose derives from :class:`Error`, and each class also
derives from the builtin a NumPy user would expect, so ``except ValueError`` keeps working:

=================  =================  =====================================================
class              builtin base       raised for
=================  =================  =====================================================
ShapeError         ValueError         shapes that do not fit (built nodes, ``let`` values)
DTypeError         TypeError          dtypes that do not fit (float32 mixed with float64, ...)
GraphError         RuntimeError       misuse of graphs and machines (unbound input, closed
                                      machine, ``let`` on an op node, two graphs in one op)
NumericError       ArithmeticError    NaN/Inf caught by ``nan_guard=True``
FormatError        ValueError         truncated or corrupt files
DeviceError        RuntimeError       a device that cannot be used (no CUDA driver/device)
InternalError      RuntimeError       a bug in gorgon_rs (e.g. a caught Rust panic)
=================  =================  =====================================================

The native extension imports these classes (it never defines its own), so ``gr.ShapeError``
is the same class whether an error comes from Python or from Rust. Allocation failures raise
the builtin ``MemoryError``; missing files ``FileNotFoundError``.

This module must not import anything from gorgon_rs.

Example:
    >>> import gorgon_rs as gr
    >>> issubclass(gr.ShapeError, ValueError) and issubclass(gr.ShapeError, gr.Error)
    True
"""

from __future__ import annotations

__all__ = [
    "Error",
    "ShapeError",
    "DTypeError",
    "GraphError",
    "NumericError",
    "FormatError",
    "DeviceError",
    "InternalError",
]


class Error(Exception):
    """Base class of every gorgon_rs error.

    Example:
        >>> try:
        ...     gr.Graph().vector(gr.float32, 3).let([1.0, 2.0])
        ... except gr.Error as e:
        ...     print(type(e).__name__)
        ShapeError
    """


class ShapeError(Error, ValueError):
    """Shapes that do not fit: the message names the op, operands, shapes and location.

    Example:
        >>> g = gr.Graph()
        >>> a, b = g.matrix(gr.float32, (2, 3), name="a"), g.matrix(gr.float32, (4, 5), name="b")
        >>> try:
        ...     a @ b
        ... except ValueError as e:                     # a ShapeError is a ValueError
        ...     print(str(e).split(" [")[0])
        matmul: shapes (2, 3) and (4, 5) not aligned: 3 (dim 1) != 4 (dim 0)
    """


class DTypeError(Error, TypeError):
    """Dtypes that do not fit (there is no implicit float32/float64 promotion).

    Example:
        >>> g = gr.Graph()
        >>> try:
        ...     g.scalar(gr.float32) + g.scalar(gr.float64)
        ... except gr.DTypeError as e:
        ...     print(isinstance(e, TypeError))
        True
    """


class GraphError(Error, RuntimeError):
    """Misuse of a graph or machine (unbound input, closed machine, foreign node, ...).

    Example:
        >>> g = gr.Graph(); x = g.scalar(gr.float64, name="x"); y = x + 1
        >>> with gr.TapeMachine(g) as m:
        ...     try:
        ...         m.run_all()                         # x was never bound
        ...     except gr.GraphError as e:
        ...         print(isinstance(e, RuntimeError))
        True
    """


class NumericError(Error, ArithmeticError):
    """A NaN or Inf caught by ``nan_guard=True``; names the node and where it was built.

    Example:
        >>> g = gr.Graph(); x = g.scalar(gr.float64, value=-1.0); y = gr.sqrt(x)
        >>> with gr.TapeMachine(g, nan_guard=True) as m:
        ...     try:
        ...         m.run_all()
        ...     except gr.NumericError as e:
        ...         print(isinstance(e, ArithmeticError))
        True
    """


class FormatError(Error, ValueError):
    """A truncated, corrupt or mismatched file.

    Example:
        >>> with open("broken.safetensors", "wb") as f:
        ...     _ = f.write(b"not a safetensors file")
        >>> try:
        ...     gr.load("broken.safetensors")
        ... except gr.FormatError:
        ...     print("corrupt")
        corrupt
    """


class DeviceError(Error, RuntimeError):
    """A device that cannot be used; the message says why (no driver, no device, ...).

    Example:
        >>> if not gr.cuda.is_available():
        ...     try:
        ...         gr.TapeMachine(gr.Graph(), device="cuda")
        ...     except gr.DeviceError as e:
        ...         print("cuda" in str(e))
        ... else:
        ...     print(True)
        True
    """


class InternalError(Error, RuntimeError):
    """A bug in gorgon_rs (for example a Rust panic, caught before it reached Python).

    Please report it with the message. The interpreter keeps running.

    Example:
        >>> issubclass(gr.InternalError, RuntimeError)
        True
    """
