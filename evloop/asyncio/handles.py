"""The loop's handles: asyncio's ``Handle`` and ``TimerHandle`` with an identity.

Every callback :class:`~evloop.asyncio.SimEventLoop` runs is one step of the
simulation, and a step's digest names *which* callback ran by a creation
number, never by ``id()`` (addresses differ from process to process). So the
loop's handles carry ``uid``, the loop's count of handles created so far.
They are still ``asyncio.Handle`` and ``asyncio.TimerHandle`` instances, so
code that checks the type or calls ``cancel()`` / ``when()`` sees no
difference.

A timer handle also carries its deadline as an integer number of
nanoseconds (``when_ns``): the loop orders and fires timers by it, and
``when()`` reports the float the caller asked for (``call_at``) or the
deadline read as seconds (``call_later``).

``name`` and ``cb`` are what a simulation's step log shows for the step
(``DispatchEvent.name``): a task's step is named after the task.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from typing import Any

from ..loop.bh import callback_name

__all__ = ["SimHandle", "SimTimerHandle", "describe_callback"]

_copy_context = contextvars.copy_context


def describe_callback(cb: object) -> str:
    """A stable name for what a handle runs: a task's step is named after its task."""
    if cb is None:
        return "cancelled"
    owner = getattr(cb, "__self__", None)
    if isinstance(owner, asyncio.Task):
        return f"{owner.get_name()} step"
    if isinstance(owner, asyncio.Future):
        return f"{type(owner).__name__}.{getattr(cb, '__name__', 'callback')}"
    return callback_name(cb)


class SimHandle(asyncio.Handle):
    """An ``asyncio.Handle`` with the loop's creation number ``uid``."""

    __slots__ = ("uid",)

    def __init__(
        self,
        callback: Callable[..., object],
        args: tuple[Any, ...],
        loop: Any,
        context: contextvars.Context | None,
        uid: int,
    ) -> None:
        # What asyncio.Handle.__init__ sets, without its get_debug() call.
        self._context = context if context is not None else _copy_context()
        self._loop = loop
        self._callback = callback
        self._args = args
        self._cancelled = False
        self._repr = None
        self._source_traceback = loop._traceback() if loop._debug else None
        self.uid = uid

    @property
    def name(self) -> str:
        return describe_callback(self._callback)

    @property
    def cb(self) -> object:
        return self._callback


class SimTimerHandle(asyncio.TimerHandle):
    """An ``asyncio.TimerHandle`` with ``uid`` and its deadline in integer ns."""

    __slots__ = ("uid", "when_ns")

    def __init__(
        self,
        when: float,
        when_ns: int,
        callback: Callable[..., object],
        args: tuple[Any, ...],
        loop: Any,
        context: contextvars.Context | None,
        uid: int,
    ) -> None:
        self._context = context if context is not None else _copy_context()
        self._loop = loop
        self._callback = callback
        self._args = args
        self._cancelled = False
        self._repr = None
        self._source_traceback = loop._traceback() if loop._debug else None
        self._when = when
        self._scheduled = False
        self.when_ns = when_ns
        self.uid = uid

    # TimerHandle defines __eq__, which would make it unhashable without this.
    def __hash__(self) -> int:
        return hash(self._when)

    def cancel(self) -> None:
        # TimerHandle.cancel and Handle.cancel in one call: every asyncio.sleep
        # cancels its timer on the way out, so this is on the hot path.
        if not self._cancelled:
            loop = self._loop
            if self._scheduled:
                loop._timer_cancelled_count += 1
            self._cancelled = True
            if loop._debug:
                self._repr = repr(self)  # type: ignore[assignment]
            self._callback = None  # type: ignore[assignment]
            self._args = None  # type: ignore[assignment]

    @property
    def name(self) -> str:
        return describe_callback(self._callback)

    @property
    def cb(self) -> object:
        return self._callback
