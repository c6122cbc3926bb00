"""The virtual fd layer: pipes, socket pairs and eventfds that exist only in memory.

:class:`FdTable` gives a simulated process the non-blocking POSIX file
descriptors that QEMU's event loop is built on, with the behaviour of Linux,
and without a single real fd, OS call, clock read or random number. These are
the rules it keeps, and why:

Rule 1: numbers are allocated as POSIX allocates them. A new fd gets the lowest
free number ``>= first_fd`` (3 by default: 0, 1 and 2 belong to the process's
standard streams, which this table does not model). ``pipe()`` takes the read
end first, then the write end. A closed number is free again at once. Freed
numbers wait in a min-heap, so allocation never scans the table.

Rule 2: failures are the builtin ``OSError`` family with a Linux errno
(``BlockingIOError`` for EAGAIN, ``BrokenPipeError`` for EPIPE, plain
``OSError`` for EBADF and EINVAL), so code written against real fds handles them
unchanged. Every message has one shape, ``"<strerror> (<op> on fd <n>)"``, e.g.
``OSError(EBADF, "Bad file descriptor (read on fd 7)")``. Argument mistakes that
no kernel would see (a negative read size, an eventfd initial value outside an
``unsigned int``) are ``ValueError``, checked before anything else. The rest
run in the kernel's order: the fd and its access mode first (``read`` on a
write end is EBADF even for 0 bytes), then the object's own rules (an eventfd
read of fewer than 8 bytes is EINVAL even for 0 bytes, and before EAGAIN;
EPIPE comes before EAGAIN).

Rule 3: readiness is *tracked*, never scanned. :meth:`FdTable.mask` computes
one fd's mask from its object's state in constant time, and every operation
that may change a mask tells the watchers of the fd numbers it touched
(:meth:`FdTable.watch`). Numbers with no watchers cost one failed dict lookup,
so nothing grows with the number of open or watched fds. Watchers follow the
*number*, as poll(2) does: after ``close(5)`` they are told POLLNVAL, and when a
new object takes number 5 they are told its mask.

Rule 4: notification order is total. An operation tells the fd it was called
on first, then the other end of the same object (``pipe()`` and
``socketpair()``: first fd, then second); each fd's watchers in registration
order. Each watcher is handed the mask as it is *at the moment of the call*, so
a watcher that reads or writes from inside ``fd_ready`` cannot leave a later
watcher holding a stale mask: whatever happens, every watcher is last told the
current mask. A watcher unwatched during a round is not called again in it; a
watcher added during a round got its own call from ``watch``. An exception
from a watcher propagates unchanged; the operation itself has already
completed.

Rule 5: every byte written passes through one private method per kind of
object (:meth:`FdTable._write_pipe`, :meth:`FdTable._write_socket`,
:meth:`FdTable._write_eventfd`), the seam where a fault injector will later
delay, drop or duplicate bytes. :attr:`FdTable.faults` (``faults.py``) is
that injector: it sees every pipe and socket write the kernel would accept
and every read that would return data, and lands bytes through
:meth:`FdTable._land`. Eventfds are never faulted.

What Linux does that this layer simplifies, on purpose:

* a pipe holds :data:`PIPE_CAPACITY` bytes, counted in bytes rather than in
  page-sized slots; POLLOUT means "at least :data:`PIPE_BUF` bytes free", the
  room an atomic write needs, which is also what Linux's slot accounting gives
  for small writes;
* a socket end's receive queue holds :attr:`_SocketEnd.capacity` bytes
  (:data:`SOCKET_CAPACITY` unless set), standing for SO_RCVBUF; there is no
  send buffer, a write lands straight in the peer's queue, so the bytes in
  flight one way are bounded by the receiver's queue;
* closing an end of a ``socketpair()`` with unread data does not reset the
  peer (Linux would give the peer ECONNRESET and POLLERR): the peer sees a
  clean EOF. The network's sockets (``net.py``) do reset, as Linux does;
* there is no dup() and no SIGPIPE: a write to a closed reader is simply
  ``BrokenPipeError``, as in a Python process, which ignores SIGPIPE.

Rule 6: a socket end keeps Linux's half-close. :meth:`FdTable.shutdown`
(``SHUT_RD``, ``SHUT_WR``, ``SHUT_RDWR``) sets the end's own shutdown bits; a
``SHUT_WR`` is a FIN, seen by the peer as EOF (POLLIN and POLLRDHUP) once
every byte before it has arrived, while the other direction keeps flowing.
POLLHUP means both directions are shut (``tcp_poll``/``unix_poll``). An end
whose fd is :data:`EMBRYO` is a connection a listener has not accepted yet:
bytes land in its queue, but it has no number to notify. Other objects (the
network's listeners, unconnected and datagram sockets) live in the table as
:class:`FdObject` and answer for themselves.
"""

