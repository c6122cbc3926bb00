"""``replay record --preemption fine``: a fine-preemption run recorded and played from the CLI."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from replay import TraceReader, TraceWriter
from replay.cli.main import main
from replay.trace.choices import batch_decisions
from replay.trace.format import EventKind

SPEC = "tests.scenarios.workloads:threaded"


def decisions(path: Path) -> int:
    with TraceReader(path) as reader:
        return sum(
            len(list(batch_decisions(r[1], r[2]))) for r in reader if r[0] == EventKind.CHOICES
        )


def rewrite_header(path: Path, out: Path, **extensions: object) -> Path:
    with TraceReader(path) as reader:
        ext = {k: v for k, v in reader.header.extensions.items() if k != "run.preemption"}
        ext.update(extensions)
        header = dataclasses.replace(reader.header, extensions=ext)
        with TraceWriter(out, header) as writer:
            for rec in reader:
                writer.write(rec)
    return out


@pytest.fixture
def fine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    path = tmp_path / "fine.evr"
    assert main(["record", SPEC, "--preemption", "fine", "--chooser", "random:3",
                 "-o", str(path)]) == 0
    capsys.readouterr()
    return path


def test_a_fine_preemption_run_is_recorded_as_such_and_replays_from_the_cli(
    fine: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with TraceReader(fine) as reader:
        assert reader.header.extensions["run.preemption"] == "fine"
    coarse = tmp_path / "coarse.evr"
    assert main(["record", SPEC, "--chooser", "random:3", "-o", str(coarse)]) == 0
    with TraceReader(coarse) as reader:
        assert "run.preemption" not in reader.header.extensions
    # Its preemption points are decisions the coarse run never asks.
    assert decisions(fine) > decisions(coarse)
    capsys.readouterr()
    assert main(["play", str(fine)]) == 0
    assert "bit-exact" in capsys.readouterr().out


def test_a_fine_trace_played_without_its_mode_diverges(
    fine: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stripped = rewrite_header(fine, tmp_path / "stripped.evr")
    assert main(["play", str(stripped)]) == 3
    assert "replay diverged" in capsys.readouterr().out


def test_an_unknown_preemption_mode_in_a_header_is_refused_in_one_line(
    fine: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = rewrite_header(fine, tmp_path / "bad.evr", **{"run.preemption": "coarse"})
    assert main(["play", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        f"replay: error: {bad}: header field run.preemption must be \"fine\" (absent when off), "
        "not 'coarse'"
    ]


def test_the_cli_refuses_an_unknown_mode(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["record", SPEC, "--preemption", "coarse"]) == 2
    assert capsys.readouterr().err.startswith(
        "replay: error: argument --preemption: invalid choice: 'coarse'"
    )
