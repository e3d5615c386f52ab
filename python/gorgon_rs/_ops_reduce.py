"""Reductions of ``gorgon_rs.ops`` (re-exported there and on ``gr``): sums, means, extrema,
products, ``logsumexp``, ``norm``, ``argmax``/``argmin``, and the axis-wise normalizations
``softmax`` and ``log_softmax``."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ._ops_common import _axes, _fail, _int, _node, _norm_axis
from ._ops_elementwise import abs, cast, ne, pow, sqrt, square  # noqa: A004 - the API names
from .errors import ShapeError
from .graph import Axis, Node, _apply


def _reduce(op: str, x: Any, axis: Axis, keepdims: bool) -> Node:
    x = _node(x, op)
    if op in ("mean", "logsumexp") and x.dtype.kind in "iub":
        x = cast(x, np.float64)
    elif op in ("sum", "prod") and x.dtype.kind == "b":
        x = cast(x, np.int64)
    axes = _axes(axis)
    if axes is not None:
        axes = [_norm_axis(a, x.ndim, op, x) for a in axes]
        if len(set(axes)) != len(axes):
            raise _fail(ShapeError, op, [x], f"duplicate value in axis {axis!r}")
    return _apply(op, [x], axes=axes, keepdims=bool(keepdims))


def sum(x: Node, axis: Axis = None, keepdims: bool = False) -> Node:  # noqa: A001
    """Sum over ``axis`` (None: all; int, tuple, negative allowed).

    Example:
        >>> x = gr.Graph().matrix(gr.float64, (2, 3), value=np.arange(6.0).reshape(2, 3))
        >>> [v.tolist() for v in gr.function([], [gr.sum(x), gr.sum(x, axis=0)])()]
        [15.0, [3.0, 5.0, 7.0]]
    """
    return _reduce("sum", x, axis, keepdims)


def mean(x: Node, axis: Axis = None, keepdims: bool = False) -> Node:
    """Mean over ``axis`` (integers give float64).

    Example:
        >>> x = gr.Graph().matrix(gr.float64, (2, 3), value=np.arange(6.0).reshape(2, 3))
        >>> gr.function([], gr.mean(x, axis=1))().tolist()
        [1.0, 4.0]
    """
    return _reduce("mean", x, axis, keepdims)


def max(x: Node, axis: Axis = None, keepdims: bool = False) -> Node:  # noqa: A001
    """Maximum over ``axis``; a zero-length axis is a ShapeError.

    Example:
        >>> x = gr.Graph().matrix(gr.float64, (2, 3), value=np.arange(6.0).reshape(2, 3))
        >>> gr.function([], gr.max(x, axis=0))().tolist()
        [3.0, 4.0, 5.0]
    """
    return _reduce("max", x, axis, keepdims)


def min(x: Node, axis: Axis = None, keepdims: bool = False) -> Node:  # noqa: A001
    """Minimum over ``axis``; a zero-length axis is a ShapeError.

    Example:
        >>> x = gr.Graph().matrix(gr.float64, (2, 3), value=np.arange(6.0).reshape(2, 3))
        >>> gr.function([], gr.min(x, axis=-1, keepdims=True))().tolist()
        [[0.0], [3.0]]
    """
    return _reduce("min", x, axis, keepdims)


def prod(x: Node, axis: Axis = None, keepdims: bool = False) -> Node:
    """Product over ``axis``.

    Example:
        >>> x = gr.Graph().vector(gr.float64, 4)
        >>> gr.function(x, gr.prod(x))([1.0, 2.0, 3.0, 4.0]).tolist()
        24.0
    """
    return _reduce("prod", x, axis, keepdims)


def logsumexp(x: Node, axis: Axis = None, keepdims: bool = False) -> Node:
    """log(sum(exp(x))) over ``axis``, computed stably.

    Example:
        >>> x = gr.Graph().vector(gr.float64, 2)
        >>> round(float(gr.function(x, gr.logsumexp(x))([1000.0, 1000.0])), 4)
        1000.6931
    """
    return _reduce("logsumexp", x, axis, keepdims)


def norm(x: Node, p: float = 2, axis: Axis = None, keepdims: bool = False) -> Node:
    """The vector p-norm over ``axis`` (None: all elements): p = 2, 1, inf, -inf or any p > 0.

    Example:
        >>> v = gr.Graph().vector(gr.float64, 2, value=[3.0, 4.0])
        >>> gr.norm(v).shape
        ()
    """
    x = _node(x, "norm")
    if x.dtype.kind in "iub":
        x = cast(x, np.float64)
    if p == 2:
        return sqrt(sum(square(x), axis, keepdims))
    if p == 1:
        return sum(abs(x), axis, keepdims)
    if p == np.inf:
        return max(abs(x), axis, keepdims)
    if p == -np.inf:
        return min(abs(x), axis, keepdims)
    if p == 0:
        return sum(cast(ne(x, 0.0), x.dtype), axis, keepdims)
    p = float(p)
    return pow(sum(pow(abs(x), p), axis, keepdims), 1.0 / p)


def _arg(op: str, x: Any, axis: Optional[int], keepdims: bool) -> Node:
    x = _node(x, op)
    if axis is not None:
        axis = _norm_axis(_int(axis, "axis"), x.ndim, op, x)
    return _apply(op, [x], axis=axis, keepdims=bool(keepdims))


def argmax(x: Node, axis: Optional[int] = None, keepdims: bool = False) -> Node:
    """Index of the maximum along ``axis`` (None: flattened), int64, not differentiable.

    Example:
        >>> x = gr.Graph().vector(gr.float64, 3)
        >>> gr.function(x, gr.argmax(x))([1.0, 5.0, 3.0]).tolist()
        1
    """
    return _arg("argmax", x, axis, keepdims)


def argmin(x: Node, axis: Optional[int] = None, keepdims: bool = False) -> Node:
    """Index of the minimum along ``axis`` (None: flattened), int64, not differentiable.

    Example:
        >>> x = gr.Graph().vector(gr.float64, 3)
        >>> gr.function(x, gr.argmin(x))([1.0, 5.0, 3.0]).tolist()
        0
    """
    return _arg("argmin", x, axis, keepdims)


def softmax(x: Node, axis: int = -1) -> Node:
    """Softmax along ``axis`` (stable).

    Example:
        >>> x = gr.Graph().matrix(gr.float64, (1, 2))
        >>> gr.function(x, gr.softmax(x, axis=-1))([[0.0, 0.0]]).tolist()
        [[0.5, 0.5]]
    """
    x = _node(x, "softmax")
    return _apply("softmax", [x], axis=_norm_axis(_int(axis, "axis"), x.ndim, "softmax", x))


def log_softmax(x: Node, axis: int = -1) -> Node:
    """log(softmax(x)) along ``axis`` (stable).

    Example:
        >>> x = gr.Graph().vector(gr.float64, 2)
        >>> np.round(gr.function(x, gr.log_softmax(x))([0.0, 0.0]), 4).tolist()
        [-0.6931, -0.6931]
    """
    x = _node(x, "log_softmax")
    return _apply("log_softmax", [x], axis=_norm_axis(_int(axis, "axis"), x.ndim, "log_softmax", x))
