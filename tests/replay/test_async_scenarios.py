"""Coroutine scenarios (``replay/scenario.py``'s ``start_scenario``): ``async def main()`` and
``async def scenario(sim)`` record, play, fuzz and check as any scenario does."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, find, settings

from replay import play, record
from replay.cli.main import main
from replay.explore.fuzz import fuzz
from replay.explore.hypothesis import SimulationRun, simulations
from replay.explore.systematic import explore_systematic
from replay.scenario import ASYNCIO_THREAD, load_scenario, takes_simulation
from tests.scenarios import async_scenarios

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = "tests.scenarios.async_scenarios"
CACHE = "replay.examples.cache_service:main"


def test_a_coroutine_function_takes_the_simulation_only_with_a_positional_parameter() -> None:
    assert not takes_simulation(async_scenarios.echo)  # async def echo(*, rounds=2)
    assert takes_simulation(async_scenarios.with_sim)
    assert takes_simulation(async_scenarios.returns_coroutine)  # a plain function always does
    assert not takes_simulation(load_scenario(CACHE))


def test_an_async_main_records_and_plays_bit_exactly(tmp_path: Path) -> None:
    trace = tmp_path / "echo.evr"
    recorded = record(f"{SCENARIOS}:echo", trace, params={"rounds": 3})
    assert recorded.failure is None and recorded.reason == "idle"
    seen = list(async_scenarios.OBSERVED)
    assert seen == [(b"PING 0\n", 250_000_000), (b"PING 1\n", 500_000_000),
                    (b"PING 2\n", 750_000_000)]
    assert recorded.time_ns == 750_000_000
    played = play(trace)
    assert played.bit_exact and played.failure is None
    assert seen == async_scenarios.OBSERVED


def test_an_async_scenario_taking_the_simulation_runs_on_its_clock(tmp_path: Path) -> None:
    recorded = record(f"{SCENARIOS}:with_sim", tmp_path / "t.evr", params={"sleeps": 2})
    assert recorded.failure is None
    assert async_scenarios.OBSERVED == [1_000_000, 2_000_000]
    assert play(tmp_path / "t.evr").bit_exact


def test_a_plain_scenario_may_return_the_coroutine_to_run(tmp_path: Path) -> None:
    steps: list[str] = []
    recorded = record(f"{SCENARIOS}:returns_coroutine", tmp_path / "t.evr")
    assert recorded.failure is None
    assert async_scenarios.OBSERVED == [("thread", 0), ("coroutine", 2_000_000_000)]
    play(tmp_path / "t.evr", on_step=lambda event: steps.append(event.thread))
    assert ASYNCIO_THREAD in steps and "beside" in steps


def test_what_an_async_scenario_raises_is_a_finding_that_replays(tmp_path: Path) -> None:
    trace = tmp_path / "fail.evr"
    recorded = record(f"{SCENARIOS}:failing", trace, params={"after": 1.5})
    assert recorded.failure == "exception: RuntimeError: failed at 1.5"
    assert recorded.time_ns == 1_500_000_000
    played = play(trace)
    assert played.bit_exact
    assert played.failure == recorded.failure


def test_the_readme_service_fails_only_off_fifo_and_its_fix_never(tmp_path: Path) -> None:
    assert record(CACHE, tmp_path / "fifo.evr").failure is None
    found = fuzz(CACHE, runs=50, output=tmp_path / "bug.evr")
    assert found.failure == (
        "exception: AssertionError: stale cache: GET x answers b'1', the store holds b'2'"
    )
    played = play(tmp_path / "bug.evr")
    assert played.bit_exact and played.failure == found.failure
    fixed = explore_systematic(CACHE, params={"fixed": True}, preemptions=1, budget=2_000)
    assert fixed.complete and fixed.failure is None and fixed.schedules > 10


def test_hypothesis_draws_the_decisions_of_an_async_scenario(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always", ResourceWarning)
        failing = find(
            simulations(CACHE, seed=0, failure_dir=None),
            lambda run: run.failure is not None,
            settings=settings(max_examples=200, database=None,
                              suppress_health_check=list(HealthCheck)),
        )
        assert isinstance(failing, SimulationRun)
        assert "stale cache" in str(failing.failure)
        del failing
        gc.collect()
    # A run hypothesis ends in the middle (its draws ran out inside the loop) is
    # abandoned whole: asyncio.run's cleanup takes no decision, its streams are
    # closed, its tasks are not reported as destroyed while pending.
    assert [str(w.message) for w in warned] == []
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []


def test_params_of_an_async_main_are_checked_without_the_simulation(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = main(["record", CACHE, "--param", "clients=3", "-o", str(tmp_path / "t.evr")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "replay: error: --param: scenario 'replay.examples.cache_service:main' does not accept "
        "these (got an unexpected keyword argument 'clients'); it takes: fixed"
    )
    assert main(["record", CACHE, "--param", "fixed=True", "-o", str(tmp_path / "t.evr")]) == 0


def test_the_bundled_scenarios_list_the_async_service_and_its_parameter(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["scenarios"]) == 0
    out = capsys.readouterr().out
    assert (
        "replay.examples.cache_service:main\n"
        "    Two clients race a GET and a SET of one key; a later GET must see the store's value.\n"
        "    params: fixed=False\n"
    ) in out


def _replay(hash_seed: int, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONHASHSEED": str(hash_seed), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "replay", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_async_traces_are_the_same_bytes_and_replay_under_other_hash_seeds(
    tmp_path: Path,
) -> None:
    a, b = tmp_path / "a.evr", tmp_path / "b.evr"
    for hash_seed, trace in ((1, a), (2, b)):
        done = _replay(hash_seed, "record", CACHE, "--chooser", "random:3", "-o", str(trace))
        assert done.returncode == 1, done.stderr  # random:3 finds the stale cache
    assert a.read_bytes() == b.read_bytes()
    for hash_seed in (2, 3):
        done = _replay(hash_seed, "play", str(a))
        assert done.returncode == 1, done.stdout + done.stderr  # a trace of a failure
        assert "replays to the same failure" in done.stdout and "bit-exact" in done.stdout


@pytest.mark.slow
def test_check_determinism_catches_tasks_woken_in_the_order_of_a_set(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    scenario = f"{SCENARIOS}:woken_in_set_order"
    code = main(["check-determinism", scenario, "--runs", "3", "--keep", str(tmp_path / "k")])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "NOT deterministic: run 1 (PYTHONHASHSEED=1) and run 2 (PYTHONHASHSEED=2) differ" in out
    assert "worker-" in out  # the steps show the workers woken in another order
    code = main(["check-determinism", scenario, "--runs", "3", "--param", "ordered=True",
                 "--keep", str(tmp_path / "ok")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.splitlines()[-1] == f"deterministic: 3 runs of {scenario} (seed 0) recorded " \
        "identical traces and steps"


@pytest.mark.slow
def test_a_campaign_groups_the_async_services_failures_under_one_signature(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = main(["campaign", CACHE, "--seeds", "20", "--workers", "1", "-o", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "20 seeds" in out and "1 distinct failure" in out
    assert "AssertionError at cache_service.py:" in out
    traces = list(tmp_path.rglob("*.evr"))
    assert len(traces) == 1
    assert play(traces[0]).bit_exact
