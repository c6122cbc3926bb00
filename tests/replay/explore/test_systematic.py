"""replay.explore.systematic: every schedule up to K preemptions, depth first.

The tiny models in ``tests/scenarios/interleavings.py`` have schedule counts
derived by hand in the docstrings below; the bundled machine has its known
ordering bug and its fixed variant.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from evloop import ChoiceKind, ChoicePoint
from replay import ReplayError, play
from replay.explore import explore_systematic
from replay.explore.fuzz import decisions_of, minimize
from replay.explore.systematic import next_prefix
from tests.scenarios import interleavings

STEPS = "tests.scenarios.interleavings:steps"
LOST_UPDATE = "tests.scenarios.interleavings:lost_update"
MACHINE = "examples.minimachine:scenario"
USE_AFTER_FREE = (
    "exception: AssertionError: blk: request 0 completed after a device reset freed its "
    "buffers (use after free: the reset did not drain in-flight I/O)"
)


def _interleavings(preemptions: int, **params: int) -> tuple[int, list[str]]:
    interleavings.RUNS.clear()
    result = explore_systematic(STEPS, preemptions=preemptions, params=params, budget=10_000)
    assert result.complete and result.failure is None
    return result.schedules, ["".join(run) for run in interleavings.RUNS]


def test_two_threads_of_two_steps_have_2_4_6_schedules_by_preemption_bound() -> None:
    """Threads a and b each take steps x1, x2 with a preemption point between them.

    The 6 interleavings of (a1 a2) and (b1 b2), by preemptions: whoever goes
    first is free (main is blocked); switching at the other's preemption point
    costs 1, switching back costs another; a switch when a thread finishes is
    free. So a1a2b1b2, b1b2a1a2: 0; a1b1b2a2, b1a1a2b2: 1; a1b1a2b2, b1a1b2a2: 2.
    """
    assert _interleavings(0) == (2, ["a1a2b1b2", "b1b2a1a2"])
    count, runs = _interleavings(1)
    assert count == 4 and sorted(runs) == ["a1a2b1b2", "a1b1b2a2", "b1a1a2b2", "b1b2a1a2"]
    count, runs = _interleavings(2)
    assert count == 6 and len(set(runs)) == 6
    assert _interleavings(3)[0] == 6  # nothing needs a third preemption


def test_preemption_bound_0_runs_only_non_preemptive_schedules() -> None:
    """Three threads of one step and no preemption point: every switch happens at a
    thread's end, so all 3! = 6 orders are non-preemptive."""
    count, runs = _interleavings(0, threads=3, steps=1)
    assert count == 6
    assert sorted(runs) == sorted(
        "".join(f"t{i}1" for i in order)
        for order in ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))
    )


@pytest.mark.slow
def test_with_preemptions_enough_every_interleaving_runs_exactly_once() -> None:
    """Three threads of three steps interleave in 9! / (3! 3! 3!) = 1680 ways; six
    preemptions reach all of them (a seventh adds none), and no schedule repeats one."""
    count, runs = _interleavings(6, threads=3, steps=3)
    assert count == len(set(runs)) == 1680
    assert _interleavings(7, threads=3, steps=3)[0] == 1680


def test_a_race_needing_one_preemption_is_absent_at_0_and_found_at_1(tmp_path: Path) -> None:
    clean = explore_systematic(LOST_UPDATE, preemptions=0)
    assert clean.complete and clean.failure is None and clean.schedules == 7
    found = explore_systematic(LOST_UPDATE, preemptions=1, output=tmp_path / "lost.evr")
    assert found.failure == "exception: AssertionError: lost update: counter is 1, not 2"
    assert found.preempted == 1 and not found.complete
    assert found.trace == (tmp_path / "lost.evr").read_bytes()


def test_finds_the_machines_ordering_bug_at_preemption_bound_0(tmp_path: Path) -> None:
    # The vCPU keeping its turn when its wait is already over (no preemption)
    # makes it the longest waiting at t=5 ms, where its I/O timeout and the
    # disk's completion wake together: the first, non-preemptive schedule fails.
    out = tmp_path / "bug.evr"
    result = explore_systematic(MACHINE, preemptions=0, output=out)
    assert (result.schedules, result.failure, result.preempted) == (1, USE_AFTER_FREE, 0)
    assert result.trace_path == out


