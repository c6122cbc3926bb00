"""SimEventLoop's network calls: asyncio's streams, servers, datagrams and sock_* calls
on the virtual network, with errors surfacing as asyncio surfaces them."""

from __future__ import annotations

import asyncio
import errno
import re
import socket
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from evloop import FencedError, Simulation
from evloop.asyncio import SimEventLoop, run
from evloop.asyncio.network import TLS_FENCE

_T = TypeVar("_T")


def run_on(main: Callable[[SimEventLoop], Coroutine[Any, Any, _T]], **sim: Any) -> _T:
    """Run ``main(loop)`` on a fresh simulation built with ``sim``."""
    with Simulation(**sim) as simulation:

        async def entry() -> _T:
            loop = asyncio.get_running_loop()
            assert isinstance(loop, SimEventLoop)
            return await main(loop)

        return run(entry(), sim=simulation)


# -- streams ------------------------------------------------------------------------------


def test_streams_carry_a_request_and_a_half_closed_reply() -> None:
    async def main(loop: SimEventLoop) -> tuple[bytes, bytes, Any, Any]:
        seen: list[bytes] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen.append(await reader.read())  # to EOF: the client's write_eof
            writer.write(b"got " + seen[0])
            await writer.drain()
            writer.close()
            await writer.wait_closed()

        server = await asyncio.start_server(handle, "127.0.0.1", 8888)
        reader, writer = await asyncio.open_connection("localhost", 8888)
        peer = writer.get_extra_info("peername")
        writer.write(b"hello")
        writer.write_eof()
        reply = await reader.read()
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return seen[0], reply, peer, writer.get_extra_info("sockname")

    assert run_on(main) == (b"hello", b"got hello", ("127.0.0.1", 8888), ("127.0.0.1", 32768))


def test_a_refused_connection_is_asyncios_connection_refused_error() -> None:
    async def main(loop: SimEventLoop) -> None:
        await asyncio.open_connection("127.0.0.1", 9)

    with pytest.raises(
        ConnectionRefusedError, match=re.escape("[Errno 111] Connect call failed ('127.0.0.1', 9)")
    ):
        run_on(main)


def test_every_address_refused_is_one_multiple_exceptions_error() -> None:
    async def main(loop: SimEventLoop) -> None:
        await asyncio.open_connection("localhost", 9)  # 127.0.0.1, then ::1

    message = (
        "Multiple exceptions: [Errno 111] Connect call failed ('127.0.0.1', 9), "
        "[Errno 111] Connect call failed ('::1', 9, 0, 0)"
    )
    with pytest.raises(OSError, match=f"^{re.escape(message)}$"):
        run_on(main)


def test_the_next_address_is_tried_after_a_refusal() -> None:
    async def main(loop: SimEventLoop) -> Any:
        server = await asyncio.start_server(lambda r, w: w.close(), "::1", 80)
        _, writer = await asyncio.open_connection("localhost", 80)
        peer = writer.get_extra_info("peername")
        writer.close()
        server.close()
        return peer

    assert run_on(main) == ("::1", 80, 0, 0)


def test_a_server_without_a_host_listens_on_both_families() -> None:
    async def main(loop: SimEventLoop) -> list[Any]:
        server = await asyncio.start_server(lambda r, w: w.close(), None, 8000)
        names = [s.getsockname() for s in server.sockets]
        server.close()
        await server.wait_closed()
        return names

    assert run_on(main) == [("0.0.0.0", 8000), ("::", 8000, 0, 0)]


def test_a_port_in_use_is_asyncios_bind_error() -> None:
    async def main(loop: SimEventLoop) -> None:
        await asyncio.start_server(lambda r, w: None, "127.0.0.1", 8080)
        await asyncio.start_server(lambda r, w: None, "127.0.0.1", 8080)

    message = (
        "[Errno 98] error while attempting to bind on address ('127.0.0.1', 8080): "
        "address already in use"
    )
    with pytest.raises(OSError, match=f"^{re.escape(message)}$"):
        run_on(main)


def test_a_reset_reaches_the_reader_as_connection_reset_error() -> None:
    async def main(loop: SimEventLoop) -> str:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.transport.abort()  # close with the client's bytes unread: an RST

        server = await asyncio.start_server(handle, "127.0.0.1", 7000)
        reader, writer = await asyncio.open_connection("127.0.0.1", 7000)
        writer.write(b"never read")
        await writer.drain()
        try:
            await reader.read()
        except ConnectionResetError as exc:
            return str(exc)
        finally:
            writer.close()
            server.close()
        return "no reset"

    assert run_on(main) == "[Errno 104] Connection reset by peer (read on fd 6)"


