"""The operations of API.md "Operations": functions on ``gr`` that build nodes.

Each function lifts non-node operands (Python scalars adopt the other operand's dtype; NumPy
arrays keep theirs), follows NumPy for shapes, broadcasting and integer true division, and
either calls one native op (names in ``crates/autodiff/src/op.rs``) or composes a few.
Validation that needs the original operands (``matmul`` of 1-D operands, indexing) happens
here; everything else is checked by the native graph, whose errors name the op, operands,
shapes, dtypes and the user's ``file.py:LINE``. This module holds no state.

Example:
    >>> import numpy as np, gorgon_rs as gr
    >>> g = gr.Graph()
    >>> x = g.matrix(gr.float64, (2, 3), name="x")
    >>> gr.softmax(x, axis=-1).shape, gr.sum(x, axis=0).shape, (x @ x.T).shape
    ((2, 3), (3,), (2, 2))
"""

from __future__ import annotations

import builtins
import numbers
from typing import Any, Iterable, Optional, Sequence, Union
from typing import cast as _cast

import numpy as np
import numpy.typing as npt

from .errors import DTypeError, ShapeError
from .graph import (Axis, DTypeLike, Node, Operand, ShapeLike, _apply, _is_py_scalar, _lift, _lift_pair, _same_graph,
                    _where, as_dtype)

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


# ---------------------------------------------------------------------------------------------
# Elementwise
# ---------------------------------------------------------------------------------------------


def _binary(op: str, a: Any, b: Any) -> Node:
    x, y = _lift_pair(op, a, b)
    return _apply(op, [x, y])


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
    x = _node(x, op)
    if x.dtype.kind in "iub" and op not in _INT_OK:
        x = cast(x, np.float64)  # NumPy: float math on ints gives float64
    return _apply(op, [x], **attrs)


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


# ---------------------------------------------------------------------------------------------
# Reductions
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Linear algebra
# ---------------------------------------------------------------------------------------------


def matmul(a: Operand, b: Operand) -> Node:
    """``np.matmul``: 1-D operands are promoted (and the added axis removed); batch dims
    broadcast; a 0-d operand is a ShapeError.

    Example:
        >>> g = gr.Graph()
        >>> gr.matmul(g.tensor(gr.float32, (5, 2, 3)), g.vector(gr.float32, 3)).shape
        (5, 2)
    """
    x, y = _lift_pair("matmul", a, b)
    if x.ndim == 0 or y.ndim == 0:
        raise _fail(ShapeError, "matmul", [x, y], "matmul does not take 0-d (scalar) operands; use * instead")
    ka = x.shape[-1]
    kb = y.shape[0] if y.ndim == 1 else y.shape[-2]
    if ka != kb:
        raise _fail(ShapeError, "matmul", [x, y],
                    f"shapes {x.shape} and {y.shape} not aligned: {ka} (dim {x.ndim - 1}) != {kb} "
                    f"(dim {builtins.max(y.ndim - 2, 0)})")
    x2 = reshape(x, (1, ka)) if x.ndim == 1 else x
    y2 = reshape(y, (kb, 1)) if y.ndim == 1 else y
    r = _apply("matmul", [x2, y2])
    if x.ndim == 1 and y.ndim == 1:
        return reshape(r, ())
    if x.ndim == 1:
        return reshape(r, r.shape[:-2] + r.shape[-1:])
    if y.ndim == 1:
        return reshape(r, r.shape[:-1])
    return r


