"""NumPy references of the ops for the fuzz suite (re-exported by ``_fuzzlib``): each takes
gorgon's own values of a step's operands and gives a :class:`Ref` with the tolerance the op
deserves; also the op lists the fuzz tests draw from. Must not import pytest (``_fuzzlib`` is imported by the conftest).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable

import numpy as np

from _fuzz_values import Ref, eps

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
