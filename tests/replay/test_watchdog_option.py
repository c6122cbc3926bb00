"""The wall-clock watchdog as a recorded run option: ``record(watchdog=...)``, ``--watchdog``."""

from __future__ import annotations

from pathlib import Path

import pytest

from evloop.machine.watchdog import DEFAULT_TIMEOUT_S
from replay import TraceReader, play, record
from replay.api import simulation
from replay.cli.main import main
from replay.trace.header import TraceHeader

FAILS = "tests.scenarios.failing"


def _header(path: Path) -> TraceHeader:
    with TraceReader(path) as reader:
        return reader.header


def test_the_default_watchdog_leaves_the_header_alone(tmp_path: Path) -> None:
    path = tmp_path / "t.evr"
    record(f"{FAILS}:callback_fails", path, params={"at_tick": 99}, until_ns=2_000_000)
    header = _header(path)
    assert "run.watchdog" not in header.extensions
    sim = simulation(header)
    try:
        assert sim.watchdog is not None and sim.watchdog.timeout == DEFAULT_TIMEOUT_S
    finally:
        sim.close()


def test_a_watchdog_turned_off_is_recorded_and_off_in_play(tmp_path: Path) -> None:
    path = tmp_path / "t.evr"
    record(f"{FAILS}:callback_fails", path, params={"at_tick": 99}, until_ns=2_000_000,
           watchdog=None)
    header = _header(path)
    assert header.extensions["run.watchdog"] == 0.0
    sim = simulation(header)
    try:
        assert sim.watchdog is None
    finally:
        sim.close()
    assert play(path).bit_exact is True


@pytest.mark.slow
def test_a_spinning_thread_is_stopped_by_the_recorded_watchdog_in_record_and_play(
    tmp_path: Path,
) -> None:
    path = tmp_path / "t.evr"
    result = record(f"{FAILS}:spins", path, watchdog=0.2)
    assert result.failure is not None
    assert result.failure.startswith("exception: WatchdogError: ")
    assert "'spinner'" in result.failure
    assert _header(path).extensions["run.watchdog"] == 0.2
    played = play(path)
    assert played.bit_exact is True and played.failure is not None


def test_the_command_line_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "t.evr"
    assert main(["record", f"{FAILS}:callback_fails", "--param", "at_tick=99",
                 "--until-ns", "2ms", "--watchdog", "0", "-o", str(out)]) == 0
    assert _header(out).extensions["run.watchdog"] == 0.0
    capsys.readouterr()
    assert main(["record", f"{FAILS}:callback_fails", "--watchdog", "-1"]) == 2
    assert capsys.readouterr().err == (
        "replay: error: argument --watchdog: expected seconds >= 0 (0: off), not '-1' "
        "(see 'replay record --help')\n"
    )
