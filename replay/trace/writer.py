"""Writing a trace file, one chunk at a time (the rules are in replay/trace/reader.py)."""

from __future__ import annotations

import hashlib
import os
import zlib
from collections.abc import Sequence
from types import TracebackType
from typing import Any, BinaryIO, Final

import msgpack  # type: ignore[import-untyped]

from ..errors import InvalidRecordError
from .files import open_target
from .format import (
    CHAIN_PREFIX,
    CHUNK_HEADER_SIZE,
    DEFAULT_CHUNK_THRESHOLD,
    LENGTH_AND_COUNT,
    MAGIC,
    MAX_CHUNK_RECORDS,
    MAX_CHUNK_THRESHOLD,
    MAX_RECORD_SIZE,
    PACKER_OPTIONS,
    EventKind,
)
from .header import TraceHeader
from .records import check_record

__all__ = ["TraceWriter"]

_END: Final = int(EventKind.END)


class TraceWriter:
    """Writes a trace: the header at once, then records, then END on close.

    ``target`` is a path (the writer creates, owns and closes the file) or a
    binary file object (flushed but left open). Use as a context manager: a
    clean exit writes END; an exception flushes what was written as a whole
    chunk and leaves END out, so the trace reads as incomplete.

    ``write`` is the recorder's hot path: check, pack, append, and close the
    chunk if it reached ``chunk_threshold`` bytes. Not thread-safe.

    The trace is written in ``header.format_version``: FORMAT_VERSION for a
    new header, whose data chunks each end with a CHAIN record (format.py);
    a header read from a version 1 trace writes version 1, no CHAIN, so that
    a play's re-recording of an old trace compares bit-exact with it.
    """

    __slots__ = (
        "_buffer",
        "_chain",
        "_chunk_records",
        "_file",
        "_fsync",
        "_max_records",
        "_owned",
        "_pack",
        "_threshold",
        "bytes_written",
        "chunks_written",
        "closed",
        "header",
        "records_written",
    )

    def __init__(
        self,
        target: str | os.PathLike[str] | BinaryIO,
        header: TraceHeader,
        *,
        chunk_threshold: int = DEFAULT_CHUNK_THRESHOLD,
        fsync: bool = False,
    ) -> None:
        if not 1 <= chunk_threshold <= MAX_CHUNK_THRESHOLD:
            raise ValueError(
                f"chunk_threshold must be in [1, {MAX_CHUNK_THRESHOLD}], not {chunk_threshold}"
            )
        if not isinstance(header, TraceHeader):
            raise TypeError(f"header must be a TraceHeader, not {type(header).__name__}")
        #: The header this trace starts with.
        self.header = header
        self._pack = msgpack.Packer(**PACKER_OPTIONS).pack
        try:
            header_bytes: bytes = self._pack(header.to_record())
        except (ValueError, TypeError, OverflowError) as exc:
            raise InvalidRecordError("a header msgpack can pack", repr(exc)) from None
        if len(header_bytes) > MAX_RECORD_SIZE:
            raise InvalidRecordError(
                f"a header of at most {MAX_RECORD_SIZE} bytes packed", f"{len(header_bytes)} bytes"
            )
        self._threshold = chunk_threshold
        self._fsync = fsync
        self._buffer = bytearray()
        self._chunk_records = 0
        self.bytes_written = 0
        self.chunks_written = 0
        self.records_written = 0
        self.closed = False
        self._chain: Any = None
        self._max_records = MAX_CHUNK_RECORDS
        self._file, self._owned, _ = open_target(target, writing=True)
        # The header is a chunk of its own, on disk before any record, so that
        # even a recording killed at once is a readable, empty trace.
        try:
            self._file.write(MAGIC)
            self.bytes_written = len(MAGIC)
            self._buffer += header_bytes
            self._chunk_records = 1
            self._flush_chunk()
        except BaseException:
            if self._owned:
                self._file.close()
            raise
        if header.format_version >= 2:
            # From here on each chunk ends with its CHAIN record (format.py).
            self._chain = hashlib.sha256(header_bytes)
            self._max_records = MAX_CHUNK_RECORDS - 1

    def write(self, record: Sequence[Any]) -> None:
        """Append one record ``(kind, *fields)``; see docs/trace-format.md for layouts."""
        if self.closed:
            raise ValueError("write to a closed TraceWriter")
        problem = check_record(record)
        if problem is not None:
            raise InvalidRecordError(*problem, record_index=self.records_written)
        if record[0] == _END:
            raise InvalidRecordError(
                "a kind other than END (close() writes it)", "END", self.records_written
            )
        try:
            data: bytes = self._pack(record)
        except (ValueError, TypeError, OverflowError) as exc:  # e.g. a lone surrogate
            raise InvalidRecordError(
                "a record msgpack can pack", repr(exc), self.records_written
            ) from None
        if len(data) > MAX_RECORD_SIZE:
            raise InvalidRecordError(
                f"a record of at most {MAX_RECORD_SIZE} bytes packed",
                f"{len(data)} bytes",
                self.records_written,
            )
        buffer = self._buffer
        buffer += data
        self.records_written += 1
        self._chunk_records += 1
        if len(buffer) >= self._threshold or self._chunk_records >= self._max_records:
            self._flush_chunk()

    def flush(self) -> None:
        """Close the current chunk now (if it holds records): they reach the OS.

        Where a writer cuts chunks must be a function of the records alone, so
        that a replay re-recording the same records cuts them alike: host mode
        calls this at points its records decide (``replay/host/monitors.py``).
        """
        if self.closed:
            raise ValueError("flush of a closed TraceWriter")
        self._flush_chunk()

    def _flush_chunk(self) -> None:
        """Frame the buffered records as one chunk (CHAIN last) and hand it to the OS."""
        payload = self._buffer
        if not payload:
            return
        count = self._chunk_records
        chain = self._chain
        if chain is not None:
            chain.update(payload)
            payload += CHAIN_PREFIX
            payload += chain.digest()
            count += 1
        lengths = LENGTH_AND_COUNT.pack(len(payload), count)
        crc = zlib.crc32(payload, zlib.crc32(lengths))
        self._file.write(lengths + crc.to_bytes(4, "little"))
        self._file.write(payload)
        self._file.flush()
        self.bytes_written += CHUNK_HEADER_SIZE + len(payload)
        self.chunks_written += 1
        payload.clear()
        self._chunk_records = 0

    def close(self) -> None:
        """Write END (with the record count), flush, and close an owned file.

        Idempotent. With ``fsync=True``, also waits for the data to reach disk.
        """
        if self.closed:
            return
        self._buffer += self._pack((EventKind.END, self.records_written))
        self._chunk_records += 1
        self._finish()

    def abort(self) -> None:
        """Flush the buffered records as a whole chunk but write no END.

        The trace then reads as incomplete: strict readers reject it, tolerant
        readers replay it to its end. Idempotent; a no-op after ``close()``.
        """
        if not self.closed:
            self._finish()

    def _finish(self) -> None:
        self.closed = True
        try:
            self._flush_chunk()
            if self._fsync:
                os.fsync(self._file.fileno())
        finally:
            if self._owned:
                self._file.close()

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
