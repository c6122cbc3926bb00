"""``replay diff``: where two traces first differ, in their headers, steps and records."""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

from evloop import DispatchEvent

from ..api import play
from ..errors import ReplayDivergence
from ..trace.header import TraceHeader
from ..trace.reader import TraceReader
from .events import RecordEvent, RecordStream, SafeSink, read_steps, step_to_json

__all__ = [
    "DiffResult",
    "RecordDifference",
    "StepDifference",
    "diff",
    "first_record_difference",
    "first_step_difference",
    "header_differences",
]

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
    #: Why a side's steps may be incomplete (its replay diverged).
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
        play(path, on_step=sink)
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
