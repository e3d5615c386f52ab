"""Weight initializers: ``gr.init``.

This module owns the initializer factories of API.md "Initializers" and the NumPy random
generator they draw from. It must not import the native extension or the graph front at import
time (the front imports it), and it never touches nodes: an initializer is a plain callable
``(shape: tuple, dtype) -> numpy.ndarray`` that ``g.matrix(..., init=...)`` calls once.

Randomness comes from one module-level :class:`numpy.random.Generator`. ``gr.seed(n)`` resets it
(through :func:`_reseed`) together with the native generator used by dropout masks, so a program
that seeds first builds the same weights every time. Values are drawn in float64 and then cast,
so one seed gives the same numbers (up to rounding) in float32 and float64.

Fans (how many inputs/outputs a weight connects):

* 0-d: ``fan_in = fan_out = 1``; 1-D ``(n,)``: ``fan_in = fan_out = n``;
* 2-D ``(in, out)`` (the layout of :func:`gorgon_rs.nn.linear`): ``fan_in = shape[0]``,
  ``fan_out = shape[1]``;
* 3-D and more, an ``(O, I, kH, kW, ...)`` filter: ``fan_in = I·kH·kW…``, ``fan_out = O·kH·kW…``.

Glorot std = gain·√(2/(fan_in+fan_out)); He std = gain·√(2/fan_in); a uniform initializer
with std σ draws from U(−√3·σ, √3·σ).

Example:
    >>> import gorgon_rs as gr
    >>> gr.seed(0)
    >>> g = gr.Graph()
    >>> W = g.matrix(gr.float32, (64, 10), name="W", init=gr.init.glorot_uniform())
    >>> gr.init.he_normal()((3, 2), "float64").shape
    (3, 2)
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import numpy.typing as npt

__all__ = [
    "Initializer",
    "zeros",
    "ones",
    "constant",
    "uniform",
    "gaussian",
    "normal",
    "glorot_uniform",
    "glorot_normal",
    "xavier_uniform",
    "xavier_normal",
    "he_uniform",
    "he_normal",
    "fans",
    "seed",
    "rng",
]

_rng: np.random.Generator = np.random.default_rng()


def _reseed(n: Optional[int]) -> None:
    """Replace the module generator by ``numpy.random.default_rng(n)`` (called by ``gr.seed``).

    Example:
        >>> from gorgon_rs import init
        >>> init._reseed(3); a = init.uniform(0, 1)((2,), "float64")
        >>> init._reseed(3); b = init.uniform(0, 1)((2,), "float64")
        >>> bool((a == b).all())
        True
    """
    global _rng
    if n is not None and (isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0):
        raise ValueError(f"seed must be a non-negative int, got {n!r}")
    _rng = np.random.default_rng(None if n is None else int(n))


def seed(n: Optional[int]) -> None:
    """Seed the initializers' generator only (``gr.seed`` also seeds dropout masks).

    Example:
        >>> import gorgon_rs as gr
        >>> gr.init.seed(0)
        >>> w = gr.init.gaussian()((2, 2), "float32")
    """
    _reseed(n)


def rng() -> np.random.Generator:
    """The :class:`numpy.random.Generator` every initializer draws from.

    Example:
        >>> from gorgon_rs import init
        >>> x = init.rng().standard_normal(3)
    """
    return _rng


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def _np_dtype(dtype: Any) -> np.dtype[Any]:
    """A NumPy dtype from a NumPy dtype, a type, a name, or a gorgon_rs dtype object."""
    d: np.dtype[Any]
    if dtype is None:
        return np.dtype(np.float32)
    try:
        d = np.dtype(dtype)
        return d
    except TypeError:
        pass
    for attr in ("numpy", "np_dtype", "name"):
        v = getattr(dtype, attr, None)
        if v is not None:
            try:
                d = np.dtype(v)
                return d
            except TypeError:
                continue
    return np.dtype(str(dtype))


def _shape(shape: Any) -> tuple[int, ...]:
    if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
        shape = (int(shape),)
    try:
        dims = tuple(shape)
    except TypeError:
        raise ValueError(f"shape must be a tuple of non-negative ints, got {shape!r}") from None
    out = []
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 0:
            raise ValueError(f"shape must be a tuple of non-negative ints, got {shape!r}")
        out.append(int(d))
    return tuple(out)


def _dtype_error(msg: str) -> Exception:
    try:
        from .errors import DTypeError  # the front's class when it exists

        return DTypeError(msg)
    except Exception:  # pragma: no cover - only without the front
        return TypeError(msg)


def _require_float(name: str, dt: np.dtype) -> None:
    if dt.kind != "f":
        raise _dtype_error(
            f"init.{name}: a random initializer needs a float dtype (float32 or float64), got {dt.name}"
        )


def fans(shape: Sequence[int]) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight of this shape (see the module docstring).

    Example:
        >>> from gorgon_rs.init import fans
        >>> fans((784, 128)), fans((16, 3, 5, 5)), fans((7,)), fans(())
        ((784, 128), (75, 400), (7, 7), (1, 1))
    """
    s = _shape(shape)
    if len(s) == 0:
        return 1, 1
    if len(s) == 1:
        return s[0], s[0]
    if len(s) == 2:
        return s[0], s[1]
    receptive = math.prod(s[2:])
    return s[1] * receptive, s[0] * receptive


