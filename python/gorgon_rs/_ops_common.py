"""Argument checks shared by the op modules (``gorgon_rs.ops`` and the ``_ops_*`` modules
it re-exports): error construction in the native graph's message format, and normalization
of ints and axes. Package-private; holds no state."""

from __future__ import annotations

import numbers
from typing import Any, Optional, Sequence
from typing import cast as _cast

import numpy as np

from .errors import ShapeError
from .graph import Axis, Node, _where


def _fail(cls: type[Exception], op: str, nodes: Sequence[Node], msg: str) -> Exception:
    ops = ", ".join(n._describe() for n in nodes)
    return cls(f"{op}: {msg} [op {op}; operands: {ops}] (built at {_where()})")


def _node(x: Any, op: str) -> Node:
    if not isinstance(x, Node):
        raise TypeError(f"{op}: expected a gorgon_rs Node, got {type(x).__name__}")
    return x


def _int(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (numbers.Integral, np.integer)):
        raise TypeError(f"{what} must be an int, got {v!r}")
    return int(v)


def _norm_axis(ax: int, ndim: int, op: str, x: Node) -> int:
    if not -ndim <= ax < ndim:
        raise _fail(ShapeError, op, [x], f"axis {ax} is out of bounds for array of dimension {ndim}")
    return ax % ndim


def _axes(axis: Axis) -> Optional[list[int]]:
    if axis is None:
        return None
    if isinstance(axis, (numbers.Integral, np.integer)) and not isinstance(axis, bool):
        return [int(axis)]
    return [_int(a, "axis") for a in _cast("Sequence[Any]", axis)]
