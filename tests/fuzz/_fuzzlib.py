"""Shared machinery of the Hypothesis fuzz suite (``tests/fuzz``).

What lives here:

* the **budget**: ``GORGON_FUZZ_EXAMPLES`` (set by ``make fuzz`` to 10,000) is the total number
  of generated cases, shared between the fuzz tests by weight; unset (``make test``), the
  whole suite runs about 200 cases. :func:`fuzz_settings` gives each test its share on top of
  one of the two registered Hypothesis profiles (``gorgon-ci``: deterministic, ``gorgon-fuzz``:
  random), both with ``deadline=None``.
* the **case counter**: every test body calls :func:`tick`; ``conftest.py`` prints the totals
  at the end of the session.
* the **acceptable outcomes**: :func:`guarded` runs a call and lets through only the
  exceptions the reliability contract allows (``gr.Error`` subclasses except
  ``gr.InternalError``, ``ValueError``, ``TypeError``, ``IndexError``, ``MemoryError``).
* **value strategies**: tame values and wild ones (NaN, ±inf, subnormals, huge, integer extremes).
* :class:`Prog`: builds a random graph step by step from ``st.data()`` draws, keeps for every
  node a NumPy reference of the *step* (applied to gorgon's own values of the step's operands,
  so errors never compound), writes a runnable repro with ``hypothesis.note`` and checks the
  results (NaN-aware, dtype-appropriate tolerances).

This module must not import pytest (it is imported by the conftest).
"""

from __future__ import annotations

import collections
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import numpy as np
from hypothesis import HealthCheck, event, note, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import gorgon_rs as gr

# ---------------------------------------------------------------------------------------------
# Budget, profiles, counting
# ---------------------------------------------------------------------------------------------

FUZZ_TOTAL = int(os.environ.get("GORGON_FUZZ_EXAMPLES") or 0)
LONG = FUZZ_TOTAL > 0
BUDGET = FUZZ_TOTAL if LONG else 200

_SUPPRESS = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
             HealthCheck.large_base_example]
settings.register_profile("gorgon-ci", deadline=None, derandomize=True, database=None, print_blob=True,
                          suppress_health_check=_SUPPRESS)
settings.register_profile("gorgon-fuzz", deadline=None, print_blob=True, suppress_health_check=_SUPPRESS)
PROFILE = "gorgon-fuzz" if LONG else "gorgon-ci"

# Share of the budget per fuzz test (relative weights; the sum is normalized).
WEIGHTS = {
    "unary": 9,
    "binary": 11,
    "reduce": 9,
    "matmul": 6,
    "shape": 8,
    "index": 7,
    "random_graph": 16,
    "grad_fd": 6,
    "grad_consistency": 4,
    "bad_args": 8,
    "let": 4,
    "machines": 3,
    "stateful": 2,
    "safetensors": 6,
}
_TOTAL_W = sum(WEIGHTS.values())


def share(name: str) -> int:
    """The number of examples test ``name`` runs (its share of the budget, at least 2)."""
    return max(2, math.ceil(BUDGET * WEIGHTS[name] / _TOTAL_W))


def fuzz_settings(name: str, **kw: Any) -> settings:
    """Hypothesis settings for test ``name``: the active profile plus its share of examples."""
    return settings(settings.get_profile(PROFILE), max_examples=share(name), **kw)


CASES: collections.Counter = collections.Counter()
KNOWN_BUG_HITS: collections.Counter = collections.Counter()
STARTED = time.monotonic()


def tick(name: str) -> None:
    """Count one executed case of test ``name`` (call first thing in every fuzz test body)."""
    CASES[name] += 1


# ---------------------------------------------------------------------------------------------
# Acceptable outcomes
# ---------------------------------------------------------------------------------------------

ALLOWED = (gr.Error, ValueError, TypeError, IndexError, MemoryError)


class Refused(Exception):
    """An allowed exception, wrapped so the caller can tell it from a result."""

    def __init__(self, exc: BaseException):
        super().__init__(f"{type(exc).__name__}: {exc}")
        self.exc = exc


def is_allowed(e: BaseException) -> bool:
    """True for the exceptions the reliability contract allows. ``gr.InternalError`` is a
    caught Rust panic, i.e. a bug in gorgon_rs: the fuzzer reports it."""
    return isinstance(e, ALLOWED) and not isinstance(e, gr.InternalError)


# Bugs already reported (each has a strict-xfail test in tests/test_reliability.py). The fuzzer
# tolerates exactly these signatures and counts them, so `make fuzz` stays green until the fix
# lands; remove an entry together with the xfail marker of its test.
KNOWN_BUGS: list[tuple[type, str, str]] = [
    # (exception class, text in its message, tag). Empty: every bug the fuzz suite found so far
    # is fixed and has a regression test in tests/test_reliability.py. While a new finding waits
    # for its fix, list its signature here (and mark its test xfail strict) to keep `make fuzz`
    # green; remove the entry with the fix.
]


def known_bug(e: BaseException) -> Optional[str]:
    for cls, text, tag in KNOWN_BUGS:
        if isinstance(e, cls) and text in str(e):
            return tag
    return None


def guarded(what: str, fn: Callable[..., Any], *args: Any, tolerate_known: bool = True, **kw: Any) -> Any:
    """``fn(*args, **kw)``; an allowed exception comes back wrapped in :class:`Refused`; any
    other exception (or an InternalError) fails the case with ``what`` in the message."""
    try:
        return fn(*args, **kw)
    except BaseException as e:  # noqa: BLE001 - classifying is the point
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        if is_allowed(e):
            return Refused(e)
        if tolerate_known:
            tag = known_bug(e)
            if tag is not None:
                KNOWN_BUG_HITS[tag] += 1
                event(f"known bug: {tag}")
                return Refused(e)
        raise AssertionError(f"{what}: unacceptable outcome {type(e).__name__}: {e}") from e


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


# ---------------------------------------------------------------------------------------------
# NumPy references of the ops (each takes gorgon's own values of the step's operands)
# ---------------------------------------------------------------------------------------------

INT_OK = {"neg", "abs", "sign", "square", "cube", "relu"}
UNARY = ["neg", "abs", "sign", "exp", "log", "log1p", "expm1", "log2", "sqrt", "square", "cube", "inverse",
         "inverse_sqrt", "sin", "cos", "tanh", "sigmoid", "softplus", "relu", "mish", "floor", "ceil",
         "leaky_relu", "clip", "cast"]
EXACT_UNARY = {"neg", "abs", "sign", "relu", "floor", "ceil", "leaky_relu", "clip", "cast"}
BINARY = ["add", "sub", "mul", "div", "floordiv", "pow", "maximum", "minimum", "lt", "le", "gt", "ge", "eq", "ne"]
COMPARE = {"lt": np.less, "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal, "eq": np.equal,
           "ne": np.not_equal}
REDUCE = ["sum", "mean", "max", "min", "prod", "logsumexp", "argmax", "argmin"]
# Ops differentiable everywhere on their domain (no kinks, no ties): the finite-difference set.
SMOOTH_UNARY = ["neg", "exp", "log", "log1p", "expm1", "log2", "sqrt", "square", "cube", "inverse", "inverse_sqrt",
                "sin", "cos", "tanh", "sigmoid", "softplus", "mish"]
