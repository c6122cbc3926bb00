"""Every exception the replay package raises on its own account.

One root, :class:`ReplayError`, so that a caller can tell a trace's or a
replay's complaints from everything else.

Each error keeps its facts as attributes and builds its message from them in
``__str__``; the constructor's arguments are also the exception's ``args``, so
an error pickles and unpickles intact (a divergence found in a worker process
reaches the parent whole).
"""

from __future__ import annotations

__all__ = [
    "InvalidRecordError",
    "ReplayDivergence",
    "ReplayError",
    "TraceFormatError",
]


class ReplayError(Exception):
    """Root of the errors raised by the replay package itself."""


class TraceFormatError(ReplayError):
    """A trace file is not what the format says it must be.

    Raised by :class:`~replay.trace.reader.TraceReader` (and by the CHOICES decoder)
    for every kind of damage: wrong magic, wrong format name or version,
    truncation, a bad checksum, undecodable msgpack, a record whose kind or
    fields are wrong. Nothing else escapes a reader reading hostile bytes.

    ``offset`` is the byte offset in the file of the structure named by
    ``expected``. For a problem with a record inside a chunk, ``offset`` is the
    offset of that chunk and ``record_index`` the record's index in the trace
    (0 is the first record after the header).
    """

    def __init__(
        self,
        offset: int,
        expected: str,
        found: str,
        path: str | None = None,
        record_index: int | None = None,
    ) -> None:
        super().__init__(offset, expected, found, path, record_index)
        self.offset = offset
        self.expected = expected
        self.found = found
        self.path = path
        self.record_index = record_index

    def __str__(self) -> str:
        prefix = "" if self.path is None else f"{self.path}: "
        if self.record_index is None:
            where = f"byte {self.offset}"
        else:
            where = f"chunk at byte {self.offset}: record {self.record_index}"
        return f"{prefix}{where}: expected {self.expected}, found {self.found}"


class InvalidRecordError(ReplayError, ValueError):
    """A record or header handed to the writer does not fit the format.

    The writer checks what it is given against the same layouts the reader
    enforces, so that it never writes a file the reader would reject. This is a
    bug in the caller (the recorder), so it is also a ``ValueError``.
    """

    def __init__(self, expected: str, found: str, record_index: int | None = None) -> None:
        super().__init__(expected, found, record_index)
        self.expected = expected
        self.found = found
        self.record_index = record_index

    def __str__(self) -> str:
        where = "" if self.record_index is None else f"record {self.record_index}: "
        return f"{where}expected {self.expected}, found {self.found}"


class ReplayDivergence(ReplayError):
    """A replayed run asked for something other than what the trace recorded.

    QEMU's ``replay_sync_error`` in one structured value: where the runs parted
    (``event_index`` in the trace, the loop's ``step``, the virtual time and the
    thread of control that asked), what the trace holds (``expected``), what the
    run did instead (``actual``) and the last events that did match
    (``recent``, oldest first), which is usually where the cause is. A replayer
    refuses further work after raising it.
    """

    def __init__(
        self,
        step: int,
        event_index: int,
        expected: object,
        actual: object,
        time_ns: int | None = None,
        thread: str | None = None,
        recent: tuple[object, ...] = (),
        noticed_step: int | None = None,
        last_good_step: int | None = None,
    ) -> None:
        super().__init__(
            step, event_index, expected, actual, time_ns, thread, recent, noticed_step,
            last_good_step,
        )
        #: Where the run departed from the trace: the step a recorded event was
        #: due at that the run passed without it, else the step it was noticed at.
        self.step = step
        #: The later step where the departure was noticed (None: noticed where it departed).
        self.noticed_step = noticed_step
        #: A digest that differs at a checkpoint says only that some step since
        #: the last checkpoint that matched (this one) departed.
        self.last_good_step = last_good_step
        self.event_index = event_index
        self.expected = expected
        self.actual = actual
        self.time_ns = time_ns
        self.thread = thread
        self.recent = tuple(recent)
        #: Set when the trace's scenario source differs from the current one
        #: (the header's ``scenario.source_hash``): says so, and what to do.
        self.scenario_changed: str | None = None

    def __str__(self) -> str:
        where = [f"step {self.step}"]
        if self.time_ns is not None:
            where.append(f"time {self.time_ns} ns")
        if self.thread is not None:
            where.append(f"thread {self.thread!r}")
        lines = [
            f"replay diverged at event {self.event_index} ({', '.join(where)})",
            f"  expected: {self.expected!r}",
            f"  actual:   {self.actual!r}",
        ]
        if self.noticed_step is not None:
            lines.append(
                f"  departed: at step {self.step}, where the trace's event was due; the run "
                f"went on without it and was stopped at step {self.noticed_step}"
            )
        elif self.last_good_step is not None:
            lines.append(
                f"  departed: at a step after {self.last_good_step} (the last checkpoint "
                f"that matched) and up to {self.step}; steps are not recorded one by one, "
                "so record with a smaller checkpoint interval to pin it"
            )
        if self.scenario_changed is not None:
            lines.append(f"  note: {self.scenario_changed}")
        if self.recent:
            lines.append("  recent events, oldest first:")
            lines.extend(f"    {event!r}" for event in self.recent)
        else:
            lines.append("  no earlier events")
        return "\n".join(lines)
