"""A run ended from inside is a failure; a real Ctrl-C stops the tool (``replay/interrupt.py``).

``sys.exit`` and ``KeyboardInterrupt`` raised by the program, in a callback,
a thread of control or an asyncio task, are recorded as the run's failure with
their step; the trace ends cleanly and replays to the same failure, exit 1
both ways. A SIGINT delivered to the process (a real signal here, never a
simulated one) cuts the trace at its whole chunks, and the command line says
so in one line and exits 130.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from replay import TraceReader, play, record
from replay.cli.main import main
from replay.interrupt import InterruptWatch, run_failure
from replay.trace.format import EventKind
from tests.helpers import ROOT, records_of

EXITS = "tests.scenarios.exits:exits"
SIGNALS_ITSELF = "tests.scenarios.exits:signals_itself"
ENDLESS = "tests.scenarios.exits:endless"
EXIT_INTERRUPTED = 130

CASES = [(where, how) for where in ("callback", "thread", "task") for how in ("exit", "interrupt")]
RAISED = {"exit": "SystemExit", "interrupt": "KeyboardInterrupt"}


@pytest.mark.parametrize(("where", "how"), CASES)
def test_an_exit_raised_inside_the_run_is_its_failure_and_replays_bit_exactly(
    tmp_path: Path, where: str, how: str
) -> None:
    path = tmp_path / "t.evr"
    recorded = record(EXITS, path, params={"where": where, "how": how})
    assert recorded.failure is not None
    assert recorded.failure.startswith(f"exception: {RAISED[how]}")
    # The trace ends cleanly: SHUTDOWN with the cause at the failing step, FINAL, END.
    records = records_of(path)
    shutdown = [r for r in records if r[0] == EventKind.SHUTDOWN]
    assert [(r[1], r[2]) for r in shutdown] == [(recorded.steps, recorded.failure)]
    assert records[-1][0] == EventKind.CHECKPOINT
    played = play(path)
    assert (played.failure, played.steps, played.bit_exact) == (
        recorded.failure, recorded.steps, True
    )


@pytest.mark.parametrize("how", ["exit", "interrupt"])
def test_the_command_line_says_the_run_failed_and_exits_1_both_ways(
    tmp_path: Path, how: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "t.evr"
    params = ["--param", "where=thread", "--param", f"how={how}"]
    assert main(["record", EXITS, "-o", str(path), *params]) == 1
    out = capsys.readouterr().out
    assert f"FAILED: exception: {RAISED[how]}" in out
    assert f"replay it with: replay play {path}" in out
    assert main(["play", str(path), "--scenario", EXITS]) == 1
    out = capsys.readouterr().out
    assert f"replays to the same failure: exception: {RAISED[how]}" in out
    assert "bit-exact" in out


def test_a_task_that_exits_leaves_no_never_retrieved_report(tmp_path: Path) -> None:
    code = (
        "import gc, sys\n"
        "from replay import record\n"
        f"r = record({EXITS!r}, sys.argv[1], params={{'where': 'task', 'how': 'exit'}})\n"
        "gc.collect()\n"
        "print(r.failure)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "t.evr")], cwd=ROOT, capture_output=True,
        text=True, timeout=120, check=False,
    )
    assert (done.returncode, done.stdout.strip(), done.stderr) == (
        0, "exception: SystemExit: 0", ""
    )


@pytest.fixture
def sigint_raises() -> Iterator[None]:
    """Python's own SIGINT handler, whatever this process inherited (a background job
    ignores SIGINT)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # the child's Python installs its handler


def test_a_real_sigint_during_a_recording_cuts_the_trace_at_its_whole_chunks(
    tmp_path: Path, sigint_raises: None
) -> None:
    path = tmp_path / "t.evr"
    with pytest.raises(KeyboardInterrupt):
        record(SIGNALS_ITSELF, path)
    with TraceReader(path, strict=False) as reader:
        kept = list(reader)
        assert not reader.complete
    assert kept and kept[0][0] == EventKind.CHECKPOINT  # INIT, and whole chunks after it
    assert not any(r[0] == EventKind.SHUTDOWN for r in kept)  # an interruption is no outcome


