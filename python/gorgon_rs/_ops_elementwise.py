"""Elementwise ops of ``gorgon_rs.ops`` (re-exported there and on ``gr``): binary arithmetic
and comparisons with broadcasting, unary math, ``clip``, ``where`` and ``cast``."""

from __future__ import annotations

from typing import Any, Union

import numpy as np

from ._ops_common import _node
from .graph import DTypeLike, Node, Operand, _apply, _is_py_scalar, _lift, _lift_pair, _same_graph, _where, as_dtype


def _binary(op: str, a: Any, b: Any) -> Node:
    x, y = _lift_pair(op, a, b)  # two nodes of one graph
    return x.graph._build(op, [x._id, y._id], None, _where())


def add(a: Operand, b: Operand) -> Node:
    """``a + b`` with broadcasting.

    Example:
        >>> g = gr.Graph()
        >>> a = g.matrix(gr.float64, (2, 1), value=[[0.0], [10.0]])
        >>> b = g.vector(gr.float64, 3, value=[1.0, 2.0, 3.0])
        >>> gr.function([], gr.add(a, b))().tolist()          # (2, 1) + (3,) broadcasts to (2, 3)
        [[1.0, 2.0, 3.0], [11.0, 12.0, 13.0]]
    """
    return _binary("add", a, b)


def sub(a: Operand, b: Operand) -> Node:
    """``a - b`` with broadcasting.

    Example:
        >>> x = gr.Graph().vector(gr.float64, 2)
        >>> gr.function(x, gr.sub(x, 1.0))([3.0, 5.0]).tolist()
        [2.0, 4.0]
    """
    return _binary("sub", a, b)


def mul(a: Operand, b: Operand) -> Node:
    """``a * b`` with broadcasting.

    Example:
        >>> x = gr.Graph().vector(gr.float64, 2)
        >>> gr.function(x, gr.mul(x, x))([2.0, 3.0]).tolist()
        [4.0, 9.0]
    """
    return _binary("mul", a, b)


def div(a: Operand, b: Operand) -> Node:
    """True division; integer operands are cast to float64 first (like NumPy).

    Example:
        >>> i = gr.Graph().vector(gr.int64, 2)
        >>> gr.div(i, 2).dtype
        dtype('float64')
        >>> gr.function(i, i / 2)([1, 3]).tolist()
        [0.5, 1.5]
    """
    x, y = _lift_pair("div", a, b)
    if x.dtype.kind in "iub" and y.dtype.kind in "iub":
        x, y = cast(x, np.float64), cast(y, np.float64)
    return _apply("div", [x, y])


def floordiv(a: Operand, b: Operand) -> Node:
    """``a // b`` (NumPy floor_divide).

    Example:
        >>> x = gr.Graph().vector(gr.int64, 2)
        >>> gr.function(x, gr.floordiv(x, 2))([5, -5]).tolist()
        [2, -3]
    """
    return _binary("floordiv", a, b)


def pow(a: Operand, b: Operand) -> Node:  # noqa: A001 - the API name
    """``a ** b`` with broadcasting.

    Example:
        >>> x = gr.Graph().vector(gr.float64, 2)
        >>> gr.function(x, gr.pow(x, 2.0))([3.0, 4.0]).tolist()
        [9.0, 16.0]
    """
    return _binary("pow", a, b)


def maximum(a: Operand, b: Operand) -> Node:
    """Elementwise maximum (NaN-propagating).

    Example:
        >>> x = gr.Graph().vector(gr.float64, 2)
        >>> gr.function(x, gr.maximum(x, 0.0))([-1.0, 2.0]).tolist()
        [0.0, 2.0]
    """
    return _binary("maximum", a, b)


def minimum(a: Operand, b: Operand) -> Node:
    """Elementwise minimum (NaN-propagating).

    Example:
        >>> x = gr.Graph().vector(gr.float64, 2)
        >>> gr.function(x, gr.minimum(x, 0.0))([-1.0, 2.0]).tolist()
        [-1.0, 0.0]
    """
    return _binary("minimum", a, b)


def lt(a: Operand, b: Operand) -> Node:
    """``a < b`` as 0/1 in the operands' dtype.

    Example:
        >>> x = gr.Graph().vector(gr.float64, 3)
        >>> gr.function(x, gr.lt(x, 2.0))([1.0, 2.0, 3.0]).tolist()
        [1.0, 0.0, 0.0]
    """
    return _binary("lt", a, b)


