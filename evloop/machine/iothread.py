"""IOThreads: a thread of control running its own AioContext (QEMU ``iothread.c``).

The loop is ``while running: ctx.poll(True)``. :meth:`IOThread.stop` asks it
to stop the way ``iothread_stop`` does, with a oneshot bottom half on the
IOThread's own context, so the request is ordered with everything else
scheduled there; :meth:`IOThread.join` then waits for the thread to end.

An IOThread polls by default, as QEMU's do on POSIX hosts: its context's
adaptive polling starts with ``poll_max_ns`` =
:data:`IOTHREAD_POLL_MAX_NS_DEFAULT` (32768 ns) and ``poll_grow`` =
``poll_shrink`` = 0 (double, and drop to 0), set on the context when the
IOThread is made (``iothread_instance_init``, ``iothread_set_aio_context_params``).
Each of the three is a property that, set, applies all three to the context
at once, as the ``poll-max-ns``, ``poll-grow`` and ``poll-shrink`` QOM
properties do (``iothread_set_poll_param``); a negative value is refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..loop.aio import AioContext

if TYPE_CHECKING:
    from .scheduler import ThreadOfControl

__all__ = ["IOTHREAD_POLL_MAX_NS_DEFAULT", "IOThread"]

#: An IOThread's polling limit unless told otherwise (``iothread.c``: "max
#: polling times around 16-32 microseconds yield IOPS improvements").
IOTHREAD_POLL_MAX_NS_DEFAULT = 32768

_INT64_MAX = 2**63 - 1


class IOThread:
    """Create it with :meth:`Simulation.iothread`."""

    def __init__(
        self,
        name: str,
        ctx: AioContext,
        *,
        poll_max_ns: int = IOTHREAD_POLL_MAX_NS_DEFAULT,
        poll_grow: int = 0,
        poll_shrink: int = 0,
    ) -> None:
        self.name = name
        self.ctx = ctx
        self.running = True
        self.thread: ThreadOfControl | None = None
        self._poll = check_poll_params(poll_max_ns, poll_grow, poll_shrink)
        self._apply_poll_params()

    # -- adaptive polling parameters (the poll-max-ns, poll-grow, poll-shrink properties) --

    @property
    def poll_max_ns(self) -> int:
        """The longest polling window in ns; 0 turns adaptive polling off."""
        return self._poll["poll-max-ns"]

    @poll_max_ns.setter
    def poll_max_ns(self, value: int) -> None:
        self._set_poll_param("poll-max-ns", value)

    @property
    def poll_grow(self) -> int:
        """The factor a window grows by (0: double it)."""
        return self._poll["poll-grow"]

    @poll_grow.setter
    def poll_grow(self, value: int) -> None:
        self._set_poll_param("poll-grow", value)

    @property
    def poll_shrink(self) -> int:
        """The factor a window shrinks by (0: drop it to 0)."""
        return self._poll["poll-shrink"]

    @poll_shrink.setter
    def poll_shrink(self, value: int) -> None:
        self._set_poll_param("poll-shrink", value)

    def _set_poll_param(self, name: str, value: int) -> None:
        self._poll[name] = _checked(name, value)
        self._apply_poll_params()

    def _apply_poll_params(self) -> None:
        p = self._poll
        self.ctx.set_poll_params(p["poll-max-ns"], p["poll-grow"], p["poll-shrink"])

    @property
    def aio_max_batch(self) -> int:
        """The context's ``aio_max_batch`` (the ``aio-max-batch`` property; 0 by default)."""
        return self.ctx.aio_max_batch

    @aio_max_batch.setter
    def aio_max_batch(self, value: int) -> None:
        self.ctx.set_aio_params(value)

    # -- the thread ------------------------------------------------------------------

    def run(self) -> None:
        """The thread's body (``iothread_run``)."""
        while self.running:
            self.ctx.poll(True)

    def stop(self) -> None:
        """Ask the loop to stop after its current iteration, from any thread of control."""
        self.ctx.bh_schedule_oneshot(self._stop_bh, name=f"{self.name}:stop")

    def _stop_bh(self) -> None:
        self.running = False

    def join(self, timeout_ns: int = -1) -> bool:
        """Wait for the thread to end; True if it has."""
        assert self.thread is not None
        return self.thread.join(timeout_ns)

    def __repr__(self) -> str:
        return f"<IOThread {self.name!r} running={self.running}>"


def check_poll_params(poll_max_ns: int, poll_grow: int, poll_shrink: int) -> dict[str, int]:
    """The three parameters by property name, each checked as :func:`_checked` does."""
    return {
        "poll-max-ns": _checked("poll-max-ns", poll_max_ns),
        "poll-grow": _checked("poll-grow", poll_grow),
        "poll-shrink": _checked("poll-shrink", poll_shrink),
    }


def _checked(name: str, value: int) -> int:
    """``iothread_set_param``: an int in [0, INT64_MAX], or a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"IOThread {name} must be an int, not {type(value).__name__}")
    if not 0 <= value <= _INT64_MAX:
        raise ValueError(f"{name} value must be in range [0, {_INT64_MAX}], not {value}")
    return value