def test_a_watch_notes_a_real_sigint_and_hands_it_on(sigint_raises: None) -> None:
    before = signal.getsignal(signal.SIGINT)
    with InterruptWatch() as watch, pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # the handler runs at the next bytecode boundary
            pass
    assert watch.delivered
    assert not run_failure(KeyboardInterrupt(), watch)
    assert run_failure(SystemExit(0), InterruptWatch())
    assert run_failure(KeyboardInterrupt(), InterruptWatch())
    assert not run_failure(GeneratorExit(), InterruptWatch())
    assert signal.getsignal(signal.SIGINT) is before


# -- a real Ctrl-C, delivered to a real `replay` process --------------------------------------

TRIES = 5


def _interrupted(args: list[str], ready: Path, grown: Path | None = None) -> tuple[int, str]:
    """Start ``replay ARGS``; once ``ready`` exists (and ``grown`` is past one chunk), SIGINT it.

    The polling is bounded; what the test asserts is the process's answer.
    """
    child = subprocess.Popen(
        [sys.executable, "-m", "replay", *args], cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, preexec_fn=_sigint_default,
    )
    try:
        give_up = time.monotonic() + 60
        while time.monotonic() < give_up and child.poll() is None:
            if ready.exists() and (grown is None or grown.stat().st_size > 1 << 17):
                break
            time.sleep(0.01)
        assert child.poll() is None, f"replay ended before it was interrupted: {child.returncode}"
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return child.returncode, err


@pytest.mark.slow
def test_ctrl_c_during_record_keeps_the_whole_chunks_and_exits_130(tmp_path: Path) -> None:
    for i in range(TRIES):
        path, marker = tmp_path / f"cut{i}.evr", tmp_path / f"started{i}"
        code, err = _interrupted(
            ["record", ENDLESS, "--param", f"marker={marker}", "-o", str(path)], marker, path
        )
        assert "Traceback" not in err
        assert (code, err.splitlines()) == (EXIT_INTERRUPTED, [
            f"replay: interrupted; the partial trace is in {path} (its whole chunks: "
            "'replay play' replays them as a cut trace)"
        ])
        with TraceReader(path, strict=False) as reader:
            kept = sum(1 for _ in reader)
            assert not reader.complete
        assert kept > 1
        # The cut trace plays as one: its whole chunks, then exit 3.
        assert main(["play", str(path), "--scenario", ENDLESS]) == 3


def test_ctrl_c_raised_inside_code_run_from_a_string_still_exits_130(tmp_path: Path) -> None:
    """A Ctrl-C whose KeyboardInterrupt is raised inside ``exec`` of a string (as it is
    when it lands while an import creates a dataclass) is marked "unhandled" by
    CPython even once caught, and ``python -m`` would then die by SIGINT (-2)
    after its one line: ``replay.__main__.forget_caught_interrupts``."""
    path = tmp_path / "t.evr"
    done = subprocess.run(
        [sys.executable, "-m", "replay", "record", SIGNALS_ITSELF, "--param", "in_exec=True",
         "--param", "after_steps=50", "-o", str(path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
        preexec_fn=_sigint_default,
    )
    assert (done.returncode, done.stderr.splitlines()) == (EXIT_INTERRUPTED, [
        f"replay: interrupted; the partial trace is in {path} (its whole chunks: "
        "'replay play' replays them as a cut trace)"
    ])


@pytest.fixture(scope="module")
def long_trace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A trace whose play takes a few seconds; its scenario touches ``marker`` as it starts."""
    where = tmp_path_factory.mktemp("long")
    path, marker = where / "long.evr", where / "started"
    record(ENDLESS, path, params={"marker": str(marker)}, max_steps=100_000)
    return path, marker


@pytest.mark.slow
def test_ctrl_c_during_play_is_one_line_and_exits_130(long_trace: tuple[Path, Path]) -> None:
    path, marker = long_trace
    for _ in range(TRIES):
        marker.unlink()
        code, err = _interrupted(["play", str(path), "--scenario", ENDLESS], marker)
        assert (code, err.splitlines()) == (EXIT_INTERRUPTED, ["replay: error: interrupted"])
