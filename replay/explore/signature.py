"""A failure's signature: what identifies one bug across runs, seeds and processes.

A campaign groups failing seeds by signature, and a corpus keeps one trace
per signature. The message text cannot be the key: it carries values that
differ from run to run (a set's order, a counter, an address). The
signature is the exception's type and where it was raised
(:func:`~replay.failures.raise_site`, the innermost frame of its traceback),
the identity :func:`~replay.failures.same_failure` compares failures by.
"""

from __future__ import annotations

from ..failures import raise_site

__all__ = ["failure_signature"]


def failure_signature(exc: BaseException) -> str:
    """``"Type at file.py:LINE"``: the exception's type and the line that raised it."""
    site = raise_site(exc)
    name = type(exc).__qualname__
    return name if site is None else f"{name} at {site}"
