"""Export a replayed run as Chrome trace-event JSON, for ui.perfetto.dev and chrome://tracing.

The format is the "JSON Object Format" of Google's Trace Event Format: an
object whose ``traceEvents`` array holds events with ``ph`` (phase), ``ts``
(microseconds), ``pid`` and ``tid``. What a run becomes:

* **One track per thread of control.** Everything is process 1; each thread
  of control gets a ``tid`` (1 for ``main``, then 2, 3, ... in the order the
  threads first run) and a ``thread_name`` metadata event (``ph: "M"``). A
  step runs on the thread that dispatched it; a ``turn`` step on the thread
  that got the turn.
* **A step is a slice** (``ph: "X"``) named after its callback, category its
  kind, with the step number, exact virtual time and context in ``args``.
* **Callbacks take no virtual time**, so every step is drawn with the fixed
  duration :data:`STEP_DURATION_NS` (1 µs). Two timelines:

  - ``virtual`` (the default): a step starts at its virtual time, or at the
    end of the step before it if that is later. Steps at one virtual
    instant are laid out one after another, in step order, so slices never
    overlap; the drawing runs ahead of virtual time by at most 1 µs per
    step in a burst, and falls back onto it at the next gap. ``args.time_ns``
    is always exact.
  - ``steps``: step ``N`` starts at ``N`` µs. Order only, no time; a
    ``virtual time (ms)`` counter shows the clock.

* **Instants** (``ph: "i"``): data a scripted peer delivers (an ``input``
  step: an fd becomes readable), the trace's INPUT, FAULT, SHUTDOWN, CLOCK
  and RANDOM records, and its checkpoints. Records carry no thread: they are
  drawn process-wide (``s: "p"``) at the end of the step they follow.
* **Counters** (``ph: "C"``): ``steps per virtual ms`` (virtual timeline),
  and ``options at decision`` at every recorded decision: how many threads
  (or other options) were ready to go when the chooser was asked.

The output is written as the replay goes: events in the order they happen,
metadata as each thread first appears (readers do not need sorted events).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Final, TextIO

from evloop import DispatchEvent

from ..api import PlayResult, play
from ..trace.header import TraceHeader
from .events import Interleaver, RecordEvent, RecordStream, SafeSink, jsonable

__all__ = ["STEP_DURATION_NS", "ChromeTraceWriter", "ExportSummary", "Timeline", "export_perfetto"]

#: How long each step is drawn (callbacks take no virtual time): 1 µs.
STEP_DURATION_NS: Final = 1_000
#: The one process of an export.
PID: Final = 1
#: The main thread of control's track.
MAIN_TID: Final = 1
_NS_PER_MS: Final = 1_000_000


class Timeline(Enum):
    VIRTUAL = "virtual"  #: virtual time, steps laid out 1 µs apart within an instant
    STEPS = "steps"  #: step N at N µs


@dataclass(frozen=True, slots=True)
class ExportSummary:
    events: int
    slices: int
    instants: int
    counters: int
    #: Thread names by tid, in tid order.
    threads: tuple[str, ...]
    play: PlayResult | None
    steps_regenerated: bool


def _us(ns: int) -> float | int:
    """Nanoseconds as microseconds: an int when whole, else a float."""
    return ns // 1000 if ns % 1000 == 0 else ns / 1000


class ChromeTraceWriter:
    """Streams one run as Chrome trace-event JSON to ``out``.

    Call :meth:`step` for each step and :meth:`record` for each record event,
    in run order, then :meth:`close`. Not reentrant.
    """

    def __init__(
        self, out: TextIO, header: TraceHeader, *, timeline: Timeline = Timeline.VIRTUAL
    ) -> None:
        self._out = out
        self._timeline = timeline
        self._tids: dict[str, int] = {}
        self._first = True
        self.counts = {"events": 0, "X": 0, "i": 0, "C": 0}
        # Where the next step may start (ns on the drawing axis) and where the last one ended.
        self._cursor = 0
        self._last_end = 0
        self._last_time: int | None = None
        self._bucket: int | None = None
        self._bucket_count = 0
        self._bucket_ts = 0
        other = {
            "scenario": header.scenario,
            "seed": header.seed,
            "chooser": header.chooser,
            "parameters": jsonable(header.parameters),
            "timeline": timeline.value,
            "step_duration_us": STEP_DURATION_NS / 1000,
        }
        out.write('{"displayTimeUnit":"ns","otherData":')
        out.write(json.dumps(other, separators=(",", ":")))
        out.write(',"traceEvents":[\n')
        title = f"evreplay: {header.scenario} (seed {header.seed}, chooser {header.chooser})"
        self._emit({"ph": "M", "name": "process_name", "pid": PID, "tid": 0, "ts": 0,
                    "args": {"name": title}})
        self._tid("main")

    # -- output ---------------------------------------------------------------------------

    def _emit(self, event: dict[str, Any]) -> None:
        if not self._first:
            self._out.write(",\n")
        self._first = False
        self._out.write(json.dumps(event, separators=(",", ":")))
        self.counts["events"] += 1
        ph = event["ph"]
        if ph in self.counts:
            self.counts[ph] += 1

    def _tid(self, thread: str) -> int:
        tid = self._tids.get(thread)
        if tid is None:
            tid = self._tids[thread] = len(self._tids) + MAIN_TID
            self._emit({"ph": "M", "name": "thread_name", "pid": PID, "tid": tid, "ts": 0,
                        "args": {"name": thread}})
            self._emit({"ph": "M", "name": "thread_sort_index", "pid": PID, "tid": tid, "ts": 0,
                        "args": {"sort_index": tid}})
        return tid

    def _counter(self, name: str, key: str, ts_ns: int, value: float) -> None:
        self._emit({"ph": "C", "name": name, "pid": PID, "tid": MAIN_TID, "ts": _us(ts_ns),
                    "args": {key: value}})

    # -- the run --------------------------------------------------------------------------

    def _place(self, ev: DispatchEvent) -> int:
        """The step's start on the drawing axis, in ns."""
        if self._timeline is Timeline.STEPS:
            start = ev.step * STEP_DURATION_NS
            if ev.time_ns != self._last_time:
                self._counter("virtual time (ms)", "ms", start, ev.time_ns / _NS_PER_MS)
        else:
            start = max(ev.time_ns, self._cursor)
            self._count_bucket(ev.time_ns, start)
        self._last_time = ev.time_ns
        self._cursor = start + STEP_DURATION_NS
        return start

    def _count_bucket(self, time_ns: int, start: int) -> None:
        bucket = time_ns // _NS_PER_MS
        if bucket == self._bucket:
            self._bucket_count += 1
            return
        self._flush_bucket(start)
        self._bucket, self._bucket_count, self._bucket_ts = bucket, 1, start

    def _flush_bucket(self, next_start: int | None) -> None:
        if self._bucket is None:
            return
        self._counter("steps per virtual ms", "steps", self._bucket_ts, self._bucket_count)
        if next_start is None or next_start > self._cursor:  # an idle gap follows
            self._counter("steps per virtual ms", "steps", self._cursor, 0)

    def step(self, ev: DispatchEvent) -> None:
        start = self._place(ev)
        args = {"step": ev.step, "time_ns": ev.time_ns, "context": ev.context}
        if ev.kind == "input":  # a peer delivered data: an fd became readable
            self._emit({"ph": "i", "s": "p", "name": f"input from {ev.thread}: {ev.name}",
                        "cat": "input", "pid": PID, "tid": MAIN_TID, "ts": _us(start),
                        "args": args})
            return
        self._emit({"ph": "X", "name": ev.name, "cat": ev.kind, "pid": PID,
                    "tid": self._tid(ev.thread), "ts": _us(start),
                    "dur": _us(STEP_DURATION_NS), "args": args})

    def record(self, rec: RecordEvent) -> None:
        ts = self._cursor
        if rec.kind == "choice":
            self._counter("options at decision", "options", ts, int(rec.detail["options"]))
            return
        args = {"event": rec.index, "step": rec.step, **rec.detail}
        self._emit({"ph": "i", "s": "p", "name": f"{rec.kind}: {rec.describe()}"[:200],
                    "cat": f"trace.{rec.kind}", "pid": PID, "tid": MAIN_TID, "ts": _us(ts),
                    "args": args})

    def close(self) -> None:
        self._flush_bucket(None)
        self._out.write("\n]}\n")
        self._out.flush()

    @property
    def threads(self) -> tuple[str, ...]:
        return tuple(sorted(self._tids, key=self._tids.__getitem__))


def export_perfetto(
    path: str | Path,
    out: TextIO,
    *,
    timeline: Timeline | str = Timeline.VIRTUAL,
    progress: Callable[[int], object] | None = None,
) -> ExportSummary:
    """Replay ``path`` and stream its run to ``out`` as Chrome trace-event JSON.

    Raises :class:`~replay.ReplayDivergence` if the trace does not replay
    (``out`` then holds an unfinished document).
    """
    timeline = Timeline(timeline)
    with RecordStream(path) as stream:
        writer = ChromeTraceWriter(out, stream.header, timeline=timeline)
        interleaver = Interleaver(stream, writer.record)

        def on_step(ev: DispatchEvent) -> None:
            interleaver.until(ev.step)
            writer.step(ev)

        sink = SafeSink(on_step)
        result = play(path, on_step=sink, progress=progress)
        sink.check()
        interleaver.finish()
        writer.close()
    c = writer.counts
    return ExportSummary(c["events"], c["X"], c["i"], c["C"], writer.threads, result, True)
