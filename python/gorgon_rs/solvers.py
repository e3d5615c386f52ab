"""Gradient-descent solvers: ``gr.solvers``.

This module owns the solver classes of API.md "Solvers" and their per-parameter state (NumPy
arrays kept here, updated in place by the native kernel). The arithmetic of a step lives in
Rust (``_native.solver_step``: one fused pass per parameter); this module only groups the
parameters by graph, keeps the step counts and state arrays, and saves/restores them. It must
not compute updates itself, and it never edits graphs.

Every step does, for each parameter ``w`` with gradient ``g`` (PyTorch's order):

1. ``g ← g / batch_size``
2. ``g ← clip(g, −clip, clip)`` (elementwise, when ``clip`` is set)
3. ``g ← g + l2·w + l1·sign(w)``
4. the rule's update (formulas in each class's docstring, equal to PyTorch's optimizer).

Step counts ``t`` are kept per parameter (like PyTorch's ``state["step"]``), starting at 1.

Example:
    >>> import numpy as np, gorgon_rs as gr
    >>> g = gr.Graph()
    >>> w = g.vector(gr.float64, 3, name="w", init=gr.init.ones())
    >>> cost = gr.sum(w * w)
    >>> (dw,) = gr.grad(cost, [w])
    >>> opt = gr.solvers.Adam(lr=0.1)
    >>> with gr.TapeMachine(g) as m:
    ...     for _ in range(10):
    ...         m.run_all(); opt.step([w]); m.reset()
"""

from __future__ import annotations

import math
import numbers
import types
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Optional, TypeGuard, Union

import numpy as np
import numpy.typing as npt

from . import _native

if TYPE_CHECKING:
    from .graph import Node

#: What ``step`` (and ``load_state_dict(params=...)``) take: one node, a list of nodes, or a dict
#: whose values are nodes.
Params = Union["Node", Iterable["Node"], Mapping[str, "Node"]]

__all__ = [
    "Params",
    "Solver",
    "SGD",
    "Momentum",
    "AdaGrad",
    "RMSProp",
    "Adam",
    "AdamW",
    "AdaDelta",
    "BarzilaiBorwein",
]


def _errors() -> types.ModuleType:
    from . import errors

    return errors


def _is_node(x: object) -> "TypeGuard[Node]":
    return hasattr(x, "_id") and hasattr(x, "graph")


