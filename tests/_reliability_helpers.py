"""Helpers shared by the reliability tests (``tests/test_reliability*.py``)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time


def run_py(code: str, env_extra: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.update(env_extra or {})
    env.setdefault("RUST_BACKTRACE", "0")
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env=env)


def join_all(threads, timeout=120.0):
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    alive = [t.name for t in threads if t.is_alive()]
    assert not alive, f"threads still running after {timeout} s (deadlock?): {alive}"
