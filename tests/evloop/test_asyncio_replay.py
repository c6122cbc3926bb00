"""Asyncio programs under the replay layer: recorded, played bit-exactly, divergence caught."""

from __future__ import annotations

from pathlib import Path

import pytest

from replay import ReplayDivergence, play, record
from tests.scenarios import asyncio_service

SCENARIO = "tests.scenarios.asyncio_service"


def test_an_asyncio_program_records_and_plays_bit_exactly(tmp_path: Path) -> None:
    trace = tmp_path / "race.evr"
    recorded = record(f"{SCENARIO}:executor_race", trace, chooser="random:4")
    assert recorded.failure is None
    seen = list(asyncio_service.OBSERVED)
    assert seen[-1][0] == "done"
    result = play(trace)
    assert result.bit_exact
    assert seen == asyncio_service.OBSERVED


def test_the_executor_order_bug_is_found_and_replays_as_the_same_failure(tmp_path: Path) -> None:
    clean = record(f"{SCENARIO}:executor_race", tmp_path / "fifo.evr", params={"check": True})
    assert clean.failure is None  # asyncio's own order: submission order
    for seed in range(1, 20):
        trace = tmp_path / f"seed{seed}.evr"
        found = record(f"{SCENARIO}:executor_race", trace, chooser=f"random:{seed}",
                       params={"check": True})
        if found.failure is not None:
            break
    else:
        pytest.fail("no seed found the out-of-order completion")
    assert "jobs completed out of order" in str(found.failure)
    replayed = play(trace)
    assert replayed.bit_exact
    assert str(replayed.failure) == str(found.failure)


def test_a_changed_program_diverges_from_its_trace(tmp_path: Path) -> None:
    trace = tmp_path / "ties.evr"
    assert record(f"{SCENARIO}:executor_race", trace, chooser="random:2").failure is None
    original = asyncio_service.executor_race

    def changed(sim: object, *, jobs: int = 3, check: bool = False) -> None:
        original(sim, jobs=jobs + 1, check=check)  # type: ignore[arg-type]

    asyncio_service.executor_race = changed  # type: ignore[assignment]
    try:
        with pytest.raises(ReplayDivergence):
            play(trace)
    finally:
        asyncio_service.executor_race = original