def _check_float(name: str, v: Any, *, low: float = 0.0, low_open: bool = False,
                 high: Optional[float] = None, high_open: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a real number, got {type(v).__name__}")
    f = float(v)
    bad = not math.isfinite(f) or f < low or (low_open and f == low)
    if high is not None:
        bad = bad or f > high or (high_open and f == high)
    if bad:
        lo = f"{'(' if low_open else '['}{low}"
        hi = f"{high}{')' if high_open else ']'}" if high is not None else "inf)"
        raise ValueError(f"{name} must lie in {lo}, {hi}, got {v!r}")
    return f


class Solver:
    """Base class: common options, state bookkeeping, ``step``, ``state_dict``.

    Subclasses set ``_rule`` (the native rule name), ``_slots`` (names of the per-parameter
    state arrays) and ``_hyper()``.

    Args:
        lr: learning rate (> 0 for every solver; BarzilaiBorwein uses it on its first step).
        l1: L1 penalty added as ``l1·sign(w)`` to the gradient.
        l2: L2 penalty added as ``l2·w`` (PyTorch's ``weight_decay`` of non-W solvers).
        clip: clip each gradient element to ``[−clip, clip]`` (None: off).
        batch_size: gradients are divided by it first (for costs summed over a batch).

    Example:
        >>> import gorgon_rs as gr
        >>> opt = gr.solvers.SGD(lr=0.1, l2=1e-4, clip=5.0, batch_size=32)
        >>> opt.lr
        0.1
    """

    _rule: str = ""
    _slots: tuple[str, ...] = ()

    def __init__(self, lr: float, *, l1: float = 0.0, l2: float = 0.0, clip: Optional[float] = None,
                 batch_size: int | float = 1) -> None:
        self.lr = _check_float("lr", lr, low=0.0, low_open=True)
        self.l1 = _check_float("l1", l1)
        self.l2 = _check_float("l2", l2)
        self.clip = None if clip is None else _check_float("clip", clip, low=0.0, low_open=True)
        self.batch_size = _check_float("batch_size", batch_size, low=0.0, low_open=True)
        # (graph key, node id) -> [node, step count, state arrays]
        self._state: dict[tuple[int, int], list[Any]] = {}
        # graph key -> graph (a strong reference, so that a key is never reused by another graph)
        self._graphs: dict[int, Any] = {}
        # states restored by load_state_dict for parameters not seen yet: name -> (t, arrays)
        self._pending: dict[str, tuple[int, list[npt.NDArray[Any]]]] = {}
        self.t = 0  # number of step() calls

    # -- what subclasses provide ------------------------------------------------------------

    def _hyper(self) -> dict[str, float]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _new_state(self, value: npt.NDArray[Any]) -> list[npt.NDArray[Any]]:
        return [np.zeros_like(value) for _ in self._slots]

    # -- stepping ---------------------------------------------------------------------------

    def _prep(self) -> dict[str, Optional[float]]:
        return {"batch_size": self.batch_size, "clip": self.clip, "l1": self.l1, "l2": self.l2}

    @staticmethod
    def _params(params: Any) -> list["Node"]:
        if _is_node(params):
            params = [params]
        elif isinstance(params, Mapping):
            params = list(params.values())
        try:
            ps = list(params)
        except TypeError:
            raise TypeError(f"step() takes a list of parameter nodes, got {type(params).__name__}") from None
        seen: set[tuple[int, int]] = set()
        out = []
        for p in ps:
            if not _is_node(p):
                raise TypeError(f"step() takes parameter nodes, got {type(p).__name__}")
            key = (id(p.graph._g), p._id)
            if key in seen:
                continue  # the same parameter twice: update it once
            seen.add(key)
            out.append(p)
        return out

    def _entry(self, p: "Node") -> list[Any]:
        gkey = id(p.graph._g)
        key = (gkey, p._id)
        e = self._state.get(key)
        if e is None:
            self._graphs[gkey] = p.graph
            name = p.name
            if name is not None and name in self._pending:
                t, arrays = self._pending.pop(name)
                value = p.value
                for slot, a in zip(self._slots, arrays):
                    if a.shape != value.shape:
                        raise _errors().FormatError(
                            f"{type(self).__name__} state {name}/{slot}: saved shape {a.shape}, "
                            f"parameter {name!r} has shape {value.shape}")
                arrays = [np.array(a, dtype=value.dtype, order="C") for a in arrays]
            else:
                t, arrays = 0, self._new_state(p.value)
            e = [p, t, arrays]
            self._state[key] = e
        return e

    def step(self, params: Params) -> None:
        """Update every parameter in place from its ``.grad`` (one native call per graph).

        Raises ``gr.GraphError`` naming the parameter when one has no gradient (never a silent
        skip). Parameters may come from several graphs.

        Example:
            >>> g = gr.Graph(); w = g.vector(gr.float64, 2, name="w", value=[1.0, 2.0])
            >>> _ = gr.grad(gr.sum(w * w), [w])              # d/dw = 2w
            >>> opt = gr.solvers.SGD(lr=0.1)
            >>> with gr.TapeMachine(g) as m:
            ...     m.run_all(); opt.step([w]); m.reset()
            >>> w.value.tolist()                             # w - 0.1 * 2w
            [0.8, 1.6]
        """
        ps = self._params(params)
        if not ps:
            return
        entries = [self._entry(p) for p in ps]
        # group by (graph, step count): the native call takes one t for all of its parameters
        groups: dict[tuple[int, int], list[list[Any]]] = {}
        for e in entries:
            p, t = e[0], e[1]
            gkey = id(p.graph._g)
            groups.setdefault((gkey, 0 if self._rule == "bb" else t), []).append(e)
        if self._rule == "bb":
            self._check_bb(groups)
        hyper, prep = self._hyper(), self._prep()
        for (_, _), es in groups.items():
            graph = es[0][0].graph._g
            t = max(e[1] for e in es) + 1
            _native.solver_step(graph, self._rule, hyper, prep, t, [e[0]._id for e in es],
                                [e[2] for e in es])
            for e in es:
                e[1] += 1
        self.t += 1

    def _check_bb(self, groups: dict[tuple[int, int], list[list[Any]]]) -> None:
        if len(groups) > 1:
            raise ValueError(
                "BarzilaiBorwein computes one step size over all parameters of a step(); they must "
                f"belong to one graph, got parameters of {len(groups)} graphs")
        (es,) = groups.values()
        ts = {e[1] for e in es}
        if len(ts) > 1:
            raise ValueError(
                "BarzilaiBorwein: every parameter passed to step() must have taken the same "
                f"number of steps (got step counts {sorted(ts)}); pass the same list every time")

    # -- saving -----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, npt.NDArray[Any]]:
        """The solver's state as a flat ``{key: numpy array}`` dict, ready for ``gr.save``.

        Keys: ``"t"`` (0-d int64, number of ``step`` calls) and, per parameter with name ``N``,
        ``"N/step"`` (0-d int64) and ``"N/<slot>"`` for each state array (e.g. ``exp_avg``).
        Parameters without a name cannot be saved (``ValueError``).

        Example:
            >>> g = gr.Graph(); w = g.vector(gr.float64, 2, name="w", value=[1.0, 2.0])
            >>> _ = gr.grad(gr.sum(w * w), [w])
            >>> opt = gr.solvers.Adam(lr=0.1)
            >>> with gr.TapeMachine(g) as m:
            ...     m.run_all(); opt.step([w]); m.reset()
            >>> sorted(opt.state_dict())
            ['t', 'w/exp_avg', 'w/exp_avg_sq', 'w/step']
            >>> gr.save("opt.safetensors", opt.state_dict())
        """
        out: dict[str, npt.NDArray[Any]] = {"t": np.array(self.t, dtype=np.int64)}
        names: set[str] = set()
        for p, t, arrays in self._state.values():
            name = p.name
            if name is None:
                raise ValueError(f"{type(self).__name__}.state_dict: a parameter has no name; "
                                 "give every parameter a unique name")
            if name in names:
                raise ValueError(f"{type(self).__name__}.state_dict: two parameters are named {name!r}")
            names.add(name)
            out[f"{name}/step"] = np.array(t, dtype=np.int64)
            for slot, a in zip(self._slots, arrays):
                out[f"{name}/{slot}"] = a.copy()
        for name, (t, arrays) in self._pending.items():
            if name in names:
                continue
            out[f"{name}/step"] = np.array(t, dtype=np.int64)
            for slot, a in zip(self._slots, arrays):
                out[f"{name}/{slot}"] = a.copy()
        return out

    def load_state_dict(self, state: Mapping[str, npt.ArrayLike], params: Optional[Params] = None) -> None:
        """Restore what :meth:`state_dict` returned (e.g. read back with ``gr.load(path)``).

        The state of a parameter is matched by name when the parameter is next passed to
        :meth:`step` (or at once for ``params``). The whole dict is validated before anything
        changes: a missing slot or a shape mismatch raises ``gr.FormatError``.

        Example:
            >>> g = gr.Graph(); w = g.vector(gr.float64, 2, name="w", value=[1.0, 2.0])
            >>> _ = gr.grad(gr.sum(w * w), [w])
            >>> opt = gr.solvers.Adam(lr=0.1)
            >>> with gr.TapeMachine(g) as m:
            ...     m.run_all(); opt.step([w]); m.reset()
            >>> gr.save("opt.safetensors", opt.state_dict())
            >>> resumed = gr.solvers.Adam(lr=0.1)
            >>> resumed.load_state_dict(gr.load("opt.safetensors"), params=[w])
            >>> resumed.t
            1
        """
        FormatError = _errors().FormatError
        if "t" not in state:
            raise FormatError(f"{type(self).__name__}.load_state_dict: no 't' entry")
        t_all = int(np.asarray(state["t"]))
        per: dict[str, dict[str, npt.NDArray[Any]]] = {}
        for key, v in state.items():
            if key == "t":
                continue
            if "/" not in key:
                raise FormatError(f"{type(self).__name__}.load_state_dict: unexpected key {key!r}")
            name, slot = key.rsplit("/", 1)
            per.setdefault(name, {})[slot] = np.asarray(v)
        restored: dict[str, tuple[int, list[npt.NDArray[Any]]]] = {}
        for name, d in per.items():
            missing = [s for s in ("step", *self._slots) if s not in d]
            extra = [s for s in d if s not in ("step", *self._slots)]
            if missing or extra:
                raise FormatError(
                    f"{type(self).__name__}.load_state_dict: parameter {name!r} needs state "
                    f"{['step', *self._slots]}, got {sorted(d)} (is this another solver's state?)")
            arrays = [d[s] for s in self._slots]
            if any(a.shape != arrays[0].shape for a in arrays):
                raise FormatError(f"{type(self).__name__}.load_state_dict: parameter {name!r} "
                                  f"has state arrays of different shapes {[a.shape for a in arrays]}")
            restored[name] = (int(d["step"]), [np.array(a) for a in arrays])
        # validate against the parameters we know (and those passed) before changing anything
        known = [e[0] for e in self._state.values()]
        given = self._params(params) if params is not None else []
        for p in known + given:
            name = p.name
            if name in restored:
                shape = tuple(p.shape)
                got = restored[name][1][0].shape if restored[name][1] else shape
                if tuple(got) != shape:
                    raise FormatError(
                        f"{type(self).__name__}.load_state_dict: state of {name!r} has shape "
                        f"{tuple(got)}, the parameter has shape {shape}")
        # commit
        self.t = t_all
        for skey in [k for k, e in self._state.items() if e[0].name in restored]:
            del self._state[skey]
        self._pending = restored
        for p in given:
            if p.name in restored:
                self._entry(p)

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self._describe().items())
        return f"{type(self).__name__}({opts})"

    def _describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {"lr": self.lr}
        d.update({k: v for k, v in self._hyper().items() if k != "lr"})
        for k in ("l1", "l2"):
            if getattr(self, k):
                d[k] = getattr(self, k)
        if self.clip is not None:
            d["clip"] = self.clip
        if self.batch_size != 1:
            d["batch_size"] = self.batch_size
        return d


