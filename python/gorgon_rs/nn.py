"""Neural-network helpers: ``gr.nn`` (functions and layers that own their parameters).

This module owns the composite NN functions of API.md (conv2d with bias, pooling, dropout,
batch norm, linear, the losses) and the layer classes (Linear, Conv2d, BatchNorm2d, LSTMCell).
Everything here is built from the public ``gr`` ops and the native primitives ``conv2d``,
``max_pool2d``, ``avg_pool2d`` and ``dropout_mask`` (through ``graph._apply``); it must not run
graphs or touch values, except to check the range of constant class labels. Arguments are
validated when a node is built and errors name the function or layer and the shapes.

Layers name their parameters ``<kind><k>.<param>`` (``linear0.weight``, ``conv1.bias``,
``batchnorm0.running_mean``...), counting per graph and per kind in creation order, so the same
model built in a fresh graph has the same names and ``gr.save``/``gr.load`` by name work.
Give ``name="encoder"`` to choose the prefix yourself.

Example:
    >>> import gorgon_rs as gr
    >>> g = gr.Graph()
    >>> x = g.matrix(gr.float32, (32, 64), name="x")
    >>> fc1, fc2 = gr.nn.Linear(g, 64, 128), gr.nn.Linear(g, 128, 10)
    >>> logits = fc2(gr.relu(fc1(x)))
    >>> y = g.vector(gr.int64, 32, name="y")
    >>> loss = gr.nn.cross_entropy(logits, y)
    >>> params = fc1.parameters() + fc2.parameters()
    >>> grads = gr.grad(loss, params)
"""

from __future__ import annotations

import math
import numbers
import os
import sys
import weakref
from typing import Any, Iterable, Optional, Sequence, TypeGuard, Union, cast

import numpy as np
import numpy.typing as npt

import gorgon_rs as gr  # attributes are read at call time only (this module loads during gr's import)

from .graph import DTypeLike, Graph, Node, Operand, _apply

__all__ = [
    "conv2d",
    "max_pool2d",
    "avg_pool2d",
    "dropout",
    "batch_norm",
    "linear",
    "cross_entropy",
    "binary_cross_entropy",
    "mse_loss",
    "Module",
    "Linear",
    "Conv2d",
    "BatchNorm2d",
    "LSTMCell",
]

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


# ---------------------------------------------------------------------------------------------
# functions
# ---------------------------------------------------------------------------------------------


def conv2d(x: Node, w: Operand, bias: Optional[Operand] = None, stride: IntOrPair = 1, padding: IntOrPair = 0,
           dilation: IntOrPair = 1) -> Node:
    """2-D cross-correlation (PyTorch's ``conv2d``): ``x`` NCHW, ``w`` OIHW, ``bias`` (O,).

    Output ``(N, O, oH, oW)`` with ``oH = (H + 2·pad − dil·(kH−1) − 1) // stride + 1``.
    ``stride``, ``padding`` and ``dilation`` take an int or an ``(h, w)`` pair.

    Example:
        >>> g = gr.Graph()
        >>> x = g.tensor(gr.float32, (8, 3, 32, 32), name="x")
        >>> w = g.tensor(gr.float32, (16, 3, 3, 3), name="w", init=gr.init.he_uniform())
        >>> gr.nn.conv2d(x, w, padding=1).shape
        (8, 16, 32, 32)
    """
    st = _pair("conv2d: stride", stride, minimum=1)
    pd = _pair("conv2d: padding", padding, minimum=0)
    dl = _pair("conv2d: dilation", dilation, minimum=1)
    if not _is_node(x):
        raise TypeError(f"conv2d: x must be a node, got {type(x).__name__}")
    w = _as_node(w, x, "weight")
    if x.ndim != 4:
        raise _shape_error(f"conv2d: input must be 4-D (N, C, H, W), got {_label(x)}")
    if w.ndim != 4:
        raise _shape_error(f"conv2d: weight must be 4-D (O, I, kH, kW), got {_label(w)}")
    N, C, H, W = x.shape
    O, I, kh, kw = w.shape
    if C != I:
        raise _shape_error(f"conv2d: input has {C} channels but the weight expects {I} "
                           f"(input {_label(x)}, weight {_label(w)})")
    oh, ow = _conv_out(H, kh, st[0], pd[0], dl[0]), _conv_out(W, kw, st[1], pd[1], dl[1])
    if oh <= 0 or ow <= 0:
        raise _shape_error(f"conv2d: kernel {(kh, kw)} with dilation {dl} does not fit the padded input "
                           f"{(H + 2 * pd[0], W + 2 * pd[1])} (input {_label(x)})")
    _check_same_graph("conv2d", x, w)
    y = _apply("conv2d", [x, w], stride=st, padding=pd, dilation=dl)
    if bias is not None:
        b = _as_node(bias, x, "bias")
        if tuple(b.shape) != (O,):
            raise _shape_error(f"conv2d: bias must have shape ({O},), got {_label(b)}")
        y = y + gr.reshape(b, (1, O, 1, 1))
    return y


