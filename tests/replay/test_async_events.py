"""The async-event queue (opt-in): QEMU's ``replay/replay-events.c``, recorded and obeyed.

Each test names the QEMU function whose behaviour it checks.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from evloop import BHFlags, Simulation
from replay import EventKind, ReplayDivergence, TraceReader, play, record
from replay.cli.main import main
from replay.trace.writer import TraceWriter
from tests.helpers import assert_same_run, records_of
from tests.scenarios import async_events

SCENARIO = "tests.scenarios.async_events:scenario"
ASYNC = EventKind.ASYNC_EVENT
Record = tuple[Any, ...]


def async_records(path: Path) -> list[Record]:
    return [r for r in records_of(path) if r[0] == ASYNC]


def rewrite(path: Path, out: Path, records: list[Record], **extensions: object) -> Path:
    """``records`` written under ``path``'s header (``extensions`` changed: None drops one)."""
    with TraceReader(path) as reader:
        header = reader.header
    ext = dict(header.extensions)
    for key, value in extensions.items():
        if value is None:
            ext.pop(key, None)
        else:
            ext[key] = value
    with TraceWriter(out, dataclasses.replace(header, extensions=ext)) as writer:
        for rec in records:
            writer.write(rec)
    return out


@pytest.fixture
def queued(tmp_path: Path) -> Path:
    path = tmp_path / "queued.evr"
    result = record(SCENARIO, path, async_events="queue")
    assert result.failure is None
    return path


def flags_at_schedule(mode: str) -> tuple[bool, bool]:
    """Whether a BH is pending right after ``schedule`` from a worker, and from its own thread."""
    sim = Simulation(async_events=mode)  # type: ignore[arg-type]
    ctx = sim.main_loop.aio_context
    from_worker = ctx.bh_new(lambda: None, name="from-worker")
    own = ctx.bh_new(lambda: None, name="own")
    seen: dict[str, bool] = {}

    def worker() -> None:
        from_worker.schedule()
        seen["worker"] = BHFlags.PENDING in from_worker.flags

    def main_side() -> None:
        own.schedule()
        seen["own"] = BHFlags.PENDING in own.flags

    sim.thread("worker", worker)
    sim.main_loop.timer_new_ns(1, main_side, name="main-side").mod_ns(1000)
    sim.run()
    assert BHFlags.PENDING not in from_worker.flags  # released and run by the end
    return seen["worker"], seen["own"]


def test_a_bh_scheduled_from_another_thread_is_queued_not_scheduled() -> None:
    """replay_bh_schedule_event -> replay_add_event: queued while events are enabled;
    a BH scheduled by its own context's thread is scheduled at once, as without the queue."""
    assert flags_at_schedule("queue") == (False, True)
    assert flags_at_schedule("off") == (True, True)


def test_queued_bhs_run_only_after_their_checkpoint_in_the_logged_order(queued: Path) -> None:
    """replay_save_events: at the checkpoint each queued event is logged, oldest first
    (sequence 0, 1, ...), then released; oneshot BHs too (replay_bh_oneshot_event), and a
    BH the main thread schedules on an IOThread's context."""
    logged = async_records(queued)
    assert [r[2] for r in logged] == list(range(len(logged)))
    names = [r[3] for r in logged]
    assert names[:5] == [
        "aio-context:w1", "aio-context:w1-once", "aio-context:w2", "aio-context:w2-once",
        "aio-context:w1",
    ]
    assert "io0:io" in names
    # Each BH runs after the step its release was logged at, never before.
    released: dict[str, list[int]] = {}
    for r in logged:
        released.setdefault(r[3].split(":", 1)[1], []).append(r[1])
    assert "own" not in released  # the main thread's own BH: never queued
    ran = [(name, step) for name, step in async_events.RAN if name != "own"]
    for name, step in ran:
        assert released[name], name
        assert released[name][0] < step, (name, step)
        released[name].pop(0)
    assert all(not released[name] for name, _ in ran)


