"""replay fuzz, replay minimize and --faults on the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from replay import play, record
from replay.cli.main import main
from replay.explore.fuzz import decisions_of

MACHINE = "examples.minimachine:scenario"


def test_fuzz_finds_saves_and_says_how_to_replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bug.evr"
    assert main(["fuzz", MACHINE, "--runs", "50", "-o", str(out)]) == 1
    text = capsys.readouterr().out
    assert "failure found after" in text and "completed after a device reset" in text
    assert f"replay it with: replay play {out}" in text
    assert play(out).failure is not None


def test_fuzz_of_a_correct_device_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "none.evr"
    args = ["fuzz", MACHINE, "--runs", "5", "--chooser", "pct", "--param", "fixed=True"]
    assert main([*args, "-o", str(out)]) == 0
    assert "no failure in 5 runs" in capsys.readouterr().out
    assert not out.exists()


def test_fuzz_progress_is_plain_lines_when_not_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["fuzz", MACHINE, "--runs", "3", "--param", "fixed=True", "-o", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert "fuzzing examples.minimachine:scenario (random): 3/3" in err
    assert "\r" not in err


def test_minimize_shrinks_a_failing_trace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for seed in range(200):
        path = tmp_path / "r.evr"
        result = record(MACHINE, path, chooser=f"random:{seed}")
        if result.failure is not None and sum(1 for c in decisions_of(path) if c) >= 2:
            break
    out = tmp_path / "min.evr"
    assert main(["minimize", str(path), "-o", str(out)]) == 1
    assert "to 1 non-FIFO decision(s)" in capsys.readouterr().out
    assert play(out).failure == result.failure


def test_minimize_of_a_clean_trace_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "clean.evr"
    record(MACHINE, path)
    assert main(["minimize", str(path), "-o", str(tmp_path / "o.evr")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("replay: error: ") and "does not end in a failure" in err
    assert "Traceback" not in err


def test_record_with_faults_records_them_and_replays(tmp_path: Path) -> None:
    out = tmp_path / "f.evr"
    code = main(
        [
            "record",
            MACHINE,
            "--faults",
            "preempt",
            "--chooser",
            "random:3",
            "--param",
            "fixed=True",
            "-o",
            str(out),
        ]
    )
    assert code == 0
    assert play(out).bit_exact is True


def test_an_unknown_fault_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["record", MACHINE, "--faults", "nope", "-o", str(tmp_path / "f.evr")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("replay: error: --faults: unknown fault 'nope'")
    assert err.count("\n") == 1
