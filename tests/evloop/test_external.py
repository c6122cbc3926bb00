"""Tests for evloop.external: scripted peers delivering input at chosen virtual times.

A :class:`~evloop.ScriptedPeer` is the world outside the system: it holds one
end of a virtual pipe or socket pair and its bytes arrive at chosen times.
The system under test here is a small fd handler on the main loop (or a
thread of control) that reads what arrives and notes when.

A peer is one writer: like a process doing blocking writes, its bytes reach
the system in the order it sent them, and its close comes after all of them,
whatever the chooser answers and however full the fd is.
"""

from __future__ import annotations

import select
from collections.abc import Sequence

import pytest

from evloop import ChoiceKind, Simulation, SimulationError
from evloop.loop.fds import PIPE_CAPACITY
from evloop.machine.external import ExternalEvent


class LastChooser:
    """Always the last option: the opposite of FIFO; records every question."""

    def __init__(self) -> None:
        self.calls: list[tuple[ChoiceKind, tuple[str, ...]]] = []

    def choose(self, kind: ChoiceKind, options: Sequence[str]) -> int:
        self.calls.append((kind, tuple(options)))
        return len(options) - 1


class Reader:
    """The system under test: reads an fd from a main-loop handler, noting times."""

    def __init__(self, sim: Simulation, fd: int) -> None:
        self.sim = sim
        self.fd = fd
        self.chunks: list[tuple[int, bytes]] = []
        self.eof_at: int | None = None
        sim.main_loop.set_fd_handler(fd, self.on_readable, None)

    def on_readable(self) -> None:
        try:
            data = self.sim.fds.read(self.fd, 1 << 20)
        except BlockingIOError:
            return
        if not data:
            self.eof_at = self.sim.now_ns
            self.sim.main_loop.set_fd_handler(self.fd, None, None)
            return
        self.chunks.append((self.sim.now_ns, data))

    @property
    def data(self) -> bytes:
        return b"".join(chunk for _, chunk in self.chunks)


def _slow_reader(sim: Simulation, fd: int, start_ns: int, out: bytearray) -> None:
    """A thread of control that starts reading at ``start_ns`` and reads to EOF."""

    def body() -> None:
        sim.sleep(start_ns)
        while True:
            try:
                data = sim.fds.read(fd, 1 << 20)
            except BlockingIOError:
                sim.fds.poll([(fd, select.POLLIN)], -1)
                continue
            if not data:
                return
            out.extend(data)

    sim.thread("reader", body)


# -- delivery at chosen times --------------------------------------------------------------


def test_bytes_arrive_at_the_times_they_were_sent() -> None:
    with Simulation() as sim:
        r, w = sim.fds.pipe()
        reader = Reader(sim, r)
        peer = sim.peer(w, "serial")
        peer.send(b"hello", at_ns=1000)
        peer.send(b"world", at_ns=2500)
        result = sim.run()
    assert reader.chunks == [(1000, b"hello"), (2500, b"world")]
    assert result.time_ns == 2500
    assert result.reason.value == "idle"


def test_send_without_a_time_means_now() -> None:
    with Simulation() as sim:
        r, w = sim.fds.pipe()
        reader = Reader(sim, r)
        sim.sleep(40)
        sim.peer(w, "p").send(b"x")
        sim.run()
    assert reader.chunks == [(40, b"x")]


def test_bytearray_and_memoryview_are_bytes_too() -> None:
    with Simulation() as sim:
        r, w = sim.fds.pipe()
        reader = Reader(sim, r)
        peer = sim.peer(w, "p")
        peer.send(bytearray(b"ab"), at_ns=1)
        peer.send(memoryview(b"cd"), at_ns=2)
        sim.run()
    assert reader.data == b"abcd"


def test_close_gives_the_system_eof_at_that_time() -> None:
    with Simulation() as sim:
        r, w = sim.fds.pipe()
        reader = Reader(sim, r)
        peer = sim.peer(w, "p")
        peer.send(b"last words", at_ns=10)
        peer.close(at_ns=20)
        sim.run()
        assert not sim.fds.is_open(w)
        assert peer.closed
    assert reader.chunks == [(10, b"last words")]
    assert reader.eof_at == 20


def test_sends_after_close_are_dropped() -> None:
    with Simulation() as sim:
        r, w = sim.fds.pipe()
        reader = Reader(sim, r)
        peer = sim.peer(w, "p")
        peer.close(at_ns=10)
        peer.send(b"too late", at_ns=20)
        sim.run()
        # The closed number may belong to someone else by now: never touched again.
        assert peer.delivered == 0
    assert reader.data == b""
    assert reader.eof_at == 10


def test_a_send_after_close_never_writes_into_a_reused_fd_number() -> None:
    with Simulation() as sim:
        r, w = sim.fds.pipe()
        Reader(sim, r)
        peer = sim.peer(w, "p")
        peer.close(at_ns=10)
        peer.send(b"ghost", at_ns=30)
        sim.run(until_ns=20)
        new_r, new_w = sim.fds.pipe()
        assert w in (new_r, new_w)
        sim.run()
        assert sim.fds.mask(new_r) & select.POLLIN == 0


