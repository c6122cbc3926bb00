"""Tests for replay.tools.perfetto: a replayed run as Chrome trace-event JSON.

A small validator of the format's rules (the JSON Object Format of the Trace
Event Format, as ui.perfetto.dev and chrome://tracing read it) checks every
export; the other tests check that the tracks, slices, instants and counters
are the run's.
"""

from __future__ import annotations

import io
import itertools
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from evloop import DispatchEvent
from replay import play, record
from replay.tools.export import export
from replay.tools.perfetto import STEP_DURATION_NS, Timeline, export_perfetto

MACHINE = "examples.minimachine:scenario"
WORKLOADS = "tests.scenarios.workloads"

#: Phases this exporter may write, and what each needs besides ph/ts/pid/tid.
PHASES: dict[str, set[str]] = {"X": {"name", "dur"}, "i": {"name", "s"}, "C": {"name", "args"},
                               "M": {"name", "args"}}


def validate(document: Any) -> list[dict[str, Any]]:
    """Check a Chrome trace-event JSON object; return its events."""
    assert isinstance(document, dict)
    assert document.get("displayTimeUnit") in (None, "ms", "ns")
    events = document["traceEvents"]
    assert isinstance(events, list) and events
    named: dict[int, str] = {}
    for event in events:
        assert isinstance(event, dict)
        ph = event["ph"]
        assert ph in PHASES, ph
        for key in ("ts", "pid", "tid"):
            assert key in event, (key, event)
        assert isinstance(event["ts"], int | float) and not isinstance(event["ts"], bool)
        assert event["ts"] >= 0
        assert isinstance(event["pid"], int) and isinstance(event["tid"], int)
        for key in PHASES[ph]:
            assert key in event, (key, event)
        if ph == "X":
            assert isinstance(event["dur"], int | float) and event["dur"] > 0
        if ph == "i":
            assert event["s"] in ("g", "p", "t")
        if ph == "C":
            assert event["args"] and all(isinstance(v, int | float) for v in event["args"].values())
        if ph == "M" and event["name"] == "thread_name":
            assert event["tid"] not in named, "one thread_name per tid"
            named[event["tid"]] = event["args"]["name"]
    for event in events:
        if event["ph"] == "X":
            assert event["tid"] in named, "every slice is on a named thread track"
    assert len(set(named.values())) == len(named), "one track per thread"
    return list(events)


def export_doc(path: Path, timeline: str = "virtual") -> tuple[dict[str, Any], str]:
    out = io.StringIO()
    export_perfetto(path, out, timeline=timeline)
    text = out.getvalue()
    return json.loads(text), text


def thread_names(events: list[dict[str, Any]]) -> dict[int, str]:
    return {
        e["tid"]: e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"
    }


@pytest.fixture(params=[(MACHINE, "fifo"), (MACHINE, "random:3"),
                        (f"{WORKLOADS}:threaded", "random:5"), (f"{WORKLOADS}:console", "fifo")],
                ids=["machine", "machine-random", "threaded", "console"])
