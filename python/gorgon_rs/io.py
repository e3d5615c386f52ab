"""Saving and loading node values: ``gr.save`` / ``gr.load`` (safetensors).

This module owns the mapping between nodes (or plain NumPy arrays) and the named tensors of a
safetensors file, and the all-or-nothing rule of ``load``. The file format itself (reading,
validating, and the crash-safe write: temporary file in the same folder, fsync, rename) lives
in Rust behind ``_native.save_safetensors`` / ``_native.load_safetensors``; this module must not
parse or write the bytes itself.

Example:
    >>> import gorgon_rs as gr
    >>> g = gr.Graph()
    >>> W = g.matrix(gr.float32, (3, 2), name="W", init=gr.init.glorot_uniform())
    >>> gr.save("weights.safetensors", [W])                    # keyed by node name
    >>> sorted(gr.load("weights.safetensors", [W]))            # validated, then assigned
    ['W']
    >>> arrays = gr.load("weights.safetensors")                # {name: numpy array}
    >>> arrays["W"].shape
    (3, 2)
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Optional, TypeGuard, Union

import numpy as np
import numpy.typing as npt

from . import _native
from .plot import plot_history

if TYPE_CHECKING:
    from .graph import Node

__all__ = ["save", "load", "plot_history", "PathLike", "Tensors"]

#: A file path: ``str`` or ``pathlib.Path``.
PathLike = Union[str, "os.PathLike[str]"]
#: What ``save``/``load`` take: named nodes (one, or a list, keyed by ``node.name``) or a dict
#: ``{key: node or array}``.
Tensors = Union["Node", Iterable["Node"], Mapping[str, Union["Node", npt.ArrayLike]]]


def _is_node(x: object) -> "TypeGuard[Node]":
    return hasattr(x, "_id") and hasattr(x, "graph")


def _format_error(msg: str) -> Exception:
    from .errors import FormatError

    return FormatError(msg)


def _np_dtype(dtype: Any) -> np.dtype[Any]:
    from .init import _np_dtype as conv

    return conv(dtype)


def _node_kind(node: "Node") -> Optional[str]:
    try:
        return node.graph._g.node_info(node._id)[3]
    except Exception:
        return None


def _keyed(what: str, nodes_or_dict: Any) -> dict[str, Any]:
    """``{key: node or array}`` from a list of named nodes, a single node or a dict."""
    if isinstance(nodes_or_dict, Mapping):
        out: dict[str, Any] = {}
        for k, v in nodes_or_dict.items():
            if not isinstance(k, str):
                raise TypeError(f"{what}: dict keys must be str, got {type(k).__name__}")
            if k == "__metadata__":
                raise ValueError(f"{what}: the key '__metadata__' is reserved by the safetensors format")
            out[k] = v
        return out
    if _is_node(nodes_or_dict):
        nodes_or_dict = [nodes_or_dict]
    if isinstance(nodes_or_dict, (str, bytes, np.ndarray)):
        raise TypeError(f"{what}: expected a list of nodes or a dict, got {type(nodes_or_dict).__name__}")
    try:
        items = list(nodes_or_dict)
    except TypeError:
        raise TypeError(
            f"{what}: expected a list of nodes or a dict, got {type(nodes_or_dict).__name__}") from None
    out = {}
    for i, n in enumerate(items):
        if not _is_node(n):
            raise TypeError(f"{what}: item {i} of the list is a {type(n).__name__}, not a node "
                            "(use a dict to give arrays names)")
        name = n.name
        if not name:
            raise ValueError(f"{what}: item {i} of the list (shape {tuple(n.shape)}) has no name; "
                             "name the node or pass a dict {name: node}")
        if name == "__metadata__":
            raise ValueError(f"{what}: the name '__metadata__' is reserved by the safetensors format")
        if name in out:
            raise ValueError(f"{what}: two nodes are named {name!r}; names must be unique "
                             "(or pass a dict {key: node})")
        out[name] = n
    return out


def save(path: PathLike, nodes_or_dict: Tensors) -> None:
    """Write node values (and/or NumPy arrays) to a safetensors file.

    ``nodes_or_dict`` is a list of named nodes (keyed by ``node.name``; a missing or duplicate
    name raises ``ValueError``) or a dict ``{key: node or array-like}``. The write is atomic: a
    crash leaves either the old file or the new one, never a mix.

    Example:
        >>> g = gr.Graph()
        >>> layer = gr.nn.Linear(g, 4, 2)
        >>> gr.save("model.safetensors", layer.parameters())        # keys: the node names
        >>> gr.save("train.safetensors", {"W": layer.weight, "step": np.array(100)})
        >>> sorted(gr.load("model.safetensors"))
        ['linear0.bias', 'linear0.weight']
    """
    items = _keyed("save", nodes_or_dict)
    pairs: list[tuple[str, npt.NDArray[Any]]] = []
    for k, v in items.items():
        if _is_node(v):
            a = v.value
        else:
            a = np.asarray(v)
            if a.dtype == object or a.dtype.kind not in "biuf":
                raise TypeError(f"save: {k!r} is a {a.dtype} array; only bool, int and float arrays can be saved")
        pairs.append((k, np.asarray(a, order="C")))
    _native.save_safetensors(os.fspath(path), pairs)


def load(path: PathLike, nodes_or_dict: Optional[Tensors] = None, *, strict: bool = False) -> dict[str, npt.NDArray[Any]]:
    """Read a safetensors file; with a target, assign its values to nodes/arrays all-or-nothing.

    * ``gr.load(path)`` returns ``{key: numpy array}``.
    * ``gr.load(path, nodes_or_dict)`` (a list of named nodes, or a dict whose values are nodes or
      NumPy arrays, filled in place) first checks EVERY entry — present in the file, same shape,
      same dtype — and only then assigns them, so a failure changes nothing. It returns the
      arrays it assigned, by key. ``strict=True`` also rejects tensors of the file that nothing
      asked for.

    Raises ``FileNotFoundError`` for a missing file and ``gr.FormatError`` for a corrupt or
    truncated file or a missing/mismatched entry (the message names the key, the expected and
    the found shape/dtype).

    Example:
        >>> g = gr.Graph()
        >>> W = g.matrix(gr.float32, (2, 2), name="W", init=gr.init.ones())
        >>> gr.save("w.safetensors", [W])
        >>> W.let(np.zeros((2, 2), np.float32))
        >>> _ = gr.load("w.safetensors", [W])                 # all-or-nothing
        >>> W.value.tolist()
        [[1.0, 1.0], [1.0, 1.0]]
        >>> gr.load("w.safetensors")["W"].dtype               # no target: {key: array}
        dtype('float32')
    """
    p = os.fspath(path)
    targets = None if nodes_or_dict is None else _keyed("load", nodes_or_dict)
    if not os.path.exists(p):
        raise FileNotFoundError(2, "No such file", p)
    data = _native.load_safetensors(p)
    if targets is None:
        return data

    # 1. validate everything
    plan: list[tuple[Any, npt.NDArray[Any]]] = []
    for key, tgt in targets.items():
        if key not in data:
            have = ", ".join(repr(k) for k in sorted(data)[:20])
            more = "" if len(data) <= 20 else f", ... ({len(data)} in all)"
            raise _format_error(f"load: {p}: no tensor named {key!r} in the file (it has: {have}{more})")
        arr = data[key]
        if _is_node(tgt):
            shape, dtype = tuple(tgt.shape), _np_dtype(tgt.dtype)
            kind = _node_kind(tgt)
            if kind is not None and kind != "leaf":
                from .errors import GraphError

                raise GraphError(f"load: {key!r} targets node {tgt.name!r}, which is {kind!r}, not an "
                                 "input or variable; only leaves can be loaded")
        elif isinstance(tgt, np.ndarray):
            shape, dtype = tgt.shape, tgt.dtype
            if not tgt.flags.writeable:
                raise ValueError(f"load: the target array for {key!r} is read-only")
        else:
            raise TypeError(f"load: the target for {key!r} is a {type(tgt).__name__}; "
                            "expected a node or a NumPy array")
        if tuple(arr.shape) != tuple(shape):
            raise _format_error(f"load: {p}: tensor {key!r} has shape {tuple(arr.shape)} in the file, "
                                f"expected {tuple(shape)}")
        if arr.dtype != dtype:
            raise _format_error(f"load: {p}: tensor {key!r} has dtype {arr.dtype.name} in the file, "
                                f"expected {dtype.name}")
        plan.append((tgt, arr))
    if strict:
        extra = sorted(set(data) - set(targets))
        if extra:
            raise _format_error(f"load: {p}: unexpected tensors {extra} (strict=True)")

    # 2. assign
    for tgt, arr in plan:
        if _is_node(tgt):
            tgt.let(arr)
        else:
            np.copyto(tgt, arr)
    return {k: data[k] for k in targets}
