"""The virtual network's names: a host table, ``getaddrinfo`` and ``getnameinfo`` against it.

No lookup ever leaves the process: a name is an entry of :class:`HostTable`
or it does not exist. The rules, and why:

Rule 1: answers are the shape the ``socket`` module gives. ``getaddrinfo``
returns ``(family, type, proto, canonname, sockaddr)`` tuples with the
``socket.AddressFamily`` and ``socket.SocketKind`` enums, IPv4 sockaddrs as
``(host, port)`` and IPv6 ones as ``(host, port, 0, 0)``; with no socket type
asked for, each address comes three times (stream/TCP, datagram/UDP, raw), as
glibc gives them. Failures are ``socket.gaierror`` with glibc's code and text.

Rule 2: order is the table's. A name's addresses come in the order the table
lists them (``localhost``: ``127.0.0.1`` then ``::1``); a reverse lookup
answers the first name, in insertion order, that lists the address. No set or
hash order is ever visible.

Rule 3: numbers need no table. A numeric address (``"10.0.0.1"``, ``"::1"``)
resolves to itself; ``None`` is the wildcard with ``AI_PASSIVE`` and the
loopback address without it.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

__all__ = ["SERVICES", "AddrInfo", "HostTable", "canonical_ip", "is_wildcard", "numeric_family"]

AddrInfo = tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple[Any, ...]]

#: Service names ``getaddrinfo`` and ``getnameinfo`` know (a tiny /etc/services).
SERVICES: Final[Mapping[str, int]] = {
    "ftp": 21, "ssh": 22, "telnet": 23, "smtp": 25, "domain": 53, "http": 80,
    "pop3": 110, "imap": 143, "https": 443, "imaps": 993, "pop3s": 995,
    "mysql": 3306, "postgresql": 5432, "redis": 6379, "amqp": 5672,
}
_PORT_NAMES: Final = {port: name for name, port in SERVICES.items()}

_DEFAULT_HOSTS: Final = {"localhost": ("127.0.0.1", "::1")}
_PROTOS: Final = (
    (socket.SOCK_STREAM, socket.IPPROTO_TCP),
    (socket.SOCK_DGRAM, socket.IPPROTO_UDP),
    (socket.SOCK_RAW, 0),
)


def _gaierror(code: int, text: str) -> socket.gaierror:
    return socket.gaierror(code, text)


def numeric_family(host: str) -> socket.AddressFamily | None:
    """AF_INET or AF_INET6 if ``host`` is a numeric address, else None."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    return socket.AF_INET if address.version == 4 else socket.AF_INET6


def is_wildcard(ip: str) -> bool:
    """``ip`` is INADDR_ANY or in6addr_any (canonical text)."""
    return ip in ("0.0.0.0", "::")


def canonical_ip(host: str) -> str:
    """The canonical text of a numeric address (``"::0:1"`` -> ``"::1"``)."""
    return str(ipaddress.ip_address(host))


