"""The acceptable outcomes of a fuzz case (re-exported by ``_fuzzlib``): :func:`guarded` runs a
call and lets through only the exceptions the reliability contract allows, and the signatures of
known bugs (counted in ``KNOWN_BUG_HITS``). Must not import pytest (``_fuzzlib`` is imported by the conftest).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from hypothesis import event

import gorgon_rs as gr

from _fuzz_budget import KNOWN_BUG_HITS

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
