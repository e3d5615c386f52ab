"""Fuzz-suite session hooks: prints how many generated cases ran (per test and in all), how
long the suite took, and the known-bug signatures the fuzzer tolerated (see ``_fuzzlib``).

``GORGON_FUZZ_EXAMPLES=N`` (``make fuzz`` sets 10,000) is the total case budget of
``tests/fuzz``; unset, the suite runs a small budget (about 200 cases) so ``make test`` stays
fast. Both Hypothesis profiles (``gorgon-ci``, ``gorgon-fuzz``) have ``deadline=None``.
"""

from __future__ import annotations

import time

import pytest

import _fuzzlib

_SPENT = [0.0]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    # item hooks of a directory's conftest only see that directory's tests: this times tests/fuzz
    t0 = time.monotonic()
    yield
    _SPENT[0] += time.monotonic() - t0


def pytest_report_header(config):
    return (f"gorgon fuzz: budget {_fuzzlib.BUDGET} cases "
            f"({'GORGON_FUZZ_EXAMPLES' if _fuzzlib.LONG else 'default'}), hypothesis profile {_fuzzlib.PROFILE}")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    cases = _fuzzlib.CASES
    if not cases:
        return
    total = sum(cases.values())
    took = _SPENT[0]
    wall = time.monotonic() - _fuzzlib.STARTED
    tr = terminalreporter
    tr.write_sep("-", "gorgon fuzz")
    per = ", ".join(f"{k} {v}" for k, v in sorted(cases.items()))
    tr.write_line(f"per test: {per}")
    if _fuzzlib.KNOWN_BUG_HITS:
        hits = ", ".join(f"{k} x{v}" for k, v in sorted(_fuzzlib.KNOWN_BUG_HITS.items()))
        tr.write_line(f"known bugs tolerated (strict xfail tests in tests/test_reliability.py): {hits}")
    tr.write_line(f"gorgon fuzz: {total} cases ran in {took:.1f} s of tests/fuzz test time "
                  f"(budget {_fuzzlib.BUDGET}; {wall:.1f} s since collection)")