def trace(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    spec, chooser = request.param
    path = tmp_path / "t.evr"
    record(spec, path, chooser=chooser)
    return path


@pytest.mark.parametrize("timeline", ["virtual", "steps"])
def test_the_export_is_valid_chrome_trace_event_json(trace: Path, timeline: str) -> None:
    document, _ = export_doc(trace, timeline)
    validate(document)
    assert document["otherData"]["timeline"] == timeline


def test_one_track_per_thread_of_control_of_the_run(trace: Path) -> None:
    steps: list[DispatchEvent] = []
    play(trace, on_step=steps.append)
    events = validate(export_doc(trace)[0])
    names = thread_names(events)
    assert set(names.values()) == {s.thread for s in steps if s.kind != "input"}
    assert names[1] == "main"
    assert {e["pid"] for e in events} == {1}


def test_every_step_is_one_slice_or_instant_on_its_threads_track(trace: Path) -> None:
    steps: list[DispatchEvent] = []
    play(trace, on_step=steps.append)
    events = validate(export_doc(trace)[0])
    names = thread_names(events)
    slices = [e for e in events if e["ph"] == "X"]
    inputs = [e for e in events if e["ph"] == "i" and e.get("cat") == "input"]
    assert len(slices) + len(inputs) == len(steps)
    for s, e in zip((s for s in steps if s.kind != "input"), slices, strict=True):
        assert (e["args"]["step"], e["args"]["time_ns"]) == (s.step, s.time_ns)
        assert (names[e["tid"]], e["name"], e["cat"]) == (s.thread, s.name, s.kind)
        assert e["dur"] == STEP_DURATION_NS / 1000


def test_slices_never_overlap_and_keep_the_step_order(trace: Path) -> None:
    for timeline in Timeline:
        events = validate(export_doc(trace, timeline.value)[0])
        slices = sorted((e for e in events if e["ph"] == "X"), key=lambda e: e["args"]["step"])
        for before, after in itertools.pairwise(slices):
            assert after["ts"] >= before["ts"] + before["dur"]
        if timeline is Timeline.VIRTUAL:  # never drawn before its virtual time
            assert all(e["ts"] * 1000 >= e["args"]["time_ns"] for e in slices)


def test_a_step_on_the_virtual_timeline_starts_at_its_virtual_time_after_a_gap(
    tmp_path: Path,
) -> None:
    path = tmp_path / "t.evr"
    record(f"{WORKLOADS}:timers_only", path, params={"ticks": 3})
    events = validate(export_doc(path)[0])
    ticks = [e for e in events if e["ph"] == "X" and e["name"] == "tick"]
    assert [t["ts"] for t in ticks] == [1000, 2000, 3000]  # 1 ms apart, in µs


def test_input_and_trace_records_are_instants_and_decisions_counters(tmp_path: Path) -> None:
    path = tmp_path / "t.evr"
    record(f"{WORKLOADS}:console", path, chooser="random:1", params={"text": b"ab"})
    events = validate(export_doc(path)[0])
    by_cat: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        by_cat[e.get("cat", e["name"])].append(e)
    assert len(by_cat["input"]) == 2  # a peer delivered data: the fd became readable
    assert all(e["ph"] == "i" for e in by_cat["trace.input"])
    assert by_cat["trace.input"][0]["args"]["data_hex"] == "61"
    assert [e["args"]["checkpoint"] for e in by_cat["trace.checkpoint"]] == ["INIT", "FINAL"]
    counters = {e["name"] for e in events if e["ph"] == "C"}
    assert "steps per virtual ms" in counters


def test_steps_per_virtual_ms_add_up_to_the_steps(trace: Path) -> None:
    events = validate(export_doc(trace)[0])
    counted = sum(e["args"]["steps"] for e in events if e["name"] == "steps per virtual ms")
    assert counted == sum(1 for e in events if e["ph"] == "X" or e.get("cat") == "input")


def test_decisions_show_as_options_counters(tmp_path: Path) -> None:
    path = tmp_path / "t.evr"
    recorded = record(f"{WORKLOADS}:threaded", path, chooser="random:2", params={"rounds": 2})
    events = validate(export_doc(path)[0])
    options = [e for e in events if e["name"] == "options at decision"]
    assert len(options) == recorded.decisions
    assert all(e["args"]["options"] >= 2 for e in options)


def test_the_steps_timeline_puts_step_n_at_n_microseconds(trace: Path) -> None:
    events = validate(export_doc(trace, "steps")[0])
    for e in events:
        if e["ph"] == "X":
            assert e["ts"] == e["args"]["step"]
    assert any(e["name"] == "virtual time (ms)" for e in events if e["ph"] == "C")


def test_the_export_is_streamed_one_event_per_line(trace: Path) -> None:
    document, text = export_doc(trace)
    lines = text.splitlines()
    assert len(lines) == len(document["traceEvents"]) + 2  # the opening and the closing line
    assert all(json.loads(line.rstrip(",")) for line in lines[1:-1])


def test_tools_export_dispatches_on_the_format(trace: Path) -> None:
    out = io.StringIO()
    export(trace, out, fmt="perfetto")
    validate(json.loads(out.getvalue()))
    with pytest.raises(ValueError, match="unknown export format 'svg'"):
        export(trace, io.StringIO(), fmt="svg")