def test_a_queued_run_replays_bit_exactly(tmp_path: Path) -> None:
    """replay_read_events releases each event when the log says it is next."""
    path = tmp_path / "queued.evr"
    recorded = record(SCENARIO, path, async_events="queue")
    first = list(async_events.RAN)
    assert_same_run(recorded, play(path))
    assert first == async_events.RAN


def test_an_edited_event_order_diverges_at_that_event(queued: Path, tmp_path: Path) -> None:
    """replay_read_events: the log's next event must be the queue's next one."""
    records = records_of(queued)
    i = next(k for k, r in enumerate(records) if r[0] == ASYNC and r[3] == "aio-context:w2")
    assert records[i + 1][3] == "aio-context:w2-once" and records[i][1] == records[i + 1][1]
    records[i], records[i + 1] = records[i + 1], records[i]
    forged = rewrite(queued, tmp_path / "swapped.evr", records)
    with pytest.raises(ReplayDivergence) as info:
        play(forged)
    err = info.value
    step = records[i][1]
    assert err.expected == f"ASYNC_EVENT(step={step}, sequence=3, name='aio-context:w2-once')"
    assert err.actual == (
        f"ASYNC_EVENT(step={records[i][1]}, sequence=2, name='aio-context:w2') released"
    )


def test_a_missing_event_is_a_divergence_naming_it(queued: Path, tmp_path: Path) -> None:
    records = records_of(queued)
    i = next(k for k, r in enumerate(records) if r[0] == ASYNC and r[3] == "io0:io")
    del records[i]
    forged = rewrite(queued, tmp_path / "missing.evr", records)
    with pytest.raises(ReplayDivergence) as info:
        play(forged)
    assert "name='io0:io') released" in info.value.actual


def test_a_queued_trace_played_without_the_queue_diverges(queued: Path, tmp_path: Path) -> None:
    stripped = rewrite(
        queued, tmp_path / "stripped.evr", records_of(queued), **{"run.async_events": None}
    )
    with pytest.raises(ReplayDivergence) as info:
        play(stripped)
    assert info.value.expected.startswith("ASYNC_EVENT(")


def test_default_off_logs_no_event_and_no_header_field(tmp_path: Path) -> None:
    """Off by default (QEMU's events_enabled false): BHs are scheduled directly."""
    off = tmp_path / "off.evr"
    assert record(SCENARIO, off).failure is None
    with TraceReader(off) as reader:
        assert "run.async_events" not in reader.header.extensions
    assert async_records(off) == []
    on = tmp_path / "on.evr"
    assert record(SCENARIO, on, async_events="queue").failure is None
    with TraceReader(on) as reader:
        assert reader.header.extensions["run.async_events"] == "queue"


def test_the_queue_does_not_combine_with_fine_preemption(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="async_events='queue' does not combine with"):
        Simulation(async_events="queue", preemption="fine")
    with pytest.raises(ValueError, match="async_events must be 'off' or 'queue', not 'yes'"):
        Simulation(async_events="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="does not combine"):
        record(SCENARIO, tmp_path / "x.evr", async_events="queue", preemption="fine")


def test_the_cli_records_and_plays_a_queued_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "cli.evr"
    assert main(["record", SCENARIO, "--async-events", "queue", "-o", str(path)]) == 0
    assert async_records(path)
    capsys.readouterr()
    assert main(["play", str(path)]) == 0
    assert "bit-exact" in capsys.readouterr().out
    bad = rewrite(path, tmp_path / "bad.evr", records_of(path), **{"run.async_events": "yes"})
    assert main(["play", str(bad)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"replay: error: {bad}: header field run.async_events must be \"queue\" (absent when "
        "off), not 'yes'"
    ]
    assert main(["record", SCENARIO, "--async-events", "queue", "--preemption", "fine"]) == 2
    assert capsys.readouterr().err.strip() == (
        "replay: error: --async-events queue does not combine with --preemption fine"
    )