SMOOTH_BINARY = ["add", "sub", "mul", "div", "pow"]
SMOOTH_REDUCE = ["sum", "mean", "prod", "logsumexp"]

TRANSC_RTOL = {np.dtype(np.float32): 2e-6, np.dtype(np.float64): 1e-13}


def _tiny(dtype: Any) -> float:
    return float(np.finfo(dtype).tiny) * 4


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))))


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def _mish(x: np.ndarray) -> np.ndarray:
    # x * tanh(softplus(x)); the limit at -inf is 0 (the naive formula gives -inf * 0 = nan)
    return np.where(np.isneginf(x), -0.0, x * np.tanh(_softplus(x)))


_UNARY_NP: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "neg": np.negative, "abs": np.abs, "sign": np.sign, "exp": np.exp, "log": np.log, "log1p": np.log1p,
    "expm1": np.expm1, "log2": np.log2, "sqrt": np.sqrt, "square": np.square, "cube": lambda x: x * x * x,
    "inverse": lambda x: 1 / x, "inverse_sqrt": lambda x: 1 / np.sqrt(x), "sin": np.sin, "cos": np.cos,
    "tanh": np.tanh, "sigmoid": _sigmoid, "softplus": _softplus, "relu": lambda x: np.maximum(x, x.dtype.type(0)),
    "mish": _mish, "floor": np.floor, "ceil": np.ceil,
}


def unary_ref(op: str, x: np.ndarray, attrs: dict) -> Ref:
    with np.errstate(all="ignore"):
        if op == "cast":
            d = np.dtype(attrs["dtype"])
            skip = None
            if x.dtype.kind == "f" and d.kind in "iu":
                ii = np.iinfo(d)
                skip = ~np.isfinite(x) | (x <= ii.min - 1.0) | (x >= ii.max + 1.0)
                val = np.where(skip, 0, x).astype(d)
            else:
                val = x.astype(d)
            return Ref(val, skip=skip, dtype=d)
        if op == "clip" and attrs["lo"] is None and attrs["hi"] is None and x.dtype.kind in "iub":
            return Ref(x.copy(), dtype=x.dtype)
        if x.dtype.kind in "iub" and op not in INT_OK and not (op == "clip" and x.dtype.kind in "iu"):
            x = x.astype(np.float64)
        d = x.dtype
        if op == "leaky_relu":
            a = attrs["alpha"]
            val = np.where(x > 0, x, (x * d.type(a)) if d.kind == "f" else x * a)
            return Ref(val.astype(d), rtol=eps(d), atol=_tiny(d) if d.kind == "f" else 0, dtype=d)
        if op == "clip":
            lo, hi = attrs["lo"], attrs["hi"]
            val = x
            if lo is not None:
                val = np.maximum(val, d.type(lo))
            if hi is not None:
                val = np.minimum(val, d.type(hi))
            return Ref(val, dtype=d)
        if d.kind != "f":
            return Ref(_UNARY_NP[op](x).astype(d), dtype=d)
        hi = x.astype(np.float64)
        val = _UNARY_NP[op](hi).astype(d)
        if op in EXACT_UNARY:
            return Ref(val, dtype=d)
        if op in ("square", "inverse", "sqrt"):
            return Ref(val, rtol=eps(d), atol=_tiny(d), dtype=d)
        rtol = TRANSC_RTOL[d]
        atol = _tiny(d)
        if op in ("sin", "cos", "tanh", "sigmoid"):
            atol = 2 * eps(d)  # bounded outputs: absolute accuracy near the zeros
        if op in ("sin", "cos"):
            rtol, atol = rtol * 4, 4 * eps(d) * np.maximum(1.0, np.abs(hi) * eps(d) * 16)
        if op == "mish":
            atol = 2 * eps(d) * np.maximum(1.0, np.abs(hi))
        if op == "cube" or op == "log2" or op == "inverse_sqrt":
            rtol = rtol * 2
        return Ref(val, rtol=rtol, atol=atol, dtype=d)


def binary_ref(op: str, a: Any, b: Any, out_dtype: np.dtype) -> Ref:
    """``a op b`` with NumPy; ``a``/``b`` are arrays or Python scalars exactly as the user gave
    them (NumPy 2 applies the same scalar rules as gorgon_rs)."""
    d = np.dtype(out_dtype)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if op in COMPARE:
            return Ref(COMPARE[op](a, b).astype(d), dtype=d)
        if op == "div":
            val = np.true_divide(a, b)
            return Ref(val.astype(d), rtol=eps(d), atol=_tiny(d), dtype=d)
        if op == "floordiv":
            return Ref(np.asarray(np.floor_divide(a, b)).astype(d), dtype=d)
        if op == "pow":
            val = np.power(a, b)
            if d.kind != "f":
                return Ref(np.asarray(val).astype(d), dtype=d)
            return Ref(np.asarray(val).astype(d), rtol=TRANSC_RTOL[d] * 8, atol=_tiny(d), dtype=d)
        fn = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "maximum": np.maximum, "minimum": np.minimum}[op]
        val = np.asarray(fn(a, b))
        if d.kind == "f" and op in ("add", "sub", "mul"):
            return Ref(val.astype(d), rtol=eps(d), atol=_tiny(d), dtype=d)
        return Ref(val.astype(d), dtype=d)


def _axes_tuple(axis: Any, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int):
        axis = (axis,)
    return tuple(a % ndim for a in axis) if ndim else ()


