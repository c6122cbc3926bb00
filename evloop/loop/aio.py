"""``AioContext``: QEMU's event loop core (``util/async.c``, ``util/aio-posix.c``).

One poll (:meth:`AioContext.poll`, QEMU's ``aio_poll``) runs in a fixed order:

1. compute the timeout (0 if not blocking; else 0 if a BH is scheduled, 10 ms
   if only idle BHs are, otherwise the soonest timer deadline or -1);
2. adaptive polling: if every handler can be polled and some handler's
   polling window is open, start poll mode and call the ``io_poll``
   functions once; poll mode stops (a last ``io_poll`` round) only before a
   wait that may block;
3. announce the wait (``notify_me``); a pending :meth:`notify` cancels it;
4. wait for fd readiness (the only point where time passes or other threads
   of control run), unless the timeout is 0 and no fd needs a wait;
5. run bottom halves, then ready fd handlers, then expired timers clock by
   clock (REALTIME, VIRTUAL, HOST, VIRTUAL_RT).

``poll`` returns *progress*: whether a non-idle BH, an fd handler or a timer
ran. The context's own notifier firing, idle BHs and :meth:`notify` are never
progress, which is what lets ``while ctx.poll(False): pass`` terminate.

Ready fd handlers run in registration order, oldest first; re-registering an
fd replaces its handler with a new, newest one. Readiness is level-triggered
but *tracked*: the fd monitor tells each handler when its fd's readiness
changes, so a wait costs O(ready handlers), never O(registered handlers). The
ready set is snapshot when the wait ends, as ``revents`` are in QEMU, so a
handler whose fd another handler drained during the same pass still runs
(and meets EAGAIN), exactly as in QEMU.

Adaptive polling runs on virtual time: one round of ``io_poll`` stands for the
whole polling window (no virtual time passes while polling, and no other
thread of control can change anything meanwhile), and the window grows or
shrinks from the virtual time the blocking wait took, as in
``adjust_polling_time``. As in QEMU 10.0 and later, a handler's window is
adjusted right after the handler runs, so a handler put on the poll list by
its first wake has its window opened by that same wake.

The GSource face (:meth:`prepare`, :meth:`check`, :meth:`dispatch`) is
``aio_ctx_prepare/check/dispatch``: ``check`` also counts idle BHs and the
context's own notifier, so a cross-thread :meth:`notify` makes one main-loop
iteration dispatch without progress.

A callback that raises stops the poll with that exception. Nothing is lost:
bottom halves not yet run stay queued for the next poll.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..seams import Blocker, DispatchObserver
from .bh import BH, BH_DELETED, BH_FREED, BH_IDLE, BH_ONESHOT, BH_PENDING, BH_SCHEDULED
from .clock import SCALE_MS, ClockType, VirtualClock, soonest_timeout
from .fds import FdTable
from .handlers import _POLL_IN, _POLL_OUT, FdHandlers, _Handler
from .notifier import EventNotifier
from .timer import Timer
from .timergroup import TimerListGroup
from .waiting import WarpBlocker

if TYPE_CHECKING:
    from ..machine.threadpool import ThreadPoolRequest

__all__ = ["AioContext"]


#: A BH's flags once dequeued (``aio_bh_dequeue``).
_BH_DEQUEUED = ~(BH_PENDING | BH_SCHEDULED | BH_IDLE)
#: Idle bottom halves are polled at least this often.
IDLE_BH_TIMEOUT_NS = 10 * SCALE_MS
#: ``THREAD_POOL_MAX_THREADS_DEFAULT`` (kept in step with ``machine/threadpool.py``).
_THREAD_POOL_MAX_THREADS_DEFAULT = 64
_INT_MAX = 2**31 - 1



class _ReadyCondition:
    """The wait condition of a blocking poll: some fd handler of the context is ready."""

    __slots__ = ("ctx",)

    def __init__(self, ctx: AioContext) -> None:
        self.ctx = ctx

    def ready(self) -> bool:
        return bool(self.ctx._ready)

    def describe(self) -> str:
        return f"poll of AioContext {self.ctx.name!r}"


class AioContext(FdHandlers):
    """An event loop: bottom halves, fd handlers, timers and event notifiers."""

    def __init__(
        self,
        clock: VirtualClock,
        fds: FdTable,
        *,
        name: str = "aio-context",
        observer: DispatchObserver | None = None,
        blocker: Blocker | None = None,
    ) -> None:
        self.clock = clock
        self.fds = fds
        self.name = name
        #: Set by a simulation to the context's creation number (digest identity).
        self.uid = 0
        self._uid_counter = 0
        self._observer = observer
        self._explicit_blocker = blocker
        # Bottom halves: the live list and the slices aio_bh_poll is working through.
        self._bh_list: list[BH] = []
        self._bh_slices: deque[list[BH]] = deque()
        # fd handlers: active registration per fd, and the ready ones by registration seq.
        self._handlers: dict[int, _Handler] = {}
        self._ready: dict[int, _Handler] = {}
        self._handler_seq = 0
        self._poll_disable_cnt = 0
        self._poll_list: dict[int, _Handler] = {}
        self._gsource_ready: list[_Handler] = []
        self._wait_cond = _ReadyCondition(self)
        #: Shared with the simulation: once raised, dispatch loops stop before
        #: taking their next item (Simulation.run's exact step limit).
        self.halt: list[bool] = [False]
        #: The loop's dirty signal, shared by every context of a main loop or
        #: simulation: raised whenever something may have become ready or due
        #: (an fd handler ready or registered, a timer becoming the head of
        #: its list, a poll, a thread or input appearing, a shutdown). A fast
        #: path lowers it and, while it stays down, knows that nothing but its
        #: own work happened. See ``MainLoop.run_quiet``.
        self.dirty: list[bool] = [False]
        #: The cell a BH enqueue raises: ``dirty``, except while this context's
        #: own BH batches run back to back (``bhbatches.py``).
        self._bh_dirty = self.dirty
        #: The cell an fd handler becoming ready raises: ``dirty``, except
        #: while this context's ready handlers run iteration after iteration.
        self._ready_dirty = self.dirty
        # notify() protocol: notified is the flag, notify_me says someone waits.
        self._notified = False
        self._notify_me = 0
        #: Set by a simulation's fast path while it models this context's
        #: notify flags: a nested poll calls it first, to make them real.
        self._on_poll: Callable[[], None] | None = None
        # Adaptive polling parameters (set_poll_params).
        self.poll_max_ns = 0
        self.poll_grow = 0
        self.poll_shrink = 0
        #: The most requests an I/O engine should submit at once; 0 means
        #: the engine's own default (``set_aio_params``).
        self.aio_max_batch = 0
        self._poll_started = False
        self.tlg = TimerListGroup(clock, self._timer_notify, self)
        self.tlg.set_halt(self.halt)
        self.tlg.set_dirty(self.dirty)
        if observer is not None:
            self.tlg.set_observer(observer)
        self._thread_pool: Any = None
        #: The thread pool's worker limits (``set_thread_pool_params``).
        self.thread_pool_min = 0
        self.thread_pool_max = _THREAD_POOL_MAX_THREADS_DEFAULT
        #: Coroutines aio_co_schedule'd here, and the BH that enters them (util/async.c).
        #: The BH is made on first use, so a context without coroutines numbers its BHs
        #: as before.
        self.scheduled_coroutines: list[Any] = []
        self.co_schedule_bh: BH | None = None
        self.notifier = EventNotifier(fds)
        self.set_event_notifier(
            self.notifier, self._notifier_cb, self._notifier_poll, self._notifier_poll_ready
        )
        self._handlers[self.notifier.fd].is_notifier = True
        self._notified = False  # registering the notifier notified us; that is not news

    # -- plumbing ---------------------------------------------------------------

    def _next_uid(self) -> int:
        self._uid_counter += 1
        return self._uid_counter

    @property
    def blocker(self) -> Blocker:
        """Where this context's blocking waits go: the simulation, or a clock warp."""
        if self._explicit_blocker is not None:
            return self._explicit_blocker
        blocker = self.fds.blocker
        if blocker is None:
            blocker = self._explicit_blocker = WarpBlocker(self.clock)
        return blocker

    def set_dirty(self, dirty: list[bool]) -> None:
        """Share the dirty signal ``dirty`` (of a main loop or simulation)."""
        self.dirty = self._bh_dirty = self._ready_dirty = dirty
        self.tlg.set_dirty(dirty)

    def set_observer(self, observer: DispatchObserver | None) -> None:
        """Tell ``observer(kind, ctx, callback_owner)`` about every callback before it runs."""
        self._observer = observer
        self.tlg.set_observer(observer)

    def _notifier_cb(self) -> None:
        self.notifier.test_and_clear()

    def _notifier_poll(self) -> bool:
        return self._notified

    def _notifier_poll_ready(self) -> None:
        pass  # only wanted to kick the event loop

    # -- notify -----------------------------------------------------------------

    def notify(self) -> None:
        """Wake the context's blocking poll, from any thread of control (``aio_notify``)."""
        self.dirty[0] = True
        self._notified = True
        if self._notify_me:
            self.notifier.set()

    def _timer_notify(self) -> None:
        # notify() for a timer that became the head of its list: the list has
        # raised the dirty signal itself (or, while it runs its own passes,
        # knows it is not news).
        self._notified = True
        if self._notify_me:
            self.notifier.set()

    # -- bottom halves ------------------------------------------------------------

    def bh_new(self, cb: Callable[[], object], name: str | None = None) -> BH:
        """A new, unscheduled bottom half (``aio_bh_new``)."""
        return BH(self, cb, name)

    def bh_schedule_oneshot(self, cb: Callable[[], object], name: str | None = None) -> None:
        """Run ``cb`` once in the next poll (``aio_bh_schedule_oneshot``)."""
        self._bh_enqueue(BH(self, cb, name), BH_SCHEDULED | BH_ONESHOT)

    def _bh_enqueue(self, bh: BH, new_flags: int) -> None:
        # BH.schedule inlines this: keep the two in step.
        old = bh._flags
        bh._flags = old | BH_PENDING | new_flags
        if not old & BH_PENDING:
            self._bh_list.append(bh)
        self._bh_dirty[0] = True
        self._notified = True
        if self._notify_me:
            self.notifier.set()

    def _bh_poll(self) -> bool:
        """Run the scheduled bottom halves enqueued before this call (``aio_bh_poll``)."""
        slices = self._bh_slices
        batch = self._bh_list
        if not batch:
            return bool(slices) and self._bh_run_slices()
        self._bh_list = []
        if slices:
            slices.append(batch)
            return self._bh_run_slices()
        slices.append(batch)
        # The common case, _bh_run_slices over the one slice there is, with
        # fewer steps per BH. A callback's nested poll may run (and drop)
        # the slice; what it leaves runs as _bh_run_slices would run it.
        observer = self._observer
        halt = self.halt
        progress = False
        while batch:
            if halt[0]:
                return progress
            bh = batch.pop()
            flags = bh._flags
            bh._flags = flags & _BH_DEQUEUED
            if flags & (BH_DELETED | BH_ONESHOT):
                bh._flags |= BH_FREED
            if flags & (BH_SCHEDULED | BH_DELETED) == BH_SCHEDULED:
                if not flags & BH_IDLE:
                    progress = True
                if observer is not None:
                    observer(0, self, bh)
                bh.cb()
        if halt[0]:
            return progress  # the emptied slice is dropped by the next poll
        if slices and slices[0] is batch:
            slices.popleft()
        if slices and self._bh_run_slices():
            progress = True
        return progress

    def _bh_run_slices(self) -> bool:
        """Run the bottom halves of the slices that ``_bh_poll`` set aside."""
        slices = self._bh_slices
        observer = self._observer
        halt = self.halt
        progress = False
        while slices:
            if halt[0]:
                break
            current = slices[0]
            if not current:
                slices.popleft()
                continue
            bh = current.pop()
            flags = bh._flags
            bh._flags = flags & _BH_DEQUEUED
            if flags & (BH_DELETED | BH_ONESHOT):
                bh._flags |= BH_FREED
            if flags & (BH_SCHEDULED | BH_DELETED) == BH_SCHEDULED:
                if not flags & BH_IDLE:
                    progress = True
                if observer is not None:
                    observer(0, self, bh)
                bh.cb()
        return progress

    def _bh_timeout(self, bhs: list[BH], timeout: int) -> int:
        for bh in bhs:
            if bh._flags & (BH_SCHEDULED | BH_DELETED) == BH_SCHEDULED:
                if not bh._flags & BH_IDLE:
                    return 0
                timeout = IDLE_BH_TIMEOUT_NS
        return timeout

    def _bh_scheduled(self) -> bool:
        for bh in self._bh_list:
            if bh._flags & (BH_SCHEDULED | BH_DELETED) == BH_SCHEDULED:
                return True
        for s in self._bh_slices:
            for bh in s:
                if bh._flags & (BH_SCHEDULED | BH_DELETED) == BH_SCHEDULED:
                    return True
        return False

    def compute_timeout(self) -> int:
        """How long a blocking poll may wait, in ns; -1 is forever (``aio_compute_timeout``)."""
        timeout = self._bh_timeout(self._bh_list, -1)
        if timeout == 0:
            return 0
        for s in self._bh_slices:
            timeout = self._bh_timeout(s, timeout)
            if timeout == 0:
                return 0
        deadline = self.tlg.deadline_ns()
        if deadline == 0:
            return 0
        return soonest_timeout(timeout, deadline)

    # -- timers -------------------------------------------------------------------

    def timer_new_ns(
        self,
        clock_type: ClockType,
        cb: Callable[[], object],
        name: str | None = None,
        *,
        attributes: int = 0,
    ) -> Timer:
        """A timer on this context's timer list for ``clock_type``, in ns.

        ``attributes`` are ``QEMU_TIMER_ATTR_*`` bits (``aio_timer_new_with_attrs``).
        """
        return self.tlg.new_timer(clock_type, 1, cb, name, attributes)

    def timer_new(
        self,
        clock_type: ClockType,
        scale: int,
        cb: Callable[[], object],
        name: str | None = None,
        *,
        attributes: int = 0,
    ) -> Timer:
        """A timer whose :meth:`Timer.mod` takes times in units of ``scale`` ns."""
        return self.tlg.new_timer(clock_type, scale, cb, name, attributes)

    # -- aio_poll -----------------------------------------------------------------

    def poll(self, blocking: bool) -> bool:
        """One iteration of the loop (``aio_poll``); True if it made progress."""
        if self.halt[0]:
            # The simulation's step limit is reached: give the turn back
            # (a scheduling point) instead of spinning on work it may not do.
            self.blocker.block(self._wait_cond, 0)
            return False
        self.dirty[0] = True
        on_poll = self._on_poll
        if on_poll is not None:
            self._on_poll = None
            on_poll()
        clock = self.clock
        start = clock._now[ClockType.REALTIME] if self.poll_max_ns else 0
        timeout = self.compute_timeout() if blocking else 0
        poll_ready: dict[int, _Handler] = {}
        progress = False
        if self._poll_list:
            progress, timeout = self._try_poll_mode(poll_ready, timeout)
        use_notify_me = timeout != 0
        if use_notify_me:
            self._notify_me += 2
            if self._notified:
                timeout = 0
        nodes: list[_Handler] = []
        try:
            if timeout or self._poll_disable_cnt:
                # Poll mode stops only before a wait that may block: a poll
                # that will not block keeps it (QEMU 10.2, commit 511c62a2c6).
                if timeout and self._poll_set_started(poll_ready, False):
                    timeout = 0
                    progress = True
                if timeout:
                    self.blocker.block(self._wait_cond, timeout)
                nodes = self._snapshot(poll_ready, True)
            elif poll_ready:
                nodes = self._snapshot(poll_ready, False)
        finally:
            if use_notify_me:
                self._notify_me -= 2
        self._notified = False
        block_ns = clock._now[ClockType.REALTIME] - start if self.poll_max_ns else 0
        if (self._bh_list or self._bh_slices) and self._bh_poll():
            progress = True
        if nodes and self._dispatch_ready(nodes, block_ns):
            progress = True
        if self.tlg.run_timers():
            progress = True
        return progress

    # -- GSource ------------------------------------------------------------------

    def prepare(self) -> tuple[bool, int]:
        """``aio_ctx_prepare``: (ready now?, timeout in ns, -1 forever)."""
        self._notify_me |= 1
        timeout = self.compute_timeout()
        self._poll_set_started({}, False)
        return timeout == 0, timeout

    def check(self) -> bool:
        """``aio_ctx_check``: whether :meth:`dispatch` has anything to do.

        Takes the fd readiness snapshot that :meth:`dispatch` uses, as glib's
        poll fills in ``revents`` before ``check`` runs.
        """
        self._notify_me &= ~1
        self._notified = False
        self._gsource_ready = nodes = self._snapshot(None, True)
        if (self._bh_list or self._bh_slices) and self._bh_scheduled():
            return True
        for node in nodes:
            revents = node.revents
            if (revents & _POLL_IN and node.io_read is not None) or (
                revents & _POLL_OUT and node.io_write is not None
            ):
                return True
        return self.tlg.deadline_ns() == 0

    def take_revents(self) -> bool:
        """Take the fd readiness snapshot :meth:`dispatch` uses, without checking.

        glib fills in ``revents`` for every source, but calls ``check`` only
        for sources that were not ready at prepare. Returns True.
        """
        self._gsource_ready = self._snapshot(None, True)
        return True

    def dispatch(self) -> None:
        """``aio_ctx_dispatch``: BHs, the fd handlers :meth:`check` saw ready, timers.

        Bottom halves run first; a handler they re-register keeps the revents
        polled for the fd, as ``aio_set_fd_handler`` copies ``pfd``.
        """
        if self._bh_list or self._bh_slices:
            self._bh_poll()
        nodes = self._gsource_ready
        if nodes:
            self._gsource_ready = []
            # block_ns 0: the glib loop does not poll (aio_dispatch, QEMU 10.2).
            self._dispatch_ready(nodes, 0)
        self.tlg.run_timers()

    # -- thread pool --------------------------------------------------------------

    def thread_pool_submit(
        self, fn: Callable[[], object], done_cb: Callable[[object], object]
    ) -> ThreadPoolRequest:
        """Run ``fn`` on a worker thread of control; ``done_cb(result)`` runs here via a BH.

        Returns the request, whose ``cancel()`` is ``thread_pool_cancel``.
        """
        if self._thread_pool is None:
            from ..machine.threadpool import ThreadPool

            self._thread_pool = ThreadPool(self)
        request: ThreadPoolRequest = self._thread_pool.submit(fn, done_cb)
        return request

    def set_aio_params(self, max_batch: int) -> None:
        """Set :attr:`aio_max_batch` and wake the loop (``aio_context_set_aio_params``).

        An I/O engine on the context (QEMU's linux-aio and io_uring backends)
        reads it as the most requests to submit in one batch, 0 meaning its
        own default.
        """
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 0:
            raise ValueError(f"aio-max-batch must be a non-negative int, not {max_batch!r}")
        self.aio_max_batch = max_batch
        self.notify()

    def set_thread_pool_params(self, min_threads: int, max_threads: int) -> None:
        """The thread pool's worker limits (``aio_context_set_thread_pool_params``).

        At least ``min_threads`` workers are kept ready and at most
        ``max_threads`` run; the defaults are 0 and 64. A pool that exists
        takes the new limits at once (``thread_pool_update_params``).
        """
        if not (0 <= min_threads <= max_threads and 0 < max_threads <= _INT_MAX):
            raise ValueError(
                f"bad thread-pool-min/thread-pool-max values (min={min_threads}, "
                f"max={max_threads}): want 0 <= min <= max, 0 < max <= {_INT_MAX}"
            )
        self.thread_pool_min = min_threads
        self.thread_pool_max = max_threads
        if self._thread_pool is not None:
            self._thread_pool.update_params()

    def __repr__(self) -> str:
        return (
            f"<AioContext {self.name!r} handlers={self.handler_count()} "
            f"bhs={len(self._bh_list)} timers={self.tlg.pending_count()}>"
        )
