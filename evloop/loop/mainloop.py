"""The main loop: two GSources and the main-loop timers (``util/main-loop.c``).

QEMU's main thread runs glib's main context with two sources, both
``AioContext``\\s: ``qemu_aio_context`` (the context block devices and bottom
halves use) and ``iohandler_ctx`` (where ``qemu_set_fd_handler`` puts the
fds of chardevs, the monitor and such). ``iohandler_ctx`` is only ever polled
here, never by ``aio_poll(qemu_aio_context)``, which is the reason it exists.

One round of glib (:meth:`MainLoop.iteration`, ``g_main_context_iteration``):

1. prepare every source, collecting timeouts in *milliseconds*, as glib polls
   in ms (so a 750.5 ms deadline waits 751 ms);
2. poll the fds: the one point where the thread of control lets others run
   (``os_host_main_loop_wait`` drops the BQL and the replay mutex around it);
3. check every source, then dispatch every source that was ready at prepare
   or passes check.

:meth:`MainLoop.wait` is ``main_loop_wait``: the same round with the
main-loop timer list group's deadline folded into the poll timeout in ns,
then the main-loop timers run. QEMU wakes the main loop for a re-armed
main-loop timer through a bottom half (``qemu_notify_event``); we wake it
with ``aio_notify`` instead, which has the same effect and is not a callback
anyone could observe.
"""

from __future__ import annotations

from collections.abc import Callable

from ..seams import Blocker, DispatchObserver
from .aio import AioContext
from .clock import SCALE_MS, ClockType, VirtualClock, soonest_timeout, timeout_ns_to_ms
from .fds import FdTable
from .timer import Timer
from .timergroup import TimerListGroup
from .waiting import WarpBlocker

__all__ = ["MainLoop"]


class _MainLoopCondition:
    __slots__ = ("contexts",)

    def __init__(self, contexts: tuple[AioContext, ...]) -> None:
        self.contexts = contexts

    def ready(self) -> bool:
        for ctx in self.contexts:  # noqa: SIM110 (asked at every handover: no generator)
            if ctx._ready:
                return True
        return False

    def describe(self) -> str:
        return "main_loop_wait"


class MainLoop:
    """QEMU's main loop over a clock and an fd layer (fresh virtual ones by default)."""

    def __init__(
        self,
        clock: VirtualClock | None = None,
        fds: FdTable | None = None,
        *,
        observer: DispatchObserver | None = None,
    ) -> None:
        self.clock = clock if clock is not None else VirtualClock()
        self.fds = fds if fds is not None else FdTable()
        self.aio_context = AioContext(self.clock, self.fds, name="aio-context", observer=observer)
        self.iohandler_context = AioContext(
            self.clock, self.fds, name="io-handler", observer=observer
        )
        self._sources = (self.aio_context, self.iohandler_context)
        self.tlg = TimerListGroup(self.clock, self.notify_event, self)
        if observer is not None:
            self.tlg.set_observer(observer)
        self.halt = self.aio_context.halt
        self.iohandler_context.halt = self.halt
        self.iohandler_context.tlg.set_halt(self.halt)
        self.tlg.set_halt(self.halt)
        #: The dirty signal of both contexts and the main-loop timers (see
        #: ``AioContext.dirty`` and ``quiet.py``).
        self.dirty = self.aio_context.dirty
        self.iohandler_context.set_dirty(self.dirty)
        self.tlg.set_dirty(self.dirty)
        self._cond = _MainLoopCondition(self._sources)
        self.name = "main-loop"
        #: Digest identity of the main-loop timer list group's owner.
        self.uid = 0xFF
        self._warp: WarpBlocker | None = None

    @property
    def blocker(self) -> Blocker:
        blocker = self.fds.blocker
        if blocker is not None:
            return blocker
        if self._warp is None:
            self._warp = WarpBlocker(self.clock)
        return self._warp

    def set_observer(self, observer: DispatchObserver | None) -> None:
        for ctx in self._sources:
            ctx.set_observer(observer)
        self.tlg.set_observer(observer)

    def notify_event(self) -> None:
        """Wake the main loop from any thread of control (``qemu_notify_event``).

        Only a main loop that is waiting (between prepare and check, when
        ``notify_me`` is set) needs the kick; otherwise it will see the change
        when it next prepares, so nothing is done.
        """
        ctx = self.aio_context
        if ctx._notify_me:
            ctx.notify()

    def set_fd_handler(
        self, fd: int, io_read: Callable[[], object] | None, io_write: Callable[[], object] | None
    ) -> None:
        """``qemu_set_fd_handler``: handlers on ``iohandler_context``."""
        self.iohandler_context.set_fd_handler(fd, io_read, io_write)

    def timer_new_ns(
        self,
        clock_type: ClockType,
        cb: Callable[[], object],
        name: str | None = None,
        *,
        attributes: int = 0,
    ) -> Timer:
        """A timer on the main-loop timer list group (``timer_new_ns``, ``timer_new_full``)."""
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
        return self.tlg.new_timer(clock_type, scale, cb, name, attributes)

    def _glib_round(self, timeout_ns: int) -> bool:
        """prepare, poll (the turn is released here), check, dispatch; True if any dispatched."""
        sources = self._sources
        ready_at_prepare = []
        poll_ms = -1
        for src in sources:
            ready, src_timeout_ns = src.prepare()
            ready_at_prepare.append(ready)
            ms = timeout_ns_to_ms(src_timeout_ns)
            if ms >= 0 and (poll_ms < 0 or ms < poll_ms):
                poll_ms = ms
        if True in ready_at_prepare:
            poll_ms = 0
        poll_ns = -1 if poll_ms < 0 else poll_ms * SCALE_MS
        poll_ns = soonest_timeout(poll_ns, timeout_ns)
        try:
            self.blocker.block(self._cond, poll_ns)
        finally:
            # glib checks only the sources that were not ready at prepare; the
            # others keep notify_me set (so a notify during their dispatch is
            # seen next time), but get their revents all the same.
            checks = [
                src.take_revents() if at_prepare else src.check()
                for src, at_prepare in zip(sources, ready_at_prepare, strict=True)
            ]
        dispatched = False
        for src, at_prepare, checked in zip(sources, ready_at_prepare, checks, strict=True):
            if at_prepare or checked:
                src.dispatch()
                dispatched = True
        return dispatched

    def iteration(self, may_block: bool) -> bool:
        """One ``g_main_context_iteration`` over both sources; True if any dispatched."""
        return self._glib_round(-1 if may_block else 0)

    def wait(self, nonblocking: bool = False) -> bool:
        """``main_loop_wait``; True if a source dispatched or a main-loop timer ran."""
        timeout_ns = 0 if nonblocking else -1
        timeout_ns = soonest_timeout(timeout_ns, self.tlg.deadline_ns())
        dispatched = self._glib_round(timeout_ns)
        if self.tlg.run_timers():
            dispatched = True
        return dispatched

    def __repr__(self) -> str:
        return f"<MainLoop {self.aio_context!r} {self.iohandler_context!r}>"
