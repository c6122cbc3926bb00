"""Connected stream sockets of the fd layer: one end's state and its poll rules.

:class:`_SocketEnd` is one end of a connected stream: a ``socketpair()`` end
or a connection of the network (``net.py``). It carries Linux's half-close
and reset state; :func:`_socket_mask` is ``tcp_poll`` / ``unix_poll`` over
it. :class:`~evloop.loop.fds.FdTable` reads, writes, shuts down and closes
ends (rules 5 and 6 of ``fds.py``); this module only says what an end's state
means, so the table's module stays one concept long.
"""

from __future__ import annotations

import select
from typing import Final, Protocol

__all__ = ["PAIR", "SOCKET_CAPACITY", "TCP", "UNIX", "FdObject", "SocketOwner"]

#: Bytes a socket end's receive queue holds unless set; a simplification of SO_RCVBUF.
SOCKET_CAPACITY: Final = 65536

_POLLIN: Final = select.POLLIN
_POLLOUT: Final = select.POLLOUT
_POLLERR: Final = select.POLLERR
_POLLHUP: Final = select.POLLHUP
_POLLRDHUP: Final[int] = getattr(select, "POLLRDHUP", 0x2000)
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
