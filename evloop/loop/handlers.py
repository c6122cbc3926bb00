"""The fd handlers of an ``AioContext``: registration, readiness, adaptive polling, dispatch.

QEMU keeps these in ``util/aio-posix.c`` beside ``aio_poll``; here they are a
part of :class:`~evloop.AioContext` (a base class it inherits), so that the
context's module holds the loop itself. The rules are the context's (see
``aio.py``): ready handlers run oldest registration first; re-registering an
fd replaces its handler with a new, newest one; readiness is level-triggered
but tracked (the fd monitor tells each handler when its fd's readiness
changes); the ready set is snapshot when the wait ends.
"""

from __future__ import annotations

import select
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..seams import DispatchKind
from .clock import ClockType, VirtualClock, soonest_timeout

if TYPE_CHECKING:
    from ..seams import DispatchObserver
    from .fds import FdTable
    from .notifier import EventNotifier

__all__ = ["POLL_IDLE_INTERVAL_NS", "FdHandlers", "IOHandler", "PollFn"]

_POLL_IN = select.POLLIN | select.POLLHUP | select.POLLERR
_POLL_OUT = select.POLLOUT | select.POLLERR
#: Stop polling a handler that has not been ready for this long.
POLL_IDLE_INTERVAL_NS = 7_000_000_000

# The observer's kinds as plain module ints: class attributes cost a lookup.
_READ_KIND = DispatchKind.READ
_WRITE_KIND = DispatchKind.WRITE
_POLL_READY_KIND = DispatchKind.POLL_READY

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
        "io_poll_begin",
        "io_poll_end",
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
        ctx: FdHandlers,
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
        self.io_poll_begin: IOHandler | None = None
        self.io_poll_end: IOHandler | None = None
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
        ctx = self.ctx
        ready = ctx._ready
        if mask & self.events and not self.deleted:
            ready[self.seq] = self
            ctx._ready_dirty[0] = True
        else:
            ready.pop(self.seq, None)

    def __repr__(self) -> str:
        return f"<fd handler fd={self.fd} seq={self.seq}{' deleted' if self.deleted else ''}>"



class FdHandlers:
    """The fd-handler half of an ``AioContext`` (its ``__init__`` sets these fields)."""

    clock: VirtualClock
    fds: FdTable
    halt: list[bool]
    dirty: list[bool]
    notifier: EventNotifier
    _observer: DispatchObserver | None
    _handlers: dict[int, _Handler]
    _ready: dict[int, _Handler]
    _ready_dirty: list[bool]
    _handler_seq: int
    _poll_disable_cnt: int
    _poll_list: dict[int, _Handler]
    _gsource_ready: list[_Handler]
    _poll_started: bool
    poll_max_ns: int
    poll_grow: int
    poll_shrink: int

    def notify(self) -> None:
        raise NotImplementedError

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
        self.dirty[0] = True
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

    def set_event_notifier_poll(
        self,
        notifier: EventNotifier,
        io_poll_begin: IOHandler | None,
        io_poll_end: IOHandler | None,
    ) -> None:
        """Callbacks for when poll mode starts and stops (``aio_set_event_notifier_poll``).

        Set on the notifier's current registration (nothing happens if it has
        none); a later :meth:`set_event_notifier` makes a new registration
        without them, as in QEMU. ``io_poll_begin`` runs when poll mode starts
        for a handler on the poll list, or when the handler joins the list
        while poll mode is on; ``io_poll_end`` when poll mode stops, or when
        an idle handler leaves the list, followed by one last ``io_poll``
        that catches an event which raced with it (a virtqueue re-enabling
        its notifications, say).
        """
        node = self._handlers.get(notifier.fd)
        if node is None:
            return
        node.io_poll_begin = io_poll_begin
        node.io_poll_end = io_poll_end

    def handler_count(self) -> int:
        """Registered fd handlers, the context's own notifier excluded."""
        return len(self._handlers) - 1

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
        self.dirty[0] = True
        self.notify()

    def _poll_set_started(self, ready: dict[int, _Handler], started: bool) -> bool:
        if started == self._poll_started:
            return False
        self._poll_started = started
        progress = False
        for node in list(self._poll_list.values()):
            if node.deleted or node.io_poll is None:
                continue
            fn = node.io_poll_begin if started else node.io_poll_end
            if fn is not None:
                fn()
            # Poll one last time in case the event raced with io_poll_end.
            if not started and node.io_poll():
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
                if self._poll_started and node.io_poll_end is not None:
                    node.io_poll_end()
                    # A last poll, in case io_poll_end raced with an event.
                    if node.io_poll is not None and node.io_poll():
                        node.poll_ready = True
                        ready[node.seq] = node
                        progress = True
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
            # Start polling a handler once it is ready: activity is likely to go on.
            if self._poll_started and node.io_poll_begin is not None:
                node.io_poll_begin()
            node.in_poll_list = True
            self._poll_list[node.seq] = node
        observer = self._observer
        if poll_ready and revents == 0 and node.io_poll_ready is not None:
            # Off the poll list while the callback runs, in case it polls again.
            if node.in_poll_list:
                node.in_poll_list = False
                del self._poll_list[node.seq]
            if observer is not None and not node.is_notifier:
                observer(_POLL_READY_KIND, self, node)
            node.io_poll_ready()
            if not node.in_poll_list and not node.deleted:
                node.in_poll_list = True
                self._poll_list[node.seq] = node
            return not node.is_notifier
        progress = False
        if revents & _POLL_IN and node.io_read is not None:
            if observer is not None and not node.is_notifier:
                observer(_READ_KIND, self, node)
            node.io_read()
            if not node.is_notifier:
                progress = True
        if not node.deleted and revents & _POLL_OUT and node.io_write is not None:
            if observer is not None:
                observer(_WRITE_KIND, self, node)
            node.io_write()
            progress = True
        return progress

    def _dispatch_ready(self, nodes: list[_Handler], block_ns: int) -> bool:
        """Run ``nodes`` (``aio_dispatch_ready_handlers``); True if any made progress.

        A handler's polling window is adjusted right *after* it runs, from
        ``block_ns``, the time the poll blocked: only then is a handler that
        became ready for the first time on the poll list, so its very first
        wake already opens its window (QEMU 10.0, commit f76d3bee75; before,
        the window was adjusted before dispatch and a new handler's stayed 0
        until its second wake).
        """
        progress = False
        halt = self.halt
        for node in nodes:
            if halt[0]:
                break
            if self._dispatch_handler(node):
                progress = True
            if self.poll_max_ns and node.in_poll_list:
                self._adjust_polling_time(node, block_ns)
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
                if len(fd_ready) < 2:
                    return list(fd_ready.values())
                return [fd_ready[k] for k in sorted(fd_ready)]
            merged = dict(poll_ready)
            merged.update(fd_ready)
            return [merged[k] for k in sorted(merged)]
        if not poll_ready:
            return []
        return [poll_ready[k] for k in sorted(poll_ready)]

