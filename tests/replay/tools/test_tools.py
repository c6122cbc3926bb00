"""Tests for replay.tools: the trace tools as a library (dump, diff, stats, verify).

What these pin down:

* record events are numbered as the player numbers them, and every decision
  of a CHOICES batch is one, at its own step;
* a dump interleaves each record right after the step it follows, and its
  filters (kinds, step bounds) and JSON Lines hold;
* a dump streams: it writes while the replay runs, and a truncated trace
  says where it ends;
* diff finds the first divergent step with context, header and record
  differences, and says "identical" for identical traces;
* stats and verify count what the trace and its replay hold;
* nothing a tool does inside a run can pass for the scenario's failure.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

import tests.scenarios.divergent as divergent
from evloop import DispatchEvent
from replay import EventKind, ReplayDivergence, TraceFormatError, TraceReader, play, record
from replay.tools.diff import (
    diff,
    first_record_difference,
    first_step_difference,
    header_differences,
)
from replay.tools.dump import dump
from replay.tools.events import (
    RecordEvent,
    RecordStream,
    SafeSink,
    expand_kinds,
    format_ns,
    read_steps,
    step_from_json,
    step_to_json,
)
from replay.tools.stats import count_chunks, stats
from replay.tools.verify import Outcome, find_traces, verify_trace

MACHINE = "examples.minimachine:scenario"
WORKLOADS = "tests.scenarios.workloads"
DIVERGENT = "tests.scenarios.divergent"


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def dump_json(path: Path, **kwargs: Any) -> list[dict[str, Any]]:
    out = io.StringIO()
    dump(path, out, as_json=True, **kwargs)
    return json_lines(out.getvalue())


@pytest.fixture
def machine(tmp_path: Path) -> Path:
    path = tmp_path / "machine.evr"
    record(MACHINE, path, seed=0)
    return path


@pytest.fixture
def threaded(tmp_path: Path) -> Path:
    path = tmp_path / "threaded.evr"
    record(f"{WORKLOADS}:threaded", path, chooser="random:3", params={"rounds": 3})
    return path


def truncate(path: Path, size: int, to: Path) -> Path:
    to.write_bytes(path.read_bytes()[:size])
    return to


# -- record events -------------------------------------------------------------------------


def test_record_events_are_numbered_as_the_player_counts_them(threaded: Path) -> None:
    played = play(threaded)
    with RecordStream(threaded) as stream:
        events = list(stream)
    assert [e.index for e in events] == list(range(len(events)))
    assert len(events) == played.events
    assert events[0].kind == "checkpoint" and events[0].detail["checkpoint"] == "INIT"
    assert events[-1].kind == "checkpoint" and events[-1].detail["checkpoint"] == "FINAL"
    assert stream.complete and stream.truncated_at is None
    steps = [e.step for e in events]
    assert steps == sorted(steps)


def test_each_decision_of_a_choices_batch_is_one_event_at_its_own_step(threaded: Path) -> None:
    recorded = record(f"{WORKLOADS}:threaded", threaded, chooser="random:3", params={"rounds": 3})
    with RecordStream(threaded) as stream:
        choices = [e for e in stream if e.kind == "choice"]
    assert len(choices) == recorded.decisions == stream.decisions
    assert stream.records_by_kind["CHOICES"] >= 1
    assert all(0 <= c.detail["choice"] < c.detail["options"] for c in choices)
    assert len({c.step for c in choices}) > 1


def test_record_events_describe_themselves_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "t.evr"
    record(f"{WORKLOADS}:console", path, params={"text": b"hi"})
    by_kind: dict[str, RecordEvent] = {}
    with RecordStream(path) as stream:
        for event in stream:
            by_kind.setdefault(event.kind, event)
    assert by_kind["input"].describe() == "typist: 1 bytes b'h'"
    assert by_kind["input"].to_json()["data_hex"] == "68"
    assert by_kind["checkpoint"].describe() == "INIT digest=0x0000000000000000"
    assert "\n" not in by_kind["checkpoint"].format()


# -- dump ------------------------------------------------------------------------------------


def test_a_dump_has_a_header_every_step_and_every_record_then_an_end(machine: Path) -> None:
    steps: list[DispatchEvent] = []
    played = play(machine, on_step=steps.append)
    lines = dump_json(machine)
    assert lines[0]["type"] == "header"
    assert lines[0]["scenario"] == MACHINE
    assert lines[-1]["type"] == "end"
    assert lines[-1]["steps"] == played.steps and lines[-1]["bit_exact"] is True
    dumped = [step_from_json(o) for o in lines if o["type"] == "step"]
    assert dumped == steps
    assert sum(1 for o in lines if o["type"] == "record") == played.events


def test_a_record_comes_right_after_the_step_it_follows(threaded: Path) -> None:
    lines = [o for o in dump_json(threaded) if o["type"] in ("step", "record")]
    last_step = 0
    for obj in lines:
        if obj["type"] == "step":
            assert obj["step"] == last_step + 1
            last_step = obj["step"]
        else:
            assert obj["step"] == last_step  # logged after that step, before the next


def test_kinds_select_steps_and_records_and_aliases_expand(threaded: Path) -> None:
    lines = dump_json(threaded, kinds=["bh", "choice"])
    kinds = {(o["type"], o["kind"]) for o in lines if o["type"] in ("step", "record")}
    assert kinds == {("step", "bh"), ("record", "choice")}
    assert expand_kinds(["fd"]) == {"read", "write", "poll_ready"}
    assert expand_kinds([" Timer ", ""]) == {"timer"}
    known = r"unknown kind 'tick' \(known: async_event, bh, checkpoint"
    with pytest.raises(ValueError, match=known):
        expand_kinds(["tick"])


def test_from_and_to_bound_steps_and_records(threaded: Path) -> None:
    lines = dump_json(threaded, from_step=5, to_step=9)
    body = [o for o in lines if o["type"] in ("step", "record")]
    assert {o["step"] for o in body if o["type"] == "step"} == set(range(5, 10))
    assert all(5 <= o["step"] <= 9 for o in body)
    end = lines[-1]
    assert end["steps"] == 9 and end["bit_exact"] is None  # the replay stopped at --to


def test_the_text_dump_is_aligned_lines(machine: Path) -> None:
    out = io.StringIO()
    dump(machine, out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith(f"# {machine}: {MACHINE}, seed 0, chooser fifo")
    assert lines[1].split() == ["step", "time", "thread", "context", "kind", "what"]
    assert "[trace]      checkpoint INIT digest=0x0000000000000000" in lines[2]
    assert any(line.split()[5:7] == ["timer", "rtc-tick"] for line in lines[3:-1])
    played = play(machine)
    assert lines[-1] == f"# end: {played.steps} steps, {format_ns(played.time_ns)} virtual, idle"


def test_a_dump_is_written_while_the_replay_runs(machine: Path) -> None:
    seen_at_step: list[int] = []

    class Out(io.StringIO):
        def write(self, text: str) -> int:
            seen_at_step.append(text.count("\n"))
            return super().write(text)

    dump(machine, Out(), as_json=True)
    assert len(seen_at_step) > 50  # one write per line, not one at the end


def test_records_only_needs_no_replay(machine: Path) -> None:
    lines = dump_json(machine, replay=False)
    assert {o["type"] for o in lines} == {"header", "record", "end"}
    assert lines[-1]["steps_regenerated"] is False


def test_a_truncated_trace_is_dumped_with_a_note_where_it_ends(threaded: Path) -> None:
    data = threaded.read_bytes()
    cut = truncate(threaded, len(data) - 5, threaded.with_name("cut.evr"))
    lines = dump_json(cut)
    notes = [o for o in lines if o["type"] == "note"]
    assert len(notes) == 1
    assert notes[0]["text"].startswith("the trace ends here: truncated at byte ")
    assert lines[-1]["complete"] is False


def test_a_dump_of_a_divergent_trace_raises_after_what_matched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "t.evr"
    record(f"{DIVERGENT}:scenario", path)
    monkeypatch.setattr(divergent, "scenario", divergent.changed)
    out = io.StringIO()
    with pytest.raises(ReplayDivergence):
        dump(path, out, as_json=True)
    assert sum(1 for o in json_lines(out.getvalue()) if o["type"] == "step") > 4


def test_an_output_that_fails_inside_the_run_is_not_the_scenarios_failure(machine: Path) -> None:
    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            if "rtc-tick" in text:
                raise BrokenPipeError(32, "Broken pipe")
            return super().write(text)

    with pytest.raises(BrokenPipeError):
        dump(machine, Broken(), as_json=True)


def test_a_safe_sink_keeps_the_first_error_and_raises_it_after() -> None:
    calls: list[int] = []

    def fn(ev: DispatchEvent) -> None:
        calls.append(ev.step)
        raise ValueError(f"step {ev.step}")

    sink = SafeSink(fn)
    sink(DispatchEvent(1, 0, "main", "-", "bh", "a"))
    sink(DispatchEvent(2, 0, "main", "-", "bh", "b"))
    assert calls == [1]
    with pytest.raises(ValueError, match="step 1"):
        sink.check()
    sink.check()  # raised once


# -- diff ------------------------------------------------------------------------------------


def ev(step: int, name: str, time_ns: int = 0) -> DispatchEvent:
    return DispatchEvent(step, time_ns, "main", "aio-context", "bh", name)


def test_first_step_difference_has_context_on_both_sides() -> None:
    a = [ev(i, f"s{i}") for i in range(1, 20)]
    b = [*a[:9], ev(10, "other"), *a[10:]]
    d = first_step_difference(a, b, context=3)
    assert d is not None
    assert d.position == 10
    assert (d.a, d.b) == (a[9], ev(10, "other"))
    assert [x.step for x in d.before] == [7, 8, 9]
    assert [x.step for x in d.after_a] == [x.step for x in d.after_b] == [11, 12, 13]


def test_first_step_difference_when_one_run_is_longer() -> None:
    a = [ev(i, "x") for i in range(1, 6)]
    d = first_step_difference(a, a[:3])
    assert d is not None and d.position == 4 and d.b is None and d.a == a[3]
    assert first_step_difference(a, list(a)) is None
    assert first_step_difference([], []) is None


def test_steps_round_trip_through_json_lines() -> None:
    steps = [ev(1, "a", 5), ev(2, "b", 7)]
    text = "".join(json.dumps(step_to_json(s)) + "\n" for s in steps)
    assert list(read_steps(['{"type":"header"}\n', *text.splitlines(True)])) == steps


def test_identical_traces_are_identical(machine: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.evr"
    record(MACHINE, copy, seed=0)
    result = diff(machine, copy)
    assert result.identical and result.identical_bytes


def test_diff_names_the_first_divergent_step_and_record(machine: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.evr"
    record(MACHINE, other, seed=0, chooser="random:3")
    result = diff(machine, other, context=2)
    assert not result.identical
    assert result.headers == ("chooser: A 'fifo', B 'random:3'",)
    assert result.steps is not None
    assert result.steps.a != result.steps.b
    assert len(result.steps.before) == 2
    assert result.records is not None and result.records.a is not None
    assert result.records.a.key() != (result.records.b.key() if result.records.b else None)


def test_header_differences_name_every_field_that_differs(machine: Path, tmp_path: Path) -> None:
    other = tmp_path / "o.evr"
    record(MACHINE, other, seed=4, params={"requests": 1})
    with TraceReader(machine) as ra, TraceReader(other) as rb:
        lines = header_differences(ra.header, rb.header)
    assert lines == ["parameters: A {}, B {'requests': 1}", "seed: A 0, B 4"]


def test_diff_reports_a_trace_that_does_not_replay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = tmp_path / "a.evr", tmp_path / "b.evr"
    record(f"{DIVERGENT}:scenario", a)
    record(f"{DIVERGENT}:scenario", b, params={"ticks": 12})
    monkeypatch.setattr(divergent, "scenario", divergent.changed)
    result = diff(a, b)
    assert not result.identical
    prefix = "A does not replay here (replay diverged at event"
    assert any(n.startswith(prefix) for n in result.notes)


def test_first_record_difference_when_a_trace_ends_first(machine: Path) -> None:
    with RecordStream(machine) as sa:
        events = list(sa)
    d = first_record_difference(events, events[:-1])
    assert d is not None and d.index == len(events) - 1 and d.b is None


# -- stats -----------------------------------------------------------------------------------


def test_stats_count_the_trace_and_its_replay(threaded: Path) -> None:
    steps: list[DispatchEvent] = []
    played = play(threaded, on_step=steps.append)
    s = stats(threaded)
    assert s.steps == played.steps == len(steps)
    assert sum(s.steps_by_kind.values()) == s.steps
    assert sum(s.steps_by_thread.values()) == s.steps
    assert set(s.steps_by_thread) == {e.thread for e in steps}
    assert s.bytes == threaded.stat().st_size
    assert s.complete and s.truncated_at is None
    assert s.chunks == count_chunks(threaded) >= 2
    assert s.decisions > 0 and s.bytes_per_decision == s.bytes / s.decisions
    assert s.choices_bytes / s.decisions < 3
    assert json.loads(json.dumps(s.to_json()))["steps"] == s.steps


def test_stats_of_a_truncated_trace_without_replay(threaded: Path) -> None:
    data = threaded.read_bytes()
    cut = truncate(threaded, len(data) - 3, threaded.with_name("cut.evr"))
    s = stats(cut, replay=False)
    assert not s.complete and s.truncated_at is not None
    assert s.steps is None and s.steps_by_kind == {}
    assert s.chunks == count_chunks(threaded) - 1


def test_count_chunks_counts_whole_chunks_only(machine: Path, tmp_path: Path) -> None:
    assert count_chunks(machine) == 2  # the header chunk and one data chunk
    size = machine.stat().st_size
    assert count_chunks(truncate(machine, size - 3, tmp_path / "c.evr")) == 1
    assert count_chunks(truncate(machine, 30, tmp_path / "d.evr")) == 0


# -- verify ----------------------------------------------------------------------------------


def test_verify_says_ok_for_a_trace_that_replays_bit_exactly(machine: Path) -> None:
    result = verify_trace(machine)
    played = play(machine)
    assert result.outcome is Outcome.OK
    assert result.message == f"{played.steps} steps, {format_ns(played.time_ns)} virtual, bit-exact"


def test_verify_says_ok_for_a_trace_that_replays_to_its_failure(tmp_path: Path) -> None:
    path = tmp_path / "f.evr"
    record("tests.scenarios.failing:callback_fails", path)
    result = verify_trace(path)
    assert result.outcome is Outcome.OK
    assert "replays to the same failure: exception: AssertionError" in result.message


def test_verify_says_bad_for_a_truncated_or_corrupt_trace(machine: Path, tmp_path: Path) -> None:
    size = machine.stat().st_size
    cut = verify_trace(truncate(machine, size - 4, tmp_path / "cut.evr"))
    assert cut.outcome is Outcome.BAD
    assert "(truncated)" in cut.message
    data = bytearray(machine.read_bytes())
    data[size - 6] ^= 0xFF
    (tmp_path / "bad.evr").write_bytes(bytes(data))
    bad = verify_trace(tmp_path / "bad.evr")
    assert bad.outcome is Outcome.BAD and "(corrupt)" in bad.message


def test_verify_says_diverged_for_a_changed_scenario(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "t.evr"
    record(f"{DIVERGENT}:scenario", path)
    monkeypatch.setattr(divergent, "scenario", divergent.changed)
    result = verify_trace(path)
    assert result.outcome is Outcome.DIVERGED
    assert result.message.startswith("replay diverged at event")


def test_find_traces_recurses_and_sorts(tmp_path: Path) -> None:
    for name in ("b/z.evr", "a.evr", "b/c/y.evr", "notes.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    found = [p.relative_to(tmp_path).as_posix() for p in find_traces(tmp_path)]
    assert found == ["a.evr", "b/c/y.evr", "b/z.evr"]
    with pytest.raises(FileNotFoundError):
        find_traces(tmp_path / "nope")


def test_a_damaged_header_is_a_trace_format_error_for_every_tool(tmp_path: Path) -> None:
    path = tmp_path / "x.evr"
    path.write_bytes(b"not a trace at all")
    for tool in (lambda: stats(path), lambda: dump(path, io.StringIO()), lambda: diff(path, path)):
        with pytest.raises(TraceFormatError, match="byte 0: expected the evreplay trace magic"):
            tool()


def test_format_ns_is_exact_milliseconds() -> None:
    assert format_ns(60_000_000) == "60.000 ms"
    assert format_ns(2_000_125) == "2.000125 ms"
    assert format_ns(1) == "0.000001 ms"
    assert format_ns(0) == "0.000 ms"


def test_every_record_kind_has_a_name() -> None:
    from replay.tools.events import RECORD_KINDS

    # HEADER, END and CHAIN are framing; CHOICES batches come out as choices,
    # CLOCK_CHECKPOINTS batches as checkpoints.
    framing = {"header", "end", "choices", "chain", "clock_checkpoints"}
    names = {k.name.lower() for k in EventKind} - framing
    assert names == set(RECORD_KINDS)
