"""Campaigns: every seed run, failures grouped by signature, one shrunk trace each, any executor."""

from __future__ import annotations

import itertools
import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from pathlib import Path

import pytest

from replay import play
from replay.errors import ReplayError
from replay.explore.campaign import (
    CampaignProgress,
    CampaignResult,
    Stop,
    group_failures,
    run_campaign,
)
from replay.explore.executors import START_METHOD, campaign_executor, process_executor
from replay.explore.seeds import CampaignSpec, SeedOutcome, run_batch
from replay.explore.systematic import explore_systematic
from tests.scenarios.campaign import signature

TWO_BUGS = "tests.scenarios.campaign:two_bugs"
ASYNC_TWO_BUGS = "tests.scenarios.campaign:async_two_bugs"
MACHINE = "examples.minimachine:scenario"
ORDER = signature("AssertionError", "assert queue == sorted(queue)")
STALE = signature("RuntimeError", 'raise RuntimeError("stale read: the writer ran before')
ASYNC_ORDER = signature("AssertionError", "assert done == sorted(done)")
ASYNC_STALE = signature("RuntimeError", 'raise RuntimeError("stale read: the writer job')


def ticking(step: float = 0.0) -> Callable[[], float]:
    """A fake clock: each reading is ``step`` seconds after the last."""
    counter = itertools.count()
    return lambda: next(counter) * step


def campaign(
    spec: CampaignSpec, out: Path, seeds: int = 40, executor: Executor | None = None,
    workers: int = 1, **kwargs: object,
) -> CampaignResult:  # fmt: skip
    return run_campaign(
        spec, seeds=seeds, output=out, clock=ticking(), executor=executor, workers=workers,
        batch=8, **kwargs,  # type: ignore[arg-type]
    )


def fingerprint(result: CampaignResult) -> list[tuple[object, ...]]:
    """What must not depend on the executor: groups, their seeds, and the saved trace bytes."""
    out: list[tuple[object, ...]] = []
    for g in result.groups:
        assert g.shrunk is not None
        out.append((g.signature, g.seeds, g.shrunk.path.name, g.shrunk.path.read_bytes()))
    return out


def test_every_seed_runs_and_each_distinct_failure_is_grouped_shrunk_and_saved(
    tmp_path: Path,
) -> None:
    result = campaign(CampaignSpec(TWO_BUGS, "random"), tmp_path)
    assert result.stop is Stop.DONE and result.ran == 40
    assert [g.signature for g in result.groups] == [ORDER, STALE]
    # Seeds of both groups are disjoint, sorted, and every failing seed is in one.
    seeds = [s for g in result.groups for s in g.seeds]
    assert len(seeds) == len(set(seeds)) == result.failing < 40
    assert all(g.seeds == sorted(g.seeds) and g.first_seed == g.seeds[0] for g in result.groups)
    messages = {
        ORDER: "exception: AssertionError: requests out of order: [1, 0]",
        STALE: "exception: RuntimeError: stale read: the writer ran before the reader cached "
               "the value",
    }
    for g in result.groups:
        assert g.shrunk is not None and g.shrunk.failure == messages[g.signature]
        assert g.shrunk.path.parent.name == "tests.scenarios.campaign-two_bugs"
        assert 1 <= g.shrunk.non_default <= g.shrunk.decisions
        played = play(g.shrunk.path)
        assert played.bit_exact is True and played.failure == messages[g.signature]


def test_an_asyncio_program_campaign_finds_groups_shrinks_and_saves_both_bugs(
    tmp_path: Path,
) -> None:
    result = campaign(CampaignSpec(ASYNC_TWO_BUGS, "random"), tmp_path, seeds=30)
    assert sorted(g.signature for g in result.groups) == [ASYNC_ORDER, ASYNC_STALE]
    for g in result.groups:
        assert g.shrunk is not None and g.shrunk.non_default == 1
        played = play(g.shrunk.path)
        assert played.bit_exact is True and played.failure == g.shrunk.failure


def test_the_order_bug_shrinks_to_one_decision(tmp_path: Path) -> None:
    result = campaign(CampaignSpec(TWO_BUGS, "random"), tmp_path)
    order = result.groups[0]
    assert order.shrunk is not None and order.shrunk.non_default == 1


@pytest.mark.parametrize(
    "chooser", ["pct", pytest.param("hypothesis", marks=pytest.mark.slow), "systematic"]
)
def test_each_chooser_finds_both_bugs(tmp_path: Path, chooser: str) -> None:
    result = campaign(CampaignSpec(TWO_BUGS, chooser, preemptions=1), tmp_path, seeds=24)
    assert sorted(g.signature for g in result.groups) == [ORDER, STALE]
    for g in result.groups:
        assert g.shrunk is not None and play(g.shrunk.path).bit_exact is True