def _pool(op: str, x: Node, kernel: IntOrPair, stride: Optional[IntOrPair], padding: IntOrPair) -> Node:
    k = _pair(f"{op}: kernel", kernel, minimum=1)
    s = k if stride is None else _pair(f"{op}: stride", stride, minimum=1)
    p = _pair(f"{op}: padding", padding, minimum=0)
    if not _is_node(x):
        raise TypeError(f"{op}: x must be a node, got {type(x).__name__}")
    if x.ndim != 4:
        raise _shape_error(f"{op}: input must be 4-D (N, C, H, W), got {_label(x)}")
    if p[0] * 2 > k[0] or p[1] * 2 > k[1]:
        raise ValueError(f"{op}: padding {p} must be at most half the kernel {k}")
    H, W = x.shape[2], x.shape[3]
    if _conv_out(H, k[0], s[0], p[0], 1) <= 0 or _conv_out(W, k[1], s[1], p[1], 1) <= 0:
        raise _shape_error(f"{op}: kernel {k} does not fit the padded input {(H + 2 * p[0], W + 2 * p[1])} "
                           f"(input {_label(x)})")
    return _apply(op, [x], kernel=k, stride=s, padding=p)


def max_pool2d(x: Node, kernel: IntOrPair, stride: Optional[IntOrPair] = None, padding: IntOrPair = 0) -> Node:
    """Max pooling over ``kernel`` windows of an NCHW input (padding counts as −∞).

    ``stride=None`` means stride = kernel. Output size as in :func:`conv2d` (floor mode).

    Example:
        >>> g = gr.Graph()
        >>> x = g.tensor(gr.float32, (8, 16, 8, 8), name="x")
        >>> gr.nn.max_pool2d(x, 2).shape
        (8, 16, 4, 4)
    """
    return _pool("max_pool2d", x, kernel, stride, padding)


def avg_pool2d(x: Node, kernel: IntOrPair, stride: Optional[IntOrPair] = None, padding: IntOrPair = 0) -> Node:
    """Average pooling; padded zeros count in the average (PyTorch's default).

    Example:
        >>> g = gr.Graph()
        >>> x = g.tensor(gr.float32, (1, 3, 7, 7), name="x")
        >>> gr.nn.avg_pool2d(x, 3, stride=2, padding=1).shape
        (1, 3, 4, 4)
    """
    return _pool("avg_pool2d", x, kernel, stride, padding)


def dropout(x: Node, p: float, training: bool = True) -> Node:
    """Inverted dropout: zero each element with probability ``p``, scale the rest by 1/(1−p).

    A fresh mask is drawn on every run (reproducible after ``gr.seed``); the gradient uses the
    same mask. ``training=False`` (or ``p == 0``) returns ``x`` unchanged; ``p == 1`` gives zeros.

    Example:
        >>> g = gr.Graph()
        >>> h = g.matrix(gr.float32, (32, 128), name="h")
        >>> h2 = gr.nn.dropout(h, 0.5)                      # training graph
        >>> h3 = gr.nn.dropout(h, 0.5, training=False)      # h itself
    """
    if isinstance(p, bool) or not isinstance(p, (numbers.Real, np.floating)) or not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"dropout: p must be a probability in [0, 1], got {p!r}")
    if not _is_node(x):
        raise TypeError(f"dropout: x must be a node, got {type(x).__name__}")
    if _np_dtype(x.dtype).kind != "f":
        raise _dtype_error(f"dropout: input must be float32 or float64, got {_label(x)}")
    p = float(p)
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    return x * _apply("dropout_mask", [x], p=p)


