"""Linear algebra of ``gorgon_rs.ops`` (re-exported there and on ``gr``): ``matmul``,
``tensordot``, ``dot`` and ``outer``, following NumPy's rules for 1-D and batched operands."""

from __future__ import annotations

import builtins
import numbers
from typing import Sequence, Union

import numpy as np

from ._ops_common import _fail, _norm_axis
from ._ops_elementwise import mul
from ._ops_shape import reshape, transpose
from .errors import ShapeError
from .graph import Node, Operand, _apply, _lift_pair


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
