"""Value strategies and result comparison of the fuzz suite (re-exported by ``_fuzzlib``): tame
and wild values (NaN, ±inf, subnormals, huge, integer extremes), :class:`Ref` and the NaN-aware,
dtype-appropriate :func:`mismatch`. Must not import pytest (``_fuzzlib`` is imported by the conftest).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

# ---------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------

FLOATS = [np.dtype(np.float32), np.dtype(np.float64)]
INTS = [np.dtype(np.int32), np.dtype(np.int64)]
DTYPES = FLOATS + INTS + [np.dtype(np.bool_)]
DIMS = [1, 2, 3, 4, 0, 1, 2, 3, 5]


def shapes(min_dims: int = 0, max_dims: int = 4) -> st.SearchStrategy:
    """Small shapes, 0-d to 4-d, with size-0 and size-1 dimensions."""
    return st.lists(st.sampled_from(DIMS), min_size=min_dims, max_size=max_dims).map(tuple)


def _specials(dtype: np.dtype) -> list[float]:
    fi = np.finfo(dtype)
    vals = [0.0, -0.0, 1.0, -1.0, 0.5, 2.0, math.nan, math.inf, -math.inf, float(fi.tiny), -float(fi.tiny),
            float(fi.smallest_subnormal), -float(fi.smallest_subnormal), float(fi.tiny) / 3,
            float(fi.max), -float(fi.max), 1e30, -1e30, 88.7, -87.4, 709.8, -745.0, 1e8, 3.14159, 1e-7]
    return sorted({float(dtype.type(v)) for v in vals if math.isnan(v) or abs(v) <= float(fi.max)},
                  key=lambda v: (math.isnan(v), v))


def elements(dtype: np.dtype, wild: bool) -> st.SearchStrategy:
    """Element strategy: tame values, or (``wild``) also NaN, ±inf, subnormals, huge."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        w = dtype.itemsize * 8
        tame = st.floats(-4, 4, width=w)
        if not wild:
            return tame
        return st.one_of(tame, st.sampled_from(_specials(dtype)), st.floats(width=w))
    if dtype.kind in "iu":
        ii = np.iinfo(dtype)
        tame = st.integers(-6, 6)
        if not wild:
            return tame
        return st.one_of(tame, st.sampled_from([int(ii.min), int(ii.max), int(ii.min) + 1, int(ii.max) - 1, 0, -1]),
                         st.integers(int(ii.min), int(ii.max)))
    return st.booleans()


def arrays(dtype: Any, shape: Sequence[int], wild: bool = False) -> st.SearchStrategy:
    """Arrays of ``dtype``/``shape``. Small arrays are drawn element by element; larger ones
    from a drawn palette of up to 6 values (so NaN, ±inf and extremes still appear) or, for
    tame values, a seeded uniform fill: far fewer draws per case than element-wise."""
    dtype, shape = np.dtype(dtype), tuple(int(d) for d in shape)
    n = math.prod(shape)
    if n <= 4:
        return hnp.arrays(dtype, shape, elements=elements(dtype, wild))
    return _filled_arrays(dtype, shape, n, wild)


@st.composite
def _filled_arrays(draw: Any, dtype: np.dtype, shape: tuple, n: int, wild: bool) -> np.ndarray:
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if not wild and dtype.kind != "b" and draw(st.booleans()):
        if dtype.kind == "f":
            return rng.uniform(-4, 4, size=shape).astype(dtype)
        return rng.integers(-6, 7, size=shape).astype(dtype)
    palette = draw(st.lists(elements(dtype, wild), min_size=1, max_size=6))
    return np.array(palette, dtype=dtype)[rng.integers(0, len(palette), size=n)].reshape(shape)


def arr_code(a: Any) -> str:
    """Python source that rebuilds ``a`` exactly (uses ``nan``/``inf`` from NumPy)."""
    if isinstance(a, np.ndarray):
        if a.ndim == 0:
            return f"np.array({a.item()!r}, dtype=np.{a.dtype.name})"
        return f"np.array({a.tolist()!r}, dtype=np.{a.dtype.name}).reshape({a.shape})"
    return repr(a)


