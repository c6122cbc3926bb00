"""``SimEvent``: a flag threads of control wait on, in virtual time.

Like ``threading.Event``: :meth:`SimEvent.wait` blocks the calling thread of
control through the scheduler (``scheduler.py``) until the flag is set or the
timeout passes; a set only marks the flag, and the scheduler's next
readiness check sees it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .scheduler import Scheduler

__all__ = ["SimEvent"]


class _EventCondition:
    __slots__ = ("event",)

    def __init__(self, event: SimEvent) -> None:
        self.event = event

    def ready(self) -> bool:
        return self.event._set

    def describe(self) -> str:
        return f"event {self.event.name!r}"


class SimEvent:
    """A flag threads of control can wait on (like ``threading.Event``, in virtual time)."""

    __slots__ = ("_cond", "_sched", "_set", "name")

    def __init__(self, sched: Scheduler, name: str) -> None:
        self._sched = sched
        self.name = name
        self._set = False
        self._cond = _EventCondition(self)

    def set(self) -> None:
        self._set = True

    def clear(self) -> None:
        self._set = False

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout_ns: int = -1) -> bool:
        """Block until set or timed out; True if set."""
        if not self._set:
            self._sched.block(self._cond, timeout_ns)
        return self._set

    def __repr__(self) -> str:
        return f"<SimEvent {self.name!r} {'set' if self._set else 'clear'}>"
