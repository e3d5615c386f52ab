"""The README's code runs, and the API page names every public name.

* Every ```python block of README.md runs on its own in a fresh interpreter, in a temporary
  folder (blocks that save files write there). A ```text block right after a Python block is
  its expected output, compared like a doctest (``...`` matches anything, whitespace is
  normalized).
* The Rust sample is taken from crates/autodiff/examples/seed.rs (each of its lines is in it).
* README links to files of the repository resolve; ``make demo`` and ``make test`` are there.
* docs/api.md mentions every name of ``gorgon_rs.__all__`` (as ``gr.NAME``) and of the
  submodules it documents.
"""

from __future__ import annotations

import doctest
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import gorgon_rs as gr

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
API = ROOT / "docs" / "api.md"

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


def _blocks() -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(README.read_text())]


def _python_cases() -> list[tuple[str, str | None]]:
    blocks = _blocks()
    cases = []
    for i, (lang, code) in enumerate(blocks):
        if lang == "python":
            nxt = blocks[i + 1] if i + 1 < len(blocks) else None
            expected = nxt[1] if nxt is not None and nxt[0] == "text" else None
            cases.append((code, expected))
    return cases


CASES = _python_cases()


def test_readme_has_python_blocks() -> None:
    assert len(CASES) >= 5, "the tour should have at least 5 runnable Python blocks"


@pytest.mark.parametrize("index", range(len(CASES)))
def test_readme_python_block_runs(index: int, tmp_path: Path) -> None:
    code, expected = CASES[index]
    env = dict(os.environ, MPLBACKEND="Agg", GORGON_DISTRIBUTED="off")
    try:
        proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=300)
    except subprocess.TimeoutExpired:
        pytest.fail(f"README block {index + 1} took more than 300 s:\n{code}")
    assert proc.returncode == 0, f"README block {index + 1} failed:\n{code}\n--- stderr:\n{proc.stderr}"
    if expected is not None:
        checker = doctest.OutputChecker()
        flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
        assert checker.check_output(expected, proc.stdout, flags), (
            f"README block {index + 1} printed:\n{proc.stdout}\nbut the README shows:\n{expected}")


def test_readme_rust_sample_matches_seed_example() -> None:
    rust = [code for lang, code in _blocks() if lang == "rust"]
    assert rust, "the README has no Rust sample"
    seed = {ln.strip() for ln in (ROOT / "crates/autodiff/examples/seed.rs").read_text().splitlines()}
    missing = [ln for ln in rust[0].splitlines() if ln.strip() and ln.strip() not in seed]
    assert not missing, f"README Rust lines not in crates/autodiff/examples/seed.rs: {missing}"


def test_readme_commands_and_links() -> None:
    text = README.read_text()
    assert "make demo" in text and "make test" in text
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    local = [ln for ln in links if not re.match(r"[a-z]+://", ln)]
    assert "docs/api.md" in local and "benches/RESULTS.md" in local
    broken = [ln for ln in local if not (ROOT / ln).exists()]
    assert not broken, f"README links to missing files: {broken}"


def _api_text() -> str:
    return API.read_text()


def test_api_page_lists_every_public_name() -> None:
    text = _api_text()
    missing = [n for n in gr.__all__ if not re.search(r"gr\." + re.escape(n) + r"\b", text)]
    assert not missing, f"docs/api.md does not mention: {missing}"


@pytest.mark.parametrize("module", ["nn", "solvers", "init", "distributed", "cuda", "datasets", "io"])
def test_api_page_lists_submodule_names(module: str) -> None:
    text = _api_text()
    mod = getattr(gr, module)
    missing = [n for n in mod.__all__ if not re.search(rf"gr\.{module}\." + re.escape(n) + r"\b", text)]
    # gr.io re-exports save/load/plot_history, documented as gr.save & co.
    if module == "io":
        missing = [n for n in missing if not re.search(r"gr\." + re.escape(n) + r"\b", text)]
    assert not missing, f"docs/api.md does not mention gr.{module}.{missing}"
