"""Waiting on the loop from another thread of control, through the simulation.

A ``concurrent.futures.Future`` blocks its waiter on a real lock. Inside a
simulation the waiter is a thread of control holding the turn, so a real
block would stop every thread, the loop that is to complete the future
included. :class:`SimConcurrentFuture` waits through the scheduler instead:
``result()`` and ``exception()`` give up the turn until the future is done or
the (virtual) timeout passes, and a wait that can never end is a
:class:`~evloop.DeadlockError` naming it.

``asyncio.run_coroutine_threadsafe(coro, loop)`` returns one when ``loop`` is
a :class:`SimEventLoop`, so the usual pattern (blocking code in an executor
job calling back into the loop and waiting for the answer) works unchanged.
That is done by one delegating wrapper, installed on ``asyncio`` when the
first simulated loop is made: for any other loop it calls the original.
Code that bound the function before that (``from asyncio import
run_coroutine_threadsafe`` at import time) keeps the original, whose
``result()`` would block for real: use ``asyncio.run_coroutine_threadsafe``.
"""

from __future__ import annotations

import asyncio
import asyncio.tasks
import concurrent.futures
from asyncio import futures
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from ..machine.scheduler import Scheduler

__all__ = ["SimConcurrentFuture", "install_run_coroutine_threadsafe"]

_T = TypeVar("_T")
_NS_PER_S = 1_000_000_000


class _Done:
    __slots__ = ("future",)

    def __init__(self, future: concurrent.futures.Future[Any]) -> None:
        self.future = future

    def ready(self) -> bool:
        return self.future.done()

    def describe(self) -> str:
        return f"result of {self.future!r}"


class SimConcurrentFuture(concurrent.futures.Future[_T]):
    """A ``concurrent.futures.Future`` whose waits go through the simulation's scheduler."""

    def __init__(self, sched: Scheduler) -> None:
        super().__init__()
        self._sched = sched

    def _wait_done(self, timeout: float | None) -> None:
        if self.done():
            return
        timeout_ns = -1 if timeout is None else max(0, round(timeout * _NS_PER_S))
        self._sched.block(_Done(self), timeout_ns)

    def result(self, timeout: float | None = None) -> _T:
        self._wait_done(timeout)
        return super().result(timeout=0)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._wait_done(timeout)
        return super().exception(timeout=0)


def _run_coroutine_threadsafe(
    coro: Coroutine[Any, Any, _T], loop: asyncio.AbstractEventLoop
) -> concurrent.futures.Future[_T]:
    from .loop import SimEventLoop

    if not isinstance(loop, SimEventLoop):
        stock: concurrent.futures.Future[_T] = _original(coro, loop)
        return stock
    if not asyncio.iscoroutine(coro):
        raise TypeError("A coroutine object is required")
    future: SimConcurrentFuture[_T] = SimConcurrentFuture(loop.sim._sched)

    def start() -> None:
        try:
            task = asyncio.ensure_future(coro, loop=loop)
            futures._chain_future(task, future)  # type: ignore[attr-defined]
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            if future.set_running_or_notify_cancel():
                future.set_exception(exc)
            raise

    loop.call_soon_threadsafe(start)
    return future


_original: Callable[..., Any] = asyncio.tasks.run_coroutine_threadsafe


def install_run_coroutine_threadsafe() -> None:
    """Put the delegating ``run_coroutine_threadsafe`` on ``asyncio`` (idempotent)."""
    if asyncio.run_coroutine_threadsafe is not _run_coroutine_threadsafe:
        asyncio.run_coroutine_threadsafe = _run_coroutine_threadsafe
        asyncio.tasks.run_coroutine_threadsafe = _run_coroutine_threadsafe