def reduce_ref(op: str, x: np.ndarray, axis: Any, keepdims: bool) -> Ref:
    ax = None if axis is None else (axis if isinstance(axis, int) else tuple(axis))
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if op in ("argmax", "argmin"):
            fn = np.argmax if op == "argmax" else np.argmin
            v = fn(x, axis=ax, keepdims=keepdims) if x.ndim else np.array(0)
            if keepdims and ax is None:
                v = np.asarray(v).reshape((1,) * x.ndim)
            return Ref(np.asarray(v, np.int64), dtype=np.dtype(np.int64))
        if op in ("mean", "logsumexp") and x.dtype.kind in "iub":
            x = x.astype(np.float64)
        if op in ("sum", "prod") and x.dtype.kind == "b":
            x = x.astype(np.int64)
        d = x.dtype
        axes = _axes_tuple(ax, x.ndim)
        n = int(np.prod([x.shape[a] for a in axes], dtype=np.int64)) if x.ndim else 1
        if op in ("max", "min"):
            fn = np.max if op == "max" else np.min
            return Ref(np.asarray(fn(x, axis=ax, keepdims=keepdims)), dtype=d)
        if d.kind != "f":
            fn = np.sum if op == "sum" else np.prod
            return Ref(np.asarray(fn(x, axis=ax, keepdims=keepdims, dtype=np.int64)).astype(d), dtype=d)
        x64 = x.astype(np.float64)
        big = float(np.finfo(d).max)
        fin = np.where(np.isfinite(x64), np.abs(x64), 0.0)
        if op in ("sum", "mean"):
            val = np.sum(x64, axis=ax, keepdims=keepdims)
            bound = np.sum(fin, axis=ax, keepdims=keepdims)
            skip = bound > big * (1 - (n + 2) * eps(d))
            atol = bound * eps(d) * (n + 2) * 2 + _tiny(d)
            if op == "mean":
                val, atol = val / n if n else val * np.nan, atol / max(n, 1)
            return Ref(np.asarray(val).astype(d), rtol=2 * eps(d), atol=atol, skip=skip, dtype=d)
        if op == "prod":
            val = np.prod(x64, axis=ax, keepdims=keepdims)
            lg = np.where((fin > 0), np.log2(np.where(fin > 0, fin, 1.0)), 0.0)
            up = np.sum(np.maximum(lg, 0), axis=ax, keepdims=keepdims)
            down = np.sum(np.minimum(lg, 0), axis=ax, keepdims=keepdims)
            fi = np.finfo(d)
            skip = (up > math.log2(float(fi.max)) - 2) | (down < math.log2(float(fi.tiny)) + 2)
            return Ref(np.asarray(val).astype(d), rtol=eps(d) * (n + 2) * 2, atol=_tiny(d), skip=skip, dtype=d)
        if op == "logsumexp":
            m = np.max(x64, axis=ax, keepdims=True)
            ms = np.where(np.isfinite(m), m, 0.0)
            s = np.sum(np.exp(x64 - ms), axis=ax, keepdims=True)
            out = np.log(s) + ms
            out = np.where(np.isposinf(m), np.inf, out)
            out = np.where(np.isneginf(m), -np.inf, out)
            out = np.where(np.isnan(m), np.nan, out)
            if not keepdims:
                out = np.squeeze(out, axis=axes) if x.ndim else out.reshape(())
            atol = 8 * eps(d) * (np.abs(out) + math.log(max(n, 1)) + 1)
            return Ref(np.asarray(out).astype(d), rtol=8 * eps(d), atol=np.where(np.isfinite(atol), atol, 0), dtype=d)
    raise ValueError(op)


def matmul_ref(a: np.ndarray, b: np.ndarray) -> Ref:
    """``np.matmul`` semantics; NaN/inf propagate as IEEE says (computed elementwise, not
    through a BLAS), finite parts with a bound-based tolerance."""
    d = a.dtype
    a2 = a.reshape(1, -1) if a.ndim == 1 else a
    b2 = b.reshape(-1, 1) if b.ndim == 1 else b
    k = a2.shape[-1]
    with np.errstate(all="ignore"):
        if d.kind in "iu":
            prod = a2.astype(np.int64)[..., :, :, None] * b2.astype(np.int64)[..., None, :, :]
            val = prod.sum(axis=-2, dtype=np.int64).astype(d)
            tol: Any = 0
            skip = None
        else:
            a64, b64 = a2.astype(np.float64), b2.astype(np.float64)
            val = (a64[..., :, :, None] * b64[..., None, :, :]).sum(axis=-2)
            fa, fb = np.where(np.isfinite(a64), np.abs(a64), 0), np.where(np.isfinite(b64), np.abs(b64), 0)
            bound = (fa[..., :, :, None] * fb[..., None, :, :]).sum(axis=-2)
            tol = bound * eps(d) * (k + 2) * 2 + _tiny(d)
            skip = bound > float(np.finfo(d).max) * (1 - (k + 2) * eps(d))
    if a.ndim == 1 and b.ndim == 1:
        val, tol, skip = _sq(val, (-2, -1)), _sq(tol, (-2, -1)), _sq(skip, (-2, -1))
    elif a.ndim == 1:
        val, tol, skip = _sq(val, (-2,)), _sq(tol, (-2,)), _sq(skip, (-2,))
    elif b.ndim == 1:
        val, tol, skip = _sq(val, (-1,)), _sq(tol, (-1,)), _sq(skip, (-1,))
    with np.errstate(all="ignore"):
        return Ref(np.asarray(val).astype(d), rtol=2 * eps(d), atol=tol, skip=skip, dtype=d)


def _sq(v: Any, axes: tuple) -> Any:
    if isinstance(v, np.ndarray):
        return np.squeeze(v, axis=axes)
    return v


def softmax_ref(x: np.ndarray, axis: int, log: bool) -> Ref:
    d = x.dtype
    if d.kind != "f":
        raise TypeError("softmax of a non-float operand has no NumPy reference")
    with np.errstate(all="ignore"):
        x64 = x.astype(np.float64)
        m = np.max(x64, axis=axis, keepdims=True) if x.size else x64
        z = x64 - m
        s = np.sum(np.exp(z), axis=axis, keepdims=True)
        if log:
            val = z - np.log(s)
            atol = 8 * eps(d) * (np.abs(np.where(np.isfinite(z), z, 0)) + 1)
        else:
            val = np.exp(z) / s
            atol = 4 * eps(d)
    return Ref(val.astype(d), rtol=8 * eps(d), atol=atol, dtype=d)


# ---------------------------------------------------------------------------------------------
# Random programs
# ---------------------------------------------------------------------------------------------


@dataclass
class Entry:
    """One node of a random program: its gorgon node, the source line that built it, the
    reference of its step and the entries (or raw operands) the step used."""

    name: str
    node: Any
    code: str
    ref: Optional[Callable[..., Ref]] = None
    operands: list = field(default_factory=list)
    leaf_value: Optional[np.ndarray] = None
    bind: str = "value"
    smooth: bool = True
    discontinuous: bool = False
    rewritten: bool = False


# Ops at the root of a stabilization rewrite (API.md: log(1+x) -> log1p(x), exp(x)-1 -> expm1(x),
# log(sigmoid(x)) -> -softplus(-x), 1-sigmoid(x) -> sigmoid(-x), -(-x) -> x, exp(x)/sum(exp(x)) ->
# softmax(x), log(sum(exp(x))) -> logsumexp(x), ...).
REWRITE_ROOTS = {"log", "log1p", "sub", "neg", "div"}


