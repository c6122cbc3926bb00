"""Tests for replay.driver: the one record/play driver, driven directly."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from evloop import FifoChooser, Simulation
from replay import EventKind, TraceReader, play
from replay.driver import (
    BlockerPlug,
    begin_recording,
    finish_recording,
    new_header,
    run_limits,
    simulation_options,
)
from replay.session import Recorder
from replay.trace.writer import TraceWriter

SEEN: list[dict[str, Any]] = []


def remembers_params(sim: Simulation, **params: Any) -> None:
    SEEN.append(params)
    sim.main_loop.aio_context.bh_schedule_oneshot(lambda: None, name="once")


def test_the_header_carries_the_run_limits_and_play_can_stop_earlier() -> None:
    header = new_header("m:f", seed=3, until_ns=500, max_steps=40, checkpoint_interval=8)
    assert (header.scenario, header.seed, header.chooser) == ("m:f", 3, "fifo")
    assert run_limits(header) == (500, 40, 8)
    assert run_limits(header, until_step=10) == (500, 10, 8)
    assert run_limits(header, until_step=99) == (500, 40, 8)
    unbounded = new_header("m:f")
    assert run_limits(unbounded, until_step=7) == (None, 7, 1024)
    assert simulation_options(header, None) == {
        "checkpoint_interval": 8, "recent": 32, "log": False,
    }
    assert "run.sanitize" not in unbounded.extensions  # unset: no bytes for it


def _build(header: Any) -> Any:
    def build(writer: TraceWriter) -> tuple[Recorder, Simulation, BlockerPlug | None]:
        sim = Simulation(header.seed, chooser=FifoChooser(), **simulation_options(header))
        return Recorder(writer), sim, None

    return build


def test_a_recording_hands_the_scenario_the_header_s_parameters(tmp_path: Path) -> None:
    SEEN.clear()
    path = tmp_path / "t.evr"
    scenario = f"{__name__}:remembers_params"
    header = new_header(scenario, params={"b": [1, [2]], "a": "x"})
    result = finish_recording(begin_recording(path, header, _build(header)), remembers_params)
    assert SEEN == [{"a": "x", "b": (1, (2,))}]  # as the trace stores them, and play passes them
    assert (result.path, result.steps, result.failure) == (str(path), 1, None)
    assert play(path).bit_exact is True
    assert SEEN[1] == SEEN[0]


def test_a_recording_that_cannot_be_built_leaves_an_incomplete_trace() -> None:
    out = io.BytesIO()
    header = new_header("m:f")
    built: list[Simulation] = []

    def build(writer: TraceWriter) -> tuple[Recorder, Simulation, BlockerPlug | None]:
        sim = Simulation(0)
        built.append(sim)
        raise RuntimeError("cannot build")

    with pytest.raises(RuntimeError, match=r"^cannot build$"):
        begin_recording(out, header, build)
    with TraceReader(io.BytesIO(out.getvalue()), strict=False) as reader:
        assert list(reader) == []
        assert reader.complete is False
    assert len(built) == 1
    built[0].close()


def test_a_scenario_that_raises_is_a_finding_kept_in_a_whole_trace(tmp_path: Path) -> None:
    path = tmp_path / "t.evr"
    header = new_header("m:f")

    def fails(sim: Simulation) -> None:
        raise ValueError("found it")

    result = finish_recording(begin_recording(path, header, _build(header)), fails)
    assert (result.reason, result.failure) == ("failure", "exception: ValueError: found it")
    assert isinstance(result.exception, ValueError)
    with TraceReader(path) as reader:
        records = list(reader)
        assert reader.complete is True
    assert [r[0] for r in records[-2:]] == [EventKind.SHUTDOWN, EventKind.CHECKPOINT]
    assert records[-2][2] == "exception: ValueError: found it"
