"""``VirtualSocket``: the ``socket.socket`` API of the virtual network.

What a program calls (``connect``, ``recv``, ``setsockopt``...), argument
checks, blocking waits and the socket's own state; the stack behind it
(ports, handshakes, routes, delivery) is :class:`~evloop.loop.net.Network`'s.
See ``net.py`` for the rules both keep. A stream socket is an
:class:`~evloop.loop.fds.FdObject` until it connects; then the fd table holds
its connected end (``stream.py``) and the socket is that end's owner.
"""

from __future__ import annotations

import errno
import select
import socket
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final

from .resolver import canonical_ip, is_wildcard, numeric_family
from .stream import SOCKET_CAPACITY, _error, _SocketEnd

if TYPE_CHECKING:
    from .net import Network

__all__ = ["VirtualSocket"]

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
        if not is_wildcard(ip) and not self._net.hosts.is_local(ip):
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
                ) and (other._local[0] == self._local[0] or is_wildcard(other._local[0])
                       or is_wildcard(self._local[0])):
                    raise _oserror(errno.EADDRINUSE, "listen", self._fd)
        self._backlog = max(0, min(backlog, 4096))
        self._state = _LISTENING
        self._net._admit(self)
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
        self._net._admit(self)
        self._net.fds.notify(self._fd)
        return conn, conn._remote

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
                route = self._net._route(self, address)
                self._autobind(route)
                if is_wildcard(self._local[0]):  # connect() fixes the source address
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
        return self._net._connect_stream(self, address)

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
        return self._net._deliver(self, data, address, op)

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
        net._release(self, state)
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
