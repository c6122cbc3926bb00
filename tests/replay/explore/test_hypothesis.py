"""Hypothesis drives the schedule: it finds the ordering bug, shrinks it, saves it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from evloop import ChoiceKind
from replay import play, record
from replay.explore.hypothesis import HypothesisChooser, SimulationRun, simulations

MACHINE = "examples.minimachine:scenario"


def _find_bug(tmp_path: Path, **kwargs: object) -> tuple[AssertionError, list[SimulationRun]]:
    runs: list[SimulationRun] = []

    @settings(
        max_examples=200,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(simulations(MACHINE, failure_dir=tmp_path / "failures", **kwargs))  # type: ignore[arg-type]
    def test_block_completions_never_touch_freed_requests(run: SimulationRun) -> None:
        runs.append(run)
        assert run.failure is None, run.failure

    with pytest.raises(AssertionError) as caught:
        test_block_completions_never_touch_freed_requests()
    return caught.value, runs


def test_hypothesis_finds_shrinks_saves_and_replays_the_ordering_bug(tmp_path: Path) -> None:
    error, runs = _find_bug(tmp_path)
    final = runs[-1]
    assert final.failure is not None and "completed after a device reset" in final.failure
    # Shrunk towards FIFO: only a handful of decisions are not QEMU's own order.
    assert 1 <= final.non_default <= 3
    # The final (minimal) run was saved, and the report says how to replay it.
    assert final.trace_path is not None and final.trace_path.exists()
    assert final.trace_path.parent == tmp_path / "failures"
    assert f"python -m replay play {final.trace_path}" in "\n".join(getattr(error, "__notes__", []))
    replayed = play(final.trace_path)
    assert replayed.failure == final.failure
    assert replayed.bit_exact is True


def test_a_fixed_device_survives_every_schedule(tmp_path: Path) -> None:
    @settings(max_examples=30, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(simulations(MACHINE, params={"fixed": True}, failure_dir=tmp_path))
    def test_fixed(run: SimulationRun) -> None:
        assert run.failure is None, run.failure

    test_fixed()
    assert not list(tmp_path.iterdir())


def test_the_hypothesis_chooser_draws_each_decision_in_range() -> None:
    draws: list[int] = []

    def draw(strategy: object) -> int:
        # A fake draw: the largest value the strategy allows.
        hi = int(repr(strategy).split("max_value=")[1].rstrip(")"))
        draws.append(hi)
        return hi

    chooser = HypothesisChooser(draw)  # type: ignore[arg-type]
    assert chooser.choose(ChoiceKind.THREAD, ["a", "b", "c"]) == 2
    assert chooser.choose(ChoiceKind.FAULT, ["none", "x"]) == 1
    assert (chooser.decisions, chooser.non_default) == (2, 2)



# -- in the test body, drawing from st.data() ---------------------------------------------


def test_run_with_finds_shrinks_saves_and_replays_the_bug_in_the_test_body(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hypothesis import strategies as st

    from replay.hypothesis import run_with

    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw3")
    runs: list[SimulationRun] = []

    @settings(max_examples=200, derandomize=True, database=None, deadline=None)
    @given(st.data())
    def test_in_the_body(data: st.DataObject) -> None:
        run = run_with(data, MACHINE, failure_dir=tmp_path / "failures")
        runs.append(run)
        assert run.failure is None, run.failure

    with pytest.raises(AssertionError) as caught:
        test_in_the_body()
    final = runs[-1]
    assert final.failure is not None and "completed after a device reset" in final.failure
    assert 1 <= final.non_default <= 3
    assert final.trace_path is not None and final.trace_path.parent == tmp_path / "failures"
    # One naming rule for every saved trace: worker, test id, digest.
    assert re.fullmatch(r"gw3-.+-[0-9a-f]{16}\.evr", final.trace_path.name)
    assert [p.name for p in (tmp_path / "failures").iterdir()] == [final.trace_path.name]
    notes = "\n".join(getattr(caught.value, "__notes__", []))
    assert f"python -m replay play {final.trace_path}" in notes
    replayed = play(final.trace_path)
    assert (replayed.failure, replayed.bit_exact) == (final.failure, True)


def test_run_with_outside_a_hypothesis_test_saves_nothing(tmp_path: Path) -> None:
    from replay.hypothesis import run_with

    class Zeros:
        """A stand-in for st.data(): every draw is its smallest value (FIFO, seed 0)."""

        def draw(self, strategy: object) -> int:
            return 0

    run = run_with(Zeros(), MACHINE, failure_dir=tmp_path)  # type: ignore[arg-type]
    assert run.seed == 0 and run.non_default == 0 and run.failure is None
    assert run.trace_path is None and not list(tmp_path.iterdir())
    assert run.result.digest == record(MACHINE, tmp_path / "fifo.evr").digest
