"""Shared by the fusion tests: run a snippet with fusion on and off and compare."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any


def fused_and_unfused(code: str) -> list[tuple[int, Any]]:
    """Runs ``code`` (which prints a program length, then the ``repr`` of its results) in a
    fresh interpreter with ``GORGON_FUSE=1`` and ``=0``; returns ``[(length, results)]`` for
    each, fused first."""
    runs = []
    for fuse in ("1", "0"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**os.environ, "GORGON_FUSE": fuse}).stdout.split("\n")
        runs.append((int(out[0]), eval(out[1])))  # noqa: S307 - our own repr of floats
    return runs