class Prog:
    """A random program over one graph, drawn step by step from ``data`` (``st.data()``).

    ``families`` restricts the op families a random step may use. The repro is written with
    ``hypothesis.note`` as the program is built, as runnable Python.
    """

    FAMILIES = ("unary", "binary", "reduce", "matmul", "shape", "index", "softmax", "where", "cast", "take",
                "concat")

    def __init__(self, data: Any, families: Sequence[str] = FAMILIES, dtypes: Sequence[np.dtype] = tuple(DTYPES),
                 wild: Optional[bool] = None, unary_ops: Sequence[str] = tuple(UNARY),
                 binary_ops: Sequence[str] = tuple(BINARY), reduce_ops: Sequence[str] = tuple(REDUCE)):
        self.data = data
        self.families = tuple(families)
        self.unary_ops, self.binary_ops, self.reduce_ops = list(unary_ops), list(binary_ops), list(reduce_ops)
        self.stabilize = self.draw(st.booleans(), "stabilize")
        self.g = gr.Graph(stabilize=self.stabilize)
        self.dtype = np.dtype(self.draw(st.sampled_from(list(dtypes)), "dtype"))
        self.wild = self.draw(st.booleans(), "wild") if wild is None else wild
        self.entries: list[Entry] = []
        self.leaves: list[Entry] = []
        self.lines: list[str] = []
        self.emit("import numpy as np, gorgon_rs as gr\nfrom numpy import nan, inf")
        self.emit(f"g = gr.Graph(stabilize={self.stabilize})")

    # -- helpers -----------------------------------------------------------------------------

    def draw(self, strategy: st.SearchStrategy, label: Optional[str] = None) -> Any:
        return self.data.draw(strategy, label=label)

    def emit(self, line: str) -> None:
        self.lines.append(line)
        note(line)

    def repro(self) -> str:
        return "\n".join(self.lines)

    def pick(self, pred: Callable[[Entry], bool] = lambda e: True) -> Optional[Entry]:
        cands = [e for e in self.entries if pred(e)]
        if not cands:
            return None
        # prefer recent nodes so programs grow deep, not wide
        i = self.draw(st.integers(0, len(cands) - 1), "pick")
        return cands[len(cands) - 1 - i]

    def build(self, code: str, fn: Callable[[], Any], ref: Optional[Callable[..., Ref]], operands: list,
              smooth: bool = True, discontinuous: bool = False, expect_error: bool = False,
              op: Optional[str] = None) -> Optional[Entry]:
        """Runs a build step; an allowed exception drops the step (``# -> Error`` in the repro)."""
        name = f"n{len(self.entries)}"
        r = guarded(code, fn)
        if isinstance(r, Refused):
            self.emit(f"# {name} = {code}   # raises {type(r.exc).__name__}: {str(r.exc)[:120]}")
            event(f"refused: {code.split('(')[0]} {type(r.exc).__name__}")
            return None
        if not isinstance(r, gr.Node):
            raise AssertionError(f"{code}: returned {type(r).__name__}, not a Node")
        if expect_error:
            raise AssertionError(f"{code}: NumPy refuses this (out-of-range axis/index, bad shape) but "
                                 f"gorgon_rs built {r!r}\n{self.repro()}")
        e = Entry(name, r, code, ref, operands, smooth=smooth, discontinuous=discontinuous)
        if self.stabilize and op in REWRITE_ROOTS and r.kind != f"op:{op}":
            e.rewritten = True  # computed from an earlier node than the step's operands
        self.emit(f"{name} = {code}" + (f"   # rewritten to {r.kind}" if e.rewritten else ""))
        self.entries.append(e)
        return e

    def new_leaf(self, shape: Sequence[int], dtype: Optional[np.dtype] = None) -> Entry:
        dtype = np.dtype(dtype or self.dtype)
        shape = tuple(int(s) for s in shape)
        arr = self.draw(arrays(dtype, shape, self.wild), "leaf value")
        bind = self.draw(st.sampled_from(["value", "let", "arg"]), "bind")
        name = f"x{len(self.leaves)}"
        node = self.g.tensor(dtype, shape, name=name, value=arr if bind == "value" else None)
        self.emit(f"{name} = g.tensor(np.{dtype.name}, {shape}, name={name!r}, value={arr_code(arr)})")
        e = Entry(name, node, name, None, [], leaf_value=arr, bind=bind)
        self.entries.append(e)
        self.leaves.append(e)
        return e

    def compat_shape(self, shape: tuple) -> tuple:
        """A shape that broadcasts with ``shape`` (suffix, some dims 1, maybe extra leading dims)."""
        k = self.draw(st.integers(0, len(shape)), "suffix")
        s = [1 if self.draw(st.booleans()) else d for d in shape[len(shape) - k:]]
        extra = self.draw(st.lists(st.sampled_from([1, 2, 3]), max_size=1 if len(shape) < 4 else 0), "extra dims")
        return tuple(extra + s)

    def operand_value(self, o: Any, values: dict) -> Any:
        return values[o.name] if isinstance(o, Entry) else o

    # -- steps -------------------------------------------------------------------------------

    def random_step(self) -> None:
        fam = self.draw(st.sampled_from(self.families), "family")
        getattr(self, "step_" + fam)()

    def step_unary(self) -> None:
        x = self.pick()
        if x is None:
            return
        op = self.draw(st.sampled_from(self.unary_ops), "unary op")
        attrs: dict = {}
        if op == "leaky_relu":
            attrs["alpha"] = self.draw(st.sampled_from([0.01, 0.2, 0.0, 1.0, -0.5, 3.0]), "alpha")
            code = f"gr.leaky_relu({x.name}, {attrs['alpha']!r})"
            fn = lambda: gr.leaky_relu(x.node, attrs["alpha"])  # noqa: E731
        elif op == "clip":
            lo = self.draw(st.sampled_from([None, -1.0, 0.0, 0.5, -3.0]), "lo")
            hi = self.draw(st.sampled_from([None, 1.0, 0.25, 2.0, 5.0]), "hi")
            if x.node.dtype.kind in "iu":
                lo = None if lo is None else int(lo)
                hi = None if hi is None else int(hi)
            attrs.update(lo=lo, hi=hi)
            code = f"gr.clip({x.name}, {lo!r}, {hi!r})"
            fn = lambda: gr.clip(x.node, attrs["lo"], attrs["hi"])  # noqa: E731
        elif op == "cast":
            attrs["dtype"] = self.draw(st.sampled_from(DTYPES), "cast dtype")
            code = f"gr.cast({x.name}, np.{attrs['dtype'].name})"
            fn = lambda: gr.cast(x.node, attrs["dtype"])  # noqa: E731
        else:
            style = self.draw(st.sampled_from(["fn", "op"]) if op in ("neg", "abs") else st.just("fn"), "style")
            if style == "op":
                code = f"-{x.name}" if op == "neg" else f"abs({x.name})"
                fn = (lambda: -x.node) if op == "neg" else (lambda: abs(x.node))  # noqa: E731
            else:
                code = f"gr.{op}({x.name})"
                fn = lambda: getattr(gr, op)(x.node)  # noqa: E731
        disc = op in ("sign", "floor", "ceil", "cast")
        smooth = op not in ("abs", "sign", "relu", "floor", "ceil", "leaky_relu", "clip", "cast")
        self.build(code, fn, lambda v, op=op, attrs=attrs: unary_ref(op, v, attrs), [x], smooth=smooth,
                   discontinuous=disc, op=op)

    def scalar_operand(self, like: np.dtype) -> Any:
        if like.kind == "f":
            vals = [0.5, 2.0, -1.5, 0.0, 3, -2, 1e-3, 1e30] if self.wild else [0.5, 2.0, -1.5, 0.0, 3, -2, 1]
        else:
            vals = [0, 1, 2, -3, 7, 0.5] if not self.wild else [0, 1, 2, -3, 7, 0.5, 2**31 - 1, -2**31]
        return self.draw(st.sampled_from(vals), "scalar")

    def second_operand(self, a: Entry) -> Any:
        kind = self.draw(st.sampled_from(["self", "entry", "leaf", "leaf", "scalar", "array"]), "operand kind")
        shape = a.node.shape
        if kind == "self":
            return a
        if kind == "entry":
            b = self.pick()
            return b if b is not None else a
        if kind == "leaf":
            dt = self.dtype if self.draw(st.integers(0, 9), "other dtype?") else self.draw(st.sampled_from(DTYPES))
            return self.new_leaf(self.compat_shape(shape), dt)
        if kind == "scalar":
            return self.scalar_operand(a.node.dtype)
        dt = a.node.dtype if self.draw(st.integers(0, 5), "array dtype?") else self.draw(st.sampled_from(DTYPES))
        return self.draw(arrays(dt, self.compat_shape(shape), self.wild), "array operand")

    def step_binary(self) -> None:
        a = self.pick()
        if a is None:
            return
        op = self.draw(st.sampled_from(self.binary_ops), "binary op")
        b = self.second_operand(a)
        if op == "pow" and a.node.dtype.kind in "iu" and not self.draw(st.integers(0, 9)):
            pass  # occasionally let a negative integer exponent through (run-time DTypeError)
        elif op == "pow" and isinstance(b, (int, float)) and a.node.dtype.kind in "iu":
            b = abs(int(b)) % 5
        swap = self.draw(st.booleans(), "swap") and not isinstance(b, Entry)
        sym = {"add": "+", "sub": "-", "mul": "*", "div": "/", "floordiv": "//", "pow": "**", "lt": "<",
               "le": "<=", "gt": ">", "ge": ">="}.get(op)
        use_sym = sym is not None and self.draw(st.booleans(), "operator?")
        bn = b.name if isinstance(b, Entry) else arr_code(b)
        lhs, rhs = (bn, a.name) if swap else (a.name, bn)
        code = f"{lhs} {sym} {rhs}" if use_sym else f"gr.{op}({lhs}, {rhs})"

        def fn() -> Any:
            bv = b.node if isinstance(b, Entry) else b
            x, y = (bv, a.node) if swap else (a.node, bv)
            if use_sym:
                return {"+": lambda: x + y, "-": lambda: x - y, "*": lambda: x * y, "/": lambda: x / y,
                        "//": lambda: x // y, "**": lambda: x ** y, "<": lambda: x < y, "<=": lambda: x <= y,
                        ">": lambda: x > y, ">=": lambda: x >= y}[sym]()
            return getattr(gr, op)(x, y)

        ops = [b, a] if swap else [a, b]
        e = self.build(code, fn, None, ops, smooth=op not in ("floordiv", "maximum", "minimum") and op not in COMPARE,
                       discontinuous=op in COMPARE or op == "floordiv", op=op)
        if e is not None:
            out_dtype = e.node.dtype
            e.ref = lambda u, v, op=op, d=out_dtype: binary_ref(op, u, v, d)
            self._check_binary_dtype(e, op, ops)

    def _check_binary_dtype(self, e: Entry, op: str, ops: list) -> None:
        """API.md dtype rules: no float32/float64 promotion, comparisons keep the operand
        dtype, integer true division gives float64, Python scalars adopt the node's dtype."""
        nd = [o.node.dtype for o in ops if isinstance(o, Entry)]
        if len(set(nd)) != 1:
            return
        d = nd[0]
        scal = [o for o in ops if not isinstance(o, Entry)]
        if scal and isinstance(scal[0], np.ndarray) and scal[0].dtype != d:
            return
        if scal and isinstance(scal[0], float) and d.kind in "iub":
            d = np.dtype(np.float64)
        want = np.dtype(np.float64) if (op == "div" and d.kind in "iub") else d
        if e.node.dtype != want:
            raise AssertionError(f"{e.code}: result dtype {e.node.dtype}, API.md says {want}\n{self.repro()}")

    def _axis_arg(self, ndim: int, allow_tuple: bool = True) -> Any:
        kind = self.draw(st.sampled_from(["none", "int", "tuple"] if allow_tuple else ["none", "int"]), "axis kind")
        if kind == "none":
            return None
        if kind == "int":
            return self.draw(st.integers(-ndim - 1, ndim), "axis")
        return tuple(self.draw(st.lists(st.integers(-ndim - 1, ndim), max_size=ndim + 1), "axes"))

    @staticmethod
    def _axis_ok(axis: Any, ndim: int) -> bool:
        if axis is None:
            return True
        axes = (axis,) if isinstance(axis, int) else axis
        if any(not -ndim <= a < ndim for a in axes):
            return False
        return len({a % ndim for a in axes}) == len(axes) if ndim else not axes

    def step_reduce(self) -> None:
        x = self.pick()
        if x is None:
            return
        op = self.draw(st.sampled_from(self.reduce_ops), "reduce op")
        nd = x.node.ndim
        axis = self._axis_arg(nd, allow_tuple=op not in ("argmax", "argmin"))
        keepdims = self.draw(st.booleans(), "keepdims")
        method = op in ("sum", "mean", "max", "min", "prod", "argmax", "argmin") and self.draw(st.booleans(), "method")
        code = (f"{x.name}.{op}(axis={axis!r}, keepdims={keepdims})" if method
                else f"gr.{op}({x.name}, axis={axis!r}, keepdims={keepdims})")
        fn = (lambda: getattr(x.node, op)(axis=axis, keepdims=keepdims)) if method else \
            (lambda: getattr(gr, op)(x.node, axis=axis, keepdims=keepdims))
        bad = not self._axis_ok(axis, nd) or (nd == 0 and axis not in (None, ()) and op not in ("argmax", "argmin"))
        if op in ("argmax", "argmin") and nd == 0 and axis is not None:
            bad = True  # NumPy: axis 0 is out of bounds for a 0-d array
        self.build(code, fn, lambda v: reduce_ref(op, v, axis, keepdims), [x], expect_error=bad,
                   smooth=op in ("sum", "mean", "logsumexp", "prod"), discontinuous=op in ("argmax", "argmin"))

    def step_softmax(self) -> None:
        x = self.pick()
        if x is None:
            return
        log = self.draw(st.booleans(), "log")
        nd = x.node.ndim
        axis = self.draw(st.integers(-nd - 1, nd), "axis") if self.draw(st.booleans()) else -1
        name = "log_softmax" if log else "softmax"
        bad = not (-nd <= axis < nd)
        self.build(f"gr.{name}({x.name}, axis={axis})", lambda: getattr(gr, name)(x.node, axis=axis),
                   lambda v: softmax_ref(v, axis, log), [x], expect_error=bad)

    def step_matmul(self) -> None:
        a = self.pick(lambda e: e.node.ndim >= 1) or self.new_leaf(self.draw(shapes(1, 3)))
        style = self.draw(st.sampled_from(["@", "matmul", "dot", "outer", "tensordot"]), "matmul style")
        sh = a.node.shape
        k = sh[-1]
        kind = self.draw(st.sampled_from(["vec", "mat", "batch", "entry", "bad"]), "rhs shape")
        n = self.draw(st.sampled_from([1, 2, 3, 0, 4]), "n")
        if kind == "vec":
            bshape: tuple = (k,)
        elif kind == "mat":
            bshape = (k, n)
        elif kind == "batch":
            bshape = self.compat_shape(sh[:-2])[-2:] + (k, n) if len(sh) > 2 else (self.draw(st.sampled_from([1, 2])), k, n)
        else:
            bshape = (k + 1, n)
        b = self.pick() if kind == "entry" else self.new_leaf(bshape, self.dtype if self.draw(st.integers(0, 9)) else None)
        if b is None:
            return
        x, y = a.node, b.node
        if style in ("@", "matmul"):
            code = f"{a.name} @ {b.name}" if style == "@" else f"gr.matmul({a.name}, {b.name})"
            fn = lambda: x @ y  # noqa: E731
            try:
                np.matmul(np.zeros(x.shape), np.zeros(y.shape))
                bad = False
            except ValueError:
                bad = True
            bad = bad or x.ndim == 0 or y.ndim == 0
            self.build(code, fn, lambda u, v: matmul_ref(u, v), [a, b], expect_error=bad)
        elif style == "dot":
            try:
                np.dot(np.zeros(x.shape), np.zeros(y.shape))
                bad = False
            except ValueError:
                bad = True
            self.build(f"gr.dot({a.name}, {b.name})", lambda: gr.dot(x, y), lambda u, v: _generic_ref(np.dot, u, v),
                       [a, b], expect_error=bad)
        elif style == "outer":
            self.build(f"gr.outer({a.name}, {b.name})", lambda: gr.outer(x, y),
                       lambda u, v: _generic_ref(np.outer, u, v), [a, b])
        else:
            naxes = self.draw(st.integers(0, 2), "tensordot axes")
            try:
                np.tensordot(np.zeros(x.shape), np.zeros(y.shape), naxes)
                bad = False
            except (ValueError, IndexError):
                bad = True
            self.build(f"gr.tensordot({a.name}, {b.name}, {naxes})", lambda: gr.tensordot(x, y, naxes),
                       lambda u, v: _generic_ref(lambda p, q: np.tensordot(p, q, naxes), u, v), [a, b],
                       expect_error=bad)

    def _new_shape_for(self, shape: tuple) -> tuple:
        size = int(np.prod(shape, dtype=np.int64))
        kind = self.draw(st.sampled_from(["factor", "factor", "minus1", "bad", "same"]), "reshape kind")
        if kind == "same":
            return shape
        if kind == "bad":
            return tuple(self.draw(shapes(0, 3), "bad shape")) + (self.draw(st.sampled_from([-1, -2, 7])),)
        dims = []
        rest = size
        for _ in range(self.draw(st.integers(0, 3), "ndims")):
            divs = [d for d in range(1, 7) if rest % d == 0] if rest else [0, 1, 2]
            d = self.draw(st.sampled_from(divs), "dim")
            dims.append(d)
            rest = rest // d if d else 0
        if rest != 1 or not dims:
            dims.append(rest)
        if kind == "minus1" and dims:
            i = self.draw(st.integers(0, len(dims) - 1), "minus1 at")
            if dims[i] != 0:
                dims[i] = -1
        return tuple(dims)

    def step_shape(self) -> None:
        x = self.pick()
        if x is None:
            return
        sh = x.node.shape
        nd = len(sh)
        op = self.draw(st.sampled_from(["reshape", "transpose", "T", "squeeze", "expand_dims", "broadcast_to"]),
                       "shape op")
        v0 = np.zeros(sh, x.node.dtype)
        if op == "reshape":
            s = self._new_shape_for(sh)
            method = self.draw(st.booleans(), "method")
            code = f"{x.name}.reshape({s})" if method else f"gr.reshape({x.name}, {s})"
            fn = (lambda: x.node.reshape(s)) if method else (lambda: gr.reshape(x.node, s))
            np_fn = lambda v: v.reshape(s)  # noqa: E731
        elif op in ("transpose", "T"):
            if op == "T":
                code, fn, np_fn = f"{x.name}.T", (lambda: x.node.T), (lambda v: v.T)
            else:
                axes = self.draw(st.one_of(st.none(), st.permutations(list(range(nd))),
                                           st.lists(st.integers(-nd - 1, nd), max_size=nd + 1)), "axes")
                code = f"gr.transpose({x.name}, {axes!r})"
                fn = lambda: gr.transpose(x.node, axes)  # noqa: E731
                np_fn = lambda v: np.transpose(v, axes)  # noqa: E731
        elif op == "squeeze":
            axis = self.draw(st.one_of(st.none(), st.integers(-nd - 1, nd),
                                       st.lists(st.integers(-nd - 1, nd), max_size=2).map(tuple)), "axis")
            code = f"gr.squeeze({x.name}, {axis!r})"
            fn = lambda: gr.squeeze(x.node, axis)  # noqa: E731
            np_fn = lambda v: np.squeeze(v, axis)  # noqa: E731
        elif op == "expand_dims":
            axis = self.draw(st.one_of(st.integers(-nd - 2, nd + 1),
                                       st.lists(st.integers(-nd - 2, nd + 1), max_size=2).map(tuple)), "axis")
            code = f"gr.expand_dims({x.name}, {axis!r})"
            fn = lambda: gr.expand_dims(x.node, axis)  # noqa: E731
            np_fn = lambda v: np.expand_dims(v, axis)  # noqa: E731
        else:
            target = tuple(self.draw(st.lists(st.sampled_from([1, 2, 3]), max_size=2), "lead")) + tuple(
                d if d != 1 or not self.draw(st.booleans()) else self.draw(st.sampled_from([0, 1, 2, 3, -1]))
                for d in sh)
            code = f"gr.broadcast_to({x.name}, {target})"
            fn = lambda: gr.broadcast_to(x.node, target)  # noqa: E731
            np_fn = lambda v: np.broadcast_to(v, target)  # noqa: E731
        bad = _numpy_refuses(np_fn, v0)
        self.build(code, fn, lambda v: Ref(np.array(np_fn(v)), dtype=v.dtype), [x], expect_error=bad)

    def _index_key(self, shape: tuple) -> Any:
        nd = len(shape)
        parts = []
        n_items = self.draw(st.integers(0, nd + 1), "key length")
        used_ellipsis = False
        for i in range(n_items):
            d = shape[i] if i < nd else 1
            kind = self.draw(st.sampled_from(["int", "slice", "slice", "none", "ellipsis", "full"]), "key part")
            if kind == "int":
                parts.append(self.draw(st.integers(-d - 1, d), "index"))
            elif kind == "slice":
                bound = st.one_of(st.none(), st.integers(-d - 2, d + 2))
                step = self.draw(st.one_of(st.none(), st.sampled_from([1, 2, 3, -1, -2, 0])), "step")
                parts.append(slice(self.draw(bound, "start"), self.draw(bound, "stop"), step))
            elif kind == "none":
                parts.append(None)
            elif kind == "ellipsis" and (not used_ellipsis or not self.draw(st.integers(0, 5))):
                used_ellipsis = True
                parts.append(Ellipsis)
            else:
                parts.append(slice(None))
        if len(parts) == 1 and self.draw(st.booleans(), "bare key"):
            return parts[0]
        return tuple(parts)

    def step_index(self) -> None:
        x = self.pick()
        if x is None:
            return
        key = self._index_key(x.node.shape)
        v0 = np.zeros(x.node.shape, x.node.dtype)
        bad = _numpy_refuses(lambda v: v[key], v0)
        code = f"{x.name}[{_key_code(key)}]"
        self.build(code, lambda: x.node[key], lambda v: Ref(np.array(v[key]), dtype=v.dtype), [x],
                   expect_error=bad)

    def step_take(self) -> None:
        x = self.pick(lambda e: e.node.ndim >= 1)
        if x is None:
            return
        nd = x.node.ndim
        how = self.draw(st.sampled_from(["list", "array", "node", "getitem"]), "indices as")
        if how == "getitem":
            axis = 0
        else:
            axis = self.draw(st.integers(-nd, nd - 1), "axis") if self.draw(st.integers(0, 9)) else nd
        axis_ok = -nd <= axis < nd
        n = x.node.shape[axis] if axis_ok else 0
        lo, hi = (-n, n - 1) if n else (-1, 0)
        if not self.draw(st.integers(0, 9)):
            lo, hi = lo - 2, hi + 2  # sometimes out of range
        ishape = self.draw(shapes(0, 2), "indices shape")
        idx = self.draw(hnp.arrays(np.int64, ishape, elements=st.integers(lo, hi)), "indices")
        oob = bool(idx.size) and (int(idx.min()) < -n or int(idx.max()) >= n)
        bad = not axis_ok or oob
        if how == "node":
            dt = self.draw(st.sampled_from(INTS), "index dtype")
            ie = self.new_leaf(idx.shape, dt)
            ie.leaf_value = idx.astype(dt)
            if ie.bind == "value":
                ie.node.let(ie.leaf_value)
            self.lines[-1] = (f"{ie.name} = g.tensor(np.{dt.name}, {idx.shape}, name={ie.name!r}, "
                              f"value={arr_code(ie.leaf_value)})")
            code = f"gr.take({x.name}, {ie.name}, axis={axis})"
            # out-of-range index nodes are only seen at run time (IndexError or a gorgon error)
            self.build(code, lambda: gr.take(x.node, ie.node, axis=axis),
                       lambda v, i: Ref(np.take(v, i, axis=axis), dtype=v.dtype), [x, ie], expect_error=not axis_ok)
            return
        val: Any = idx.tolist() if how in ("list", "getitem") else idx
        ref_idx = np.asarray(val, dtype=np.int64)
        if how == "getitem":
            code = f"{x.name}[{val!r}]"
            fn = lambda: x.node[val]  # noqa: E731
        else:
            code = f"gr.take({x.name}, {arr_code(val) if how == 'array' else repr(val)}, axis={axis})"
            fn = lambda: gr.take(x.node, val, axis=axis)  # noqa: E731
        self.build(code, fn, lambda v: Ref(np.take(v, ref_idx, axis=axis), dtype=v.dtype), [x], expect_error=bad)

    def step_concat(self) -> None:
        x = self.pick()
        if x is None:
            return
        sh = x.node.shape
        nd = len(sh)
        stack = self.draw(st.booleans(), "stack")
        axis = self.draw(st.integers(-nd - 1, nd), "axis")
        ops = [x]
        for _ in range(self.draw(st.integers(0, 2), "more")):
            kind = self.draw(st.sampled_from(["self", "leaf", "entry"]), "part")
            if kind == "self":
                ops.append(x)
            elif kind == "entry":
                ops.append(self.pick() or x)
            else:
                s = list(sh)
                if not stack and nd and self.draw(st.booleans()) and -nd <= axis < nd:
                    s[axis] = self.draw(st.sampled_from([0, 1, 2, 3]))
                ops.append(self.new_leaf(tuple(s)))
        name = "stack" if stack else "concat"
        code = f"gr.{name}([{', '.join(o.name for o in ops)}], axis={axis})"
        nodes = [o.node for o in ops]
        np_fn = (lambda *v: np.stack(v, axis=axis)) if stack else (lambda *v: np.concatenate(v, axis=axis))
        dts = {o.node.dtype for o in ops}
        bad = _numpy_refuses(lambda *v: np_fn(*v), *[np.zeros(o.node.shape) for o in ops])
        if len(ops) == 1 and not stack and nd:
            bad = not (-nd <= axis < nd)
        self.build(code, lambda: getattr(gr, name)(nodes, axis=axis),
                   lambda *v: Ref(np_fn(*v), dtype=v[0].dtype if len(dts) == 1 else None), ops,
                   expect_error=bad and len(dts) == 1)

    def step_where(self) -> None:
        c = self.pick()
        if c is None:
            return
        a = self.second_operand(c)
        b = self.second_operand(c) if self.draw(st.booleans()) else self.scalar_operand(c.node.dtype)
        an = a.name if isinstance(a, Entry) else arr_code(a)
        bn = b.name if isinstance(b, Entry) else arr_code(b)
        av = a.node if isinstance(a, Entry) else a
        bv = b.node if isinstance(b, Entry) else b

        e = self.build(f"gr.where({c.name}, {an}, {bn})", lambda: gr.where(c.node, av, bv), None, [c, a, b],
                       discontinuous=True)
        if e is not None:
            e.ref = lambda cv, u, v, d=e.node.dtype: where_ref(cv, u, v, d)

    def step_cast(self) -> None:
        x = self.pick()
        if x is None:
            return
        d = self.draw(st.sampled_from(DTYPES), "dtype")
        self.build(f"gr.cast({x.name}, np.{d.name})", lambda: gr.cast(x.node, d),
                   lambda v: unary_ref("cast", v, {"dtype": d}), [x], discontinuous=True)

    # -- running and checking ------------------------------------------------------------------

    def leaf_args(self) -> list:
        return [e.leaf_value for e in self.leaves]

    def run(self, how: Optional[str] = None) -> Optional[dict]:
        """Computes every entry with one machine; returns ``{name: value}`` or None when the
        run raised an allowed error. Checks that the returned arrays are fresh copies."""
        if not self.entries:
            return None
        how = how or self.draw(st.sampled_from(["function", "tape", "lisp"]), "executor")
        self.emit(f"# run with: {how}")
        ents = self.entries
        if how == "function":
            f = guarded("gr.function", gr.function, [e.node for e in self.leaves], [e.node for e in ents])
            if isinstance(f, Refused):
                return None
            out = guarded("calling gr.function", f, *self.leaf_args())
            if isinstance(out, Refused):
                self.emit(f"# the run raises {type(out.exc).__name__}: {out.exc}")
                return None
            vals = dict(zip([e.name for e in ents], out))
        else:
            for e in self.leaves:
                if e.bind != "value":
                    e.node.let(e.leaf_value)
            m = guarded("machine", gr.TapeMachine if how == "tape" else
                        (lambda g: gr.LispMachine(g, backprop=False)), self.g)
            if isinstance(m, Refused):
                return None
            try:
                r = guarded("run_all", m.run_all)
                if isinstance(r, Refused):
                    self.emit(f"# the run raises {type(r.exc).__name__}: {r.exc}")
                    return None
                vals = {e.name: e.node.value for e in ents}
            finally:
                m.close()
        for e in self.leaves:
            got = vals[e.name]
            assert_matches(got, Ref(e.leaf_value, dtype=e.leaf_value.dtype), f"leaf {e.name} value")
        arrs = list(vals.values())
        for i in range(len(arrs)):
            for j in range(i + 1, len(arrs)):
                if arrs[i].size and np.shares_memory(arrs[i], arrs[j]):
                    raise AssertionError(f"results {i} and {j} share memory\n{self.repro()}")
        return vals

    def check(self, vals: dict) -> int:
        """Checks every op entry against its reference; returns how many were compared."""
        n = 0
        for e in self.entries:
            if e.ref is None:
                continue
            got = vals[e.name]
            if got.dtype != e.node.dtype or got.shape != e.node.shape:
                raise AssertionError(f"{e.name} = {e.code}: value {got.shape} {got.dtype} but node says "
                                     f"{e.node.shape} {e.node.dtype}\n{self.repro()}")
            args = [self.operand_value(o, vals) for o in e.operands]
            try:
                ref = e.ref(*args)
            except (ValueError, IndexError, TypeError, ZeroDivisionError) as ex:
                event(f"no numpy reference: {e.code.split('(')[0]}: {type(ex).__name__}")
                continue
            if e.rewritten:
                ref = self._rewritten_ref(e, args, ref, got)
            m = mismatch(got, ref)
            if m is not None:
                ins = "\n".join(f"  operand {i}: {arr_code(a) if isinstance(a, np.ndarray) else repr(a)}"
                                for i, a in enumerate(args))
                raise AssertionError(f"{e.name} = {e.code}: {m}\n{ins}\n--- repro ---\n{self.repro()}")
            n += 1
        return n

    def _rewritten_ref(self, e: Entry, args: list, ref: Ref, got: np.ndarray) -> Ref:
        """A stabilization rewrite computes ``e`` from an earlier node, more accurately than the
        step's formula applied to its rounded operands: widen the tolerance by how much the
        reference moves when each float operand moves by 4 ulp (the conditioning of the step),
        and accept a finite result where the naive formula over- or underflows to inf/NaN."""
        spread = np.zeros(np.shape(ref.value))
        for i, a in enumerate(args):
            if not (isinstance(a, np.ndarray) and a.dtype.kind == "f"):
                continue
            for sgn in (-1, 1):
                pert = list(args)
                with np.errstate(all="ignore"):
                    step = np.maximum(np.abs(a) * 4 * eps(a.dtype), 4 * float(np.finfo(a.dtype).smallest_subnormal))
                    pert[i] = (a + sgn * step).astype(a.dtype)  # 4 ulp, subnormals included
                    rp = np.asarray(e.ref(*pert).value, np.float64)
                    d = np.abs(rp - np.asarray(ref.value, np.float64))
                spread = np.maximum(spread, np.where(np.isfinite(d), d, 0.0))
        ref.atol = ref.atol + spread * 2
        if got.dtype.kind == "f":
            naive_bad = ~np.isfinite(np.asarray(ref.value, np.float64)) & np.isfinite(got)
            ref.skip = naive_bad if ref.skip is None else (np.asarray(ref.skip) | naive_bad)
        event("stabilization rewrite checked")
        return ref

    def check_fused(self, vals: dict) -> None:
        """Compiles only the last node (so elementwise chains fuse) and compares it with the
        value the whole-graph run gave."""
        last = self.entries[-1]
        if last.leaf_value is not None:
            return
        f = guarded("gr.function(last)", gr.function, [e.node for e in self.leaves], last.node)
        if isinstance(f, Refused):
            return
        got = guarded("calling gr.function(last)", f, *self.leaf_args())
        if isinstance(got, Refused):
            return
        want = vals[last.name]
        d = want.dtype
        if d.kind != "f":
            ref = Ref(want, dtype=d)
        else:
            scale = max([float(np.max(np.abs(np.where(np.isfinite(v), v, 0)), initial=0)) for v in vals.values()
                         if v.dtype.kind == "f"] + [1.0])
            ref = Ref(want, rtol=64 * eps(d), atol=64 * eps(d) * scale, dtype=d)
            if any(e.discontinuous for e in self.entries if e.ref is not None):
                ref.skip = np.ones(want.shape, bool)  # a rounding difference may flip a step
        m = mismatch(got, ref)
        if m is not None:
            raise AssertionError(f"fused program (only {last.name} compiled) differs from the whole-graph "
                                 f"run: {m}\n--- repro ---\n{self.repro()}")


