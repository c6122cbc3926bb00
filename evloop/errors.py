"""Every exception the event loop raises on its own account.

One root, :class:`EvloopError`, so that a caller can tell the loop's complaints
from the exceptions of their own callbacks, which always propagate unchanged
(a callback that raises stops ``poll`` with that very exception).

POSIX failures of the virtual fd layer are not here: they are the builtin
``OSError`` family with the errno a Linux kernel would give (``BlockingIOError``
for EAGAIN, ``BrokenPipeError`` for EPIPE, ``OSError(EBADF)``), so code written
against real fds handles them unchanged.
"""

from __future__ import annotations

__all__ = [
    "DeadlockError",
    "EvloopError",
    "EvloopInternalError",
    "FencedError",
    "NondeterminismError",
    "SimulationError",
    "WatchdogError",
]


class EvloopError(Exception):
    """Root of the errors raised by the event loop itself."""


class DeadlockError(EvloopError):
    """A blocking wait could never return.

    Raised instead of hanging: nothing is ready, no deadline is pending and no
    other thread of control can run. ``blocked`` names each blocked thread of
    control and what it waits for, in a stable order.
    """

    def __init__(self, message: str, blocked: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.blocked = blocked


class SimulationError(EvloopError):
    """The simulation was used in a way its rules forbid (say what to fix)."""


class EvloopInternalError(EvloopError):
    """A bug in evloop itself, never the user's: please report it."""


class NondeterminismError(EvloopError):
    """A call would leak real nondeterminism into a running simulation.

    Raised by the sanitizer (``Simulation(sanitize="strict")``, or any mode for
    an unregistered thread) from the offending call itself. ``call`` names the
    function (``"time.time"``), ``site`` where it was called (``file:line``);
    the message also says what to use instead.
    """

    def __init__(self, message: str, call: str = "", site: str = "") -> None:
        super().__init__(message)
        self.call = call
        self.site = site


class WatchdogError(SimulationError):
    """A thread of control held the turn too long in wall time without ever waiting.

    Raised by the watchdog (``Simulation(watchdog=seconds)``, greenlet backend)
    in the thread that is stuck, from where it is stuck: a spin that never
    waits, or a real blocking call. ``thread`` names the thread of control,
    ``site`` where it was (``file:line in function``).
    """

    def __init__(self, message: str, thread: str = "", site: str = "") -> None:
        super().__init__(message)
        self.thread = thread
        self.site = site


class FencedError(EvloopError, NotImplementedError):
    """Something a simulation cannot run deterministically, refused up front.

    A subprocess, a signal handler or a process pool would run outside
    virtual time and the turn lock; instead of hanging or leaking, the call
    raises this (a ``NotImplementedError``, as asyncio's own "not supported
    on this platform" answers are) with one line naming the fence.
    """
