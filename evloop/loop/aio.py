"""``AioContext``: QEMU's event loop core (``util/async.c``, ``util/aio-posix.c``).

One poll (:meth:`AioContext.poll`, QEMU's ``aio_poll``) runs in a fixed order:

1. compute the timeout (0 if not blocking; else 0 if a BH is scheduled, 10 ms
   if only idle BHs are, otherwise the soonest timer deadline or -1);
2. adaptive polling: if every handler can be polled and some handler's
   polling window is open, call the ``io_poll`` functions once;
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
``adjust_polling_time``.

The GSource face (:meth:`prepare`, :meth:`check`, :meth:`dispatch`) is
``aio_ctx_prepare/check/dispatch``: ``check`` also counts idle BHs and the
context's own notifier, so a cross-thread :meth:`notify` makes one main-loop
iteration dispatch without progress.

A callback that raises stops the poll with that exception. Nothing is lost:
bottom halves not yet run stay queued for the next poll.
"""

from __future__ import annotations

import select
from collections import deque
from collections.abc import Callable
from typing import Any

from ..seams import Blocker, DispatchObserver
from .bh import BH, BH_DELETED, BH_FREED, BH_IDLE, BH_ONESHOT, BH_PENDING, BH_SCHEDULED
from .clock import SCALE_MS, ClockType, VirtualClock, soonest_timeout
from .fds import FdTable
from .notifier import EventNotifier
from .timer import Timer, TimerListGroup
from .waiting import WarpBlocker

__all__ = ["AioContext", "DispatchKind"]


class DispatchKind:
    """What kind of callback an observer is told about (plain ints: hot path)."""

    BH = 0
    READ = 1
    WRITE = 2
    POLL_READY = 3
    TIMER = 4
    TURN = 5
    INPUT = 6
    FAULT = 7  #: a fault injected, or held bytes arriving (``faults.py``)
    NAMES = ("bh", "read", "write", "poll_ready", "timer", "turn", "input", "fault")


_POLL_IN = select.POLLIN | select.POLLHUP | select.POLLERR
_POLL_OUT = select.POLLOUT | select.POLLERR
#: Stop polling a handler that has not been ready for this long.
POLL_IDLE_INTERVAL_NS = 7_000_000_000
#: Idle bottom halves are polled at least this often.
IDLE_BH_TIMEOUT_NS = 10 * SCALE_MS

IOHandler = Callable[[], object]
PollFn = Callable[[], bool]


class _Handler:
    """One registration of an fd (``AioHandler``). Replaced, never mutated, on re-registration."""

    __slots__ = (
        "ctx",
        "deleted",
        "events",
        "fd",
        "in_poll_list",
        "io_poll",
        "io_poll_ready",
        "io_read",
        "io_write",
        "is_notifier",
        "mask",
        "poll_idle_timeout",
        "poll_ns",
        "poll_ready",
        "revents",
        "seq",
        "uid",
    )

    def __init__(
        self,
        ctx: AioContext,
        fd: int,
        seq: int,
        io_read: IOHandler | None,
        io_write: IOHandler | None,
        io_poll: PollFn | None,
        io_poll_ready: IOHandler | None,
    ) -> None:
        self.ctx = ctx
        self.fd = fd
        self.seq = seq
        self.uid = seq
        self.io_read = io_read
        self.io_write = io_write
        self.io_poll = io_poll
        self.io_poll_ready = io_poll_ready
        self.events = (_POLL_IN if io_read is not None else 0) | (
            _POLL_OUT if io_write is not None else 0
        )
        self.deleted = False
        self.is_notifier = False
        self.mask = 0
        self.revents = 0
        self.poll_ready = False
        self.in_poll_list = False
        self.poll_ns = 0
        self.poll_idle_timeout = 0

    def fd_ready(self, fd: int, mask: int) -> None:
        """Told by the fd monitor whenever the fd's readiness may have changed."""
        self.mask = mask
        ready = self.ctx._ready
        if mask & self.events and not self.deleted:
            ready[self.seq] = self
        else:
            ready.pop(self.seq, None)

    def __repr__(self) -> str:
        return f"<fd handler fd={self.fd} seq={self.seq}{' deleted' if self.deleted else ''}>"


