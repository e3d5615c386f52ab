"""Small datasets bundled with gorgon_rs.

This module owns loading the bundled data files under ``gorgon_rs/data``. It uses only
NumPy and the standard library and must never import the native extension, so it works
on its own (for example when loaded straight from its file).

The one dataset is the UCI "Optical Recognition of Handwritten Digits" test set
(E. Alpaydin and C. Kaynak, CC BY 4.0), taken unchanged from scikit-learn's wheel; see
``gorgon_rs/data/DIGITS_README.rst`` for its provenance.
"""

from __future__ import annotations

import gzip
import importlib.resources
from pathlib import Path

import numpy as np

__all__ = ["load_digits", "train_test_split_digits"]

_DIGITS_FILE = "digits.csv.gz"
_N_SAMPLES = 1797
_N_FEATURES = 64


def _open_digits_bytes() -> bytes:
    # Inside the installed package, read through importlib.resources (works from a wheel,
    # an editable install or a zip); when this file is loaded on its own (no package),
    # read the ``data`` folder beside it.
    pkg = __package__ or ""
    if pkg:
        return importlib.resources.files(pkg).joinpath("data").joinpath(_DIGITS_FILE).read_bytes()
    return (Path(__file__).resolve().parent / "data" / _DIGITS_FILE).read_bytes()


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """Load the 8x8 handwritten digits: 1,797 images, 10 classes.

    Returns ``(X, y)``: ``X`` is a float64 array of shape ``(1797, 64)`` holding pixel
    intensities 0..16 (each row is an 8x8 image, row-major); ``y`` is an int64 array of
    shape ``(1797,)`` holding the digit 0..9. Every call returns fresh arrays.

    Example:
        >>> from gorgon_rs.datasets import load_digits
        >>> X, y = load_digits()
        >>> X.shape, X.dtype, y.shape, y.dtype
        ((1797, 64), dtype('float64'), (1797,), dtype('int64'))
        >>> images = X.reshape(-1, 1, 8, 8) / 16.0   # NCHW, scaled to [0, 1]
    """
    raw = gzip.decompress(_open_digits_bytes()).decode("ascii")
    table = np.loadtxt(raw.splitlines(), delimiter=",", dtype=np.float64, ndmin=2)
    if table.shape != (_N_SAMPLES, _N_FEATURES + 1):
        raise ValueError(
            f"{_DIGITS_FILE}: expected shape {(_N_SAMPLES, _N_FEATURES + 1)}, got {table.shape}"
        )
    X = np.ascontiguousarray(table[:, :_N_FEATURES])
    y = table[:, _N_FEATURES].astype(np.int64)
    return X, y


def train_test_split_digits(
    test_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Load the digits and split them into a training and a test set.

    The rows are shuffled by ``np.random.default_rng(seed).permutation``, so the same
    ``seed`` always gives the same split; the last ``round(1797 * test_fraction)`` rows of
    the shuffled order form the test set. Returns ``(X_train, y_train, X_test, y_test)``
    with the dtypes and value ranges of :func:`load_digits`.

    Example:
        >>> from gorgon_rs.datasets import train_test_split_digits
        >>> X_train, y_train, X_test, y_test = train_test_split_digits(0.2, seed=0)
        >>> X_train.shape, X_test.shape
        ((1438, 64), (359, 64))
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")
    X, y = load_digits()
    n = X.shape[0]
    n_test = int(round(n * test_fraction))
    if n_test == 0 or n_test == n:
        raise ValueError(f"test_fraction={test_fraction} leaves an empty train or test set")
    order = np.random.default_rng(seed).permutation(n)
    train_idx, test_idx = order[: n - n_test], order[n - n_test :]
    return X[train_idx], y[train_idx], X[test_idx], y[test_idx]
