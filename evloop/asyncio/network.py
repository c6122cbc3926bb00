"""asyncio's networking calls on the simulation's virtual network.

:class:`NetworkSelectorLoop`, the base of :class:`~evloop.asyncio.SimEventLoop`,
is CPython's ``BaseSelectorEventLoop`` with the loop
methods that make sockets (``create_connection``, ``create_server``, the
AF_UNIX pair, ``create_datagram_endpoint``) and resolve names
(``getaddrinfo``, ``getnameinfo``), on ``loop.sim.net``
(:mod:`evloop.loop.net`). Everything after the socket is made is CPython's
own: the selector transports, the streams, ``Server``, the ``sock_*``
calls. The rules, and why:

* **Names come from the host table**, answered at once: no executor, no
  thread, nothing that could reorder (``loop.sim.net.hosts``).
* **Addresses are tried in getaddrinfo order, one at a time.** Happy
  Eyeballs (``happy_eyeballs_delay``, ``interleave``) races connects on real
  clocks; here the first address that connects wins, and every refusal is
  reported as asyncio reports it (one error, or ``Multiple exceptions``).
* **Real sockets are refused.** A ``socket.socket`` has a real fd, whose
  number means nothing in the virtual fd table; handing one to a simulated
  loop raises :class:`~evloop.errors.FencedError` naming the call, instead of
  watching the wrong fd. Make sockets with ``loop.net.socket(...)`` (for
  aiohttp: ``TCPConnector(socket_factory=loop.net.socket_factory)``).
* **TLS is fenced.** The ``ssl`` module's memory-BIO protocol would run, but
  OpenSSL draws its randomness (client and server randoms, key shares,
  signatures) from its own generator, which Python cannot route through the
  simulation, so a TLS run could not replay. Any ``ssl=`` argument, and
  ``start_tls``, raise :class:`~evloop.errors.FencedError`.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from asyncio.base_events import Server
from asyncio.selector_events import BaseSelectorEventLoop
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import FencedError
from ..loop.net import Network, VirtualSocket

if TYPE_CHECKING:
    from ..machine.simulation import Simulation

__all__ = ["TLS_FENCE", "NetworkSelectorLoop"]

#: The one line a TLS request is refused with.
TLS_FENCE = (
    "evloop.asyncio: TLS (ssl=, start_tls) is fenced off in a simulation: OpenSSL draws "
    "its randomness from its own generator, which cannot be routed through the simulation, "
    "so a TLS run could not replay (see docs/asyncio.md)"
)

_ProtocolFactory = Callable[[], asyncio.BaseProtocol]


def _real_socket_fence(what: str, sock: object) -> FencedError:
    return FencedError(
        f"evloop.asyncio: a real socket given to loop.{what}() is fenced off in a simulation: "
        f"the fd of {sock!r} means nothing in the virtual fd table; make sockets with "
        "loop.net.socket(family, type, proto) (see docs/asyncio.md)"
    )


def _check_virtual(what: str, sock: object) -> None:
    """Refuse a real socket (any other object with a virtual fd is the caller's to vouch for)."""
    if isinstance(sock, socket.socket):
        raise _real_socket_fence(what, sock)


def _check_no_tls(ssl: object) -> None:
    if ssl is not None and ssl is not False:
        raise FencedError(TLS_FENCE)


def _bind_error(exc: OSError, address: Any) -> OSError:
    """asyncio's bind failure: the address, and the errno's text in lower case."""
    text = os.strerror(exc.errno) if exc.errno else str(exc)
    return OSError(exc.errno, f"error while attempting to bind on address {address!r}: "
                   f"{text.lower()}")


def _connect_error(errors: list[OSError], all_errors: bool) -> BaseException:
    """What asyncio raises when no address connected (``base_events.create_connection``)."""
    if all_errors:
        return ExceptionGroup("create_connection failed", errors)
    if len(errors) == 1:
        return errors[0]
    model = str(errors[0])
    if all(str(exc) == model for exc in errors):
        return errors[0]
    return OSError("Multiple exceptions: {}".format(", ".join(str(exc) for exc in errors)))


class NetworkSelectorLoop(BaseSelectorEventLoop):
    """The selector loop on the virtual network (see the module docstring).

    It builds virtual sockets and hands them to the selector loop's own
    ``sock=`` paths; a subclass provides ``sim``.
    """

    sim: Simulation

    @property
    def net(self) -> Network:
        """The simulation's network (sockets, ports, host table)."""
        return self.sim.net

    # -- names ------------------------------------------------------------------------

    async def getaddrinfo(  # type: ignore[override]
        self,
        host: bytes | str | None,
        port: bytes | str | int | None,
        *,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple[Any, ...]]]:
        return self.net.getaddrinfo(host, port, family, type, proto, flags)

    async def getnameinfo(
        self, sockaddr: tuple[Any, ...], flags: int = 0
    ) -> tuple[str, str]:
        return self.net.getnameinfo(sockaddr, flags)

    # -- streams ----------------------------------------------------------------------

    async def create_connection(  # type: ignore[override]
        self,
        protocol_factory: _ProtocolFactory,
        host: str | None = None,
        port: int | str | None = None,
        *,
        ssl: Any = None,
        family: int = 0,
        proto: int = 0,
        flags: int = 0,
        sock: Any = None,
        local_addr: tuple[str, int] | None = None,
        server_hostname: str | None = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
        happy_eyeballs_delay: float | None = None,
        interleave: int | None = None,
        all_errors: bool = False,
    ) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
        _check_no_tls(ssl)
        if sock is not None:
            if host is not None or port is not None:
                raise ValueError("host/port and sock can not be specified at the same time")
            _check_virtual("create_connection", sock)
        else:
            if host is None and port is None:
                raise ValueError("host and port was not specified and no sock specified")
            sock = await self._connect_first(host, port, family, proto, flags, local_addr,
                                             all_errors)
        return await super().create_connection(protocol_factory, sock=sock)

    async def _connect_first(
        self,
        host: str | None,
        port: int | str | None,
        family: int,
        proto: int,
        flags: int,
        local_addr: tuple[str, int] | None,
        all_errors: bool,
    ) -> VirtualSocket:
        infos = await self.getaddrinfo(
            host, port, family=family, type=socket.SOCK_STREAM, proto=proto, flags=flags
        )
        if not infos:
            raise OSError("getaddrinfo() returned empty list")
        errors: list[OSError] = []
        for fam, kind, pro, _, address in infos:
            sock = self.net.socket(fam, kind, pro)
            try:
                sock.setblocking(False)
                if local_addr is not None:
                    self._bind_local(sock, local_addr)
                await self.sock_connect(sock, address)
            except OSError as exc:
                sock.close()
                errors.append(exc)
                continue
            except BaseException:
                sock.close()
                raise
            return sock
        raise _connect_error(errors, all_errors)

    def _bind_local(self, sock: VirtualSocket, local_addr: tuple[str, int]) -> None:
        for *_, address in self.net.getaddrinfo(local_addr[0], local_addr[1], sock.family,
                                                 socket.SOCK_STREAM):
            try:
                sock.bind(address)
                return
            except OSError as exc:
                raise _bind_error(exc, address) from None
        raise OSError(f"no matching local address with family={sock.family} found")

    async def create_server(
        self,
        protocol_factory: _ProtocolFactory,
        host: str | Sequence[str] | None = None,
        port: int | None = None,
        *,
        family: int = socket.AF_UNSPEC,
        flags: int = socket.AI_PASSIVE,
        sock: Any = None,
        backlog: int = 100,
        ssl: Any = None,
        reuse_address: bool | None = None,
        reuse_port: bool | None = None,
        keep_alive: bool | None = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
        start_serving: bool = True,
    ) -> Server:
        _check_no_tls(ssl)
        if sock is not None:
            if host is not None or port is not None:
                raise ValueError("host/port and sock can not be specified at the same time")
            _check_virtual("create_server", sock)
            sockets = [sock]
        else:
            hosts: list[str | None]
            if host is None or host == "":
                hosts = [None]
            elif isinstance(host, str):
                hosts = [host]
            else:
                hosts = list(host)
            sockets = []
            try:
                for name in hosts:
                    infos = await self.getaddrinfo(name, port, family=family,
                                                   type=socket.SOCK_STREAM, flags=flags)
                    for info in infos:
                        if any(s.family == info[0] and s.getsockname()[:2] == info[4][:2]
                               for s in sockets if info[4][1]):
                            continue  # the same address twice (a repeated host)
                        sockets.append(self._server_socket(info, reuse_address, reuse_port,
                                                           keep_alive))
            except BaseException:
                for s in sockets:
                    s.close()
                raise
        return await self._serve(sockets, protocol_factory, backlog, start_serving)

    def _server_socket(
        self,
        info: tuple[Any, ...],
        reuse_address: bool | None,
        reuse_port: bool | None,
        keep_alive: bool | None,
    ) -> VirtualSocket:
        fam, kind, pro, _, address = info
        sock = self.net.socket(fam, kind, pro)
        try:
            if reuse_address is None or reuse_address:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, True)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, True)
            if keep_alive:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, True)
            if fam == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, True)
            try:
                sock.bind(address)
            except OSError as exc:
                raise _bind_error(exc, address) from None
        except BaseException:
            sock.close()
            raise
        return sock

    async def _serve(
        self,
        sockets: list[Any],
        protocol_factory: _ProtocolFactory,
        backlog: int,
        start_serving: bool,
    ) -> Server:
        for sock in sockets:
            sock.setblocking(False)
        server = Server(self, sockets, protocol_factory, None, backlog, None)
        if start_serving:
            server._start_serving()  # type: ignore[attr-defined]
            await asyncio.sleep(0)  # as asyncio does: let the loop start accepting
        return server

    async def create_unix_connection(  # type: ignore[override]
        self,
        protocol_factory: _ProtocolFactory,
        path: str | None = None,
        *,
        ssl: Any = None,
        sock: Any = None,
        server_hostname: str | None = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
    ) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
        _check_no_tls(ssl)
        if sock is not None:
            if path is not None:
                raise ValueError("path and sock can not be specified at the same time")
            _check_virtual("create_unix_connection", sock)
        elif path is None:
            raise ValueError("no path and sock were specified")
        else:
            sock = self.net.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.setblocking(False)
                await self.sock_connect(sock, os.fspath(path))
            except BaseException:
                sock.close()
                raise
        # The selector loop's stream path serves AF_UNIX as well (it only checks the type).
        return await super().create_connection(protocol_factory, sock=sock)

    async def create_unix_server(  # type: ignore[override]
        self,
        protocol_factory: _ProtocolFactory,
        path: str | None = None,
        *,
        sock: Any = None,
        backlog: int = 100,
        ssl: Any = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
        start_serving: bool = True,
        cleanup_socket: bool = True,
    ) -> Server:
        _check_no_tls(ssl)
        if sock is not None:
            if path is not None:
                raise ValueError("path and sock can not be specified at the same time")
            _check_virtual("create_unix_server", sock)
            if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
                raise ValueError(f"A UNIX Domain Stream Socket was expected, got {sock!r}")
        elif path is None:
            raise ValueError("path was not specified, and no sock specified")
        else:
            path = os.fspath(path)
            sock = self.net.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.bind(path)
            except OSError as exc:
                sock.close()
                if exc.errno == errno.EADDRINUSE:
                    raise OSError(errno.EADDRINUSE, f"Address {path!r} is already in use") from None
                raise
        return await self._serve([sock], protocol_factory, backlog, start_serving)

    async def connect_accepted_socket(  # type: ignore[override]
        self,
        protocol_factory: _ProtocolFactory,
        sock: Any,
        *,
        ssl: Any = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
    ) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
        _check_no_tls(ssl)
        _check_virtual("connect_accepted_socket", sock)
        return await super().connect_accepted_socket(protocol_factory, sock)

    async def start_tls(self, *args: Any, **kwargs: Any) -> Any:
        raise FencedError(TLS_FENCE)

    # -- datagrams --------------------------------------------------------------------

    async def create_datagram_endpoint(  # type: ignore[override]
        self,
        protocol_factory: Callable[[], asyncio.DatagramProtocol],
        local_addr: Any = None,
        remote_addr: Any = None,
        *,
        family: int = 0,
        proto: int = 0,
        flags: int = 0,
        reuse_address: Any = None,
        reuse_port: bool | None = None,
        allow_broadcast: bool | None = None,
        sock: Any = None,
    ) -> tuple[asyncio.DatagramTransport, asyncio.DatagramProtocol]:
        if reuse_address:
            raise ValueError("Passing `reuse_address=True` is no longer supported, as the "
                             "usage of SO_REUSEPORT in UDP poses a significant security concern.")
        if sock is not None:
            if local_addr or remote_addr or family or proto or flags or reuse_port \
                    or allow_broadcast:
                raise ValueError("socket modifier keyword arguments can not be used when "
                                 "sock is specified.")
            _check_virtual("create_datagram_endpoint", sock)
        else:
            sock = await self._datagram_socket(local_addr, remote_addr, family, proto, flags,
                                               reuse_port, allow_broadcast)
        return await super().create_datagram_endpoint(protocol_factory, sock=sock)

    async def _datagram_socket(
        self,
        local_addr: Any,
        remote_addr: Any,
        family: int,
        proto: int,
        flags: int,
        reuse_port: bool | None,
        allow_broadcast: bool | None,
    ) -> VirtualSocket:
        if family == socket.AF_UNIX:
            sock = self.net.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            local = [os.fspath(local_addr)] if local_addr else []
            remote = [os.fspath(remote_addr)] if remote_addr else []
        else:
            if local_addr is None and remote_addr is None:
                if family == 0:
                    raise ValueError("unexpected address family")
                sock = self.net.socket(family, socket.SOCK_DGRAM, proto)
                local, remote = [], []
            else:
                local_infos = await self._datagram_infos(local_addr, family, proto, flags)
                remote_infos = await self._datagram_infos(remote_addr, family, proto, flags)
                families = [i[0] for i in (local_infos or remote_infos)
                            if not remote_infos or not local_infos
                            or any(r[0] == i[0] for r in remote_infos)]
                if not families:
                    raise ValueError("can not get address information")
                fam = families[0]
                sock = self.net.socket(fam, socket.SOCK_DGRAM, proto)
                local = [i[4] for i in local_infos if i[0] == fam][:1]
                remote = [i[4] for i in remote_infos if i[0] == fam][:1]
        try:
            sock.setblocking(False)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, True)
            if allow_broadcast:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, True)
            if local:
                sock.bind(local[0])
            if remote:
                await self.sock_connect(sock, remote[0])
        except BaseException:
            sock.close()
            raise
        return sock

    async def _datagram_infos(
        self, address: Any, family: int, proto: int, flags: int
    ) -> list[tuple[Any, ...]]:
        if address is None:
            return []
        if not isinstance(address, tuple) or len(address) < 2:
            raise TypeError("2-tuple is expected")
        return list(await self.getaddrinfo(address[0], address[1], family=family,
                                           type=socket.SOCK_DGRAM, proto=proto, flags=flags))

    # -- the sock_* calls: virtual sockets only -----------------------------------------

    async def sock_recv(self, sock: Any, n: int) -> bytes:
        _check_virtual("sock_recv", sock)
        return await super().sock_recv(sock, n)

    async def sock_recv_into(self, sock: Any, buf: Any) -> int:
        _check_virtual("sock_recv_into", sock)
        return await super().sock_recv_into(sock, buf)

    async def sock_recvfrom(self, sock: Any, bufsize: int) -> tuple[bytes, Any]:
        _check_virtual("sock_recvfrom", sock)
        return await super().sock_recvfrom(sock, bufsize)

    async def sock_recvfrom_into(self, sock: Any, buf: Any, nbytes: int = 0) -> tuple[int, Any]:
        _check_virtual("sock_recvfrom_into", sock)
        return await super().sock_recvfrom_into(sock, buf, nbytes)

    async def sock_sendall(self, sock: Any, data: Any) -> None:
        _check_virtual("sock_sendall", sock)
        return await super().sock_sendall(sock, data)

    async def sock_sendto(self, sock: Any, data: Any, address: Any) -> int:
        _check_virtual("sock_sendto", sock)
        return await super().sock_sendto(sock, data, address)

    async def sock_connect(self, sock: Any, address: Any) -> None:
        _check_virtual("sock_connect", sock)
        return await super().sock_connect(sock, address)

    async def sock_accept(self, sock: Any) -> tuple[Any, Any]:
        _check_virtual("sock_accept", sock)
        return await super().sock_accept(sock)

    async def sock_sendfile(self, sock: Any, *args: Any, **kwargs: Any) -> int:
        _check_virtual("sock_sendfile", sock)
        return await super().sock_sendfile(sock, *args, **kwargs)
