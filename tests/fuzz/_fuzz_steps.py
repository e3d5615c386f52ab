"""The random steps of the fuzz suite's programs: :class:`Prog` (re-exported by ``_fuzzlib``) is
:class:`_fuzz_prog.ProgBase` plus one ``step_<family>`` method per op family, each drawing an op
and its operands, the NumPy reference, and whether NumPy refuses it. Must not import pytest (``_fuzzlib`` is imported by the conftest).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import gorgon_rs as gr

from _fuzz_prog import Entry, ProgBase
from _fuzz_refs import (COMPARE, _generic_ref, _numpy_refuses, binary_ref, matmul_ref, reduce_ref, softmax_ref,
                        unary_ref, where_ref)
from _fuzz_values import DTYPES, INTS, Ref, arr_code, arrays, shapes


class Prog(ProgBase):
    """A random program over one graph, drawn step by step from ``data`` (``st.data()``).

    ``families`` restricts the op families a random step may use. The repro is written with
    ``hypothesis.note`` as the program is built, as runnable Python.
    """

    # -- steps -------------------------------------------------------------------------------

    def random_step(self) -> None:
        fam = self.draw(st.sampled_from(self.families), "family")
        getattr(self, "step_" + fam)()

    def step_unary(self) -> None:
        x = self.pick()
        if x is None:
            return
        op = self.draw(st.sampled_from(self.unary_ops), "unary op")
        attrs: dict = {}
        if op == "leaky_relu":
            attrs["alpha"] = self.draw(st.sampled_from([0.01, 0.2, 0.0, 1.0, -0.5, 3.0]), "alpha")
            code = f"gr.leaky_relu({x.name}, {attrs['alpha']!r})"
            fn = lambda: gr.leaky_relu(x.node, attrs["alpha"])  # noqa: E731
        elif op == "clip":
            lo = self.draw(st.sampled_from([None, -1.0, 0.0, 0.5, -3.0]), "lo")
            hi = self.draw(st.sampled_from([None, 1.0, 0.25, 2.0, 5.0]), "hi")
            if x.node.dtype.kind in "iu":
                lo = None if lo is None else int(lo)
                hi = None if hi is None else int(hi)
            attrs.update(lo=lo, hi=hi)
            code = f"gr.clip({x.name}, {lo!r}, {hi!r})"
            fn = lambda: gr.clip(x.node, attrs["lo"], attrs["hi"])  # noqa: E731
        elif op == "cast":
            attrs["dtype"] = self.draw(st.sampled_from(DTYPES), "cast dtype")
            code = f"gr.cast({x.name}, np.{attrs['dtype'].name})"
            fn = lambda: gr.cast(x.node, attrs["dtype"])  # noqa: E731
        else:
            style = self.draw(st.sampled_from(["fn", "op"]) if op in ("neg", "abs") else st.just("fn"), "style")
            if style == "op":
                code = f"-{x.name}" if op == "neg" else f"abs({x.name})"
                fn = (lambda: -x.node) if op == "neg" else (lambda: abs(x.node))  # noqa: E731
            else:
                code = f"gr.{op}({x.name})"
                fn = lambda: getattr(gr, op)(x.node)  # noqa: E731
        disc = op in ("sign", "floor", "ceil", "cast")
        smooth = op not in ("abs", "sign", "relu", "floor", "ceil", "leaky_relu", "clip", "cast")
        self.build(code, fn, lambda v, op=op, attrs=attrs: unary_ref(op, v, attrs), [x], smooth=smooth,
                   discontinuous=disc, op=op)

    def scalar_operand(self, like: np.dtype) -> Any:
        if like.kind == "f":
            vals = [0.5, 2.0, -1.5, 0.0, 3, -2, 1e-3, 1e30] if self.wild else [0.5, 2.0, -1.5, 0.0, 3, -2, 1]
        else:
            vals = [0, 1, 2, -3, 7, 0.5] if not self.wild else [0, 1, 2, -3, 7, 0.5, 2**31 - 1, -2**31]
        return self.draw(st.sampled_from(vals), "scalar")

    def second_operand(self, a: Entry) -> Any:
        kind = self.draw(st.sampled_from(["self", "entry", "leaf", "leaf", "scalar", "array"]), "operand kind")
        shape = a.node.shape
        if kind == "self":
            return a
        if kind == "entry":
            b = self.pick()
            return b if b is not None else a
        if kind == "leaf":
            dt = self.dtype if self.draw(st.integers(0, 9), "other dtype?") else self.draw(st.sampled_from(DTYPES))
            return self.new_leaf(self.compat_shape(shape), dt)
        if kind == "scalar":
            return self.scalar_operand(a.node.dtype)
        dt = a.node.dtype if self.draw(st.integers(0, 5), "array dtype?") else self.draw(st.sampled_from(DTYPES))
        return self.draw(arrays(dt, self.compat_shape(shape), self.wild), "array operand")

    def step_binary(self) -> None:
        a = self.pick()
        if a is None:
            return
        op = self.draw(st.sampled_from(self.binary_ops), "binary op")
        b = self.second_operand(a)
        if op == "pow" and a.node.dtype.kind in "iu" and not self.draw(st.integers(0, 9)):
            pass  # occasionally let a negative integer exponent through (run-time DTypeError)
        elif op == "pow" and isinstance(b, (int, float)) and a.node.dtype.kind in "iu":
            b = abs(int(b)) % 5
        swap = self.draw(st.booleans(), "swap") and not isinstance(b, Entry)
        sym = {"add": "+", "sub": "-", "mul": "*", "div": "/", "floordiv": "//", "pow": "**", "lt": "<",
               "le": "<=", "gt": ">", "ge": ">="}.get(op)
        use_sym = sym is not None and self.draw(st.booleans(), "operator?")
        bn = b.name if isinstance(b, Entry) else arr_code(b)
        lhs, rhs = (bn, a.name) if swap else (a.name, bn)
        code = f"{lhs} {sym} {rhs}" if use_sym else f"gr.{op}({lhs}, {rhs})"

        def fn() -> Any:
            bv = b.node if isinstance(b, Entry) else b
            x, y = (bv, a.node) if swap else (a.node, bv)
            if use_sym:
                return {"+": lambda: x + y, "-": lambda: x - y, "*": lambda: x * y, "/": lambda: x / y,
                        "//": lambda: x // y, "**": lambda: x ** y, "<": lambda: x < y, "<=": lambda: x <= y,
                        ">": lambda: x > y, ">=": lambda: x >= y}[sym]()
            return getattr(gr, op)(x, y)

        ops = [b, a] if swap else [a, b]
        e = self.build(code, fn, None, ops, smooth=op not in ("floordiv", "maximum", "minimum") and op not in COMPARE,
                       discontinuous=op in COMPARE or op == "floordiv", op=op)
        if e is not None:
            out_dtype = e.node.dtype
            e.ref = lambda u, v, op=op, d=out_dtype: binary_ref(op, u, v, d)
            self._check_binary_dtype(e, op, ops)

    def _check_binary_dtype(self, e: Entry, op: str, ops: list) -> None:
        """API.md dtype rules: no float32/float64 promotion, comparisons keep the operand
        dtype, integer true division gives float64, Python scalars adopt the node's dtype."""
        nd = [o.node.dtype for o in ops if isinstance(o, Entry)]
        if len(set(nd)) != 1:
            return
        d = nd[0]
        scal = [o for o in ops if not isinstance(o, Entry)]
        if scal and isinstance(scal[0], np.ndarray) and scal[0].dtype != d:
            return
        if scal and isinstance(scal[0], float) and d.kind in "iub":
            d = np.dtype(np.float64)
        want = np.dtype(np.float64) if (op == "div" and d.kind in "iub") else d
        if e.node.dtype != want:
            raise AssertionError(f"{e.code}: result dtype {e.node.dtype}, API.md says {want}\n{self.repro()}")

    def _axis_arg(self, ndim: int, allow_tuple: bool = True) -> Any:
        kind = self.draw(st.sampled_from(["none", "int", "tuple"] if allow_tuple else ["none", "int"]), "axis kind")
        if kind == "none":
            return None
        if kind == "int":
            return self.draw(st.integers(-ndim - 1, ndim), "axis")
        return tuple(self.draw(st.lists(st.integers(-ndim - 1, ndim), max_size=ndim + 1), "axes"))

    @staticmethod
    def _axis_ok(axis: Any, ndim: int) -> bool:
        if axis is None:
            return True
        axes = (axis,) if isinstance(axis, int) else axis
        if any(not -ndim <= a < ndim for a in axes):
            return False
        return len({a % ndim for a in axes}) == len(axes) if ndim else not axes

    def step_reduce(self) -> None:
        x = self.pick()
        if x is None:
            return
        op = self.draw(st.sampled_from(self.reduce_ops), "reduce op")
        nd = x.node.ndim
        axis = self._axis_arg(nd, allow_tuple=op not in ("argmax", "argmin"))
        keepdims = self.draw(st.booleans(), "keepdims")
        method = op in ("sum", "mean", "max", "min", "prod", "argmax", "argmin") and self.draw(st.booleans(), "method")
        code = (f"{x.name}.{op}(axis={axis!r}, keepdims={keepdims})" if method
                else f"gr.{op}({x.name}, axis={axis!r}, keepdims={keepdims})")
        fn = (lambda: getattr(x.node, op)(axis=axis, keepdims=keepdims)) if method else \
            (lambda: getattr(gr, op)(x.node, axis=axis, keepdims=keepdims))
        bad = not self._axis_ok(axis, nd) or (nd == 0 and axis not in (None, ()) and op not in ("argmax", "argmin"))
        if op in ("argmax", "argmin") and nd == 0 and axis is not None:
            bad = True  # NumPy: axis 0 is out of bounds for a 0-d array
        self.build(code, fn, lambda v: reduce_ref(op, v, axis, keepdims), [x], expect_error=bad,
                   smooth=op in ("sum", "mean", "logsumexp", "prod"), discontinuous=op in ("argmax", "argmin"))

    def step_softmax(self) -> None:
        x = self.pick()
        if x is None:
            return
        log = self.draw(st.booleans(), "log")
        nd = x.node.ndim
        axis = self.draw(st.integers(-nd - 1, nd), "axis") if self.draw(st.booleans()) else -1
        name = "log_softmax" if log else "softmax"
        bad = not (-nd <= axis < nd)
        self.build(f"gr.{name}({x.name}, axis={axis})", lambda: getattr(gr, name)(x.node, axis=axis),
                   lambda v: softmax_ref(v, axis, log), [x], expect_error=bad)

    def step_matmul(self) -> None:
        a = self.pick(lambda e: e.node.ndim >= 1) or self.new_leaf(self.draw(shapes(1, 3)))
        style = self.draw(st.sampled_from(["@", "matmul", "dot", "outer", "tensordot"]), "matmul style")
        sh = a.node.shape
        k = sh[-1]
        kind = self.draw(st.sampled_from(["vec", "mat", "batch", "entry", "bad"]), "rhs shape")
        n = self.draw(st.sampled_from([1, 2, 3, 0, 4]), "n")
        if kind == "vec":
            bshape: tuple = (k,)
        elif kind == "mat":
            bshape = (k, n)
        elif kind == "batch":
            bshape = self.compat_shape(sh[:-2])[-2:] + (k, n) if len(sh) > 2 else (self.draw(st.sampled_from([1, 2])), k, n)
        else:
            bshape = (k + 1, n)
        b = self.pick() if kind == "entry" else self.new_leaf(bshape, self.dtype if self.draw(st.integers(0, 9)) else None)
        if b is None:
            return
        x, y = a.node, b.node
        if style in ("@", "matmul"):
            code = f"{a.name} @ {b.name}" if style == "@" else f"gr.matmul({a.name}, {b.name})"
            fn = lambda: x @ y  # noqa: E731
            try:
                np.matmul(np.zeros(x.shape), np.zeros(y.shape))
                bad = False
            except ValueError:
                bad = True
            bad = bad or x.ndim == 0 or y.ndim == 0
            self.build(code, fn, lambda u, v: matmul_ref(u, v), [a, b], expect_error=bad)
        elif style == "dot":
            try:
                np.dot(np.zeros(x.shape), np.zeros(y.shape))
                bad = False
            except ValueError:
                bad = True
            self.build(f"gr.dot({a.name}, {b.name})", lambda: gr.dot(x, y), lambda u, v: _generic_ref(np.dot, u, v),
                       [a, b], expect_error=bad)
        elif style == "outer":
            self.build(f"gr.outer({a.name}, {b.name})", lambda: gr.outer(x, y),
                       lambda u, v: _generic_ref(np.outer, u, v), [a, b])
        else:
            naxes = self.draw(st.integers(0, 2), "tensordot axes")
            try:
                np.tensordot(np.zeros(x.shape), np.zeros(y.shape), naxes)
                bad = False
            except (ValueError, IndexError):
                bad = True
            self.build(f"gr.tensordot({a.name}, {b.name}, {naxes})", lambda: gr.tensordot(x, y, naxes),
                       lambda u, v: _generic_ref(lambda p, q: np.tensordot(p, q, naxes), u, v), [a, b],
                       expect_error=bad)

    def _new_shape_for(self, shape: tuple) -> tuple:
        size = int(np.prod(shape, dtype=np.int64))
        kind = self.draw(st.sampled_from(["factor", "factor", "minus1", "bad", "same"]), "reshape kind")
        if kind == "same":
            return shape
        if kind == "bad":
            return tuple(self.draw(shapes(0, 3), "bad shape")) + (self.draw(st.sampled_from([-1, -2, 7])),)
        dims = []
        rest = size
        for _ in range(self.draw(st.integers(0, 3), "ndims")):
            divs = [d for d in range(1, 7) if rest % d == 0] if rest else [0, 1, 2]
            d = self.draw(st.sampled_from(divs), "dim")
            dims.append(d)
            rest = rest // d if d else 0
        if rest != 1 or not dims:
            dims.append(rest)
        if kind == "minus1" and dims:
            i = self.draw(st.integers(0, len(dims) - 1), "minus1 at")
            if dims[i] != 0:
                dims[i] = -1
        return tuple(dims)

    def step_shape(self) -> None:
        x = self.pick()
        if x is None:
            return
        sh = x.node.shape
        nd = len(sh)
        op = self.draw(st.sampled_from(["reshape", "transpose", "T", "squeeze", "expand_dims", "broadcast_to"]),
                       "shape op")
        v0 = np.zeros(sh, x.node.dtype)
        if op == "reshape":
            s = self._new_shape_for(sh)
            method = self.draw(st.booleans(), "method")
            code = f"{x.name}.reshape({s})" if method else f"gr.reshape({x.name}, {s})"
            fn = (lambda: x.node.reshape(s)) if method else (lambda: gr.reshape(x.node, s))
            np_fn = lambda v: v.reshape(s)  # noqa: E731
        elif op in ("transpose", "T"):
            if op == "T":
                code, fn, np_fn = f"{x.name}.T", (lambda: x.node.T), (lambda v: v.T)
            else:
                axes = self.draw(st.one_of(st.none(), st.permutations(list(range(nd))),
                                           st.lists(st.integers(-nd - 1, nd), max_size=nd + 1)), "axes")
                code = f"gr.transpose({x.name}, {axes!r})"
                fn = lambda: gr.transpose(x.node, axes)  # noqa: E731
                np_fn = lambda v: np.transpose(v, axes)  # noqa: E731
        elif op == "squeeze":
            axis = self.draw(st.one_of(st.none(), st.integers(-nd - 1, nd),
                                       st.lists(st.integers(-nd - 1, nd), max_size=2).map(tuple)), "axis")
            code = f"gr.squeeze({x.name}, {axis!r})"
            fn = lambda: gr.squeeze(x.node, axis)  # noqa: E731
            np_fn = lambda v: np.squeeze(v, axis)  # noqa: E731
        elif op == "expand_dims":
            axis = self.draw(st.one_of(st.integers(-nd - 2, nd + 1),
                                       st.lists(st.integers(-nd - 2, nd + 1), max_size=2).map(tuple)), "axis")
            code = f"gr.expand_dims({x.name}, {axis!r})"
            fn = lambda: gr.expand_dims(x.node, axis)  # noqa: E731
            np_fn = lambda v: np.expand_dims(v, axis)  # noqa: E731
        else:
            target = tuple(self.draw(st.lists(st.sampled_from([1, 2, 3]), max_size=2), "lead")) + tuple(
                d if d != 1 or not self.draw(st.booleans()) else self.draw(st.sampled_from([0, 1, 2, 3, -1]))
                for d in sh)
            code = f"gr.broadcast_to({x.name}, {target})"
            fn = lambda: gr.broadcast_to(x.node, target)  # noqa: E731
            np_fn = lambda v: np.broadcast_to(v, target)  # noqa: E731
        bad = _numpy_refuses(np_fn, v0)
        self.build(code, fn, lambda v: Ref(np.array(np_fn(v)), dtype=v.dtype), [x], expect_error=bad)

    def _index_key(self, shape: tuple) -> Any:
        nd = len(shape)
        parts = []
        n_items = self.draw(st.integers(0, nd + 1), "key length")
        used_ellipsis = False
        for i in range(n_items):
            d = shape[i] if i < nd else 1
            kind = self.draw(st.sampled_from(["int", "slice", "slice", "none", "ellipsis", "full"]), "key part")
            if kind == "int":
                parts.append(self.draw(st.integers(-d - 1, d), "index"))
            elif kind == "slice":
                bound = st.one_of(st.none(), st.integers(-d - 2, d + 2))
                step = self.draw(st.one_of(st.none(), st.sampled_from([1, 2, 3, -1, -2, 0])), "step")
                parts.append(slice(self.draw(bound, "start"), self.draw(bound, "stop"), step))
            elif kind == "none":
                parts.append(None)
            elif kind == "ellipsis" and (not used_ellipsis or not self.draw(st.integers(0, 5))):
                used_ellipsis = True
                parts.append(Ellipsis)
            else:
                parts.append(slice(None))
        if len(parts) == 1 and self.draw(st.booleans(), "bare key"):
            return parts[0]
        return tuple(parts)

    def step_index(self) -> None:
        x = self.pick()
        if x is None:
            return
        key = self._index_key(x.node.shape)
        v0 = np.zeros(x.node.shape, x.node.dtype)
        bad = _numpy_refuses(lambda v: v[key], v0)
        code = f"{x.name}[{_key_code(key)}]"
        self.build(code, lambda: x.node[key], lambda v: Ref(np.array(v[key]), dtype=v.dtype), [x],
                   expect_error=bad)

    def step_take(self) -> None:
        x = self.pick(lambda e: e.node.ndim >= 1)
        if x is None:
            return
        nd = x.node.ndim
        how = self.draw(st.sampled_from(["list", "array", "node", "getitem"]), "indices as")
        if how == "getitem":
            axis = 0
        else:
            axis = self.draw(st.integers(-nd, nd - 1), "axis") if self.draw(st.integers(0, 9)) else nd
        axis_ok = -nd <= axis < nd
        n = x.node.shape[axis] if axis_ok else 0
        lo, hi = (-n, n - 1) if n else (-1, 0)
        if not self.draw(st.integers(0, 9)):
            lo, hi = lo - 2, hi + 2  # sometimes out of range
        ishape = self.draw(shapes(0, 2), "indices shape")
        idx = self.draw(hnp.arrays(np.int64, ishape, elements=st.integers(lo, hi)), "indices")
        oob = bool(idx.size) and (int(idx.min()) < -n or int(idx.max()) >= n)
        bad = not axis_ok or oob
        if how == "node":
            dt = self.draw(st.sampled_from(INTS), "index dtype")
            ie = self.new_leaf(idx.shape, dt)
            ie.leaf_value = idx.astype(dt)
            if ie.bind == "value":
                ie.node.let(ie.leaf_value)
            self.lines[-1] = (f"{ie.name} = g.tensor(np.{dt.name}, {idx.shape}, name={ie.name!r}, "
                              f"value={arr_code(ie.leaf_value)})")
            code = f"gr.take({x.name}, {ie.name}, axis={axis})"
            # out-of-range index nodes are only seen at run time (IndexError or a gorgon error)
            self.build(code, lambda: gr.take(x.node, ie.node, axis=axis),
                       lambda v, i: Ref(np.take(v, i, axis=axis), dtype=v.dtype), [x, ie], expect_error=not axis_ok)
            return
        val: Any = idx.tolist() if how in ("list", "getitem") else idx
        ref_idx = np.asarray(val, dtype=np.int64)
        if how == "getitem":
            code = f"{x.name}[{val!r}]"
            fn = lambda: x.node[val]  # noqa: E731
        else:
            code = f"gr.take({x.name}, {arr_code(val) if how == 'array' else repr(val)}, axis={axis})"
            fn = lambda: gr.take(x.node, val, axis=axis)  # noqa: E731
        self.build(code, fn, lambda v: Ref(np.take(v, ref_idx, axis=axis), dtype=v.dtype), [x], expect_error=bad)

    def step_concat(self) -> None:
        x = self.pick()
        if x is None:
            return
        sh = x.node.shape
        nd = len(sh)
        stack = self.draw(st.booleans(), "stack")
        axis = self.draw(st.integers(-nd - 1, nd), "axis")
        ops = [x]
        for _ in range(self.draw(st.integers(0, 2), "more")):
            kind = self.draw(st.sampled_from(["self", "leaf", "entry"]), "part")
            if kind == "self":
                ops.append(x)
            elif kind == "entry":
                ops.append(self.pick() or x)
            else:
                s = list(sh)
                if not stack and nd and self.draw(st.booleans()) and -nd <= axis < nd:
                    s[axis] = self.draw(st.sampled_from([0, 1, 2, 3]))
                ops.append(self.new_leaf(tuple(s)))
        name = "stack" if stack else "concat"
        code = f"gr.{name}([{', '.join(o.name for o in ops)}], axis={axis})"
        nodes = [o.node for o in ops]
        np_fn = (lambda *v: np.stack(v, axis=axis)) if stack else (lambda *v: np.concatenate(v, axis=axis))
        dts = {o.node.dtype for o in ops}
        bad = _numpy_refuses(lambda *v: np_fn(*v), *[np.zeros(o.node.shape) for o in ops])
        if len(ops) == 1 and not stack and nd:
            bad = not (-nd <= axis < nd)
        self.build(code, lambda: getattr(gr, name)(nodes, axis=axis),
                   lambda *v: Ref(np_fn(*v), dtype=v[0].dtype if len(dts) == 1 else None), ops,
                   expect_error=bad and len(dts) == 1)

    def step_where(self) -> None:
        c = self.pick()
        if c is None:
            return
        a = self.second_operand(c)
        b = self.second_operand(c) if self.draw(st.booleans()) else self.scalar_operand(c.node.dtype)
        an = a.name if isinstance(a, Entry) else arr_code(a)
        bn = b.name if isinstance(b, Entry) else arr_code(b)
        av = a.node if isinstance(a, Entry) else a
        bv = b.node if isinstance(b, Entry) else b

        e = self.build(f"gr.where({c.name}, {an}, {bn})", lambda: gr.where(c.node, av, bv), None, [c, a, b],
                       discontinuous=True)
        if e is not None:
            e.ref = lambda cv, u, v, d=e.node.dtype: where_ref(cv, u, v, d)

    def step_cast(self) -> None:
        x = self.pick()
        if x is None:
            return
        d = self.draw(st.sampled_from(DTYPES), "dtype")
        self.build(f"gr.cast({x.name}, np.{d.name})", lambda: gr.cast(x.node, d),
                   lambda v: unary_ref("cast", v, {"dtype": d}), [x], discontinuous=True)


def _key_code(key: Any) -> str:
    def one(k: Any) -> str:
        if isinstance(k, slice):
            s = f"{'' if k.start is None else k.start}:{'' if k.stop is None else k.stop}"
            return s + (f":{k.step}" if k.step is not None else "")
        if k is Ellipsis:
            return "..."
        return repr(k)

    if isinstance(key, tuple):
        return ", ".join(one(k) for k in key) + ("," if len(key) == 1 else "") if key else "()"
    return one(key)