def batch_norm(x: Node, gamma: Optional[Node], beta: Optional[Node], running_mean: Optional[Node],
               running_var: Optional[Node], training: bool = True, momentum: float = 0.1, eps: float = 1e-5) -> Node:
    """Batch normalization over the batch (and spatial) axes of an (N, C) or (N, C, H, W) input.

    Training: ``y = (x − μ_B) / √(σ²_B + eps) · γ + β`` with the batch mean and *biased*
    variance per channel, and, after every run, the running statistics (leaves) are updated
    like PyTorch: ``running = (1 − momentum)·running + momentum·stat`` with the *unbiased*
    batch variance. Evaluation (``training=False``) uses the running statistics instead.
    ``gamma``/``beta`` may be None (no affine part); in training, the running statistics may
    be None (not tracked). The mode is fixed when the node is built.

    Example:
        >>> g = gr.Graph()
        >>> x = g.tensor(gr.float32, (8, 4, 5, 5), name="x")
        >>> gamma = g.vector(gr.float32, 4, name="gamma", init=gr.init.ones())
        >>> beta = g.vector(gr.float32, 4, name="beta", init=gr.init.zeros())
        >>> rm = g.vector(gr.float32, 4, name="rm", init=gr.init.zeros())
        >>> rv = g.vector(gr.float32, 4, name="rv", init=gr.init.ones())
        >>> y = gr.nn.batch_norm(x, gamma, beta, rm, rv, training=True)
    """
    if not _is_node(x):
        raise TypeError(f"batch_norm: x must be a node, got {type(x).__name__}")
    if x.ndim not in (2, 4):
        raise _shape_error(f"batch_norm: input must be 2-D (N, C) or 4-D (N, C, H, W), got {_label(x)}")
    dt = _np_dtype(x.dtype)
    if dt.kind != "f":
        raise _dtype_error(f"batch_norm: input must be float32 or float64, got {_label(x)}")
    momentum, eps = float(momentum), float(eps)
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"batch_norm: momentum must lie in [0, 1], got {momentum}")
    if not eps >= 0.0:
        raise ValueError(f"batch_norm: eps must be >= 0, got {eps}")
    C = x.shape[1]
    bshape = (1, C, 1, 1) if x.ndim == 4 else (1, C)
    axes = (0, 2, 3) if x.ndim == 4 else (0,)
    named = {"gamma": gamma, "beta": beta, "running_mean": running_mean, "running_var": running_var}
    for what, v in named.items():
        if v is None:
            continue
        if not _is_node(v):
            raise TypeError(f"batch_norm: {what} must be a node or None, got {type(v).__name__}")
        if tuple(v.shape) != (C,):
            raise _shape_error(f"batch_norm: {what} must have shape ({C},) for input {_label(x)}, got {_label(v)}")
        if _np_dtype(v.dtype) != dt:
            raise _dtype_error(f"batch_norm: {what} must be {dt.name} like the input {_label(x)}, got {_label(v)}")
    _check_same_graph("batch_norm", x, *[v for v in named.values() if v is not None])

    if training:
        n = x.shape[0] * (x.shape[2] * x.shape[3] if x.ndim == 4 else 1)
        if n <= 1:
            raise _shape_error(f"batch_norm: training needs more than 1 value per channel, got input {_label(x)}")
        mean = gr.mean(x, axis=axes, keepdims=True)
        xc = x - mean
        var = gr.mean(xc * xc, axis=axes, keepdims=True)
        y = xc * gr.inverse_sqrt(var + eps)
        if (running_mean is None) != (running_var is None):
            raise ValueError("batch_norm: give both running_mean and running_var, or neither")
        if running_mean is not None:
            running_var = cast(Node, running_var)  # both or neither, checked just above
            g = x.graph._g
            new_mean = running_mean * (1.0 - momentum) + gr.reshape(mean, (C,)) * momentum
            unbiased = gr.reshape(var, (C,)) * (n / (n - 1.0))
            new_var = running_var * (1.0 - momentum) + unbiased * momentum
            g.add_update(running_mean._id, new_mean._id)
            g.add_update(running_var._id, new_var._id)
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: training=False needs running_mean and running_var")
        y = (x - gr.reshape(running_mean, bshape)) * gr.reshape(gr.inverse_sqrt(running_var + eps), bshape)
    if gamma is not None:
        y = y * gr.reshape(gamma, bshape)
    if beta is not None:
        y = y + gr.reshape(beta, bshape)
    return y


def linear(x: Node, w: Operand, b: Optional[Operand] = None) -> Node:
    """``x @ w + b`` with ``w`` shaped ``(in, out)`` and ``b`` shaped ``(out,)``.

    Example:
        >>> g = gr.Graph()
        >>> x = g.matrix(gr.float32, (32, 64), name="x")
        >>> w = g.matrix(gr.float32, (64, 10), name="w", init=gr.init.glorot_uniform())
        >>> gr.nn.linear(x, w).shape
        (32, 10)
    """
    if not _is_node(x):
        raise TypeError(f"linear: x must be a node, got {type(x).__name__}")
    w = _as_node(w, x, "weight")
    if w.ndim != 2:
        raise _shape_error(f"linear: weight must be 2-D (in, out), got {_label(w)}")
    if x.ndim < 1 or x.shape[-1] != w.shape[0]:
        raise _shape_error(f"linear: input's last axis must be {w.shape[0]} (in_features of weight "
                           f"{_label(w)}), got input {_label(x)}")
    y = gr.matmul(x, w)
    if b is not None:
        b = _as_node(b, x, "bias")
        if tuple(b.shape) != (w.shape[1],):
            raise _shape_error(f"linear: bias must have shape ({w.shape[1]},), got {_label(b)}")
        y = y + b
    return y


