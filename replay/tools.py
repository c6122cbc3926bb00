"""The trace tools as a library: dump, diff, stats, export, verify, check-determinism.

The command line (``replay/cli.py``) is a thin driver over these functions;
tests and other code call them directly. The rules they keep:

* **Stream; never hold a whole trace.** Records come one at a time from a
  :class:`~replay.trace.TraceReader`; steps come one at a time from
  :func:`~replay.play`'s ``on_step``. What a tool needs to hold is bounded:
  a counter per kind and thread, a few steps of context, one pending record.
  ``diff`` spools each run's steps to a temporary file, not to a list.
* **A trace holds decisions; steps are regenerated.** A trace records only
  the answers to nondeterministic questions. Every step (virtual time,
  thread, context, kind, callback name) is what replaying those answers
  regenerates, so the step-level tools (dump, diff, stats, export) replay.
* **Records sit between steps.** A record logged at step ``N`` happened
  after step ``N`` was dispatched and before step ``N + 1``
  (``session.py``): :class:`Interleaver` hands each record out just before
  the first step after it. Each decision of a CHOICES batch is one record
  event, numbered as the player numbers events (``ReplayDivergence.event_index``).
* **Nothing raises inside a run.** ``on_step`` runs inside the simulation,
  where an exception would pass for the scenario's own failure. Sinks
  (:class:`SafeSink`) keep the first exception and re-raise it after play returns.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final, TextIO

from evloop import ClockType, DispatchEvent

from .api import PlayResult, play
from .errors import ReplayDivergence, ReplayError, TraceFormatError
from .format import CHUNK_HEADER, CHUNK_HEADER_SIZE, MAGIC, EventKind, TraceHeader, decode_choices
from .session import CheckpointKind
from .trace import TraceReader

__all__ = [
    "RECORD_KINDS",
    "STEP_KINDS",
    "DeterminismReport",
    "DeterminismRun",
    "DiffResult",
    "Interleaver",
    "Outcome",
    "RecordDifference",
    "RecordEvent",
    "RecordStream",
    "SafeSink",
    "StepDifference",
    "TraceStats",
    "VerifyResult",
    "check_determinism",
    "count_chunks",
    "diff",
    "dump",
    "export",
    "expand_kinds",
    "find_traces",
    "first_record_difference",
    "first_step_difference",
    "format_ns",
    "format_step",
    "header_differences",
    "header_to_json",
    "jsonable",
    "read_steps",
    "replay_trace",
    "stats",
    "step_from_json",
    "step_to_json",
    "verify_trace",
]

#: What a step can be (``DispatchEvent.kind``).
STEP_KINDS: Final = ("bh", "read", "write", "poll_ready", "timer", "turn", "input")
#: What a record event can be (a CHOICES batch gives one ``choice`` per decision).
RECORD_KINDS: Final = (
    "checkpoint", "choice", "input", "clock", "random", "mutex", "shutdown", "fault",
)
#: Short names ``--kinds`` accepts for several kinds.
KIND_ALIASES: Final[Mapping[str, tuple[str, ...]]] = {
    "fd": ("read", "write", "poll_ready"),
    "steps": STEP_KINDS,
    "records": RECORD_KINDS,
}


def expand_kinds(names: Iterable[str]) -> frozenset[str]:
    """The kinds ``names`` select, aliases expanded; ValueError names an unknown one."""
    out: set[str] = set()
    known = set(STEP_KINDS) | set(RECORD_KINDS)
    for raw in names:
        name = raw.strip().lower()
        if not name:
            continue
        if name in KIND_ALIASES:
            out.update(KIND_ALIASES[name])
        elif name in known:
            out.add(name)
        else:
            choices = ", ".join([*sorted(known), *KIND_ALIASES])
            raise ValueError(f"unknown kind {raw!r} (known: {choices})")
    return frozenset(out)


# -- formatting ------------------------------------------------------------------------


def format_ns(ns: int) -> str:
    """``ns`` as exact milliseconds, at least three decimals: ``60.000 ms``, ``2.000125 ms``."""
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    fraction = f"{ns % 1_000_000:06d}".rstrip("0").ljust(3, "0")
    return f"{sign}{ns // 1_000_000}.{fraction} ms"


def format_step(ev: DispatchEvent) -> str:
    """One step as a dump line."""
    return (
        f"{ev.step:>8}  {format_ns(ev.time_ns):>17}  {ev.thread:<20} {ev.context:<12} "
        f"{ev.kind:<10} {ev.name}"
    )


def jsonable(value: Any) -> Any:
    """A header parameter as JSON: tuples as lists, maps as objects, bytes as ``{"hex": ...}``."""
    if isinstance(value, bytes | bytearray):
        return {"hex": bytes(value).hex()}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def header_to_json(header: TraceHeader, path: str | Path | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "header"}
    if path is not None:
        out["path"] = str(path)
    out.update(
        format_version=header.format_version,
        scenario=header.scenario,
        parameters=jsonable(header.parameters),
        seed=header.seed,
        chooser=header.chooser,
        faults=list(header.faults),
        package_version=header.package_version,
        python_version=header.python_version,
        extensions=jsonable(header.extensions),
    )
    return out


def step_to_json(ev: DispatchEvent) -> dict[str, Any]:
    return {
        "type": "step",
        "step": ev.step,
        "time_ns": ev.time_ns,
        "thread": ev.thread,
        "context": ev.context,
        "kind": ev.kind,
        "name": ev.name,
    }


def step_from_json(obj: Mapping[str, Any]) -> DispatchEvent:
    return DispatchEvent(
        obj["step"], obj["time_ns"], obj["thread"], obj["context"], obj["kind"], obj["name"]
    )


def read_steps(lines: Iterable[str]) -> Iterator[DispatchEvent]:
    """The ``"type": "step"`` objects of JSON Lines (``dump --json`` output, a spool)."""
    for line in lines:
        if line.strip():
            obj = json.loads(line)
            if obj.get("type") == "step":
                yield step_from_json(obj)


# -- record events -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordEvent:
    """One event of a trace: a record, or one decision of a CHOICES batch."""

    #: The player's event index (0 is the INIT checkpoint).
    index: int
    #: The step it follows (for MUTEX, which has no step: the step of the record before).
    step: int
    #: One of RECORD_KINDS.
    kind: str
    detail: Mapping[str, Any] = field(default_factory=dict)

    def key(self) -> tuple[int, str, tuple[tuple[str, Any], ...]]:
        """What two runs must agree on (the index is implied by the position)."""
        return (self.step, self.kind, tuple(self.detail.items()))

    def describe(self) -> str:
        d = self.detail
        kind = self.kind
        if kind == "checkpoint":
            return f"{d['checkpoint']} digest={d['digest']}"
        if kind == "choice":
            return f"option {d['choice']} of {d['options']}"
        if kind == "input":
            data = bytes.fromhex(d["data_hex"])
            what = "close" if not data else f"{len(data)} bytes {data[:32]!r}"
            return f"{d['channel']}: {what}"
        if kind == "clock":
            if d["clock"] == "REALTIME":  # host mode only: real time that passed in a wait
                return f"REALTIME advanced {d['offset_ns']} ns (host mode)"
            return f"{d['clock']} read, offset {d['offset_ns']} ns"
        if kind == "random":
            return f"drew {d['value']}"
        if kind == "mutex":
            return f"grant to thread {d['thread_index']} (step delta {d['step_delta']})"
        if kind == "shutdown":
            return str(d["cause"])
        return ", ".join(f"{k}={v!r}" for k, v in d.items())

    def to_json(self) -> dict[str, Any]:
        return {"type": "record", "event": self.index, "step": self.step, "kind": self.kind,
                **self.detail}

    def format(self) -> str:
        """One record event as a dump line (aligned with :func:`format_step`)."""
        blank = ""
        return (
            f"{self.step:>8}  {blank:>17}  {blank:<20} {'[trace]':<12} {self.kind:<10} "
            f"{self.describe()}"
        )


def _record_detail(record: tuple[Any, ...]) -> tuple[str, dict[str, Any]]:
    kind = record[0]
    if kind == EventKind.CHECKPOINT:
        ck = record[2]
        name = CheckpointKind(ck).name if ck in CheckpointKind._value2member_map_ else str(ck)
        return "checkpoint", {"checkpoint": name, "digest": f"{record[3]:#018x}"}
    if kind == EventKind.CHOICE:
        return "choice", {"options": record[2], "choice": record[3]}
    if kind == EventKind.INPUT:
        data = bytes(record[3])
        return "input", {"channel": record[2], "size": len(data), "data_hex": data.hex()}
    if kind == EventKind.CLOCK:
        ct = record[2]
        name = ClockType(ct).name if ct in ClockType._value2member_map_ else str(ct)
        return "clock", {"clock": name, "offset_ns": record[3]}
    if kind == EventKind.RANDOM:
        return "random", {"value": f"{record[2]:#018x}"}
    if kind == EventKind.MUTEX:
        return "mutex", {"step_delta": record[1], "thread_index": record[2]}
    if kind == EventKind.SHUTDOWN:
        return "shutdown", {"cause": record[2]}
    if kind == EventKind.FAULT:
        return "fault", {"fault_kind": record[2], "target": record[3], "arg": record[4]}
    return EventKind(kind).name.lower(), {"fields": list(record[1:])}


class RecordStream:
    """A trace's record events, in order, read one chunk at a time.

    Tolerant by default (as :func:`~replay.play` is): a trace cut short yields
    the events of its whole chunks, then stops with ``truncated_at`` and
    ``stop_error`` set. Corruption raises :class:`TraceFormatError`.
    """

    def __init__(self, path: str | Path, *, strict: bool = False) -> None:
        self._reader = TraceReader(path, strict=strict)
        self.header = self._reader.header
        self.path = path
        #: Events yielded so far, and the step of the last one.
        self.events = 0
        self.last_step = 0
        #: Trace records read (a CHOICES batch is one), and decisions among the events.
        self.records = 0
        self.decisions = 0
        self.records_by_kind: Counter[str] = Counter()
        #: Bytes of packed CHOICES streams read.
        self.choices_bytes = 0

    @property
    def complete(self) -> bool:
        return self._reader.complete

    @property
    def truncated_at(self) -> int | None:
        return self._reader.truncated_at

    @property
    def stop_error(self) -> TraceFormatError | None:
        return self._reader.stop_error

    def __iter__(self) -> Iterator[RecordEvent]:
        step = 0
        for record in self._reader:
            self.records += 1
            self.records_by_kind[EventKind(record[0]).name] += 1
            if record[0] == EventKind.CHOICES:
                step = record[1]
                self.choices_bytes += len(record[2])
                for delta, n, choice in decode_choices(record[2]):
                    step += delta
                    self.decisions += 1
                    yield self._event(step, "choice", {"options": n, "choice": choice})
                continue
            if record[0] != EventKind.MUTEX:
                step = record[1]
            kind, detail = _record_detail(tuple(record))
            if kind == "choice":
                self.decisions += 1
            yield self._event(step, kind, detail)

    def _event(self, step: int, kind: str, detail: dict[str, Any]) -> RecordEvent:
        event = RecordEvent(self.events, step, kind, detail)
        self.events += 1
        self.last_step = step
        return event

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> RecordStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class SafeSink:
    """Wraps a callback run inside a simulation so that it never raises there.

    The first exception is kept (later calls are dropped) and re-raised by
    :meth:`check` once the run is over: inside the run it would be taken for
    the scenario's own failure.
    """

    def __init__(self, fn: Callable[[DispatchEvent], object]) -> None:
        self._fn = fn
        self.error: BaseException | None = None

    def __call__(self, ev: DispatchEvent) -> None:
        if self.error is None:
            try:
                self._fn(ev)
            except BaseException as exc:
                self.error = exc

    def check(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            raise error


class Interleaver:
    """Hands a trace's record events out between the steps a replay regenerates.

    Call :meth:`until` with each step's number before emitting the step, and
    :meth:`finish` after the run. A read error is kept, not raised (this runs
    inside the simulation): :meth:`finish` raises it. ``on_end`` is called
    once, right after the last event of a truncated trace.
    """

    def __init__(
        self,
        stream: RecordStream,
        emit: Callable[[RecordEvent], object],
        on_end: Callable[[RecordStream], object] | None = None,
    ) -> None:
        self._stream = stream
        self._events = iter(stream)
        self._emit = emit
        self._on_end = on_end
        self._error: BaseException | None = None
        self._pending: RecordEvent | None = None
        self._done = False
        self._advance()

    def _advance(self) -> None:
        if self._done:
            self._pending = None
            return
        try:
            self._pending = next(self._events, None)
        except BaseException as exc:
            self._error = exc
            self._pending = None
        if self._pending is None:
            self._done = True
            if self._error is None and self._on_end is not None:
                self._on_end(self._stream)

    def until(self, step: int) -> None:
        """Emit every record event logged before step ``step`` was dispatched."""
        while self._pending is not None and self._pending.step < step:
            self._emit(self._pending)
            self._advance()

    def finish(self, last_step: int | None = None) -> None:
        """Emit the rest (up to ``last_step``), then raise a read error if one happened."""
        while self._pending is not None and (last_step is None or self._pending.step <= last_step):
            self._emit(self._pending)
            self._advance()
        if self._error is not None:
            raise self._error


# -- replaying ---------------------------------------------------------------------------


def _is_host(header: TraceHeader) -> bool:
    from .host import is_host_trace

    return is_host_trace(header)


def replay_trace(
    path: str | Path,
    *,
    until_step: int | None = None,
    on_step: Callable[[DispatchEvent], object] | None = None,
) -> tuple[PlayResult, bool]:
    """Replay ``path`` as its header says (simulation or host mode).

    Returns the result and whether ``on_step`` saw the steps: host-mode
    traces replay through :func:`replay.host.play_host`, which has no
    ``on_step``.
    """
    with TraceReader(path, strict=False) as reader:
        header = reader.header
    if _is_host(header):
        from .host import play_host

        return play_host(path, until_step=until_step), False
    return play(path, until_step=until_step, on_step=on_step), True


def _notes_for_truncation(stream: RecordStream) -> str:
    error = stream.stop_error
    why = "" if error is None else f" (expected {error.expected}, found {error.found})"
    return (
        f"the trace ends here: truncated at byte {stream.truncated_at}{why}; "
        "later steps ran on without it"
    )


# -- dump --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DumpResult:
    play: PlayResult | None
    steps_written: int
    records_written: int
    steps_regenerated: bool


def dump(
    path: str | Path,
    out: TextIO,
    *,
    kinds: Iterable[str] | None = None,
    from_step: int | None = None,
    to_step: int | None = None,
    as_json: bool = False,
    replay: bool = True,
) -> DumpResult:
    """Write a trace's steps (regenerated by replay) and records, interleaved, to ``out``.

    ``kinds`` selects step and record kinds (:func:`expand_kinds`); steps and
    records outside ``[from_step, to_step]`` are left out. With ``as_json``
    each line is one JSON object (``header``, ``step``, ``record``, ``note``,
    ``end``). Raises ReplayDivergence (after writing what came before it).
    """
    selected = expand_kinds(kinds) if kinds is not None else None
    lo = 0 if from_step is None else from_step
    counts = {"steps": 0, "records": 0}

    def wanted(kind: str, step: int) -> bool:
        in_range = step >= lo and (to_step is None or step <= to_step)
        return in_range and (selected is None or kind in selected)

    def line(text: str, obj: dict[str, Any]) -> None:
        out.write((json.dumps(obj, separators=(",", ":")) if as_json else text) + "\n")

    def emit_record(rec: RecordEvent) -> None:
        if wanted(rec.kind, rec.step):
            counts["records"] += 1
            line(rec.format(), rec.to_json())

    def note(stream: RecordStream) -> None:
        if stream.truncated_at is not None:
            text = _notes_for_truncation(stream)
            line(f"# {text}", {"type": "note", "text": text})

    with RecordStream(path) as stream:
        header = stream.header
        line(_header_text(header, path), header_to_json(header, path))
        if not as_json:
            line(f"{'step':>8}  {'time':>17}  {'thread':<20} {'context':<12} {'kind':<10} what", {})
        interleaver = Interleaver(stream, emit_record, note)

        def on_step(ev: DispatchEvent) -> None:
            interleaver.until(ev.step)
            if wanted(ev.kind, ev.step):
                counts["steps"] += 1
                line(format_step(ev), step_to_json(ev))

        sink = SafeSink(on_step)
        result: PlayResult | None = None
        regenerated = False
        if replay:
            result, regenerated = replay_trace(path, until_step=to_step, on_step=sink)
            sink.check()
        interleaver.finish(to_step)
    end: dict[str, Any] = {"type": "end", "steps_regenerated": regenerated}
    text = "# end"
    if result is not None:
        end.update(_play_json(result))
        text = f"# end: {_play_text(result)}"
    if not regenerated:
        why = "--records-only" if not replay else "host-mode traces replay without on_step"
        text += f" (steps not regenerated: {why})"
    line(text, end)
    return DumpResult(result, counts["steps"], counts["records"], regenerated)


def _header_text(header: TraceHeader, path: str | Path) -> str:
    params = ", ".join(f"{k}={v!r}" for k, v in header.parameters.items()) or "none"
    faults = ", ".join(header.faults) or "none"
    return (
        f"# {path}: {header.scenario}, seed {header.seed}, chooser {header.chooser}, "
        f"params {params}, faults {faults}; format {header.format_version}, "
        f"evreplay {header.package_version}, python {header.python_version}"
    )


def _play_json(result: PlayResult) -> dict[str, Any]:
    return {
        "steps": result.steps,
        "time_ns": result.time_ns,
        "reason": result.reason,
        "failure": result.failure,
        "bit_exact": result.bit_exact,
        "complete": result.complete,
        "truncated_at": result.truncated_at,
        "events": result.events,
    }


def _play_text(result: PlayResult) -> str:
    text = f"{result.steps} steps, {format_ns(result.time_ns)} virtual, {result.reason}"
    if result.failure is not None:
        text += f": {result.failure}"
    return text


# -- diff --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StepDifference:
    """Where two step streams part: the first position whose steps differ."""

    #: 1-based position of the first differing step.
    position: int
    a: DispatchEvent | None
    b: DispatchEvent | None
    #: The identical steps just before it, oldest first.
    before: tuple[DispatchEvent, ...]
    after_a: tuple[DispatchEvent, ...]
    after_b: tuple[DispatchEvent, ...]


@dataclass(frozen=True, slots=True)
class RecordDifference:
    """The first record event at which two traces differ (None: that trace ended)."""

    index: int
    a: RecordEvent | None
    b: RecordEvent | None


def first_step_difference(
    a: Iterable[DispatchEvent], b: Iterable[DispatchEvent], *, context: int = 5
) -> StepDifference | None:
    """The first step where ``a`` and ``b`` differ, with ``context`` steps around it."""
    before: deque[DispatchEvent] = deque(maxlen=max(context, 0))
    ia, ib = iter(a), iter(b)
    position = 0
    while True:
        position += 1
        sa, sb = next(ia, None), next(ib, None)
        if sa is None and sb is None:
            return None
        if sa != sb:
            after_a = tuple(_take(ia, context))
            after_b = tuple(_take(ib, context))
            return StepDifference(position, sa, sb, tuple(before), after_a, after_b)
        assert sa is not None
        before.append(sa)


def _take(it: Iterator[DispatchEvent], n: int) -> Iterator[DispatchEvent]:
    for _ in range(n):
        item = next(it, None)
        if item is None:
            return
        yield item


def first_record_difference(
    a: Iterable[RecordEvent], b: Iterable[RecordEvent]
) -> RecordDifference | None:
    ia, ib = iter(a), iter(b)
    index = 0
    while True:
        ra, rb = next(ia, None), next(ib, None)
        if ra is None and rb is None:
            return None
        if ra is None or rb is None or ra.key() != rb.key():
            return RecordDifference(index, ra, rb)
        index += 1


_HEADER_FIELDS: Final = (
    "format_version", "scenario", "parameters", "seed", "chooser", "faults",
    "package_version", "python_version", "extensions",
)


def header_differences(a: TraceHeader, b: TraceHeader) -> list[str]:
    """``"name: A value, B value"`` for each header field that differs."""
    out = []
    for name in _HEADER_FIELDS:
        va, vb = getattr(a, name), getattr(b, name)
        if isinstance(va, Mapping):
            va, vb = dict(va), dict(vb)
        if va != vb:
            out.append(f"{name}: A {va!r}, B {vb!r}")
    return out


@dataclass(frozen=True, slots=True)
class DiffResult:
    identical_bytes: bool
    headers: tuple[str, ...] = ()
    steps: StepDifference | None = None
    records: RecordDifference | None = None
    #: Steps regenerated from each trace (None: not regenerated).
    steps_a: int | None = None
    steps_b: int | None = None
    #: Why a side's steps may be incomplete (its replay diverged, it is a host trace).
    notes: tuple[str, ...] = ()

    @property
    def identical(self) -> bool:
        if self.identical_bytes:
            return True
        return not (self.headers or self.steps or self.records or self.notes)


def _file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _spool_steps(path: str | Path, spool: IO[str], side: str) -> tuple[int | None, str | None]:
    """Write every step replaying ``path`` regenerates to ``spool``; (steps, note)."""
    count = [0]

    def write(ev: DispatchEvent) -> None:
        spool.write(json.dumps(step_to_json(ev), separators=(",", ":")) + "\n")
        count[0] += 1

    sink = SafeSink(write)
    note = None
    try:
        _, regenerated = replay_trace(path, on_step=sink)
        if not regenerated:
            return None, f"{side}: a host-mode trace: steps not regenerated"
    except ReplayDivergence as exc:
        first = str(exc).splitlines()[0]
        note = f"{side} does not replay here ({first}): its steps stop there"
    sink.check()
    spool.flush()
    spool.seek(0)
    return count[0], note


def diff(a: str | Path, b: str | Path, *, context: int = 5) -> DiffResult:
    """Compare two traces: headers, the steps their replays regenerate, and their records."""
    with TraceReader(a, strict=False) as ra, TraceReader(b, strict=False) as rb:
        ha, hb = ra.header, rb.header
    if _file_sha256(a) == _file_sha256(b):
        return DiffResult(identical_bytes=True)
    headers = tuple(header_differences(ha, hb))
    with tempfile.TemporaryFile("w+", encoding="utf-8") as sa, \
            tempfile.TemporaryFile("w+", encoding="utf-8") as sb:
        steps_a, note_a = _spool_steps(a, sa, "A")
        steps_b, note_b = _spool_steps(b, sb, "B")
        steps = None
        if steps_a is not None and steps_b is not None:
            steps = first_step_difference(read_steps(sa), read_steps(sb), context=context)
    with RecordStream(a) as ea, RecordStream(b) as eb:
        records = first_record_difference(ea, eb)
    notes = tuple(n for n in (note_a, note_b) if n is not None)
    return DiffResult(False, headers, steps, records, steps_a, steps_b, notes)


# -- stats -------------------------------------------------------------------------------


def count_chunks(path: str | Path) -> int:
    """Whole chunks in the file, the header chunk included (framing only; no checks)."""
    chunks = 0
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        offset = len(MAGIC)
        while offset + CHUNK_HEADER_SIZE <= size:
            f.seek(offset)
            length = CHUNK_HEADER.unpack(f.read(CHUNK_HEADER_SIZE))[0]
            offset += CHUNK_HEADER_SIZE + length
            if offset > size:
                break
            chunks += 1
    return chunks


@dataclass(frozen=True, slots=True)
class TraceStats:
    path: str
    header: TraceHeader
    bytes: int
    chunks: int
    complete: bool
    truncated_at: int | None
    #: Trace records by EventKind name (a CHOICES batch is one record).
    records: int
    records_by_kind: Mapping[str, int]
    #: Record events (each decision of a batch is one), and decisions among them.
    events: int
    decisions: int
    choices_bytes: int
    #: From the replay (None / empty when not replayed).
    steps: int | None
    time_ns: int | None
    reason: str | None
    failure: str | None
    steps_by_kind: Mapping[str, int]
    steps_by_thread: Mapping[str, int]
    divergence: str | None = None
    #: False when the replay could not report steps (host-mode traces).
    steps_regenerated: bool = True

    @property
    def bytes_per_step(self) -> float | None:
        return self.bytes / self.steps if self.steps else None

    @property
    def bytes_per_decision(self) -> float | None:
        return self.bytes / self.decisions if self.decisions else None

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "scenario": self.header.scenario,
            "seed": self.header.seed,
            "chooser": self.header.chooser,
            "bytes": self.bytes,
            "chunks": self.chunks,
            "complete": self.complete,
            "truncated_at": self.truncated_at,
            "records": self.records,
            "records_by_kind": dict(self.records_by_kind),
            "events": self.events,
            "decisions": self.decisions,
            "choices_bytes": self.choices_bytes,
            "steps": self.steps,
            "time_ns": self.time_ns,
            "reason": self.reason,
            "failure": self.failure,
            "steps_by_kind": dict(self.steps_by_kind),
            "steps_by_thread": dict(self.steps_by_thread),
            "bytes_per_step": self.bytes_per_step,
            "bytes_per_decision": self.bytes_per_decision,
            "divergence": self.divergence,
            "steps_regenerated": self.steps_regenerated,
        }


def stats(path: str | Path, *, replay: bool = True) -> TraceStats:
    """Counts and sizes of a trace; with ``replay``, of the steps it regenerates too."""
    by_kind: Counter[str] = Counter()
    by_thread: Counter[str] = Counter()

    def count(ev: DispatchEvent) -> None:
        by_kind[ev.kind] += 1
        by_thread[ev.thread] += 1

    result: PlayResult | None = None
    divergence = None
    regenerated = False
    if replay:
        sink = SafeSink(count)
        try:
            result, regenerated = replay_trace(path, on_step=sink)
        except ReplayDivergence as exc:
            divergence = str(exc)
        sink.check()
    with RecordStream(path) as stream:
        for _ in stream:
            pass
    return TraceStats(
        path=str(path),
        header=stream.header,
        bytes=os.path.getsize(path),
        chunks=count_chunks(path),
        complete=stream.complete,
        truncated_at=stream.truncated_at,
        records=stream.records,
        records_by_kind=dict(stream.records_by_kind),
        events=stream.events,
        decisions=stream.decisions,
        choices_bytes=stream.choices_bytes,
        steps=None if result is None else result.steps,
        time_ns=None if result is None else result.time_ns,
        reason=None if result is None else result.reason,
        failure=None if result is None else result.failure,
        steps_by_kind=dict(by_kind.most_common()),
        steps_by_thread=dict(by_thread.most_common()),
        divergence=divergence,
        steps_regenerated=regenerated,
    )


# -- export ------------------------------------------------------------------------------


def export(path: str | Path, out: TextIO, *, fmt: str = "perfetto", **options: Any) -> Any:
    """Export a trace's run for another tool; ``fmt`` is ``perfetto`` (Chrome trace events)."""
    if fmt in ("perfetto", "chrome"):
        from .perfetto import export_perfetto

        return export_perfetto(path, out, **options)
    raise ValueError(f"unknown export format {fmt!r} (known: perfetto)")


