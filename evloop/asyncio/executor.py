"""``SimThreadPoolExecutor``: a thread pool whose workers are threads of control.

``run_in_executor`` and ``asyncio.to_thread`` hand blocking work to a thread
pool. Real pool threads would run outside the simulation's turn lock, at
whatever moment the host's scheduler likes; here each worker is a thread of
control of the simulation instead. Rules kept here:

* **Serialised, and the order is a decision.** A worker runs only while it
  holds the turn. When several workers (or a worker and the loop) could run,
  the scheduler's chooser picks (a ``THREAD`` decision, recorded and replayed
  like any other), so the order in which executor jobs complete is explored
  and reproduced. Option 0 is FIFO: the longest-waiting thread first, which
  makes a job submitted by a callback finish at the loop's next wait.
* **Jobs start in submission order** (one FIFO queue per pool); workers are
  started on demand, up to ``max_workers``, and wait for work in a blocking
  wait, which is never a deadlock (they are idle, like QEMU's pool workers).
  Between two jobs a worker passes a preemption point, so the next job goes
  to whichever worker the scheduler picks.
* **A job's exception is its future's**, as in ``concurrent.futures``:
  nothing is logged or lost.
* **Blocking inside a job** must block through the simulation
  (``sim.sleep``, virtual fds, or the sanitizer's ``time.sleep``); a real
  blocking call holds the turn and stops the whole simulation meanwhile.

It is a ``concurrent.futures.ThreadPoolExecutor`` (asyncio insists on one for
``set_default_executor``) that never starts an OS thread of its own.
"""

from __future__ import annotations

import concurrent.futures
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .threadsafe import SimConcurrentFuture

if TYPE_CHECKING:
    import asyncio

    from ..machine.scheduler import ThreadOfControl
    from ..machine.simulation import Simulation

__all__ = ["DEFAULT_EXECUTOR_WORKERS", "SimThreadPoolExecutor"]

#: Workers of the loop's default executor: a fixed number, unlike asyncio's
#: ``min(32, os.cpu_count() + 4)``, so a run does not depend on the machine.
DEFAULT_EXECUTOR_WORKERS = 8

_Job = tuple[concurrent.futures.Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class _WorkCondition:
    __slots__ = ("pool",)

    def __init__(self, pool: SimThreadPoolExecutor) -> None:
        self.pool = pool

    def ready(self) -> bool:
        return bool(self.pool._jobs) or self.pool._shutdown

    def describe(self) -> str:
        return f"executor {self.pool._thread_name_prefix!r}: waiting for work"


class _WorkersDone:
    __slots__ = ("pool",)

    def __init__(self, pool: SimThreadPoolExecutor) -> None:
        self.pool = pool

    def ready(self) -> bool:
        return all(t.done for t in self.pool._workers)

    def describe(self) -> str:
        return f"shutdown of executor {self.pool._thread_name_prefix!r}"


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class SimThreadPoolExecutor(concurrent.futures.ThreadPoolExecutor):
    """A ``ThreadPoolExecutor`` of ``sim``'s threads of control (see the module docstring)."""

    def __init__(
        self, sim: Simulation, max_workers: int | None = None, thread_name_prefix: str = "executor"
    ) -> None:
        super().__init__(
            max_workers=DEFAULT_EXECUTOR_WORKERS if max_workers is None else max_workers,
            thread_name_prefix=thread_name_prefix,
        )
        self.sim = sim
        self._jobs: deque[_Job] = deque()
        self._workers: list[ThreadOfControl] = []
        self._idle = 0
        self._running = 0
        self._drain_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._work_cond = _WorkCondition(self)

    def submit(
        self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[Any]:
        if self._shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")
        future: concurrent.futures.Future[Any] = SimConcurrentFuture(self.sim._sched)
        self._jobs.append((future, fn, args, kwargs))
        if len(self._jobs) > self._idle and len(self._workers) < self._max_workers:
            name = f"{self._thread_name_prefix}/worker-{len(self._workers)}"
            self._workers.append(self.sim._sched.spawn(name, self._work, idle_ok=True))
        return future

    def _work(self) -> None:
        sched = self.sim._sched
        jobs = self._jobs
        while True:
            if jobs:
                future, fn, args, kwargs = jobs.popleft()
                if not future.set_running_or_notify_cancel():
                    continue
                self._running += 1
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:
                    future.set_exception(exc)
                else:
                    future.set_result(result)
                finally:
                    self._running -= 1
                if not jobs and not self._running:
                    self._drained_now()
                else:
                    # Between jobs, a preemption point: real workers run side
                    # by side, so the next job is not this worker's by right.
                    sched.yield_now()
            elif self._shutdown:
                return
            else:
                self._idle += 1
                try:
                    sched.block(self._work_cond, -1)
                finally:
                    self._idle -= 1

    def _drained_now(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for loop, fut in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(_resolve, fut)

    async def drained(self, loop: asyncio.AbstractEventLoop) -> None:
        """Return once every job submitted so far has finished (in virtual time)."""
        if not self._jobs and not self._running:
            return
        fut: asyncio.Future[None] = loop.create_future()
        self._drain_waiters.append((loop, fut))
        await fut

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """No new work; idle workers end. ``wait`` blocks the calling thread of control."""
        self._shutdown = True
        if cancel_futures:
            while self._jobs:
                self._jobs.popleft()[0].cancel()
        sched = self.sim._sched
        if wait and self._workers and not sched._closing and sched.current not in self._workers:
            sched.block(_WorkersDone(self), -1)

    def __repr__(self) -> str:
        return (
            f"<SimThreadPoolExecutor {self._thread_name_prefix!r} workers={len(self._workers)}"
            f"/{self._max_workers} queued={len(self._jobs)}>"
        )
