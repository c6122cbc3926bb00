"""The async-event queue (opt-in): QEMU's ``replay/replay-events.c``.

QEMU under record/replay does not let a bottom half scheduled from another
thread reach its context directly: ``replay_bh_schedule_event`` (and
``replay_bh_oneshot_event``) hand it to ``replay_add_event``, which queues
it, and at the next checkpoint ``replay_save_events`` logs the queued events
in order and runs them; in play ``replay_read_events`` releases them at the
checkpoint in the order the log says. So where such a BH lands in the run is
a logged fact, not a consequence of thread timing.

``Simulation(async_events="queue")`` does the same here. The rules:

* **What is queued.** ``BH.schedule`` and ``AioContext.bh_schedule_oneshot``
  called by a thread of control other than the one that polls the BH's
  context (the main thread for the main loop's two contexts, an IOThread for
  its own; a worker or a plain thread polls none). A BH scheduled by its own
  context's thread is scheduled at once, as without the queue. Queuing wakes
  the main loop (``aio_notify`` of its context, as ``replay_add_event`` kicks
  the first CPU), so a run never sleeps on a queued event.
* **Where it is released: the main-loop iteration boundary.** Before each
  ``main_loop_wait`` of ``Simulation.run`` the queue is released, oldest
  first: each event is told to the replay layer's hook (its sequence number
  and name), then scheduled on its context for real, which runs it in its
  next poll. QEMU takes its checkpoints inside ``timerlist_run_timers``,
  only when a timer is due and in whichever thread runs the list; one point
  per main-loop iteration exists whether or not a timer is due or a recorder
  is plugged, so a queued run with and without a recorder is the same run.
* **Identity.** An event is its sequence number (0, 1, ... in queue order
  over the whole run: QEMU logs an id with each BH event) and its name
  (``context:BH``). In play the log's next event must be the queue's next one:
  the enqueue order is itself fixed by the recorded decisions, so a logged
  order that differs (an edited trace) is a divergence at that event.

Default off: then nothing is queued, no class is swapped, and every run and
trace is what it was. The mode does not combine with fine preemption (both
swap the BH class; a BH can be one or the other).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from ..loop.aio import AioContext
from ..loop.bh import BH, BH_FREED, BH_ONESHOT, BH_SCHEDULED, callback_name

if TYPE_CHECKING:
    from .scheduler import Scheduler

__all__ = [
    "ASYNC_EVENT_MODES", "AsyncEventHook", "AsyncEventQueue", "AsyncEvents", "make_queued",
]

AsyncEvents = Literal["off", "queue"]
#: The async-event modes (``Simulation(async_events=...)``).
ASYNC_EVENT_MODES: tuple[AsyncEvents, ...] = ("off", "queue")

#: ``hook(sequence, name)``: told each queued event as the queue releases it.
AsyncEventHook = Callable[[int, str], None]


class AsyncEventQueue:
    """The simulation's queue of BHs scheduled from other threads (``events_list``)."""

    __slots__ = ("_events", "_seq", "hook", "sched", "wake")

    def __init__(self, sched: Scheduler, wake: AioContext) -> None:
        self.sched = sched
        #: The context notified when an event is queued: the main loop's.
        self.wake = wake
        #: The replay layer's hook (``Seams.async_event``), None when unrecorded.
        self.hook: AsyncEventHook | None = None
        self._events: list[tuple[int, BH, int]] = []
        self._seq = 0

    def __len__(self) -> int:
        return len(self._events)

    def add(self, bh: BH, flags: int) -> None:
        """Queue ``bh`` to be enqueued with ``flags`` at the next release (``replay_add_event``)."""
        self._events.append((self._seq, bh, flags))
        self._seq += 1
        self.wake.notify()

    def release(self) -> None:
        """Tell the hook and schedule every queued event, oldest first (``replay_save_events``).

        Called only from ``Simulation.run``, at a main-loop iteration boundary.
        """
        events = self._events
        hook = self.hook
        while events:
            seq, bh, flags = events.pop(0)
            if hook is not None:
                hook(seq, f"{bh.ctx.name}:{bh.name or callback_name(bh.cb)}")
            if flags & BH_ONESHOT:
                AioContext._bh_enqueue(bh.ctx, bh, flags)
            else:
                BH.schedule(bh)


class _QueuedBH(BH):
    """A bottom half whose ``qemu_bh_schedule`` from another thread is queued."""

    __slots__ = ()

    def schedule(self) -> None:
        ctx = self.ctx
        if self._flags & BH_FREED:
            self._use_after_free("schedule")
        queue: AsyncEventQueue = ctx._async_queue  # type: ignore[attr-defined]
        if queue.sched.current.aio_context is not ctx._async_home:  # type: ignore[attr-defined]
            queue.add(self, BH_SCHEDULED)  # replay_bh_schedule_event
        else:
            BH.schedule(self)


class _QueuedContext(AioContext):
    """An AioContext whose BHs and oneshot BHs from other threads are queued."""

    _async_queue: AsyncEventQueue
    _async_home: AioContext

    def bh_new(self, cb: Callable[[], object], name: str | None = None) -> BH:
        bh = super().bh_new(cb, name)
        bh.__class__ = _QueuedBH
        return bh

    def bh_schedule_oneshot(self, cb: Callable[[], object], name: str | None = None) -> None:
        if self._async_queue.sched.current.aio_context is not self._async_home:
            # replay_bh_oneshot_event
            self._async_queue.add(BH(self, cb, name), BH_SCHEDULED | BH_ONESHOT)
        else:
            super().bh_schedule_oneshot(cb, name)


def make_queued(ctx: AioContext, queue: AsyncEventQueue, home: AioContext) -> None:
    """Queue the BHs scheduled on ``ctx`` by any thread whose context is not ``home``."""
    if type(ctx) is not AioContext:
        return
    ctx.__class__ = _QueuedContext
    ctx._async_queue = queue  # type: ignore[attr-defined]
    ctx._async_home = home  # type: ignore[attr-defined]
