"""replay fuzz, replay minimize and --faults on the command line."""

from __future__ import annotations

import re
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
    last = err.splitlines()[-1]
    assert last.startswith("fuzzing examples.minimachine:scenario (random): 100%")
    assert re.search(r" 3/3 \[[0-9:]+<[0-9:]+, +[0-9.]+ ?(run/s|s/run)\]$", last), last
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


# -- fuzz --chooser systematic ------------------------------------------------------------


def test_systematic_fuzz_finds_the_bug_and_saves_a_replayable_trace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bug.evr"
    args = ["fuzz", MACHINE, "--chooser", "systematic", "--preemptions", "0", "-o", str(out)]
    assert main(args) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [
        "failure found in schedule 1: exception: AssertionError: blk: request 0 completed "
        "after a device reset freed its buffers (use after free: the reset did not drain "
        "in-flight I/O)",
        f"0 preemption(s) in 6 decision(s); trace saved -> {out}",
        f"replay it with: replay play {out}",
    ]
    last = captured.err.splitlines()[-1]
    assert last.startswith(
        "exploring examples.minimachine:scenario (systematic, up to 0 preemptions): "
    )
    assert " 1/1000 [" in last
    assert main(["play", str(out)]) == 1  # it replays to the same failure, as recorded
    assert "replays to the same failure" in capsys.readouterr().out
    assert play(out).bit_exact is True


def test_systematic_fuzz_of_a_small_correct_model_reports_every_schedule(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    args = ["fuzz", "tests.scenarios.interleavings:steps", "--chooser", "systematic"]
    assert main([*args, "--preemptions", "1", "-o", str(tmp_path / "x.evr")]) == 0
    assert capsys.readouterr().out == "all 4 schedules up to 1 preemption explored, no failure\n"
    assert main([*args, "--runs", "3", "-o", str(tmp_path / "x.evr")]) == 0
    assert capsys.readouterr().out == (
        "3 schedules up to 2 preemptions explored, no failure; the budget (--runs 3) ran out "
        "before the search was complete\n"
    )
    assert not (tmp_path / "x.evr").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--preemptions", "1"],
         "--preemptions bounds the systematic explorer: use it with --chooser systematic"),
        (["--chooser", "systematic", "--workers", "2"],
         "--workers: the systematic explorer runs its schedules one after another"),
        (["--chooser", "systematic", "--preemptions", "-1"], None),
        (["--pct-depth", "2"],
         "--pct-depth and --pct-horizon set the pct chooser: use them with --chooser pct"),
        (["--chooser", "systematic", "--pct-horizon", "20"],
         "--pct-depth and --pct-horizon set the pct chooser: use them with --chooser pct"),
        (["--chooser", "pct", "--pct-horizon", "0"], None),
    ],
)
def test_systematic_fuzz_usage_errors(
    args: list[str], message: str | None, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with pytest.raises(SystemExit) as info:
        code = main(["fuzz", MACHINE, *args, "-o", str(tmp_path / "x.evr")])
        raise SystemExit(code)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if message is not None:
        assert err == f"replay: error: {message}\n"


def test_pct_fuzz_passes_depth_and_horizon_on(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # --pct-depth 2 --pct-horizon 20: run i is pct:i:2:20, and seed 0 already
    # fails (with the default horizon of 1000 it takes two runs).
    out = tmp_path / "pct.evr"
    args = ["fuzz", MACHINE, "--chooser", "pct", "--pct-depth", "2", "--pct-horizon", "20",
            "--runs", "50", "-o", str(out)]
    assert main(args) == 1
    assert capsys.readouterr().out.startswith("failure found after 1 run(s): ")
    assert main(["fuzz", MACHINE, "--chooser", "pct", "--pct-depth", "2", "--runs", "50",
                 "-o", str(out)]) == 1
    assert capsys.readouterr().out.startswith("failure found after 2 run(s): ")
    assert play(out).bit_exact is True


def test_pct_fuzz_with_a_short_horizon_finds_a_short_race(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # QEMU 21a03d17f2's lost wake-up takes about 15 decisions: PCT's change
    # points must fall among them (with the default horizon, 1000, they do not).
    out = tmp_path / "pct.evr"
    args = ["fuzz", "replay.examples.wakeups:test_and_clear_race", "--chooser", "pct",
            "--pct-depth", "3", "--runs", "400", "-o", str(out)]
    assert main(args) == 0
    assert capsys.readouterr().out.startswith("no failure in 400 runs")
    assert main([*args, "--pct-horizon", "15"]) == 1
    printed = capsys.readouterr().out
    assert printed.startswith("failure found after 250 run(s): exception: AssertionError: lost ")
    assert play(out).bit_exact is True


def test_systematic_fuzz_of_a_nondeterministic_scenario_is_a_clean_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from tests.scenarios import interleavings

    interleavings.RESTARTS[0] = 0  # the first run starts 3 threads, the second 2
    args = ["fuzz", "tests.scenarios.interleavings:unstable", "--chooser", "systematic"]
    assert main([*args, "-o", str(tmp_path / "x.evr")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.splitlines()[-1] == (
        "replay: error: tests.scenarios.interleavings:unstable: schedule 2 did not repeat the "
        "run it was derived from: decision 0 was a THREAD decision among 3 options, now a "
        "THREAD decision among 2 options; the scenario leaks nondeterminism (run `replay "
        "check-determinism` on it)"
    )
