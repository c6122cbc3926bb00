"""fuzz and minimize: the bundled machine's ordering bug is found, shrunk, saved, replayed."""

from __future__ import annotations

from pathlib import Path

import pytest

from evloop import ChoiceKind
from replay import play, record
from replay.explore.fuzz import ScriptChooser, decisions_of, fuzz, minimize

MACHINE = "examples.minimachine:scenario"
BUG = "completed after a device reset"


@pytest.mark.parametrize("chooser", ["random", "pct", "hypothesis"])
def test_each_chooser_finds_shrinks_saves_and_replays_the_bug(tmp_path: Path, chooser: str) -> None:
    out = tmp_path / f"{chooser}.evr"
    found = fuzz(MACHINE, runs=100, chooser=chooser, output=out)
    assert found.found and found.failure is not None and BUG in found.failure
    assert found.trace_path == out and out.exists()
    assert 1 <= found.non_default <= 3  # shrunk towards QEMU's own order
    replayed = play(out)
    assert replayed.failure == found.failure
    assert replayed.bit_exact is True


def test_fuzz_reports_nothing_for_a_correct_device(tmp_path: Path) -> None:
    out = tmp_path / "none.evr"
    result = fuzz(MACHINE, runs=20, chooser="random", params={"fixed": True}, output=out)
    assert not result.found and result.runs == 20 and result.trace_path is None
    assert not out.exists()


def test_fuzz_in_worker_processes_finds_the_same_kind_of_bug(tmp_path: Path) -> None:
    found = fuzz(MACHINE, runs=16, chooser="random", workers=2, output=tmp_path / "w.evr")
    assert found.found and found.failure is not None and BUG in found.failure


@pytest.mark.parametrize("chooser", ["x", "random:3", "pct3"])
def test_fuzz_rejects_an_unknown_chooser(chooser: str) -> None:
    message = (
        rf"^fuzz chooser must be random, pct\[:DEPTH\[:HORIZON\]\] or hypothesis, "
        rf"not '{chooser}'$"
    )
    with pytest.raises(ValueError, match=message):
        fuzz(MACHINE, chooser=chooser)


def test_fuzz_passes_pct_depth_and_horizon_to_every_run(tmp_path: Path) -> None:
    # "pct:DEPTH:HORIZON" becomes run i's spec "pct:SEED+i:DEPTH:HORIZON": the
    # first failing run is the first seed whose own record fails.
    first = next(
        i for i in range(50)
        if record(MACHINE, tmp_path / f"{i}.evr", chooser=f"pct:{i}:2:20").failure is not None
    )
    found = fuzz(MACHINE, runs=50, chooser="pct:2:20")
    assert found.found and found.chooser == "pct:2:20" and found.runs == first + 1


def test_minimize_keeps_only_the_decisions_the_failure_needs(tmp_path: Path) -> None:
    # Find a failing random schedule with several non-FIFO decisions.
    for seed in range(200):
        path = tmp_path / f"r{seed}.evr"
        result = record(MACHINE, path, chooser=f"random:{seed}")
        if result.failure is not None and sum(1 for c in decisions_of(path) if c) >= 2:
            break
    else:
        pytest.fail("no failing random schedule with two non-FIFO decisions")
    out = tmp_path / "min.evr"
    minimal = minimize(path, out)
    assert minimal.failure == result.failure
    assert minimal.non_default == 1
    assert sum(1 for c in decisions_of(out) if c) == 1
    assert play(out).failure == result.failure


def test_minimize_refuses_a_trace_that_does_not_fail(tmp_path: Path) -> None:
    path = tmp_path / "clean.evr"
    record(MACHINE, path)
    with pytest.raises(ValueError, match=r"does not end in a failure; nothing to minimize$"):
        minimize(path, tmp_path / "out.evr")


def test_script_chooser_answers_by_index_and_defaults_outside_the_script() -> None:
    chooser = ScriptChooser([1, 5, 2])
    assert chooser.choose(ChoiceKind.THREAD, ["a", "b"]) == 1
    assert chooser.choose(ChoiceKind.THREAD, ["a", "b"]) == 0  # 5 is out of range
    assert chooser.choose(ChoiceKind.FAULT, ["none", "x", "y"]) == 2
    assert chooser.choose(ChoiceKind.THREAD, ["a", "b"]) == 0  # past the script
    assert chooser.taken == [1, 0, 2, 0]
