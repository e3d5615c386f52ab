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
from typing import Any, Optional, Sequence, Union

import numpy as np

from .errors import DTypeError, ShapeError
from .graph import Node, _apply, _is_py_scalar, _lift, _lift_pair, _same_graph, _where, as_dtype

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

Axis = Union[None, int, Sequence[int]]


def _fail(cls: type, op: str, nodes: Sequence[Node], msg: str) -> Exception:
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
    return [_int(a, "axis") for a in axis]  # type: ignore[union-attr]


# ---------------------------------------------------------------------------------------------
# Elementwise
# ---------------------------------------------------------------------------------------------


def _binary(op: str, a: Any, b: Any) -> Node:
    x, y = _lift_pair(op, a, b)
    return _apply(op, [x, y])


def add(a: Any, b: Any) -> Node:
    """``a + b`` with broadcasting."""
    return _binary("add", a, b)


def sub(a: Any, b: Any) -> Node:
    """``a - b`` with broadcasting."""
    return _binary("sub", a, b)


def mul(a: Any, b: Any) -> Node:
    """``a * b`` with broadcasting."""
    return _binary("mul", a, b)


def div(a: Any, b: Any) -> Node:
    """True division; integer operands are cast to float64 first (like NumPy)."""
    x, y = _lift_pair("div", a, b)
    if x.dtype.kind in "iub" and y.dtype.kind in "iub":
        x, y = cast(x, np.float64), cast(y, np.float64)
    return _apply("div", [x, y])


def floordiv(a: Any, b: Any) -> Node:
    """``a // b`` (NumPy floor_divide)."""
    return _binary("floordiv", a, b)


def pow(a: Any, b: Any) -> Node:  # noqa: A001 - the API name
    """``a ** b`` with broadcasting."""
    return _binary("pow", a, b)


def maximum(a: Any, b: Any) -> Node:
    """Elementwise maximum (NaN-propagating)."""
    return _binary("maximum", a, b)


def minimum(a: Any, b: Any) -> Node:
    """Elementwise minimum (NaN-propagating)."""
    return _binary("minimum", a, b)


def lt(a: Any, b: Any) -> Node:
    """``a < b`` as 0/1 in the operands' dtype."""
    return _binary("lt", a, b)


def le(a: Any, b: Any) -> Node:
    """``a <= b`` as 0/1 in the operands' dtype."""
    return _binary("le", a, b)


def gt(a: Any, b: Any) -> Node:
    """``a > b`` as 0/1 in the operands' dtype."""
    return _binary("gt", a, b)


def ge(a: Any, b: Any) -> Node:
    """``a >= b`` as 0/1 in the operands' dtype."""
    return _binary("ge", a, b)


def eq(a: Any, b: Any) -> Node:
    """``a == b`` as 0/1 in the operands' dtype."""
    return _binary("eq", a, b)


def ne(a: Any, b: Any) -> Node:
    """``a != b`` as 0/1 in the operands' dtype."""
    return _binary("ne", a, b)


_INT_OK = {"neg", "abs", "sign", "square", "cube", "relu"}


def _unary(op: str, x: Any, **attrs: Any) -> Node:
    x = _node(x, op)
    if x.dtype.kind in "iub" and op not in _INT_OK:
        x = cast(x, np.float64)  # NumPy: float math on ints gives float64
    return _apply(op, [x], **attrs)


def neg(x: Any) -> Node:
    """``-x``."""
    return _unary("neg", x)


def abs(x: Any) -> Node:  # noqa: A001 - the API name
    """``|x|``."""
    return _unary("abs", x)


def sign(x: Any) -> Node:
    """sign(x) in {-1, 0, 1}."""
    return _unary("sign", x)


def exp(x: Any) -> Node:
    """e**x."""
    return _unary("exp", x)


def log(x: Any) -> Node:
    """Natural logarithm."""
    return _unary("log", x)


def log1p(x: Any) -> Node:
    """log(1 + x), accurate for small x."""
    return _unary("log1p", x)


def expm1(x: Any) -> Node:
    """e**x - 1, accurate for small x."""
    return _unary("expm1", x)


def log2(x: Any) -> Node:
    """Base-2 logarithm."""
    return _unary("log2", x)


def sqrt(x: Any) -> Node:
    """Square root."""
    return _unary("sqrt", x)


def square(x: Any) -> Node:
    """x**2."""
    return _unary("square", x)


def cube(x: Any) -> Node:
    """x**3."""
    return _unary("cube", x)


def inverse(x: Any) -> Node:
    """1/x."""
    return _unary("inverse", x)


def inverse_sqrt(x: Any) -> Node:
    """1/sqrt(x)."""
    return _unary("inverse_sqrt", x)