class Initializer:
    """A callable ``(shape, dtype) -> numpy.ndarray`` with a readable ``repr``.

    Every factory of this module returns one; any plain function with that signature works
    as ``init=`` too.

    Example:
        >>> from gorgon_rs import init
        >>> f = init.constant(0.5)
        >>> f((2,), "float32")
        array([0.5, 0.5], dtype=float32)
        >>> f
        constant(0.5)
    """

    __slots__ = ("_fn", "_desc")

    def __init__(self, fn: Callable[[tuple[int, ...], np.dtype], np.ndarray], desc: str) -> None:
        self._fn = fn
        self._desc = desc

    def __call__(self, shape: Union[int, Sequence[int]], dtype: npt.DTypeLike = "float32") -> npt.NDArray[Any]:
        s = _shape(shape)
        dt = _np_dtype(dtype)
        out = self._fn(s, dt)
        return np.array(out, dtype=dt, order="C").reshape(s)

    def __repr__(self) -> str:
        return self._desc


# ---------------------------------------------------------------------------------------------
# factories
# ---------------------------------------------------------------------------------------------


def zeros() -> Initializer:
    """All zeros.

    Example:
        >>> import gorgon_rs as gr
        >>> gr.init.zeros()((2, 3), "float32").sum()
        np.float32(0.0)
    """
    return Initializer(lambda s, dt: np.zeros(s, dtype=dt), "zeros()")


def ones() -> Initializer:
    """All ones.

    Example:
        >>> import gorgon_rs as gr
        >>> gr.init.ones()((3,), "float64")
        array([1., 1., 1.])
    """
    return Initializer(lambda s, dt: np.ones(s, dtype=dt), "ones()")


def constant(v: float) -> Initializer:
    """Every element equals ``v`` (cast to the node's dtype).

    Example:
        >>> import gorgon_rs as gr
        >>> gr.init.constant(0.1)((2,), "float32")
        array([0.1, 0.1], dtype=float32)
    """
    if not isinstance(v, (numbers.Number, np.generic)):
        raise TypeError(f"init.constant: v must be a number, got {type(v).__name__}")
    return Initializer(lambda s, dt: np.full(s, v, dtype=dt), f"constant({v!r})")


def uniform(low: float = 0.0, high: float = 1.0) -> Initializer:
    """Independent draws from U(low, high).

    Example:
        >>> import gorgon_rs as gr
        >>> w = gr.init.uniform(-0.1, 0.1)((100,), "float32")
        >>> bool((abs(w) <= 0.1).all())
        True
    """
    low, high = float(low), float(high)
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ValueError(f"init.uniform: need finite low <= high, got low={low}, high={high}")

    def draw(s: tuple[int, ...], dt: np.dtype) -> np.ndarray:
        _require_float("uniform", dt)
        return _rng.uniform(low, high, size=s)

    return Initializer(draw, f"uniform({low!r}, {high!r})")


