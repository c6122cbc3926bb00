"""Telling a real Ctrl-C from a ``KeyboardInterrupt`` the program raises.

Inside a run, ``SystemExit`` and ``KeyboardInterrupt`` are the program's own
doing when its code raises them (``sys.exit(0)`` in a callback, a thread of
control or an asyncio task): that is a failure of the run, recorded with its
step like any other exception, and replayed to the same failure. A SIGINT
delivered to the process is the user stopping the tool: the run is not over,
nothing about it may be recorded as its outcome, and the trace is kept as a
cut trace (its whole chunks).

Python turns both into the same exception, so the record/play driver watches
for the signal itself: while a :class:`InterruptWatch` is entered on the main
thread, a SIGINT is noted before the handler it replaces runs (Python's
default handler raises ``KeyboardInterrupt`` as before; a handler the caller
installed still runs). :func:`run_failure` then classifies what ended a run.

A watch changes nothing when it cannot see the signal: off the main thread
(``signal.signal`` works only there), or when SIGINT is ignored or left to
the OS (``SIG_IGN``, ``SIG_DFL``); a ``KeyboardInterrupt`` is then the
program's, as there is no other source of one.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any

__all__ = ["InterruptWatch", "run_failure"]


class InterruptWatch:
    """While entered: notes every SIGINT the process receives in :attr:`delivered`."""

    __slots__ = ("_previous", "delivered")

    def __init__(self) -> None:
        #: A SIGINT arrived while the watch was entered.
        self.delivered = False
        self._previous: Any = None

    def __enter__(self) -> InterruptWatch:
        if threading.current_thread() is not threading.main_thread():
            return self
        previous = signal.getsignal(signal.SIGINT)
        if callable(previous):
            self._previous = previous
            signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        previous, self._previous = self._previous, None
        if previous is not None:
            signal.signal(signal.SIGINT, previous)

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        self.delivered = True
        previous = self._previous
        if previous is not None:
            previous(signum, frame)
        else:  # the watch ended while the signal was on its way
            raise KeyboardInterrupt


def run_failure(exc: BaseException, watch: InterruptWatch) -> bool:
    """Whether ``exc``, which ended a run, is the run's failure (the program's own).

    Every ``Exception`` is; so are ``SystemExit`` and ``KeyboardInterrupt``,
    unless a real SIGINT arrived during the run (the user stopped the tool).
    Anything else (``GeneratorExit``, a greenlet's exit) is the machinery's.
    """
    if isinstance(exc, Exception):
        return True
    return isinstance(exc, SystemExit | KeyboardInterrupt) and not watch.delivered