class SGD(Solver):
    """Stochastic gradient descent, optionally with (Nesterov) momentum — PyTorch's ``SGD``.

    With μ = momentum, τ = dampening, after the common gradient preparation::

        b_1 = g_1,   b_t = μ·b_{t−1} + (1−τ)·g_t      (only when μ ≠ 0)
        d = g + μ·b  (nesterov)  |  b  (momentum)  |  g  (μ = 0)
        w ← w − lr·d

    Example:
        >>> import gorgon_rs as gr
        >>> opt = gr.solvers.SGD(lr=0.1, momentum=0.9, nesterov=True)
    """

    _rule = "sgd"
    _slots = ("momentum_buffer",)

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 dampening: float = 0.0, **common: Any) -> None:
        super().__init__(lr, **common)
        self.momentum = _check_float("momentum", momentum)
        self.dampening = _check_float("dampening", dampening, high=1.0)
        self.nesterov = bool(nesterov)
        if self.nesterov and (self.momentum == 0.0 or self.dampening != 0.0):
            raise ValueError("Nesterov momentum requires momentum > 0 and dampening = 0")

    def _hyper(self) -> dict[str, float]:
        return {"lr": self.lr, "momentum": self.momentum, "nesterov": float(self.nesterov),
                "dampening": self.dampening}