class _ReadyCondition:
    """The wait condition of a blocking poll: some fd handler of the context is ready."""

    __slots__ = ("ctx",)

    def __init__(self, ctx: AioContext) -> None:
        self.ctx = ctx

    def ready(self) -> bool:
        return bool(self.ctx._ready)

    def describe(self) -> str:
        return f"poll of AioContext {self.ctx.name!r}"


class AioContext:
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
        self._poll_started = False
        self.tlg = TimerListGroup(clock, self.notify, self)
        self.tlg.set_halt(self.halt)
        if observer is not None:
            self.tlg.set_observer(observer)
        self._thread_pool: Any = None
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
        self._notified = True
        if self._notify_me:
            self.notifier.set()

    def _notify_accept(self) -> None:
        self._notified = False

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
        self._notified = True
        if self._notify_me:
            self.notifier.set()

    def _bh_poll(self) -> bool:
        """Run the scheduled bottom halves enqueued before this call (``aio_bh_poll``)."""
        slices = self._bh_slices
        if self._bh_list:
            slices.append(self._bh_list)
            self._bh_list = []
        elif not slices:
            return False
        return self._bh_run_slices()

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
            bh._flags = flags & ~(BH_PENDING | BH_SCHEDULED | BH_IDLE)
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

    # -- fd handlers --------------------------------------------------------------

    def set_fd_handler(
        self,
        fd: int,
        io_read: IOHandler | None,
        io_write: IOHandler | None,
        io_poll: PollFn | None = None,
        io_poll_ready: IOHandler | None = None,
    ) -> None:
        """Register, replace or (all handlers None) remove the handlers of ``fd``."""
        if io_poll is not None and io_poll_ready is None:
            io_poll = None  # polling only makes sense with a handler for it
        old = self._handlers.get(fd)
        if io_read is None and io_write is None and io_poll is None:
            if old is None:
                return
            change = -1 if old.io_poll is None else 0
            del self._handlers[fd]
            self._remove_handler(old)
        else:
            change = (1 if io_poll is None else 0) - (
                1 if old is not None and old.io_poll is None else 0
            )
            node = _Handler(self, fd, self._handler_seq, io_read, io_write, io_poll, io_poll_ready)
            self._handler_seq += 1
            self._handlers[fd] = node
            if old is not None:
                pending = self._gsource_ready
                if pending and old in pending:
                    # Between check and dispatch: the new registration inherits
                    # the polled revents and, being the newest, runs last.
                    pending.remove(old)
                    node.revents = old.revents
                    pending.append(node)
                self._remove_handler(old)
            self.fds.watch(fd, node)
        self._poll_disable_cnt += change
        self.notify()

    def _remove_handler(self, node: _Handler) -> None:
        node.deleted = True
        node.revents = 0
        node.poll_ready = False
        self._ready.pop(node.seq, None)
        if node.in_poll_list:
            node.in_poll_list = False
            del self._poll_list[node.seq]
        self.fds.unwatch(node.fd, node)

    def set_event_notifier(
        self,
        notifier: EventNotifier,
        io_read: IOHandler | None,
        io_poll: PollFn | None = None,
        io_poll_ready: IOHandler | None = None,
    ) -> None:
        """Handlers for an :class:`EventNotifier` (``aio_set_event_notifier``)."""
        self.set_fd_handler(notifier.fd, io_read, None, io_poll, io_poll_ready)

    def handler_count(self) -> int:
        """Registered fd handlers, the context's own notifier excluded."""
        return len(self._handlers) - 1

    # -- timers -------------------------------------------------------------------

    def timer_new_ns(
        self, clock_type: ClockType, cb: Callable[[], object], name: str | None = None
    ) -> Timer:
        """A timer on this context's timer list for ``clock_type``, in ns."""
        return self.tlg.new_timer(clock_type, 1, cb, name)

    def timer_new(
        self, clock_type: ClockType, scale: int, cb: Callable[[], object], name: str | None = None
    ) -> Timer:
        """A timer whose :meth:`Timer.mod` takes times in units of ``scale`` ns."""
        return self.tlg.new_timer(clock_type, scale, cb, name)

    # -- adaptive polling ---------------------------------------------------------

    def set_poll_params(self, max_ns: int, grow: int, shrink: int) -> None:
        """Adaptive polling limits (``aio_context_set_poll_params``); max_ns 0 disables it."""
        if max_ns < 0 or grow < 0 or shrink < 0:
            raise ValueError(
                f"poll parameters must be non-negative (max_ns={max_ns}, grow={grow}, "
                f"shrink={shrink})"
            )
        for node in self._handlers.values():
            node.poll_ns = 0
        self.poll_max_ns = max_ns
        self.poll_grow = grow
        self.poll_shrink = shrink
        self.notify()

    def _poll_set_started(self, ready: dict[int, _Handler], started: bool) -> bool:
        if started == self._poll_started:
            return False
        self._poll_started = started
        progress = False
        if not started:
            for node in list(self._poll_list.values()):
                if node.deleted or node.io_poll is None:
                    continue
                # Poll one last time in case the event came while we stopped polling.
                if node.io_poll():
                    node.poll_ready = True
                    ready[node.seq] = node
                    progress = True
        return progress

    def _try_poll_mode(self, ready: dict[int, _Handler], timeout: int) -> tuple[bool, int]:
        if not self._poll_list:
            return False, timeout
        max_ns = 0
        for node in self._poll_list.values():
            if node.poll_ns > max_ns:
                max_ns = node.poll_ns
        max_ns = soonest_timeout(timeout, max_ns)
        if max_ns and not self._poll_disable_cnt:
            self._poll_set_started(ready, True)
            now = self.clock._now[ClockType.REALTIME]
            progress = False
            for node in list(self._poll_list.values()):
                if node.io_poll is not None and node.io_poll():
                    node.poll_ready = True
                    ready[node.seq] = node
                    node.poll_idle_timeout = now + POLL_IDLE_INTERVAL_NS
                    timeout = 0
                    if not node.is_notifier:
                        progress = True
            if self._remove_idle_poll_handlers(ready, now):
                timeout = 0
                progress = True
            if progress:
                return True, timeout
        return False, timeout

    def _remove_idle_poll_handlers(self, ready: dict[int, _Handler], now: int) -> bool:
        progress = False
        for node in list(self._poll_list.values()):
            if node.poll_idle_timeout == 0:
                node.poll_idle_timeout = now + POLL_IDLE_INTERVAL_NS
            elif now >= node.poll_idle_timeout:
                node.poll_idle_timeout = 0
                node.in_poll_list = False
                del self._poll_list[node.seq]
                # QEMU polls once more only after an io_poll_end callback,
                # which evloop's handlers do not have.
        return progress

    def _adjust_polling_time(self, node: _Handler, block_ns: int) -> None:
        if block_ns <= node.poll_ns:
            return  # the sweet spot
        if block_ns > self.poll_max_ns:
            node.poll_ns = node.poll_ns // self.poll_shrink if self.poll_shrink else 0
        elif node.poll_ns < self.poll_max_ns and block_ns < self.poll_max_ns:
            grow = self.poll_grow or 2
            node.poll_ns = node.poll_ns * grow if node.poll_ns else 4000
            if node.poll_ns > self.poll_max_ns:
                node.poll_ns = self.poll_max_ns

    # -- dispatch -----------------------------------------------------------------

    def _dispatch_handler(self, node: _Handler) -> bool:
        revents = node.revents & node.events
        node.revents = 0
        poll_ready = node.poll_ready
        node.poll_ready = False
        if node.deleted:
            return False
        if not node.in_poll_list and node.io_poll is not None:
            node.in_poll_list = True
            self._poll_list[node.seq] = node
        observer = self._observer
        if poll_ready and revents == 0 and node.io_poll_ready is not None:
            # Off the poll list while the callback runs, in case it polls again.
            if node.in_poll_list:
                node.in_poll_list = False
                del self._poll_list[node.seq]
            if observer is not None and not node.is_notifier:
                observer(DispatchKind.POLL_READY, self, node)
            node.io_poll_ready()
            if not node.in_poll_list and not node.deleted:
                node.in_poll_list = True
                self._poll_list[node.seq] = node
            return not node.is_notifier
        progress = False
        if revents & _POLL_IN and node.io_read is not None:
            if observer is not None and not node.is_notifier:
                observer(DispatchKind.READ, self, node)
            node.io_read()
            if not node.is_notifier:
                progress = True
        if not node.deleted and revents & _POLL_OUT and node.io_write is not None:
            if observer is not None:
                observer(DispatchKind.WRITE, self, node)
            node.io_write()
            progress = True
        return progress

    def _dispatch_ready(self, nodes: list[_Handler]) -> bool:
        progress = False
        halt = self.halt
        for node in nodes:
            if halt[0]:
                break
            if self._dispatch_handler(node):
                progress = True
        return progress

    def _snapshot(self, poll_ready: dict[int, _Handler] | None, with_fds: bool) -> list[_Handler]:
        """Capture the ready handlers and their revents, oldest registration first.

        ``poll_ready`` are handlers whose ``io_poll`` said ready; ``with_fds``
        adds those whose fd is ready (the wait's result).
        """
        if with_fds:
            fd_ready = self._ready
            for node in fd_ready.values():
                node.revents = node.mask & node.events
            if not poll_ready:
                return [fd_ready[k] for k in sorted(fd_ready)] if fd_ready else []
            merged = dict(poll_ready)
            merged.update(fd_ready)
            return [merged[k] for k in sorted(merged)]
        if not poll_ready:
            return []
        return [poll_ready[k] for k in sorted(poll_ready)]

    # -- aio_poll -----------------------------------------------------------------

    def poll(self, blocking: bool) -> bool:
        """One iteration of the loop (``aio_poll``); True if it made progress."""
        if self.halt[0]:
            # The simulation's step limit is reached: give the turn back
            # (a scheduling point) instead of spinning on work it may not do.
            self.blocker.block(self._wait_cond, 0)
            return False
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
                if self._poll_set_started(poll_ready, False):
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
        if self.poll_max_ns:
            block_ns = clock._now[ClockType.REALTIME] - start
            for node in nodes:
                if node.in_poll_list:
                    self._adjust_polling_time(node, block_ns)
        if (self._bh_list or self._bh_slices) and self._bh_poll():
            progress = True
        if nodes and self._dispatch_ready(nodes):
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
        if self._bh_scheduled():
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
        self._bh_poll()
        nodes = self._gsource_ready
        self._gsource_ready = []
        self._dispatch_ready(nodes)
        self.tlg.run_timers()

    # -- thread pool --------------------------------------------------------------

    def thread_pool_submit(
        self, fn: Callable[[], object], done_cb: Callable[[object], object]
    ) -> None:
        """Run ``fn`` on a worker thread of control; ``done_cb(result)`` runs here via a BH."""
        if self._thread_pool is None:
            from ..machine.threadpool import ThreadPool

            self._thread_pool = ThreadPool(self)
        self._thread_pool.submit(fn, done_cb)

    def __repr__(self) -> str:
        return (
            f"<AioContext {self.name!r} handlers={self.handler_count()} "
            f"bhs={len(self._bh_list)} timers={self.tlg.pending_count()}>"
        )
