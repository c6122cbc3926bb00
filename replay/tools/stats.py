"""``replay stats``: counts and rates of a trace, from its records and a replay."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evloop import DispatchEvent

from ..api import PlayResult, play
from ..errors import ReplayDivergence
from ..trace.format import CHUNK_HEADER, CHUNK_HEADER_SIZE, MAGIC
from ..trace.header import TraceHeader
from .events import RecordStream, SafeSink

__all__ = ["TraceStats", "count_chunks", "stats"]

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
    #: False when no replay reported steps (``replay=False``, or it diverged).
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
            result = play(path, on_step=sink)
            regenerated = True
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