def tensordot(a: Operand, b: Operand, axes: Union[int, Sequence[Union[int, Sequence[int]]]] = 2) -> Node:
    """``np.tensordot``: sum products over ``axes`` (an int N: the last N of ``a`` with the
    first N of ``b``; or a pair of axis sequences).

    Example:
        >>> g = gr.Graph()
        >>> gr.tensordot(g.tensor(gr.float32, (2, 3, 4)), g.tensor(gr.float32, (3, 4, 5)), axes=2).shape
        (2, 5)
        >>> gr.tensordot(g.tensor(gr.float32, (2, 3)), g.tensor(gr.float32, (3, 2)), axes=([1], [0])).shape
        (2, 2)
    """
    x, y = _lift_pair("tensordot", a, b)
    ax_a: list[int]
    ax_b: list[int]
    if isinstance(axes, (int, numbers.Integral, np.integer)):
        n = int(axes)
        ax_a, ax_b = list(range(x.ndim - n, x.ndim)), list(range(n))
    else:
        spec_a, spec_b = axes
        ax_a = [int(spec_a)] if isinstance(spec_a, (int, numbers.Integral, np.integer)) else list(spec_a)
        ax_b = [int(spec_b)] if isinstance(spec_b, (int, numbers.Integral, np.integer)) else list(spec_b)
    if len(ax_a) != len(ax_b):
        raise _fail(ShapeError, "tensordot", [x, y], "the two axis lists differ in length")
    ax_a = [_norm_axis(int(v), x.ndim, "tensordot", x) for v in ax_a]
    ax_b = [_norm_axis(int(v), y.ndim, "tensordot", y) for v in ax_b]
    for i, j in zip(ax_a, ax_b):
        if x.shape[i] != y.shape[j]:
            raise _fail(ShapeError, "tensordot", [x, y], f"shape mismatch for sum: axis {i} of {x.shape} vs axis {j} of {y.shape}")
    free_a = [i for i in range(x.ndim) if i not in ax_a]
    free_b = [j for j in range(y.ndim) if j not in ax_b]
    k = int(np.prod([x.shape[i] for i in ax_a], dtype=np.int64))
    m = int(np.prod([x.shape[i] for i in free_a], dtype=np.int64))
    n = int(np.prod([y.shape[j] for j in free_b], dtype=np.int64))
    xa = reshape(transpose(x, free_a + ax_a), (m, k))
    yb = reshape(transpose(y, ax_b + free_b), (k, n))
    r = _apply("matmul", [xa, yb])
    return reshape(r, tuple(x.shape[i] for i in free_a) + tuple(y.shape[j] for j in free_b))


def dot(a: Operand, b: Operand) -> Node:
    """``np.dot``: inner product of vectors, matrix product, sum over the last axis of ``a``
    and the second-to-last of ``b``; a 0-d operand multiplies.

    Example:
        >>> g = gr.Graph(); a = g.vector(gr.float64, 3, value=[1.0, 2.0, 3.0])
        >>> float(gr.function([], gr.dot(a, a))())
        14.0
    """
    x, y = _lift_pair("dot", a, b)
    if x.ndim == 0 or y.ndim == 0:
        return mul(x, y)
    if x.ndim <= 2 and y.ndim <= 2:
        return matmul(x, y)
    return tensordot(x, y, ([x.ndim - 1], [0 if y.ndim == 1 else y.ndim - 2]))


def outer(a: Operand, b: Operand) -> Node:
    """``np.outer``: ``a.ravel()[:, None] * b.ravel()[None, :]``.

    Example:
        >>> g = gr.Graph()
        >>> gr.outer(g.vector(gr.float32, 3), g.vector(gr.float32, 2)).shape
        (3, 2)
    """
    x, y = _lift_pair("outer", a, b)
    return mul(reshape(x, (-1, 1)), reshape(y, (1, -1)))


# ---------------------------------------------------------------------------------------------
# Shape
# ---------------------------------------------------------------------------------------------


def reshape(x: Node, shape: ShapeLike) -> Node:
    """Same elements in a new shape (one dimension may be -1).

    Example:
        >>> x = gr.Graph().vector(gr.float32, 6)
        >>> gr.reshape(x, (2, -1)).shape
        (2, 3)
    """
    x = _node(x, "reshape")
    if isinstance(shape, (int, numbers.Integral, np.integer)):
        shape = (shape,)
    s = tuple(_int(d, "shape") for d in shape)
    if s == x.shape:
        return x
    return _apply("reshape", [x], shape=list(s))


def transpose(x: Node, axes: Optional[Sequence[int]] = None) -> Node:
    """Permute axes (``None``: reverse them).

    Example:
        >>> x = gr.Graph().tensor(gr.float32, (2, 3, 4))
        >>> gr.transpose(x).shape, gr.transpose(x, (1, 0, 2)).shape
        ((4, 3, 2), (3, 2, 4))
    """
    x = _node(x, "transpose")
    if axes is None:
        perm = list(range(x.ndim))[::-1]
    else:
        perm = [_int(a, "axes") for a in axes]
        if len(perm) != x.ndim:
            raise _fail(ShapeError, "transpose", [x], f"axes {tuple(axes)} don't match array of dimension {x.ndim}")
        perm = [_norm_axis(a, x.ndim, "transpose", x) for a in perm]
    if perm == list(range(x.ndim)):
        return x
    return _apply("transpose", [x], axes=perm)


