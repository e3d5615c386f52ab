"""The operations of API.md "Operations": functions on ``gr`` that build nodes.

Each function lifts non-node operands (Python scalars adopt the other operand's dtype; NumPy
arrays keep theirs), follows NumPy for shapes, broadcasting and integer true division, and
either calls one native op (names in ``crates/autodiff/src/op.rs``) or composes a few.
Validation that needs the original operands (``matmul`` of 1-D operands, indexing) happens
here; everything else is checked by the native graph, whose errors name the op, operands,
shapes, dtypes and the user's ``file.py:LINE``. This module holds no state.

The functions live in package-private modules by kind (``_ops_elementwise``, ``_ops_reduce``,
``_ops_linalg``, ``_ops_shape``, with the shared checks in ``_ops_common``); this module
re-exports them (its ``__all__`` is what ``gr`` exports) and defines ``grad`` and ``let``.

Example:
    >>> import numpy as np, gorgon_rs as gr
    >>> g = gr.Graph()
    >>> x = g.matrix(gr.float64, (2, 3), name="x")
    >>> gr.softmax(x, axis=-1).shape, gr.sum(x, axis=0).shape, (x @ x.T).shape
    ((2, 3), (3,), (2, 2))
"""

from __future__ import annotations

from typing import Iterable, Union

import numpy.typing as npt

from ._ops_common import _node
from ._ops_elementwise import (abs, add, cast, ceil, clip, cos, cube, div, eq, exp, expm1, floor,  # noqa: A004
                               floordiv, ge, gt, inverse, inverse_sqrt, le, leaky_relu, log, log1p, log2, lt,
                               maximum, minimum, mish, mul, ne, neg, pow, relu, sigmoid, sign, sin, softplus, sqrt,
                               square, sub, tanh, where)
from ._ops_linalg import dot, matmul, outer, tensordot
from ._ops_reduce import (argmax, argmin, log_softmax, logsumexp, max, mean, min, norm, prod,  # noqa: A004
                          softmax, sum)
from ._ops_shape import _getitem as _getitem  # node[...] (graph.Node.__getitem__)
from ._ops_shape import broadcast_to, concat, expand_dims, one_hot, reshape, squeeze, stack, take, transpose
from .graph import Node, _same_graph

__all__ = [
    "add", "sub", "mul", "div", "floordiv", "pow", "maximum", "minimum",
    "lt", "le", "gt", "ge", "eq", "ne",
    "neg", "abs", "sign", "exp", "log", "log1p", "expm1", "log2", "sqrt", "square", "cube",
    "inverse", "inverse_sqrt", "sin", "cos", "tanh", "sigmoid", "softplus", "relu", "mish",
    "floor", "ceil", "leaky_relu", "clip", "where", "cast",
    "sum", "mean", "max", "min", "prod", "logsumexp", "norm", "argmax", "argmin",
    "matmul", "dot", "outer", "tensordot",
    "reshape", "transpose", "concat", "stack", "squeeze", "expand_dims", "broadcast_to", "take",
    "one_hot", "softmax", "log_softmax", "grad", "let",
]


# ---------------------------------------------------------------------------------------------
# Differentiation and binding
# ---------------------------------------------------------------------------------------------


def grad(cost: Node, wrt: Union[Node, Iterable[Node]], allow_unused: bool = False) -> list[Node]:
    """Symbolic gradients of the scalar float ``cost`` w.r.t. each node of ``wrt`` (a node or
    a list), as new nodes of the same graph (gradients of gradients work).

    Example:
        >>> g = gr.Graph(); x = g.scalar(gr.float64, name="x")
        >>> (dx,) = gr.grad(x * x, [x])
    """
    cost = _node(cost, "grad")
    ws = [wrt] if isinstance(wrt, Node) else list(wrt)
    for w in ws:
        _node(w, "grad")
    g = _same_graph("grad", [cost, *ws])
    ids = g._g.grad(cost._id, [w._id for w in ws], bool(allow_unused))
    return [g._node(i) for i in ids]


def let(node: Node, value: npt.ArrayLike) -> None:
    """``node.let(value)``.

    Example:
        >>> x = gr.Graph().scalar(gr.float64)
        >>> gr.let(x, 2.0); float(x.value)
        2.0
    """
    _node(node, "let").let(value)