def sin(x: Any) -> Node:
    """Sine."""
    return _unary("sin", x)


def cos(x: Any) -> Node:
    """Cosine."""
    return _unary("cos", x)


def tanh(x: Any) -> Node:
    """Hyperbolic tangent."""
    return _unary("tanh", x)


def sigmoid(x: Any) -> Node:
    """1/(1 + e**-x), stable for both signs."""
    return _unary("sigmoid", x)


def softplus(x: Any) -> Node:
    """log(1 + e**x), stable."""
    return _unary("softplus", x)


def relu(x: Any) -> Node:
    """max(x, 0)."""
    return _unary("relu", x)


def mish(x: Any) -> Node:
    """x * tanh(softplus(x))."""
    return _unary("mish", x)


def floor(x: Any) -> Node:
    """Round down."""
    return _unary("floor", x)


def ceil(x: Any) -> Node:
    """Round up."""
    return _unary("ceil", x)


def leaky_relu(x: Any, alpha: float = 0.01) -> Node:
    """x if x > 0 else alpha * x."""
    try:
        a = float(alpha)
    except OverflowError:
        raise ValueError(f"leaky_relu: alpha {alpha!r} does not fit a float64") from None
    return _unary("leaky_relu", x, alpha=a)


def clip(x: Any, lo: Any = None, hi: Any = None) -> Node:
    """Clamp to ``[lo, hi]`` (None: unbounded on that side); bounds may be nodes too."""
    x = _node(x, "clip")
    if isinstance(lo, Node) or isinstance(hi, Node) or x.dtype.kind != "f":
        y = x if lo is None else maximum(x, lo)
        return y if hi is None else minimum(y, hi)
    return _apply("clip", [x], lo=-np.inf if lo is None else float(lo), hi=np.inf if hi is None else float(hi))


def where(cond: Any, a: Any, b: Any) -> Node:
    """``a`` where ``cond`` is nonzero, else ``b`` (three-way broadcasting; cond of any dtype)."""
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


def cast(x: Any, dtype: Any) -> Node:
    """Convert to ``dtype`` (float → int truncates toward zero, like NumPy's astype)."""
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


def sum(x: Any, axis: Axis = None, keepdims: bool = False) -> Node:  # noqa: A001
    """Sum over ``axis`` (None: all; int, tuple, negative allowed)."""
    return _reduce("sum", x, axis, keepdims)


def mean(x: Any, axis: Axis = None, keepdims: bool = False) -> Node:
    """Mean over ``axis`` (integers give float64)."""
    return _reduce("mean", x, axis, keepdims)


def max(x: Any, axis: Axis = None, keepdims: bool = False) -> Node:  # noqa: A001
    """Maximum over ``axis``; a zero-length axis is a ShapeError."""
    return _reduce("max", x, axis, keepdims)


def min(x: Any, axis: Axis = None, keepdims: bool = False) -> Node:  # noqa: A001
    """Minimum over ``axis``; a zero-length axis is a ShapeError."""
    return _reduce("min", x, axis, keepdims)


def prod(x: Any, axis: Axis = None, keepdims: bool = False) -> Node:
    """Product over ``axis``."""
    return _reduce("prod", x, axis, keepdims)


def logsumexp(x: Any, axis: Axis = None, keepdims: bool = False) -> Node:
    """log(sum(exp(x))) over ``axis``, computed stably."""
    return _reduce("logsumexp", x, axis, keepdims)


def norm(x: Any, p: Any = 2, axis: Axis = None, keepdims: bool = False) -> Node:
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


def argmax(x: Any, axis: Optional[int] = None, keepdims: bool = False) -> Node:
    """Index of the maximum along ``axis`` (None: flattened), int64, not differentiable."""
    return _arg("argmax", x, axis, keepdims)


def argmin(x: Any, axis: Optional[int] = None, keepdims: bool = False) -> Node:
    """Index of the minimum along ``axis`` (None: flattened), int64, not differentiable."""
    return _arg("argmin", x, axis, keepdims)


# ---------------------------------------------------------------------------------------------
# Linear algebra
# ---------------------------------------------------------------------------------------------


def matmul(a: Any, b: Any) -> Node:
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


def tensordot(a: Any, b: Any, axes: Any = 2) -> Node:
    """``np.tensordot``: sum products over ``axes`` (an int N: the last N of ``a`` with the
    first N of ``b``; or a pair of axis sequences)."""
    x, y = _lift_pair("tensordot", a, b)
    if isinstance(axes, (numbers.Integral, np.integer)):
        n = int(axes)
        ax_a, ax_b = list(range(x.ndim - n, x.ndim)), list(range(n))
    else:
        ax_a, ax_b = axes
        ax_a = [int(ax_a)] if isinstance(ax_a, (numbers.Integral, np.integer)) else list(ax_a)
        ax_b = [int(ax_b)] if isinstance(ax_b, (numbers.Integral, np.integer)) else list(ax_b)
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


