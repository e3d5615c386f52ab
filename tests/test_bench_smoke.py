"""Smoke test of benches/compare.py: the quick run of two workloads exits 0 and prints its
markdown table (and writes its JSON). It asserts nothing about speed: CI machines are shared."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benches" / "compare.py"


def test_compare_quick_runs_and_prints_a_table(tmp_path):
    out = tmp_path / "bench.json"
    cmd = [sys.executable, str(SCRIPT), "--quick", "--only", "seed,matmul", "--json", str(out)]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        pytest.fail("benches/compare.py --quick --only seed,matmul took more than 600 s")
    assert proc.returncode == 0, f"compare.py failed (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    lines = proc.stdout.splitlines()
    header = [ln for ln in lines if ln.startswith("| workload |")]
    assert header, f"no markdown table in the output:\n{proc.stdout}"
    rows = [ln for ln in lines if ln.startswith("| seed") or ln.startswith("| matmul")]
    assert any(r.startswith("| seed") for r in rows) and any(r.startswith("| matmul") for r in rows), proc.stdout
    assert "machine:" in proc.stdout and "versions:" in proc.stdout
    data = json.loads(out.read_text())
    assert not data["failures"]
    assert {r["group"] for r in data["rows"]} == {"seed", "matmul"}
    assert all(r["median_s"]["gorgon_rs"] > 0 for r in data["rows"])


def test_compare_rejects_unknown_workloads():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--only", "nope"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "unknown workload" in proc.stderr


def test_gpu_bench_without_a_gpu_says_why_and_exits_0():
    import gorgon_rs as gr

    if gr.cuda.is_available():
        pytest.skip("a GPU is present: benches/gpu_bench.py would run the full GPU benchmark")
    gpu_script = ROOT / "benches" / "gpu_bench.py"
    proc = subprocess.run([sys.executable, str(gpu_script)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "no CUDA device" in proc.stdout and gr.cuda.unavailable_reason() in proc.stdout
