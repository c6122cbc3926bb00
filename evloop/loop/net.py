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
import select
import socket
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from .fds import EMBRYO, FdTable, _error
from .resolver import AddrInfo, HostTable, canonical_ip, numeric_family
from .stream import SOCKET_CAPACITY, TCP, UNIX, _SocketEnd

__all__ = ["EPHEMERAL_PORTS", "Network", "VirtualSocket"]

#: The ephemeral port range (Linux's ip_local_port_range default).
EPHEMERAL_PORTS: Final = range(32768, 61000)
#: The largest UDP payload over IPv4.
MAX_DATAGRAM: Final = 65507

_IN: Final = select.POLLIN
_OUT: Final = select.POLLOUT
_ERR: Final = select.POLLERR
_HUP: Final = select.POLLHUP
_RDHUP: Final[int] = getattr(select, "POLLRDHUP", 0x2000)
_NS_PER_S: Final = 1_000_000_000

# A stream socket's states while it is not a connected end in the fd table.
_NEW: Final = "new"  # created or bound
_LISTENING: Final = "listening"
_WAITING: Final = "connecting"  # a connect waiting for room in a full backlog
_FAILED: Final = "failed"  # a connect was refused (the error is pending until read)
_CONNECTED: Final = "connected"  # the fd table holds its _SocketEnd
_CLOSED: Final = "closed"

_INET: Final = (socket.AF_INET, socket.AF_INET6)


def _oserror(code: int, op: str, fd: int) -> OSError:
    return _error(code, op, fd)


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
            if other_ip != ip and not _wildcard(other_ip) and not _wildcard(ip):
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
            if wildcard is None and _wildcard(sock._local[0]):
                wildcard = sock
        return wildcard


def _wildcard(ip: str) -> bool:
    return ip in ("0.0.0.0", "::")


