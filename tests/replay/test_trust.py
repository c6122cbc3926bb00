"""Traces that lie: header fields of the wrong type, unknown modes, limits taken out.

A trace is untrusted input (docs/trace-format.md, section 9): whatever its
header says, play refuses it in one line or stays bounded by the trace.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from replay import (
    ReplayDivergence,
    ReplayError,
    TraceReader,
    TraceWriter,
    play,
    record,
)
from replay.cli.main import main
from tests.helpers import reframe

ROOT = Path(__file__).resolve().parents[2]
FOREVER = "tests.scenarios.workloads:forever"


def rewrite_header(path: Path, out: Path, **changes: Any) -> Path:
    """``path`` with its header changed (``extensions`` merged), the records kept."""
    data = path.read_bytes()
    with TraceReader(path) as reader:
        header = reader.header
    extensions = {**header.extensions, **changes.pop("extensions", {})}
    header = dataclasses.replace(header, extensions=extensions, **changes)
    with TraceWriter(out, header):
        pass
    head = out.read_bytes()
    # The chain forged too: what is tested here is what play makes of the header.
    out.write_bytes(reframe(head[: _header_end(head)] + data[_header_end(data) :], rechain=True))
    return out


def _header_end(data: bytes) -> int:
    return 8 + 12 + int.from_bytes(data[8:12], "little")


@pytest.fixture
def clean(tmp_path: Path) -> Path:
    path = tmp_path / "clean.evr"
    record("examples.minimachine:scenario", path)
    return path


@pytest.mark.parametrize(("key", "value", "must"), [
    ("run.checkpoint_interval", 0, "an integer in [1, 2**63)"),
    ("run.checkpoint_interval", -1, "an integer in [1, 2**63)"),
    ("run.checkpoint_interval", "x", "an integer in [1, 2**63)"),
    ("run.checkpoint_interval", True, "an integer in [1, 2**63)"),
    ("run.sanitize", "bogus", 'true or "strict" (absent when off)'),
    ("run.max_steps", 1.5, "nil or an integer >= 0"),
    ("run.max_steps", -3, "nil or an integer >= 0"),
    ("run.until_ns", "soon", "nil or an integer >= 0"),
])
def test_a_header_field_of_the_wrong_type_is_one_clear_error(
    clean: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, value: Any,
    must: str,
) -> None:
    bad = rewrite_header(clean, tmp_path / "bad.evr", extensions={key: value})
    message = f"{bad}: header field {key} must be {must}, not {value!r}"
    with pytest.raises(ReplayError) as info:
        play(bad)
    assert str(info.value) == message
    assert main(["play", str(bad)]) == 2
    assert capsys.readouterr().err == f"replay: error: {message}\n"


def test_malformed_faults_are_one_clear_error(
    clean: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = rewrite_header(clean, tmp_path / "bad.evr", faults=("lightning",))
    assert main(["play", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"replay: error: {bad}: header field faults: ")
    assert "lightning" in err and err.count("\n") == 1


@pytest.mark.parametrize("mode", ["hostile", "HOST", ""])
def test_an_unknown_mode_is_refused_not_played_as_a_simulation(
    clean: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], mode: str
) -> None:
    bad = rewrite_header(clean, tmp_path / "bad.evr", extensions={"mode": mode})
    assert main(["play", str(bad)]) == 2
    assert capsys.readouterr().err == (
        f"replay: error: {bad}: header field mode is {mode!r}, which this version does not "
        "know (known: host; absent for a simulation); refusing to play it\n"
    )


def test_a_header_without_its_limits_still_plays_no_further_than_its_trace(
    tmp_path: Path,
) -> None:
    """An endless program, its step limit taken out and no checkpoints: play still stops.

    The recording stopped at its step limit; without it, play runs one step
    past the trace's last event, finds the run did not end there, and says so.
    """
    path = tmp_path / "forever.evr"
    recorded = record(FOREVER, path, max_steps=500, chooser="random:1")
    hostile = rewrite_header(path, tmp_path / "hostile.evr", extensions={
        "run.max_steps": None, "run.checkpoint_interval": 2**63 - 1,
    })
    with pytest.raises(ReplayDivergence) as info:
        play(hostile)
    assert info.value.step is not None and info.value.step <= recorded.steps + 1


def test_a_cut_trace_of_an_endless_program_stops_at_its_last_whole_chunk(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "forever.evr"
    record(FOREVER, path, max_steps=20_000, chooser="random:1")
    # The limit taken out: only the trace's own end can stop the play.
    hostile = rewrite_header(path, tmp_path / "nolimit.evr", extensions={"run.max_steps": None})
    data = hostile.read_bytes()
    cut = tmp_path / "cut.evr"
    cut.write_bytes(data[: len(data) // 2])
    played = play(cut)
    assert played.truncated_at is not None and played.bit_exact is None
    assert played.steps < 20_000
    assert main(["play", str(cut)]) == 3
    assert "and stopped there, at step" in capsys.readouterr().out
