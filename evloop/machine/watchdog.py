"""The wall-clock watchdog: a thread of control that never gives the turn back is named.

Under the greenlet backend every thread of control runs on one OS thread, so
one that blocks in a real call (``time.sleep``, a socket read, a lock of
the host) or spins without ever waiting stops the whole simulation, and
nothing inside it can notice. The watchdog notices from outside, with a
real-time interval timer (``setitimer``): every quarter of its timeout the
``SIGALRM`` handler reads the simulation's sign of life (steps, turns handed
over and virtual time, added up: each only ever grows). When the sign has
not moved for a whole timeout, the handler raises :class:`WatchdogError`
right there, in the stuck thread, naming it and its innermost frame. A
signal interrupts a blocking system call (EINTR), and Python then runs the
handler, so a real blocking call is stopped as well as a spin.

This is the one place evloop reads wall time, and it decides nothing about
the simulation's order: it only ever ends a run that could not go on.

Limits: signal handlers run on the interpreter's main thread, so the watchdog
arms itself only when the simulation runs there, and only when nothing else
has claimed ``SIGALRM`` (pytest-timeout's signal method, say); otherwise it
stays off. Nested waits of the main thread arm it once (it is re-entrant).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

from ..errors import WatchdogError

if TYPE_CHECKING:
    from .scheduler import Scheduler

__all__ = ["DEFAULT_TIMEOUT_S", "Watchdog"]

#: The default timeout of ``Simulation(watchdog=...)``, in seconds of wall time.
DEFAULT_TIMEOUT_S = 5.0
#: Timer ticks per timeout: a stuck thread is named within 1.25 timeouts.
_TICKS = 4


class Watchdog:
    """Arms a ``SIGALRM`` interval timer while used as a context manager (re-entrant)."""

    __slots__ = ("_last", "_progress", "_quiet", "_saved", "_sched", "armed", "timeout")

    def __init__(self, sched: Scheduler, progress: Callable[[], int], timeout: float) -> None:
        self._sched = sched
        self._progress = progress
        #: Seconds of wall time a thread of control may hold the turn without waiting.
        self.timeout = timeout
        self.armed = False
        self._saved: Any = None
        self._last = 0
        self._quiet = 0

    def __enter__(self) -> Watchdog:
        if self.armed or threading.current_thread() is not threading.main_thread():
            return self
        previous = signal.getsignal(signal.SIGALRM)
        if previous not in (signal.SIG_DFL, signal.SIG_IGN, None):
            return self  # SIGALRM is someone else's
        self._saved = previous
        self._last = self._progress()
        self._quiet = 0
        signal.signal(signal.SIGALRM, self._tick)
        interval = self.timeout / _TICKS
        signal.setitimer(signal.ITIMER_REAL, interval, interval)
        self.armed = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.armed:
            self.armed = False
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._saved)

    def _tick(self, signum: int, frame: FrameType | None) -> None:
        progress = self._progress()
        if progress != self._last:
            self._last = progress
            self._quiet = 0
            return
        self._quiet += 1
        if self._quiet < _TICKS:
            return
        # Stuck: raise here, in the thread holding the turn (and again after
        # another whole timeout, should it swallow the error and stay stuck).
        self._quiet = 0
        name = self._sched.current.name
        site = _site(frame)
        raise WatchdogError(
            f"watchdog: thread of control {name!r} held the turn for {self.timeout:g} s of wall "
            f"time without waiting, at {site}: under the greenlet backend a thread of control "
            "must not block in a real call or spin; wait in virtual time (sim.sleep, "
            "SimEvent.wait, the virtual fds), or build the simulation with threads='os'",
            thread=name,
            site=site,
        )

    def __repr__(self) -> str:
        return f"<Watchdog {self.timeout:g} s {'armed' if self.armed else 'off'}>"


def _site(frame: FrameType | None) -> str:
    """``file:line in function()`` of ``frame``."""
    if frame is None:
        return "an unknown place"
    from .sanitizer import _site as file_line  # only when a run is stopped

    return f"{file_line(frame)} in {frame.f_code.co_name}()"