def test_write_buffer_flow_control_pauses_the_writer_until_the_peer_reads() -> None:
    async def main(loop: SimEventLoop) -> list[Any]:
        events: list[Any] = []
        start_reading = asyncio.Event()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await start_reading.wait()
            total = len(await reader.read())
            events.append(("server read", total, loop.time()))
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 7001)
        reader, writer = await asyncio.open_connection("127.0.0.1", 7001)
        writer.write(b"x" * 1_000_000)
        events.append(("buffered", writer.transport.get_write_buffer_size() > 0))
        drained = asyncio.ensure_future(writer.drain())
        await asyncio.sleep(1)
        events.append(("drained after 1 s", drained.done()))
        start_reading.set()
        writer.write_eof()
        await drained
        events.append(("drained", writer.transport.get_write_buffer_size()))
        await reader.read()
        writer.close()
        server.close()
        return events

    assert run_on(main) == [
        ("buffered", True),
        ("drained after 1 s", False),
        ("drained", 0),
        ("server read", 1_000_000, 1.0),
    ]


# -- AF_UNIX ----------------------------------------------------------------------------


def test_unix_streams_and_a_path_in_use() -> None:
    async def main(loop: SimEventLoop) -> tuple[bytes, str]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write((await reader.readline()).upper())
            writer.close()

        server = await asyncio.start_unix_server(handle, "/run/app.sock")
        reader, writer = await asyncio.open_unix_connection("/run/app.sock")
        writer.write(b"ping\n")
        reply = await reader.read()
        writer.close()
        try:
            await asyncio.start_unix_server(handle, "/run/app.sock")
        except OSError as exc:
            in_use = str(exc)
        server.close()
        await server.wait_closed()
        return reply, in_use

    assert run_on(main) == (b"PING\n", "[Errno 98] Address '/run/app.sock' is already in use")


def test_a_unix_path_nobody_bound_is_file_not_found() -> None:
    async def main(loop: SimEventLoop) -> None:
        await asyncio.open_unix_connection("/run/nothing.sock")

    with pytest.raises(FileNotFoundError, match=r"^\[Errno 2\] No such file or directory"):
        run_on(main)


# -- datagrams ---------------------------------------------------------------------------


class Recorder(asyncio.DatagramProtocol):
    def __init__(self, reply: bool = False) -> None:
        self.reply = reply
        self.got: list[tuple[bytes, Any]] = []
        self.errors: list[str] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.got.append((data, addr))
        if self.reply and self.transport is not None:
            self.transport.sendto(data.upper(), addr)

    def error_received(self, exc: Exception) -> None:
        self.errors.append(f"{type(exc).__name__}: {exc}")


def test_datagram_endpoints_exchange_and_hear_port_unreachable() -> None:
    async def main(loop: SimEventLoop) -> tuple[Any, ...]:
        server_transport, server = await loop.create_datagram_endpoint(
            lambda: Recorder(reply=True), local_addr=("127.0.0.1", 5353)
        )
        transport, client = await loop.create_datagram_endpoint(
            Recorder, remote_addr=("127.0.0.1", 5353)
        )
        transport.sendto(b"one")
        transport.sendto(b"two")
        await asyncio.sleep(0.01)
        transport.close()
        lonely, nobody = await loop.create_datagram_endpoint(
            Recorder, remote_addr=("127.0.0.1", 5354)
        )
        lonely.sendto(b"anyone?")
        await asyncio.sleep(0.01)
        lonely.close()
        server_transport.close()
        await asyncio.sleep(0)
        return server.got, client.got, nobody.errors

    source = ("127.0.0.1", 32768)
    assert run_on(main) == (
        [(b"one", source), (b"two", source)],
        [(b"ONE", ("127.0.0.1", 5353)), (b"TWO", ("127.0.0.1", 5353))],
        ["ConnectionRefusedError: [Errno 111] Connection refused (recvfrom on fd 7)"],
    )


# -- sock_* calls and names ----------------------------------------------------------------


def test_sock_calls_on_virtual_sockets() -> None:
    async def main(loop: SimEventLoop) -> tuple[Any, ...]:
        lst = loop.net.socket()
        lst.bind(("127.0.0.1", 0))
        lst.listen()
        lst.setblocking(False)
        client = loop.net.socket()
        client.setblocking(False)
        await loop.sock_connect(client, lst.getsockname())
        conn, address = await loop.sock_accept(lst)

        async def send() -> None:  # more than a receive queue holds: the reader must run
            await loop.sock_sendall(client, b"abc" * 50_000)
            client.shutdown(socket.SHUT_WR)

        sending = asyncio.ensure_future(send())
        received = bytearray()
        buf = bytearray(4096)
        while n := await loop.sock_recv_into(conn, buf):
            received += buf[:n]
        await sending
        udp = loop.net.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        udp.setblocking(False)
        other = loop.net.socket(socket.AF_INET, socket.SOCK_DGRAM)
        other.setblocking(False)
        await loop.sock_sendto(other, b"dgram", udp.getsockname())
        datagram = await loop.sock_recvfrom(udp, 100)
        for s in (lst, client, conn, udp, other):
            s.close()
        return address, len(received), bytes(received[:6]), datagram

    assert run_on(main) == (
        ("127.0.0.1", 32769),
        150_000,
        b"abcabc",
        (b"dgram", ("127.0.0.1", 32769)),
    )


