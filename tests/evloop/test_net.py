"""Tests for evloop.loop.net: virtual sockets, checked against Linux's rules.

The differential scenarios run twice, on real loopback sockets and on the
virtual network, and must log the same results, errno and poll masks step
for step (Linux only; loopback answers inside the system call, so no step
waits). The other tests check what real sockets cannot show deterministically
(ephemeral ports, backlogs, blocking calls in threads of control, faults).
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import sys
from collections.abc import Callable
from typing import Any

import pytest

from evloop import SCALE_MS, ChoiceKind, Simulation
from evloop.loop.fds import FdTable
from evloop.loop.net import EPHEMERAL_PORTS, Network, VirtualSocket

_BITS = ("POLLIN", "POLLOUT", "POLLERR", "POLLHUP", "POLLRDHUP")
_ALL = select.POLLIN | select.POLLOUT | getattr(select, "POLLRDHUP", 0x2000)


def names(mask: int) -> str:
    return "|".join(bit[4:] for bit in _BITS if mask & getattr(select, bit, 0x2000))


class RealEnv:
    """Real sockets on the loopback interface."""

    def __init__(self) -> None:
        self.opened: list[socket.socket] = []
        self.unix_name = f"\0evreplay-test-{os.getpid()}"

    def socket(self, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM) -> Any:
        sock = socket.socket(family, kind)
        self.opened.append(sock)
        return sock

    def accept(self, lst: Any) -> Any:
        conn, address = lst.accept()
        self.opened.append(conn)
        return conn, address

    def mask(self, sock: Any) -> str:
        poller = select.poll()
        poller.register(sock.fileno(), _ALL)
        ready = poller.poll(0)
        return names(ready[0][1] if ready else 0)

    def close(self) -> None:
        for sock in self.opened:
            sock.close()


class VirtualEnv:
    def __init__(self) -> None:
        self.net = Network(FdTable())
        self.unix_name = "\0evreplay-test"

    def socket(self, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM) -> Any:
        return self.net.socket(family, kind)

    def accept(self, lst: Any) -> Any:
        return lst.accept()

    def mask(self, sock: Any) -> str:
        return names(self.net.fds.mask(sock.fileno()))

    def close(self) -> None:
        pass


Log = list[tuple[str, object]]
Do = Callable[[str, Callable[[], object]], None]


def run(env: Any, scenario: Callable[[Any, Do], None]) -> Log:
    log: Log = []

    def do(label: str, fn: Callable[[], object]) -> None:
        try:
            result = fn()
        except OSError as exc:
            result = f"{type(exc).__name__}:{errno.errorcode.get(exc.errno or 0, exc.errno)}"
        log.append((label, result))

    try:
        scenario(env, do)
    finally:
        env.close()
    return log


# -- the differential scenarios --------------------------------------------------------


def stream_and_half_close(env: Any, do: Do) -> None:
    lst = env.socket()
    lst.bind(("127.0.0.1", 0))
    do("bound, not listening", lambda: env.mask(lst))
    lst.listen(1)
    lst.setblocking(False)
    do("accept with none queued", lst.accept)
    do("listener mask", lambda: env.mask(lst))
    c = env.socket()
    c.setblocking(False)
    do("connect", lambda: c.connect(lst.getsockname()))
    do("connecting mask", lambda: env.mask(c))
    do("connect again", lambda: c.connect(lst.getsockname()))
    do("connect a third time", lambda: c.connect(lst.getsockname()))
    do("listener mask", lambda: env.mask(lst))
    a, address = env.accept(lst)
    a.setblocking(False)
    do("addresses", lambda: (address == c.getsockname(), c.getpeername() == lst.getsockname()))
    do("recv nothing", lambda: a.recv(5))
    do("send", lambda: c.send(b"hello"))
    do("readable", lambda: env.mask(a))
    do("recv part", lambda: a.recv(3))
    do("recv rest", lambda: a.recv(30))
    c.shutdown(socket.SHUT_WR)
    do("after peer SHUT_WR", lambda: env.mask(a))
    do("after own SHUT_WR", lambda: env.mask(c))
    do("recv EOF", lambda: a.recv(5))
    do("send after SHUT_WR", lambda: c.send(b"x"))
    do("the other way still flows", lambda: a.send(b"hi"))
    do("recv", lambda: c.recv(5))
    a.shutdown(socket.SHUT_WR)
    do("both shut", lambda: env.mask(a))
    do("both shut (other)", lambda: env.mask(c))
    do("recv EOF", lambda: c.recv(5))


def resets(env: Any, do: Do) -> None:
    lst = env.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(5)
    c = env.socket()
    c.connect(lst.getsockname())
    a, _ = env.accept(lst)
    c.setblocking(False)
    do("send", lambda: c.send(b"unread"))
    a.close()
    do("reset", lambda: env.mask(c))
    do("recv", lambda: c.recv(5))
    do("after the error", lambda: env.mask(c))
    do("recv", lambda: c.recv(5))
    do("send", lambda: c.send(b"x"))
    do("SO_ERROR", lambda: c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
    c = env.socket()
    c.connect(lst.getsockname())
    a, _ = env.accept(lst)
    c.setblocking(False)
    a.close()
    do("peer closed", lambda: env.mask(c))
    do("recv", lambda: c.recv(5))
    do("first send is taken", lambda: c.send(b"x"))
    do("and answered by an RST", lambda: env.mask(c))
    do("send", lambda: c.send(b"x"))
    do("send", lambda: c.send(b"x"))
    do("recv", lambda: c.recv(5))
    do("mask", lambda: env.mask(c))
    c = env.socket()
    c.connect(lst.getsockname())
    a, _ = env.accept(lst)
    c.setblocking(False)
    a.setblocking(False)
    c.shutdown(socket.SHUT_RD)
    do("SHUT_RD", lambda: env.mask(c))
    do("recv", lambda: c.recv(5))
    do("peer", lambda: env.mask(a))
    a.send(b"late")
    do("data after SHUT_RD", lambda: env.mask(c))
    do("recv", lambda: c.recv(5))
    c.shutdown(socket.SHUT_WR)
    do("SHUT_RD then SHUT_WR", lambda: env.mask(c))
    do("peer", lambda: env.mask(a))


def refused_and_unconnected(env: Any, do: Do) -> None:
    bound = env.socket()
    bound.bind(("127.0.0.1", 0))
    s = env.socket()
    s.setblocking(False)
    do("connect", lambda: s.connect(bound.getsockname()))
    do("refused", lambda: env.mask(s))
    do("SO_ERROR", lambda: s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
    do("after SO_ERROR", lambda: env.mask(s))
    do("getpeername", s.getpeername)
    do("recv", lambda: s.recv(1))
    do("send", lambda: s.send(b"x"))
    blocking = env.socket()
    do("blocking connect", lambda: blocking.connect(bound.getsockname()))
    new = env.socket()
    do("unconnected", lambda: env.mask(new))
    do("recv", lambda: new.recv(1))
    do("send", lambda: new.send(b"x"))
    do("shutdown", lambda: new.shutdown(socket.SHUT_WR))
    do("getpeername", new.getpeername)
    do("getsockname", new.getsockname)
    other = env.socket()
    do("bind in use", lambda: other.bind(bound.getsockname()))
    other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    do("bind in use, SO_REUSEADDR", lambda: other.bind(bound.getsockname()))
    bound.listen()
    third = env.socket()
    third.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    do("bind on a listener, SO_REUSEADDR", lambda: third.bind(bound.getsockname()))


def backlog(env: Any, do: Do) -> None:
    lst = env.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(0)  # holds backlog + 1 = 1 connection
    clients = []
    for i in range(3):
        c = env.socket()
        c.setblocking(False)
        clients.append(c)
        do(f"connect {i}", lambda c=c: c.connect(lst.getsockname()))
        do(f"mask {i}", lambda c=c: env.mask(c))
    lst.close()
    do("a queued connection is reset", lambda: env.mask(clients[0]))
    do("SO_ERROR", lambda: clients[0].getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))


def datagrams(env: Any, do: Do) -> None:
    u = env.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.setblocking(False)
    do("fresh", lambda: env.mask(u))
    do("recvfrom", lambda: u.recvfrom(10))
    v = env.socket(socket.AF_INET, socket.SOCK_DGRAM)
    v.bind(("127.0.0.1", 0))
    v.setblocking(False)
    do("sendto", lambda: u.sendto(b"hello", v.getsockname()))
    do("sendto", lambda: u.sendto(b"world!", v.getsockname()))
    do("autobound to the wildcard", lambda: u.getsockname()[0])
    do("readable", lambda: env.mask(v))
    do("a datagram is cut to the buffer", lambda: v.recv(3))
    do("and comes from", lambda: v.recvfrom(100) == (b"world!", ("127.0.0.1", u.getsockname()[1])))
    do("drained", lambda: env.mask(v))
    gone = env.socket(socket.AF_INET, socket.SOCK_DGRAM)
    gone.bind(("127.0.0.1", 0))
    address = gone.getsockname()
    gone.close()
    do("sendto nobody", lambda: u.sendto(b"x", address))
    do("an unconnected socket hears nothing", lambda: env.mask(u))
    u.connect(address)
    do("connect fixes the source address", lambda: u.getsockname()[0])
    do("send to nobody, connected", lambda: u.send(b"x"))
    do("ICMP port unreachable", lambda: env.mask(u))
    do("recv", lambda: u.recv(10))
    do("recv", lambda: u.recv(10))


def unix_streams(env: Any, do: Do) -> None:
    name = env.unix_name
    lst = env.socket(socket.AF_UNIX)
    lst.bind(name)
    lst.listen(0)
    c = env.socket(socket.AF_UNIX)
    c.setblocking(False)
    do("connect completes at once", lambda: c.connect(name))
    do("connected", lambda: env.mask(c))
    c2 = env.socket(socket.AF_UNIX)
    c2.setblocking(False)
    do("full backlog", lambda: c2.connect(name))
    do("nobody bound", lambda: env.socket(socket.AF_UNIX).connect(name + "x"))
    a, _ = env.accept(lst)
    a.setblocking(False)
    do("unnamed", lambda: repr(c.getsockname()))
    do("unnamed peer", lambda: repr(a.getpeername()))
    c.send(b"abc")
    a.close()
    do("peer closed with unread data", lambda: env.mask(c))
    do("send", lambda: c.send(b"z"))
    do("recv", lambda: c.recv(5))
    do("recv", lambda: c.recv(5))
    c3 = env.socket(socket.AF_UNIX)
    c3.connect(name)
    a3, _ = env.accept(lst)
    a3.send(b"unread")
    a3.close()
    c3.setblocking(False)
    do("peer closed, data left", lambda: env.mask(c3))
    do("recv", lambda: c3.recv(10))
    do("recv", lambda: c3.recv(10))
    do("send", lambda: c3.send(b"x"))


SCENARIOS = [stream_and_half_close, resets, refused_and_unconnected, backlog, datagrams,
             unix_streams]


@pytest.mark.skipif(sys.platform != "linux", reason="the virtual network is Linux's")
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_virtual_sockets_behave_as_linux_loopback(scenario: Callable[[Any, Do], None]) -> None:
    real = run(RealEnv(), scenario)
    virtual = run(VirtualEnv(), scenario)
    assert virtual == real


def test_the_differential_scenarios_cover_every_errno_they_name() -> None:
    """The scenarios do meet the errors the network promises (a guard on the guard)."""
    seen = {str(result).split(":")[1] for sc in SCENARIOS for _, result in run(VirtualEnv(), sc)
            if isinstance(result, str) and ":" in result}
    assert {"EAGAIN", "EINPROGRESS", "EISCONN", "EPIPE", "ECONNRESET", "ECONNREFUSED",
            "ENOTCONN", "EADDRINUSE"} <= seen


# -- ports and backlogs ------------------------------------------------------------------


def listener(net: Network, port: int = 0, backlog: int = 5) -> VirtualSocket:
    lst = net.socket()
    lst.bind(("127.0.0.1", port))
    lst.listen(backlog)
    lst.setblocking(False)
    return lst


def test_ephemeral_ports_count_up_from_the_range_start_and_skip_ports_in_use() -> None:
    net = Network(FdTable())
    lst = listener(net, EPHEMERAL_PORTS.start + 1)
    assert lst.getsockname() == ("127.0.0.1", 32769)
    ports = []
    for _ in range(3):
        c = net.socket()
        c.setblocking(False)
        assert c.connect_ex(lst.getsockname()) == errno.EINPROGRESS
        ports.append(c.getsockname()[1])
    assert ports == [32768, 32770, 32771]
    other = Network(FdTable())
    s = other.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 0))
    assert s.getsockname() == ("0.0.0.0", 32768)  # another network: the same numbers


def test_connects_to_a_full_listener_get_in_in_connect_order() -> None:
    net = Network(FdTable())
    lst = listener(net, backlog=0)
    clients = [net.socket() for _ in range(3)]
    for c in clients:
        c.setblocking(False)
        assert c.connect_ex(lst.getsockname()) == errno.EINPROGRESS
        c.settimeout(0.0)
    masks = [net.fds.mask(c.fileno()) for c in clients]
    assert masks == [select.POLLOUT, 0, 0]
    accepted = []
    for _ in range(3):
        _conn, address = lst.accept()
        accepted.append(address[1])
    assert accepted == [c.getsockname()[1] for c in clients]
    assert all(net.fds.mask(c.fileno()) == select.POLLOUT for c in clients)


def test_closing_a_listener_refuses_the_connects_still_waiting() -> None:
    # Linux leaves them waiting until a retransmitted SYN meets the closed
    # port (about a second later); the virtual network refuses them at once.
    net = Network(FdTable())
    lst = listener(net, backlog=0)
    first, waiting = net.socket(), net.socket()
    for c in (first, waiting):
        c.setblocking(False)
        c.connect_ex(lst.getsockname())
    lst.close()
    assert first.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNRESET
    assert waiting.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNREFUSED


def test_a_closed_port_is_free_again_at_once() -> None:
    net = Network(FdTable())
    lst = listener(net, 8080)
    with pytest.raises(OSError, match=r"^\[Errno 98\] Address already in use \(bind on fd 4\)$"):
        net.socket().bind(("0.0.0.0", 8080))
    lst.close()
    assert listener(net, 8080).getsockname() == ("127.0.0.1", 8080)


def test_addresses_outside_the_host_table() -> None:
    net = Network(FdTable(), hosts={"server.test": ["10.0.0.1"]})
    s = net.socket()
    with pytest.raises(OSError) as info:
        s.bind(("10.9.9.9", 0))
    assert info.value.errno == errno.EADDRNOTAVAIL
    s.setblocking(False)
    with pytest.raises(OSError) as info:
        s.connect(("10.9.9.9", 80))
    assert info.value.errno == errno.ENETUNREACH
    server = net.socket()
    server.bind(("server.test", 80))
    server.listen()
    assert server.getsockname() == ("10.0.0.1", 80)
    assert s.connect_ex(("server.test", 80)) == errno.EINPROGRESS
    assert s.getpeername() == ("10.0.0.1", 80)


def test_ipv6_sockets_have_their_own_port_space() -> None:
    net = Network(FdTable())
    v4 = listener(net, 9000)
    v6 = net.socket(socket.AF_INET6)
    v6.bind(("::1", 9000))
    v6.listen()
    c = net.socket(socket.AF_INET6)
    c.setblocking(False)
    assert c.connect_ex(("::1", 9000)) == errno.EINPROGRESS
    conn, address = v6.accept()
    assert address == ("::1", 32768, 0, 0)
    assert conn.getsockname() == ("::1", 9000, 0, 0)
    assert v4.getsockname() == ("127.0.0.1", 9000)


def test_a_small_receive_buffer_is_write_flow_control() -> None:
    net = Network(FdTable())
    lst = listener(net)
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    assert lst.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == 4096  # doubled, as Linux
    c = net.socket()
    c.setblocking(False)
    c.connect_ex(lst.getsockname())
    conn, _ = lst.accept()
    conn.setblocking(False)
    assert c.send(b"x" * 10_000) == 4096
    assert net.fds.mask(c.fileno()) == 0
    with pytest.raises(BlockingIOError):
        c.send(b"y")
    assert conn.recv(1000) == b"x" * 1000
    assert net.fds.mask(c.fileno()) == select.POLLOUT
    assert c.send(b"z" * 5000) == 1000


def test_peeking_leaves_the_bytes() -> None:
    net = Network(FdTable())
    lst = listener(net)
    c = net.socket()
    c.setblocking(False)
    c.connect_ex(lst.getsockname())
    conn, _ = lst.accept()
    c.sendall(b"hello")
    assert conn.recv(3, socket.MSG_PEEK) == b"hel"
    buf = bytearray(8)
    assert conn.recv_into(buf) == 5
    assert bytes(buf[:5]) == b"hello"


def test_bytes_sent_before_accept_wait_in_the_embryo() -> None:
    net = Network(FdTable())
    lst = listener(net)
    c = net.socket()
    c.setblocking(False)
    c.connect_ex(lst.getsockname())
    c.sendall(b"early")
    c.close()
    conn, _ = lst.accept()
    assert conn.recv(10) == b"early"
    assert conn.recv(10) == b""


def test_the_fd_table_half_closes_a_socketpair() -> None:
    fds = FdTable()
    a, b = fds.socketpair()
    fds.shutdown(a, socket.SHUT_WR)
    assert names(fds.mask(b)) == "IN|OUT|RDHUP"
    assert fds.read(b, 10) == b""
    with pytest.raises(BrokenPipeError, match=r"^\[Errno 32\] Broken pipe \(write on fd 3\)$"):
        fds.write(a, b"x")
    assert fds.write(b, b"back") == 4
    assert fds.read(a, 10) == b"back"
    r, _ = fds.pipe()
    with pytest.raises(OSError, match=r"^\[Errno 88\] Socket operation on non-socket"):
        fds.shutdown(r, socket.SHUT_WR)
    with pytest.raises(OSError, match=r"^\[Errno 22\] Invalid argument \(shutdown on fd 3\)$"):
        fds.shutdown(a, 7)
    with pytest.raises(OSError, match=r"^\[Errno 9\] Bad file descriptor \(shutdown on fd 99\)$"):
        fds.shutdown(99, socket.SHUT_WR)


# -- blocking sockets in threads of control ---------------------------------------------


def test_blocking_sockets_block_a_thread_of_control_in_virtual_time() -> None:
    got: list[object] = []
    with Simulation() as sim:
        net = sim.net
        lst = net.socket()
        lst.bind(("127.0.0.1", 7))
        lst.listen()

        def server() -> None:
            conn, _ = lst.accept()
            while chunk := conn.recv(3):
                got.append((sim.now_ns // SCALE_MS, chunk))
            conn.sendall(b"bye")
            conn.close()

        def client() -> None:
            sim.sleep(5 * SCALE_MS)
            c = net.socket()
            c.connect(("127.0.0.1", 7))
            c.sendall(b"hello")
            c.shutdown(socket.SHUT_WR)
            got.append(c.recv(10))
            lst.settimeout(0.25)
            with pytest.raises(TimeoutError, match=r"^timed out$"):
                lst.accept()
            got.append(sim.now_ns // SCALE_MS)

        sim.thread("server", server)
        sim.thread("client", client)
        sim.run()
    assert got == [(5, b"hel"), (5, b"lo"), b"bye", 255]


# -- faults ------------------------------------------------------------------------------


def _stream_under_faults(seed: int, faults: list[str]) -> tuple[bytes, bytes, int]:
    """Two threads exchange numbered chunks both ways under ``faults``, random choices."""
    from evloop import RandomChooser

    with Simulation(chooser=RandomChooser(seed), faults=faults, log=True) as sim:
        net = sim.net
        lst = net.socket()
        lst.bind(("127.0.0.1", 80))
        lst.listen()
        received: dict[str, bytearray] = {"server": bytearray(), "client": bytearray()}
        payload = b"".join(b"%04d" % i for i in range(200))

        def pump(name: str, sock: VirtualSocket) -> None:
            view = payload
            sock.setblocking(False)
            while True:
                if view:
                    with contextlib.suppress(BlockingIOError):
                        view = view[sock.send(view[:97]):]
                    if not view:
                        sock.shutdown(socket.SHUT_WR)
                try:
                    chunk = sock.recv(61)
                except BlockingIOError:
                    sim.fds.poll([(sock.fileno(), select.POLLIN | select.POLLOUT * bool(view))], -1)
                    continue
                if not chunk:
                    if not view:
                        return
                    continue
                received[name] += chunk

        def server() -> None:
            conn, _ = lst.accept()
            pump("server", conn)

        def client() -> None:
            c = net.socket()
            c.connect(("127.0.0.1", 80))
            pump("client", c)

        sim.thread("server", server)
        sim.thread("client", client)
        sim.run()
        faulted = sum(1 for event in sim.log or () if event.kind == "fault")
        return bytes(received["server"]), bytes(received["client"]), faulted


@pytest.mark.parametrize("seed", range(12))
def test_delay_and_partition_never_reorder_a_direction(seed: int) -> None:
    payload = b"".join(b"%04d" % i for i in range(200))
    server, client, faulted = _stream_under_faults(
        seed, ["delay", "partition", "short-write", "short-read"]
    )
    assert server == payload
    assert client == payload
    assert faulted > 0  # the chooser did inject faults


def test_the_order_check_can_fail_reorder_does_reorder() -> None:
    payload = b"".join(b"%04d" % i for i in range(200))
    outcomes = {_stream_under_faults(seed, ["reorder"])[0] == payload for seed in range(6)}
    assert False in outcomes  # a reorder fault is the only way a direction reorders


class ResetOnce:
    """Answers "reset" at the first fault decision that offers it, "none" elsewhere."""

    def __init__(self) -> None:
        self.done = False

    def choose(self, kind: ChoiceKind, options: Any) -> int:
        if kind is ChoiceKind.FAULT and not self.done and "reset" in options:
            self.done = True
            return list(options).index("reset")
        return 0


def test_a_reset_fault_resets_a_tcp_connection_and_only_tcp() -> None:
    with Simulation(chooser=ResetOnce(), faults=["reset"], log=True) as sim:
        a, _ = sim.fds.socketpair()
        assert sim.fds.write(a, b"pair") == 4  # a socket pair is never reset
        lst = listener(sim.net)
        c = sim.net.socket()
        c.setblocking(False)
        c.connect_ex(lst.getsockname())
        conn, _ = lst.accept()
        conn.setblocking(False)
        with pytest.raises(ConnectionResetError,
                           match=r"^\[Errno 104\] Connection reset by peer \(write on fd \d+\)$"):
            c.send(b"lost")
        assert names(sim.fds.mask(conn.fileno())) == "IN|OUT|ERR|HUP|RDHUP"
        with pytest.raises(ConnectionResetError):
            conn.recv(10)
        assert conn.recv(10) == b""
        with pytest.raises(BrokenPipeError):
            c.send(b"more")
        with pytest.raises(BrokenPipeError):
            conn.send(b"back")
        assert sim.log is not None
        assert [e.name for e in sim.log if e.kind == "fault"] == [f"fd {c.fileno()}: reset"]


class Script:
    """Answers fault decisions from a script of option labels ("none" when it runs out)."""

    def __init__(self, *labels: str) -> None:
        self.labels = list(labels)
        self.asked: list[list[str]] = []

    def choose(self, kind: ChoiceKind, options: Any) -> int:
        if kind is not ChoiceKind.FAULT:
            return 0
        self.asked.append(list(options))
        label = self.labels.pop(0) if self.labels else "none"
        return list(options).index(label)


def _datagrams_under(chooser: Script) -> tuple[list[tuple[int, bytes]], list[str]]:
    got: list[tuple[int, bytes]] = []
    with Simulation(chooser=chooser, faults=["delay", "loss", "duplicate"], log=True) as sim:
        rx = sim.net.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.bind(("127.0.0.1", 53))
        tx = sim.net.socket(socket.AF_INET, socket.SOCK_DGRAM)

        def sender() -> None:
            for i in range(4):
                tx.sendto(b"d%d" % i, ("127.0.0.1", 53))

        def receiver() -> None:
            rx.settimeout(0.05)
            while True:
                try:
                    data = rx.recv(10)
                except TimeoutError:
                    return
                got.append((sim.now_ns // SCALE_MS, data))

        sim.thread("sender", sender)
        sim.thread("receiver", receiver)
        sim.run()
        assert sim.log is not None
        return got, [e.name for e in sim.log if e.kind == "fault"]


def test_datagrams_meet_delay_loss_and_duplicate_as_decisions() -> None:
    chooser = Script("delay 10ms", "loss", "duplicate", "none")
    got, faults = _datagrams_under(chooser)
    assert chooser.asked[0] == ["none", "delay 1ms", "delay 10ms", "loss", "duplicate"]
    # d0 comes 10 ms late, after d2 (twice) and d3: a datagram may overtake another.
    assert got == [(0, b"d2"), (0, b"d2"), (0, b"d3"), (10, b"d0")]
    assert [name.split(": ", 1)[1] for name in faults] == [
        "datagram delay 10ms", "datagram loss", "datagram duplicate", "a delayed datagram arrives",
    ]
    assert len({name.split(": ", 1)[0] for name in faults}) == 1  # all on the sender's fd


def test_datagrams_without_faults_arrive_in_order_at_once() -> None:
    got, faults = _datagrams_under(Script())
    assert got == [(0, b"d0"), (0, b"d1"), (0, b"d2"), (0, b"d3")]
    assert faults == []
