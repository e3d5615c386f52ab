"""The machinery of the fuzz suite's random programs (``Prog`` in ``_fuzz_steps`` builds on it):
:class:`Entry`, and :class:`ProgBase`, which draws, builds and binds nodes, writes the runnable
repro with ``hypothesis.note``, runs the program with one machine and checks every step against
its NumPy reference. Must not import pytest (``_fuzzlib`` is imported by the conftest).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import numpy as np
from hypothesis import event, note
from hypothesis import strategies as st

import gorgon_rs as gr

from _fuzz_outcomes import Refused, guarded
from _fuzz_refs import BINARY, REDUCE, UNARY
from _fuzz_values import DTYPES, Ref, arr_code, arrays, assert_matches, eps, mismatch

# ---------------------------------------------------------------------------------------------
# Random programs
# ---------------------------------------------------------------------------------------------


@dataclass
class Entry:
    """One node of a random program: its gorgon node, the source line that built it, the
    reference of its step and the entries (or raw operands) the step used."""

    name: str
    node: Any
    code: str
    ref: Optional[Callable[..., Ref]] = None
    operands: list = field(default_factory=list)
    leaf_value: Optional[np.ndarray] = None
    bind: str = "value"
    smooth: bool = True
    discontinuous: bool = False
    rewritten: bool = False


# Ops at the root of a stabilization rewrite (API.md: log(1+x) -> log1p(x), exp(x)-1 -> expm1(x),
# log(sigmoid(x)) -> -softplus(-x), 1-sigmoid(x) -> sigmoid(-x), -(-x) -> x, exp(x)/sum(exp(x)) ->
# softmax(x), log(sum(exp(x))) -> logsumexp(x), ...).
REWRITE_ROOTS = {"log", "log1p", "sub", "neg", "div"}


class ProgBase:
    """A random program over one graph, drawn step by step from ``data`` (``st.data()``): the
    drawing, building, running and checking. The steps are in ``_fuzz_steps.Prog``.

    ``families`` restricts the op families a random step may use. The repro is written with
    ``hypothesis.note`` as the program is built, as runnable Python.
    """


    FAMILIES = ("unary", "binary", "reduce", "matmul", "shape", "index", "softmax", "where", "cast", "take",
                "concat")

    def __init__(self, data: Any, families: Sequence[str] = FAMILIES, dtypes: Sequence[np.dtype] = tuple(DTYPES),
                 wild: Optional[bool] = None, unary_ops: Sequence[str] = tuple(UNARY),
                 binary_ops: Sequence[str] = tuple(BINARY), reduce_ops: Sequence[str] = tuple(REDUCE)):
        self.data = data
        self.families = tuple(families)
        self.unary_ops, self.binary_ops, self.reduce_ops = list(unary_ops), list(binary_ops), list(reduce_ops)
        self.stabilize = self.draw(st.booleans(), "stabilize")
        self.g = gr.Graph(stabilize=self.stabilize)
        self.dtype = np.dtype(self.draw(st.sampled_from(list(dtypes)), "dtype"))
        self.wild = self.draw(st.booleans(), "wild") if wild is None else wild
        self.entries: list[Entry] = []
        self.leaves: list[Entry] = []
        self.lines: list[str] = []
        self.emit("import numpy as np, gorgon_rs as gr\nfrom numpy import nan, inf")
        self.emit(f"g = gr.Graph(stabilize={self.stabilize})")

    # -- helpers -----------------------------------------------------------------------------

    def draw(self, strategy: st.SearchStrategy, label: Optional[str] = None) -> Any:
        return self.data.draw(strategy, label=label)

    def emit(self, line: str) -> None:
        self.lines.append(line)
        note(line)

    def repro(self) -> str:
        return "\n".join(self.lines)

    def pick(self, pred: Callable[[Entry], bool] = lambda e: True) -> Optional[Entry]:
        cands = [e for e in self.entries if pred(e)]
        if not cands:
            return None
        # prefer recent nodes so programs grow deep, not wide
        i = self.draw(st.integers(0, len(cands) - 1), "pick")
        return cands[len(cands) - 1 - i]

    def build(self, code: str, fn: Callable[[], Any], ref: Optional[Callable[..., Ref]], operands: list,
              smooth: bool = True, discontinuous: bool = False, expect_error: bool = False,
              op: Optional[str] = None) -> Optional[Entry]:
        """Runs a build step; an allowed exception drops the step (``# -> Error`` in the repro)."""
        name = f"n{len(self.entries)}"
        r = guarded(code, fn)
        if isinstance(r, Refused):
            self.emit(f"# {name} = {code}   # raises {type(r.exc).__name__}: {str(r.exc)[:120]}")
            event(f"refused: {code.split('(')[0]} {type(r.exc).__name__}")
            return None
        if not isinstance(r, gr.Node):
            raise AssertionError(f"{code}: returned {type(r).__name__}, not a Node")
        if expect_error:
            raise AssertionError(f"{code}: NumPy refuses this (out-of-range axis/index, bad shape) but "
                                 f"gorgon_rs built {r!r}\n{self.repro()}")
        e = Entry(name, r, code, ref, operands, smooth=smooth, discontinuous=discontinuous)
        if self.stabilize and op in REWRITE_ROOTS and r.kind != f"op:{op}":
            e.rewritten = True  # computed from an earlier node than the step's operands
        self.emit(f"{name} = {code}" + (f"   # rewritten to {r.kind}" if e.rewritten else ""))
        self.entries.append(e)
        return e

    def new_leaf(self, shape: Sequence[int], dtype: Optional[np.dtype] = None) -> Entry:
        dtype = np.dtype(dtype or self.dtype)
        shape = tuple(int(s) for s in shape)
        arr = self.draw(arrays(dtype, shape, self.wild), "leaf value")
        bind = self.draw(st.sampled_from(["value", "let", "arg"]), "bind")
        name = f"x{len(self.leaves)}"
        node = self.g.tensor(dtype, shape, name=name, value=arr if bind == "value" else None)
        self.emit(f"{name} = g.tensor(np.{dtype.name}, {shape}, name={name!r}, value={arr_code(arr)})")
        e = Entry(name, node, name, None, [], leaf_value=arr, bind=bind)
        self.entries.append(e)
        self.leaves.append(e)
        return e

    def compat_shape(self, shape: tuple) -> tuple:
        """A shape that broadcasts with ``shape`` (suffix, some dims 1, maybe extra leading dims)."""
        k = self.draw(st.integers(0, len(shape)), "suffix")
        s = [1 if self.draw(st.booleans()) else d for d in shape[len(shape) - k:]]
        extra = self.draw(st.lists(st.sampled_from([1, 2, 3]), max_size=1 if len(shape) < 4 else 0), "extra dims")
        return tuple(extra + s)

    def operand_value(self, o: Any, values: dict) -> Any:
        return values[o.name] if isinstance(o, Entry) else o

    # -- running and checking ------------------------------------------------------------------

    def leaf_args(self) -> list:
        return [e.leaf_value for e in self.leaves]

    def run(self, how: Optional[str] = None) -> Optional[dict]:
        """Computes every entry with one machine; returns ``{name: value}`` or None when the
        run raised an allowed error. Checks that the returned arrays are fresh copies."""
        if not self.entries:
            return None
        how = how or self.draw(st.sampled_from(["function", "tape", "lisp"]), "executor")
        self.emit(f"# run with: {how}")
        ents = self.entries
        if how == "function":
            f = guarded("gr.function", gr.function, [e.node for e in self.leaves], [e.node for e in ents])
            if isinstance(f, Refused):
                return None
            out = guarded("calling gr.function", f, *self.leaf_args())
            if isinstance(out, Refused):
                self.emit(f"# the run raises {type(out.exc).__name__}: {out.exc}")
                return None
            vals = dict(zip([e.name for e in ents], out))
        else:
            for e in self.leaves:
                if e.bind != "value":
                    e.node.let(e.leaf_value)
            m = guarded("machine", gr.TapeMachine if how == "tape" else
                        (lambda g: gr.LispMachine(g, backprop=False)), self.g)
            if isinstance(m, Refused):
                return None
            try:
                r = guarded("run_all", m.run_all)
                if isinstance(r, Refused):
                    self.emit(f"# the run raises {type(r.exc).__name__}: {r.exc}")
                    return None
                vals = {e.name: e.node.value for e in ents}
            finally:
                m.close()
        for e in self.leaves:
            got = vals[e.name]
            assert_matches(got, Ref(e.leaf_value, dtype=e.leaf_value.dtype), f"leaf {e.name} value")
        arrs = list(vals.values())
        for i in range(len(arrs)):
            for j in range(i + 1, len(arrs)):
                if arrs[i].size and np.shares_memory(arrs[i], arrs[j]):
                    raise AssertionError(f"results {i} and {j} share memory\n{self.repro()}")
        return vals

    def check(self, vals: dict) -> int:
        """Checks every op entry against its reference; returns how many were compared."""
        n = 0
        for e in self.entries:
            if e.ref is None:
                continue
            got = vals[e.name]
            if got.dtype != e.node.dtype or got.shape != e.node.shape:
                raise AssertionError(f"{e.name} = {e.code}: value {got.shape} {got.dtype} but node says "
                                     f"{e.node.shape} {e.node.dtype}\n{self.repro()}")
            args = [self.operand_value(o, vals) for o in e.operands]
            try:
                ref = e.ref(*args)
            except (ValueError, IndexError, TypeError, ZeroDivisionError) as ex:
                event(f"no numpy reference: {e.code.split('(')[0]}: {type(ex).__name__}")
                continue
            if e.rewritten:
                ref = self._rewritten_ref(e, args, ref, got)
            m = mismatch(got, ref)
            if m is not None:
                ins = "\n".join(f"  operand {i}: {arr_code(a) if isinstance(a, np.ndarray) else repr(a)}"
                                for i, a in enumerate(args))
                raise AssertionError(f"{e.name} = {e.code}: {m}\n{ins}\n--- repro ---\n{self.repro()}")
            n += 1
        return n

    def _rewritten_ref(self, e: Entry, args: list, ref: Ref, got: np.ndarray) -> Ref:
        """A stabilization rewrite computes ``e`` from an earlier node, more accurately than the
        step's formula applied to its rounded operands: widen the tolerance by how much the
        reference moves when each float operand moves by 4 ulp (the conditioning of the step),
        and accept a finite result where the naive formula over- or underflows to inf/NaN."""
        spread = np.zeros(np.shape(ref.value))
        for i, a in enumerate(args):
            if not (isinstance(a, np.ndarray) and a.dtype.kind == "f"):
                continue
            for sgn in (-1, 1):
                pert = list(args)
                with np.errstate(all="ignore"):
                    step = np.maximum(np.abs(a) * 4 * eps(a.dtype), 4 * float(np.finfo(a.dtype).smallest_subnormal))
                    pert[i] = (a + sgn * step).astype(a.dtype)  # 4 ulp, subnormals included
                    rp = np.asarray(e.ref(*pert).value, np.float64)
                    d = np.abs(rp - np.asarray(ref.value, np.float64))
                spread = np.maximum(spread, np.where(np.isfinite(d), d, 0.0))
        ref.atol = ref.atol + spread * 2
        if got.dtype.kind == "f":
            naive_bad = ~np.isfinite(np.asarray(ref.value, np.float64)) & np.isfinite(got)
            ref.skip = naive_bad if ref.skip is None else (np.asarray(ref.skip) | naive_bad)
        event("stabilization rewrite checked")
        return ref

    def check_fused(self, vals: dict) -> None:
        """Compiles only the last node (so elementwise chains fuse) and compares it with the
        value the whole-graph run gave."""
        last = self.entries[-1]
        if last.leaf_value is not None:
            return
        f = guarded("gr.function(last)", gr.function, [e.node for e in self.leaves], last.node)
        if isinstance(f, Refused):
            return
        got = guarded("calling gr.function(last)", f, *self.leaf_args())
        if isinstance(got, Refused):
            return
        want = vals[last.name]
        d = want.dtype
        if d.kind != "f":
            ref = Ref(want, dtype=d)
        else:
            scale = max([float(np.max(np.abs(np.where(np.isfinite(v), v, 0)), initial=0)) for v in vals.values()
                         if v.dtype.kind == "f"] + [1.0])
            ref = Ref(want, rtol=64 * eps(d), atol=64 * eps(d) * scale, dtype=d)
            if any(e.discontinuous for e in self.entries if e.ref is not None):
                ref.skip = np.ones(want.shape, bool)  # a rounding difference may flip a step
        m = mismatch(got, ref)
        if m is not None:
            raise AssertionError(f"fused program (only {last.name} compiled) differs from the whole-graph "
                                 f"run: {m}\n--- repro ---\n{self.repro()}")
