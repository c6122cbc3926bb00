"""``thread_pool_submit``: work on worker threads, completion back in the context.

As QEMU's ``util/thread-pool.c``: a request's function runs on a worker
thread of control; when it finishes, the worker schedules the pool's
completion bottom half on the submitting context, which calls ``done_cb`` with
the result in that context's thread, in completion order. Workers are started
on demand (up to :data:`MAX_WORKERS`) and idle in a blocking wait; an idle
worker is never a deadlock.

If the function raises, the exception is raised again from the completion
bottom half, in the context's thread, and stops that poll (and so the run):
nothing is logged and swallowed.

Outside a simulation there are no other threads of control; the pool then
runs each function from a oneshot bottom half of its own and completes it in
the next poll, so the callback still runs "later, from the loop".
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from .scheduler import Scheduler

if TYPE_CHECKING:
    from ..loop.aio import AioContext
    from .scheduler import ThreadOfControl

__all__ = ["MAX_WORKERS", "ThreadPool"]

MAX_WORKERS = 64


@dataclass(slots=True, eq=False)
class _Request:
    fn: Callable[[], object]
    done_cb: Callable[[object], object]
    result: object = None
    error: BaseException | None = None


class _QueueCondition:
    __slots__ = ("pool",)

    def __init__(self, pool: ThreadPool) -> None:
        self.pool = pool

    def ready(self) -> bool:
        return bool(self.pool._queue)

    def describe(self) -> str:
        return f"thread pool of {self.pool.ctx.name!r}: waiting for work"


class ThreadPool:
    """The pool of one context; created on first :meth:`AioContext.thread_pool_submit`."""

    def __init__(self, ctx: AioContext) -> None:
        self.ctx = ctx
        blocker = ctx.blocker
        self._sched = blocker if isinstance(blocker, Scheduler) else None
        self._queue: deque[_Request] = deque()
        self._done: deque[_Request] = deque()
        self._workers: list[ThreadOfControl] = []
        self._idle = 0
        self._cond = _QueueCondition(self)
        self._bh = ctx.bh_new(self._completion_bh, name=f"{ctx.name}:thread-pool-completion")

    def submit(self, fn: Callable[[], object], done_cb: Callable[[object], object]) -> None:
        req = _Request(fn, done_cb)
        sched = self._sched
        if sched is None:
            self.ctx.bh_schedule_oneshot(partial(self._run_inline, req), name="thread-pool-work")
            return
        self._queue.append(req)
        if self._idle == 0 and len(self._workers) < MAX_WORKERS:
            name = f"{self.ctx.name}/worker-{len(self._workers)}"
            self._workers.append(sched.spawn(name, self._worker, idle_ok=True))

    def _run_inline(self, req: _Request) -> None:
        self._execute(req)

    def _execute(self, req: _Request) -> None:
        try:
            req.result = req.fn()
        except Exception as exc:
            req.error = exc
        self._done.append(req)
        self._bh.schedule()

    def _worker(self) -> None:
        sched = self._sched
        assert sched is not None
        while True:
            if not self._queue:
                self._idle += 1
                try:
                    sched.block(self._cond, -1)
                finally:
                    self._idle -= 1
                continue
            self._execute(self._queue.popleft())

    def _completion_bh(self) -> None:
        done = self._done
        while done:
            req = done.popleft()
            if done:
                self._bh.schedule()  # in case the callback polls for the next completion
            if req.error is not None:
                raise req.error
            req.done_cb(req.result)

    @property
    def workers(self) -> int:
        return len(self._workers)