class VirtualSocket:
    """A socket of the virtual network, with the ``socket.socket`` API asyncio uses.

    Create it with :meth:`Network.socket`. It starts blocking, as a real
    socket does; a blocking call waits in :meth:`FdTable.poll` (so it blocks a
    simulation's thread of control, in virtual time).
    """

    def __init__(
        self, net: Network, family: int, type: int, proto: int, *, attach: bool = True
    ) -> None:
        if family not in (*_INET, socket.AF_UNIX):
            raise OSError(errno.EAFNOSUPPORT, "Address family not supported by protocol")
        if type not in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            raise OSError(errno.ESOCKTNOSUPPORT, "Socket type not supported")
        self._net = net
        self._family = socket.AddressFamily(family)
        self._type = socket.SocketKind(type)
        self._proto = proto
        self._timeout: float | None = None
        self._state = _NEW
        self._local: Any = None
        self._remote: Any = None
        self._error = 0
        self._reuseaddr = False
        self._reuseport = False
        self._options: dict[tuple[int, int], int] = {}
        self._rcvbuf = SOCKET_CAPACITY
        self._sndbuf = SOCKET_CAPACITY
        # Listening: accepted connections (their server-side sockets), waiting connects.
        self._backlog = 0
        self._accept_queue: deque[VirtualSocket] = deque()
        self._waiting: deque[tuple[VirtualSocket, Any]] = deque()
        self._listener: VirtualSocket | None = None  # a waiting connect's listener
        self._end: _SocketEnd | None = None
        self._connect_told = True  # the first connect() after EINPROGRESS returns 0
        # Datagram sockets: received (data, source address), FIFO.
        self._datagrams: deque[tuple[bytes, Any]] = deque()
        self._queued = 0
        self._fd = net.fds.attach(self) if attach else -1

    # -- what socket.socket shows ---------------------------------------------------------

    @property
    def family(self) -> socket.AddressFamily:
        return self._family

    @property
    def type(self) -> socket.SocketKind:
        return self._type

    @property
    def proto(self) -> int:
        return self._proto

    def fileno(self) -> int:
        return self._fd

    def setblocking(self, flag: bool) -> None:
        self._timeout = None if flag else 0.0

    def getblocking(self) -> bool:
        return self._timeout != 0.0

    def settimeout(self, value: float | None) -> None:
        if value is not None and value < 0:
            raise ValueError("Timeout value out of range")
        self._timeout = None if value is None else float(value)

    def gettimeout(self) -> float | None:
        return self._timeout

    def __enter__(self) -> VirtualSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        text = f"<VirtualSocket fd={self._fd}, family={self._family}, type={self._type}, "
        text += f"proto={self._proto}"
        if self._local is not None:
            text += f", laddr={self._local!r}"
        if self._remote is not None and self._state == _CONNECTED:
            text += f", raddr={self._remote!r}"
        return text + ">"

    # -- addresses ------------------------------------------------------------------------

    def _address(self, address: Any, op: str) -> Any:
        """``address`` in canonical form: ``(ip, port)``, ``(ip, port, 0, 0)`` or a path."""
        if self._family == socket.AF_UNIX:
            if not isinstance(address, str | bytes | bytearray):
                raise TypeError(f"{op}(): AF_UNIX address must be str or bytes, not "
                                f"{type(address).__name__}")
            return bytes(address) if isinstance(address, bytearray) else address
        want = 2 if self._family == socket.AF_INET else (2, 3, 4)
        if not isinstance(address, tuple) or len(address) not in (
            (want,) if isinstance(want, int) else want
        ):
            family = "AF_INET" if self._family == socket.AF_INET else "AF_INET6"
            raise TypeError(f"{op}(): {family} address must be tuple, not "
                            f"{type(address).__name__}")
        host, port = address[0], address[1]
        if not isinstance(port, int):
            raise TypeError(f"'{type(port).__name__}' object cannot be interpreted as an integer")
        if not 0 <= port <= 0xFFFF:
            raise OverflowError(f"{op}(): port must be 0-65535.")
        ip = self._ip(host)
        return (ip, port) if self._family == socket.AF_INET else (ip, port, 0, 0)

    def _ip(self, host: Any) -> str:
        if not isinstance(host, str):
            raise TypeError(f"str, bytes or bytearray expected, not {type(host).__name__}")
        if host == "":
            return "0.0.0.0" if self._family == socket.AF_INET else "::"
        if numeric_family(host) == self._family:
            return canonical_ip(host)
        for info in self._net.hosts.getaddrinfo(host, 0, self._family, self._type):
            return str(info[4][0])
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    def getsockname(self) -> Any:
        self._check_open("getsockname")
        if self._local is not None:
            return self._local
        if self._family == socket.AF_UNIX:
            return ""
        return ("0.0.0.0", 0) if self._family == socket.AF_INET else ("::", 0, 0, 0)

    def getpeername(self) -> Any:
        self._check_open("getpeername")
        if self._remote is None or (
            self._type == socket.SOCK_STREAM and self._state != _CONNECTED
        ):
            raise _oserror(errno.ENOTCONN, "getpeername", self._fd)
        return self._remote

    # -- bind, listen, accept ------------------------------------------------------------

    def bind(self, address: Any) -> None:
        self._check_open("bind")
        address = self._address(address, "bind")
        if self._local is not None:
            raise _oserror(errno.EINVAL, "bind", self._fd)
        if self._family == socket.AF_UNIX:
            key = (int(self._type), address)
            if address in ("", b"") or key in self._net._paths:
                raise _oserror(errno.EADDRINUSE, "bind", self._fd)
            self._net._paths[key] = self
            self._local = address
            return
        ip = address[0]
        if not _wildcard(ip) and not self._net.hosts.is_local(ip):
            raise _oserror(errno.EADDRNOTAVAIL, "bind", self._fd)
        port = self._net._bind_port(self, ip, address[1])
        self._local = (ip, port, *address[2:])

    def _autobind(self, toward: str | None) -> None:
        """Bind an unbound socket to an ephemeral port (on connect, sendto, listen)."""
        if self._local is not None:
            return
        if self._family == socket.AF_UNIX:
            return  # an unnamed AF_UNIX socket stays unnamed
        ip = toward if toward is not None else ("0.0.0.0" if self._family == socket.AF_INET
                                                 else "::")
        port = self._net._bind_port(self, ip, 0)
        self._local = (ip, port) if self._family == socket.AF_INET else (ip, port, 0, 0)

    def listen(self, backlog: int = 128) -> None:
        self._check_open("listen")
        if self._type != socket.SOCK_STREAM:
            raise _oserror(errno.EOPNOTSUPP, "listen", self._fd)
        if self._state not in (_NEW, _LISTENING):
            raise _oserror(errno.EINVAL, "listen", self._fd)
        if self._family == socket.AF_UNIX and self._local is None:
            raise _oserror(errno.EINVAL, "listen", self._fd)
        self._autobind(None)
        if self._state == _NEW and self._family != socket.AF_UNIX:
            for other in self._net._bound(self._family, self._type, self._local[1]):
                if other is not self and other._state == _LISTENING and not (
                    self._reuseport and other._reuseport
                ) and (other._local[0] == self._local[0] or _wildcard(other._local[0])
                       or _wildcard(self._local[0])):
                    raise _oserror(errno.EADDRINUSE, "listen", self._fd)
        self._backlog = max(0, min(backlog, 4096))
        self._state = _LISTENING
        self._admit()
        self._net.fds.notify(self._fd)

    def accept(self) -> tuple[VirtualSocket, Any]:
        self._check_open("accept")
        if self._state != _LISTENING:
            raise _oserror(errno.EINVAL, "accept", self._fd)
        while not self._accept_queue:
            self._wait(_IN, "accept")
            if self._state != _LISTENING:
                raise _oserror(errno.EINVAL, "accept", self._fd)
        conn = self._accept_queue.popleft()
        assert conn._end is not None
        conn._fd = self._net.fds.attach(conn._end)
        self._admit()
        self._net.fds.notify(self._fd)
        return conn, conn._remote

    def _admit(self) -> None:
        """Let waiting connects in, in connect order, while the backlog has room."""
        while self._waiting and len(self._accept_queue) <= self._backlog:
            client, address = self._waiting.popleft()
            if client._state == _WAITING:
                client._establish(self, address)

    # -- connect ------------------------------------------------------------------------

    def connect(self, address: Any) -> None:
        code = self._connect(address)
        if code:
            raise _oserror(code, "connect", self._fd)

    def connect_ex(self, address: Any) -> int:
        try:
            return self._connect(address)
        except OSError as exc:
            if exc.errno is None:
                raise
            return exc.errno

    def _connect(self, address: Any) -> int:
        self._check_open("connect")
        address = self._address(address, "connect")
        if self._type == socket.SOCK_DGRAM:
            if self._family != socket.AF_UNIX:
                route = self._route(address)
                self._autobind(route)
                if _wildcard(self._local[0]):  # connect() fixes the source address
                    self._local = (route, *self._local[1:])
            self._remote = address
            return 0
        state = self._state
        if state == _CONNECTED:
            if not self._connect_told:
                self._connect_told = True
                return 0
            return errno.EISCONN
        if state == _WAITING:
            return errno.EALREADY
        if state == _LISTENING:
            return errno.EINVAL
        if self._family == socket.AF_UNIX:
            return self._connect_unix(address)
        self._autobind(self._route(address))
        listener = self._net._find(self._family, socket.SOCK_STREAM, self._route_to(address))
        if listener is None:
            if self._timeout == 0.0:
                self._state, self._error = _FAILED, errno.ECONNREFUSED
                self._net.fds.notify(self._fd)
                return errno.EINPROGRESS
            return errno.ECONNREFUSED
        if len(listener._accept_queue) <= listener._backlog:
            self._establish(listener, address)
        else:
            self._state = _WAITING
            self._listener = listener
            listener._waiting.append((self, address))
        if self._timeout == 0.0:
            self._connect_told = False
            return errno.EINPROGRESS
        while self._state == _WAITING:
            self._wait(_OUT, "connect")
        self._connect_told = True
        if self._state == _FAILED:
            code, self._error = self._error, 0
            return code
        return 0

    def _route(self, address: Any) -> str | None:
        """The local address a packet to ``address`` leaves from (one machine: itself)."""
        ip = str(address[0])
        if _wildcard(ip):
            return "127.0.0.1" if self._family == socket.AF_INET else "::1"
        if not self._net.hosts.is_local(ip):
            raise _oserror(errno.ENETUNREACH, "connect", self._fd)
        return ip

    def _route_to(self, address: Any) -> Any:
        ip = self._route(address)
        return (ip, *address[1:])

    def _connect_unix(self, address: Any) -> int:
        listener = self._net._paths.get((socket.SOCK_STREAM, address))
        if listener is None:  # no file for a path; nothing bound for an abstract name
            return errno.ECONNREFUSED if address[:1] in ("\0", b"\0") else errno.ENOENT
        if listener._state != _LISTENING:
            return errno.ECONNREFUSED
        while len(listener._accept_queue) > listener._backlog:
            if self._timeout == 0.0:
                return errno.EAGAIN
            self._state, self._listener = _WAITING, listener
            listener._waiting.append((self, address))
            while self._state == _WAITING:
                self._wait(_OUT, "connect")
            if self._state == _FAILED:
                code, self._error = self._error, 0
                return code
            return 0
        self._establish(listener, address)
        return 0

    def _establish(self, listener: VirtualSocket, address: Any) -> None:
        """The handshake: a connected end here, an embryo in ``listener``'s accept queue."""
        net = self._net
        flavor = UNIX if self._family == socket.AF_UNIX else TCP
        server = VirtualSocket(net, self._family, self._type, self._proto, attach=False)
        server._state = _CONNECTED
        server._reuseaddr, server._reuseport = listener._reuseaddr, listener._reuseport
        server._rcvbuf, server._sndbuf = listener._rcvbuf, listener._sndbuf
        if self._family == socket.AF_UNIX:
            server._local, server._remote = listener._local, self._local or ""
            self._remote = listener._local
        else:
            server._local = self._route_to(address)
            server._remote = self._local
            self._remote = address if not _wildcard(address[0]) else self._route_to(address)
            net._ports[(self._family, self._type, listener._local[1])].append(server)
        mine = _SocketEnd(self._fd, flavor, owner=self)
        theirs = _SocketEnd(EMBRYO, flavor, owner=server)
        mine.peer, theirs.peer = theirs, mine
        mine.capacity, theirs.capacity = self._rcvbuf, server._rcvbuf
        server._end = theirs
        self._end = mine
        self._state = _CONNECTED
        self._listener = None
        listener._accept_queue.append(server)
        net.fds.replace(self._fd, mine)
        net.fds.notify(listener._fd)

    # -- reading and writing ----------------------------------------------------------------

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if flags not in (0, socket.MSG_PEEK):
            raise ValueError(f"recv(): flags {flags:#x} are not supported by the virtual network")
        if bufsize < 0:
            raise ValueError("negative buffersize in recv")
        if self._type == socket.SOCK_DGRAM:
            return self._recvfrom(bufsize, flags, "recv")[0]
        while True:
            self._check_open("recv")
            if self._state == _FAILED:  # a refused connect: the error once, then EOF
                if self._error:
                    code, self._error = self._error, 0
                    self._net.fds.notify(self._fd)
                    raise _oserror(code, "recv", self._fd)
                return b""
            if self._state != _CONNECTED:
                raise _oserror(errno.ENOTCONN, "recv", self._fd)
            if flags & socket.MSG_PEEK:
                end = self._end
                assert end is not None
                if end.queue:
                    return bytes(end.queue[:bufsize])
            try:
                return self._net.fds.read(self._fd, bufsize)
            except BlockingIOError:
                if self._timeout == 0.0:
                    raise
            self._wait(_IN, "recv")

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        view = memoryview(buffer).cast("B")
        n = nbytes or len(view)
        data = self.recv(n, flags)
        view[: len(data)] = data
        return len(data)

    def send(self, data: Any, flags: int = 0) -> int:
        if flags:
            raise ValueError(f"send(): flags {flags:#x} are not supported by the virtual network")
        data = bytes(data)
        if self._type == socket.SOCK_DGRAM:
            if self._remote is None:
                raise _oserror(errno.EDESTADDRREQ, "send", self._fd)
            return self._sendto(data, self._remote, "send")
        while True:
            self._check_open("send")
            if self._state != _CONNECTED:
                if self._state == _FAILED and self._error:
                    code, self._error = self._error, 0
                    self._net.fds.notify(self._fd)
                    raise _oserror(code, "send", self._fd)
                raise _oserror(errno.EPIPE, "send", self._fd)
            try:
                return self._net.fds.write(self._fd, data)
            except BlockingIOError:
                if self._timeout == 0.0:
                    raise
            self._wait(_OUT, "send")

    def sendall(self, data: Any, flags: int = 0) -> None:
        view = memoryview(bytes(data))
        while view:
            n = self.send(view, flags)
            view = view[n:]

    def sendmsg(self, buffers: Iterable[Any], *args: Any) -> int:
        if args:
            raise ValueError("sendmsg(): ancillary data is not supported by the virtual network")
        return self.send(b"".join(bytes(b) for b in buffers))

    def sendto(self, data: Any, flags_or_address: Any, address: Any = None) -> int:
        if address is None:
            flags, address = 0, flags_or_address
        else:
            flags = flags_or_address
        if flags:
            raise ValueError(f"sendto(): flags {flags:#x} are not supported by the virtual network")
        if self._type == socket.SOCK_STREAM:
            if self._state == _CONNECTED:
                return self.send(data)
            raise _oserror(errno.EPIPE, "sendto", self._fd)
        return self._sendto(bytes(data), self._address(address, "sendto"), "sendto")

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, Any]:
        if flags not in (0, socket.MSG_PEEK):
            raise ValueError(
                f"recvfrom(): flags {flags:#x} are not supported by the virtual network"
            )
        if self._type == socket.SOCK_STREAM:
            return self.recv(bufsize, flags), None
        return self._recvfrom(bufsize, flags, "recvfrom")

    def recvfrom_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> tuple[int, Any]:
        view = memoryview(buffer).cast("B")
        data, address = self.recvfrom(nbytes or len(view), flags)
        view[: len(data)] = data
        return len(data), address

    # -- datagrams ----------------------------------------------------------------------

    def _sendto(self, data: bytes, address: Any, op: str) -> int:
        self._check_open(op)
        if self._error:
            code, self._error = self._error, 0
            self._net.fds.notify(self._fd)
            raise _oserror(code, op, self._fd)
        if len(data) > MAX_DATAGRAM:
            raise _oserror(errno.EMSGSIZE, op, self._fd)
        net = self._net
        if self._family == socket.AF_UNIX:
            target = net._find(self._family, socket.SOCK_DGRAM, address)
            if target is None:
                raise _oserror(errno.ENOENT if self._remote is None else errno.ECONNREFUSED,
                               op, self._fd)
            source = self._local if self._local is not None else ""
        else:
            self._autobind(None)  # an unconnected datagram socket binds the wildcard
            route = self._route_to(address)
            target = net._find(self._family, socket.SOCK_DGRAM, route)
            source = self._local
            if _wildcard(source[0]):
                source = (route[0], *source[1:])
        if target is None or (target._remote is not None and target._remote != source):
            if self._remote is not None and self._family != socket.AF_UNIX:
                self._error = errno.ECONNREFUSED  # ICMP port unreachable, to a connected socket
                net.fds.notify(self._fd)
            return len(data)
        if target._queued + len(data) <= target._rcvbuf:
            target._datagrams.append((data, source))
            target._queued += len(data)
            net.fds.notify(target._fd)
        return len(data)

    def _recvfrom(self, bufsize: int, flags: int, op: str) -> tuple[bytes, Any]:
        while True:
            self._check_open(op)
            if self._datagrams:
                data, source = self._datagrams[0]
                if not flags & socket.MSG_PEEK:
                    self._datagrams.popleft()
                    self._queued -= len(data)
                    self._net.fds.notify(self._fd)
                return data[:bufsize], source
            if self._error:
                code, self._error = self._error, 0
                self._net.fds.notify(self._fd)
                raise _oserror(code, op, self._fd)
            if self._timeout == 0.0:
                raise _oserror(errno.EAGAIN, op, self._fd)
            self._wait(_IN, op)

    # -- options, shutdown, close ----------------------------------------------------------

    def getsockopt(self, level: int, option: int, buflen: int = 0) -> int:
        self._check_open("getsockopt")
        if buflen:
            raise ValueError(
                "getsockopt(): a buffer length is not supported by the virtual network"
            )
        if level == socket.SOL_SOCKET:
            if option == socket.SO_ERROR:
                return self._take_error()
            if option == socket.SO_TYPE:
                return int(self._type)
            if option == socket.SO_RCVBUF:
                return self._rcvbuf
            if option == socket.SO_SNDBUF:
                return self._sndbuf
            if option == socket.SO_REUSEADDR:
                return int(self._reuseaddr)
            if option == getattr(socket, "SO_REUSEPORT", -1):
                return int(self._reuseport)
            if option == socket.SO_ACCEPTCONN:
                return int(self._state == _LISTENING)
        return self._options.get((level, option), 0)

    def _take_error(self) -> int:
        end = self._end if self._state == _CONNECTED else None
        if end is not None:
            code, end.error = end.error, 0
        else:
            code, self._error = self._error, 0
        if code:
            self._net.fds.notify(self._fd)
        return code

    def setsockopt(self, level: int, option: int, value: Any, optlen: int | None = None) -> None:
        self._check_open("setsockopt")
        if not isinstance(value, int):
            raise ValueError(
                "setsockopt(): only integer options are supported by the virtual network"
            )
        if level == socket.SOL_SOCKET:
            if option == socket.SO_REUSEADDR:
                self._reuseaddr = bool(value)
                return
            if option == getattr(socket, "SO_REUSEPORT", -1):
                self._reuseport = bool(value)
                return
            if option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                size = max(2 * value, 2304 if option == socket.SO_RCVBUF else 4608)
                if option == socket.SO_RCVBUF:
                    self._rcvbuf = size
                    if self._end is not None:
                        self._end.capacity = size
                        self._net.fds.notify(self._end.peer.fd)
                else:
                    self._sndbuf = size
                return
        self._options[(level, option)] = int(value)

    def shutdown(self, how: int) -> None:
        self._check_open("shutdown")
        self._net.fds.shutdown(self._fd, how)

    def close(self) -> None:
        if self._state == _CLOSED or self._fd < 0:
            self._state = _CLOSED
            return
        fd = self._fd
        self._net.fds.close(fd)  # calls fd_close (ours, or through the connected end)
        self._fd = -1

    def detach(self) -> int:
        raise OSError(errno.EOPNOTSUPP, "detach() is not supported by the virtual network")

    # -- the FdObject protocol (fds.py), for every state but a connected stream ------------

    def fd_mask(self) -> int:
        state = self._state
        if self._type == socket.SOCK_DGRAM:
            mask = _OUT | (_IN if self._datagrams else 0)
            return mask | (_ERR if self._error else 0)
        if state == _LISTENING:
            return _IN if self._accept_queue else 0
        if state == _WAITING:
            return 0
        if state == _FAILED:
            return _IN | _OUT | _HUP | _RDHUP | (_ERR if self._error else 0)
        return _OUT | _HUP

    def fd_read(self, fd: int, n: int) -> bytes:
        if self._type == socket.SOCK_DGRAM:
            return self._recvfrom(n, 0, "read")[0] if n else b""
        raise _oserror(errno.ENOTCONN, "read", fd)

    def fd_write(self, fd: int, data: bytes) -> int:
        if self._type == socket.SOCK_DGRAM:
            if self._remote is None:
                raise _oserror(errno.EDESTADDRREQ, "write", fd)
            return self._sendto(data, self._remote, "write")
        raise _oserror(errno.EPIPE, "write", fd)

    def fd_shutdown(self, fd: int, how: int) -> None:
        raise _oserror(errno.ENOTCONN, "shutdown", fd)

    def fd_close(self, fd: int) -> None:
        """The fd was closed (as this socket, or as its connected end): release everything."""
        net = self._net
        state = self._state
        self._state = _CLOSED
        self._fd = -1
        net._unbind(self)
        if state == _LISTENING:
            for server in self._accept_queue:  # queued connections are reset
                end = server._end
                assert end is not None
                end.fd = -1
                client = end.peer
                client.error, client.reset = errno.ECONNRESET, client.flavor == TCP
                net.fds.notify(client.fd)
                net._unbind(server)
            self._accept_queue.clear()
            for waiter, _ in self._waiting:  # waiting connects are refused
                if waiter._state == _WAITING:
                    waiter._state, waiter._error = _FAILED, errno.ECONNREFUSED
                    net.fds.notify(waiter._fd)
            self._waiting.clear()
        elif state == _WAITING and self._listener is not None:
            self._listener._waiting = deque(
                item for item in self._listener._waiting if item[0] is not self
            )
        self._datagrams.clear()

    # -- helpers --------------------------------------------------------------------------

    def _check_open(self, op: str) -> None:
        if self._state == _CLOSED or (self._fd < 0 and self._state != _CONNECTED):
            raise _oserror(errno.EBADF, op, self._fd)

    def _wait(self, events: int, op: str) -> None:
        """Block until the fd reports ``events`` (a blocking socket), or time out."""
        timeout = self._timeout
        if timeout == 0.0:
            raise _oserror(errno.EAGAIN, op, self._fd)
        timeout_ns = -1 if timeout is None else int(timeout * _NS_PER_S)
        if not self._net.fds.poll([(self._fd, events)], timeout_ns):
            raise TimeoutError("timed out")
