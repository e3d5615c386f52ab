"""Typing: the package ships ``py.typed`` and a ``_native.pyi`` that matches the compiled module,
and the typed user program (tests/typed_usage.py) runs.

``make test`` also runs ``mypy --strict`` over the package, tests/typed_usage.py and the
examples, and ``python -m mypy.stubtest gorgon_rs._native`` (the full signature check of the
stub); this file holds the fast checks that need no type checker.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any

import pytest

import gorgon_rs as gr
from gorgon_rs import _native

PKG = Path(gr.__file__).resolve().parent
TESTS = Path(__file__).resolve().parent


def test_package_is_marked_typed() -> None:
    assert (PKG / "py.typed").is_file()
    assert (PKG / "_native.pyi").is_file()


def _stub() -> ast.Module:
    return ast.parse((PKG / "_native.pyi").read_text())


def test_stub_names_match_the_native_module() -> None:
    stub = _stub()
    top = {n.name for n in stub.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    runtime = set(_native.__all__)
    assert top == runtime, f"only in the stub: {sorted(top - runtime)}; only in _native: {sorted(runtime - top)}"


def test_stub_methods_match_the_native_classes() -> None:
    for cls_node in (n for n in _stub().body if isinstance(n, ast.ClassDef)):
        in_stub = {f.name for f in cls_node.body if isinstance(f, ast.FunctionDef) and not f.name.startswith("__")}
        cls = getattr(_native, cls_node.name)
        at_runtime = {n for n, _ in inspect.getmembers(cls) if not n.startswith("__")}
        assert in_stub == at_runtime, (cls_node.name, sorted(in_stub ^ at_runtime))


def test_stub_function_parameters_match() -> None:
    # pyo3 functions carry a __text_signature__; compare parameter names with the stub.
    for fn in (n for n in _stub().body if isinstance(n, ast.FunctionDef)):
        obj = getattr(_native, fn.name)
        try:
            sig = inspect.signature(obj)
        except (TypeError, ValueError):  # pragma: no cover - no text signature
            continue
        stub_params = [a.arg for a in fn.args.args]
        assert list(sig.parameters) == stub_params, (fn.name, list(sig.parameters), stub_params)


def _load_typed_usage() -> Any:
    spec = importlib.util.spec_from_file_location("typed_usage", TESTS / "typed_usage.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["typed_usage"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_typed_usage_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("GORGON_DISTRIBUTED", "off")
    was_initialized = gr.distributed.is_initialized()
    try:
        _load_typed_usage().main(str(tmp_path))
    finally:
        if not was_initialized:
            gr.distributed.finalize()
    out = capsys.readouterr().out
    assert "seed: 4.5" in out
    assert (tmp_path / "mlp.safetensors").is_file()
