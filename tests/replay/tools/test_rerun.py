"""``replay rerun``: the current code under a trace's schedule (replay/tools/rerun.py)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import tests.scenarios.failing as failing
from evloop import ChoiceKind
from replay import ReplayError, record
from replay.cli.main import main
from replay.tools.rerun import TraceScheduleChooser, read_schedule, rerun

ROOT = Path(__file__).resolve().parents[3]
FAILS = "tests.scenarios.failing:callback_fails"
THREADS = "tests.scenarios.failing:thread_fails"


class FakeSim:
    """What the chooser reads of a simulation: its step counter."""

    def __init__(self) -> None:
        self.steps = 0


def test_the_chooser_follows_the_trace_while_decisions_apply_then_fifo() -> None:
    chooser = TraceScheduleChooser([(3, 2, 1), (5, 3, 2), (9, 2, 1), (12, 2, 1)])
    sim = FakeSim()
    chooser.attach(sim)  # type: ignore[arg-type]
    answers = []
    for step, n in [(3, 2), (5, 3), (9, 3), (12, 2)]:
        sim.steps = step
        answers.append(chooser.choose(ChoiceKind.THREAD, ["x"] * n))
    # The third decision is asked among 3 options, not 2: the schedule departs
    # there, and the fourth (which would match again) is answered FIFO too.
    assert answers == [1, 2, 0, 0]
    assert (chooser.followed, chooser.departed_step) == (2, 9)


def test_a_decision_asked_at_another_step_departs() -> None:
    chooser = TraceScheduleChooser([(3, 2, 1)])
    sim = FakeSim()
    chooser.attach(sim)  # type: ignore[arg-type]
    sim.steps = 4
    assert chooser.choose(ChoiceKind.THREAD, ["a", "b"]) == 0
    assert (chooser.followed, chooser.departed_step) == (0, 4)


@pytest.fixture
def assertions_on() -> Iterator[None]:
    yield
    failing.ASSERTIONS = True


@pytest.fixture
def bug(tmp_path: Path) -> Path:
    path = tmp_path / "bug.evr"
    assert record(THREADS, path, chooser="random:4").failure is not None
    return path


def test_a_failure_that_still_happens_is_reported_with_the_schedule_applied(bug: Path) -> None:
    _, decisions, recorded = read_schedule(bug)
    result = rerun(bug)
    assert result.recorded_failure == recorded and recorded is not None
    assert result.failure == recorded
    assert not result.fixed
    assert (result.followed, result.decisions, result.departed_step) == (
        len(decisions), len(decisions), None,
    )
    assert result.schedule_text() == (
        f"the trace's schedule applied throughout ({len(decisions)} decisions)"
    )


def test_a_fixed_failure_is_reported_fixed(bug: Path, assertions_on: None) -> None:
    failing.ASSERTIONS = False
    result = rerun(bug)
    assert result.fixed
    assert result.failure is None
    assert result.recorded_failure is not None


def test_rerun_exit_codes_and_lines(
    bug: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], assertions_on: None
) -> None:
    assert main(["rerun", str(bug)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{bug}: still fails: exception: AssertionError: ")
    assert "; the trace's schedule applied throughout (" in out
    failing.ASSERTIONS = False
    assert main(["rerun", str(bug)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{bug}: fixed: the recorded failure does not recur (exception: ")
    assert main(["rerun", str(tmp_path / "missing.evr")]) == 2
    assert "replay: error: " in capsys.readouterr().err


def test_rerun_of_a_directory_counts_and_fails_when_any_failure_recurs(
    bug: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], assertions_on: None
) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(bug, corpus / "a-bug.evr")
    assert record(FAILS, corpus / "b-clean.evr", params={"at_tick": 1000},
                  until_ns=5_000_000).failure is None
    (corpus / "c-bad.evr").write_bytes(b"not a trace")
    assert main(["rerun", str(corpus)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{corpus / 'a-bug.evr'}: still fails: ")
    assert lines[1].startswith(f"{corpus / 'b-clean.evr'}: passes: the run does not fail; ")
    assert lines[2].startswith(f"{corpus / 'c-bad.evr'}: BAD: ")
    assert lines[3] == "3 traces: 1 fixed, 1 fail, 1 bad"
    failing.ASSERTIONS = False
    (corpus / "c-bad.evr").unlink()
    assert main(["rerun", str(corpus)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "2 traces: 2 fixed, 0 fail, 0 bad"


def test_rerun_can_name_the_scenario(
    bug: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rerun", str(bug), "--scenario", "tests.scenarios.failing:no_such"]) == 2
    assert "has no attribute 'no_such'" in capsys.readouterr().err


def test_a_changed_scenario_departs_from_the_schedule_and_says_where(tmp_path: Path) -> None:
    path = tmp_path / "t.evr"
    record(THREADS, path, chooser="random:4", params={"rounds": 3})
    _, decisions, _ = read_schedule(path)
    # One worker fewer: its decisions have fewer options from the first one on.
    result = rerun(path, scenario="tests.scenarios.failing:thread_fails_two")
    assert result.decisions == len(decisions)
    assert result.departed_step is not None and result.followed < len(decisions)
    assert result.schedule_text() == (
        f"the trace's schedule applied for {result.followed} of {len(decisions)} decisions, "
        f"up to step {result.departed_step}; FIFO order after that"
    )
    # A scenario that asks no decision at all ends before the schedule does.
    quiet = rerun(path, scenario="tests.scenarios.failing:callback_fails")
    assert (quiet.followed, quiet.departed_step) == (0, None)
    assert quiet.schedule_text() == (
        f"the run ended after 0 of the trace's {len(decisions)} decisions, each as recorded"
    )


def test_the_bundled_bug_still_fails() -> None:
    bug = ROOT / "traces" / "minimachine-blk-reset-race.evr"
    result = rerun(bug)
    assert not result.fixed
    assert result.followed == result.decisions and result.departed_step is None


def test_a_host_trace_cannot_be_rerun(tmp_path: Path) -> None:
    from replay.host import record_host

    path = tmp_path / "host.evr"
    record_host("tests.scenarios.host:ticks", path, inputs={}, params={"count": 2})
    with pytest.raises(ReplayError, match=r"a host-mode trace holds real input, not a schedule"):
        rerun(path)


def test_a_bad_trace_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "x.evr"
    path.write_bytes(b"junk")
    with pytest.raises(ReplayError):
        rerun(path)
