"""Writing and reading trace files, one chunk at a time.

Rules kept here (docs/trace-format.md has the layout):

* **Bounded memory both ways.** The writer holds at most one chunk; the reader
  holds at most one chunk's payload (and msgpack's copy of it) and yields
  records one at a time. A trace of any length streams through both.
* **Chunk boundaries are a pure function of the records.** A chunk closes when
  its payload reaches ``chunk_threshold`` bytes (or MAX_CHUNK_RECORDS
  records), never on a timer, so the same records always give the same bytes.
* **Crash safety.** Every finished chunk is handed to the OS at once, and the
  END record is written only by a clean ``close()``. A recording cut short by
  a crash is therefore whole chunks plus, at worst, part of one at the end:
  a tolerant reader (``strict=False``) replays the whole chunks and reports
  where and why the trace stops; a strict reader raises.
* **Truncation is told apart from corruption.** A crash or kill leaves a
  prefix of what the writer wrote: the file ends at a chunk boundary or inside
  the last chunk. That, and only that, a tolerant reader accepts. A chunk whose
  bytes are all there but wrong (bad CRC, impossible length, wrong records)
  was never written so, and no mode tolerates it.
* **Hostile bytes give TraceFormatError and nothing else**, with the offset
  and what was expected. Every length is checked before it is read.
* **The chain holds the trace together** (version 2). Each data chunk's last
  record is CHAIN, the SHA-256 of the records before it since the HEADER; the
  reader checks it right after the CRC, before decoding a record of the
  chunk, and drops it. A header or record changed with every CRC made right
  again, or chunks reordered, stops the reader at the first chunk whose
  CHAIN differs, in either mode: a crash cannot leave that.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, BinaryIO, Final

import msgpack  # type: ignore[import-untyped]

from ..errors import InvalidRecordError, TraceFormatError
from .files import open_target
from .format import (
    CHAIN_PREFIX,
    CHAIN_RECORD_SIZE,
    CHUNK_HEADER,
    CHUNK_HEADER_SIZE,
    FORMAT_NAME,
    FORMAT_VERSION,
    HEADER_UNPACKER_LIMITS,
    MAGIC,
    MAX_CHUNK_PAYLOAD,
    MAX_CHUNK_RECORDS,
    READABLE_VERSIONS,
    RECORD_UNPACKER_LIMITS,
    EventKind,
)
from .header import HEADER_FIELDS, TraceHeader, header_from_fields
from .records import MapPairs, check_record, describe_value

__all__ = ["Record", "TracePosition", "TraceReader"]

#: A record as the reader yields it: a tuple ``(kind, *fields)``, already
#: checked against its kind's layout. ``kind`` is a plain int equal to its
#: EventKind member.
Record = tuple[Any, ...]

#: What msgpack raises on bytes it cannot decode within our limits.
_DECODE_ERRORS: Final = (ValueError, msgpack.UnpackException)

_END: Final = int(EventKind.END)
def _is_array_type_byte(byte: int) -> bool:
    return 0x90 <= byte <= 0x9F or byte in (0xDC, 0xDD)  # fixarray, array 16, array 32


@dataclass(frozen=True, slots=True)
class TracePosition:
    """Where a reader is: the record it yielded last and the chunk that held it.

    Before the first record, ``record_index`` is -1 and ``chunk_offset`` is the
    header chunk's offset.
    """

    chunk_offset: int
    record_index: int


class TraceReader:
    """Reads a trace, one record at a time, checking everything.

    ``source`` is a path (opened and closed by the reader) or a binary file
    object (left open). The header is read and checked at once (``header``);
    iterating yields each record after it as a tuple ``(kind, *fields)``, and
    stops after END.

    ``strict=True`` (the default, for verification) raises TraceFormatError on
    any damage, including a trace that ends without END. ``strict=False`` (for
    replaying what a crash left) also accepts a trace that ends early, at a
    chunk boundary or inside a chunk after the header chunk: it yields the
    records of every whole chunk, stops cleanly, and sets ``truncated_at``
    (the offset where the whole chunks end) and ``stop_error`` (the error a
    strict reader raises there). After END, ``complete`` is true. Corruption
    (bytes present but wrong) and a damaged header raise in either mode.
    """

    def __init__(self, source: str | os.PathLike[str] | BinaryIO, *, strict: bool = True) -> None:
        self.strict = strict
        self.complete = False
        self.truncated_at: int | None = None
        self.stop_error: TraceFormatError | None = None
        #: Records yielded so far (END not counted).
        self.records_read = 0
        #: The largest chunk payload held so far, in bytes.
        self.peak_buffered_bytes = 0
        self._file, self._owned, self.path = open_target(source, writing=False)
        self._chunk_offset = len(MAGIC)
        self._last_chunk_offset = len(MAGIC)
        #: The running SHA-256 of the records so far (version 2), else None.
        self._chain: Any = None
        try:
            self.header = self._read_header()
        except BaseException:
            self.close()
            raise
        self._records = self._iter_records()

    # -- public API ---------------------------------------------------------

    def __iter__(self) -> Iterator[Record]:
        return self._records

    def __next__(self) -> Record:
        return next(self._records)

    def tell(self) -> TracePosition:
        """The chunk offset and index of the record yielded last (like Unpacker.tell)."""
        return TracePosition(self._last_chunk_offset, self.records_read - 1)

    def close(self) -> None:
        """Close the file if the reader opened it. Idempotent."""
        if self._owned:
            self._file.close()

    def __enter__(self) -> TraceReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- framing ------------------------------------------------------------

    def _error(
        self, offset: int, expected: str, found: str, record_index: int | None = None
    ) -> TraceFormatError:
        return TraceFormatError(offset, expected, found, self.path, record_index)

    def _read_exact(self, size: int) -> bytes:
        """Up to ``size`` bytes; fewer only at end of file. ``size`` is bounded."""
        data = self._file.read(size)
        if not isinstance(data, bytes):
            raise TypeError(f"TraceReader needs a binary file, got {type(data).__name__}")
        while 0 < len(data) < size:
            more = self._file.read(size - len(data))
            if not more:
                break
            data += more
        return data

    def _read_chunk(
        self, offset: int, at_end: str = "end of file (no END record: the trace is incomplete)"
    ) -> tuple[bytes, int] | TraceFormatError:
        """The payload and record count of the chunk at ``offset``.

        Returns (not raises) the error when the file ends before the chunk
        does, the one damage a crash leaves; raises it for a chunk whose bytes
        are all there but wrong.
        """
        head = self._read_exact(CHUNK_HEADER_SIZE)
        if len(head) < CHUNK_HEADER_SIZE:
            found = f"{len(head)} bytes (truncated)"
            if not head:
                found = at_end
            return self._error(offset, f"a chunk header ({CHUNK_HEADER_SIZE} bytes)", found)
        length, count, crc = CHUNK_HEADER.unpack(head)
        if not 1 <= length <= MAX_CHUNK_PAYLOAD:
            raise self._error(
                offset, f"a chunk payload length in [1, {MAX_CHUNK_PAYLOAD}]", str(length)
            )
        most = min(length, MAX_CHUNK_RECORDS)
        if not 1 <= count <= most:
            raise self._error(offset + 4, f"a chunk record count in [1, {most}]", str(count))
        payload = self._read_exact(length)
        if len(payload) < length:
            return self._error(
                offset + CHUNK_HEADER_SIZE,
                f"a chunk payload of {length} bytes",
                f"{len(payload)} bytes (truncated)",
            )
        actual = zlib.crc32(payload, zlib.crc32(head[:8]))
        if actual != crc:
            raise self._error(
                offset,
                f"a chunk matching its crc32 0x{crc:08x}",
                f"crc32 0x{actual:08x} (corrupt)",
            )
        self.peak_buffered_bytes = max(self.peak_buffered_bytes, length)
        return payload, count

    # -- the header ---------------------------------------------------------

    def _read_header(self) -> TraceHeader:
        magic = self._read_exact(len(MAGIC))
        if magic != MAGIC:
            if not magic:
                found = "an empty file"
            elif len(magic) < len(MAGIC) and MAGIC.startswith(magic):
                found = f"{len(magic)} bytes (truncated)"
            else:
                found = f"{magic!r} (not an evreplay trace)"
            raise self._error(0, f"the evreplay trace magic {MAGIC!r}", found)
        offset = len(MAGIC)
        chunk = self._read_chunk(offset, "end of file")
        if isinstance(chunk, TraceFormatError):
            raise chunk  # without its header, a trace is nothing to replay
        payload, count = chunk
        at = offset + CHUNK_HEADER_SIZE
        if count != 1:
            raise self._error(offset + 4, "a header chunk of 1 record", f"{count} records")
        if not _is_array_type_byte(payload[0]):
            raise self._error(
                at, "a HEADER record (a msgpack array)", f"msgpack type byte 0x{payload[0]:02x}"
            )
        unpacker = msgpack.Unpacker(object_pairs_hook=MapPairs, **HEADER_UNPACKER_LIMITS)
        unpacker.feed(payload)
        try:
            header = self._decode_header(unpacker, at)
        except msgpack.OutOfData:
            raise self._error(at, "a whole HEADER record", "the chunk ends inside it") from None
        except _DECODE_ERRORS as exc:
            raise self._error(
                at, "a msgpack HEADER record", f"undecodable bytes ({exc!r})"
            ) from None
        if unpacker.tell() != len(payload):
            raise self._error(at, "end of the header chunk after the HEADER record", "more bytes")
        self._chunk_offset = at + len(payload)
        if header.format_version >= 2:
            self._chain = hashlib.sha256(payload)
        return header

    def _decode_header(self, unpacker: Any, at: int) -> TraceHeader:
        # Elements 0-2 are the format's stable envelope: check them one by one
        # before decoding anything that a later version may have changed.
        size = unpacker.read_array_header()
        if size < 3:
            raise self._error(
                at,
                "a HEADER record [0, format_name, format_version, ...]",
                f"an array of {size} items",
            )
        kind, name, version = unpacker.unpack(), unpacker.unpack(), unpacker.unpack()
        if kind != EventKind.HEADER or type(kind) is not int:
            raise self._error(at, "a HEADER record (kind 0)", f"kind {describe_value(kind)}")
        if name != FORMAT_NAME:
            raise self._error(at, f"format name {FORMAT_NAME!r}", describe_value(name))
        if version not in READABLE_VERSIONS or type(version) is not int:
            found = f"version {describe_value(version)}"
            if type(version) is int:
                newer = version > FORMAT_VERSION
                found = (
                    f"version {version} (written by {'a newer' if newer else 'an older'} evreplay)"
                )
            *earlier, last = map(str, READABLE_VERSIONS)
            known = f"{', '.join(earlier)} or {last}" if earlier else last
            raise self._error(at, f"format version {known}", found)
        if size != HEADER_FIELDS:
            raise self._error(at, f"a HEADER record of {HEADER_FIELDS} items", f"{size} items")
        fields = tuple(unpacker.unpack() for _ in range(size - 3))
        try:
            return header_from_fields(fields, version)
        except InvalidRecordError as exc:
            raise self._error(at, exc.expected, exc.found) from None

    # -- records ------------------------------------------------------------

    def _iter_records(self) -> Iterator[Record]:
        try:
            yield from self._records_until_end()
        finally:
            self.close()

    def _records_until_end(self) -> Iterator[Record]:
        unpacker = msgpack.Unpacker(**RECORD_UNPACKER_LIMITS)
        unpack = unpacker.unpack
        offset = self._chunk_offset
        index = 0
        while True:
            chunk = self._read_chunk(offset)
            if isinstance(chunk, TraceFormatError):  # the file ends here
                if self.strict:
                    raise chunk
                self.truncated_at = offset
                self.stop_error = chunk
                return
            payload, count = chunk
            size = len(payload)
            records: bytes | memoryview = payload
            if self._chain is not None:
                records, count = self._unchain(payload, count, offset)
            length = len(records)
            unpacker.feed(records)
            del chunk, payload, records  # the unpacker holds its own copy
            start = unpacker.tell()
            for position in range(count):
                try:
                    record = unpack()
                except msgpack.OutOfData:
                    raise self._error(
                        offset, "a whole record", "the chunk ends inside it", index
                    ) from None
                except _DECODE_ERRORS as exc:
                    raise self._error(
                        offset, "a msgpack record", f"undecodable bytes ({exc!r})", index
                    ) from None
                problem = check_record(record)
                if problem is not None:
                    raise self._error(offset, *problem, index)
                if record[0] == _END:
                    remaining = length - (unpacker.tell() - start)
                    self._end(record, offset, index, count - 1 - position, remaining)
                    self._expect_end_of_file(offset + CHUNK_HEADER_SIZE + size)
                    self.complete = True
                    return
                self._last_chunk_offset = offset
                self.records_read = index + 1
                yield record
                index += 1
            remaining = length - (unpacker.tell() - start)
            if remaining:
                raise self._error(
                    offset, f"end of chunk (record count {count})", f"{remaining} more bytes", index
                )
            offset += CHUNK_HEADER_SIZE + size

    def _unchain(self, payload: bytes, count: int, offset: int) -> tuple[memoryview, int]:
        """The chunk's records before its CHAIN record, once the CHAIN digest holds."""
        body = len(payload) - CHAIN_RECORD_SIZE
        if count < 2 or body < 1 or payload[body : body + len(CHAIN_PREFIX)] != CHAIN_PREFIX:
            raise self._error(
                offset, "a chunk whose last record is CHAIN (format version 2)", "none"
            )
        records = memoryview(payload)[:body]
        chain = self._chain
        chain.update(records)
        digest = chain.digest()
        found = payload[body + len(CHAIN_PREFIX) :]
        if found != digest:
            raise self._error(
                offset,
                f"a CHAIN digest of the header and records before it ({digest[:8].hex()}...)",
                f"{found[:8].hex()}... (the header or a record before it was altered "
                "after it was written)",
            )
        return records, count - 1

    def _end(
        self, record: Record, offset: int, index: int, records_after: int, bytes_after: int
    ) -> None:
        """Check the END record found at ``index``; it must end its chunk."""
        if records_after or bytes_after:
            found = (
                f"{records_after} more records" if records_after else f"{bytes_after} more bytes"
            )
            raise self._error(offset, "END as the last record of its chunk", found, index)
        total = record[1]
        if total != index:
            raise self._error(
                offset, f"END.total_records = {index} (the records before it)", str(total), index
            )

    def _expect_end_of_file(self, offset: int) -> None:
        if self._read_exact(1):
            raise self._error(offset, "end of file after the END chunk", "more bytes")
