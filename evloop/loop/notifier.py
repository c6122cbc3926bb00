"""``EventNotifier``: QEMU's ``util/event_notifier-posix.c`` on a virtual eventfd.

An event notifier is a level-triggered flag one side sets and the other side
polls for and clears; ``AioContext`` uses one to wake a blocked ``aio_poll``.
As in QEMU on Linux, it is a single eventfd in counting (non-semaphore) mode,
both its read and its write side:

* ``set`` writes 1. If the counter is full the write fails with EAGAIN, which
  is ignored, as QEMU does ("EAGAIN is fine, a read must be pending"): the
  notifier is set either way.
* ``test_and_clear`` reads once. In counting mode one read returns the whole
  counter and resets it, so the notifier is empty afterwards; QEMU's loop
  around ``read`` stops after the same single read, since 8 bytes is less
  than its 512-byte buffer.

After :meth:`EventNotifier.close` the fd number may belong to another object,
so the notifier refuses further use itself (EBADF) rather than touching that
number again.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select

from .fds import FdTable

__all__ = ["EventNotifier"]

_ONE = (1).to_bytes(8, "little")
# Any read size >= 8 reads an eventfd; this is QEMU's buffer size.
_READ_SIZE = 512


class EventNotifier:
    """A settable, pollable flag on an eventfd of ``fds`` (QEMU ``EventNotifier``)."""

    __slots__ = ("_fd", "_fds")

    def __init__(self, fds: FdTable, active: bool = False) -> None:
        self._fds = fds
        self._fd = fds.eventfd(0, semaphore=False)
        if active:
            self.set()

    @property
    def fd(self) -> int:
        """The eventfd to poll for POLLIN; -1 once closed (``event_notifier_get_fd``)."""
        return self._fd

    def set(self) -> None:
        """Make the notifier readable (``event_notifier_set``)."""
        fd = self._check_open("set")
        # EAGAIN means the counter is full: still set, a read must be pending.
        with contextlib.suppress(BlockingIOError):
            self._fds.write(fd, _ONE)

    def test_and_clear(self) -> bool:
        """Clear the notifier; True if it was set (``event_notifier_test_and_clear``)."""
        fd = self._check_open("test_and_clear")
        try:
            self._fds.read(fd, _READ_SIZE)
        except BlockingIOError:
            return False
        return True

    def close(self) -> None:
        """Close the eventfd (``event_notifier_cleanup``); closing twice does nothing."""
        fd = self._fd
        if fd < 0:
            return
        self._fd = -1
        self._fds.close(fd)

    def _check_open(self, op: str) -> int:
        fd = self._fd
        if fd < 0:
            raise OSError(
                errno.EBADF, f"{os.strerror(errno.EBADF)} ({op} on a closed EventNotifier)"
            )
        return fd

    def __repr__(self) -> str:
        fd = self._fd
        if fd < 0:
            return "<EventNotifier closed>"
        state = "set" if self._fds.mask(fd) & select.POLLIN else "clear"
        return f"<EventNotifier fd={fd} {state}>"