def test_the_fixed_machine_passes_every_schedule() -> None:
    counts = [
        explore_systematic(MACHINE, preemptions=k, params={"fixed": True}, budget=10_000)
        for k in (2, 3, 4)
    ]
    assert all(r.complete and r.failure is None for r in counts)
    # Past 3 preemptions the bound adds nothing: 128 is every schedule the machine has.
    assert [r.schedules for r in counts] == [74, 128, 128]


def test_two_explorations_give_the_same_count_and_trace_bytes() -> None:
    first = explore_systematic(LOST_UPDATE, preemptions=2)
    second = explore_systematic(LOST_UPDATE, preemptions=2)
    assert first.trace is not None and first.trace == second.trace
    assert first.schedules == second.schedules
    a = explore_systematic(STEPS, preemptions=2)
    b = explore_systematic(STEPS, preemptions=2)
    assert (a.schedules, a.complete, a.max_depth) == (b.schedules, b.complete, b.max_depth)


def test_the_saved_trace_replays_bit_exactly_and_minimizes(tmp_path: Path) -> None:
    out = tmp_path / "lost.evr"
    result = explore_systematic(LOST_UPDATE, preemptions=1, output=out)
    played = play(out)
    assert played.bit_exact is True and played.failure == result.failure
    shrunk = minimize(out, tmp_path / "min.evr")
    assert shrunk.failure == result.failure
    assert play(tmp_path / "min.evr").failure == result.failure
    assert sum(1 for c in decisions_of(tmp_path / "min.evr") if c) <= sum(
        1 for c in decisions_of(out) if c
    )


def test_the_budget_stops_an_incomplete_search() -> None:
    result = explore_systematic(STEPS, preemptions=2, budget=3)
    assert (result.schedules, result.complete, result.failure) == (3, False, None)


def test_a_spinning_thread_is_cut_at_max_decisions() -> None:
    # At bound 0 a thread spinning on yield_now keeps the turn; past the limit the
    # run goes on in FIFO order, the other thread sets the flag, and the run ends.
    result = explore_systematic(
        "tests.scenarios.interleavings:spin", preemptions=0, max_decisions=50
    )
    assert (result.schedules, result.complete, result.cut, result.max_depth) == (2, True, 1, 50)


def test_a_scenario_that_changes_between_runs_is_refused() -> None:
    interleavings.RESTARTS[0] = 0  # the first run starts 3 threads, the second 2
    with pytest.raises(ReplayError) as info:
        explore_systematic("tests.scenarios.interleavings:unstable", preemptions=2)
    assert str(info.value) == (
        "tests.scenarios.interleavings:unstable: schedule 2 did not repeat the run it was "
        "derived from: decision 0 was a THREAD decision among 3 options, now a THREAD "
        "decision among 2 options; the scenario leaks nondeterminism (run `replay "
        "check-determinism` on it)"
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"preemptions": -1}, "the preemption bound must be 0 or more, not -1"),
        ({"budget": 0}, "the schedule budget must be at least 1, not 0"),
    ],
)
def test_bad_bounds_are_refused(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        explore_systematic(STEPS, **kwargs)


def _point(options: int, running: int, choice: int) -> ChoicePoint:
    return ChoicePoint(ChoiceKind.THREAD, options, running, choice)


def test_next_prefix_backtracks_the_deepest_decision_within_the_bound() -> None:
    # Decision 1 ran thread 1 (no preemption); its next option, 0, preempts.
    log = [_point(2, -1, 0), _point(2, 1, 1)]
    assert next_prefix(log, 1) == [0, 0]
    # At bound 0 that option is out of reach, so decision 0 moves on instead.
    assert next_prefix(log, 0) == [1]
    # A decision whose options are all tried is passed over; none left: None.
    assert next_prefix([_point(2, -1, 1), _point(3, 0, 2)], 5) is None
    # Options are tried default first: after the running thread (2), 0 then 1.
    assert next_prefix([_point(3, 2, 2)], 1) == [0]
    assert next_prefix([_point(3, 2, 0)], 1) == [1]
    # Preemptions spent earlier count against the bound.
    assert next_prefix([_point(2, 0, 1), _point(2, 0, 0)], 1) is None
