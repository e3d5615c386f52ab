"""Misuse of the public API: wrong argument types and values, ``let`` of every kind of value,
machines with ``nan_guard``/``watch``, and a stateful model of machines, ``let``, runs, resets,
closes and graph growth.

Allowed outcomes everywhere: a correct result, or ``gr.Error`` (not ``InternalError``) /
``ValueError`` / ``TypeError`` / ``IndexError`` / ``MemoryError``.
"""

from __future__ import annotations

import inspect
import math

import numpy as np
from hypothesis import event, given, note
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import gorgon_rs as gr
from _fuzzlib import (DTYPES, Prog, Ref, Refused, arrays, fuzz_settings, guarded, mismatch,
                      shapes, tick)

# ---------------------------------------------------------------------------------------------
# Wrong argument types and values
# ---------------------------------------------------------------------------------------------

OPS = [n for n in gr.ops.__all__ if n not in ("let",)]
NN = ["conv2d", "max_pool2d", "avg_pool2d", "dropout", "batch_norm", "linear", "cross_entropy",
      "binary_cross_entropy", "mse_loss"]
METHODS = ["reshape", "transpose", "sum", "mean", "max", "min", "prod", "argmax", "argmin", "astype", "__getitem__",
           "__add__", "__sub__", "__mul__", "__truediv__", "__floordiv__", "__pow__", "__matmul__", "__lt__",
           "__le__", "__gt__", "__ge__", "__radd__", "__rsub__", "__rmatmul__", "__rpow__", "__rtruediv__", "let"]
GRAPH = ["scalar", "vector", "matrix", "tensor", "constant"]
MISC = ["function", "TapeMachine", "LispMachine", "seed", "to_dot", "cast", "one_hot"]
KWARGS = ["axis", "keepdims", "dtype", "alpha", "p", "stride", "padding", "dilation", "kernel", "reduction",
          "training", "shape", "name", "value", "allow_unused", "outputs", "device", "watch", "nan_guard", "axes",
          "indices", "n", "lo", "hi", "bias"]

HUGE_INTS = [2**31, 2**31 - 1, -2**31 - 1, 2**32, 2**62, 2**63 - 1, 2**63, -2**63, -2**63 - 1, 2**64, 2**70, 10**30]
ODD = [Ellipsis, slice(None), slice(1, None, -1), slice(None, None, 0), object(), {}, [], (), "float32", "float16",
       "sum", "cpu", "cuda", np.float32, np.dtype("complex64"), int, float, np.float16(1.5), np.uint8(3),
       np.int8(-2), np.float64("nan"), np.inf, -np.inf, [[1], [1, 2]], [1.5, "a"], np.array([None], dtype=object),
       np.zeros((2, 3), order="F"), np.arange(6.0)[::2], np.zeros(3, ">f4"), lambda *a: None]


def junk_atoms(nodes):
    return st.one_of(
        st.none(), st.booleans(), st.integers(-3, 6), st.integers(-(2**64), 2**64), st.sampled_from(HUGE_INTS),
        st.floats(), st.text(max_size=3), st.binary(max_size=3),
        st.complex_numbers(), st.sampled_from(ODD),
        hnp.arrays(st.sampled_from(["f4", "f8", "i4", "i8", "?", "f2", "u1", "u8", "c8", "U2", ">f4", "<i2"]),
                   shapes(0, 3)),
        st.sampled_from(nodes), st.sampled_from(nodes), st.sampled_from(nodes),
    )


def junk(nodes):
    atoms = junk_atoms(nodes)
    return st.one_of(atoms, atoms, st.lists(atoms, max_size=3), st.lists(atoms, max_size=3).map(tuple),
                     st.lists(st.integers(-2, 5), max_size=4).map(tuple))