def test_names_resolve_on_the_loop_against_the_host_table() -> None:
    async def main(loop: SimEventLoop) -> tuple[Any, ...]:
        loop.net.hosts.add("db.test", ["10.0.0.5"])
        infos = await loop.getaddrinfo("db.test", "postgresql", type=socket.SOCK_STREAM)
        name = await loop.getnameinfo(("10.0.0.5", 5432))
        try:
            await loop.getaddrinfo("nowhere.test", 80)
        except socket.gaierror as exc:
            return infos, name, str(exc)
        return infos, name, "resolved"

    assert run_on(main) == (
        [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.5", 5432))],
        ("db.test", "postgresql"),
        "[Errno -2] Name or service not known",
    )


# -- fences --------------------------------------------------------------------------------


def test_a_real_socket_is_refused_with_one_line() -> None:
    real = socket.socket()
    try:

        async def main(loop: SimEventLoop) -> None:
            await loop.sock_recv(real, 10)

        message = (
            "evloop.asyncio: a real socket given to loop.sock_recv() is fenced off in a "
            f"simulation: the fd of {real!r} means nothing in the virtual fd table; make "
            "sockets with loop.net.socket(family, type, proto) (see docs/asyncio.md)"
        )
        with pytest.raises(FencedError, match=f"^{re.escape(message)}$"):
            run_on(main)
    finally:
        real.close()


@pytest.mark.parametrize(
    "call",
    [
        lambda: asyncio.open_connection("127.0.0.1", 443, ssl=True),
        lambda: asyncio.start_server(lambda r, w: None, "127.0.0.1", 443, ssl=object()),
        lambda: asyncio.open_unix_connection("/run/x", ssl=True),
    ],
    ids=["open_connection", "start_server", "open_unix_connection"],
)
def test_tls_is_fenced_with_one_line(call: Callable[[], Coroutine[Any, Any, Any]]) -> None:
    async def main(loop: SimEventLoop) -> None:
        await call()

    with pytest.raises(FencedError, match=f"^{re.escape(TLS_FENCE)}$"):
        run_on(main)
    assert TLS_FENCE.startswith("evloop.asyncio: TLS (ssl=, start_tls) is fenced off in a ")


def test_errno_values_the_tests_rely_on() -> None:
    assert (errno.ECONNREFUSED, errno.ECONNRESET, errno.EADDRINUSE) == (111, 104, 98)


# -- the fuzz finds what is wrong ------------------------------------------------------------


async def one_read_is_one_message(loop: SimEventLoop) -> bytes:
    """A server with a classic bug: it takes one read() for the whole request."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.read(100)  # the bug: a stream has no message boundaries
        writer.write(request.upper())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 7100)
    reader, writer = await asyncio.open_connection("127.0.0.1", 7100)
    writer.write(b"hello world")
    try:
        reply = await reader.read()
    except ConnectionResetError:
        # The server closed with part of the request unread: Linux answers with an RST.
        reply = b"reset"
    writer.close()
    server.close()
    await server.wait_closed()
    return reply


def test_fuzzing_delivery_timing_finds_a_server_that_trusts_one_read() -> None:
    from evloop import RandomChooser

    assert run_on(one_read_is_one_message) == b"HELLO WORLD"  # asyncio's own order hides it
    replies = {
        run_on(one_read_is_one_message, chooser=RandomChooser(seed), faults=["short-write"])
        for seed in range(8)
    }
    # Some schedules cut the request; the server answers a part and closes with
    # the rest unread, which Linux turns into an RST: the bug is found.
    assert replies == {b"HELLO WORLD", b"reset"}


# -- the documentation's examples ---------------------------------------------------------


def test_the_network_examples_of_the_docs_run_verbatim(capsys: pytest.CaptureFixture[str]) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "asyncio.md").read_text()
    section = doc[doc.index("## The network") :]
    section = section[: section.index("\n## ")]
    echo, fuzz = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    namespace: dict[str, Any] = {}
    exec(compile(echo, "docs/asyncio.md", "exec"), namespace)
    assert capsys.readouterr().out == "b'got hello'\n"  # what the example's comment says
    assert "# b'got hello'" in echo
    exec(compile(fuzz, "docs/asyncio.md", "exec"), namespace)
    assert capsys.readouterr().out == "b'got hello'\n" * 16
