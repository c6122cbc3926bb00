"""What the tools share: step and record kinds, formatting and JSON, the record stream,
the interleaver that puts records between steps, and replaying a trace for its steps.
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from evloop import DispatchEvent

from ..errors import TraceFormatError
from ..trace.choices import batch_decisions
from ..trace.clockpoints import batch_clock_checkpoints
from ..trace.describe import detail_text, record_detail
from ..trace.format import EventKind
from ..trace.header import TraceHeader
from ..trace.reader import TraceReader

__all__ = [
    "RECORD_KINDS",
    "STEP_KINDS",
    "Interleaver",
    "RecordEvent",
    "RecordStream",
    "SafeSink",
    "expand_kinds",
    "format_ns",
    "format_step",
    "header_to_json",
    "jsonable",
    "read_steps",
    "step_from_json",
    "step_to_json",
]

#: What a step can be (``DispatchEvent.kind``).
STEP_KINDS: Final = ("bh", "read", "write", "poll_ready", "timer", "turn", "input")
#: What a record event can be (a CHOICES batch gives one ``choice`` per decision).
RECORD_KINDS: Final = (
    "checkpoint", "choice", "input", "clock", "random", "mutex", "shutdown", "fault",
    "async_event",
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
        return detail_text(self.kind, self.detail)

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
                self.choices_bytes += len(record[2])
                for step, n, choice in batch_decisions(record[1], record[2]):
                    self.decisions += 1
                    yield self._event(step, "choice", {"options": n, "choice": choice})
                continue
            if record[0] == EventKind.CLOCK_CHECKPOINTS:
                for step, clock in batch_clock_checkpoints(record[1], record[2]):
                    kind, detail = record_detail((EventKind.CLOCK_CHECKPOINTS, step, clock))
                    yield self._event(step, kind, detail)
                continue
            if record[0] != EventKind.MUTEX:
                step = record[1]
            kind, detail = record_detail(tuple(record))
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


def truncation_note(stream: RecordStream) -> str:
    error = stream.stop_error
    why = "" if error is None else f" (expected {error.expected}, found {error.found})"
    return (
        f"the trace ends here: truncated at byte {stream.truncated_at}{why}; "
        "later steps ran on without it"
    )
