"""The ``>>>`` examples of the docstrings run, and every public name has one.

Each module's doctests run with the module's own names plus ``gr`` (gorgon_rs) and ``np``
(NumPy) predefined, inside a
temporary folder (examples that save files write there). Modules that need an optional
dependency (matplotlib for ``gr.plot``) are skipped with the reason when it is missing;
``gr.distributed``'s examples run as a lone process and never need MPI.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
from typing import Any

import numpy as np
import pytest

import gorgon_rs as gr

MODULES = [
    "gorgon_rs",
    "gorgon_rs.errors",
    "gorgon_rs.graph",
    "gorgon_rs.ops",
    "gorgon_rs._ops_elementwise",
    "gorgon_rs._ops_reduce",
    "gorgon_rs._ops_linalg",
    "gorgon_rs._ops_shape",
    "gorgon_rs.machines",
    "gorgon_rs.cuda",
    "gorgon_rs.nn",
    "gorgon_rs._nn_functional",
    "gorgon_rs._nn_modules",
    "gorgon_rs.solvers",
    "gorgon_rs.init",
    "gorgon_rs.io",
    "gorgon_rs.plot",
    "gorgon_rs.datasets",
    "gorgon_rs.distributed",
]

# Optional dependencies a module's examples need: module -> importable name.
NEEDS = {"gorgon_rs.plot": "matplotlib"}


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    if name in NEEDS:
        pytest.importorskip(NEEDS[name], reason=f"{name}'s examples need {NEEDS[name]}")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GORGON_DISTRIBUTED", "off")  # a lone process even under a launcher
    monkeypatch.setenv("MPLBACKEND", "Agg")
    mod = importlib.import_module(name)
    was_initialized = gr.distributed.is_initialized()
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = finder.find(mod, name, globs={**vars(mod), "gr": gr, "np": np})
    report: list[str] = []
    try:
        for t in sorted(tests, key=lambda t: t.name):
            runner.run(t, out=report.append)
    finally:
        if not was_initialized:
            gr.distributed.finalize()  # leave no process group behind for other tests
    result = runner.summarize(verbose=False)
    assert result.attempted > 0, f"{name} has no doctest examples"
    assert result.failed == 0, "".join(report)


def _public_objects() -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    spaces = {"gr": gr, "gr.nn": gr.nn, "gr.solvers": gr.solvers, "gr.init": gr.init,
              "gr.distributed": gr.distributed, "gr.cuda": gr.cuda, "gr.datasets": gr.datasets,
              "gr.io": gr.io}
    for prefix, mod in spaces.items():
        for n in mod.__all__:
            obj = getattr(mod, n)
            if not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue  # modules, dtypes and type aliases
            out.append((f"{prefix}.{n}", obj))
    return out


@pytest.mark.parametrize("qualname,obj", _public_objects(), ids=[q for q, _ in _public_objects()])
def test_public_names_have_examples(qualname: str, obj: Any) -> None:
    doc = inspect.getdoc(obj) or ""
    assert doc.strip(), f"{qualname} has no docstring"
    assert ">>>" in doc, f"{qualname}'s docstring has no >>> example"


def test_public_methods_have_docstrings() -> None:
    classes = [o for _, o in _public_objects() if inspect.isclass(o)]
    missing = []
    for cls in classes:
        for n, member in vars(cls).items():
            if n.startswith("_") or not (callable(member) or isinstance(member, property)):
                continue
            if not (inspect.getdoc(member) or "").strip():
                missing.append(f"{cls.__module__}.{cls.__qualname__}.{n}")
    assert not missing, f"public methods without a docstring: {missing}"
