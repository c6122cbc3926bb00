"""What a killed recording keeps: host mode's chunks closed by time and input (rule 6).

Real kills of real processes: a ``record_host`` of the echo program against a
socket peer, SIGKILLed once its reply shows the input was taken, keeps that
input on disk, and keeps closing chunks while time passes with no input; its
cut trace plays as one (exit 3). A simulation-mode ``replay record`` SIGKILLed
mid-run keeps its header and every whole chunk. Polling is bounded; what is
asserted is what the trace holds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from replay import EventKind, TraceReader
from replay.cli import main as cli_main
from replay.host.channels import FLUSH_INTERVAL_NS, FLUSH_KEY
from replay.host.mode import play_host, record_host
from tests.helpers import ROOT

ECHO = "tests.scenarios.host:echo"
ENDLESS = "tests.scenarios.exits:endless"
RECORD_ECHO = (
    "import sys\n"
    "from replay.host.mode import record_host\n"
    f"record_host({ECHO!r}, sys.argv[1], inputs={{'sock': int(sys.argv[2])}})\n"
)


def _until(what: Callable[[], bool], child: subprocess.Popen[Any], why: str) -> None:
    """Poll ``what`` (bounded); the child must still be running meanwhile."""
    give_up = time.monotonic() + 60
    while not what():
        assert child.poll() is None, f"the recording ended before {why}: {child.returncode}"
        assert time.monotonic() < give_up, f"no {why} within a minute"
        time.sleep(0.01)


def _kept(path: Path) -> tuple[list[tuple[Any, ...]], bool]:
    with TraceReader(path, strict=False) as reader:
        return [tuple(r) for r in reader], reader.complete


@pytest.fixture
def peer() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair()
    yield ours, theirs
    ours.close()
    theirs.close()


def test_a_killed_host_recording_keeps_the_input_it_took_and_goes_on_flushing(
    tmp_path: Path, peer: tuple[socket.socket, socket.socket]
) -> None:
    ours, theirs = peer
    path = tmp_path / "host.evr"
    child = subprocess.Popen(
        [sys.executable, "-c", RECORD_ECHO, str(path), str(theirs.fileno())],
        cwd=ROOT, pass_fds=[theirs.fileno()], stderr=subprocess.PIPE,
    )
    try:
        theirs.close()
        _until(path.exists, child, "its trace was created")
        ours.sendall(b"hello\n")
        reply = bytearray()
        ours.setblocking(False)

        def replied() -> bool:
            with contextlib.suppress(BlockingIOError):
                reply.extend(ours.recv(64))
            return reply == b"HELLO\n"

        _until(replied, child, "the program answered")
        # The input was taken: it is on disk already (a burst closes the chunk).
        inputs = [r for r in _kept(path)[0] if r[0] == EventKind.INPUT]
        assert [(r[2], r[3]) for r in inputs] == [("sock", b"hello\n")]
        # No more input, only real time passing: chunks keep being closed.
        size = path.stat().st_size
        _until(lambda: path.stat().st_size > size, child, "a chunk closed by time")
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        assert child.stderr is not None
        child.stderr.close()
    records, complete = _kept(path)
    assert not complete
    assert [(r[2], r[3]) for r in records if r[0] == EventKind.INPUT] == [("sock", b"hello\n")]
    # Its play replays the whole chunks and says the trace is cut: exit 3.
    assert cli_main(["play", str(path), "--scenario", ECHO]) == 3


def test_a_host_trace_records_its_flush_interval_and_plays_bit_exactly(
    tmp_path: Path, peer: tuple[socket.socket, socket.socket]
) -> None:
    ours, theirs = peer
    path = tmp_path / "host.evr"
    ours.sendall(b"a\n")
    ours.shutdown(socket.SHUT_WR)
    recorded = record_host(ECHO, path, inputs={"sock": theirs.detach()}, flush_ns=1)
    with TraceReader(path) as reader:
        assert reader.header.extensions[FLUSH_KEY] == 1
    played = play_host(path)
    assert (played.bit_exact, played.steps) == (True, recorded.steps)
    assert FLUSH_INTERVAL_NS == 100_000_000


def test_a_bad_flush_interval_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^flush_ns must be a positive number of ns, not 0$"):
        record_host(ECHO, tmp_path / "t.evr", inputs={}, flush_ns=0)


def test_a_killed_simulation_recording_keeps_its_whole_chunks(tmp_path: Path) -> None:
    path, marker = tmp_path / "sim.evr", tmp_path / "started"
    child = subprocess.Popen(
        [sys.executable, "-m", "replay", "record", ENDLESS, "--param", f"marker={marker}",
         "-o", str(path)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        _until(lambda: marker.exists() and path.stat().st_size > 1 << 17, child, "two chunks")
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    records, complete = _kept(path)
    assert not complete and len(records) > 1
    assert records[0][0] == EventKind.CHECKPOINT
    assert cli_main(["play", str(path), "--scenario", ENDLESS]) == 3