def test_a_correct_machine_has_no_failure_and_nothing_is_saved(tmp_path: Path) -> None:
    result = campaign(CampaignSpec(MACHINE, "random", params={"fixed": True}), tmp_path, seeds=8)
    assert (result.stop, result.ran, result.groups) == (Stop.DONE, 8, [])
    assert list(tmp_path.iterdir()) == []


def test_the_bundled_machine_has_one_failure_found_by_almost_every_seed(tmp_path: Path) -> None:
    result = campaign(CampaignSpec(MACHINE, "random"), tmp_path, seeds=16)
    assert [g.signature for g in result.groups] == ["AssertionError at minimachine.py:131"]
    shrunk = result.groups[0].shrunk
    assert shrunk is not None and "completed after a device reset" in shrunk.failure
    assert shrunk.non_default == 1


def test_systematic_stops_when_the_bounded_tree_is_exhausted(tmp_path: Path) -> None:
    spec = CampaignSpec("tests.scenarios.interleavings:steps", "systematic", preemptions=1)
    whole = explore_systematic(spec.scenario, preemptions=1, budget=10_000)
    assert whole.complete
    result = campaign(spec, tmp_path, seeds=10_000)
    assert (result.stop, result.ran) == (Stop.EXHAUSTED, whole.schedules)


def test_systematic_schedules_are_the_explorers_in_its_order(tmp_path: Path) -> None:
    # The first failing schedule of the chain is the one the explorer stops at.
    spec = CampaignSpec("tests.scenarios.interleavings:lost_update", "systematic", preemptions=2)
    first = explore_systematic(spec.scenario, preemptions=2, budget=1000)
    result = campaign(spec, tmp_path, seeds=first.schedules + 5)
    assert result.groups[0].first_seed == first.schedules - 1


def test_a_time_limit_stops_between_results_and_keeps_them(tmp_path: Path) -> None:
    result = run_campaign(
        CampaignSpec(TWO_BUGS, "random"), seeds=1000, output=tmp_path, clock=ticking(1.0),
        batch=8, time_limit=5.0,
    )  # fmt: skip
    assert result.stop is Stop.TIME_LIMIT and 0 < result.ran < 1000
    assert sum(g.count for g in result.groups) == result.failing
    assert all(g.shrunk is not None for g in result.groups)


def test_an_interrupt_keeps_every_finished_seed_and_saves_its_failures(tmp_path: Path) -> None:
    def interrupt_at_20(progress: CampaignProgress) -> None:
        if progress.done >= 20:
            raise KeyboardInterrupt

    result = campaign(CampaignSpec(TWO_BUGS, "random"), tmp_path, seeds=1000,
                      on_progress=interrupt_at_20)
    assert (result.stop, result.ran) == (Stop.INTERRUPTED, 20)
    full = campaign(CampaignSpec(TWO_BUGS, "random"), tmp_path / "full", seeds=20)
    assert [(g.signature, g.seeds) for g in result.groups] == [
        (g.signature, g.seeds) for g in full.groups
    ]
    assert all(g.shrunk is not None for g in result.groups)


def test_an_interrupt_while_shrinking_keeps_the_groups_unsaved(tmp_path: Path) -> None:
    def interrupt(_: object) -> None:
        raise KeyboardInterrupt

    result = campaign(CampaignSpec(TWO_BUGS, "random"), tmp_path, on_shrink=interrupt)
    assert result.stop is Stop.INTERRUPTED and result.ran == 40
    assert [g.signature for g in result.groups] == [ORDER, STALE]
    assert all(g.shrunk is None for g in result.groups)
    assert result.summary()["failures"][0]["trace"] is None


def test_groups_are_in_first_seed_order_with_seeds_sorted() -> None:
    outcomes = [SeedOutcome(5, "B", 1), SeedOutcome(1, "A", 1), SeedOutcome(3, "B", 1),
                SeedOutcome(0, None, 1), SeedOutcome(2, "A", 1)]
    groups = group_failures(outcomes)
    assert [(g.signature, g.seeds) for g in groups] == [("A", [1, 2]), ("B", [3, 5])]


def test_a_worker_batch_returns_only_seed_signature_and_steps() -> None:
    outcomes = run_batch(CampaignSpec(TWO_BUGS, "random"), 0, 3)
    assert [o.seed for o in outcomes] == [0, 1, 2]
    assert all(o.script is None and o.steps > 0 for o in outcomes)
    assert {o.signature for o in outcomes} <= {None, ORDER, STALE}


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^campaign chooser must be one of random, pct, "
                                         r"hypothesis, systematic, not 'fifo'$"):
        campaign(CampaignSpec(TWO_BUGS, "fifo"), tmp_path)
    with pytest.raises(ValueError, match=r"^seeds, batch and workers must be at least 1 "
                                         r"\(got 0, 8, 1\)$"):
        campaign(CampaignSpec(TWO_BUGS, "random"), tmp_path, seeds=0)


