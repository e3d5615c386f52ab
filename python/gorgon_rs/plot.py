"""Training curves: ``gr.plot_history``.

This module owns drawing a history of per-epoch metrics with matplotlib (Agg backend, so it
works without a display). matplotlib is optional: it is imported only when a plot is drawn,
and its absence raises an ``ImportError`` that says how to install it. Nothing here touches
graphs or the native extension.

Example:
    >>> import gorgon_rs as gr
    >>> gr.plot_history({"loss": [2.3, 0.9, 0.4], "accuracy": [0.3, 0.8, 0.9]}, "curves.png")
    'curves.png'
"""

from __future__ import annotations

import math
import os
import types
from typing import Mapping, Sequence, Union

__all__ = ["plot_history"]


def _pyplot() -> types.ModuleType:
    try:
        import matplotlib
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "gr.plot_history needs matplotlib, which is not installed: run "
            "`pip install matplotlib` (or `pip install gorgon_rs[plot]`)") from e
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_history(history: Mapping[str, Sequence[float]], path: Union[str, "os.PathLike[str]"],
                 title: str | None = None) -> str:
    """Draw each metric of ``history`` against the epoch and save the figure to ``path``.

    ``history`` maps a metric name to its values, one per epoch (e.g. ``{"loss": [...],
    "test_accuracy": [...]}``). Metrics whose name contains ``loss`` share the left panel;
    the others (accuracies, …) share the right one. The file type follows ``path``'s suffix
    (``.png``, ``.svg``, ``.pdf``). Returns ``path`` as a string.

    Example:
        >>> gr.plot_history({"loss": [1.0, 0.5], "test_accuracy": [0.8, 0.9]}, "history.png")
        'history.png'
    """
    if not isinstance(history, Mapping) or not history:
        raise ValueError("plot_history: history must be a non-empty dict {metric name: list of values}")
    series: dict[str, list[float]] = {}
    for k, v in history.items():
        try:
            vals = [float(x) for x in v]
        except (TypeError, ValueError):
            raise ValueError(f"plot_history: history[{k!r}] must be a list of numbers") from None
        series[str(k)] = vals
    plt = _pyplot()
    losses = {k: v for k, v in series.items() if "loss" in k.lower()}
    others = {k: v for k, v in series.items() if k not in losses}
    groups = [g for g in (losses, others) if g]
    fig, axes = plt.subplots(1, len(groups), figsize=(5.5 * len(groups), 4), squeeze=False)
    for ax, group in zip(axes[0], groups):
        for name, vals in group.items():
            epochs = range(1, len(vals) + 1)
            ax.plot(epochs, vals, marker="o" if len(vals) <= 30 else None, markersize=3, label=name)
        ax.set_xlabel("epoch")
        is_loss = group is losses
        ax.set_ylabel("loss" if is_loss else ("accuracy" if all("acc" in k.lower() for k in group) else "value"))
        finite = [x for vals in group.values() for x in vals if math.isfinite(x)]
        if is_loss and finite and min(finite) > 0 and max(finite) / min(finite) > 100:
            ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    p = os.fspath(path)
    fig.savefig(p, dpi=100)
    plt.close(fig)
    return p
