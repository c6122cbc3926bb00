"""Threads of control: what the scheduler (``scheduler.py``) hands the turn between.

A :class:`ThreadOfControl` is the main thread, an IOThread or a pool worker of
one simulation. It carries its state, the condition it waits on and the
deadline of that wait; the scheduler alone changes them. The conditions a
scheduler itself waits on (a virtual sleep, a preemption point, a join) live
here beside the thread they describe.

The hot path compares states against the module constants ``_RUNNING`` ...
``_DONE`` (a global load, not an enum attribute lookup).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING, Any

from ..seams import WaitCondition

if TYPE_CHECKING:
    from greenlet import greenlet

    from .scheduler import Scheduler

__all__ = [
    "ThreadOfControl",
    "ThreadState",
    "current_thread_of_control",
]


class ThreadState(Enum):
    RUNNING = "running"
    RUNNABLE = "runnable"
    BLOCKED = "blocked"
    DONE = "done"


# The hot path compares against these (a global load, not an enum lookup).
_RUNNING = ThreadState.RUNNING
_RUNNABLE = ThreadState.RUNNABLE
_BLOCKED = ThreadState.BLOCKED
_DONE = ThreadState.DONE


class _Active(threading.local):
    """Per OS thread: the schedulers whose threads of control run on it, innermost last."""

    def __init__(self) -> None:
        self.stack: list[Scheduler] = []


_active = _Active()


def current_thread_of_control() -> ThreadOfControl | None:
    """The thread of control running the caller, or None outside every simulation.

    A simulation is "running" on an OS thread while its main thread is in
    ``Simulation.run`` or in a blocking wait there (its other threads of
    control run only then), and on each OS thread of the ``"os"`` backend.
    """
    stack = _active.stack
    return stack[-1].current if stack else None


class _Cancelled(BaseException):
    """Unwinds a thread of control whose simulation was closed while it waited."""


class _Never:
    """A condition that only a timeout ends (virtual sleep)."""

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what

    def ready(self) -> bool:
        return False

    def describe(self) -> str:
        return self.what


class _Always:
    __slots__ = ()

    def ready(self) -> bool:
        return True

    def describe(self) -> str:
        return "a preemption point"


_ALWAYS = _Always()


class ThreadOfControl:
    """A thread of control of a simulation: the main thread, an IOThread, a worker."""

    __slots__ = (
        "_fn",
        "_glet",
        "_ident",
        "_os_thread",
        "_sched",
        "_turn",
        "aio_context",
        "cond",
        "idle_ok",
        "index",
        "name",
        "seq",
        "state",
        "wake_at",
    )

    def __init__(
        self,
        sched: Scheduler,
        name: str,
        index: int,
        fn: Callable[[], object] | None,
        idle_ok: bool,
    ) -> None:
        self._sched = sched
        self.name = name
        self.index = index
        self._fn = fn
        self.idle_ok = idle_ok
        self.state = _RUNNABLE
        self.cond: WaitCondition | None = None
        self.wake_at: int | None = None
        self.seq = 0
        self._turn: threading.Lock | None = None
        self._glet: greenlet | None = None
        self._ident: int | None = None
        self._os_thread: threading.Thread | None = None
        #: The AioContext this thread runs (QEMU's per-thread ``my_aiocontext``), if any.
        self.aio_context: Any = None

    @property
    def done(self) -> bool:
        return self.state is _DONE

    def is_alive(self) -> bool:
        return self.state is not _DONE

    def join(self, timeout_ns: int = -1) -> bool:
        """Block the calling thread of control until this one has finished."""
        return self._sched.join(self, timeout_ns)

    def waiting_for(self) -> str:
        if self.state is not _BLOCKED or self.cond is None:
            return self.state.value
        what = self.cond.describe()
        if self.wake_at is not None:
            what += f" (until t={self.wake_at})"
        return what

    def __repr__(self) -> str:
        return f"<ThreadOfControl {self.name!r} #{self.index} {self.waiting_for()}>"


class _JoinCondition:
    __slots__ = ("target",)

    def __init__(self, target: ThreadOfControl) -> None:
        self.target = target

    def ready(self) -> bool:
        return self.target.state is _DONE

    def describe(self) -> str:
        return f"join({self.target.name!r})"