def test_a_seed_that_does_not_fail_again_here_is_said_to_leak_nondeterminism(
    tmp_path: Path,
) -> None:
    from replay.explore.triage import shrink_and_save

    lying = SeedOutcome(0, "ValueError at nowhere.py:1", 10)
    with pytest.raises(ReplayError) as info:
        shrink_and_save(CampaignSpec(TWO_BUGS, "random"), lying, tmp_path)
    assert str(info.value) == (
        f"tests.scenarios.campaign:two_bugs: seed 0 failed with ValueError at nowhere.py:1 in "
        f"a worker, but {ORDER} when run again here; the scenario leaks nondeterminism (run "
        "`replay check-determinism` on it)"
    )


# -- executors ---------------------------------------------------------------------------


def test_the_process_pool_pins_fork_on_linux() -> None:
    if "fork" in multiprocessing.get_all_start_methods():
        assert START_METHOD == "fork"
    pool = process_executor(2)
    try:
        assert pool._mp_context.get_start_method() == START_METHOD
    finally:
        pool.shutdown()


@pytest.fixture(scope="module")
def dask_in_process() -> Iterator[Executor]:
    """A Dask cluster whose one worker is a thread of this process (offline: inproc transport).

    Module-scoped and warmed up with one task, so that the threads Dask keeps
    for the life of the process (its offload pool, the worker's task thread)
    exist before any test's thread-leak guard looks.
    """
    pytest.importorskip("distributed")
    from replay.explore.executors import dask_executor

    with dask_executor(None, 1, processes=False) as (executor, workers):
        assert workers == 1
        assert executor.submit(sum, [1, 2]).result() == 3
        yield executor


@pytest.mark.slow
@pytest.mark.parametrize(("scenario", "chooser", "seeds"), [
    (TWO_BUGS, "random", 64), (TWO_BUGS, "hypothesis", 16), (ASYNC_TWO_BUGS, "random", 64),
])
def test_results_are_identical_with_one_worker_two_processes_and_a_dask_cluster(
    tmp_path: Path, dask_in_process: Executor, scenario: str, chooser: str, seeds: int
) -> None:
    spec = CampaignSpec(scenario, chooser)
    serial = campaign(spec, tmp_path / "serial", seeds=seeds)
    with campaign_executor("process", 2) as (pool, workers):
        pooled = campaign(spec, tmp_path / "pool", seeds, pool, workers)
    dasked = campaign(spec, tmp_path / "dask", seeds, dask_in_process, 1)
    assert len(serial.groups) == 2
    assert fingerprint(serial) == fingerprint(pooled) == fingerprint(dasked)


def test_asking_for_an_unknown_executor_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^unknown executor 'ray': process, dask-local or "
                                         r"tcp://HOST:PORT$"), campaign_executor("ray", 2):
        pass


def test_the_in_process_dask_cluster_connects_to_nothing_beyond_loopback(
    monkeypatch: pytest.MonkeyPatch, dask_in_process: Executor
) -> None:
    import socket

    from replay.explore.executors import dask_executor

    outside: list[object] = []
    connect = socket.socket.connect

    def loopback_only(sock: socket.socket, address: object) -> None:
        if isinstance(address, tuple) and not str(address[0]).startswith("127."):
            outside.append(address)
        connect(sock, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", loopback_only)
    with dask_executor(None, 1, processes=False) as (executor, _):
        assert executor.submit(sum, [2, 3]).result() == 5
    assert outside == []


def test_a_running_cluster_is_reached_by_its_scheduler_address(
    tmp_path: Path, dask_in_process: Executor
) -> None:
    import distributed

    from replay.explore.executors import quiet_dask

    quiet_dask()
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, host="127.0.0.1", protocol="tcp",
        scheduler_port=0, silence_logs=50,
        scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
    ) as cluster:  # fmt: skip
        address = cluster.scheduler_address
        assert address.startswith("tcp://127.0.0.1:")
        with campaign_executor(address, 99) as (executor, workers):
            assert workers == 1  # the cluster's threads, not the option
            remote = campaign(CampaignSpec(TWO_BUGS, "random"), tmp_path / "r", 24, executor,
                              workers)
    local = campaign(CampaignSpec(TWO_BUGS, "random"), tmp_path / "l", 24)
    assert fingerprint(remote) == fingerprint(local)