def le(a: Operand, b: Operand) -> Node:
    """``a <= b`` as 0/1 in the operands' dtype.

    Example:
        >>> x = gr.Graph().vector(gr.float64, 3)
        >>> gr.function(x, gr.le(x, 2.0))([1.0, 2.0, 3.0]).tolist()
        [1.0, 1.0, 0.0]
    """
    return _binary("le", a, b)


def gt(a: Operand, b: Operand) -> Node:
    """``a > b`` as 0/1 in the operands' dtype.

    Example:
        >>> x = gr.Graph().vector(gr.float64, 3)
        >>> gr.function(x, gr.gt(x, 2.0))([1.0, 2.0, 3.0]).tolist()
        [0.0, 0.0, 1.0]
    """
    return _binary("gt", a, b)


def ge(a: Operand, b: Operand) -> Node:
    """``a >= b`` as 0/1 in the operands' dtype.

    Example:
        >>> x = gr.Graph().vector(gr.float64, 3)
        >>> gr.function(x, gr.ge(x, 2.0))([1.0, 2.0, 3.0]).tolist()
        [0.0, 1.0, 1.0]
    """
    return _binary("ge", a, b)


def eq(a: Operand, b: Operand) -> Node:
    """``a == b`` as 0/1 in the operands' dtype.

    Example:
        >>> x = gr.Graph().vector(gr.float64, 3)
        >>> gr.function(x, gr.eq(x, 2.0))([1.0, 2.0, 3.0]).tolist()
        [0.0, 1.0, 0.0]
    """
    return _binary("eq", a, b)


def ne(a: Operand, b: Operand) -> Node:
    """``a != b`` as 0/1 in the operands' dtype.

    Example:
        >>> x = gr.Graph().vector(gr.float64, 3)
        >>> gr.function(x, gr.ne(x, 2.0))([1.0, 2.0, 3.0]).tolist()
        [1.0, 0.0, 1.0]
    """
    return _binary("ne", a, b)


_INT_OK = {"neg", "abs", "sign", "square", "cube", "relu"}


def _unary(op: str, x: Any, **attrs: Any) -> Node:
    n = _node(x, op)
    if n.dtype.kind in "iub" and op not in _INT_OK:
        n = cast(n, np.float64)  # NumPy: float math on ints gives float64
    if attrs:
        return _apply(op, [n], **attrs)
    return n.graph._build(op, [n._id], None, _where())


def neg(x: Node) -> Node:
    """``-x``.

    Example:
        >>> x = gr.Graph().vector(gr.float64, 2)
        >>> gr.function(x, gr.neg(x))([1.0, -2.0]).tolist()
        [-1.0, 2.0]
    """
    return _unary("neg", x)


def abs(x: Node) -> Node:  # noqa: A001 - the API name
    """``|x|``.

    Example:
        >>> x = gr.Graph().vector(gr.float64, 2)
        >>> gr.function(x, gr.abs(x))([-1.5, 2.0]).tolist()
        [1.5, 2.0]
    """
    return _unary("abs", x)


def sign(x: Node) -> Node:
    """sign(x) in {-1, 0, 1}.

    Example:
        >>> x = gr.Graph().vector(gr.float64, 3)
        >>> gr.function(x, gr.sign(x))([-3.0, 0.0, 2.0]).tolist()
        [-1.0, 0.0, 1.0]
    """
    return _unary("sign", x)


def exp(x: Node) -> Node:
    """e**x.

    Example:
        >>> x = gr.Graph().vector(gr.float64, 2)
        >>> gr.function(x, gr.exp(x))([0.0, 1.0]).tolist()
        [1.0, 2.718281828459045]
    """
    return _unary("exp", x)


def log(x: Node) -> Node:
    """Natural logarithm.

    Example:
        >>> x = gr.Graph().vector(gr.float64, 2)
        >>> gr.function(x, gr.log(x))([1.0, np.e]).tolist()
        [0.0, 1.0]
    """
    return _unary("log", x)