def where_ref(c: Any, a: Any, b: Any, d: np.dtype) -> Ref:
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # operands in the result dtype (Python scalars adopt the other operand's dtype)
        val = np.where(np.asarray(c) != 0, np.asarray(a).astype(d), np.asarray(b).astype(d))
    return Ref(np.asarray(val).astype(d), dtype=d)


def _generic_ref(fn: Callable, u: np.ndarray, v: np.ndarray) -> Ref:
    d = u.dtype
    with np.errstate(all="ignore"):
        if d.kind in "iu":
            return Ref(np.asarray(fn(u.astype(np.int64), v.astype(np.int64))).astype(d), dtype=d)
        val = np.asarray(fn(u.astype(np.float64), v.astype(np.float64)))
        fu = np.where(np.isfinite(u), np.abs(u.astype(np.float64)), 0)
        fv = np.where(np.isfinite(v), np.abs(v.astype(np.float64)), 0)
        bound = np.asarray(fn(fu, fv))
        k = max(1, u.size)
        skip = (bound > float(np.finfo(d).max) / 2) if d.kind == "f" else None
        nonfin = np.asarray(fn(np.where(np.isfinite(u), 0.0, 1.0), np.ones_like(fv))) + \
            np.asarray(fn(np.ones_like(fu), np.where(np.isfinite(v), 0.0, 1.0)))
        if d.kind == "f":
            skip = skip | (nonfin > 0)
            return Ref(val.astype(d), rtol=2 * eps(d), atol=bound * eps(d) * (k + 2) * 2 + _tiny(d), skip=skip, dtype=d)
        return Ref(val.astype(d), dtype=d)


def _numpy_refuses(fn: Callable, *args: Any) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fn(*args)
        return False
    except (ValueError, IndexError, TypeError, np.exceptions.AxisError):
        return True


def _key_code(key: Any) -> str:
    def one(k: Any) -> str:
        if isinstance(k, slice):
            s = f"{'' if k.start is None else k.start}:{'' if k.stop is None else k.stop}"
            return s + (f":{k.step}" if k.step is not None else "")
        if k is Ellipsis:
            return "..."
        return repr(k)

    if isinstance(key, tuple):
        return ", ".join(one(k) for k in key) + ("," if len(key) == 1 else "") if key else "()"
    return one(key)
