"""Argument checks and error helpers shared by ``gr.nn``'s functions (``_nn_functional``) and
layers (``_nn_modules``): the user's ``file.py:LINE``, shape/dtype errors, node labels, int pairs,
constant lifting and the same-graph check. Package-private; holds no state."""

from __future__ import annotations

import numbers
import os
import sys
from typing import Any, Iterable, Optional, Sequence, TypeGuard, Union, cast

import numpy as np

import gorgon_rs as gr  # attributes are read at call time only (this module loads during gr's import)

from .graph import Node, Operand

IntOrPair = Union[int, Sequence[int]]

# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

_PKG_DIR = os.path.dirname(os.path.abspath(__file__))


def _where() -> str:
    """``file.py:LINE`` of the first frame outside the gorgon_rs package."""
    f: Optional[Any] = sys._getframe(1)
    while f is not None:
        fn = f.f_code.co_filename
        if not os.path.abspath(fn).startswith(_PKG_DIR + os.sep):
            return f"{os.path.basename(fn)}:{f.f_lineno}"
        f = f.f_back
    return "<unknown>"


def _shape_error(msg: str) -> Exception:
    return gr.ShapeError(f"{msg} (at {_where()})")


def _dtype_error(msg: str) -> Exception:
    return gr.DTypeError(f"{msg} (at {_where()})")


def _is_node(x: object) -> TypeGuard[Node]:
    return hasattr(x, "_id") and hasattr(x, "graph")


def _np_dtype(dtype: Any) -> np.dtype[Any]:
    from .init import _np_dtype as conv

    return conv(dtype)


def _label(x: Any) -> str:
    """``'name' (2, 3) float32`` for error messages."""
    name = getattr(x, "name", None)
    shape = tuple(x.shape)
    return f"{name + ' ' if name else ''}{shape} {_np_dtype(x.dtype).name}"


def _pair(what: str, v: IntOrPair, *, minimum: int) -> tuple[int, int]:
    if isinstance(v, (numbers.Integral, np.integer)) and not isinstance(v, bool):
        p = (int(v), int(v))
    else:
        try:
            t = tuple(cast("Iterable[Any]", v))
        except TypeError:
            raise TypeError(f"{what} must be an int or an (h, w) pair, got {v!r}") from None
        if len(t) != 2 or not all(isinstance(e, (numbers.Integral, np.integer)) and not isinstance(e, bool)
                                  for e in t):
            raise TypeError(f"{what} must be an int or an (h, w) pair of ints, got {v!r}")
        p = (int(t[0]), int(t[1]))
    if p[0] < minimum or p[1] < minimum:
        raise ValueError(f"{what} must be >= {minimum}, got {v!r}")
    return p


def _as_node(x: Operand, like: Node, what: str) -> Node:
    """``x`` if it is a node, else a constant of ``like``'s graph and (for floats) dtype."""
    if _is_node(x):
        return x
    a = np.asarray(x)
    if a.dtype.kind == "f" or (a.dtype.kind in "iub" and _np_dtype(like.dtype).kind == "f"):
        a = a.astype(_np_dtype(like.dtype))
    return like.graph.constant(a)


def _check_same_graph(op: str, *nodes: Optional[Node]) -> None:
    gs = [n.graph._g for n in nodes if n is not None]
    for g in gs[1:]:
        if g is not gs[0] and not _same_graph(g, gs[0]):
            raise gr.GraphError(f"{op}: operands belong to different graphs (at {_where()})")


def _same_graph(a: Any, b: Any) -> bool:
    try:
        return bool(a.same(b))
    except Exception:
        return a is b


def _conv_out(n: int, k: int, s: int, p: int, d: int) -> int:
    eff = d * (k - 1) + 1
    return (n + 2 * p - eff) // s + 1 if n + 2 * p >= eff else 0
