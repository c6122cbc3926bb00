"""Connected stream sockets of the fd layer: one end's state and its poll rules.

:class:`_SocketEnd` is one end of a connected stream: a ``socketpair()`` end
or a connection of the network (``net.py``). It carries Linux's half-close
and reset state; :func:`_socket_mask` is ``tcp_poll`` / ``unix_poll`` over
it. :class:`~evloop.loop.fds.FdTable` reads, writes, shuts down and closes
ends (rules 5 and 6 of ``fds.py``); this module only says what an end's state
means, so the table's module stays one concept long.
"""

from __future__ import annotations

import errno
import os
import select
from typing import TYPE_CHECKING, Final, Protocol

__all__ = ["PAIR", "SOCKET_CAPACITY", "TCP", "UNIX", "FdObject", "SocketCalls", "SocketOwner"]

#: Bytes a socket end's receive queue holds unless set; a simplification of SO_RCVBUF.
SOCKET_CAPACITY: Final = 65536

_POLLIN: Final = select.POLLIN
_POLLOUT: Final = select.POLLOUT
_POLLERR: Final = select.POLLERR
_POLLHUP: Final = select.POLLHUP
_POLLRDHUP: Final[int] = getattr(select, "POLLRDHUP", 0x2000)
# strerror texts, looked up once: EAGAIN is raised in hot loops.
_STRERROR: Final = {
    code: os.strerror(code)
    for code in (
        errno.EAGAIN, errno.EBADF, errno.EINVAL, errno.EPIPE, errno.ECONNRESET, errno.ENOTSOCK,
        errno.ENOTCONN, errno.ECONNREFUSED,
    )
}


def _error(code: int, op: str, fd: int) -> OSError:
    """The OSError (subclass chosen by errno) a kernel would give for ``op`` on ``fd``."""
    text = _STRERROR.get(code)
    if text is None:
        text = os.strerror(code)
    return OSError(code, f"{text} ({op} on fd {fd})")


# A socketpair() end whose peer has closed: EOF to read, EPIPE to write, both "ready".
_SOCKET_PEER_CLOSED_MASK: Final = _POLLIN | _POLLRDHUP | _POLLHUP | _POLLOUT

# shutdown(2)'s how, and an end's shutdown bits.
_SHUT_RD: Final = 1
_SHUT_WR: Final = 2
#: _SocketEnd.flavor: what the end belongs to, which decides its close and write rules.
PAIR: Final = 0  # socketpair(): a peer's close never resets (a documented simplification)
UNIX: Final = 1  # an AF_UNIX stream socket of the network: close with unread data resets
TCP: Final = 2  # a TCP socket: as UNIX, and a write after the peer's close draws an RST

class FdObject(Protocol):
    """An object of another layer (``net.py``) that holds an fd number and answers for it."""

    def fd_mask(self) -> int:
        """The readiness bits poll(2) would report for this object."""
        ...

    def fd_read(self, fd: int, n: int) -> bytes:
        """read(2) on this object (``n > 0`` was checked)."""
        ...

    def fd_write(self, fd: int, data: bytes) -> int:
        """write(2) on this object."""
        ...

    def fd_shutdown(self, fd: int, how: int) -> None:
        """shutdown(2) on this object."""
        ...

    def fd_close(self, fd: int) -> None:
        """The number ``fd`` was closed and is free again; release what the object holds."""
        ...


class SocketOwner(Protocol):
    """What a network socket is told when its connected end is closed."""

    def fd_close(self, fd: int) -> None: ...


class _SocketEnd:
    """One end of a connected stream socket; ``queue`` is its receive queue.

    ``fd`` is -1 once this end is closed (its queue is then dropped), and
    :data:`EMBRYO` while a listener holds it unaccepted.
    """

    __slots__ = ("capacity", "error", "fd", "flavor", "owner", "peer", "queue", "reset", "shut")

    peer: _SocketEnd

    def __init__(self, fd: int, flavor: int = PAIR, owner: SocketOwner | None = None) -> None:
        self.fd = fd
        self.queue = bytearray()
        #: Bytes the receive queue holds (SO_RCVBUF).
        self.capacity = SOCKET_CAPACITY
        #: This end's own shutdown bits (_SHUT_RD | _SHUT_WR), set by shutdown() and close().
        self.shut = 0
        #: The pending socket error (SO_ERROR), reported once; 0: none.
        self.error = 0
        #: The connection was reset (an RST came in): both directions are shut.
        self.reset = False
        self.flavor = flavor
        #: The network socket this end is the connection of (told when it closes).
        self.owner = owner


def _fin_in(end: _SocketEnd, held: bool) -> bool:
    """``end`` has received its peer's FIN (shutdown(SHUT_WR) or close, and no RST)."""
    peer = end.peer
    if held:
        return False
    if peer.flavor == PAIR or peer.flavor == UNIX:
        return peer.fd == -1 or bool(peer.shut & _SHUT_WR)
    return bool(peer.shut & _SHUT_WR)


