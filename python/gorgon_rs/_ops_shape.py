"""Shape and indexing ops of ``gorgon_rs.ops`` (re-exported there and on ``gr``): reshape,
transpose, joining, squeezing and broadcasting; ``take`` and ``one_hot``; and the basic
indexing behind ``node[...]`` (``_getitem``)."""

from __future__ import annotations

import builtins
import numbers
from typing import Any, Optional, Sequence, Union

import numpy as np
import numpy.typing as npt

from ._ops_common import _axes, _fail, _int, _node, _norm_axis
from .errors import DTypeError, ShapeError
from .graph import Axis, DTypeLike, Node, Operand, ShapeLike, _apply, _lift, _same_graph, _where, as_dtype


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
