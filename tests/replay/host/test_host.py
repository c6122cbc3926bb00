"""Tests for replay.host: record against real peers, play with none.

What these pin down, from the issue:

* a program recorded in host mode against real peers (a subprocess writing
  into a pipe with small real sleeps, a TCP client on loopback and a socket
  pair in threads) plays back with no peer at all, bit-exactly: the same
  accumulated input, the same steps, time and final digest, and the same
  bytes written back to the peer; also in another process whose
  ``PYTHONHASHSEED`` differs;
* a changed program is a :class:`ReplayDivergence`;
* the trace marks host mode, starts the HOST clock at the real wall time,
  logs each wait as a REALTIME CLOCK record and each burst of input as INPUT;
* ``until_ns``, ``max_steps``, a failing program, a deadlock and a truncated
  trace end a host run the same way when played;
* what host mode cannot wait on, or does not support, is refused with a
  message that says what to do.

Real sleeps are a few milliseconds; the whole module runs in about a second.
"""

from __future__ import annotations

import contextlib
import faulthandler
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import tests.scenarios.host as scenarios
from evloop import HOST_EPOCH_NS, SCALE_MS, ClockType, DispatchEvent, SimulationError
from replay import EventKind, ReplayDivergence, ReplayError, TraceReader, play, record
from replay.cli import main as cli_main
from replay.host.channels import Channel, ChannelKind, is_host_trace
from replay.host.clock import HostClock
from replay.host.mode import play_host, record_host
from replay.host.monitors import TRACE_ENDED
from replay.host.simulation import HostSimulation
from replay.tools.dump import dump
from replay.tools.stats import stats
from tests.helpers import json_from_child, records_of

ECHO = "tests.scenarios.host:echo"

#: What the subprocess peer prints, one line every few milliseconds.
PROC_LINES = [b"line 0\n", b"line 1\n", b"line 2\n"]
#: What the socket peers send.
SOCK_LINES = [b"hello 0\n", b"hello 1\n", b"hello 2\n"]


# -- real peers ---------------------------------------------------------------------------


class Peers:
    """Real peers for one test; everything they started is stopped at the end."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.threads: list[threading.Thread] = []
        self.sockets: list[socket.socket] = []

    def subprocess(self, lines: list[bytes], gap_s: float = 0.004) -> int:
        """A child process printing ``lines`` with real sleeps; returns the pipe's read end."""
        code = (
            "import sys, time\n"
            f"for line in {lines!r}:\n"
            "    sys.stdout.buffer.write(line); sys.stdout.flush(); time.sleep(%r)\n" % gap_s
        )
        r, w = os.pipe()
        self.procs.append(subprocess.Popen([sys.executable, "-c", code], stdout=w))
        os.close(w)
        return r

    def _talker(self, sock: socket.socket, lines: list[bytes], gap_s: float) -> bytearray:
        received = bytearray()

        def talk() -> None:
            with contextlib.suppress(OSError):  # the test asserts on what arrived
                for line in lines:
                    sock.sendall(line)
                    time.sleep(gap_s)
                sock.shutdown(socket.SHUT_WR)
                while chunk := sock.recv(65536):
                    received.extend(chunk)

        self.sockets.append(sock)
        thread = threading.Thread(target=talk, name="host-test-peer")
        self.threads.append(thread)
        thread.start()
        return received

    def tcp(self, lines: list[bytes], gap_s: float = 0.004) -> tuple[int, bytearray]:
        """A loopback TCP client sending ``lines`` then reading to EOF, in a thread."""
        with socket.create_server(("127.0.0.1", 0)) as server:
            client = socket.create_connection(server.getsockname())
            conn, _ = server.accept()
        return conn.detach(), self._talker(client, lines, gap_s)

    def socketpair(self, lines: list[bytes], gap_s: float = 0.004) -> tuple[int, bytearray]:
        ours, theirs = socket.socketpair()
        return ours.detach(), self._talker(theirs, lines, gap_s)

    def join(self) -> None:
        for thread in self.threads:
            thread.join(timeout=5.0)
            assert not thread.is_alive()
        for proc in self.procs:
            assert proc.wait(timeout=5.0) == 0

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self.threads:
            thread.join(timeout=5.0)