from __future__ import annotations

import errno
import heapq
import select
from collections.abc import Callable
from typing import Final, Protocol

from ..seams import Blocker, FdWatcher
from .fdpoll import PollCalls
from .stream import (
    _SHUT_RD,
    _SHUT_WR,
    PAIR,
    SOCKET_CAPACITY,
    TCP,
    UNIX,
    FdObject,
    SocketCalls,
    _error,
    _socket_mask,
    _SocketEnd,
)

__all__ = [
    "EMBRYO",
    "PAIR",
    "TCP",
    "UNIX",
    "EVENTFD_MAX",
    "PIPE_BUF",
    "PIPE_CAPACITY",
    "SOCKET_CAPACITY",
    "FdFaults",
    "FdObject",
    "FdTable",
]

#: Bytes a pipe holds (Linux's default of 16 pages).
PIPE_CAPACITY: Final = 65536
#: Writes to a pipe of at most this many bytes are atomic: all or EAGAIN.
PIPE_BUF: Final = 4096
#: The fd of a socket end that a listener holds but has not handed out by accept().
EMBRYO: Final = -2
#: The largest value an eventfd counter can hold (2**64 - 2).
EVENTFD_MAX: Final = 0xFFFFFFFFFFFFFFFE

_EVENTFD_INITVAL_MAX: Final = 0xFFFFFFFF  # eventfd(2) takes an unsigned int
_EVENTFD_INVALID: Final = 0xFFFFFFFFFFFFFFFF  # a write of 2**64 - 1 is EINVAL

_POLLIN: Final = select.POLLIN
_POLLOUT: Final = select.POLLOUT
_POLLERR: Final = select.POLLERR
_POLLHUP: Final = select.POLLHUP
_POLLNVAL: Final = select.POLLNVAL
# Linux-only in the select module; the virtual layer is Linux on every host.
_POLLRDHUP: Final[int] = getattr(select, "POLLRDHUP", 0x2000)


class FdFaults(Protocol):
    """The fault injector interposed on pipe and socket reads and writes (``faults.py``)."""

    def read(self, fd: int, available: int, n: int) -> int:
        """How many bytes a read of ``n > 0`` takes from ``available > 0``; may raise."""
        ...

    def write(self, fd: int, writer: _Pipe | _SocketEnd, data: bytes) -> int:
        """Write ``data`` (non-empty, cut to the room there) via ``_land``; may raise."""
        ...

    def holds(self, writer: _Pipe | _SocketEnd) -> bool:
        """Bytes from ``writer`` are held back: its close must not show as EOF yet."""
        ...

    def datagram(self, fd: int, data: bytes, land: Callable[[bytes], None]) -> None:
        """Send one datagram from ``fd``: ``land(data)`` now, later, twice or never."""
        ...


class _Pipe:
    """One pipe: a shared buffer between a read end and a write end.

    An end's fd is -1 once it is closed. As in Linux, the buffer outlives the
    read end (nobody can read it any more, and writes get EPIPE), so the write
    end's POLLOUT still reflects it.
    """

    __slots__ = ("buf", "read_fd", "write_fd")

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.buf = bytearray()
        self.read_fd = read_fd
        self.write_fd = write_fd