class Momentum(SGD):
    """SGD with momentum (PyTorch's ``SGD(momentum=0.9)``), Gorgonia's ``Momentum`` solver.

    Same formulas as :class:`SGD`: ``b_t = μ·b_{t−1} + g_t`` (``b_1 = g_1``), ``w ← w − lr·b_t``.

    Example:
        >>> import gorgon_rs as gr
        >>> opt = gr.solvers.Momentum(lr=0.01, momentum=0.9)
    """

    def __init__(self, lr: float = 0.001, momentum: float = 0.9, nesterov: bool = False,
                 dampening: float = 0.0, **common: Any) -> None:
        super().__init__(lr, momentum=momentum, nesterov=nesterov, dampening=dampening, **common)


class AdaGrad(Solver):
    """AdaGrad — PyTorch's ``Adagrad`` (no learning-rate decay)::

        s ← s + g²
        w ← w − lr·g / (√s + eps)

    ``initial_accumulator_value`` is the starting value of ``s`` (PyTorch's option).

    Example:
        >>> import gorgon_rs as gr
        >>> opt = gr.solvers.AdaGrad(lr=0.01)
    """

    _rule = "adagrad"
    _slots = ("sum",)

    def __init__(self, lr: float = 0.01, eps: float = 1e-10, initial_accumulator_value: float = 0.0,
                 **common: Any) -> None:
        super().__init__(lr, **common)
        self.eps = _check_float("eps", eps)
        self.initial_accumulator_value = _check_float("initial_accumulator_value", initial_accumulator_value)

    def _hyper(self) -> dict[str, float]:
        return {"lr": self.lr, "eps": self.eps}

    def _new_state(self, value: npt.NDArray[Any]) -> list[npt.NDArray[Any]]:
        return [np.full_like(value, self.initial_accumulator_value)]


