"""Shared machinery of the Hypothesis fuzz suite (``tests/fuzz``).

What lives here:

* the **budget**: ``GORGON_FUZZ_EXAMPLES`` (set by ``make fuzz`` to 10,000) is the total number
  of generated cases, shared between the fuzz tests by weight; unset (``make test``), the
  whole suite runs about 200 cases. :func:`fuzz_settings` gives each test its share on top of
  one of the two registered Hypothesis profiles (``gorgon-ci``: deterministic, ``gorgon-fuzz``:
  random), both with ``deadline=None``.
* the **case counter**: every test body calls :func:`tick`; ``conftest.py`` prints the totals
  at the end of the session.
* the **acceptable outcomes**: :func:`guarded` runs a call and lets through only the
  exceptions the reliability contract allows (``gr.Error`` subclasses except
  ``gr.InternalError``, ``ValueError``, ``TypeError``, ``IndexError``, ``MemoryError``).
* **value strategies**: tame values and wild ones (NaN, ±inf, subnormals, huge, integer extremes).
* :class:`Prog`: builds a random graph step by step from ``st.data()`` draws, keeps for every
  node a NumPy reference of the *step* (applied to gorgon's own values of the step's operands,
  so errors never compound), writes a runnable repro with ``hypothesis.note`` and checks the
  results (NaN-aware, dtype-appropriate tolerances).

The parts live in sibling modules, by responsibility: ``_fuzz_budget`` (budget, profiles,
counters), ``_fuzz_outcomes`` (acceptable outcomes, known bugs), ``_fuzz_values`` (value
strategies, comparison), ``_fuzz_refs`` (NumPy references, op lists), ``_fuzz_prog`` and
``_fuzz_steps`` (random programs). This module re-exports them: the tests and the conftest
import from here.

This module must not import pytest (it is imported by the conftest).
"""

from __future__ import annotations

from _fuzz_budget import (BUDGET, CASES, FUZZ_TOTAL, KNOWN_BUG_HITS, LONG, PROFILE, STARTED, WEIGHTS,
                          fuzz_settings, share, tick)
from _fuzz_outcomes import ALLOWED, KNOWN_BUGS, Refused, guarded, is_allowed, known_bug
from _fuzz_prog import REWRITE_ROOTS, Entry, ProgBase
from _fuzz_refs import (BINARY, COMPARE, EXACT_UNARY, INT_OK, REDUCE, SMOOTH_BINARY, SMOOTH_REDUCE, SMOOTH_UNARY,
                        TRANSC_RTOL, UNARY, binary_ref, matmul_ref, reduce_ref, softmax_ref, unary_ref, where_ref)
from _fuzz_steps import Prog
from _fuzz_values import (DIMS, DTYPES, FLOATS, INTS, Ref, arr_code, arrays, assert_matches, elements, eps, mismatch,
                          shapes)

__all__ = [
    "BUDGET", "CASES", "FUZZ_TOTAL", "KNOWN_BUG_HITS", "LONG", "PROFILE", "STARTED", "WEIGHTS", "fuzz_settings",
    "share", "tick",
    "ALLOWED", "KNOWN_BUGS", "Refused", "guarded", "is_allowed", "known_bug",
    "REWRITE_ROOTS", "Entry", "ProgBase", "Prog",
    "BINARY", "COMPARE", "EXACT_UNARY", "INT_OK", "REDUCE", "SMOOTH_BINARY", "SMOOTH_REDUCE", "SMOOTH_UNARY",
    "TRANSC_RTOL", "UNARY", "binary_ref", "matmul_ref", "reduce_ref", "softmax_ref", "unary_ref", "where_ref",
    "DIMS", "DTYPES", "FLOATS", "INTS", "Ref", "arr_code", "arrays", "assert_matches", "elements", "eps", "mismatch",
    "shapes",
]
