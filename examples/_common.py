"""Small helpers shared by the examples (argument parsing, progress bars, the digits data).

Each example runs as ``python examples/NAME.py``; Python puts ``examples/`` on ``sys.path``, so
``import _common`` works from any current directory. Nothing here is part of the gorgon_rs API.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from typing import Any, Iterable, Optional, Sequence

import numpy as np
import numpy.typing as npt

import gorgon_rs as gr


def parser(description: str) -> argparse.ArgumentParser:
    """An ArgumentParser with ``--steps`` (also env GORGON_EXAMPLE_STEPS) and ``--out``."""
    p = argparse.ArgumentParser(description=description)
    env = os.environ.get("GORGON_EXAMPLE_STEPS")
    p.add_argument("--steps", type=int, default=int(env) if env else None,
                   help="stop after this many training steps (smoke tests); "
                        "default: the full run (env GORGON_EXAMPLE_STEPS)")
    p.add_argument("--out", default="out", help="folder for the files this example writes (default: out)")
    return p


class Progress:
    """A tqdm bar when tqdm is installed and wanted, else a silent counter.

    Example:
        >>> bar = Progress(100, "epoch 1")
        >>> bar.update(1, loss=0.5); bar.close()
    """

    def __init__(self, total: int, desc: str, enabled: bool = True) -> None:
        self._bar: Any = None
        if enabled:
            tqdm: Any
            try:
                tqdm = importlib.import_module("tqdm").tqdm  # optional; it ships no type hints
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(total=total, desc=desc, leave=False, file=sys.stderr,
                                 dynamic_ncols=True, mininterval=0.2)

    def update(self, n: int = 1, **postfix: Any) -> None:
        """Advance by ``n`` steps, showing ``postfix`` values (e.g. ``loss=0.5``)."""
        if self._bar is not None:
            if postfix:
                self._bar.set_postfix({k: f"{v:.4f}" if isinstance(v, float) else v for k, v in postfix.items()},
                                      refresh=False)
            self._bar.update(n)

    def close(self) -> None:
        """Remove the bar."""
        if self._bar is not None:
            self._bar.close()


Arrays = tuple[npt.NDArray[Any], npt.NDArray[np.int64], npt.NDArray[Any], npt.NDArray[np.int64]]


def digit_images(test_fraction: float = 0.2, seed: int = 0, dtype: npt.DTypeLike = np.float32) -> Arrays:
    """The digits as NCHW images scaled to [0, 1]: ``X_train, y_train, X_test, y_test``."""
    from gorgon_rs.datasets import train_test_split_digits

    X_train, y_train, X_test, y_test = train_test_split_digits(test_fraction, seed=seed)

    def f(X: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return np.ascontiguousarray((X / 16.0).reshape(-1, 1, 8, 8), dtype=dtype)

    return f(X_train), y_train.astype(np.int64), f(X_test), y_test.astype(np.int64)


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows whose argmax equals the label."""
    return float((np.asarray(logits).argmax(axis=-1) == labels).mean())


def copy_values(dst: Sequence[Any], src: Sequence[Any]) -> None:
    """``d.let(s.value)`` for matching nodes of two graphs (checked by name)."""
    for d, s in zip(dst, src, strict=True):
        if d.name != s.name:
            raise RuntimeError(f"parameter order differs: {d.name!r} vs {s.name!r}")
        d.let(s.value)


def batches(n: int, batch_size: int, rng: np.random.Generator) -> Iterable[np.ndarray]:
    """Shuffled index blocks of exactly ``batch_size`` (the remainder is dropped this epoch)."""
    order = rng.permutation(n)
    for i in range(n // batch_size):
        yield order[i * batch_size:(i + 1) * batch_size]


def save_plot(history: dict[str, list[float]], path: str) -> Optional[str]:
    """``gr.plot_history`` that prints a note instead of failing when matplotlib is missing."""
    try:
        return gr.plot_history(history, path)
    except ImportError as e:
        print(f"(no plot: {e})")
        return None


class Timer:
    """``with Timer() as t: ...; t.seconds``."""

    def __enter__(self) -> "Timer":
        self._t0 = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: Any) -> None:
        self.seconds = time.perf_counter() - self._t0
