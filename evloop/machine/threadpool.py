"""``thread_pool_submit``: work on worker threads, completion back in the context.

As QEMU's ``util/thread-pool.c`` (``thread_pool_submit_aio``, the
``ThreadPoolAio`` of QEMU 10.0 and later):

* A request's function runs on a worker thread of control. Requests wait in
  a FIFO queue (``request_list``) and workers take them oldest first.
* When the function returns, the worker marks the request done and schedules
  the pool's completion bottom half on the submitting context.
* The completion bottom half (``thread_pool_completion_bh``) walks the list of
  every request not yet completed (``pool->head``), which a submit extends at
  its *head*: it completes the **newest-submitted** done request first. Before
  each callback it schedules itself, in case the callback polls for another
  request that finished at the same time; after the callback it cancels
  itself and walks the list again from the head. So one run of the bottom
  half completes every done request, and leaves nothing scheduled: the next
  ``poll(False)`` makes no progress.
* :meth:`ThreadPoolRequest.cancel` is ``thread_pool_cancel``: a request still
  queued is taken off the queue and completed with :data:`REQUEST_CANCELLED`
  as its result, by the completion bottom half, without its function ever
  running; a request a worker already runs (or that is done) is not
  affected, and completes with its real result.
* Workers are started on demand, while none is idle, up to ``max``; at least
  ``min`` are kept ready (``thread_pool_update_params``). The limits are the
  context's (:meth:`AioContext.set_thread_pool_params`, 0 and
  :data:`THREAD_POOL_MAX_THREADS_DEFAULT` by default); lowering ``max`` below
  the number of workers makes the surplus exit once idle (or once their
  current request is done). An idle worker is never a deadlock.

Two deliberate differences, both so that a run does not change shape: a
worker is started at once, not from a ``new_thread_bh`` bottom half of the
context; and an idle worker waits for work forever, where QEMU's exits after
10 s without work while there are more than ``min`` (that timed wait would
make every run that used the pool warp its clocks 10 s before it ends).

If the function raises, the exception is raised again from the completion
bottom half, in the context's thread, and stops that poll (and so the run):
nothing is logged and swallowed. The bottom half stays scheduled then, so
the other done requests complete in the next poll.

Outside a simulation there are no other threads of control; the pool then
runs each function from a oneshot bottom half of its own and completes it in
the next poll, so the callback still runs "later, from the loop".
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from enum import Enum
from functools import partial
from typing import TYPE_CHECKING, Final

from .scheduler import Scheduler

if TYPE_CHECKING:
    from ..loop.aio import AioContext

__all__ = [
    "MAX_WORKERS",
    "REQUEST_CANCELLED",
    "THREAD_POOL_MAX_THREADS_DEFAULT",
    "RequestState",
    "ThreadPool",
    "ThreadPoolRequest",
]

#: The default ``max`` of a context's pool (``THREAD_POOL_MAX_THREADS_DEFAULT``).
THREAD_POOL_MAX_THREADS_DEFAULT: Final = 64
#: The former name of :data:`THREAD_POOL_MAX_THREADS_DEFAULT`.
MAX_WORKERS: Final = THREAD_POOL_MAX_THREADS_DEFAULT


class _Cancelled:
    """The type of :data:`REQUEST_CANCELLED` (one instance)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "REQUEST_CANCELLED"


#: The result a cancelled request's ``done_cb`` receives (QEMU's ``-ECANCELED``).
REQUEST_CANCELLED: Final = _Cancelled()


class RequestState(Enum):
    """Where a request is (``enum ThreadState``)."""

    QUEUED = "queued"  #: waiting for a worker
    ACTIVE = "active"  #: a worker runs its function
    DONE = "done"  #: finished (or cancelled); its completion is due or has run


class ThreadPoolRequest:
    """One submitted request (``ThreadPoolElementAio``): what ``thread_pool_submit`` returns."""

    __slots__ = ("completed", "done_cb", "error", "fn", "pool", "result", "seq", "state")

    def __init__(
        self,
        pool: ThreadPool,
        seq: int,
        fn: Callable[[], object],
        done_cb: Callable[[object], object],
    ) -> None:
        self.pool = pool
        #: Submission number within the pool: the completion order's key.
        self.seq = seq
        self.fn = fn
        self.done_cb = done_cb
        self.state = RequestState.QUEUED
        self.result: object = None
        self.error: BaseException | None = None
        #: True once ``done_cb`` has been called.
        self.completed = False

    @property
    def cancelled(self) -> bool:
        return self.result is REQUEST_CANCELLED

    def cancel(self) -> bool:
        """Cancel the request if no worker has taken it yet (``thread_pool_cancel``).

        A queued request is completed with :data:`REQUEST_CANCELLED` by the
        pool's completion bottom half, and its function never runs: True. A
        running or finished request is left alone and completes as it would
        have: False.
        """
        return self.pool.cancel(self)

    def __repr__(self) -> str:
        return f"<ThreadPoolRequest #{self.seq} {self.state.value}>"