def _graph_for_junk():
    g = gr.Graph()
    rng = np.random.default_rng(0)
    nodes = [
        g.matrix(gr.float32, (2, 3), name="m", value=rng.normal(size=(2, 3))),
        g.vector(gr.float64, 3, name="v", value=[0.5, -1.0, 2.0]),
        g.vector(gr.int64, 4, name="i", value=[0, 2, 1, 2]),
        g.vector(gr.int32, 2, name="j", value=[1, 0]),
        g.vector(gr.bool_, 2, name="b", value=[True, False]),
        g.scalar(gr.float32, name="s", value=1.5),
        g.tensor(gr.float32, (1, 2, 4, 4), name="img", value=rng.normal(size=(1, 2, 4, 4))),
        g.tensor(gr.float32, (3, 2, 2, 2), name="filt", value=rng.normal(size=(3, 2, 2, 2))),
        g.tensor(gr.float64, (0, 2), name="empty", value=np.zeros((0, 2))),
        g.vector(gr.float32, 2, name="unbound"),
    ]
    other = gr.Graph().vector(gr.float32, 3, name="foreign", value=[1, 2, 3])
    return g, nodes, nodes + [other]


def _biggest_node(g):
    return max((math.prod(n.shape) for n in g.nodes()), default=0)


def _check_node_result(what, g, r):
    if not (isinstance(r.shape, tuple) and all(isinstance(d, int) and d >= 0 for d in r.shape)):
        raise AssertionError(f"{what}: built a node with shape {r.shape!r}")
    if r.dtype.name not in ("float32", "float64", "int32", "int64", "bool"):
        raise AssertionError(f"{what}: built a node of dtype {r.dtype}")
    if r.graph is not g or _biggest_node(g) > 200_000:
        return
    out = guarded(f"running {what}", lambda: gr.function([], r)())
    if isinstance(out, Refused):
        event(f"junk run refused: {type(out.exc).__name__}")
        return
    if out.shape != r.shape or out.dtype != r.dtype:
        raise AssertionError(f"{what}: node says {r.shape} {r.dtype}, its value is {out.shape} {out.dtype}")


def _resolve(target, nodes, data):
    kind, name = target
    if kind == "gr":
        return getattr(gr, name)
    if kind == "nn":
        return getattr(gr.nn, name)
    if kind == "graph":
        return getattr(nodes[0].graph, name)
    node = data.draw(st.sampled_from(nodes), label="self")
    return getattr(node, name)


AXISY = ("axis", "axes", "keepdims", "n", "kernel", "stride", "padding", "dilation")
DTYPEY = ("dtype",)
SHAPEY = ("shape", "n")
NODEY = ("x", "a", "b", "cond", "cost", "node", "logits", "target", "w", "gamma", "beta", "running_mean",
         "running_var", "indices", "inputs", "outputs", "nodes", "g", "wrt", "lo", "hi", "bias", "p", "self", "o")


def _param_strategy(name, nodes):
    j = junk(nodes)
    if name in AXISY:
        return st.one_of(st.none(), st.integers(-5, 5), st.lists(st.integers(-5, 5), max_size=3).map(tuple),
                         st.sampled_from(HUGE_INTS), st.booleans(), j)
    if name in DTYPEY:
        return st.one_of(st.sampled_from(["float32", "float64", "int32", "int64", "bool", "float16", "complex64",
                                          "uint8", "str", np.float32, None, 3]), j)
    if name in SHAPEY:
        return st.one_of(st.lists(st.integers(-2, 6), max_size=4).map(tuple), st.sampled_from(HUGE_INTS), j)
    if name in NODEY:
        return st.one_of(st.sampled_from(nodes), st.sampled_from(nodes), st.lists(st.sampled_from(nodes), max_size=3),
                         j)
    return j