def _reduce(op: str, per_item: Node, reduction: str) -> Node:
    if reduction == "mean":
        return gr.mean(per_item)
    if reduction == "sum":
        return gr.sum(per_item)
    if reduction == "none":
        return per_item
    raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _node_kind(node: Node) -> Optional[str]:
    try:
        return node.graph._g.node_info(node._id)[3]
    except Exception:
        return None


def _check_label_range(values: npt.NDArray[Any], n_classes: int) -> None:
    if values.size == 0:
        return
    lo, hi = int(values.min()), int(values.max())
    if lo < 0 or hi >= n_classes:
        bad = lo if lo < 0 else hi
        raise ValueError(f"cross_entropy: class index {bad} is out of range for {n_classes} classes "
                         f"(labels must lie in [0, {n_classes - 1}]) (at {_where()})")


def cross_entropy(logits: Node, target: Operand, reduction: str = "mean") -> Node:
    """Softmax cross-entropy of ``logits`` (N, C) — or (C,) — against ``target``.

    ``target`` is either integer class indices of shape ``logits.shape[:-1]`` (a node, array or
    list; int32/int64) or float class probabilities / one-hot rows with ``logits``' shape and
    dtype. Per item: ``−Σ_c t_c · log_softmax(logits)_c``; ``reduction`` "mean" (over items),
    "sum" or "none". Constant labels are checked against the number of classes.

    Example:
        >>> g = gr.Graph()
        >>> logits = g.matrix(gr.float32, (4, 3), name="logits")
        >>> loss = gr.nn.cross_entropy(logits, np.array([0, 2, 1, 2]))
        >>> per_item = gr.nn.cross_entropy(logits, np.eye(3, dtype=np.float32)[[0, 2, 1, 2]], "none")
    """
    if not _is_node(logits):
        raise TypeError(f"cross_entropy: logits must be a node, got {type(logits).__name__}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    ldt = _np_dtype(logits.dtype)
    if ldt.kind != "f":
        raise _dtype_error(f"cross_entropy: logits must be float32 or float64, got {_label(logits)}")
    if logits.ndim not in (1, 2):
        raise _shape_error(f"cross_entropy: logits must be (N, C) or (C,), got {_label(logits)}")
    C = logits.shape[-1]
    if C == 0:
        raise _shape_error(f"cross_entropy: logits have no classes: {_label(logits)}")
    idx_shape = tuple(logits.shape[:-1])

    if _is_node(target):
        tdt = _np_dtype(target.dtype)
        _check_same_graph("cross_entropy", logits, target)
        if tdt.kind in "iu":
            if tuple(target.shape) != idx_shape:
                raise _shape_error(f"cross_entropy: class indices must have shape {idx_shape} for logits "
                                   f"{_label(logits)}, got {_label(target)}")
            if _node_kind(target) == "constant":
                _check_label_range(np.asarray(target.value), C)
            t = gr.one_hot(target, C, dtype=ldt)
        elif tdt.kind == "f":
            if tuple(target.shape) != tuple(logits.shape):
                raise _shape_error(f"cross_entropy: probability targets must have the logits' shape, "
                                   f"logits {_label(logits)}, target {_label(target)}")
            if tdt != ldt:
                raise _dtype_error(f"cross_entropy: probability targets must be {ldt.name} like the logits, "
                                   f"got {_label(target)}")
            t = target
        else:
            raise _dtype_error(f"cross_entropy: target must be int class indices or float probabilities, "
                               f"got {_label(target)}")
    else:
        a = np.asarray(target)
        if a.dtype.kind in "iu":
            if a.shape != idx_shape:
                raise _shape_error(f"cross_entropy: class indices must have shape {idx_shape} for logits "
                                   f"{_label(logits)}, got an array of shape {a.shape}")
            _check_label_range(a, C)
            onehot = np.zeros(idx_shape + (C,), dtype=ldt)
            if a.ndim == 0:
                onehot[int(a)] = 1
            else:
                onehot[np.arange(a.shape[0]), a.astype(np.int64)] = 1
            t = logits.graph.constant(onehot)
        elif a.dtype.kind == "f":
            if a.shape == idx_shape and a.shape != tuple(logits.shape):
                raise _dtype_error(f"cross_entropy: class indices must be integers, got a {a.dtype} array of "
                                   f"shape {a.shape}; use labels.astype(np.int64)")
            if a.shape != tuple(logits.shape):
                raise _shape_error(f"cross_entropy: probability targets must have the logits' shape "
                                   f"{tuple(logits.shape)}, got {a.shape}")
            t = logits.graph.constant(a.astype(ldt))
        else:
            raise _dtype_error(f"cross_entropy: target must be int class indices or float probabilities, "
                               f"got a {a.dtype} array")
    logp = gr.log_softmax(logits, axis=-1)
    per_item = -gr.sum(logp * t, axis=-1)
    return _reduce("cross_entropy", per_item, reduction)


def _target_like(op: str, p: Node, target: Operand) -> Node:
    pdt = _np_dtype(p.dtype)
    if _is_node(target):
        if tuple(target.shape) != tuple(p.shape):
            raise _shape_error(f"{op}: target must have the input's shape, input {_label(p)}, target {_label(target)}")
        if _np_dtype(target.dtype) != pdt:
            raise _dtype_error(f"{op}: target must be {pdt.name} like the input {_label(p)}, got {_label(target)}")
        _check_same_graph(op, p, target)
        return target
    a = np.asarray(target)
    if a.dtype.kind not in "biuf":
        raise _dtype_error(f"{op}: target must be numeric, got a {a.dtype} array")
    if a.shape != tuple(p.shape):
        raise _shape_error(f"{op}: target must have the input's shape {tuple(p.shape)}, got an array of shape {a.shape}")
    return p.graph.constant(a.astype(pdt))


def binary_cross_entropy(p: Node, target: Operand, reduction: str = "mean", eps: Optional[float] = None) -> Node:
    """Binary cross-entropy of probabilities ``p`` against ``target`` (same shape, values in [0, 1]).

    ``mean(−[t·log p + (1−t)·log(1−p)])`` with ``p`` clamped to ``[eps, 1−eps]`` (default eps
    1e-7 for float32, 1e-12 for float64). For logits use ``p = gr.sigmoid(z)``.

    Example:
        >>> g = gr.Graph()
        >>> z = g.vector(gr.float64, 4, name="z")
        >>> loss = gr.nn.binary_cross_entropy(gr.sigmoid(z), np.array([0.0, 1.0, 1.0, 0.0]))
    """
    if not _is_node(p):
        raise TypeError(f"binary_cross_entropy: p must be a node, got {type(p).__name__}")
    pdt = _np_dtype(p.dtype)
    if pdt.kind != "f":
        raise _dtype_error(f"binary_cross_entropy: p must be float32 or float64, got {_label(p)}")
    t = _target_like("binary_cross_entropy", p, target)
    if eps is None:
        eps = 1e-7 if pdt == np.float32 else 1e-12
    pc = gr.clip(p, eps, 1.0 - eps)
    per_item = -(t * gr.log(pc) + (1.0 - t) * gr.log(1.0 - pc))
    return _reduce("binary_cross_entropy", per_item, reduction)


def mse_loss(a: Operand, b: Operand, reduction: str = "mean") -> Node:
    """Mean squared error ``mean((a − b)²)``; ``a`` and ``b`` must have the same shape.

    Example:
        >>> g = gr.Graph()
        >>> pred = g.vector(gr.float32, 10, name="pred")
        >>> loss = gr.nn.mse_loss(pred, np.zeros(10, np.float32))
    """
    if _is_node(a):
        other = b
    elif _is_node(b):
        a, other = b, a
    else:
        raise TypeError("mse_loss: at least one operand must be a node")
    if _np_dtype(a.dtype).kind != "f":
        raise _dtype_error(f"mse_loss: operands must be float32 or float64, got {_label(a)}")
    t = _target_like("mse_loss", a, other)
    d = a - t
    return _reduce("mse_loss", d * d, reduction)


# ---------------------------------------------------------------------------------------------
# layers
# ---------------------------------------------------------------------------------------------

_COUNTERS: "weakref.WeakKeyDictionary[Any, dict[str, int]]" = weakref.WeakKeyDictionary()
_COUNTERS_STRONG: dict[int, tuple[Any, dict[str, int]]] = {}


def _next_prefix(g: Any, kind: str) -> str:
    try:
        counters = _COUNTERS.setdefault(g, {})
    except TypeError:  # the graph does not take weak references
        counters = _COUNTERS_STRONG.setdefault(id(g), (g, {}))[1]
    k = counters.get(kind, 0)
    counters[kind] = k + 1
    return f"{kind}{k}"


def _check_features(what: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, (numbers.Integral, np.integer)) or v <= 0:
        raise ValueError(f"{what} must be a positive int, got {v!r}")
    return int(v)


class Module:
    """Base of the layers: a callable that owns named parameter nodes of one graph.

    Example:
        >>> g = gr.Graph()
        >>> layer = gr.nn.Linear(g, 4, 2)
        >>> [p.name for p in layer.parameters()]
        ['linear0.weight', 'linear0.bias']
        >>> isinstance(layer, gr.nn.Module)
        True
    """

    kind = "module"

    def __init__(self, g: Graph, name: Optional[str], dtype: Optional[DTypeLike]) -> None:
        if not hasattr(g, "_g"):
            raise TypeError(f"{type(self).__name__}: the first argument must be a gr.Graph, got {type(g).__name__}")
        self.graph = g
        self.dtype = _np_dtype(dtype if dtype is not None else "float32")
        if self.dtype.kind != "f":
            raise gr.DTypeError(f"{type(self).__name__}: dtype must be float32 or float64, got {self.dtype.name}")
        self.name = name if name is not None else _next_prefix(g, self.kind)

    def parameters(self) -> list[Node]:
        """The trainable nodes of this layer, in a fixed order.

        Example:
            >>> fc = gr.nn.Linear(gr.Graph(), 4, 2)
            >>> [p.shape for p in fc.parameters()]
            [(4, 2), (2,)]
        """
        return []

    def buffers(self) -> list[Node]:
        """Non-trainable state nodes (e.g. running statistics); saved alongside parameters.

        Example:
            >>> bn = gr.nn.BatchNorm2d(gr.Graph(), 3)
            >>> gr.save("bn.safetensors", bn.parameters() + bn.buffers())
            >>> [b.name for b in bn.buffers()]
            ['batchnorm0.running_mean', 'batchnorm0.running_var']
        """
        return []

    def _check_input(self, x: Node) -> None:
        if not _is_node(x):
            raise TypeError(f"{self!r}: input must be a node, got {type(x).__name__}")
        if _np_dtype(x.dtype) != self.dtype:
            raise _dtype_error(f"{self!r}: input must be {self.dtype.name}, got {_label(x)}")
        _check_same_graph(type(self).__name__, x, *self.parameters())


class Linear(Module):
    """Fully connected layer ``y = x @ W + b`` with ``W`` (in, out), ``b`` (out,).

    Initialized like PyTorch: ``W, b ~ U(−1/√in, 1/√in)``. Parameters ``<name>.weight`` and
    ``<name>.bias`` (default name ``linear<k>``).

    Example:
        >>> g = gr.Graph()
        >>> fc = gr.nn.Linear(g, 64, 10)
        >>> x = g.matrix(gr.float32, (32, 64), name="x")
        >>> fc(x).shape
        (32, 10)
    """

    kind = "linear"

    def __init__(self, g: Graph, in_features: int, out_features: int, bias: bool = True,
                 dtype: DTypeLike = "float32", name: Optional[str] = None) -> None:
        super().__init__(g, name, dtype)
        self.in_features = _check_features("Linear: in_features", in_features)
        self.out_features = _check_features("Linear: out_features", out_features)
        k = 1.0 / math.sqrt(self.in_features)
        init = gr.init.uniform(-k, k)
        self.weight = g.matrix(self.dtype, (self.in_features, self.out_features),
                               name=f"{self.name}.weight", init=init)
        self.bias = g.vector(self.dtype, self.out_features, name=f"{self.name}.bias", init=init) if bias else None

    def parameters(self) -> list[Node]:
        return [self.weight] + ([self.bias] if self.bias is not None else [])

    def __call__(self, x: Node) -> Node:
        self._check_input(x)
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise _shape_error(f"{self!r}: input's last axis must be {self.in_features}, got {_label(x)}")
        return linear(x, self.weight, self.bias)

    def __repr__(self) -> str:
        return f"Linear({self.name!r}, in_features={self.in_features}, out_features={self.out_features})"


class Conv2d(Module):
    """2-D convolution layer over NCHW inputs with an OIHW weight and a bias per output channel.

    Initialized like PyTorch: ``U(−1/√(in_ch·kH·kW), 1/√(in_ch·kH·kW))`` for weight and bias.
    Parameters ``<name>.weight`` and ``<name>.bias`` (default name ``conv<k>``).

    Example:
        >>> g = gr.Graph()
        >>> conv = gr.nn.Conv2d(g, 1, 16, 3, padding=1)
        >>> x = g.tensor(gr.float32, (32, 1, 8, 8), name="x")
        >>> conv(x).shape
        (32, 16, 8, 8)
    """

    kind = "conv"

    def __init__(self, g: Graph, in_ch: int, out_ch: int, kernel: IntOrPair, stride: IntOrPair = 1,
                 padding: IntOrPair = 0, dilation: IntOrPair = 1, bias: bool = True, dtype: DTypeLike = "float32",
                 name: Optional[str] = None) -> None:
        super().__init__(g, name, dtype)
        self.in_ch = _check_features("Conv2d: in_ch", in_ch)
        self.out_ch = _check_features("Conv2d: out_ch", out_ch)
        self.kernel = _pair("Conv2d: kernel", kernel, minimum=1)
        self.stride = _pair("Conv2d: stride", stride, minimum=1)
        self.padding = _pair("Conv2d: padding", padding, minimum=0)
        self.dilation = _pair("Conv2d: dilation", dilation, minimum=1)
        k = 1.0 / math.sqrt(self.in_ch * self.kernel[0] * self.kernel[1])
        init = gr.init.uniform(-k, k)
        self.weight = g.tensor(self.dtype, (self.out_ch, self.in_ch) + self.kernel, name=f"{self.name}.weight",
                               init=init)
        self.bias = g.vector(self.dtype, self.out_ch, name=f"{self.name}.bias", init=init) if bias else None

    def parameters(self) -> list[Node]:
        return [self.weight] + ([self.bias] if self.bias is not None else [])

    def __call__(self, x: Node) -> Node:
        self._check_input(x)
        if x.ndim != 4 or x.shape[1] != self.in_ch:
            raise _shape_error(f"{self!r}: expected a 4-D input (N, {self.in_ch}, H, W), got {_label(x)}")
        return conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation)

    def __repr__(self) -> str:
        return (f"Conv2d({self.name!r}, {self.in_ch}, {self.out_ch}, kernel={self.kernel}, stride={self.stride}, "
                f"padding={self.padding})")