def test_input_wakes_a_thread_blocked_in_poll() -> None:
    with Simulation() as sim:
        r, w = sim.fds.pipe()
        got: list[tuple[int, bytes]] = []

        def reader() -> None:
            sim.fds.poll([(r, select.POLLIN)], -1)
            got.append((sim.now_ns, sim.fds.read(r, 100)))

        sim.thread("reader", reader)
        sim.peer(w, "p").send(b"ping", at_ns=321)
        sim.run()
    assert got == [(321, b"ping")]


def test_pending_input_keeps_the_run_going_and_until_stops_before_it() -> None:
    with Simulation() as sim:
        r, w = sim.fds.pipe()
        reader = Reader(sim, r)
        sim.peer(w, "p").send(b"x", at_ns=1000)
        result = sim.run(until_ns=500)
        assert result.reason.value == "until"
        assert result.time_ns == 500
        assert reader.chunks == []
        result = sim.run()
        assert result.reason.value == "idle"
    assert reader.chunks == [(1000, b"x")]


def test_input_into_an_unwatched_fd_just_waits_there() -> None:
    with Simulation() as sim:
        r, w = sim.fds.pipe()
        sim.peer(w, "p").send(b"unread", at_ns=7)
        result = sim.run()
        assert result.time_ns == 7
        assert sim.fds.read(r, 100) == b"unread"


# -- socket peers talk both ways -----------------------------------------------------------


def test_a_socket_peer_receives_what_the_system_writes() -> None:
    with Simulation() as sim:
        system_end, peer_end = sim.fds.socketpair()

        def echo() -> None:
            try:
                data = sim.fds.read(system_end, 100)
            except BlockingIOError:
                return
            if data:
                sim.fds.write(system_end, data.upper())
            else:
                sim.main_loop.set_fd_handler(system_end, None, None)

        sim.main_loop.set_fd_handler(system_end, echo, None)
        client = sim.peer(peer_end, "client")
        assert client.received() == b""
        client.send(b"hi", at_ns=5)
        client.send(b"there", at_ns=9)
        sim.run()
        assert client.received() == b"HITHERE"
        assert client.received() == b""
        sim.fds.write(system_end, b"abcdef")
        assert client.received(4) == b"abcd"
        assert client.received() == b"ef"


def test_a_peer_whose_reader_is_gone_loses_its_bytes_quietly() -> None:
    with Simulation() as sim:
        r, w = sim.fds.pipe()
        sim.fds.close(r)
        peer = sim.peer(w, "p")
        peer.send(b"into the void", at_ns=3)
        result = sim.run()
        assert result.reason.value == "idle"
        assert peer.delivered == 0


# -- the log and the step counter ----------------------------------------------------------


def test_each_delivery_is_a_logged_step() -> None:
    with Simulation(log=True) as sim:
        _r, w = sim.fds.pipe()
        peer = sim.peer(w, "serial")
        peer.send(b"abc", at_ns=10)
        peer.close(at_ns=20)
        sim.run()
        assert sim.log is not None
        inputs = [e.as_tuple() for e in sim.log if e.kind == "input"]
        assert sim.steps == len(sim.log) == 2
    assert inputs == [
        (1, 10, "serial", "-", "input", "3 bytes"),
        (2, 20, "serial", "-", "input", "close"),
    ]


# -- a big send waits for room, as a blocking writer would ---------------------------------


def test_a_send_bigger_than_the_pipe_is_delivered_as_room_appears() -> None:
    payload = bytes(range(256)) * 300  # 76800 bytes
    with Simulation(log=True) as sim:
        r, w = sim.fds.pipe()
        reader = Reader(sim, r)
        peer = sim.peer(w, "bulk")
        peer.send(payload, at_ns=0)
        sim.run()
        assert sim.log is not None
        inputs = [e.name for e in sim.log if e.kind == "input"]
        assert peer.delivered == len(payload)
    assert reader.data == payload
    assert inputs == [f"{PIPE_CAPACITY} bytes", f"{len(payload) - PIPE_CAPACITY} bytes"]


def test_a_stalled_send_is_not_overtaken_by_the_peers_next_send() -> None:
    # The pipe fills; the reader frees 5 bytes: too few for the 10 stalled bytes
    # (a small pipe write is atomic), but enough for the next 3-byte send. A
    # blocking writer cannot write its next message before the previous one.
    with Simulation() as sim:
        r, w = sim.fds.pipe()
        peer = sim.peer(w, "p")
        peer.send(b"A" * PIPE_CAPACITY + b"B" * 10, at_ns=0)
        peer.send(b"CCC", at_ns=100)
        out = bytearray()

        def reader() -> None:
            sim.sleep(50)
            out.extend(sim.fds.read(r, 5))
            sim.sleep(100)
            while True:
                try:
                    data = sim.fds.read(r, 1 << 20)
                except BlockingIOError:
                    sim.fds.poll([(r, select.POLLIN)], 10)
                    if not sim.fds.mask(r) & select.POLLIN:
                        return
                    continue
                out.extend(data)

        sim.thread("reader", reader)
        sim.run()
    assert bytes(out) == b"A" * PIPE_CAPACITY + b"B" * 10 + b"CCC"