def _call_args(fn, nodes, data):
    """Positional and keyword arguments for ``fn``: mostly the right number, each drawn from a
    junk strategy biased by the parameter's name; sometimes a wrong number of arguments."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        params = []
    pos = [q for q in params if q.kind in (q.POSITIONAL_ONLY, q.POSITIONAL_OR_KEYWORD)]
    if not params or data.draw(st.integers(0, 9), label="arity chaos") == 0:
        return data.draw(st.lists(junk(nodes), max_size=4), label="args"), {}
    required = [q for q in pos if q.default is q.empty]
    n = data.draw(st.integers(len(required), len(pos)), label="n positional")
    args = [data.draw(_param_strategy(q.name, nodes), label=q.name) for q in pos[:n]]
    if any(q.kind == q.VAR_POSITIONAL for q in params):
        args += data.draw(st.lists(junk(nodes), max_size=2), label="*args")
    kw_names = [q.name for q in params[n:] if q.kind in (q.POSITIONAL_OR_KEYWORD, q.KEYWORD_ONLY)]
    kwargs = {}
    if kw_names:
        for k in data.draw(st.lists(st.sampled_from(kw_names), max_size=2, unique=True), label="kw names"):
            kwargs[k] = data.draw(_param_strategy(k, nodes), label=k)
    return args, kwargs


@fuzz_settings("bad_args")
@given(st.data())
def test_wrong_arguments_raise_clean_errors(data):
    tick("bad_args")
    g, own, nodes = _graph_for_junk()
    targets = ([("gr", n) for n in OPS + MISC] + [("nn", n) for n in NN] + [("node", n) for n in METHODS]
               + [("graph", n) for n in GRAPH])
    target = data.draw(st.sampled_from(targets), label="target")
    fn = _resolve(target, own, data)
    args, kwargs = _call_args(fn, nodes, data)
    what = f"{target[0]}.{target[1]}(*{args!r}, **{kwargs!r})"
    note(what)
    r = guarded(what, fn, *args, **kwargs)
    if isinstance(r, Refused):
        event(f"{target[1]}: {type(r.exc).__name__}")
        return
    event(f"{target[1]}: accepted")
    if isinstance(r, gr.Node):
        _check_node_result(what, g, r)
    elif isinstance(r, (list, tuple)) and r and all(isinstance(n, gr.Node) for n in r):
        for n in r:
            _check_node_result(what, g, n)
    elif isinstance(r, (gr.TapeMachine, gr.LispMachine)):
        out = guarded(f"run of {what}", r.run_all)
        r.close()
        if not isinstance(out, Refused):
            assert r.closed
    elif hasattr(r, "close"):
        r.close()


# ---------------------------------------------------------------------------------------------
# let: every kind of value
# ---------------------------------------------------------------------------------------------


def _value_candidates(dtype, shape):
    odd_dtypes = st.sampled_from(["f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u8", "?", "c8", ">f4", ">i8",
                                  "<f8", "U2"])
    return st.one_of(
        arrays(dtype, shape, wild=True).map(lambda a: ("exact", a)),
        hnp.arrays(odd_dtypes, shape).map(lambda a: ("other dtype", a)),
        arrays(dtype, (7,)).map(lambda a: ("wrong shape", a)),
        hnp.arrays(st.sampled_from(DTYPES), st.sampled_from([(7,), (6, 1), (1, 1, 1, 1)])).map(
            lambda a: ("wrong shape", a)),
        arrays(dtype, shape).map(lambda a: ("list", a.tolist())),
        arrays(dtype, tuple(2 * d for d in shape)).map(lambda a: ("strided view", a[tuple(slice(None, None, 2) for _ in shape)])),
        arrays(dtype, shape).map(lambda a: ("fortran", np.asfortranarray(a))),
        arrays(dtype, shape).map(lambda a: ("reversed", a[tuple(slice(None, None, -1) for _ in shape)])),
        arrays(dtype, shape).map(lambda a: ("read-only", _readonly(a))),
        arrays(dtype, shape).map(lambda a: ("misaligned", _misaligned(a))),
        st.one_of(st.integers(-(2**70), 2**70), st.floats(), st.booleans(), st.complex_numbers(max_magnitude=3),
                  st.text(max_size=2), st.none(), st.sampled_from(HUGE_INTS)).map(lambda v: ("python scalar", v)),
        st.sampled_from([[[1], [1, 2]], [1, "a"], {}, object()]).map(lambda v: ("junk", v)),
    )


def _readonly(a):
    a = a.copy()
    a.flags.writeable = False
    return a


def _misaligned(a):
    if a.dtype.itemsize == 1:
        return a
    buf = np.zeros(a.nbytes + 1, np.uint8)
    m = np.frombuffer(buf.data, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
    m[...] = a
    return m


def _expected_let(node, value):
    """'ok' with the expected array, or the error class API.md promises."""
    try:
        a = np.asarray(value)
    except Exception:
        return gr.DTypeError, None
    if a.dtype.kind not in "biuf" or not np.can_cast(a.dtype, node.dtype, "same_kind"):
        return gr.DTypeError, None
    if a.shape != node.shape:
        return gr.ShapeError, None
    with np.errstate(all="ignore"):
        return "ok", a.astype(node.dtype)


@fuzz_settings("let")
@given(st.data())
def test_let_accepts_exactly_what_the_contract_says(data):
    tick("let")
    dtype = data.draw(st.sampled_from(DTYPES), label="node dtype")
    shape = data.draw(shapes(0, 3), label="node shape")
    g = gr.Graph()
    x = g.tensor(dtype, shape, name="x")
    kind, value = data.draw(_value_candidates(dtype, shape), label="value")
    note(f"x = g.tensor(np.{np.dtype(dtype).name}, {shape}); x.let({value!r})  # {kind}")
    want, arr = _expected_let(x, value)
    r = guarded("let", x.let, value)
    if want != "ok":
        if not isinstance(r, Refused):
            raise AssertionError(f"let({kind}) should raise {want.__name__}, but it bound {x.value!r}")
        if not isinstance(r.exc, want):
            raise AssertionError(f"let({kind}) raised {type(r.exc).__name__}: {r.exc}; expected {want.__name__}")
        assert not x.has_value
        return
    if isinstance(r, Refused):
        raise AssertionError(f"let({kind}) of {value!r} refused with {type(r.exc).__name__}: {r.exc}")
    m = mismatch(x.value, Ref(arr, dtype=x.dtype))
    if m:
        raise AssertionError(f"let({kind}): node value differs from the bound value: {m}")
    if kind != "exact" and isinstance(value, np.ndarray) and value.flags.writeable and value.size:
        value.flat[0] = value.flat[-1] if value.size > 1 else np.zeros((), value.dtype)
        m = mismatch(x.value, Ref(arr, dtype=x.dtype))
        if m and not (value.dtype == x.dtype and value.flags.c_contiguous and value.flags.aligned):
            raise AssertionError(f"let({kind}) kept a reference to a value it had to convert: {m}")
    else:
        # run it through a machine too
        y = gr.stack([x])
        out = guarded("run after let", lambda: gr.function([], y)())
        if not isinstance(out, Refused):
            m = mismatch(out, Ref(arr[None], dtype=x.dtype))
            if m:
                raise AssertionError(f"stack([x]) after let({kind}): {m}")


# ---------------------------------------------------------------------------------------------
# nan_guard and watch on random programs with wild values
# ---------------------------------------------------------------------------------------------


@fuzz_settings("machines")
@given(st.data())
def test_nan_guard_and_watch(data):
    tick("machines")
    p = Prog(data, ("unary", "binary", "reduce", "matmul", "softmax"), dtypes=[np.dtype(np.float32),
                                                                             np.dtype(np.float64)])
    for _ in range(p.draw(st.integers(1, 2), "leaves")):
        p.new_leaf(p.draw(shapes(0, 3), "leaf shape"))
    for _ in range(p.draw(st.integers(1, 4), "steps")):
        p.random_step()
    vals = p.run("tape")
    if vals is None:
        return
    ops = [e for e in p.entries if e.leaf_value is None]
    nonfinite = [e.name for e in ops if e.node.dtype.kind == "f" and not np.all(np.isfinite(vals[e.name]))]
    # one entry per node: a node listed twice in watch= is recorded twice per run
    # (test_reliability::test_a_node_watched_twice_is_recorded_once_per_run)
    watched = p.draw(st.lists(st.sampled_from(p.entries), max_size=3, unique_by=lambda e: id(e.node)), "watch")
    m = guarded("TapeMachine(nan_guard)", gr.TapeMachine, p.g, nan_guard=True, watch=[e.node for e in watched])
    if isinstance(m, Refused):
        raise AssertionError(f"nan_guard machine refused to compile: {m.exc}\n{p.repro()}")
    with m:
        runs = 0
        for _ in range(2):
            r = guarded("run_all(nan_guard)", m.run_all)
            if isinstance(r, Refused):
                if not isinstance(r.exc, gr.NumericError):
                    raise AssertionError(f"nan_guard run raised {type(r.exc).__name__}: {r.exc}\n{p.repro()}")
                if not nonfinite and not any(not np.all(np.isfinite(e.leaf_value)) for e in p.leaves
                                             if e.leaf_value.dtype.kind == "f"):
                    raise AssertionError(f"NumericError but no node is NaN/inf: {r.exc}\n{p.repro()}")
                return
            runs += 1
        if nonfinite:
            raise AssertionError(f"nan_guard=True ran although {nonfinite} hold NaN/inf\n{p.repro()}")
        w = m.watched
        for e in watched:
            got = w.get(e.node, [])
            if len(got) != runs:
                raise AssertionError(f"watched {e.name}: {len(got)} records after {runs} runs")
            for v in got:
                mm = mismatch(v, Ref(vals[e.name], dtype=e.node.dtype))
                if mm:
                    raise AssertionError(f"watched value of {e.name}: {mm}\n{p.repro()}")


# ---------------------------------------------------------------------------------------------
# Stateful: machines, let, run, reset, close, graph growth, held arrays
# ---------------------------------------------------------------------------------------------


class MachineLifecycle(RuleBasedStateMachine):
    """One graph ``s = sum(tanh(x * w))`` and any number of machines/functions over it."""

    @initialize(dtype=st.sampled_from([np.dtype(np.float32), np.dtype(np.float64)]))
    def setup(self, dtype):
        tick("stateful")
        self.dtype = dtype
        self.g = gr.Graph()
        self.x = self.g.vector(dtype, 3, name="x")
        self.w = self.g.vector(dtype, 3, name="w", value=[0.5, -1.0, 2.0])
        self.y = gr.tanh(self.x * self.w)
        self.s = gr.sum(self.y)
        self.xv = None
        self.machines = []  # [kind, object, closed]
        self.held = []  # (array handed out, copy)
        self.extra = []
        self.grads = None

    def _expect(self):
        with np.errstate(all="ignore"):
            y = np.tanh(self.xv * np.array([0.5, -1.0, 2.0], self.dtype)).astype(self.dtype)
        return y, y.sum(dtype=self.dtype)

    def _tol(self):
        return 1e-5 if self.dtype == np.float32 else 1e-12

    @rule(kind=st.sampled_from(["tape", "tape_outputs", "lisp", "lisp_nobp", "function"]))
    def make_machine(self, kind):
        if kind == "tape":
            m = gr.TapeMachine(self.g)
        elif kind == "tape_outputs":
            m = gr.TapeMachine(self.g, outputs=[self.s])
        elif kind == "lisp":
            r = guarded("LispMachine", gr.LispMachine, self.g, backprop=True)
            if isinstance(r, Refused):
                assert isinstance(r.exc, gr.GraphError), r.exc  # several unused scalar cost nodes
                return
            m = r
        elif kind == "lisp_nobp":
            m = gr.LispMachine(self.g, backprop=False)
        else:
            m = gr.function([self.x], [self.y, self.s])
        self.machines.append([kind, m, False, self.grads is not None])

    @rule(v=st.one_of(arrays(np.float64, (3,)), arrays(np.float32, (3,)), st.lists(st.floats(-3, 3), min_size=3,
                                                                                  max_size=3)))
    def let_x(self, v):
        self.x.let(v)
        self.xv = np.asarray(v).astype(self.dtype)
        np.testing.assert_array_equal(self.x.value, self.xv)

    @rule(v=st.one_of(arrays(np.float64, (4,)), arrays(np.complex64, (3,)), st.just("abc"), st.just([1.0, 2.0])))
    def let_x_wrong(self, v):
        before = self.x.has_value and self.x.value.copy()
        with_err = guarded("let wrong", self.x.let, v)
        assert isinstance(with_err, Refused) and isinstance(with_err.exc, (gr.ShapeError, gr.DTypeError)), with_err
        if before is not False:
            np.testing.assert_array_equal(self.x.value, before)

    @precondition(lambda self: self.machines)
    @rule(i=st.integers(0, 100), v=arrays(np.float64, (3,)))
    def run(self, i, v):
        kind, m, closed, with_grads = self.machines[i % len(self.machines)]
        if kind == "function":
            r = guarded("function call", m, v)
            if closed:
                assert isinstance(r, Refused) and isinstance(r.exc, gr.GraphError), r
                if self.xv is not None:  # a failed call changes nothing
                    np.testing.assert_array_equal(self.x.value, self.xv)
                return
            assert not isinstance(r, Refused), r.exc
            self.xv = v.astype(self.dtype)
            y, s = self._expect()
            yv, sv = r
            np.testing.assert_allclose(yv, y, rtol=self._tol(), atol=self._tol())
            np.testing.assert_allclose(sv, s, rtol=self._tol(), atol=self._tol())
            self.held += [(yv, yv.copy()), (sv, sv.copy())]
            return
        r = guarded("run_all", m.run_all)
        if closed:
            assert isinstance(r, Refused) and isinstance(r.exc, gr.GraphError), r
            return
        if self.xv is None:
            assert isinstance(r, Refused) and isinstance(r.exc, gr.GraphError), f"run without x bound: {r}"
            return
        assert not isinstance(r, Refused), r.exc
        y, s = self._expect()
        sv = self.s.value
        np.testing.assert_allclose(sv, s, rtol=self._tol(), atol=self._tol())
        self.held.append((sv, sv.copy()))
        if kind != "tape_outputs":
            yv = self.y.value
            np.testing.assert_allclose(yv, y, rtol=self._tol(), atol=self._tol())
            self.held.append((yv, yv.copy()))
        if kind == "lisp":
            wv = np.array([0.5, -1.0, 2.0], self.dtype)
            dw = self.xv * (1 - np.tanh(self.xv * wv) ** 2)
            np.testing.assert_allclose(self.w.grad, dw, rtol=1e-4, atol=1e-5)
        if with_grads and kind == "tape":
            # API.md: after a run that computes gradient nodes, w.grad holds their values
            np.testing.assert_array_equal(self.grads[0].value, self.w.grad)

    @precondition(lambda self: self.machines)
    @rule(i=st.integers(0, 100))
    def close(self, i):
        entry = self.machines[i % len(self.machines)]
        entry[1].close()
        entry[1].close()  # idempotent
        entry[2] = True
        if entry[0] != "function":
            assert entry[1].closed

    @precondition(lambda self: self.machines)
    @rule(i=st.integers(0, 100))
    def reset(self, i):
        kind, m, closed, _ = self.machines[i % len(self.machines)]
        if kind != "function":
            r = guarded("reset", m.reset)
            if not closed:
                assert not isinstance(r, Refused), r.exc

    @precondition(lambda self: self.machines)
    @rule(i=st.integers(0, 100))
    def drop(self, i):
        # reference counting frees the machine here: no garbage-collector call
        del self.machines[i % len(self.machines)]

    @precondition(lambda self: self.machines)
    @rule(i=st.integers(0, 100))
    def program(self, i):
        kind, m, closed, _ = self.machines[i % len(self.machines)]
        r = guarded("program", m.program)
        if not isinstance(r, Refused):
            assert all(isinstance(line, str) for line in r)

    @rule(k=st.sampled_from(["mul", "exp", "slice"]))
    def grow_graph(self, k):
        # nodes added after machines were compiled: old machines keep running their program
        self.extra.append({"mul": lambda: self.y * 2.0, "exp": lambda: gr.exp(self.w),
                           "slice": lambda: self.y[1:]}[k]())

    @precondition(lambda self: self.grads is None)
    @rule()
    def add_gradients(self):
        self.grads = gr.grad(self.s, [self.w])

    @rule()
    def read_values(self):
        for n in [self.x, self.w, self.y, self.s] + self.extra:
            r = guarded("value", lambda: n.value)
            if isinstance(r, Refused):
                assert isinstance(r.exc, gr.GraphError), r.exc
            else:
                self.held.append((r, r.copy()))

    @invariant()
    def handed_out_arrays_never_change(self):
        for a, c in getattr(self, "held", []):
            np.testing.assert_array_equal(a, c)

    @invariant()
    def variables_keep_their_values(self):
        if hasattr(self, "w"):
            np.testing.assert_array_equal(self.w.value, np.array([0.5, -1.0, 2.0], self.dtype))

    def teardown(self):
        for entry in getattr(self, "machines", []):
            entry[1].close()


MachineLifecycle.TestCase.settings = fuzz_settings("stateful", stateful_step_count=20)
TestMachineLifecycle = MachineLifecycle.TestCase