class BatchNorm2d(Module):
    """Batch normalization of (N, C, H, W) inputs, with learnable γ (ones) and β (zeros).

    Running statistics ``running_mean`` (zeros) and ``running_var`` (ones) are leaves updated
    after every run of a graph built with ``training=True`` (see :func:`batch_norm`); build the
    evaluation graph with ``layer.training = False`` (or ``layer.eval()``). Parameters
    ``<name>.weight``, ``<name>.bias``; buffers ``<name>.running_mean``, ``<name>.running_var``
    (default name ``batchnorm<k>``).

    Example:
        >>> g = gr.Graph()
        >>> bn = gr.nn.BatchNorm2d(g, 16)
        >>> x = g.tensor(gr.float32, (32, 16, 8, 8), name="x")
        >>> y = bn(x)                       # training mode
        >>> [p.name for p in bn.buffers()]
        ['batchnorm0.running_mean', 'batchnorm0.running_var']
    """

    kind = "batchnorm"

    def __init__(self, g: Graph, ch: int, dtype: DTypeLike = "float32", momentum: float = 0.1, eps: float = 1e-5,
                 name: Optional[str] = None) -> None:
        super().__init__(g, name, dtype)
        self.ch = _check_features("BatchNorm2d: ch", ch)
        self.momentum = float(momentum)
        self.eps = float(eps)
        self.training = True
        self.weight = g.vector(self.dtype, self.ch, name=f"{self.name}.weight", init=gr.init.ones())
        self.bias = g.vector(self.dtype, self.ch, name=f"{self.name}.bias", init=gr.init.zeros())
        self.running_mean = g.vector(self.dtype, self.ch, name=f"{self.name}.running_mean", init=gr.init.zeros())
        self.running_var = g.vector(self.dtype, self.ch, name=f"{self.name}.running_var", init=gr.init.ones())

    def train(self, mode: bool = True) -> "BatchNorm2d":
        """Set the mode used by the next calls (graphs already built keep theirs).

        Example:
            >>> bn = gr.nn.BatchNorm2d(gr.Graph(), 3)
            >>> bn.train(False) is bn, bn.training
            (True, False)
        """
        self.training = bool(mode)
        return self

    def eval(self) -> "BatchNorm2d":
        """Same as ``train(False)``.

        Example:
            >>> g = gr.Graph(); bn = gr.nn.BatchNorm2d(g, 3)
            >>> x = g.tensor(gr.float32, (2, 3, 4, 4), name="x")
            >>> y_train = bn(x)                                # batch statistics
            >>> y_eval = bn.eval()(x)                          # running statistics
            >>> bn.training
            False
        """
        return self.train(False)

    def parameters(self) -> list[Node]:
        return [self.weight, self.bias]

    def buffers(self) -> list[Node]:
        return [self.running_mean, self.running_var]

    def __call__(self, x: Node) -> Node:
        self._check_input(x)
        if x.ndim != 4 or x.shape[1] != self.ch:
            raise _shape_error(f"{self!r}: expected a 4-D input (N, {self.ch}, H, W), got {_label(x)}")
        return batch_norm(x, self.weight, self.bias, self.running_mean, self.running_var,
                          training=self.training, momentum=self.momentum, eps=self.eps)

    def __repr__(self) -> str:
        return f"BatchNorm2d({self.name!r}, {self.ch}, training={self.training})"