def gaussian(mean: float = 0.0, std: float = 1.0) -> Initializer:
    """Independent draws from N(mean, std²).

    Example:
        >>> import gorgon_rs as gr
        >>> w = gr.init.gaussian(0.0, 0.02)((256, 256), "float32")
        >>> round(float(w.std()), 2)
        0.02
    """
    mean, std = float(mean), float(std)
    if not (math.isfinite(mean) and math.isfinite(std)) or std < 0:
        raise ValueError(f"init.gaussian: need finite mean and std >= 0, got mean={mean}, std={std}")

    def draw(s: tuple[int, ...], dt: np.dtype) -> np.ndarray:
        _require_float("gaussian", dt)
        return _rng.normal(mean, std, size=s)

    return Initializer(draw, f"gaussian({mean!r}, {std!r})")


normal = gaussian


def _check_gain(name: str, gain: float) -> float:
    gain = float(gain)
    if not math.isfinite(gain) or gain < 0:
        raise ValueError(f"init.{name}: gain must be finite and >= 0, got {gain}")
    return gain


def _scaled(name: str, gain: float, std_of: Callable[[int, int], float], kind: str) -> Initializer:
    gain = _check_gain(name, gain)

    def draw(s: tuple[int, ...], dt: np.dtype) -> np.ndarray:
        _require_float(name, dt)
        fan_in, fan_out = fans(s)
        std = gain * std_of(fan_in, fan_out)
        if kind == "uniform":
            bound = math.sqrt(3.0) * std
            return _rng.uniform(-bound, bound, size=s)
        return _rng.normal(0.0, std, size=s)

    return Initializer(draw, f"{name}(gain={gain!r})")


def _glorot_std(fan_in: int, fan_out: int) -> float:
    return math.sqrt(2.0 / max(fan_in + fan_out, 1))


def _he_std(fan_in: int, fan_out: int) -> float:
    return math.sqrt(2.0 / max(fan_in, 1))


def glorot_uniform(gain: float = 1.0) -> Initializer:
    """Glorot/Xavier uniform: U(−a, a) with a = gain·√3·√(2/(fan_in+fan_out)).

    Example:
        >>> import gorgon_rs as gr
        >>> w = gr.init.glorot_uniform()((784, 128), "float32")
        >>> bool(abs(w).max() <= (6 / (784 + 128)) ** 0.5)
        True
    """
    return _scaled("glorot_uniform", gain, _glorot_std, "uniform")


def glorot_normal(gain: float = 1.0) -> Initializer:
    """Glorot/Xavier normal: N(0, σ²) with σ = gain·√(2/(fan_in+fan_out)).

    Example:
        >>> import gorgon_rs as gr
        >>> w = gr.init.glorot_normal()((400, 400), "float64")
        >>> round(float(w.std()), 2)
        0.05
    """
    return _scaled("glorot_normal", gain, _glorot_std, "normal")


def he_uniform(gain: float = 1.0) -> Initializer:
    """He/Kaiming uniform: U(−a, a) with a = gain·√3·√(2/fan_in).

    Example:
        >>> import gorgon_rs as gr
        >>> w = gr.init.he_uniform()((16, 3, 3, 3), "float32")   # fan_in = 27
        >>> bool(abs(w).max() <= (6 / 27) ** 0.5)
        True
    """
    return _scaled("he_uniform", gain, _he_std, "uniform")


def he_normal(gain: float = 1.0) -> Initializer:
    """He/Kaiming normal: N(0, σ²) with σ = gain·√(2/fan_in).

    Example:
        >>> import gorgon_rs as gr
        >>> w = gr.init.he_normal()((800, 100), "float64")
        >>> round(float(w.std()), 2)
        0.05
    """
    return _scaled("he_normal", gain, _he_std, "normal")


xavier_uniform = glorot_uniform
xavier_normal = glorot_normal
