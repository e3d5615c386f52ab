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
    """Base class of every gorgon_rs error."""


class ShapeError(Error, ValueError):
    """Shapes that do not fit: the message names the op, operands, shapes and location."""


class DTypeError(Error, TypeError):
    """Dtypes that do not fit (there is no implicit float32/float64 promotion)."""


class GraphError(Error, RuntimeError):
    """Misuse of a graph or machine (unbound input, closed machine, foreign node, ...)."""


class NumericError(Error, ArithmeticError):
    """A NaN or Inf caught by ``nan_guard=True``; names the node and where it was built."""


class FormatError(Error, ValueError):
    """A truncated, corrupt or mismatched file."""


class DeviceError(Error, RuntimeError):
    """A device that cannot be used; the message says why (no driver, no device, ...)."""


class InternalError(Error, RuntimeError):
    """A bug in gorgon_rs (for example a Rust panic, caught before it reached Python)."""
