"""Pictures: ``gr.render`` through Graphviz's real ``dot`` (skipped, with the reason, when it is
not installed; ``make test`` installs it where it can), its error message when ``dot`` is
missing (simulated with a PATH without it), and ``gr.plot_history`` with matplotlib.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

import gorgon_rs as gr

DOT = shutil.which("dot")
needs_dot = pytest.mark.skipif(
    DOT is None,
    reason="Graphviz's `dot` is not installed (apt-get install graphviz / brew install graphviz / "
           "conda install graphviz); `make test` installs it when it runs as root with apt-get")


def _graph() -> gr.Graph:
    g = gr.Graph()
    x = g.scalar(gr.float64, name="x")
    y = g.scalar(gr.float64, name="y")
    z = x * y + gr.exp(x)
    gr.grad(z, [x, y])
    return g


@needs_dot
def test_render_svg(tmp_path: Path) -> None:
    out = gr.render(_graph(), tmp_path / "graph.svg")
    assert out == str(tmp_path / "graph.svg")
    svg = (tmp_path / "graph.svg").read_text()
    assert svg.lstrip().startswith(("<?xml", "<svg")) and "</svg>" in svg
    # the node names and op names of the DOT text are in the picture
    assert ">x" in svg and ">y" in svg and "exp" in svg


@needs_dot
def test_render_png_and_format_override(tmp_path: Path) -> None:
    g = _graph()
    gr.render(g, tmp_path / "graph.png")
    assert (tmp_path / "graph.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    gr.render(g.nodes()[0], tmp_path / "picture", format="svg")  # a node stands for its graph
    assert "</svg>" in (tmp_path / "picture").read_text()


@needs_dot
def test_render_reports_dot_failures(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"dot -Tnot-a-format"):
        gr.render(_graph(), tmp_path / "graph.not-a-format")


def test_render_without_dot_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a folder without `dot`
    assert shutil.which("dot") is None
    with pytest.raises(RuntimeError) as ei:
        gr.render(_graph(), tmp_path / "graph.svg")
    msg = str(ei.value)
    assert "Graphviz" in msg and "dot" in msg
    assert "apt-get install graphviz" in msg and "brew install graphviz" in msg and "conda install graphviz" in msg
    assert "gr.to_dot" in msg  # and the way to get the text without it
    assert not (tmp_path / "graph.svg").exists()


def test_plot_history_png_and_svg(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="gr.plot_history needs matplotlib (pip install matplotlib)")
    history = {"loss": [2.3, 1.1, 0.6, 0.4], "test_loss": [2.4, 1.3, 0.8, 0.7],
               "test_accuracy": [0.2, 0.6, 0.8, 0.9]}
    png = gr.plot_history(history, tmp_path / "h.png", title="digits")
    assert png == str(tmp_path / "h.png")
    assert (tmp_path / "h.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    gr.plot_history(history, tmp_path / "h.svg")
    assert "</svg>" in (tmp_path / "h.svg").read_text()


def test_plot_history_one_panel_and_log_scale(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="gr.plot_history needs matplotlib (pip install matplotlib)")
    gr.plot_history({"accuracy": [0.1, 0.5]}, tmp_path / "acc.png")  # no loss panel
    gr.plot_history({"loss": [1000.0, 1.0, 0.1]}, tmp_path / "loss.png")  # wide range: log axis
    assert (tmp_path / "acc.png").stat().st_size > 0 and (tmp_path / "loss.png").stat().st_size > 0


def test_plot_history_without_matplotlib_says_how_to_install(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now fails
    with pytest.raises(ImportError, match=r"pip install matplotlib"):
        gr.plot_history({"loss": [1.0, 0.5]}, tmp_path / "h.png")
