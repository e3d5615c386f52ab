"""Random graphs of random ops, checked against NumPy (see ``_fuzzlib.Prog``).

Each test draws a small program: 1-3 input leaves (0-d to 4-d, size-0 dims, float32/float64/
int32/int64/bool, tame or wild values: NaN, ±inf, subnormals, huge, integer extremes) and a
few steps of one op family (or of all of them). Every node that builds is computed with a
random executor (``gr.function``, ``TapeMachine``, ``LispMachine``); each step's value is
compared with NumPy applied to gorgon's own values of the step's operands (NaN-aware,
tolerances by dtype and op); the last node is also compiled alone (elementwise fusion) and
must agree. A step NumPy refuses (out-of-range axis or index, shapes that do not fit) must
raise a gorgon/standard error; anything else that raises must raise an allowed exception.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from _fuzzlib import Prog, fuzz_settings, shapes, tick


def run_program(data, families, steps=(1, 3), **kw):
    p = Prog(data, families, **kw)
    for _ in range(p.draw(st.integers(1, 2), "leaves")):
        p.new_leaf(p.draw(shapes(), "leaf shape"))
    for _ in range(p.draw(st.integers(*steps), "steps")):
        p.random_step()
    vals = p.run()
    if vals is not None:
        p.check(vals)
        p.check_fused(vals)
    return p


@fuzz_settings("unary")
@given(st.data())
def test_unary_ops(data):
    tick("unary")
    run_program(data, ("unary", "cast"))


@fuzz_settings("binary")
@given(st.data())
def test_binary_ops_with_broadcasting(data):
    tick("binary")
    run_program(data, ("binary", "binary", "where"))


@fuzz_settings("reduce")
@given(st.data())
def test_reductions_and_softmax(data):
    tick("reduce")
    run_program(data, ("reduce", "reduce", "softmax"))


@fuzz_settings("matmul")
@given(st.data())
def test_matmul_family(data):
    tick("matmul")
    run_program(data, ("matmul",), steps=(1, 2))


@fuzz_settings("shape")
@given(st.data())
def test_shape_ops(data):
    tick("shape")
    run_program(data, ("shape", "concat", "take"))


@fuzz_settings("index")
@given(st.data())
def test_indexing(data):
    tick("index")
    run_program(data, ("index", "index", "take"))


@fuzz_settings("random_graph")
@given(st.data())
def test_random_graphs(data):
    tick("random_graph")
    run_program(data, Prog.FAMILIES, steps=(2, 7))
