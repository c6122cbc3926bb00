"""Tests for evloop.loop.resolver: the host table, getaddrinfo and getnameinfo."""

from __future__ import annotations

import re
import socket
import sys

import pytest

from evloop.loop.resolver import HostTable


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's answers are the reference")
@pytest.mark.parametrize(
    ("host", "port", "kwargs"),
    [
        ("127.0.0.1", 80, {}),
        ("127.0.0.1", "http", {"type": socket.SOCK_STREAM}),
        ("::1", 443, {"type": socket.SOCK_DGRAM}),
        ("10.1.2.3", "8080", {"proto": socket.IPPROTO_TCP}),
        (None, 0, {"flags": socket.AI_PASSIVE, "type": socket.SOCK_STREAM}),
        (None, 0, {"type": socket.SOCK_STREAM}),
        (None, 53, {"family": socket.AF_INET, "type": socket.SOCK_DGRAM}),
        ("0:0::1", None, {"type": socket.SOCK_STREAM}),
    ],
)
def test_numeric_answers_are_glibc_answers(host: str | None, port: object, kwargs: dict) -> None:
    assert HostTable().getaddrinfo(host, port, **kwargs) == socket.getaddrinfo(host, port, **kwargs)


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's answers are the reference")
@pytest.mark.parametrize(
    ("host", "port", "kwargs"),
    [
        ("no-such-host.invalid", 80, {}),
        ("localhost", "no-such-service", {}),
        ("127.0.0.1", 80, {"family": socket.AF_INET6}),
        ("localhost", 80, {"flags": socket.AI_NUMERICHOST}),
    ],
)
def test_failures_are_glibc_failures(host: str, port: object, kwargs: dict) -> None:
    with pytest.raises(socket.gaierror) as real:
        socket.getaddrinfo(host, port, **kwargs)
    with pytest.raises(socket.gaierror) as virtual:
        HostTable().getaddrinfo(host, port, **kwargs)
    assert virtual.value.args == real.value.args


def test_names_resolve_in_table_order_and_case_insensitively() -> None:
    table = HostTable({"db.test": ["10.0.0.2", "fd00::2"], "localhost": ["127.0.0.1"]})
    infos = table.getaddrinfo("DB.test", 5432, type=socket.SOCK_STREAM)
    assert infos == [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.2", 5432)),
        (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("fd00::2", 5432, 0, 0)),
    ]
    assert table.getaddrinfo("db.test", 1, socket.AF_INET6, flags=socket.AI_CANONNAME)[0][3] == (
        "db.test"
    )
    assert [info[1] for info in table.getaddrinfo("localhost", 1)] == [
        socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_RAW,
    ]


def test_the_default_table_has_localhost_on_both_families() -> None:
    infos = HostTable().getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)
    assert [info[4] for info in infos] == [("127.0.0.1", 80), ("::1", 80, 0, 0)]


def test_getnameinfo_answers_the_first_name_listing_the_address() -> None:
    table = HostTable({"a.test": ["10.0.0.1"], "b.test": ["10.0.0.1", "10.0.0.2"]})
    assert table.getnameinfo(("10.0.0.1", 80), 0) == ("a.test", "http")
    assert table.getnameinfo(("10.0.0.2", 8080), 0) == ("b.test", "8080")
    assert table.getnameinfo(("10.0.0.2", 80), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV) == (
        "10.0.0.2", "80",
    )
    assert table.getnameinfo(("10.9.9.9", 1), 0) == ("10.9.9.9", "1")
    with pytest.raises(socket.gaierror, match=r"^\[Errno -2\] Name or service not known$"):
        table.getnameinfo(("10.9.9.9", 1), socket.NI_NAMEREQD)
    with pytest.raises(socket.gaierror, match=r"^\[Errno -2\] Name or service not known$"):
        table.getnameinfo(("a.test", 1), 0)  # glibc wants a numeric address here


@pytest.mark.parametrize(
    ("hosts", "error", "message"),
    [
        ({"x": ["nope"]}, ValueError, "host 'x': 'nope' is not a numeric IPv4 or IPv6 address"),
        ({"x": "10.0.0.1"}, TypeError,
         "host 'x': addresses are a list of str, not the str '10.0.0.1'"),
        ({"x": []}, ValueError, "host 'x' needs at least one address"),
        ({"": ["10.0.0.1"]}, ValueError, "a host name is a non-empty str, not ''"),
    ],
)
def test_a_bad_host_table_says_what_is_wrong(hosts: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        HostTable(hosts)
