"""The virtual network: stream and datagram sockets on the virtual fd layer.

:class:`Network` is the network stack of one simulated machine: every
address of its :class:`~evloop.loop.resolver.HostTable` (and the loopback
ranges) is a local interface, so any socket can reach any other. A
:class:`VirtualSocket` has the ``socket.socket`` methods asyncio's transports
and ``sock_*`` calls use, and its fd is an ordinary number of the
:class:`~evloop.FdTable`, polled and watched like a pipe. The rules it
keeps, and why:

Rule 1: Linux's errno and readiness, as seen through Python. A non-blocking
TCP ``connect`` raises ``BlockingIOError(EINPROGRESS)`` and completes at once
(POLLOUT, ``SO_ERROR`` 0) or is refused (POLLERR, ``SO_ERROR`` ECONNREFUSED);
a blocking one raises ``ConnectionRefusedError``. AF_UNIX connects complete or
fail inside the call (``FileNotFoundError``, ``ConnectionRefusedError``,
EAGAIN on a full backlog). ``recv`` on an unconnected stream socket is
ENOTCONN, ``send`` EPIPE; ``bind`` to a port in use EADDRINUSE. Closing with
unread data resets the peer (ECONNRESET); a TCP write to a closed peer is
taken and answered by an RST, so the next call fails with EPIPE. The tests
check each rule against real loopback sockets.

Rule 2: a listener holds ``backlog + 1`` connections, as Linux does. The
handshake is done at ``connect`` time: the server's end exists (an embryo,
see ``fds.py``) and receives bytes before it is accepted. A TCP connect to a
full listener waits (no POLLOUT) until ``accept`` makes room, in connect
order; closing the listener resets its queued connections (ECONNRESET) and
refuses the waiting ones.

Rule 3: connected stream sockets are the fd layer's socket ends. Their bytes
go through :meth:`FdTable.write`, so a stream is a stream: one direction's
bytes arrive in the order written, always, and the fault injector (delay,
loss, partition, reset...) acts on them as on any socket, each fault a
recorded decision. A datagram socket keeps its queue of ``(bytes, address)``
here; datagrams to a full queue or to no socket are dropped, and a connected
UDP socket is told ECONNREFUSED, as ICMP would.

Rule 4: everything is deterministic. Ephemeral ports count up from
:data:`EPHEMERAL_PORTS`'s start, skipping ports in use; listeners sharing a
port (``SO_REUSEPORT``) are picked in bind order; queues are FIFO. No set or
dict order leaks.

Simplifications: one machine (a connection's source address is the address
it connected to); no TIME_WAIT (a closed socket's port is free at once);
``SO_SNDBUF`` is kept and reported but adds no room (a direction holds what
the receiver's ``SO_RCVBUF`` holds); IPv4 and IPv6 have separate port spaces
(``IPV6_V6ONLY`` is accepted and always in force); no urgent data, no
ancillary data, no fd passing.
"""

from __future__ import annotations

import errno
import socket
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, Final

from .fds import EMBRYO, FdTable
from .resolver import AddrInfo, HostTable, is_wildcard
from .stream import TCP, UNIX, _SocketEnd
from .vsocket import (
    _CONNECTED,
    _FAILED,
    _LISTENING,
    _OUT,
    _WAITING,
    MAX_DATAGRAM,
    VirtualSocket,
    _oserror,
)

__all__ = ["EPHEMERAL_PORTS", "MAX_DATAGRAM", "Network", "VirtualSocket"]

#: The ephemeral port range (Linux's ip_local_port_range default).
EPHEMERAL_PORTS: Final = range(32768, 61000)


