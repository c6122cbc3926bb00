"""replay.record routes real time and randomness to the simulation by default, and play follows.

A scenario that calls the global ``random`` or a ``time`` bound by ``from time
import time`` records under any chooser and replays bit-exactly;
``sanitize=False`` (``--no-sanitize``) turns it off, and a trace without the
setting (recorded before it was the default) plays without it.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, find, settings

from evloop.loop.clock import HOST_EPOCH_NS
from replay import TraceReader, play, record
from replay.cli.main import main
from replay.explore.fuzz import fuzz
from replay.hypothesis import simulations
from tests.helpers import assert_same_run
from tests.scenarios import ambient

GLOBAL_RANDOM = "tests.scenarios.ambient:global_random"
BOUND_TIME = "tests.scenarios.ambient:bound_time"
HOST_EPOCH_S = HOST_EPOCH_NS / 1_000_000_000
CORPUS = Path(__file__).resolve().parents[2] / "traces"


def sanitize_of(path: Path) -> object:
    with TraceReader(path) as reader:
        return reader.header.extensions.get("run.sanitize")


@pytest.mark.parametrize("scenario", [GLOBAL_RANDOM, BOUND_TIME])
@pytest.mark.parametrize("chooser", ["fifo", "random:3", "pct:5"])
def test_a_scenario_reading_the_host_records_and_replays_bit_exactly(
    tmp_path: Path, scenario: str, chooser: str
) -> None:
    path = tmp_path / "t.evr"
    recorded = record(scenario, path, seed=11, chooser=chooser)
    seen = list(ambient.SEEN)
    assert sanitize_of(path) is True
    played = play(path)
    assert_same_run(recorded, played)
    assert seen == ambient.SEEN  # the scenario read the same values again


def test_bound_time_reads_the_simulations_clock_by_default(tmp_path: Path) -> None:
    record(BOUND_TIME, tmp_path / "t.evr")
    stamps = [value for what, value in ambient.SEEN if what.endswith(" time")]
    assert stamps and all(HOST_EPOCH_S <= s < HOST_EPOCH_S + 1 for s in stamps)


def test_sanitize_false_leaves_the_host_alone_and_says_so_in_no_header(tmp_path: Path) -> None:
    path = tmp_path / "t.evr"
    before = time.time()
    record(BOUND_TIME, path, sanitize=False)
    stamps = [value for what, value in ambient.SEEN if what.endswith(" time")]
    assert stamps and all(s >= before for s in stamps)  # the real clock
    assert sanitize_of(path) is None


def test_the_global_random_scenario_found_by_hypothesis_replays(tmp_path: Path) -> None:
    out = tmp_path / "found.evr"
    result = fuzz(GLOBAL_RANDOM, runs=200, chooser="hypothesis", params={"limit": 20},
                  output=out)
    assert result.found and result.failure is not None and "AssertionError" in result.failure
    played = play(out)
    assert played.bit_exact and played.failure == result.failure


def test_the_strategy_routes_the_global_random_so_its_runs_replay(tmp_path: Path) -> None:
    run = find(
        simulations(GLOBAL_RANDOM, params={"limit": 20}, failure_dir=None),
        lambda r: r.failure is not None,
        settings=settings(database=None, deadline=None, suppress_health_check=list(HealthCheck)),
    )
    path = run.save(tmp_path / "run.evr")
    played = play(path)
    assert played.bit_exact and played.failure == run.failure


def test_without_the_sanitizer_a_global_random_run_does_not_replay(tmp_path: Path) -> None:
    # What routing fixes: the unrouted draws come from the host, so a play draws others.
    results = []
    for n in range(5):
        path = tmp_path / f"t{n}.evr"
        record(GLOBAL_RANDOM, path, chooser="random:1", sanitize=False)
        try:
            results.append(play(path).bit_exact)
        except Exception as exc:  # a divergence
            results.append(type(exc).__name__)
    assert results != [True] * 5


def test_record_and_fuzz_take_no_sanitize_on_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    routed, plain = tmp_path / "routed.evr", tmp_path / "plain.evr"
    assert main(["record", BOUND_TIME, "--chooser", "random:2", "-o", str(routed)]) == 0
    assert main(["play", str(routed)]) == 0
    assert main(["record", BOUND_TIME, "--no-sanitize", "-o", str(plain)]) == 0
    assert (sanitize_of(routed), sanitize_of(plain)) == (True, None)
    out = tmp_path / "fuzzed.evr"
    args = ["fuzz", GLOBAL_RANDOM, "--chooser", "hypothesis", "--runs", "200",
            "--param", "limit=20", "-o", str(out)]
    assert main(args) == 1
    assert sanitize_of(out) is True
    assert main(["play", str(out)]) == 1  # replays to the same failure, bit-exact
    assert "bit-exact" in capsys.readouterr().out
    # Unrouted, the scenario's clock is the host's: no failure to find, nothing saved.
    unrouted = tmp_path / "f2.evr"
    assert main(["fuzz", BOUND_TIME, "--runs", "2", "--no-sanitize", "-o", str(unrouted)]) == 0
    assert not unrouted.exists()
    stamps = [value for what, value in ambient.SEEN if what.endswith(" time")]
    assert stamps and all(s > HOST_EPOCH_S + 10**8 for s in stamps)


def test_the_corpus_records_no_sanitizer_and_plays_without_one() -> None:
    # Traces recorded before routing was the default (versions 1 and 2, kept
    # byte for byte) say nothing: they play as recorded. The version 3 corpus,
    # recorded since, says it was routed, and plays routed.
    traces = sorted(CORPUS.rglob("*.evr"))
    assert traces
    for path in traces:
        routed = path.parent.name == "v3"
        assert sanitize_of(path) is (True if routed else None), path
        assert play(path).bit_exact, path