def _nodes_like(op: str, xs: Sequence[Any]) -> list[Node]:
    xs = list(xs)
    anchors = [v for v in xs if isinstance(v, Node)]
    if not anchors:
        raise TypeError(f"{op}: at least one operand must be a gorgon_rs Node")
    _same_graph(op, anchors)
    return [_lift(v, anchors[0]) for v in xs]


def concat(nodes: Sequence[Operand], axis: int = 0) -> Node:
    """Join along an existing axis.

    Example:
        >>> g = gr.Graph()
        >>> gr.concat([g.matrix(gr.float32, (2, 3)), g.matrix(gr.float32, (1, 3))], axis=0).shape
        (3, 3)
    """
    ns = _nodes_like("concat", nodes)
    if ns[0].ndim == 0:
        raise _fail(ShapeError, "concat", ns, "zero-dimensional arrays cannot be concatenated")
    ax = _norm_axis(_int(axis, "axis"), ns[0].ndim, "concat", ns[0])
    if len(ns) == 1:
        return ns[0]
    return _apply("concat", ns, axis=ax)


def stack(nodes: Sequence[Operand], axis: int = 0) -> Node:
    """Join along a new axis.

    Example:
        >>> g = gr.Graph(); a = g.vector(gr.float32, 3)
        >>> gr.stack([a, a, a], axis=1).shape
        (3, 3)
    """
    ns = _nodes_like("stack", nodes)
    shapes = {n.shape for n in ns}
    if len(shapes) != 1:
        raise _fail(ShapeError, "stack", ns, "all input arrays must have the same shape")
    ax = _norm_axis(_int(axis, "axis"), ns[0].ndim + 1, "stack", ns[0])
    return concat([expand_dims(n, ax) for n in ns], ax)


def squeeze(x: Node, axis: Axis = None) -> Node:
    """Remove size-1 axes (all of them, or those in ``axis``, which must have size 1).

    Example:
        >>> x = gr.Graph().tensor(gr.float32, (1, 3, 1))
        >>> gr.squeeze(x).shape, gr.squeeze(x, axis=0).shape
        ((3,), (3, 1))
    """
    x = _node(x, "squeeze")
    if axis is None:
        drop = {i for i, d in enumerate(x.shape) if d == 1}
    else:
        listed = [_norm_axis(a, x.ndim, "squeeze", x) for a in _axes(axis) or []]
        drop = set(listed)
        if len(drop) != len(listed):
            raise _fail(ShapeError, "squeeze", [x], f"repeated axis in {axis!r}")
        for a in drop:
            if x.shape[a] != 1:
                raise _fail(ShapeError, "squeeze", [x], f"cannot select an axis to squeeze out which has size not equal to one (axis {a})")
    return reshape(x, tuple(d for i, d in enumerate(x.shape) if i not in drop))


def expand_dims(x: Node, axis: Axis) -> Node:
    """Insert size-1 axes at the positions ``axis`` of the result.

    Example:
        >>> x = gr.Graph().vector(gr.float32, 3)
        >>> gr.expand_dims(x, 0).shape, gr.expand_dims(x, (0, -1)).shape
        ((1, 3), (1, 3, 1))
    """
    x = _node(x, "expand_dims")
    axes = _axes(axis) or []
    nd = x.ndim + len(axes)
    pos = sorted(_norm_axis(a, nd, "expand_dims", x) for a in axes)
    if len(set(pos)) != len(pos):
        raise _fail(ShapeError, "expand_dims", [x], f"repeated axis in {axis!r}")
    dims = list(x.shape)
    for p in pos:
        dims.insert(p, 1)
    return reshape(x, tuple(dims))


def broadcast_to(x: Node, shape: ShapeLike) -> Node:
    """Broadcast to ``shape`` (NumPy rules).

    Example:
        >>> x = gr.Graph().vector(gr.float32, 3)
        >>> gr.broadcast_to(x, (2, 3)).shape
        (2, 3)
    """
    x = _node(x, "broadcast_to")
    s = (int(shape),) if isinstance(shape, (int, numbers.Integral, np.integer)) else tuple(_int(d, "shape") for d in shape)
    if any(d < 0 for d in s):
        raise _fail(ShapeError, "broadcast_to", [x], f"all elements of broadcast shape {s} must be non-negative")
    if s == x.shape:
        return x
    return _apply("broadcast_to", [x], shape=list(s))