class Network:
    """The network stack of one simulated machine (see the module docstring)."""

    def __init__(self, fds: FdTable, hosts: Mapping[str, Sequence[str]] | None = None) -> None:
        self.fds = fds
        self.hosts = HostTable(hosts)
        # (family, type, port) -> the sockets bound to it, in bind order.
        self._ports: dict[tuple[int, int, int], list[VirtualSocket]] = {}
        # (type, path) -> the AF_UNIX socket bound to it.
        self._paths: dict[tuple[int, str | bytes], VirtualSocket] = {}
        self._next_port: dict[int, int] = {}

    def socket(
        self, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM, proto: int = 0
    ) -> VirtualSocket:
        """A new socket, like ``socket.socket(family, type, proto)``."""
        return VirtualSocket(self, family, type, proto)

    def socket_factory(self, addr_info: tuple[Any, ...]) -> VirtualSocket:
        """A socket for one ``getaddrinfo`` answer (aiohttp's ``socket_factory`` hook)."""
        return self.socket(addr_info[0], addr_info[1], addr_info[2])

    def getaddrinfo(
        self,
        host: str | bytes | None,
        port: str | bytes | int | None,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[AddrInfo]:
        """``socket.getaddrinfo`` against the host table."""
        return self.hosts.getaddrinfo(host, port, family, type, proto, flags)

    def getnameinfo(self, sockaddr: tuple[Any, ...], flags: int) -> tuple[str, str]:
        """``socket.getnameinfo`` against the host table."""
        return self.hosts.getnameinfo(sockaddr, flags)

    # -- ports ------------------------------------------------------------------------

    def _bound(self, family: int, type: int, port: int) -> list[VirtualSocket]:
        return self._ports.get((family, type, port), [])

    def _conflicts(self, sock: VirtualSocket, ip: str, port: int) -> bool:
        for other in self._bound(sock.family, sock.type, port):
            if other is sock:
                continue
            other_ip = other._local[0]
            if other_ip != ip and not is_wildcard(other_ip) and not is_wildcard(ip):
                continue
            if sock._reuseport and other._reuseport:
                continue
            if sock._reuseaddr and other._reuseaddr and other._state != _LISTENING:
                continue
            return True
        return False

    def _bind_port(self, sock: VirtualSocket, ip: str, port: int) -> int:
        """Register ``sock`` at ``(ip, port)``; port 0 takes an ephemeral one."""
        if port == 0:
            start = self._next_port.get(sock.type, EPHEMERAL_PORTS.start)
            span = len(EPHEMERAL_PORTS)
            for i in range(span):
                candidate = EPHEMERAL_PORTS.start + (start - EPHEMERAL_PORTS.start + i) % span
                if not self._bound(sock.family, sock.type, candidate):
                    port = candidate
                    self._next_port[sock.type] = candidate + 1
                    break
            else:
                raise _oserror(errno.EADDRINUSE, "bind", sock._fd)
        elif self._conflicts(sock, ip, port):
            raise _oserror(errno.EADDRINUSE, "bind", sock._fd)
        self._ports.setdefault((sock.family, sock.type, port), []).append(sock)
        return port

    def _unbind(self, sock: VirtualSocket) -> None:
        if sock.family == socket.AF_UNIX:
            if sock._local and self._paths.get((sock.type, sock._local)) is sock:
                del self._paths[(sock.type, sock._local)]
            return
        if sock._local is None:
            return
        key = (sock.family, sock.type, sock._local[1])
        bound = self._ports.get(key)
        if bound is not None and sock in bound:
            bound.remove(sock)
            if not bound:
                del self._ports[key]

    def _find(self, family: int, type: int, address: Any) -> VirtualSocket | None:
        """The socket a packet to ``address`` reaches: a listener, or a datagram socket."""
        if family == socket.AF_UNIX:
            return self._paths.get((type, address))
        wildcard: VirtualSocket | None = None
        for sock in self._bound(family, type, address[1]):
            if type == socket.SOCK_STREAM and sock._state != _LISTENING:
                continue
            if sock._local[0] == address[0]:
                return sock
            if wildcard is None and is_wildcard(sock._local[0]):
                wildcard = sock
        return wildcard

    # -- connections (rule 2) -------------------------------------------------------------

    def _connect_stream(self, sock: VirtualSocket, address: Any) -> int:
        """A stream ``connect``: the errno it gives (0: connected), per rule 1 and 2."""
        if sock.family == socket.AF_UNIX:
            return self._connect_unix(sock, address)
        sock._autobind(self._route(sock, address))
        listener = self._find(sock.family, socket.SOCK_STREAM, self._route_to(sock, address))
        if listener is None:
            if sock._timeout == 0.0:
                sock._state, sock._error = _FAILED, errno.ECONNREFUSED
                self.fds.notify(sock._fd)
                return errno.EINPROGRESS
            return errno.ECONNREFUSED
        if len(listener._accept_queue) <= listener._backlog:
            self._establish(sock, listener, address)
        else:
            sock._state = _WAITING
            sock._listener = listener
            listener._waiting.append((sock, address))
        if sock._timeout == 0.0:
            sock._connect_told = False
            return errno.EINPROGRESS
        while sock._state == _WAITING:
            sock._wait(_OUT, "connect")
        sock._connect_told = True
        if sock._state == _FAILED:
            code, sock._error = sock._error, 0
            return code
        return 0

    def _connect_unix(self, sock: VirtualSocket, address: Any) -> int:
        listener = self._paths.get((socket.SOCK_STREAM, address))
        if listener is None:  # no file for a path; nothing bound for an abstract name
            return errno.ECONNREFUSED if address[:1] in ("\0", b"\0") else errno.ENOENT
        if listener._state != _LISTENING:
            return errno.ECONNREFUSED
        while len(listener._accept_queue) > listener._backlog:
            if sock._timeout == 0.0:
                return errno.EAGAIN
            sock._state, sock._listener = _WAITING, listener
            listener._waiting.append((sock, address))
            while sock._state == _WAITING:
                sock._wait(_OUT, "connect")
            if sock._state == _FAILED:
                code, sock._error = sock._error, 0
                return code
            return 0
        self._establish(sock, listener, address)
        return 0

    def _establish(self, client: VirtualSocket, listener: VirtualSocket, address: Any) -> None:
        """The handshake: a connected end here, an embryo in ``listener``'s accept queue."""
        net = self
        flavor = UNIX if client._family == socket.AF_UNIX else TCP
        server = VirtualSocket(net, client._family, client._type, client._proto, attach=False)
        server._state = _CONNECTED
        server._reuseaddr, server._reuseport = listener._reuseaddr, listener._reuseport
        server._rcvbuf, server._sndbuf = listener._rcvbuf, listener._sndbuf
        if client._family == socket.AF_UNIX:
            server._local, server._remote = listener._local, client._local or ""
            client._remote = listener._local
        else:
            server._local = self._route_to(client, address)
            server._remote = client._local
            wild = is_wildcard(address[0])
            client._remote = self._route_to(client, address) if wild else address
            net._ports[(client._family, client._type, listener._local[1])].append(server)
        mine = _SocketEnd(client._fd, flavor, owner=client)
        theirs = _SocketEnd(EMBRYO, flavor, owner=server)
        mine.peer, theirs.peer = theirs, mine
        mine.capacity, theirs.capacity = client._rcvbuf, server._rcvbuf
        server._end = theirs
        client._end = mine
        client._state = _CONNECTED
        client._listener = None
        listener._accept_queue.append(server)
        net.fds.replace(client._fd, mine)
        net.fds.notify(listener._fd)

    def _admit(self, listener: VirtualSocket) -> None:
        """Let waiting connects in, in connect order, while the backlog has room."""
        while listener._waiting and len(listener._accept_queue) <= listener._backlog:
            client, address = listener._waiting.popleft()
            if client._state == _WAITING:
                self._establish(client, listener, address)

    def _release(self, sock: VirtualSocket, state: str) -> None:
        """``sock`` was closed in ``state``: its listen queue and waiting connects go."""
        if state == _LISTENING:
            for server in sock._accept_queue:  # queued connections are reset
                end = server._end
                assert end is not None
                end.fd = -1
                client = end.peer
                client.error, client.reset = errno.ECONNRESET, client.flavor == TCP
                self.fds.notify(client.fd)
                self._unbind(server)
            sock._accept_queue.clear()
            for waiter, _ in sock._waiting:  # waiting connects are refused
                if waiter._state == _WAITING:
                    waiter._state, waiter._error = _FAILED, errno.ECONNREFUSED
                    self.fds.notify(waiter._fd)
            sock._waiting.clear()
        elif state == _WAITING and sock._listener is not None:
            sock._listener._waiting = deque(
                item for item in sock._listener._waiting if item[0] is not sock
            )

    # -- routes and datagrams ----------------------------------------------------------

    def _route(self, sock: VirtualSocket, address: Any) -> str:
        """The local address a packet to ``address`` leaves from (one machine: itself)."""
        ip = str(address[0])
        if is_wildcard(ip):
            return "127.0.0.1" if sock.family == socket.AF_INET else "::1"
        if not self.hosts.is_local(ip):
            raise _oserror(errno.ENETUNREACH, "connect", sock.fileno())
        return ip

    def _route_to(self, sock: VirtualSocket, address: Any) -> Any:
        ip = self._route(sock, address)
        return (ip, *address[1:])

    def _deliver(self, sock: VirtualSocket, data: bytes, address: Any, op: str) -> int:
        """Send one datagram from ``sock`` to ``address`` (rule 3): queued, or dropped."""
        if sock.family == socket.AF_UNIX:
            target = self._find(sock.family, socket.SOCK_DGRAM, address)
            if target is None:
                raise _oserror(errno.ENOENT if sock._remote is None else errno.ECONNREFUSED,
                               op, sock._fd)
            source = sock._local if sock._local is not None else ""
        else:
            sock._autobind(None)  # an unconnected datagram socket binds the wildcard
            route = self._route_to(sock, address)
            target = self._find(sock.family, socket.SOCK_DGRAM, route)
            source = sock._local
            if is_wildcard(source[0]):
                source = (route[0], *source[1:])
        if target is None or (target._remote is not None and target._remote != source):
            if sock._remote is not None and sock.family != socket.AF_UNIX:
                sock._error = errno.ECONNREFUSED  # ICMP port unreachable, to a connected socket
                self.fds.notify(sock._fd)
            return len(data)
        faults = self.fds.faults
        if faults is None:
            self._enqueue(target, data, source)
        else:
            faults.datagram(sock._fd, data, lambda payload: self._enqueue(target, payload, source))
        return len(data)

    def _enqueue(self, target: VirtualSocket, data: bytes, source: Any) -> None:
        """A datagram reaches ``target``: queued if it is open and has room, else dropped."""
        if target._fd >= 0 and target._queued + len(data) <= target._rcvbuf:
            target._datagrams.append((data, source))
            target._queued += len(data)
            self.fds.notify(target._fd)
