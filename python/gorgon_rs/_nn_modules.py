"""The layer classes of ``gr.nn`` (re-exported there): ``Module`` and ``Linear``, ``Conv2d``,
``BatchNorm2d``, ``LSTMCell``, which own their parameter nodes and name them
``<kind><k>.<param>``, counting per graph and per kind in creation order."""

from __future__ import annotations

import math
import numbers
import weakref
from typing import Any, Optional, cast

import numpy as np

import gorgon_rs as gr  # attributes are read at call time only (this module loads during gr's import)

from ._nn_common import IntOrPair, _check_same_graph, _dtype_error, _is_node, _label, _np_dtype, _pair, _shape_error
from ._nn_functional import batch_norm, conv2d, linear
from .graph import DTypeLike, Graph, Node

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