def log1p(x: Node) -> Node:
    """log(1 + x), accurate for small x.

    Example:
        >>> x = gr.Graph().vector(gr.float64, 2)
        >>> gr.function(x, gr.log1p(x))([0.0, 1e-20]).tolist()
        [0.0, 1e-20]
    """
    return _unary("log1p", x)


def expm1(x: Node) -> Node:
    """e**x - 1, accurate for small x.

    Example:
        >>> x = gr.Graph().vector(gr.float64, 2)
        >>> gr.function(x, gr.expm1(x))([0.0, 1e-20]).tolist()
        [0.0, 1e-20]
    """
    return _unary("expm1", x)


def log2(x: Node) -> Node:
    """Base-2 logarithm.

    Example:
        >>> x = gr.Graph().vector(gr.float64, 2)
        >>> gr.function(x, gr.log2(x))([1.0, 8.0]).tolist()
        [0.0, 3.0]
    """
    return _unary("log2", x)


def sqrt(x: Node) -> Node:
    """Square root.

    Example:
        >>> x = gr.Graph().vector(gr.float64, 2)
        >>> gr.function(x, gr.sqrt(x))([4.0, 9.0]).tolist()
        [2.0, 3.0]
    """
    return _unary("sqrt", x)


def square(x: Node) -> Node:
    """x**2.

    Example:
        >>> x = gr.Graph().vector(gr.float64, 2)
        >>> gr.function(x, gr.square(x))([-3.0, 2.0]).tolist()
        [9.0, 4.0]
    """
    return _unary("square", x)


def cube(x: Node) -> Node:
    """x**3.

    Example:
        >>> x = gr.Graph().vector(gr.float64, 2)
        >>> gr.function(x, gr.cube(x))([-2.0, 3.0]).tolist()
        [-8.0, 27.0]
    """
    return _unary("cube", x)


def inverse(x: Node) -> Node:
    """1/x.

    Example:
        >>> x = gr.Graph().vector(gr.float64, 2)
        >>> gr.function(x, gr.inverse(x))([2.0, 4.0]).tolist()
        [0.5, 0.25]
    """
    return _unary("inverse", x)


def inverse_sqrt(x: Node) -> Node:
    """1/sqrt(x).

    Example:
        >>> x = gr.Graph().vector(gr.float64, 2)
        >>> gr.function(x, gr.inverse_sqrt(x))([4.0, 16.0]).tolist()
        [0.5, 0.25]
    """
    return _unary("inverse_sqrt", x)


def sin(x: Node) -> Node:
    """Sine.

    Example:
        >>> x = gr.Graph().vector(gr.float64, 2)
        >>> gr.function(x, gr.sin(x))([0.0, np.pi / 2]).tolist()
        [0.0, 1.0]
    """
    return _unary("sin", x)


def cos(x: Node) -> Node:
    """Cosine.

    Example:
        >>> x = gr.Graph().vector(gr.float64, 2)
        >>> gr.function(x, gr.cos(x))([0.0, np.pi]).tolist()
        [1.0, -1.0]
    """
    return _unary("cos", x)


def tanh(x: Node) -> Node:
    """Hyperbolic tangent.

    Example:
        >>> x = gr.Graph().vector(gr.float64, 2)
        >>> gr.function(x, gr.tanh(x))([0.0, 100.0]).tolist()
        [0.0, 1.0]
    """
    return _unary("tanh", x)


def sigmoid(x: Node) -> Node:
    """1/(1 + e**-x), stable for both signs.

    Example:
        >>> x = gr.Graph().vector(gr.float64, 3)
        >>> gr.function(x, gr.sigmoid(x))([0.0, -1000.0, 1000.0]).tolist()
        [0.5, 0.0, 1.0]
    """
    return _unary("sigmoid", x)


def softplus(x: Node) -> Node:
    """log(1 + e**x), stable.

    Example:
        >>> x = gr.Graph().vector(gr.float64, 2)
        >>> np.round(gr.function(x, gr.softplus(x))([0.0, 1000.0]), 4).tolist()
        [0.6931, 1000.0]
    """
    return _unary("softplus", x)


def relu(x: Node) -> Node:
    """max(x, 0).

    Example:
        >>> x = gr.Graph().vector(gr.float64, 2)
        >>> gr.function(x, gr.relu(x))([-1.0, 2.0]).tolist()
        [0.0, 2.0]
    """
    return _unary("relu", x)