class _WorkCondition:
    """What an idle worker waits for: a queued request, or too many workers."""

    __slots__ = ("pool",)

    def __init__(self, pool: ThreadPool) -> None:
        self.pool = pool

    def ready(self) -> bool:
        pool = self.pool
        return bool(pool._queue) or pool._cur > pool.max_threads

    def describe(self) -> str:
        return f"thread pool of {self.pool.ctx.name!r}: waiting for work"


class ThreadPool:
    """The pool of one context; created on first :meth:`AioContext.thread_pool_submit`."""

    def __init__(self, ctx: AioContext) -> None:
        self.ctx = ctx
        blocker = ctx.blocker
        self._sched = blocker if isinstance(blocker, Scheduler) else None
        self._queue: deque[ThreadPoolRequest] = deque()
        # Every request not yet completed, by submission number: the
        # completion bottom half walks it newest first (pool->head).
        self._pending: dict[int, ThreadPoolRequest] = {}
        self._submitted = 0
        self._spawned = 0
        self._cur = 0
        self._idle = 0
        self.min_threads = 0
        self.max_threads = THREAD_POOL_MAX_THREADS_DEFAULT
        self._cond = _WorkCondition(self)
        self._bh = ctx.bh_new(self._completion_bh, name=f"{ctx.name}:thread-pool-completion")
        self.update_params()

    # -- parameters -----------------------------------------------------------------

    def update_params(self) -> None:
        """Take the context's min/max (``thread_pool_update_params``).

        Starts workers up to ``min``; with more than ``max``, the surplus
        exits as soon as each is idle or done with its request.
        """
        self.min_threads = self.ctx.thread_pool_min
        self.max_threads = self.ctx.thread_pool_max
        if self._sched is None:
            return
        while self._cur < self.min_threads:
            self._spawn()

    # -- submitting and cancelling ----------------------------------------------------

    def submit(
        self, fn: Callable[[], object], done_cb: Callable[[object], object]
    ) -> ThreadPoolRequest:
        self._submitted += 1
        req = ThreadPoolRequest(self, self._submitted, fn, done_cb)
        self._pending[req.seq] = req
        sched = self._sched
        if sched is None:
            self.ctx.bh_schedule_oneshot(partial(self._run_inline, req), name="thread-pool-work")
            return req
        self._queue.append(req)
        if self._idle == 0 and self._cur < self.max_threads:
            self._spawn()
        return req

    def cancel(self, req: ThreadPoolRequest) -> bool:
        if req.state is not RequestState.QUEUED:
            return False
        if self._sched is not None:
            self._queue.remove(req)
        req.state = RequestState.DONE
        req.result = REQUEST_CANCELLED
        self._bh.schedule()
        return True

    # -- workers ----------------------------------------------------------------------

    def _spawn(self) -> None:
        sched = self._sched
        assert sched is not None
        self._cur += 1
        name = f"{self.ctx.name}/worker-{self._spawned}"
        self._spawned += 1
        sched.spawn(name, self._worker, idle_ok=True)

    def _worker(self) -> None:
        sched = self._sched
        assert sched is not None
        while self._cur <= self.max_threads:
            if not self._queue:
                self._idle += 1
                try:
                    sched.block(self._cond, -1)
                finally:
                    self._idle -= 1
                continue
            req = self._queue.popleft()
            req.state = RequestState.ACTIVE
            self._execute(req)
        self._cur -= 1  # too many workers: this one ends

    def _run_inline(self, req: ThreadPoolRequest) -> None:
        if req.state is RequestState.QUEUED:  # not cancelled meanwhile
            req.state = RequestState.ACTIVE
            self._execute(req)

    def _execute(self, req: ThreadPoolRequest) -> None:
        try:
            req.result = req.fn()
        except Exception as exc:
            req.error = exc
        req.state = RequestState.DONE
        self._bh.schedule()

    # -- completion -------------------------------------------------------------------

    def _next_done(self) -> ThreadPoolRequest | None:
        """The newest-submitted done request, if any."""
        for seq in reversed(self._pending):
            req = self._pending[seq]
            if req.state is RequestState.DONE:
                return req
        return None

    def _completion_bh(self) -> None:
        bh = self._bh
        while (req := self._next_done()) is not None:
            del self._pending[req.seq]
            req.completed = True
            # In case the callback polls for a request that finished meanwhile.
            bh.schedule()
            if req.error is not None:
                raise req.error  # the BH stays scheduled: the others complete next poll
            req.done_cb(req.result)
            # Whoever scheduled it meanwhile: the walk below starts over anyway.
            bh.cancel()

    @property
    def workers(self) -> int:
        """Worker threads of control alive now (``cur_threads``)."""
        return self._cur

    def __repr__(self) -> str:
        return (
            f"<ThreadPool of {self.ctx.name!r} workers={self._cur} idle={self._idle} "
            f"queued={len(self._queue)} min={self.min_threads} max={self.max_threads}>"
        )