# -- verify ------------------------------------------------------------------------------


class Outcome(Enum):
    OK = "ok"  #: reads strictly and replays bit-exactly
    DIVERGED = "diverged"  #: the replay departs from the trace
    BAD = "bad"  #: not a whole, valid trace, or its scenario cannot be loaded


@dataclass(frozen=True, slots=True)
class VerifyResult:
    path: Path
    outcome: Outcome
    message: str
    play: PlayResult | None = None


def find_traces(root: str | Path) -> list[Path]:
    """Every ``*.evr`` file under ``root`` (or ``root`` itself), sorted."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(2, "No such file or directory", str(root))
    return sorted(p for p in root.rglob("*.evr") if p.is_file())


def verify_trace(path: str | Path) -> VerifyResult:
    """Read ``path`` strictly (a truncated trace is bad), replay it, check bit-exactness."""
    path = Path(path)
    try:
        with TraceReader(path) as reader:
            for _ in reader:
                pass
        result, _ = replay_trace(path)
    except ReplayDivergence as exc:
        return VerifyResult(path, Outcome.DIVERGED, str(exc).splitlines()[0])
    except (ReplayError, OSError) as exc:
        return VerifyResult(path, Outcome.BAD, _one_line(exc))
    except Exception as exc:  # a scenario that cannot even be set up is this trace's problem
        return VerifyResult(path, Outcome.BAD, f"{type(exc).__name__}: {_one_line(exc)}")
    if not result.bit_exact:
        return VerifyResult(
            path, Outcome.DIVERGED, "replays, but re-records different bytes (not bit-exact)",
            result,
        )
    text = f"{result.steps} steps, {format_ns(result.time_ns)} virtual, bit-exact"
    if result.failure is not None:
        text += f", replays to the same failure: {result.failure}"
    return VerifyResult(path, Outcome.OK, text, result)


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror}"
    lines = str(exc).splitlines()
    return lines[0] if lines else type(exc).__name__


# -- check-determinism -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeterminismRun:
    """One run in its own process: a recording, then a dump of it in the same process."""

    index: int
    hash_seed: int
    trace: Path
    dump: Path
    #: Exit codes of ``replay record`` (0, or 1: the scenario failed) and ``replay dump``.
    record_exit: int
    dump_exit: int
    trace_sha256: str
    steps_sha256: str
    #: The recording's summary line, and why the dump failed (if it did).
    summary: str
    problem: str | None


@dataclass(frozen=True, slots=True)
class DeterminismReport:
    scenario: str
    seed: int
    runs: tuple[DeterminismRun, ...]
    #: Indices (into runs) of the first pair that differ.
    mismatch: tuple[int, int] | None
    steps: StepDifference | None
    records: RecordDifference | None

    @property
    def ok(self) -> bool:
        return self.mismatch is None and all(r.problem is None for r in self.runs)


def _child_env(hash_seed: int) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONHASHSEED"] = str(hash_seed)
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    extra = [os.getcwd()]
    for entry in sys.path:
        real = os.path.realpath(entry or ".")
        if os.path.isdir(real) and not any(real.startswith(p + os.sep) for p in prefixes):
            extra.append(real)
    if env.get("PYTHONPATH"):
        extra.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(extra))
    return env


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _steps_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith('{"type":"step"'):
                h.update(line.encode())
    return h.hexdigest()


def _one_run(
    index: int, hash_seed: int, record_args: Sequence[str], workdir: Path
) -> DeterminismRun:
    trace = workdir / f"run{index + 1}.evr"
    dump_path = workdir / f"run{index + 1}.jsonl"
    env = _child_env(hash_seed)
    base = [sys.executable, "-m", "replay"]
    rec = subprocess.run(
        [*base, "record", *record_args, "-o", str(trace)],
        env=env, capture_output=True, text=True, check=False,
    )
    if rec.returncode not in (0, 1) or not trace.is_file():
        raise ReplayError(
            f"run {index + 1} (PYTHONHASHSEED={hash_seed}): 'replay record' failed with exit "
            f"{rec.returncode}: {_last_line(rec.stderr) or _last_line(rec.stdout)}"
        )
    with open(dump_path, "w", encoding="utf-8") as out:
        dumped = subprocess.run(
            [*base, "dump", "--json", str(trace)],
            env=env, stdout=out, stderr=subprocess.PIPE, text=True, check=False,
        )
    problem = None
    if dumped.returncode != 0:
        lines = [line.strip() for line in dumped.stderr.splitlines() if line.strip()]
        why = next((line for line in lines if "replay diverged" in line), _last_line(dumped.stderr))
        problem = f"its trace does not replay in a process like the one that recorded it: {why}"
    return DeterminismRun(
        index, hash_seed, trace, dump_path, rec.returncode, dumped.returncode,
        _file_sha256(trace), _steps_sha256(dump_path), _last_line(rec.stdout), problem,
    )


def check_determinism(
    scenario: str,
    *,
    runs: int,
    workdir: str | Path,
    seed: int = 0,
    record_args: Sequence[str] = (),
    hash_seeds: Sequence[int] | None = None,
    jobs: int | None = None,
    context: int = 5,
    on_run: Callable[[DeterminismRun], object] | None = None,
) -> DeterminismReport:
    """Record ``scenario`` ``runs`` times in separate processes and compare the runs.

    Run ``i`` (0-based) uses ``PYTHONHASHSEED = hash_seeds[i]`` (default
    ``i + 1``): ``replay record SCENARIO --seed SEED *record_args``, then
    ``replay dump --json`` of that trace in the same kind of process, which
    regenerates its steps (callback names included, which the trace's
    digests do not cover). The runs agree when their trace bytes and their
    steps are identical and each trace replays where it was recorded.
    """
    if runs < 2:
        raise ValueError(f"--runs must be at least 2, not {runs}")
    seeds = list(hash_seeds) if hash_seeds is not None else [i + 1 for i in range(runs)]
    if len(seeds) != runs:
        raise ValueError(f"{runs} runs need {runs} hash seeds, not {len(seeds)}")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    args = [scenario, "--seed", str(seed), *record_args]
    workers = max(1, min(runs, jobs or os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_one_run, i, seeds[i], args, workdir) for i in range(runs)]
        results = []
        for future in futures:
            run = future.result()
            if on_run is not None:
                on_run(run)
            results.append(run)
    first = results[0]
    mismatch = None
    for other in results[1:]:
        if (other.trace_sha256, other.steps_sha256) != (first.trace_sha256, first.steps_sha256):
            mismatch = (0, other.index)
            break
    steps = records = None
    if mismatch is not None:
        other = results[mismatch[1]]
        with open(first.dump, encoding="utf-8") as fa, open(other.dump, encoding="utf-8") as fb:
            steps = first_step_difference(read_steps(fa), read_steps(fb), context=context)
        with RecordStream(first.trace) as ea, RecordStream(other.trace) as eb:
            records = first_record_difference(ea, eb)
    return DeterminismReport(scenario, seed, tuple(results), mismatch, steps, records)