@pytest.fixture
def peers() -> Iterator[Peers]:
    p = Peers()
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture(autouse=True)
def fresh_scenarios() -> Iterator[None]:
    scenarios.EXTRA_BH = False
    # A host run that hangs in a real wait is a bug: crash with every stack, never hang CI.
    faulthandler.dump_traceback_later(60, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
        scenarios.EXTRA_BH = False
        scenarios.LAST.clear()


def inputs_of(observed: list[tuple[object, ...]], channel: str) -> bytes:
    return b"".join(o[2] for o in observed if o[0] == "read" and o[1] == channel)  # type: ignore[misc]


def record_echo(peers: Peers, path: Path) -> tuple[Any, bytearray, bytearray]:
    """The echo program against a subprocess, a TCP client and a socket pair peer."""
    tcp_fd, tcp_received = peers.tcp(SOCK_LINES)
    pair_fd, pair_received = peers.socketpair([b"pair\n"])
    inputs = {"proc": peers.subprocess(PROC_LINES), "tcp": tcp_fd, "pair": pair_fd}
    result = record_host(ECHO, path, inputs=inputs)
    peers.join()
    return result, tcp_received, pair_received


# -- record, then play --------------------------------------------------------------------


def test_a_host_recording_of_real_peers_plays_bit_exactly_with_no_peer(
    peers: Peers, tmp_path: Path
) -> None:
    path = tmp_path / "echo.evr"
    t0 = time.time_ns()
    rec, tcp_received, pair_received = record_echo(peers, path)
    t1 = time.time_ns()
    assert (rec.reason, rec.failure) == ("idle", None)
    recorded = list(scenarios.OBSERVED)
    sim = scenarios.LAST["sim"]
    assert inputs_of(recorded, "proc") == b"".join(PROC_LINES)
    assert inputs_of(recorded, "tcp") == b"".join(SOCK_LINES)
    assert inputs_of(recorded, "pair") == b"pair\n"
    assert bytes(tcp_received) == b"".join(SOCK_LINES).upper()
    assert bytes(pair_received) == b"PAIR\n"
    assert bytes(sim.channel("tcp").output) == bytes(tcp_received)
    # The HOST timer armed from a HOST read fired, at a real wall time.
    (host_timer,) = [o for o in recorded if o[0] == "host-timer"]
    assert t0 <= host_timer[2] <= t1  # type: ignore[operator]
    assert host_timer[1] >= 2 * SCALE_MS  # type: ignore[operator]

    scenarios.OBSERVED.clear()
    played = play_host(path)
    assert played.bit_exact is True
    assert (played.reason, played.failure, played.complete) == ("idle", None, True)
    assert recorded == scenarios.OBSERVED
    assert (played.steps, played.time_ns, played.digest) == (rec.steps, rec.time_ns, rec.digest)
    assert played.events == rec.records
    replayed = scenarios.LAST["sim"]
    assert replayed is not sim
    assert bytes(replayed.channel("tcp").output) == bytes(tcp_received)
    assert bytes(replayed.channel("pair").output) == bytes(pair_received)


def test_playing_twice_gives_the_same_run(peers: Peers, tmp_path: Path) -> None:
    path = tmp_path / "echo.evr"
    record_echo(peers, path)
    first = play_host(path)
    observed = list(scenarios.OBSERVED)
    steps: list[DispatchEvent] = []
    second = play_host(path, on_step=steps.append)
    assert first == second
    assert observed == scenarios.OBSERVED
    assert [e.step for e in steps] == list(range(1, first.steps + 1))
    assert {e.kind for e in steps} == {"read", "timer"}


_CHILD = """
import json, sys
import tests.scenarios.host as scenarios
from replay import declare_scenario
from replay.host import play_host
declare_scenario("tests.scenarios.host:echo")  # the scenario this test's trace names
result = play_host(sys.argv[1])
print(json.dumps({"bit_exact": result.bit_exact, "steps": result.steps,
                  "time_ns": result.time_ns, "digest": result.digest,
                  "observed": repr(scenarios.OBSERVED)}))
"""


@pytest.mark.parametrize("hash_seed", [1, 4242])
def test_a_host_trace_plays_the_same_in_another_process_and_hash_seed(
    peers: Peers, tmp_path: Path, hash_seed: int
) -> None:
    path = tmp_path / "echo.evr"
    rec, _, _ = record_echo(peers, path)
    recorded = repr(scenarios.OBSERVED)
    child = json_from_child(_CHILD, str(path), hash_seed=hash_seed, timeout=60)
    assert child == {
        "bit_exact": True, "steps": rec.steps, "time_ns": rec.time_ns, "digest": rec.digest,
        "observed": recorded,
    }


def test_a_changed_program_diverges(peers: Peers, tmp_path: Path) -> None:
    path = tmp_path / "echo.evr"
    record_echo(peers, path)
    scenarios.EXTRA_BH = True
    with pytest.raises(ReplayDivergence) as info:
        play_host(path)
    divergence = info.value
    assert divergence.event_index > 0
    assert "CLOCK" in str(divergence.expected) or "CHECKPOINT" in str(divergence.expected)


# -- what the trace holds -------------------------------------------------------------------


def test_the_trace_marks_host_mode_and_logs_waits_and_input(peers: Peers, tmp_path: Path) -> None:
    path = tmp_path / "echo.evr"
    before = time.time_ns()
    rec, _, _ = record_echo(peers, path)
    with TraceReader(path) as reader:
        header = reader.header
    assert is_host_trace(header)
    assert header.extensions["host.channels"] == (
        ("pair", "socket"), ("proc", "pipe"), ("tcp", "socket"),
    )
    records = records_of(path)
    assert records[0][:3] == (EventKind.CHECKPOINT, 0, 0)
    kind, step, clock_type, host_start = records[1]
    assert (kind, step, clock_type) == (EventKind.CLOCK, 0, ClockType.HOST)
    assert before <= HOST_EPOCH_NS + host_start <= time.time_ns()
    samples = [r for r in records if r[0] == EventKind.CLOCK and r[2] == ClockType.REALTIME]
    assert samples and all(r[3] >= 0 for r in samples)
    assert sum(r[3] for r in samples) == rec.time_ns  # time moves only at samples
    inputs = [r for r in records if r[0] == EventKind.INPUT]
    for name, lines in (("proc", PROC_LINES), ("tcp", SOCK_LINES), ("pair", [b"pair\n"])):
        mine = [r[3] for r in inputs if r[2] == name]
        assert b"".join(mine) == b"".join(lines)
        assert mine[-1] == b""  # EOF
    # Each input is logged right after the wait that brought it, at the same step.
    for i, r in enumerate(records):
        if r[0] == EventKind.INPUT:
            before_it = records[i - 1]
            assert before_it[0] in (EventKind.CLOCK, EventKind.INPUT) and before_it[1] == r[1]


def test_no_channels_is_real_time_only(tmp_path: Path) -> None:
    path = tmp_path / "ticks.evr"
    start = time.monotonic_ns()
    rec = record_host("tests.scenarios.host:ticks", path, inputs={}, params={"count": 4})
    assert time.monotonic_ns() - start >= 4 * 2 * SCALE_MS  # it really waited
    assert rec.time_ns >= 4 * 2 * SCALE_MS
    recorded = list(scenarios.OBSERVED)
    assert [o[0] for o in recorded] == ["tick"] * 4
    played = play_host(path)
    assert played.bit_exact is True
    assert recorded == scenarios.OBSERVED
    assert (played.reason, played.time_ns) == ("idle", rec.time_ns)


# -- how a run ends -----------------------------------------------------------------------


def test_until_ns_ends_a_run_whose_peer_stays_silent(tmp_path: Path) -> None:
    path = tmp_path / "until.evr"
    ours, theirs = socket.socketpair()
    with theirs:
        theirs.sendall(b"only line\n")
        rec = record_host(ECHO, path, inputs={"s": ours.detach()}, until_ns=15 * SCALE_MS)
        assert theirs.recv(100) == b"ONLY LINE\n"
        assert theirs.recv(100) == b""  # record_host closed its end
    assert rec.reason == "until" and rec.time_ns >= 15 * SCALE_MS
    recorded = list(scenarios.OBSERVED)
    played = play_host(path)
    assert (played.bit_exact, played.reason, played.time_ns) == (True, "until", rec.time_ns)
    assert recorded == scenarios.OBSERVED


def test_a_peer_that_sends_and_half_closes_at_once_still_gets_its_reply(tmp_path: Path) -> None:
    path = tmp_path / "half.evr"
    ours, theirs = socket.socketpair()
    with theirs:
        theirs.sendall(b"ping\n")
        theirs.shutdown(socket.SHUT_WR)  # data and EOF are both there at the first wait
        rec = record_host(ECHO, path, inputs={"s": ours.detach()})
        assert theirs.recv(100) == b"PING\n"
        assert theirs.recv(100) == b""
    assert (rec.reason, rec.failure) == ("idle", None)
    assert play_host(path).bit_exact is True


def test_an_eof_held_back_for_the_program_to_read_first_ends_a_run_with_no_timer(
    tmp_path: Path,
) -> None:
    path = tmp_path / "eof.evr"
    ours, theirs = socket.socketpair()
    with theirs:
        theirs.sendall(b"ab")
        theirs.shutdown(socket.SHUT_WR)
        rec = record_host(
            "tests.scenarios.host:fails_on", path, inputs={"s": ours.detach()},
            params={"word": b"never"},
        )
    assert (rec.reason, rec.failure) == ("idle", None)
    assert scenarios.OBSERVED == [("read", b"ab"), ("read", b"")]
    assert play_host(path).bit_exact is True


def test_bulk_input_and_output_pass_through_with_backpressure(
    peers: Peers, tmp_path: Path
) -> None:
    path = tmp_path / "bulk.evr"
    blob = bytes(range(97, 123)) * 12_000  # 312 kB, more than any buffer on the way
    fd, received = peers.socketpair([blob], gap_s=0)
    rec = record_host(ECHO, path, inputs={"s": fd})
    peers.join()
    assert (rec.reason, rec.failure) == ("idle", None)
    assert inputs_of(scenarios.OBSERVED, "s") == blob
    assert bytes(received) == blob.upper()
    assert play_host(path).bit_exact is True


def test_max_steps_ends_a_host_run(tmp_path: Path) -> None:
    path = tmp_path / "steps.evr"
    ours, theirs = socket.socketpair()
    with theirs:
        theirs.sendall(b"x\n")
        rec = record_host(ECHO, path, inputs={"s": ours.detach()}, max_steps=4)
    assert (rec.reason, rec.steps) == ("max_steps", 4)
    played = play_host(path)
    assert (played.bit_exact, played.reason, played.steps) == (True, "max_steps", 4)
    stopped = play_host(path, until_step=2)  # at the end of the iteration that reaches it
    assert (stopped.bit_exact, stopped.reason) == (None, "max_steps")
    assert 2 <= stopped.steps <= 4


def test_a_program_failing_on_real_input_replays_to_its_failure(
    peers: Peers, tmp_path: Path
) -> None:
    path = tmp_path / "boom.evr"
    fd, _ = peers.socketpair([b"tick ", b"tick ", b"boom\n"])
    rec = record_host("tests.scenarios.host:fails_on", path, inputs={"s": fd})
    peers.join()
    assert rec.failure is not None and rec.failure.startswith("exception: ValueError: got b'")
    assert isinstance(rec.exception, ValueError)
    played = play_host(path)
    assert (played.bit_exact, played.failure) == (True, rec.failure)


def test_a_deadlock_after_the_input_ends_is_recorded_and_replayed(tmp_path: Path) -> None:
    path = tmp_path / "stuck.evr"
    r, w = os.pipe()
    os.write(w, b"x")
    os.close(w)
    rec = record_host("tests.scenarios.host:stuck", path, inputs={"p": r})
    assert rec.failure is not None
    assert rec.failure.startswith("exception: DeadlockError: deadlock at t=")
    assert "poll of AioContext 'lonely'" in rec.failure
    played = play_host(path)
    assert (played.bit_exact, played.failure) == (True, rec.failure)


def test_a_truncated_host_trace_plays_to_its_end_and_stops(peers: Peers, tmp_path: Path) -> None:
    path = tmp_path / "echo.evr"
    record_echo(peers, path)
    data = path.read_bytes()
    cut = tmp_path / "cut.evr"
    cut.write_bytes(data[: len(data) - 40])
    played = play_host(cut)
    assert played.complete is False and played.truncated_at is not None
    assert played.bit_exact is None
    # It stops where the whole chunks end: at a wait that finds no more rounds
    # (shut down as TRACE_ENDED), or at the trace's step bound, whichever comes
    # first (host chunks are closed at waits: docs/trace-format.md, section 8).
    assert played.reason in ("shutdown", "max_steps")
    assert TRACE_ENDED == "end of a truncated host trace"


# -- the pieces -----------------------------------------------------------------------------


def test_the_host_clock_measures_real_time_between_samples() -> None:
    clock = HostClock()
    assert clock.live_ns(ClockType.HOST, 123) == 123  # not started: the sampled value
    wall = clock.start() + HOST_EPOCH_NS
    assert abs(wall - time.time_ns()) < 10**9
    time.sleep(0.002)
    first = clock.elapsed()
    assert first >= 2 * SCALE_MS
    assert 0 <= clock.elapsed() < first
    assert clock.live_ns(ClockType.VIRTUAL_RT, 0) >= first
    assert clock.live_ns(ClockType.REALTIME, 7) == 7


def test_a_socket_channel_keeps_what_the_program_writes_and_ends_at_eof() -> None:
    with HostSimulation([("s", ChannelKind.SOCKET), ("p", ChannelKind.PIPE)]) as sim:
        fds = sim.fds
        s, p = sim.channel("s"), sim.channel("p")
        assert isinstance(s, Channel) and dict(sim.inputs) == {"p": p.fd, "s": s.fd}
        assert [ch.name for ch in sim.channels] == ["p", "s"]
        assert fds.write(s.fd, b"out") == 3
        assert bytes(s.output) == b"out"
        assert s.deliver(b"in") == 2 and fds.read(s.fd, 10) == b"in"
        s.deliver_eof()
        assert not s.live and fds.read(s.fd, 10) == b""
        with pytest.raises(BrokenPipeError):
            fds.write(s.fd, b"late")
        assert p.live
        fds.close(p.fd)
        assert p.closed_by_program and not p.live
        assert p.deliver(b"lost") == 0


def test_a_host_simulation_has_no_threads_of_control() -> None:
    with HostSimulation() as sim:
        calls: list[Callable[[], object]] = [
            lambda: sim.thread("t", lambda: None),
            lambda: sim.iothread("io"),
            lambda: sim.sleep(1),
            lambda: sim.yield_now(),
            lambda: sim.event("e"),
        ]
        for call in calls:
            with pytest.raises(SimulationError, match="host mode runs one thread of control"):
                call()
        with pytest.raises(SimulationError, match="has no scripted peers"):
            sim.peer(3)
        with pytest.raises(ValueError, match="channel names must be unique"):
            HostSimulation([("a", ChannelKind.PIPE), ("a", ChannelKind.SOCKET)])


def test_what_host_mode_cannot_wait_on_is_refused_and_closed(tmp_path: Path) -> None:
    out = tmp_path / "refused.evr"
    with tempfile.TemporaryFile() as regular:
        fd = os.dup(regular.fileno())
        with pytest.raises(ValueError, match="is not a pipe, FIFO, character device or socket"):
            record_host(ECHO, out, inputs={"f": fd})
        with pytest.raises(OSError):
            os.fstat(fd)  # closed: record_host owns what it is given
    r, w = os.pipe()
    with pytest.raises(ValueError, match=r"fd \d+ is write-only"):
        record_host(ECHO, out, inputs={"w": w})
    with pytest.raises(ValueError, match="are both fd"):
        record_host(ECHO, out, inputs={"a": r, "b": r})
    with pytest.raises(ValueError, match="is not an open fd"):
        record_host(ECHO, out, inputs={"a": 1 << 20})
    with pytest.raises(ValueError, match="a channel name must be a non-empty str"):
        record_host(ECHO, out, inputs={"": 0})


def test_play_host_refuses_a_simulation_trace(tmp_path: Path) -> None:
    path = tmp_path / "sim.evr"
    record("tests.scenarios.host:ticks", path, params={"count": 2})
    with pytest.raises(ReplayError, match="not a host-mode trace"):
        play_host(path)


# -- the tools on a host trace ------------------------------------------------------------


def test_replay_play_plays_a_host_trace_with_on_step(tmp_path: Path) -> None:
    path = tmp_path / "ticks.evr"
    rec = record_host("tests.scenarios.host:ticks", path, inputs={}, params={"count": 3})
    steps: list[DispatchEvent] = []
    played = play(path, on_step=steps.append)
    assert played == play_host(path)
    assert played.bit_exact is True
    assert [e.step for e in steps] == list(range(1, rec.steps + 1))


def test_replay_dump_of_a_host_trace_prints_every_step(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ticks.evr"
    rec = record_host("tests.scenarios.host:ticks", path, inputs={}, params={"count": 3})
    assert rec.steps > 0
    assert cli_main(["dump", "--json", str(path)]) == 0
    objects = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [o["step"] for o in objects if o["type"] == "step"] == list(range(1, rec.steps + 1))
    assert objects[-1]["type"] == "end"
    assert objects[-1]["steps_regenerated"] is True
    assert objects[-1]["steps"] == rec.steps
    with open(os.devnull, "w") as out:
        result = dump(path, out)
    assert (result.steps_written, result.steps_regenerated) == (rec.steps, True)


def test_replay_stats_of_a_host_trace_counts_its_steps(tmp_path: Path) -> None:
    path = tmp_path / "ticks.evr"
    rec = record_host("tests.scenarios.host:ticks", path, inputs={}, params={"count": 3})
    s = stats(path)
    assert (s.steps, s.steps_regenerated) == (rec.steps, True)
    assert sum(s.steps_by_kind.values()) == rec.steps
    assert s.steps_by_thread == {"main": rec.steps}


def test_host_mode_keeps_real_os_threads_and_no_watchdog() -> None:
    # Its main thread waits for real input for as long as it takes: no
    # greenlet backend and no watchdog may cut that short.
    from replay.host.simulation import HostSimulation

    with HostSimulation([("stdin", ChannelKind.PIPE)]) as sim:
        assert sim._sched.backend == "os"
        assert sim.watchdog is None
