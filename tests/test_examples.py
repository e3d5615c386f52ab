"""Smoke tests: every example runs for 2 training steps in a subprocess and ends cleanly."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

CASES = {
    "demo.py": ["--epochs", "2"],
    "linear_regression.py": [],
    "logistic_regression.py": [],
    "mlp_digits.py": ["--epochs", "2"],
    "convnet_digits.py": ["--epochs", "2"],
    "char_lstm.py": ["--sample", "20"],
}


def test_examples_exist():
    # (examples with their own launchers, e.g. distributed_digits.py under mpiexec, have their own tests)
    found = {p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")}
    assert set(CASES) <= found


@pytest.mark.parametrize("name", sorted(CASES))
def test_example_runs(tmp_path, name):
    env = dict(os.environ, GORGON_EXAMPLE_STEPS="2", MPLBACKEND="Agg")
    cmd = [sys.executable, str(EXAMPLES / name), "--steps", "2", "--out", str(tmp_path), *CASES[name]]
    try:
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{name} --steps 2 took more than 300 s")
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr}"
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert lines, f"{name} printed nothing"
    if name == "demo.py":
        assert re.fullmatch(r"test accuracy: [01]\.\d{3}", lines[-1]), lines[-1]
        assert (tmp_path / "digits.safetensors").exists()
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            pass
        else:
            assert (tmp_path / "digits_history.png").exists()
    if name == "convnet_digits.py":
        assert (tmp_path / "convnet_bn.safetensors").exists()
    if name == "char_lstm.py":
        assert lines[-1].startswith("sample: Alice ")