class LSTMCell(Module):
    """One LSTM step (PyTorch's ``LSTMCell``, gate order i, f, g, o)::

        z = x @ W_ih + b_ih + h @ W_hh + b_hh            # (N, 4·hidden)
        i, f, g, o = σ(z_i), σ(z_f), tanh(z_g), σ(z_o)
        c' = f·c + i·g;   h' = o·tanh(c')

    ``W_ih`` is (in_features, 4·hidden), ``W_hh`` (hidden, 4·hidden), all initialized
    ``U(−1/√hidden, 1/√hidden)``. Call ``cell(x, (h, c))`` → ``(h', c')``; without a state,
    zeros are used. Parameters ``<name>.weight_ih``, ``.weight_hh``, ``.bias_ih``, ``.bias_hh``
    (default name ``lstmcell<k>``).

    Example:
        >>> g = gr.Graph()
        >>> cell = gr.nn.LSTMCell(g, 10, 20)
        >>> x = g.matrix(gr.float32, (3, 10), name="x")
        >>> h, c = cell(x)
        >>> h, c = cell(x, (h, c))
        >>> h.shape
        (3, 20)
    """

    kind = "lstmcell"

    def __init__(self, g: Graph, in_features: int, hidden: int, bias: bool = True, dtype: DTypeLike = "float32",
                 name: Optional[str] = None) -> None:
        super().__init__(g, name, dtype)
        self.in_features = _check_features("LSTMCell: in_features", in_features)
        self.hidden = _check_features("LSTMCell: hidden", hidden)
        k = 1.0 / math.sqrt(self.hidden)
        init = gr.init.uniform(-k, k)
        h4 = 4 * self.hidden
        self.weight_ih = g.matrix(self.dtype, (self.in_features, h4), name=f"{self.name}.weight_ih", init=init)
        self.weight_hh = g.matrix(self.dtype, (self.hidden, h4), name=f"{self.name}.weight_hh", init=init)
        self.bias_ih: Optional[Node]
        self.bias_hh: Optional[Node]
        if bias:
            self.bias_ih = g.vector(self.dtype, h4, name=f"{self.name}.bias_ih", init=init)
            self.bias_hh = g.vector(self.dtype, h4, name=f"{self.name}.bias_hh", init=init)
        else:
            self.bias_ih = self.bias_hh = None

    def parameters(self) -> list[Node]:
        ps = [self.weight_ih, self.weight_hh]
        if self.bias_ih is not None:
            ps += [self.bias_ih, cast(Node, self.bias_hh)]  # both or neither
        return ps

    def __call__(self, x: Node, state: Optional[tuple[Node, Node]] = None) -> tuple[Node, Node]:
        self._check_input(x)
        if x.ndim not in (1, 2) or x.shape[-1] != self.in_features:
            raise _shape_error(f"{self!r}: expected an input (N, {self.in_features}) or ({self.in_features},), "
                               f"got {_label(x)}")
        hs = tuple(x.shape[:-1]) + (self.hidden,)
        if state is None:
            zero = self.graph.constant(np.zeros(hs, dtype=self.dtype))
            h, c = zero, zero
        else:
            try:
                h, c = state
            except (TypeError, ValueError):
                raise TypeError(f"{self!r}: state must be a pair (h, c), got {type(state).__name__}") from None
            for what, v in (("h", h), ("c", c)):
                if not _is_node(v):
                    raise TypeError(f"{self!r}: state {what} must be a node, got {type(v).__name__}")
                if tuple(v.shape) != hs:
                    raise _shape_error(f"{self!r}: state {what} must have shape {hs} for input {_label(x)}, "
                                       f"got {_label(v)}")
                if _np_dtype(v.dtype) != self.dtype:
                    raise _dtype_error(f"{self!r}: state {what} must be {self.dtype.name}, got {_label(v)}")
        z = gr.matmul(x, self.weight_ih) + gr.matmul(h, self.weight_hh)
        if self.bias_ih is not None:
            z = z + (self.bias_ih + self.bias_hh)
        H = self.hidden
        zi, zf, zg, zo = (z[..., k * H:(k + 1) * H] for k in range(4))
        i, f, o = gr.sigmoid(zi), gr.sigmoid(zf), gr.sigmoid(zo)
        gg = gr.tanh(zg)
        c2 = f * c + i * gg
        h2 = o * gr.tanh(c2)
        return h2, c2

    def __repr__(self) -> str:
        return f"LSTMCell({self.name!r}, in_features={self.in_features}, hidden={self.hidden})"