# ---------------------------------------------------------------------------------------------
# Comparison
# ---------------------------------------------------------------------------------------------


@dataclass
class Ref:
    """A reference result: ``value``; elements compared with ``|got - ref| <= atol + rtol *
    max(|got|, |ref|)`` (NaN only matches NaN, ±inf only the same inf, up to rounding at the
    overflow threshold); ``skip`` masks elements whose value is not defined by the contract;
    ``dtype`` (if given) is the dtype the result must have."""

    value: Any
    rtol: float = 0.0
    atol: Any = 0.0
    skip: Any = None
    dtype: Optional[np.dtype] = None


def eps(dtype: Any) -> float:
    d = np.dtype(dtype)
    return float(np.finfo(d).eps) if d.kind == "f" else 0.0


def mismatch(got: Any, ref: Ref) -> Optional[str]:
    """None when ``got`` matches ``ref``, else a description of the first mismatches."""
    if not isinstance(got, np.ndarray):
        return f"result is a {type(got).__name__}, not a NumPy array"
    want = np.asarray(ref.value)
    if got.shape != want.shape:
        return f"shape {got.shape} != expected {want.shape}"
    if ref.dtype is not None and got.dtype != np.dtype(ref.dtype):
        return f"dtype {got.dtype} != expected {np.dtype(ref.dtype)}"
    if got.size == 0:
        return None
    skip = np.zeros(got.shape, bool) if ref.skip is None else np.broadcast_to(np.asarray(ref.skip, bool), got.shape)
    if got.dtype.kind in "biu":
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            w = want.astype(got.dtype) if want.dtype.kind != "f" else _float_to_int(want, got.dtype)
        bad = (got != w) & ~skip
        if want.dtype.kind == "f":
            bad &= np.isfinite(want)
    else:
        with np.errstate(all="ignore"):
            m = float(np.finfo(got.dtype).max)
            w = want.astype(got.dtype).astype(np.float64) if want.dtype != got.dtype else want.astype(np.float64)
            g = got.astype(np.float64)
            nan_bad = np.isnan(g) != np.isnan(w)
            fin = np.isfinite(g) & np.isfinite(w)
            gz, wz = np.where(fin, g, 0.0), np.where(fin, w, 0.0)
            allowed = ref.atol + ref.rtol * np.maximum(np.abs(gz), np.abs(wz))
            val_bad = fin & ~(np.abs(gz - wz) <= allowed)
            # an infinity must meet the same infinity, or a finite value at the overflow threshold
            one_inf = (np.isinf(g) | np.isinf(w)) & ~np.isnan(g) & ~np.isnan(w) & (g != w)
            fg = np.where(np.isinf(g), w, g)
            infv = np.where(np.isinf(g), g, w)
            near = (np.abs(fg) >= m * (1 - 2 * max(ref.rtol, eps(got.dtype)))) & (np.sign(fg) == np.sign(infv))
            inf_bad = one_inf & ~(near & np.isfinite(fg))
            bad = (nan_bad | val_bad | inf_bad) & ~skip
    if not bad.any():
        return None
    idx = np.argwhere(bad)[:5]
    lines = [f"{int(bad.sum())} of {bad.size} elements differ (rtol={ref.rtol:g}, dtype {got.dtype}):"]
    for i in idx:
        t = tuple(int(v) for v in i)
        lines.append(f"  at {t}: got {got[t]!r}, expected {want[t]!r}")
    return "\n".join(lines)


def _float_to_int(a: np.ndarray, dtype: np.dtype) -> np.ndarray:
    out = np.zeros(a.shape, dtype)
    fin = np.isfinite(a)
    out[fin] = a[fin].astype(np.int64).astype(dtype)
    return out


def assert_matches(got: Any, ref: Ref, ctx: str) -> None:
    m = mismatch(got, ref)
    if m is not None:
        raise AssertionError(f"{ctx}: {m}")