def dot(a: Any, b: Any) -> Node:
    """``np.dot``: inner product of vectors, matrix product, sum over the last axis of ``a``
    and the second-to-last of ``b``; a 0-d operand multiplies."""
    x, y = _lift_pair("dot", a, b)
    if x.ndim == 0 or y.ndim == 0:
        return mul(x, y)
    if x.ndim <= 2 and y.ndim <= 2:
        return matmul(x, y)
    return tensordot(x, y, ([x.ndim - 1], [0 if y.ndim == 1 else y.ndim - 2]))


def outer(a: Any, b: Any) -> Node:
    """``np.outer``: ``a.ravel()[:, None] * b.ravel()[None, :]``."""
    x, y = _lift_pair("outer", a, b)
    return mul(reshape(x, (-1, 1)), reshape(y, (1, -1)))


# ---------------------------------------------------------------------------------------------
# Shape
# ---------------------------------------------------------------------------------------------


def reshape(x: Any, shape: Any) -> Node:
    """Same elements in a new shape (one dimension may be -1)."""
    x = _node(x, "reshape")
    if isinstance(shape, (numbers.Integral, np.integer)):
        shape = (shape,)
    s = tuple(_int(d, "shape") for d in shape)
    if s == x.shape:
        return x
    return _apply("reshape", [x], shape=list(s))


def transpose(x: Any, axes: Optional[Sequence[int]] = None) -> Node:
    """Permute axes (``None``: reverse them)."""
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


def concat(nodes: Sequence[Any], axis: int = 0) -> Node:
    """Join along an existing axis."""
    ns = _nodes_like("concat", nodes)
    if ns[0].ndim == 0:
        raise _fail(ShapeError, "concat", ns, "zero-dimensional arrays cannot be concatenated")
    ax = _norm_axis(_int(axis, "axis"), ns[0].ndim, "concat", ns[0])
    if len(ns) == 1:
        return ns[0]
    return _apply("concat", ns, axis=ax)


def stack(nodes: Sequence[Any], axis: int = 0) -> Node:
    """Join along a new axis."""
    ns = _nodes_like("stack", nodes)
    shapes = {n.shape for n in ns}
    if len(shapes) != 1:
        raise _fail(ShapeError, "stack", ns, "all input arrays must have the same shape")
    ax = _norm_axis(_int(axis, "axis"), ns[0].ndim + 1, "stack", ns[0])
    return concat([expand_dims(n, ax) for n in ns], ax)


def squeeze(x: Any, axis: Axis = None) -> Node:
    """Remove size-1 axes (all of them, or those in ``axis``, which must have size 1)."""
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


def expand_dims(x: Any, axis: Axis) -> Node:
    """Insert size-1 axes at the positions ``axis`` of the result."""
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


def broadcast_to(x: Any, shape: Sequence[int]) -> Node:
    """Broadcast to ``shape`` (NumPy rules)."""
    x = _node(x, "broadcast_to")
    s = (int(shape),) if isinstance(shape, (numbers.Integral, np.integer)) else tuple(_int(d, "shape") for d in shape)
    if any(d < 0 for d in s):
        raise _fail(ShapeError, "broadcast_to", [x], f"all elements of broadcast shape {s} must be non-negative")
    if s == x.shape:
        return x
    return _apply("broadcast_to", [x], shape=list(s))


def take(x: Any, indices: Any, axis: int = 0) -> Node:
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


def one_hot(indices: Any, n: int, dtype: Any = np.float32) -> Node:
    """``out[..., k] = (indices == k)`` with ``n`` classes, in ``dtype``."""
    if not isinstance(indices, Node):
        raise TypeError("one_hot: indices must be a Node (use g.constant(...) for fixed indices)")
    return _apply("one_hot", [indices], n=_int(n, "n"), dtype=as_dtype(dtype).name)


def softmax(x: Any, axis: int = -1) -> Node:
    """Softmax along ``axis`` (stable)."""
    x = _node(x, "softmax")
    return _apply("softmax", [x], axis=_norm_axis(_int(axis, "axis"), x.ndim, "softmax", x))


def log_softmax(x: Any, axis: int = -1) -> Node:
    """log(softmax(x)) along ``axis`` (stable)."""
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


def grad(cost: Node, wrt: Any, allow_unused: bool = False) -> list[Node]:
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


def let(node: Node, value: Any) -> None:
    """``node.let(value)``."""
    _node(node, "let").let(value)
