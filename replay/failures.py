"""How a failing run's exception is described, and when two descriptions name one failure.

A recording logs the exception that ended a failing run in its SHUTDOWN
record (:func:`describe_exception`); a play, a rerun and the explorers
compare failures by type and raise site (:func:`same_failure`), never by
message, which may hold run-dependent text.
"""

from __future__ import annotations

import re

__all__ = ["describe_exception", "failure_identity", "raise_site", "same_failure"]

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")
#: ``exception: Type[ at file.py:LINE]: message`` (a trace records no site).
_FAILURE = re.compile(r"exception: (?P<type>[^\s:]+)(?: at (?P<site>[^\s:]+:[0-9]+))?: ")


def raise_site(exc: BaseException) -> str | None:
    """Where ``exc`` was raised: ``file.py:LINE`` of the innermost frame of its traceback."""
    tb = exc.__traceback__
    if tb is None:
        return None
    while tb.tb_next is not None:
        tb = tb.tb_next
    name = tb.tb_frame.f_code.co_filename.replace("\\", "/").rpartition("/")[2]
    if not name or any(c.isspace() or c == ":" for c in name):
        return None
    return f"{name}:{tb.tb_lineno}"


def describe_exception(exc: BaseException, *, site: bool = False) -> str:
    """A run-independent description of an exception (addresses masked).

    ``exception: Type at file.py:LINE: message``; the type and the site
    identify the failure (:func:`same_failure`), the message is only text.
    ``site=True`` adds the site; traces record it without (format versions 1 and 2).
    """
    text = _ADDRESS.sub("0x…", str(exc))
    where = raise_site(exc) if site else None
    at = "" if where is None else f" at {where}"
    return f"exception: {type(exc).__qualname__}{at}: {text}"[:2000]


def failure_identity(cause: str) -> tuple[str, str | None] | None:
    """``(type, site)`` of a failure described by :func:`describe_exception`, else None."""
    match = _FAILURE.match(cause)
    return None if match is None else (match["type"], match["site"])


def same_failure(a: str, b: str) -> bool:
    """Whether two failure descriptions name the same failure.

    A failure is identified by its exception type and where it was raised,
    never by its message, which may hold run-dependent text (the order of a
    set, an address). A description without a site (as traces hold it)
    matches on the type alone. Anything else compares as text.
    """
    ida, idb = failure_identity(a), failure_identity(b)
    if ida is None or idb is None:
        return a == b
    if ida[0] != idb[0]:
        return False
    return ida[1] is None or idb[1] is None or ida[1] == idb[1]
