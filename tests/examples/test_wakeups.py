"""QEMU's wake-up races (``replay/examples/wakeups.py``): found before their fix, gone after.

Each race follows one QEMU commit and the code it changed:

* eabc977973, "AioContext: fix broken ctx->dispatching optimization": util/async.c
  ``aio_notify`` and util/aio-posix.c ``aio_poll`` (``aio_set_dispatching``);
* 21a03d17f2, "AioContext: fix broken placement of event_notifier_test_and_clear":
  util/aio-posix.c ``aio_poll`` (and QEMU's own model of it,
  docs/spin/aio_notify_bug.promela);
* 924fe1293c, "aio: fix qemu_bh_schedule() bh->ctx race condition": async.c
  ``qemu_bh_schedule``.

The budgets below are what each explorer is given; the pre-fix variant must
fail within it, the failing trace must replay bit for bit to the same failure,
and the fixed variant must pass the very same budget (the systematic explorer
exhausting every schedule within its preemption bound). What was measured
when they were set (runs until the first failure, all deterministic):

==================  ==========  =================  ==========================  ===========
race                random      PCT depth 3,       hypothesis (derandomized)   systematic
                                horizon 15                                     K=2
==================  ==========  =================  ==========================  ===========
dispatching         2           4                  247 calls                   2
test_and_clear      92          250                368 calls                   9
bh_ctx              2           1                  60 calls                    26
==================  ==========  =================  ==========================  ===========

The fixed variants' whole K=2 trees: 1974 schedules (the two notify races
share their fixed protocol) and 138 (``bh_ctx``).
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, find, settings
from hypothesis.errors import NoSuchExample

from evloop import Simulation
from replay.api import play, record
from replay.declared import declare_scenario
from replay.examples import wakeups
from replay.explore.fuzz import fuzz
from replay.explore.hypothesis import SimulationRun, simulations
from replay.explore.systematic import explore_systematic

RACES = ("dispatching_race", "test_and_clear_race", "bh_ctx_race")
#: The failure each pre-fix variant must end in.
FAILURES = {
    "dispatching_race": "AssertionError: lost wake-up: ",
    "test_and_clear_race": "AssertionError: lost wake-up: request 0 not done",
    "bh_ctx_race": "AssertionError: use after free: qemu_bh_schedule read bh->ctx",
}

#: The budgets (runs, examples, schedules) every explorer gets.
RANDOM_RUNS = 200
PCT = "pct:3:15"  # depth 3, change points among the first 15 decisions
PCT_RUNS = 400
HYPOTHESIS_EXAMPLES = 300
SYSTEMATIC_K = 2
SYSTEMATIC_SCHEDULES = 100  # for a pre-fix variant; a fixed one must exhaust its tree


def _spec(name: str) -> str:
    spec = f"replay.examples.wakeups:{name}"
    declare_scenario(spec)
    return spec


def _replays_to(path: Path, failure: str) -> None:
    """The saved trace plays bit for bit and ends in the same failure."""
    played = play(path)
    assert played.bit_exact is True
    assert played.failure == failure


@pytest.mark.parametrize("name", RACES)
def test_fifo_order_never_hits_a_race(name: str) -> None:
    # QEMU's own order (option 0 everywhere: no preemption at a point) is clean
    # before the fix too: each race needs a thread to lose the turn mid-primitive.
    for fixed in (False, True):
        result = record(_spec(name), io.BytesIO(), params={"fixed": fixed})
        assert result.failure is None
        assert result.decisions > 0


@pytest.mark.parametrize("name", RACES)
def test_without_fine_preemption_no_schedule_reaches_a_race(name: str) -> None:
    # The turns alone (threads switch only where they wait) cannot reach any
    # of the three: every schedule within two preemptions passes.
    result = explore_systematic(
        _spec(name), preemptions=SYSTEMATIC_K, budget=5000, params={"preemption": "off"}
    )
    assert result.complete and not result.found


@pytest.mark.parametrize("name", RACES)
@pytest.mark.parametrize(("chooser", "runs"), [("random", RANDOM_RUNS), (PCT, PCT_RUNS)])
def test_random_and_pct_find_the_race_and_pass_its_fix(
    name: str, chooser: str, runs: int, tmp_path: Path
) -> None:
    spec = _spec(name)
    output = tmp_path / "f.evr"
    found = fuzz(spec, runs=runs, chooser=chooser, params={"fixed": False}, output=output)
    assert found.found and found.runs <= runs
    assert found.failure is not None and FAILURES[name] in found.failure
    assert found.trace_path is not None
    _replays_to(found.trace_path, found.failure)
    fixed = fuzz(spec, runs=runs, chooser=chooser, params={"fixed": True})
    assert not fixed.found and fixed.runs == runs


def _hypothesis_find(spec: str, fixed: bool) -> SimulationRun:
    return find(
        simulations(spec, params={"fixed": fixed}, seed=0, failure_dir=None),
        lambda run: run.failure is not None,
        settings=settings(
            max_examples=HYPOTHESIS_EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", RACES)
def test_hypothesis_finds_the_race_and_passes_its_fix(name: str, tmp_path: Path) -> None:
    spec = _spec(name)
    run = _hypothesis_find(spec, fixed=False)
    assert run.failure is not None and FAILURES[name] in run.failure
    # Shrunk towards QEMU's order: a handful of decisions are not option 0.
    assert 0 < run.non_default <= 8
    _replays_to(run.save(tmp_path / "h.evr"), run.failure)
    with pytest.raises(NoSuchExample):
        _hypothesis_find(spec, fixed=True)


@pytest.mark.slow
@pytest.mark.parametrize("name", RACES)
def test_systematic_finds_the_race_and_exhausts_its_fix(name: str, tmp_path: Path) -> None:
    spec = _spec(name)
    found = explore_systematic(
        spec, preemptions=SYSTEMATIC_K, budget=SYSTEMATIC_SCHEDULES, params={"fixed": False},
        output=tmp_path / "s.evr",
    )  # fmt: skip
    assert found.found and found.schedules <= SYSTEMATIC_SCHEDULES
    assert found.failure is not None and FAILURES[name] in found.failure
    assert 1 <= found.preempted <= SYSTEMATIC_K
    assert found.trace_path is not None
    _replays_to(found.trace_path, found.failure)
    fixed = explore_systematic(spec, preemptions=SYSTEMATIC_K, budget=5000, params={"fixed": True})
    assert fixed.complete and not fixed.found


def test_the_bh_ctx_race_is_a_use_after_free_of_the_bh_not_a_lost_wakeup() -> None:
    # 924fe1293c: the BH ran and was freed between bh->scheduled = 1 and the read
    # of bh->ctx: one preemption of the worker, right after it set bh->scheduled.
    found = explore_systematic(_spec("bh_ctx_race"), preemptions=1, budget=100)
    assert found.found and found.preempted == 1
    assert found.failure is not None and "'request 1' after aio_bh_poll ran and freed it" in (
        found.failure
    )


def test_the_model_context_refuses_an_unknown_protocol() -> None:
    with (
        Simulation() as sim,
        pytest.raises(ValueError, match="protocol must be 'dispatching' or 'notify_me', not 'x'"),
    ):
        wakeups.Context2015(sim, protocol="x")


@pytest.mark.slow
def test_todays_loop_passes_the_same_exploration() -> None:
    # evloop's own AioContext (util/async.c and util/aio-posix.c as of QEMU 10.2:
    # notified/notify_me, aio_notify_accept, one poller per context) with fine
    # preemption: no explorer finds a lost wake-up or a use after free.
    spec = _spec("today")
    assert not fuzz(spec, runs=RANDOM_RUNS, chooser="random").found
    assert not fuzz(spec, runs=PCT_RUNS, chooser=PCT).found
    every = explore_systematic(spec, preemptions=1, budget=5000, params={"requests": 1})
    assert every.complete and not every.found and every.schedules > 100