def take(x: Node, indices: Union[Node, npt.ArrayLike], axis: int = 0) -> Node:
    """Gather along ``axis`` (the embedding lookup). Negative indices count from the end
    (normalized here for constant indices; the kernel handles them for index nodes).

    Example:
        >>> E = gr.Graph().matrix(gr.float32, (10, 4))
        >>> gr.take(E, [1, -1]).shape
        (2, 4)
    """
    x = _node(x, "take")
    ax = _norm_axis(_int(axis, "axis"), x.ndim, "take", x)
    if isinstance(indices, Node):
        _same_graph("take", [x, indices])
        if indices.dtype.kind not in "iu":
            raise _fail(DTypeError, "take", [x, indices], f"indices must be int32 or int64, got {indices.dtype.name}")
        return _apply("take", [x, indices], axis=ax)
    idx = np.asarray(indices)
    if idx.dtype.kind not in "iu" and not (idx.size == 0 and idx.dtype.kind == "f"):
        raise _fail(DTypeError, "take", [x], f"indices must be integers, got dtype {idx.dtype}")
    idx = idx.astype(np.int64)
    n = x.shape[ax]
    if idx.size and (idx.min() < -n or idx.max() >= n):
        bad = int(idx[(idx < -n) | (idx >= n)].flat[0])
        raise IndexError(f"take: index {bad} is out of bounds for axis {ax} with size {n} "
                         f"(operand {x._describe()}, at {_where()})")
    idx = np.where(idx < 0, idx + n, idx)
    c = x.graph._node(x.graph._g.constant(np.asarray(idx, order="C"), None, None))
    return _apply("take", [x, c], axis=ax)


def one_hot(indices: Node, n: int, dtype: DTypeLike = np.float32) -> Node:
    """``out[..., k] = (indices == k)`` with ``n`` classes, in ``dtype``.

    Example:
        >>> i = gr.Graph().vector(gr.int64, 2)
        >>> gr.function(i, gr.one_hot(i, 3))([0, 2]).tolist()
        [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    """
    if not isinstance(indices, Node):
        raise TypeError("one_hot: indices must be a Node (use g.constant(...) for fixed indices)")
    return _apply("one_hot", [indices], n=_int(n, "n"), dtype=as_dtype(dtype).name)


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


# ---------------------------------------------------------------------------------------------
# Indexing (basic: ints, slices, Ellipsis, None)
# ---------------------------------------------------------------------------------------------


def _getitem(x: Node, key: Any) -> Node:
    if isinstance(key, Node) or isinstance(key, (list, np.ndarray)):
        return take(x, key, 0)
    if not isinstance(key, tuple):
        key = (key,)
    n_ell = builtins.sum(1 for k in key if k is Ellipsis)
    if n_ell > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    n_real = builtins.sum(1 for k in key if k is not None and k is not Ellipsis)
    if n_real > x.ndim:
        raise IndexError(f"too many indices for node {x._describe()}: it is {x.ndim}-dimensional, "
                         f"but {n_real} were indexed (at {_where()})")
    full: list[Any] = []
    for k in key:
        if k is Ellipsis:
            full.extend([slice(None)] * (x.ndim - n_real))
        else:
            full.append(k)
    if not n_ell:
        full.extend([slice(None)] * (x.ndim - n_real))
    spec: list[int] = []
    out: list[int] = []
    ax = 0
    identity = True
    for k in full:
        if k is None:
            out.append(1)
            continue
        dim = x.shape[ax]
        if isinstance(k, slice):
            start, stop, step = k.indices(dim)
            spec += [start, stop, step]
            out.append(len(range(start, stop, step)))
            if step != 1 or start != 0 or stop != dim:
                identity = False
        elif isinstance(k, (numbers.Integral, np.integer)) and not isinstance(k, (bool, np.bool_)):
            i = int(k)
            if not -dim <= i < dim:
                raise IndexError(f"index {i} is out of bounds for axis {ax} with size {dim} "
                                 f"(node {x._describe()}, at {_where()})")
            i %= dim
            spec += [i, i + 1, 1]
            identity = False
        else:
            raise IndexError(f"only integers, slices (`:`), ellipsis (`...`) and None are valid indices, got {k!r}")
        ax += 1
    y = x if identity else _apply("slice", [x], spec=spec)
    return reshape(y, tuple(out))


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
