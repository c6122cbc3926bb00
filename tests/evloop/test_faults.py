"""Tests for evloop.faults: fault injection, each fault a decision of the chooser.

What these pin down, from the issue ("each fault kind has a test showing it
happens, is recorded, and replays"):

* with a fake chooser that picks the fault, each kind does what it says
  (bytes delayed to the right virtual time, overtaken, lost, duplicated, held
  by a partition until it heals; short counts; EAGAIN and EINTR raised with
  nothing done; HOST jumped or skewed; a thread preempted), and shows as a
  ``fault`` step in the dispatch log;
* with the FIFO chooser the faults a scenario accepts change nothing (the run
  is step for step the run without faults), and with no fault accepted no
  FAULT decision is ever asked;
* ``replay.record(..., chooser="random:N", faults=[kind])`` then
  ``replay.play`` is bit-exact, and the trace holds the FAULT decisions;
* notifier eventfds and scripted peers are never faulted; a bad spec says
  which specs exist.

:func:`link_workload` is the scenario the replay tests record; a play
imports it again as ``tests.evloop.test_faults:link_workload``.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import re
import select
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from evloop import (
    HOST_EPOCH_NS,
    SCALE_MS,
    SCALE_US,
    ChoiceKind,
    Chooser,
    ClockType,
    FifoChooser,
    RandomChooser,
    Simulation,
)
from evloop.loop.fds import PIPE_BUF, PIPE_CAPACITY
from evloop.machine.faults import FAULT_KINDS
from replay import EventKind, TraceReader, play, record
from replay.trace.choices import decode_choices
from tests.helpers import assert_same_run

WORKLOAD = "tests.evloop.test_faults:link_workload"



# -- fakes --------------------------------------------------------------------------------


class PickFault:
    """Answers a FAULT decision with the first option starting with ``pick`` (at most
    ``times`` times), every other decision with 0; logs every decision it is asked."""

    def __init__(self, pick: str, times: int | None = None) -> None:
        self.pick = pick
        self.times = times
        self.asked: list[tuple[ChoiceKind, list[str]]] = []

    def choose(self, kind: ChoiceKind, options: Sequence[str]) -> int:
        self.asked.append((kind, list(options)))
        if kind is not ChoiceKind.FAULT or self.times == 0:
            return 0
        for i, option in enumerate(options):
            if i and option.startswith(self.pick):
                if self.times is not None:
                    self.times -= 1
                return i
        return 0

    def faults_asked(self) -> list[list[str]]:
        return [options for kind, options in self.asked if kind is ChoiceKind.FAULT]


class Scripted(PickFault):
    """Answers the FAULT decisions with the options named in turn ("none": 0), then 0."""

    def __init__(self, *answers: str) -> None:
        super().__init__("")
        self.answers = list(answers)

    def choose(self, kind: ChoiceKind, options: Sequence[str]) -> int:
        self.asked.append((kind, list(options)))
        if kind is not ChoiceKind.FAULT or not self.answers:
            return 0
        return list(options).index(self.answers.pop(0))


class Logged:
    """Wraps a chooser; logs (kind, step, number of options, answer) of every decision."""

    def __init__(self, inner: Chooser) -> None:
        self.inner = inner
        self.sim: Simulation | None = None
        self.log: list[tuple[ChoiceKind, int, int, int]] = []

    def choose(self, kind: ChoiceKind, options: Sequence[str]) -> int:
        assert self.sim is not None
        answer = self.inner.choose(kind, options)
        self.log.append((kind, self.sim.steps, len(options), answer))
        return answer


def collect(sim: Simulation, fd: int, out: list[tuple[int, bytes]]) -> None:
    """A main-loop read handler on ``fd`` appending (time, data); EOF is (time, b"")."""
    fds = sim.fds

    def on_read() -> None:
        while True:
            try:
                data = fds.read(fd, 1 << 16)
            except BlockingIOError:
                return
            except InterruptedError:
                continue
            out.append((sim.now_ns, data))
            if not data:
                sim.main_loop.set_fd_handler(fd, None, None)
                return

    sim.main_loop.set_fd_handler(fd, on_read, None)


def fault_steps(sim: Simulation) -> list[tuple[int, str]]:
    assert sim.log is not None
    return [(e.time_ns, e.name) for e in sim.log if e.kind == "fault"]


# -- the spec ----------------------------------------------------------------------------


def test_no_fault_is_on_by_default() -> None:
    with Simulation() as sim:
        assert sim.faults == frozenset()


def test_the_accepted_specs_are_exposed() -> None:
    with Simulation(faults=["loss:fd=5", "eintr", "loss:fd=6", "host-jump"]) as sim:
        assert sim.faults == {"loss:fd=5", "loss:fd=6", "eintr", "host-jump"}


def test_an_unknown_fault_names_the_known_ones() -> None:
    message = (
        "unknown fault 'drop': the known faults are delay, reorder, loss, duplicate, "
        "partition, short-read, short-write, eagain, eintr, host-jump, host-skew, preempt, "
        "reset (data faults may be narrowed to one fd as 'kind:fd=N')"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        Simulation(faults=["loss", "drop"])


HOW_TO_FILTER = "a filter is written 'kind:fd=N', N a non-negative fd number"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "host-jump:fd=3",
            "fault 'host-jump:fd=3': only the data faults (delay, reorder, loss, duplicate, "
            "partition, short-read, short-write, eagain, eintr, reset) take an fd filter",
        ),
        ("loss:fd=x", f"fault 'loss:fd=x': {HOW_TO_FILTER}"),
        ("loss:5", f"fault 'loss:5': {HOW_TO_FILTER}"),
    ],
)
def test_a_bad_filter_says_how_to_write_one(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        Simulation(faults=[spec])


def test_faults_are_a_list_not_a_string() -> None:
    message = "faults must be a list of fault specs, not the string 'loss'"
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        Simulation(faults="loss")


# -- each data fault happens --------------------------------------------------------------


def test_delay_holds_a_write_and_the_writes_behind_it() -> None:
    chooser = PickFault("delay 1ms", times=1)
    got: list[tuple[int, bytes]] = []
    with Simulation(chooser=chooser, faults=["delay"], log=True) as sim:
        r, w = sim.fds.pipe()
        assert sim.fds.write(w, b"hello") == 5
        assert sim.fds.write(w, b"world") == 5  # not delayed itself, but stays behind
        with pytest.raises(BlockingIOError):
            sim.fds.read(r, 100)
        collect(sim, r, got)
        sim.run()
        assert got == [(SCALE_MS, b"helloworld")]
        assert fault_steps(sim) == [
            (0, f"fd {w}: delay 1ms"),
            (SCALE_MS, f"fd {r}: 5 held bytes arrive"),
            (SCALE_MS, f"fd {r}: 5 held bytes arrive"),
        ]
    assert chooser.faults_asked() == [["none", "delay 1ms", "delay 10ms"]] * 2


def test_the_writers_close_arrives_behind_held_bytes() -> None:
    got: list[tuple[int, bytes]] = []
    with Simulation(chooser=PickFault("delay 10ms"), faults=["delay"]) as sim:
        a, b = sim.fds.socketpair()
        sim.fds.write(a, b"last words")
        sim.fds.close(a)
        collect(sim, b, got)
        sim.run()
    assert got == [(10 * SCALE_MS, b"last words"), (10 * SCALE_MS, b"")]


def test_reorder_lets_later_writes_overtake() -> None:
    got: list[tuple[int, bytes]] = []
    with Simulation(chooser=PickFault("reorder", times=1), faults=["reorder"], log=True) as sim:
        a, b = sim.fds.socketpair()
        assert sim.fds.write(a, b"first") == 5
        assert sim.fds.write(a, b"second") == 6
        collect(sim, b, got)
        sim.run()
        assert got == [(0, b"second"), (SCALE_MS, b"first")]
        assert fault_steps(sim) == [
            (0, f"fd {a}: reorder 1ms"),
            (SCALE_MS, f"fd {b}: 5 held bytes arrive"),
        ]


def test_loss_reports_success_and_drops_the_bytes() -> None:
    got: list[tuple[int, bytes]] = []
    with Simulation(chooser=PickFault("loss", times=1), faults=["loss"], log=True) as sim:
        a, b = sim.fds.socketpair()
        assert sim.fds.write(a, b"lost") == 4
        assert sim.fds.write(a, b"kept") == 4
        collect(sim, b, got)
        sim.run()
        assert got == [(0, b"kept")]
        assert fault_steps(sim) == [(0, f"fd {a}: loss")]


def test_duplicate_delivers_the_bytes_twice() -> None:
    got: list[tuple[int, bytes]] = []
    with Simulation(chooser=PickFault("duplicate"), faults=["duplicate"], log=True) as sim:
        r, w = sim.fds.pipe()
        assert sim.fds.write(w, b"dup") == 3
        collect(sim, r, got)
        sim.run()
        assert got == [(0, b"dupdup")]
        assert fault_steps(sim) == [(0, f"fd {w}: duplicate")]


def test_held_bytes_that_do_not_fit_wait_for_room() -> None:
    got: list[tuple[int, bytes]] = []
    with Simulation(chooser=Scripted("none", "duplicate"), faults=["duplicate"]) as sim:
        r, w = sim.fds.pipe()
        sim.fds.write(w, b"." * (PIPE_CAPACITY - 10))
        assert sim.fds.write(w, b"01234567") == 8  # duplicated: 8 + 2 fit, 6 wait
        assert sim.fds.mask(w) & select.POLLOUT == 0

        def drain() -> None:
            sim.sleep(SCALE_MS)
            out = b""
            while len(out) < PIPE_CAPACITY + 6:
                sim.fds.poll([(r, select.POLLIN)], -1)
                out += sim.fds.read(r, 1 << 20)
            got.append((sim.now_ns, out[-18:]))

        sim.thread("drain", drain)
        sim.run()
    assert got == [(SCALE_MS, b"..0123456701234567")]


def test_partition_holds_both_directions_until_it_heals() -> None:
    chooser = PickFault("partition", times=1)
    at_a: list[tuple[int, bytes]] = []
    at_b: list[tuple[int, bytes]] = []
    with Simulation(chooser=chooser, faults=["partition"], log=True) as sim:
        a, b = sim.fds.socketpair()
        assert sim.fds.write(a, b"ping") == 4  # starts the partition
        assert sim.fds.write(b, b"pong") == 4  # held too: nothing to ask during it
        assert sim.fds.write(a, b"!") == 1
        collect(sim, a, at_a)
        collect(sim, b, at_b)

        def after_heal() -> None:
            sim.fds.write(a, b"later")

        sim.main_loop.timer_new_ns(ClockType.REALTIME, after_heal).mod_ns(20 * SCALE_MS)
        sim.run()
        assert at_b == [(10 * SCALE_MS, b"ping!"), (20 * SCALE_MS, b"later")]
        assert at_a == [(10 * SCALE_MS, b"pong")]
        assert fault_steps(sim)[0] == (0, f"fd {a}: partition 10ms")
    # The first write asked; the writes during the partition did not; the one after did.
    assert chooser.faults_asked() == [["none", "partition 10ms"]] * 2


def test_short_read_returns_fewer_bytes_than_there_are() -> None:
    chooser = PickFault("short-read 1", times=1)
    with Simulation(chooser=chooser, faults=["short-read"], log=True) as sim:
        r, w = sim.fds.pipe()
        sim.fds.write(w, b"0123456789")
        assert sim.fds.read(r, 100) == b"0"
        assert sim.fds.read(r, 100) == b"123456789"
        with pytest.raises(BlockingIOError):  # nothing left, nothing asked
            sim.fds.read(r, 1)
        assert fault_steps(sim) == [(0, f"fd {r}: short-read 1")]
    assert chooser.faults_asked() == [
        ["none", "short-read 1", "short-read 5"],
        ["none", "short-read 1", "short-read 4"],
    ]


def test_short_read_of_half() -> None:
    with Simulation(chooser=PickFault("short-read 5", times=1), faults=["short-read"]) as sim:
        a, b = sim.fds.socketpair()
        sim.fds.write(a, b"0123456789")
        assert sim.fds.read(b, 100) == b"01234"
        assert sim.fds.read(b, 100) == b"56789"


def test_short_write_takes_fewer_bytes_than_asked() -> None:
    got: list[tuple[int, bytes]] = []
    chooser = PickFault("short-write 5", times=1)
    with Simulation(chooser=chooser, faults=["short-write"], log=True) as sim:
        a, b = sim.fds.socketpair()
        assert sim.fds.write(a, b"0123456789") == 5
        collect(sim, b, got)
        sim.run()
        assert got == [(0, b"01234")]
        assert fault_steps(sim) == [(0, f"fd {a}: short-write 5")]
    assert chooser.faults_asked() == [["none", "short-write 1", "short-write 5"]]


def test_small_pipe_writes_are_atomic_and_never_short() -> None:
    chooser = PickFault("short-write")
    with Simulation(chooser=chooser, faults=["short-write"]) as sim:
        r, w = sim.fds.pipe()
        assert sim.fds.write(w, b"x" * PIPE_BUF) == PIPE_BUF
        assert chooser.faults_asked() == []
        assert sim.fds.write(w, b"y" * (PIPE_BUF + 2)) == 1
        half = (PIPE_BUF + 2) // 2
        assert chooser.faults_asked() == [["none", "short-write 1", f"short-write {half}"]]
        assert sim.fds.read(r, 2 * PIPE_BUF) == b"x" * PIPE_BUF + b"y"


@pytest.mark.parametrize(
    ("kind", "exc", "code"),
    [("eagain", BlockingIOError, errno.EAGAIN), ("eintr", InterruptedError, errno.EINTR)],
)
def test_eagain_and_eintr_fail_a_read_or_write_that_could_go_on(
    kind: str, exc: type[OSError], code: int
) -> None:
    chooser = Scripted(kind, "none", kind, "none")
    with Simulation(chooser=chooser, faults=[kind], log=True) as sim:
        a, b = sim.fds.socketpair()
        with pytest.raises(exc) as raised:
            sim.fds.write(a, b"data")
        assert raised.value.errno == code
        assert str(raised.value.strerror).endswith(f"(write on fd {a})")
        assert sim.fds.write(a, b"data") == 4  # the write after the failed one: nothing lost
        with pytest.raises(exc, match=rf"\(read on fd {b}\)$"):
            sim.fds.read(b, 100)
        assert sim.fds.read(b, 100) == b"data"  # ...and the read took nothing
        assert fault_steps(sim) == [(0, f"fd {a}: {kind}"), (0, f"fd {b}: {kind}")]


def test_eagain_message_is_the_kernels() -> None:
    with Simulation(chooser=PickFault("eagain"), faults=["eagain"]) as sim:
        _, w = sim.fds.pipe()
        message = f"[Errno 11] Resource temporarily unavailable (write on fd {w})"
        with pytest.raises(BlockingIOError, match=f"^{re.escape(message)}$"):
            sim.fds.write(w, b"x")


def test_a_filter_narrows_a_fault_to_one_fd() -> None:
    chooser = PickFault("loss")
    got: list[tuple[int, bytes]] = []
    with Simulation(chooser=chooser, faults=[f"loss:fd={6}"]) as sim:
        a, b = sim.fds.socketpair()
        c, d = sim.fds.socketpair()
        target = 6  # an fd of one of the pairs (3 and 4 are the loops' notifiers)
        assert target in (a, b, c, d)
        other = next(fd for fd in (a, b, c, d) if fd != target)
        sim.fds.write(other, b"safe")
        assert chooser.faults_asked() == []
        sim.fds.write(target, b"gone")
        assert chooser.faults_asked() == [["none", "loss"]]
        peer = {a: b, b: a, c: d, d: c}
        collect(sim, peer[target], got)
        sim.run()
        assert got == []


# -- each clock fault happens -------------------------------------------------------------


def test_host_jump_steps_the_host_clock_from_then_on() -> None:
    chooser = PickFault("jump +1s", times=1)
    with Simulation(chooser=chooser, faults=["host-jump"], log=True) as sim:
        assert sim.clock.get_ns(ClockType.HOST) == HOST_EPOCH_NS + 1_000_000_000
        sim.clock.advance(5 * SCALE_MS)
        assert sim.clock.get_ns(ClockType.HOST) == HOST_EPOCH_NS + 1_000_000_000 + 5 * SCALE_MS
        assert sim.clock.get_ns(ClockType.VIRTUAL_RT) == 5 * SCALE_MS
        assert fault_steps(sim) == [(0, "jump +1s")]
    assert chooser.faults_asked() == [["none", "jump +1s", "jump -1s"]] * 2


def test_host_jump_backwards() -> None:
    with Simulation(chooser=PickFault("jump -1s", times=1), faults=["host-jump"]) as sim:
        assert sim.clock.get_ns(ClockType.HOST) == HOST_EPOCH_NS - 1_000_000_000


def test_host_skew_makes_host_run_at_another_rate() -> None:
    chooser = PickFault("skew +1000ppm", times=1)
    with Simulation(chooser=chooser, faults=["host-skew"], log=True) as sim:
        assert sim.clock.get_ns(ClockType.HOST) == HOST_EPOCH_NS
        sim.clock.advance(1_000_000_000)
        assert sim.clock.get_ns(ClockType.HOST) == HOST_EPOCH_NS + 1_000_000_000 + SCALE_MS
        sim.clock.advance(1_000_000_000)
        assert sim.clock.get_ns(ClockType.HOST) == HOST_EPOCH_NS + 2_000_000_000 + 2 * SCALE_MS
        assert fault_steps(sim) == [(0, "skew +1000ppm")]
    # Once skewed, the rate it already runs at is not offered again.
    assert chooser.faults_asked() == [
        ["none", "skew +1000ppm", "skew -1000ppm"],
        ["none", "skew -1000ppm"],
        ["none", "skew -1000ppm"],
    ]


def test_host_timers_and_other_clocks_are_not_faulted() -> None:
    chooser = PickFault("jump")
    with Simulation(chooser=chooser, faults=["host-jump", "host-skew"]) as sim:
        fired: list[int] = []
        sim.main_loop.timer_new_ns(ClockType.HOST, lambda: fired.append(sim.now_ns)).mod_ns(
            HOST_EPOCH_NS + SCALE_MS
        )
        sim.clock.get_ns(ClockType.REALTIME)
        sim.clock.get_ns(ClockType.VIRTUAL_RT)
        assert chooser.faults_asked() == []
        sim.run()
        assert fired == [SCALE_MS]


# -- preemption ---------------------------------------------------------------------------


def _preemption_run(chooser: Chooser) -> tuple[list[str], list[tuple[str, str]]]:
    order: list[str] = []
    with Simulation(chooser=chooser, faults=["preempt"], log=True) as sim:
        ctx = sim.main_loop.aio_context

        def bh(i: int) -> None:
            order.append(f"bh{i}")
            if i < 3:
                ctx.bh_schedule_oneshot(lambda: bh(i + 1), name=f"bh{i + 1}")

        def worker() -> None:
            for i in range(3):
                order.append(f"w{i}")
                sim.yield_now()

        ctx.bh_schedule_oneshot(lambda: bh(0), name="bh0")
        sim.thread("worker", worker)
        sim.run()
        assert sim.log is not None
        return order, [(e.kind, e.name) for e in sim.log]


def test_preempt_yields_the_turn_before_a_callback() -> None:
    fifo_order, fifo_log = _preemption_run(FifoChooser())
    order, log = _preemption_run(PickFault("preempt"))
    assert fifo_order == ["w0", "bh0", "w1", "bh1", "w2", "bh2", "bh3"]
    assert ("fault", "preempt") not in fifo_log
    # Before bh0 and bh1 the worker could run, and took the turn: w1 and w2 went first.
    assert order == ["w0", "w1", "bh0", "w2", "bh1", "bh2", "bh3"]
    assert log[:6] == [
        ("turn", "worker"),
        ("turn", "main"),
        ("fault", "preempt"),
        ("turn", "worker"),
        ("turn", "main"),
        ("bh", "bh0"),
    ]
    assert log.count(("fault", "preempt")) == 2


def test_preempt_is_offered_only_when_another_thread_can_run() -> None:
    chooser = PickFault("preempt")
    with Simulation(chooser=chooser, faults=["preempt"]) as sim:
        ctx = sim.main_loop.aio_context
        for i in range(3):
            ctx.bh_schedule_oneshot(lambda: None, name=f"bh{i}")
        sim.run()
    assert chooser.faults_asked() == []


# -- what is never faulted ----------------------------------------------------------------

ALL_FAULTS = list(FAULT_KINDS)


def test_notifier_eventfds_are_never_faulted() -> None:
    chooser = PickFault("")  # the first fault of any decision
    with Simulation(chooser=chooser, faults=ALL_FAULTS[:9]) as sim:
        ctx = sim.main_loop.aio_context
        ran: list[int] = []
        timer = sim.main_loop.timer_new_ns(ClockType.REALTIME, lambda: ran.append(sim.now_ns))
        timer.mod_ns(SCALE_MS)
        ctx.bh_schedule_oneshot(lambda: ran.append(-1))
        io = sim.iothread("io")
        io.ctx.bh_schedule_oneshot(lambda: ran.append(-2))
        io.ctx.bh_schedule_oneshot(io.stop)
        efd = sim.fds.eventfd()
        sim.fds.write(efd, (1).to_bytes(8, "little"))
        assert sim.fds.read(efd, 8) == (1).to_bytes(8, "little")
        sim.run()
        assert SCALE_MS in ran
    assert chooser.faults_asked() == []


def test_scripted_peers_are_outside_the_system_and_never_faulted() -> None:
    chooser = PickFault("short-read 1")
    got: list[tuple[int, bytes]] = []
    with Simulation(chooser=chooser, faults=["short-read", "short-write", "loss"]) as sim:
        a, b = sim.fds.socketpair()
        peer = sim.peer(b, "client")
        peer.send(b"hello", at_ns=SCALE_MS)
        collect(sim, a, got)
        sim.run()
        # Only the system's reads were asked (every one short): the peer's write was not.
        assert b"".join(data for _, data in got) == b"hello"
        assert all(len(data) == 1 for _, data in got[:-1])
        assert all(options[1].startswith("short-read") for options in chooser.faults_asked())
        sim.fds.write(a, b"reply")
        assert peer.received() == b"reply"  # the peer's read: not asked either


# -- FIFO: accepted faults change nothing; none accepted: nothing asked ------------------

OBSERVED: list[object] = []


def link_workload(sim: Simulation, *, messages: int = 8) -> None:
    """A client thread writes to a socket pair, a pipe and a TCP connection, the main
    loop reads all three; a timer reads the HOST clock; a spinner thread yields. Robust
    to every fault."""
    OBSERVED.clear()
    fds = sim.fds
    a, b = fds.socketpair()
    r, w = fds.pipe()
    listener = sim.net.socket()
    listener.bind(("127.0.0.1", 80))
    listener.listen()
    tcp_client = sim.net.socket()
    tcp_client.setblocking(False)
    tcp_client.connect_ex(("127.0.0.1", 80))
    tcp_server, _ = listener.accept()
    listener.close()
    t = tcp_client.fileno()
    reset: set[int] = set()

    def write_all(fd: int, data: bytes) -> None:
        while data and fd not in reset:
            try:
                n = fds.write(fd, data)
            except (BlockingIOError, InterruptedError) as exc:
                OBSERVED.append(("write-failed", fd, type(exc).__name__, sim.now_ns))
                sim.sleep(10 * SCALE_US)
                continue
            except (ConnectionResetError, BrokenPipeError) as exc:
                OBSERVED.append(("write-failed", fd, type(exc).__name__, sim.now_ns))
                reset.add(fd)  # the connection is gone: nothing more to send on it
                return
            data = data[n:]

    def client() -> None:
        for i in range(messages):
            write_all(a, f"s{i:02d};".encode())
            write_all(w, f"p{i:02d};".encode() * (1 + i % 3))
            write_all(t, f"t{i:02d};".encode())
            sim.sleep((1 + i % 4) * 100 * SCALE_US)
        write_all(a, b"x" * 300)
        write_all(w, b"y" * (PIPE_BUF + 100))
        write_all(t, b"z" * 200)
        fds.close(a)
        fds.close(w)
        tcp_client.close()

    def reader(fd: int, tag: str) -> None:
        def on_read() -> None:
            while True:
                try:
                    data = fds.read(fd, 64)
                except BlockingIOError:
                    return
                except InterruptedError:
                    OBSERVED.append((tag, "eintr", sim.now_ns))
                    continue
                except ConnectionResetError:
                    OBSERVED.append((tag, "reset", sim.now_ns))
                    continue  # then EOF
                if not data:
                    OBSERVED.append((tag, "eof", sim.now_ns))
                    sim.main_loop.set_fd_handler(fd, None, None)
                    fds.close(fd)
                    return
                OBSERVED.append((tag, data, sim.now_ns))

        sim.main_loop.set_fd_handler(fd, on_read, None)

    reader(b, "sock")
    reader(r, "pipe")
    reader(tcp_server.fileno(), "tcp")
    ctx = sim.main_loop.aio_context
    ticks = [0]

    def tick() -> None:
        OBSERVED.append(("host", sim.clock.get_ns(ClockType.HOST) - HOST_EPOCH_NS, sim.now_ns))
        ctx.bh_schedule_oneshot(lambda: OBSERVED.append(("bh", sim.now_ns)), name="after-tick")
        ticks[0] += 1
        if ticks[0] < 6:
            timer.mod_ns(sim.now_ns + 300 * SCALE_US)

    timer = sim.main_loop.timer_new_ns(ClockType.REALTIME, tick, name="tick")
    timer.mod_ns(50 * SCALE_US)

    def spinner() -> None:
        for i in range(12):
            OBSERVED.append(("spin", i, sim.now_ns))
            sim.yield_now()

    sim.thread("client", client)
    sim.thread("spinner", spinner)


def _plain_run(chooser: Chooser, faults: Sequence[str]) -> tuple[list[object], int, int, Any]:
    with Simulation(chooser=chooser, faults=faults, log=True) as sim:
        if isinstance(chooser, Logged):
            chooser.sim = sim
        link_workload(sim)
        result = sim.run()
        assert result.reason.value == "idle"
        return list(OBSERVED), sim.steps, sim.digest, fault_steps(sim)


@pytest.mark.parametrize("kind", [*FAULT_KINDS, "all"])
def test_fifo_never_injects_a_fault(kind: str) -> None:
    faults = ALL_FAULTS if kind == "all" else [kind]
    baseline = _plain_run(FifoChooser(), [])
    observed, steps, digest, injected = _plain_run(FifoChooser(), faults)
    assert injected == []
    assert (observed, steps, digest) == baseline[:3]
    # The workload did move bytes to the end of both streams.
    ends = [entry[:2] for entry in observed if isinstance(entry, tuple) and entry[1] == "eof"]
    assert sorted(ends) == [("pipe", "eof"), ("sock", "eof"), ("tcp", "eof")]


@pytest.mark.parametrize("kind", [*FAULT_KINDS, "all"])
def test_fifo_is_asked_fault_decisions_and_answers_none(kind: str) -> None:
    faults = ALL_FAULTS if kind == "all" else [kind]
    chooser = Logged(FifoChooser())
    _plain_run(chooser, faults)
    decisions = [d for d in chooser.log if d[0] is ChoiceKind.FAULT]
    assert decisions
    assert all(answer == 0 for *_, answer in decisions)


def test_no_fault_decision_is_asked_when_no_fault_is_accepted() -> None:
    chooser = PickFault("")  # would inject anything it were offered
    with Simulation(chooser=chooser) as sim:
        link_workload(sim)
        sim.run()
    assert chooser.faults_asked() == []
    assert [kind for kind, _ in chooser.asked if kind is ChoiceKind.THREAD]  # threads were chosen


# -- record and play ------------------------------------------------------------------------


def _trace_decisions(path: Path) -> list[tuple[int, int, int]]:
    """Every decision of a trace as (step, number of options, answer)."""
    out: list[tuple[int, int, int]] = []
    with TraceReader(path) as reader:
        for rec in reader:
            if rec[0] == EventKind.CHOICES:
                step = rec[1]
                for delta, n, c in decode_choices(rec[2]):
                    step += delta
                    out.append((step, n, c))
            elif rec[0] == EventKind.CHOICE:
                out.append((rec[1], rec[2], rec[3]))
    return out


@pytest.mark.parametrize("kind", [*FAULT_KINDS, "all"])
@pytest.mark.parametrize("seed", [1, 7])
def test_faults_are_recorded_and_replay_bit_exactly(tmp_path: Path, kind: str, seed: int) -> None:
    faults = ALL_FAULTS if kind == "all" else [kind]
    chooser = f"random:{seed}"
    path = tmp_path / "faults.evr"
    recorded = record(WORKLOAD, path, chooser=chooser, faults=faults)
    module = importlib.import_module("tests.evloop.test_faults")
    seen_recording = list(module.OBSERVED)
    played = play(path)
    assert recorded.failure is None and recorded.reason == "idle"
    assert_same_run(recorded, played)
    assert seen_recording == module.OBSERVED
    with TraceReader(path) as reader:
        assert reader.header.faults == tuple(faults)

    # The trace holds exactly the decisions of a live run, FAULT ones among them.
    logged = Logged(RandomChooser(seed))
    _, steps, digest, injected = _plain_run(logged, faults)
    assert (steps, digest) == (recorded.steps, recorded.digest)
    assert _trace_decisions(path) == [(step, n, c) for _, step, n, c in logged.log]
    fault_decisions = [d for d in logged.log if d[0] is ChoiceKind.FAULT]
    assert fault_decisions
    assert any(answer != 0 for *_, answer in fault_decisions)
    assert injected  # ...and the faults picked show in the log


def test_faulted_runs_differ_from_the_fifo_run(tmp_path: Path) -> None:
    fifo = record(WORKLOAD, tmp_path / "fifo.evr", faults=ALL_FAULTS)
    faulted = record(WORKLOAD, tmp_path / "random.evr", chooser="random:3", faults=ALL_FAULTS)
    assert fifo.digest != faulted.digest
    assert play(tmp_path / "fifo.evr").bit_exact is True


def _single_threaded(fast_path: bool) -> list[tuple[object, ...]]:
    with Simulation(
        chooser=RandomChooser(5), faults=ALL_FAULTS[:9], log=True, fast_path=fast_path
    ) as sim:
        a, b = sim.fds.socketpair()
        got: list[tuple[int, bytes]] = []
        collect(sim, b, got)
        count = [0]

        def tick() -> None:
            count[0] += 1
            with contextlib.suppress(BlockingIOError, InterruptedError):  # an injected failure
                sim.fds.write(a, b"tick%d;" % count[0])
            if count[0] < 30:
                timer.mod_ns(sim.now_ns + 200 * SCALE_US)

        timer = sim.main_loop.timer_new_ns(ClockType.REALTIME, tick, name="tick")
        timer.mod_ns(0)
        sim.run()
        assert sim.log is not None
        return [e.as_tuple() for e in sim.log]


def test_the_fast_path_sees_the_same_faults_as_the_full_loop() -> None:
    log = _single_threaded(True)
    assert log == _single_threaded(False)
    injected = {str(entry[5]).split(": ")[-1] for entry in log if entry[4] == "fault"}
    assert {"partition 10ms", "loss", "duplicate", "6 held bytes arrive"} <= injected