class HostTable:
    """Names and their addresses, in a fixed order; ``localhost`` unless given otherwise.

    ``hosts`` maps each name to its addresses (numeric, IPv4 or IPv6), in
    the order lookups return them.
    """

    def __init__(self, hosts: Mapping[str, Sequence[str]] | None = None) -> None:
        self._names: dict[str, tuple[str, ...]] = {}
        for name, addresses in (_DEFAULT_HOSTS if hosts is None else hosts).items():
            self.add(name, addresses)

    def add(self, name: str, addresses: Iterable[str]) -> None:
        """Add ``name`` (replacing an entry of that name) with ``addresses``."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a host name is a non-empty str, not {name!r}")
        if isinstance(addresses, str):
            raise TypeError(
                f"host {name!r}: addresses are a list of str, not the str {addresses!r}"
            )
        canonical: list[str] = []
        for address in addresses:
            if not isinstance(address, str) or numeric_family(address) is None:
                raise ValueError(
                    f"host {name!r}: {address!r} is not a numeric IPv4 or IPv6 address"
                )
            canonical.append(canonical_ip(address))
        if not canonical:
            raise ValueError(f"host {name!r} needs at least one address")
        self._names[name.lower()] = tuple(canonical)

    def addresses(self, name: str) -> tuple[str, ...]:
        """``name``'s addresses (names are case-insensitive); () if unknown."""
        return self._names.get(name.lower(), ())

    def name_of(self, address: str) -> str | None:
        """The first name listing ``address``, or None."""
        for name, addresses in self._names.items():
            if address in addresses:
                return name
        return None

    def is_local(self, address: str) -> bool:
        """Every address of the table, and the loopback ranges, are this machine's."""
        if ipaddress.ip_address(address).is_loopback:
            return True
        return any(address in addresses for addresses in self._names.values())

    # -- getaddrinfo / getnameinfo ---------------------------------------------------

    def getaddrinfo(
        self,
        host: str | bytes | None,
        port: str | bytes | int | None,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[AddrInfo]:
        """``socket.getaddrinfo`` against this table (see the module docstring)."""
        if isinstance(host, bytes):
            host = host.decode("ascii")
        if isinstance(port, bytes):
            port = port.decode("ascii")
        if family not in (0, socket.AF_INET, socket.AF_INET6):
            raise _gaierror(socket.EAI_FAMILY, "ai_family not supported")
        number = self._port(port, type)
        if host is None or host == "":
            if host == "" and not flags & socket.AI_PASSIVE:
                raise _gaierror(socket.EAI_NONAME, "Name or service not known")
            if flags & socket.AI_PASSIVE:
                addresses: tuple[str, ...] = ("0.0.0.0", "::")
            else:
                addresses = ("::1", "127.0.0.1")
        elif numeric_family(host) is not None:
            if family and numeric_family(host) != family:
                raise _gaierror(socket.EAI_ADDRFAMILY, "Address family for hostname not supported")
            addresses = (canonical_ip(host),)
        else:
            if flags & socket.AI_NUMERICHOST:
                raise _gaierror(socket.EAI_NONAME, "Name or service not known")
            addresses = self.addresses(host)
            if not addresses:
                raise _gaierror(socket.EAI_NONAME, "Name or service not known")
        canonname = host if host and flags & socket.AI_CANONNAME else ""
        result: list[AddrInfo] = []
        for address in addresses:
            fam = numeric_family(address)
            assert fam is not None
            if family and fam != family:
                continue
            sockaddr: tuple[Any, ...] = (
                (address, number) if fam == socket.AF_INET else (address, number, 0, 0)
            )
            for kind, kind_proto in _PROTOS:
                if type and kind != type:
                    continue
                if proto and kind_proto != proto:
                    continue
                result.append((fam, kind, proto or kind_proto, canonname, sockaddr))
                canonname = ""  # only the first answer carries it
        if not result:
            raise _gaierror(socket.EAI_ADDRFAMILY, "Address family for hostname not supported")
        return result

    @staticmethod
    def _port(port: str | int | None, type: int) -> int:
        if port is None:
            return 0
        if isinstance(port, int):
            if not 0 <= port <= 0xFFFF:
                raise OverflowError("getaddrinfo(): port must be 0-65535.")
            return port
        if port.isdigit():
            return int(port)
        if type == socket.SOCK_RAW or port not in SERVICES:
            raise _gaierror(socket.EAI_SERVICE, "Servname not supported for ai_socktype")
        return SERVICES[port]

    def getnameinfo(self, sockaddr: tuple[Any, ...], flags: int) -> tuple[str, str]:
        """``socket.getnameinfo`` against this table: ``(host, port)`` as text."""
        if not isinstance(sockaddr, tuple) or len(sockaddr) not in (2, 4):
            raise TypeError("getnameinfo() argument 1 must be a tuple")
        host, port = sockaddr[0], sockaddr[1]
        if not isinstance(host, str) or numeric_family(host) is None:
            raise _gaierror(socket.EAI_NONAME, "Name or service not known")
        if not isinstance(port, int):
            raise TypeError(f"'{type(port).__name__}' object cannot be interpreted as an integer")
        address = canonical_ip(host)
        name = None if flags & socket.NI_NUMERICHOST else self.name_of(address)
        if name is None:
            if flags & socket.NI_NAMEREQD:
                raise _gaierror(socket.EAI_NONAME, "Name or service not known")
            name = address
        service = None if flags & socket.NI_NUMERICSERV else _PORT_NAMES.get(port)
        return name, service if service is not None else str(port)

    def __repr__(self) -> str:
        return f"<HostTable {dict(self._names)!r}>"