def mish(x: Node) -> Node:
    """x * tanh(softplus(x)).

    Example:
        >>> x = gr.Graph().vector(gr.float64, 2)
        >>> np.round(gr.function(x, gr.mish(x))([0.0, 1.0]), 4).tolist()
        [0.0, 0.8651]
    """
    return _unary("mish", x)


def floor(x: Node) -> Node:
    """Round down.

    Example:
        >>> x = gr.Graph().vector(gr.float64, 2)
        >>> gr.function(x, gr.floor(x))([-1.5, 1.5]).tolist()
        [-2.0, 1.0]
    """
    return _unary("floor", x)


def ceil(x: Node) -> Node:
    """Round up.

    Example:
        >>> x = gr.Graph().vector(gr.float64, 2)
        >>> gr.function(x, gr.ceil(x))([-1.5, 1.5]).tolist()
        [-1.0, 2.0]
    """
    return _unary("ceil", x)


def leaky_relu(x: Node, alpha: float = 0.01) -> Node:
    """x if x > 0 else alpha * x.

    Example:
        >>> x = gr.Graph().vector(gr.float64, 2)
        >>> gr.function(x, gr.leaky_relu(x, alpha=0.1))([-10.0, 10.0]).tolist()
        [-1.0, 10.0]
    """
    try:
        a = float(alpha)
    except OverflowError:
        raise ValueError(f"leaky_relu: alpha {alpha!r} does not fit a float64") from None
    return _unary("leaky_relu", x, alpha=a)


def clip(x: Node, lo: Union[Node, float, None] = None, hi: Union[Node, float, None] = None) -> Node:
    """Clamp to ``[lo, hi]`` (None: unbounded on that side); bounds may be nodes too.

    Example:
        >>> x = gr.Graph().vector(gr.float64, 3)
        >>> gr.function(x, gr.clip(x, 0.0, 1.0))([-2.0, 0.5, 2.0]).tolist()
        [0.0, 0.5, 1.0]
    """
    x = _node(x, "clip")
    if isinstance(lo, Node) or isinstance(hi, Node) or x.dtype.kind != "f":
        y = x if lo is None else maximum(x, lo)
        return y if hi is None else minimum(y, hi)
    return _apply("clip", [x], lo=-np.inf if lo is None else float(lo), hi=np.inf if hi is None else float(hi))


def where(cond: Operand, a: Operand, b: Operand) -> Node:
    """``a`` where ``cond`` is nonzero, else ``b`` (three-way broadcasting; cond of any dtype).

    Example:
        >>> g = gr.Graph()
        >>> c = g.vector(gr.int64, 3, value=[1, 0, 2])
        >>> x = g.vector(gr.float64, 3, value=[1.0, 2.0, 3.0])
        >>> gr.function([], gr.where(c, x, -x))().tolist()
        [1.0, -2.0, 3.0]
    """
    nodes = [v for v in (cond, a, b) if isinstance(v, Node)]
    if not nodes:
        raise TypeError("where: at least one operand must be a gorgon_rs Node")
    _same_graph("where", nodes)
    if isinstance(a, Node) or isinstance(b, Node):
        x, y = _lift_pair("where", a, b)
    else:
        anchor = nodes[0]
        # NumPy 2 (NEP 50): Python scalars are weak and adopt the array operand's dtype.
        weak = [v.item() if isinstance(v, np.generic) else v if _is_py_scalar(v) else np.asarray(v) for v in (a, b)]
        dt = np.result_type(*weak)
        x = anchor.graph.constant(np.asarray(a, dtype=dt))
        y = anchor.graph.constant(np.asarray(b, dtype=dt))
    c = cond if isinstance(cond, Node) else _lift(np.asarray(cond), x)
    return _apply("where", [c, x, y])


def cast(x: Node, dtype: DTypeLike) -> Node:
    """Convert to ``dtype`` (float → int truncates toward zero, like NumPy's astype).

    Example:
        >>> x = gr.Graph().vector(gr.float64, 2)
        >>> y = gr.cast(x, gr.int64)
        >>> gr.function(x, y)([1.7, -1.7]).tolist()
        [1, -1]
    """
    x = _node(x, "cast")
    d = as_dtype(dtype)
    if d == x.dtype:
        return x
    return _apply("cast", [x], dtype=d.name)