class RMSProp(Solver):
    """RMSProp — PyTorch's ``RMSprop`` (not centered, no momentum)::

        v ← α·v + (1−α)·g²
        w ← w − lr·g / (√v + eps)

    Example:
        >>> import gorgon_rs as gr
        >>> opt = gr.solvers.RMSProp(lr=0.001, alpha=0.9)
    """

    _rule = "rmsprop"
    _slots = ("square_avg",)

    def __init__(self, lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8, **common: Any) -> None:
        super().__init__(lr, **common)
        self.alpha = _check_float("alpha", alpha, high=1.0)
        self.eps = _check_float("eps", eps)

    def _hyper(self) -> dict[str, float]:
        return {"lr": self.lr, "alpha": self.alpha, "eps": self.eps}


class Adam(Solver):
    """Adam — PyTorch's ``Adam`` (no amsgrad)::

        m ← β₁·m + (1−β₁)·g
        v ← β₂·v + (1−β₂)·g²
        m̂ = m / (1−β₁ᵗ),  v̂ = v / (1−β₂ᵗ)
        w ← w − lr·m̂ / (√v̂ + eps)

    Example:
        >>> import gorgon_rs as gr
        >>> opt = gr.solvers.Adam(lr=1e-3)
    """

    _rule = "adam"
    _slots = ("exp_avg", "exp_avg_sq")

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 **common: Any) -> None:
        super().__init__(lr, **common)
        self.beta1 = _check_float("beta1", beta1, high=1.0, high_open=True)
        self.beta2 = _check_float("beta2", beta2, high=1.0, high_open=True)
        self.eps = _check_float("eps", eps)

    def _hyper(self) -> dict[str, float]:
        return {"lr": self.lr, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}


class AdamW(Adam):
    """AdamW — PyTorch's ``AdamW``: decoupled weight decay, then Adam::

        w ← w − lr·λ·w
        (then the Adam update of :class:`Adam`)

    Example:
        >>> import gorgon_rs as gr
        >>> opt = gr.solvers.AdamW(lr=1e-3, weight_decay=0.01)
    """

    _rule = "adamw"

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 0.01, **common: Any) -> None:
        super().__init__(lr, beta1=beta1, beta2=beta2, eps=eps, **common)
        self.weight_decay = _check_float("weight_decay", weight_decay)

    def _hyper(self) -> dict[str, float]:
        h = super()._hyper()
        h["weight_decay"] = self.weight_decay
        return h


class AdaDelta(Solver):
    """AdaDelta — PyTorch's ``Adadelta``::

        v ← ρ·v + (1−ρ)·g²
        Δ = √(u + eps) / √(v + eps) · g
        u ← ρ·u + (1−ρ)·Δ²
        w ← w − lr·Δ

    Example:
        >>> import gorgon_rs as gr
        >>> opt = gr.solvers.AdaDelta(lr=1.0, rho=0.9)
    """

    _rule = "adadelta"
    _slots = ("square_avg", "acc_delta")

    def __init__(self, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6, **common: Any) -> None:
        super().__init__(lr, **common)
        self.rho = _check_float("rho", rho, high=1.0)
        self.eps = _check_float("eps", eps)

    def _hyper(self) -> dict[str, float]:
        return {"lr": self.lr, "rho": self.rho, "eps": self.eps}


class BarzilaiBorwein(Solver):
    """Barzilai–Borwein step sizes, one η for all parameters of a ``step()``::

        t = 1:   w ← w − lr·g
        t > 1:   Δw = w − w_prev,  Δg = g − g_prev  (over all parameters, concatenated)
                 η = ⟨Δw, Δg⟩ / ‖Δg‖²
                 w ← w − η·g

    (``w_prev``, ``g_prev`` are the previous step's weights and prepared gradients.) Pass the
    same parameters, all from one graph, to every ``step()``.

    Example:
        >>> import gorgon_rs as gr
        >>> opt = gr.solvers.BarzilaiBorwein(lr=0.001)
    """

    _rule = "bb"
    _slots = ("prev_w", "prev_g")

    def __init__(self, lr: float = 0.001, **common: Any) -> None:
        super().__init__(lr, **common)

    def _hyper(self) -> dict[str, float]:
        return {"lr": self.lr}
