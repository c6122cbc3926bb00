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

Signal handlers run only on the interpreter's main thread, and the watchdog
leaves ``SIGALRM`` alone when something else has claimed it (pytest-timeout's
signal method, say). A simulation run elsewhere, or then, is watched by an
OS thread instead, which reads the same sign of life and, when it stalls, raises the
error in the simulation's OS thread asynchronously
(``PyThreadState_SetAsyncExc``): a spin is stopped at once; a real blocking
call cannot be interrupted from outside, so the error is raised when the
call returns, and meanwhile the watchdog says on stderr which thread is
stuck and where, so that even that hang is not silent. Nested waits of the
main thread arm it once (it is re-entrant).
"""

from __future__ import annotations

import ctypes
import signal
import sys
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

    __slots__ = (
        "_last",
        "_progress",
        "_quiet",
        "_saved",
        "_sched",
        "_stop",
        "_watcher",
        "armed",
        "timeout",
    )

    def __init__(self, sched: Scheduler, progress: Callable[[], int], timeout: float) -> None:
        self._sched = sched
        self._progress = progress
        #: Seconds of wall time a thread of control may hold the turn without waiting.
        self.timeout = timeout
        self.armed = False
        self._saved: Any = None
        self._last = 0
        self._quiet = 0
        self._stop: threading.Event | None = None
        self._watcher: threading.Thread | None = None

    def __enter__(self) -> Watchdog:
        if self.armed:
            return self
        if threading.current_thread() is not threading.main_thread():
            self._watch_from_a_thread()
            return self
        previous = signal.getsignal(signal.SIGALRM)
        outer = isinstance(getattr(previous, "__self__", None), Watchdog)
        if previous not in (signal.SIG_DFL, signal.SIG_IGN, None) and not outer:
            self._watch_from_a_thread()  # SIGALRM is someone else's
            return self
        # An outer simulation's watchdog (a run inside its callback) pauses
        # while this one watches, and gets its handler and timer back after.
        self._last = self._progress()
        self._quiet = 0
        signal.signal(signal.SIGALRM, self._tick)
        interval = self.timeout / _TICKS
        self._saved = (previous, signal.setitimer(signal.ITIMER_REAL, interval, interval))
        self.armed = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.armed:
            return
        self.armed = False
        watcher = self._watcher
        if watcher is not None:
            assert self._stop is not None
            self._stop.set()
            watcher.join()
            self._watcher = self._stop = None
            return
        handler, (delay, interval) = self._saved
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, handler)
        if delay or interval:
            signal.setitimer(signal.ITIMER_REAL, delay or interval, interval)

    def _stalled(self) -> bool:
        """Called every tick: has the sign of life stood still for a whole timeout?"""
        progress = self._progress()
        if progress != self._last:
            self._last = progress
            self._quiet = 0
            return False
        self._quiet += 1
        if self._quiet < _TICKS:
            return False
        self._quiet = 0  # again after another whole timeout, if it stays stuck
        return True

    def _error(self, frame: FrameType | None) -> WatchdogError:
        name = self._sched.current.name
        site = _site(frame)
        return WatchdogError(
            f"watchdog: thread of control {name!r} held the turn for {self.timeout:g} s of wall "
            f"time without waiting, at {site}: under the greenlet backend a thread of control "
            "must not block in a real call or spin; wait in virtual time (sim.sleep, "
            "SimEvent.wait, the virtual fds), or build the simulation with threads='os'",
            thread=name,
            site=site,
        )

    def _tick(self, signum: int, frame: FrameType | None) -> None:
        if self._stalled():
            # Raised here, in the thread holding the turn, from where it is stuck.
            raise self._error(frame)

    def __repr__(self) -> str:
        return f"<Watchdog {self.timeout:g} s {'armed' if self.armed else 'off'}>"

    # -- off the main thread -------------------------------------------------------------

    def _watch_from_a_thread(self) -> None:
        self._last = self._progress()
        self._quiet = 0
        self._stop = stop = threading.Event()
        watcher = threading.Thread(
            target=self._watch,
            args=(threading.get_ident(), stop),
            name="evloop:watchdog",
            daemon=True,
        )
        self._watcher = watcher
        watcher.start()
        self.armed = True

    def _watch(self, ident: int, stop: threading.Event) -> None:
        interval = self.timeout / _TICKS
        told = 0  # 1: the error is raised (pending); 2: and said on stderr
        while not stop.wait(interval):
            before = self._last
            if not self._stalled():
                if self._last != before:  # it moved: a later stall is news again
                    told = 0
                continue
            error = self._error(sys._current_frames().get(ident))
            if told == 0:
                told = 1
                _raise_in(ident, error)
            elif told == 1:
                # Still stuck a timeout later: blocked in a real call, which
                # nothing can interrupt from outside. Say so instead of hanging.
                told = 2
                print(
                    f"{error} (blocked in a real call; raised when it returns)",
                    file=sys.stderr,
                    flush=True,
                )


def _raise_in(ident: int, error: WatchdogError) -> None:
    """Raise ``error`` in the OS thread ``ident`` at its next bytecode."""
    # The C API takes an exception class and instantiates it with no
    # arguments: this one-off class rebuilds ``error`` when it is raised.
    message, thread, site = str(error), error.thread, error.site

    def init(self: WatchdogError) -> None:
        WatchdogError.__init__(self, message, thread=thread, site=site)

    cls = type("WatchdogError", (WatchdogError,), {"__init__": init, "__module__": "evloop"})
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(cls))


def _site(frame: FrameType | None) -> str:
    """``file:line in function()`` of ``frame``."""
    if frame is None:
        return "an unknown place"
    from .sanitizer import _site as file_line  # only when a run is stopped

    return f"{file_line(frame)} in {frame.f_code.co_name}()"
