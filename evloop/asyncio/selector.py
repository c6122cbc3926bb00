"""``VirtualSelector``: a ``selectors.BaseSelector`` over a simulation's virtual fds.

asyncio's selector event loop asks its selector which registered fds are
ready. This one answers from the virtual fd layer (:class:`~evloop.FdTable`)
and never makes a system call. Rules kept here:

* **Readiness is tracked, not scanned**, as in ``AioContext``: each
  registration watches its fd number (``FdTable.watch``) and is told its mask
  whenever it may change; the selector keeps the set of registrations that
  are ready for something they asked for. Finding the ready fds costs
  O(ready), never O(registered).
* **poll(2) bits map to selector events as epoll's do.** ``POLLIN`` is
  readable, ``POLLOUT`` writable; ``POLLHUP`` and ``POLLERR`` make an fd both
  (so a reader meets EOF and a writer meets its error); ``POLLNVAL`` (the
  number was closed under the registration) makes it both too, so whoever
  waits on it finds out, instead of waiting forever.
* **Ready fds are listed oldest registration first.** Which of several
  ready fds a real kernel reports first is not specified; the loop turns that
  into a decision (``ChoiceKind.READY_FD``) whose first option is this order.
* :meth:`select` never blocks: the loop does its blocking through the
  simulation (other threads of control run, virtual time warps) before it
  asks. A timeout is accepted for the ``BaseSelector`` contract and ignored.
"""

from __future__ import annotations

import errno
import os
import select
import selectors
from collections.abc import Mapping
from typing import Any

from ..loop.fds import FdTable

__all__ = ["VirtualSelector"]

EVENT_READ = selectors.EVENT_READ
EVENT_WRITE = selectors.EVENT_WRITE

_READABLE = select.POLLIN | select.POLLHUP | select.POLLERR | select.POLLNVAL
_WRITABLE = select.POLLOUT | select.POLLHUP | select.POLLERR | select.POLLNVAL


def _fileobj_to_fd(fileobj: Any) -> int:
    if isinstance(fileobj, int):
        fd = fileobj
    else:
        try:
            fd = int(fileobj.fileno())
        except (AttributeError, TypeError, ValueError):
            raise ValueError(f"Invalid file object: {fileobj!r}") from None
    if fd < 0:
        raise ValueError(f"Invalid file descriptor: {fd}")
    return fd


class _Registration:
    """One registered fd: its key, and its readiness as the fd layer last told it."""

    __slots__ = ("events", "key", "ready", "selector", "seq")

    def __init__(self, selector: VirtualSelector, key: selectors.SelectorKey, seq: int) -> None:
        self.selector = selector
        self.key = key
        self.seq = seq
        self.events = key.events
        self.ready = 0

    def fd_ready(self, fd: int, mask: int) -> None:
        ready = (EVENT_READ if mask & _READABLE else 0) | (EVENT_WRITE if mask & _WRITABLE else 0)
        ready &= self.events
        self.ready = ready
        table = self.selector._ready
        if ready:
            table[self.seq] = self
        else:
            table.pop(self.seq, None)


class _Map(Mapping[Any, selectors.SelectorKey]):
    __slots__ = ("_selector",)

    def __init__(self, selector: VirtualSelector) -> None:
        self._selector = selector

    def __len__(self) -> int:
        return len(self._selector._regs)

    def get(self, fileobj: Any, default: Any = None) -> Any:
        try:
            fd = _fileobj_to_fd(fileobj)
        except ValueError:
            return default
        reg = self._selector._regs.get(fd)
        return default if reg is None else reg.key

    def __getitem__(self, fileobj: Any) -> selectors.SelectorKey:
        reg = self._selector._regs.get(_fileobj_to_fd(fileobj))
        if reg is None:
            raise KeyError(f"{fileobj!r} is not registered")
        return reg.key

    def __iter__(self) -> Any:
        return iter(sorted(self._selector._regs))


class VirtualSelector(selectors.BaseSelector):
    """The selector of a :class:`~evloop.asyncio.SimEventLoop`: virtual fds, tracked readiness."""

    def __init__(self, fds: FdTable) -> None:
        self.fds = fds
        self._regs: dict[int, _Registration] = {}
        #: The registrations ready for something they asked for, by registration number.
        self._ready: dict[int, _Registration] = {}
        self._seq = 0
        self._map = _Map(self)
        self._closed = False

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        if not events or events & ~(EVENT_READ | EVENT_WRITE):
            raise ValueError(f"Invalid events: {events!r}")
        fd = _fileobj_to_fd(fileobj)
        if fd in self._regs:
            raise KeyError(f"{fileobj!r} (FD {fd}) is already registered")
        if not self.fds.is_open(fd):
            # epoll_ctl's answer; a real fd number means nothing here.
            code = errno.EBADF
            raise OSError(code, f"{os.strerror(code)} (register on virtual fd {fd})")
        key = selectors.SelectorKey(fileobj, fd, events, data)
        self._seq += 1
        reg = _Registration(self, key, self._seq)
        self._regs[fd] = reg
        self.fds.watch(fd, reg)
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        fd = _fileobj_to_fd(fileobj)
        reg = self._regs.pop(fd, None)
        if reg is None:
            raise KeyError(f"{fileobj!r} is not registered")
        self._ready.pop(reg.seq, None)
        self.fds.unwatch(fd, reg)
        return reg.key

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        fd = _fileobj_to_fd(fileobj)
        reg = self._regs.get(fd)
        if reg is None:
            raise KeyError(f"{fileobj!r} is not registered")
        if events != reg.events:
            if not events or events & ~(EVENT_READ | EVENT_WRITE):
                raise ValueError(f"Invalid events: {events!r}")
            # A new registration, as asyncio's own selectors do on an events
            # change; it keeps its place in the order (the fd is the same).
            key = selectors.SelectorKey(reg.key.fileobj, fd, events, data)
            reg.key = key
            reg.events = events
            reg.fd_ready(fd, self.fds.mask(fd))
            return key
        if data is not reg.key.data:
            reg.key = reg.key._replace(data=data)
        return reg.key

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        """The ready registrations now (never blocks: see the module docstring)."""
        ready = self._ready
        if not ready:
            return []
        if len(ready) == 1:
            for reg in ready.values():
                return [(reg.key, reg.ready)]
        return [(ready[seq].key, ready[seq].ready) for seq in sorted(ready)]

    def close(self) -> None:
        for fd, reg in sorted(self._regs.items()):
            self.fds.unwatch(fd, reg)
        self._regs.clear()
        self._ready.clear()
        self._closed = True

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._map

    def describe(self) -> str:
        return f"fds {sorted(self._regs)}"
