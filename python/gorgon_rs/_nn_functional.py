"""The composite NN functions of ``gr.nn`` (re-exported there): ``conv2d`` with bias, pooling,
dropout, batch norm, ``linear`` and the losses. Built from the public ``gr`` ops and the native
primitives ``conv2d``, ``max_pool2d``, ``avg_pool2d`` and ``dropout_mask`` (through
``graph._apply``); nothing here runs graphs or touches values, except to check the range of
constant class labels."""

from __future__ import annotations

import numbers
from typing import Any, Optional, cast

import numpy as np
import numpy.typing as npt

import gorgon_rs as gr  # attributes are read at call time only (this module loads during gr's import)

from ._nn_common import (IntOrPair, _as_node, _check_same_graph, _conv_out, _dtype_error, _is_node, _label,
                         _np_dtype, _pair, _shape_error, _where)
from .graph import Node, Operand, _apply


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
