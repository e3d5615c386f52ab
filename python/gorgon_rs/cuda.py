"""GPU queries: ``gr.cuda`` (API.md "GPU").

Availability is probed by the native extension at run time (no CUDA library is needed to
import gorgon_rs). Asking a machine for ``device="cuda"`` when no device can be used raises
``gr.DeviceError`` with :func:`unavailable_reason`. This module only reports; it holds no state.

Example:
    >>> import gorgon_rs as gr
    >>> gr.cuda.is_available() in (True, False)
    True
"""

from __future__ import annotations

from typing import Optional

from . import _native

__all__ = ["is_available", "device_count", "unavailable_reason", "memory_info"]


def is_available() -> bool:
    """True when at least one CUDA device can be used.

    Example:
        >>> isinstance(gr.cuda.is_available(), bool)
        True
    """
    return bool(_native.cuda_is_available())


def device_count() -> int:
    """Number of usable CUDA devices (0 without a driver or device).

    Example:
        >>> gr.cuda.device_count() >= 0
        True
    """
    return int(_native.cuda_device_count())


def unavailable_reason() -> Optional[str]:
    """Why CUDA cannot be used (None when it can), e.g. "built without CUDA support".

    Example:
        >>> r = gr.cuda.unavailable_reason()
    """
    return _native.cuda_unavailable_reason()


def memory_info(device: int = 0) -> tuple[int, int]:
    """``(free, total)`` bytes of memory on CUDA device ``device`` as the driver reports it
    (cuMemGetInfo). Raises :class:`~gorgon_rs.DeviceError` when CUDA cannot be used.

    Example:
        >>> if gr.cuda.is_available():
        ...     free, total = gr.cuda.memory_info()
    """
    free, total = _native.cuda_memory_info(int(device))
    return int(free), int(total)