class _EventFd:
    """An eventfd: a 64-bit counter, read and written as 8 little-endian bytes."""

    __slots__ = ("counter", "fd", "semaphore")

    def __init__(self, fd: int, counter: int, semaphore: bool) -> None:
        self.fd = fd
        self.counter = counter
        self.semaphore = semaphore


_FdObject = _Pipe | _SocketEnd | _EventFd | FdObject


class FdTable(SocketCalls, PollCalls):
    """The fd table of one simulated process (see the module docstring for its rules).

    ``blocker`` is where :meth:`poll` blocks when nothing is ready; a
    :class:`~evloop.Simulation` sets it. Without one, a finite timeout returns
    ``[]`` at once and an infinite one raises :class:`~evloop.errors.DeadlockError`.
    """

    __slots__ = (
        "_fds", "_first_fd", "_free", "_next_fd", "_watchers", "blocker", "faults", "preempt",
    )

    def __init__(self, *, first_fd: int = 3, blocker: Blocker | None = None) -> None:
        if first_fd < 0:
            raise ValueError(f"first_fd must not be negative, not {first_fd}")
        self.blocker = blocker
        #: The fault injector of a simulation with data faults enabled, else None.
        self.faults: FdFaults | None = None
        #: A simulation's fine preemption point (``machine/preemption.py``), else None:
        #: in fine mode the table's eventfd writes and reads call it first.
        self.preempt: Callable[[], None] | None = None
        self._first_fd = first_fd
        self._fds: dict[int, _FdObject] = {}
        # Numbers below _next_fd that were closed; every number >= _next_fd is free.
        self._free: list[int] = []
        self._next_fd = first_fd
        # fd number -> its watchers in registration order. Replaced, never mutated,
        # so a notification round can iterate the tuple it started with.
        self._watchers: dict[int, tuple[FdWatcher, ...]] = {}

    # -- creating -----------------------------------------------------------

    def pipe(self) -> tuple[int, int]:
        """A new pipe as ``(read_end, write_end)``, like pipe2(O_NONBLOCK)."""
        read_fd = self._allocate()
        write_fd = self._allocate()
        pipe = _Pipe(read_fd, write_fd)
        self._fds[read_fd] = pipe
        self._fds[write_fd] = pipe
        self._notify(read_fd)
        self._notify(write_fd)
        return read_fd, write_fd

    def socketpair(self) -> tuple[int, int]:
        """A connected AF_UNIX SOCK_STREAM pair; both ends read and write."""
        a = _SocketEnd(self._allocate())
        b = _SocketEnd(self._allocate())
        a.peer = b
        b.peer = a
        self._fds[a.fd] = a
        self._fds[b.fd] = b
        self._notify(a.fd)
        self._notify(b.fd)
        return a.fd, b.fd

    def eventfd(self, initval: int = 0, semaphore: bool = False) -> int:
        """A new eventfd with counter ``initval``, like eventfd(initval, EFD_NONBLOCK)."""
        if not 0 <= initval <= _EVENTFD_INITVAL_MAX:
            raise ValueError(
                f"eventfd initval must be in 0..{_EVENTFD_INITVAL_MAX:#x} "
                f"(an unsigned int), not {initval}"
            )
        fd = self._allocate()
        self._fds[fd] = _EventFd(fd, initval, semaphore)
        self._notify(fd)
        return fd

    def _allocate(self) -> int:
        if self._free:
            return heapq.heappop(self._free)
        fd = self._next_fd
        self._next_fd = fd + 1
        return fd

    # -- reading ------------------------------------------------------------

    def read(self, fd: int, n: int) -> bytes:
        """Up to ``n`` bytes from ``fd``; ``b""`` at EOF; BlockingIOError if none yet."""
        if n < 0:
            raise ValueError(f"read size must not be negative (read of {n} bytes on fd {fd})")
        obj = self._fds.get(fd)
        if isinstance(obj, _Pipe):
            if fd != obj.read_fd:
                raise _error(errno.EBADF, "read", fd)
            eof = obj.write_fd < 0 and not self._held(obj)
            return self._read_buffer(obj.buf, eof, fd, obj.write_fd, n)
        if isinstance(obj, _SocketEnd):
            if obj.queue or n == 0:
                return self._read_buffer(obj.queue, False, fd, obj.peer.fd, n)
            return self._read_socket_empty(obj, fd)
        if isinstance(obj, _EventFd):
            return self._read_eventfd(obj, n)
        if obj is not None:
            data: bytes = obj.fd_read(fd, n)
            return data
        raise _error(errno.EBADF, "read", fd)

    def _read_buffer(self, buf: bytearray, eof: bool, fd: int, other_fd: int, n: int) -> bytes:
        """Read from a pipe's buffer or a socket end's receive queue.

        ``eof``: the writing side is closed, so an empty buffer means end of file.
        ``other_fd`` is the fd whose mask the read may change besides ``fd``.
        """
        if n == 0:
            return b""
        if not buf:
            if eof:
                return b""
            raise _error(errno.EAGAIN, "read", fd)
        if self.faults is not None:
            n = self.faults.read(fd, len(buf), n)
        if n >= len(buf):
            data = bytes(buf)
            buf.clear()
        else:
            data = bytes(buf[:n])
            del buf[:n]  # amortised O(1): bytearray deletes from the front in place
        self._notify(fd)
        if other_fd >= 0:
            self._notify(other_fd)
        return data

    def _read_eventfd(self, efd: _EventFd, n: int) -> bytes:
        fd = efd.fd
        if n < 8:
            raise _error(errno.EINVAL, "read", fd)
        counter = efd.counter
        if counter == 0:
            raise _error(errno.EAGAIN, "read", fd)
        if efd.semaphore:
            value = 1
            efd.counter = counter - 1
        else:
            value = counter
            efd.counter = 0
        self._notify(fd)
        return value.to_bytes(8, "little")  # the byte order of x86 Linux

    # -- writing ------------------------------------------------------------

    def write(self, fd: int, data: bytes) -> int:
        """Write ``data`` to ``fd``; returns how many bytes were taken."""
        obj = self._fds.get(fd)
        if isinstance(obj, _Pipe):
            if fd != obj.write_fd:
                raise _error(errno.EBADF, "write", fd)
            return self._write_pipe(obj, data)
        if isinstance(obj, _SocketEnd):
            return self._write_socket(obj, data)
        if isinstance(obj, _EventFd):
            return self._write_eventfd(obj, data)
        if obj is not None:
            taken: int = obj.fd_write(fd, data)
            return taken
        raise _error(errno.EBADF, "write", fd)

    def _write_pipe(self, pipe: _Pipe, data: bytes) -> int:
        """Every byte written to a pipe passes here (the fault-injection seam)."""
        n = len(data)
        if n == 0:
            return 0  # Linux: "Null write succeeds", even with no reader
        write_fd = pipe.write_fd
        if pipe.read_fd < 0:
            raise _error(errno.EPIPE, "write", write_fd)
        buf = pipe.buf
        room = PIPE_CAPACITY - len(buf)
        if n > room:
            if n <= PIPE_BUF or room == 0:
                raise _error(errno.EAGAIN, "write", write_fd)
            data = data[:room]
            n = room
        if self.faults is not None:
            return self.faults.write(write_fd, pipe, data)
        buf += data
        self._notify(write_fd)
        self._notify(pipe.read_fd)
        return n

    def _write_socket(self, end: _SocketEnd, data: bytes) -> int:
        """Every byte written to a socket end passes here (the fault-injection seam)."""
        peer = end.peer
        if end.flavor == PAIR:
            if peer.fd == -1 or end.shut & _SHUT_WR:
                # Unlike a pipe, even an empty write fails: the peer's close shut
                # down our sending side, which unix_stream_sendmsg checks first.
                raise _error(errno.EPIPE, "write", end.fd)
        elif self._write_refused(end, peer, len(data)):
            return len(data)
        n = len(data)
        if n == 0:
            return 0
        queue = peer.queue
        room = peer.capacity - len(queue)
        if room == 0:
            raise _error(errno.EAGAIN, "write", end.fd)
        if n > room:
            data = data[:room]
            n = room
        if self.faults is not None:
            return self.faults.write(end.fd, end, data)
        queue += data
        self._notify(end.fd)
        if peer.fd >= 0:
            self._notify(peer.fd)
        return n

    def _write_eventfd(self, efd: _EventFd, data: bytes) -> int:
        """Every value added to an eventfd passes here (the fault-injection seam)."""
        fd = efd.fd
        if len(data) < 8:
            raise _error(errno.EINVAL, "write", fd)
        value = int.from_bytes(data[:8], "little")
        if value == _EVENTFD_INVALID:
            raise _error(errno.EINVAL, "write", fd)
        if efd.counter + value > EVENTFD_MAX:
            raise _error(errno.EAGAIN, "write", fd)
        efd.counter += value
        self._notify(fd)
        return 8

    def _held(self, writer: _Pipe | _SocketEnd) -> bool:
        """A fault holds bytes ``writer`` wrote, so its close is not visible yet."""
        return self.faults is not None and self.faults.holds(writer)

    def _land(self, writer: _Pipe | _SocketEnd, data: bytes) -> int:
        """Append as much of ``data`` as fits to what ``writer`` feeds; the fault injector's way in.

        Returns the bytes taken: all of them when the reading side is closed
        (they are dropped, as data in flight to a closed reader is).
        """
        if isinstance(writer, _Pipe):
            buf, target, source = writer.buf, writer.read_fd, writer.write_fd
            room = PIPE_CAPACITY - len(buf)
        else:
            buf, target, source = writer.peer.queue, writer.peer.fd, writer.fd
            room = writer.peer.capacity - len(buf)
            if writer.peer.reset:
                return len(data)  # a reset connection drops what is in flight
        if target == -1:
            return len(data)
        if len(data) > room:
            data = data[:room]
        if data:
            buf += data
            if source >= 0:
                self._notify(source)
            if target >= 0:
                self._notify(target)
        return len(data)

    # -- closing ------------------------------------------------------------

    def close(self, fd: int) -> None:
        """Close ``fd`` and free its number; the other end sees EOF, EPIPE or HUP."""
        obj = self._fds.pop(fd, None)
        if obj is None:
            raise _error(errno.EBADF, "close", fd)
        heapq.heappush(self._free, fd)
        other_fd = -1
        if isinstance(obj, _Pipe):
            if fd == obj.read_fd:
                obj.read_fd = -1
                other_fd = obj.write_fd
            else:
                obj.write_fd = -1
                other_fd = obj.read_fd
        elif isinstance(obj, _SocketEnd):
            peer = obj.peer
            if obj.flavor != PAIR and obj.queue and peer.fd != -1:
                # Unread data: the peer is reset (tcp_close, unix_release_sock).
                peer.error = errno.ECONNRESET
                peer.reset = obj.flavor == TCP
            else:
                obj.shut = _SHUT_RD | _SHUT_WR  # a FIN
            obj.fd = -1
            obj.queue.clear()  # unread data dies with the end
            other_fd = peer.fd
        elif isinstance(obj, _EventFd):
            obj.fd = -1
        self._notify(fd)
        if other_fd >= 0:
            self._notify(other_fd)
        if isinstance(obj, _SocketEnd):
            if obj.owner is not None:
                obj.owner.fd_close(fd)
        elif not isinstance(obj, _Pipe | _EventFd):
            obj.fd_close(fd)

    def shutdown(self, fd: int, how: int) -> None:
        """shutdown(2): ``how`` is ``socket.SHUT_RD``, ``SHUT_WR`` or ``SHUT_RDWR``."""
        obj = self._fds.get(fd)
        if obj is None:
            raise _error(errno.EBADF, "shutdown", fd)
        if isinstance(obj, _Pipe | _EventFd):
            raise _error(errno.ENOTSOCK, "shutdown", fd)
        if how not in (0, 1, 2):
            raise _error(errno.EINVAL, "shutdown", fd)
        if not isinstance(obj, _SocketEnd):
            obj.fd_shutdown(fd, how)
            return
        obj.shut |= how + 1  # SHUT_RD 0 -> _SHUT_RD, SHUT_WR 1 -> _SHUT_WR, SHUT_RDWR -> both
        self._notify(fd)
        if obj.peer.fd >= 0:
            self._notify(obj.peer.fd)

    # -- readiness ----------------------------------------------------------

    def mask(self, fd: int) -> int:
        """The readiness bits poll(2) would report for ``fd`` if asked for all of them."""
        obj = self._fds.get(fd)
        if isinstance(obj, _Pipe):
            if fd == obj.read_fd:
                mask = _POLLIN if obj.buf else 0
                if obj.write_fd < 0 and not self._held(obj):
                    mask |= _POLLHUP
            else:
                mask = _POLLOUT if PIPE_CAPACITY - len(obj.buf) >= PIPE_BUF else 0
                if obj.read_fd < 0:
                    mask |= _POLLERR
            return mask
        if isinstance(obj, _SocketEnd):
            peer = obj.peer
            if obj.flavor == PAIR and not obj.shut and peer.fd >= 0 and not peer.shut:
                mask = _POLLIN if obj.queue else 0  # the common case, inlined
                if len(peer.queue) < peer.capacity:
                    mask |= _POLLOUT
                return mask
            return _socket_mask(obj, self._held(peer))
        if isinstance(obj, _EventFd):
            counter = obj.counter
            mask = _POLLIN if counter > 0 else 0
            if counter < EVENTFD_MAX:
                mask |= _POLLOUT
            return mask
        if obj is not None:
            return obj.fd_mask()
        return _POLLNVAL

    # -- watching -----------------------------------------------------------

    def watch(self, fd: int, watcher: FdWatcher) -> None:
        """Tell ``watcher`` the mask of fd *number* ``fd`` now and whenever it may change.

        A number that is not open may be watched too (it reports POLLNVAL
        until an object takes it). A watcher may watch a number only once.
        """
        watchers = self._watchers.get(fd, ())
        for existing in watchers:
            if existing is watcher:
                raise ValueError(f"watch({fd}): {watcher!r} already watches fd {fd}")
        self._watchers[fd] = (*watchers, watcher)
        watcher.fd_ready(fd, self.mask(fd))

    def unwatch(self, fd: int, watcher: FdWatcher) -> None:
        """Stop telling ``watcher`` about fd number ``fd``."""
        watchers = self._watchers.get(fd, ())
        for i, existing in enumerate(watchers):
            if existing is watcher:
                remaining = watchers[:i] + watchers[i + 1 :]
                if remaining:
                    self._watchers[fd] = remaining
                else:
                    del self._watchers[fd]
                return
        raise ValueError(f"unwatch({fd}): {watcher!r} does not watch fd {fd}")

    def _notify(self, fd: int) -> None:
        """Tell fd number ``fd``'s watchers its current mask (rule 4 of the module docstring)."""
        watchers = self._watchers.get(fd)
        if watchers is None:
            return
        if len(watchers) == 1:  # the common case: one watcher, nobody to drop
            watchers[0].fd_ready(fd, self.mask(fd))
            return
        for watcher in watchers:
            current = self._watchers.get(fd, ())
            if current is not watchers and not any(w is watcher for w in current):
                continue  # unwatched by an earlier watcher of this round
            watcher.fd_ready(fd, self.mask(fd))

    # -- inspecting ---------------------------------------------------------

    def is_open(self, fd: int) -> bool:
        return fd in self._fds

    def kind(self, fd: int) -> str:
        """``"pipe-r"``, ``"pipe-w"``, ``"socket"`` or ``"eventfd"``; EBADF if not open."""
        obj = self._fds.get(fd)
        if isinstance(obj, _Pipe):
            return "pipe-r" if fd == obj.read_fd else "pipe-w"
        if isinstance(obj, _EventFd):
            return "eventfd"
        if obj is not None:
            return "socket"
        raise _error(errno.EBADF, "kind", fd)

    def open_fds(self) -> list[int]:
        """The open fd numbers, ascending."""
        return sorted(self._fds)

    def __repr__(self) -> str:
        return f"<FdTable first_fd={self._first_fd} open={self.open_fds()}>"