def test_a_stalled_send_is_not_overtaken_by_the_peers_close() -> None:
    payload = b"A" * 70000
    with Simulation() as sim:
        r, w = sim.fds.pipe()
        peer = sim.peer(w, "p")
        peer.send(payload, at_ns=0)
        peer.close(at_ns=1)
        out = bytearray()
        _slow_reader(sim, r, 50, out)
        sim.run()
    assert len(out) == len(payload)


# -- one peer's own actions are not reordered ----------------------------------------------


def test_two_sends_of_one_peer_at_the_same_time_keep_their_order() -> None:
    chooser = LastChooser()
    with Simulation(chooser=chooser) as sim:
        r, w = sim.fds.pipe()
        reader = Reader(sim, r)
        peer = sim.peer(w, "p")
        peer.send(b"first,", at_ns=10)
        peer.send(b"second", at_ns=10)
        sim.run()
    assert reader.data == b"first,second"
    # One writer's order is not open: nothing to choose.
    assert [c for c in chooser.calls if c[0] is ChoiceKind.EXTERNAL] == []


def test_a_send_and_a_close_at_the_same_time_deliver_the_bytes_first() -> None:
    with Simulation(chooser=LastChooser()) as sim:
        r, w = sim.fds.pipe()
        reader = Reader(sim, r)
        peer = sim.peer(w, "p")
        peer.send(b"bye", at_ns=10)
        peer.close(at_ns=10)
        sim.run()
    assert reader.data == b"bye"
    assert reader.eof_at == 10


def test_simultaneous_inputs_of_two_peers_keep_each_peers_order() -> None:
    chooser = LastChooser()
    with Simulation(chooser=chooser, log=True) as sim:
        r1, w1 = sim.fds.pipe()
        r2, w2 = sim.fds.pipe()
        a = Reader(sim, r1)
        b = Reader(sim, r2)
        p = sim.peer(w1, "p")
        q = sim.peer(w2, "q")
        p.send(b"p1", at_ns=10)
        p.send(b"p2", at_ns=10)
        q.send(b"q1", at_ns=10)
        sim.run()
        assert sim.log is not None
        order = [e.thread for e in sim.log if e.kind == "input"]
    assert a.data == b"p1p2"
    assert b.data == b"q1"
    assert sorted(order) == ["p", "p", "q"]
    assert chooser.calls  # two peers at one instant: that order is open


# -- misuse --------------------------------------------------------------------------------


def test_a_peer_cannot_send_in_the_past() -> None:
    with Simulation() as sim:
        _, w = sim.fds.pipe()
        peer = sim.peer(w, "p")
        sim.sleep(10)
        with pytest.raises(
            ValueError,
            match=r"^peer 'p': cannot send at t=5 ns, which is in the past \(now is t=10 ns\)$",
        ):
            peer.send(b"x", at_ns=5)
        with pytest.raises(ValueError, match=r"t=5 ns, which is in the past \(now is t=10 ns\)$"):
            peer.close(at_ns=5)


def test_a_peer_sends_bytes_only() -> None:
    with Simulation() as sim:
        _, w = sim.fds.pipe()
        peer = sim.peer(w, "p")
        with pytest.raises(TypeError, match=r"^peer 'p' sends bytes, not str$"):
            peer.send("text")  # type: ignore[arg-type]


def test_a_peer_needs_an_open_fd() -> None:
    with (
        Simulation() as sim,
        pytest.raises(ValueError, match=r"^peer on fd 99: the fd is not open$"),
    ):
        sim.peer(99)


def test_a_closed_simulation_makes_no_peers() -> None:
    sim = Simulation()
    _, w = sim.fds.pipe()
    sim.close()
    with pytest.raises(SimulationError, match=r"^this simulation is closed$"):
        sim.peer(w)


# -- names and descriptions ----------------------------------------------------------------


def test_a_peer_is_named_after_its_fd_by_default() -> None:
    with Simulation() as sim:
        _, w = sim.fds.pipe()
        peer = sim.peer(w)
        assert peer.name == f"peer-fd{w}"
        assert peer.fd == w
        assert repr(peer) == f"<ScriptedPeer 'peer-fd{w}' fd={w} delivered=0>"


def test_repr_counts_the_delivered_bytes() -> None:
    with Simulation() as sim:
        _r, w = sim.fds.pipe()
        peer = sim.peer(w, "p")
        peer.send(b"abc", at_ns=1)
        sim.run()
        assert repr(peer) == f"<ScriptedPeer 'p' fd={w} delivered=3>"


def test_an_external_event_describes_what_is_left_to_do() -> None:
    with Simulation() as sim:
        _, w = sim.fds.pipe()
        peer = sim.peer(w, "p")
        event = ExternalEvent(peer, 0, b"hello")
        assert event.describe() == "p: 5 bytes"
        event.sent = 2
        assert event.describe() == "p: 3 bytes"
        assert ExternalEvent(peer, 0, close=True).describe() == "p: close"
