"""The fuzz budget, the Hypothesis profiles and the case counters (re-exported by ``_fuzzlib``).

``GORGON_FUZZ_EXAMPLES`` (set by ``make fuzz`` to 10,000) is the total number of generated
cases, shared between the fuzz tests by weight; unset (``make test``), the whole suite runs
about 200 cases. Must not import pytest (``_fuzzlib`` is imported by the conftest).
"""

from __future__ import annotations

import collections
import math
import os
import time
from typing import Any

from hypothesis import HealthCheck, settings

# ---------------------------------------------------------------------------------------------
# Budget, profiles, counting
# ---------------------------------------------------------------------------------------------

FUZZ_TOTAL = int(os.environ.get("GORGON_FUZZ_EXAMPLES") or 0)
LONG = FUZZ_TOTAL > 0
BUDGET = FUZZ_TOTAL if LONG else 200

_SUPPRESS = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
             HealthCheck.large_base_example]
settings.register_profile("gorgon-ci", deadline=None, derandomize=True, database=None, print_blob=True,
                          suppress_health_check=_SUPPRESS)
settings.register_profile("gorgon-fuzz", deadline=None, print_blob=True, suppress_health_check=_SUPPRESS)
PROFILE = "gorgon-fuzz" if LONG else "gorgon-ci"

# Share of the budget per fuzz test (relative weights; the sum is normalized).
WEIGHTS = {
    "unary": 9,
    "binary": 11,
    "reduce": 9,
    "matmul": 6,
    "shape": 8,
    "index": 7,
    "random_graph": 16,
    "grad_fd": 6,
    "grad_consistency": 4,
    "bad_args": 8,
    "let": 4,
    "machines": 3,
    "stateful": 2,
    "safetensors": 6,
}
_TOTAL_W = sum(WEIGHTS.values())


def share(name: str) -> int:
    """The number of examples test ``name`` runs (its share of the budget, at least 2)."""
    return max(2, math.ceil(BUDGET * WEIGHTS[name] / _TOTAL_W))


def fuzz_settings(name: str, **kw: Any) -> settings:
    """Hypothesis settings for test ``name``: the active profile plus its share of examples."""
    return settings(settings.get_profile(PROFILE), max_examples=share(name), **kw)


CASES: collections.Counter = collections.Counter()
KNOWN_BUG_HITS: collections.Counter = collections.Counter()
STARTED = time.monotonic()


def tick(name: str) -> None:
    """Count one executed case of test ``name`` (call first thing in every fuzz test body)."""
    CASES[name] += 1