def _socket_mask(end: _SocketEnd, held: bool) -> int:
    """tcp_poll / unix_poll for ``end``; ``held``: a fault holds bytes its peer wrote."""
    peer = end.peer
    if end.flavor == PAIR and peer.fd == -1 and not held:
        return _SOCKET_PEER_CLOSED_MASK
    shut = end.shut
    reset = end.reset and not held
    rcv = shut & _SHUT_RD or reset or _fin_in(end, held)
    snd = shut & _SHUT_WR or reset
    if end.flavor == UNIX and not held and (peer.fd == -1 or peer.shut & _SHUT_RD):
        snd = True  # unix_shutdown / unix_release_sock shut the peer's sending side
    mask = _POLLIN if end.queue else 0
    if rcv:
        mask |= _POLLIN | _POLLRDHUP
        if snd:
            mask |= _POLLHUP
    if snd or len(peer.queue) < peer.capacity:
        mask |= _POLLOUT
    if end.error and not held:
        mask |= _POLLERR
    return mask


class SocketCalls:
    """The fd table's calls on socket ends and on the network's objects (rule 6 of ``fds.py``).

    A base of :class:`~evloop.loop.fds.FdTable`, kept here with the rules of
    the ends it acts on.
    """

    __slots__ = ()

    if TYPE_CHECKING:
        from .fds import _FdObject

        _fds: dict[int, _FdObject]

        def _allocate(self) -> int: ...
        def _notify(self, fd: int) -> None: ...
        def _held(self, writer: _SocketEnd) -> bool: ...

    def _read_socket_empty(self, end: _SocketEnd, fd: int) -> bytes:
        """A read of an empty receive queue: EOF, the pending error, or EAGAIN.

        TCP reports a FIN before a pending error (``tcp_recvmsg``); AF_UNIX
        the error first (``unix_stream_read_generic``).
        """
        held = self._held(end.peer)
        fin = _fin_in(end, held)
        if end.error and not held and not (fin and end.flavor == TCP):
            code = end.error
            end.error = 0
            self._notify(fd)
            raise _error(code, "read", fd)
        if fin or end.shut & _SHUT_RD or (end.reset and not held):
            return b""
        raise _error(errno.EAGAIN, "read", fd)

    def _write_refused(self, end: _SocketEnd, peer: _SocketEnd, n: int) -> bool:
        """A network socket's checks before a write (``tcp_sendmsg``, ``unix_stream_sendmsg``).

        Raises the pending error once, then EPIPE on a shut sending side.
        True when the bytes are taken and lost: a TCP write to a closed peer,
        whose kernel answers with an RST (the *next* call fails).
        """
        fd = end.fd
        held = self._held(peer)
        if end.error and not held and end.flavor == TCP:  # unix_stream_sendmsg ignores it
            code = end.error
            end.error = 0
            self._notify(fd)
            raise _error(code, "write", fd)
        if end.shut & _SHUT_WR or (end.reset and not held):
            raise _error(errno.EPIPE, "write", fd)
        if end.flavor == UNIX and (peer.fd == -1 or peer.shut & _SHUT_RD):
            raise _error(errno.EPIPE, "write", fd)
        if end.flavor == TCP and peer.fd == -1 and n:
            end.reset = True
            end.error = errno.EPIPE if _fin_in(end, held) else errno.ECONNRESET
            self._notify(fd)
            return True
        return False

    def attach(self, obj: _SocketEnd | FdObject) -> int:
        """Give ``obj`` the lowest free fd number (a socket end learns it)."""
        fd = self._allocate()
        self._fds[fd] = obj
        if isinstance(obj, _SocketEnd):
            obj.fd = fd
        self._notify(fd)
        return fd

    def replace(self, fd: int, obj: _SocketEnd | FdObject) -> None:
        """Put ``obj`` under the open number ``fd`` (a socket that connected)."""
        if fd not in self._fds:
            raise _error(errno.EBADF, "replace", fd)
        self._fds[fd] = obj
        if isinstance(obj, _SocketEnd):
            obj.fd = fd
        self._notify(fd)

    def notify(self, fd: int) -> None:
        """Tell ``fd``'s watchers its mask: an :class:`FdObject`'s state changed."""
        if fd >= 0:
            self._notify(fd)

    def reset_connection(self, end: _SocketEnd) -> None:
        """An RST on ``end``'s connection: both ends shut, the peer told ECONNRESET once.

        (``end``'s own write raises ECONNRESET: the caller's to raise.)
        """
        peer = end.peer
        end.reset = True
        peer.reset = True
        if peer.fd != -1:
            peer.error = errno.ECONNRESET
        for fd in (end.fd, peer.fd):
            if fd >= 0:
                self._notify(fd)

    def socket_end(self, fd: int) -> _SocketEnd | None:
        """The connected socket end open at ``fd``, if that is what it is."""
        obj = self._fds.get(fd)
        return obj if isinstance(obj, _SocketEnd) else None
