"""Tests for replay.trace.reader and .writer, on good and hostile bytes."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import random
import re
import struct
import tracemalloc
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgpack  # type: ignore[import-untyped]
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from replay.errors import InvalidRecordError, TraceFormatError
from replay.trace.choices import encode_choice_into, encode_choices
from replay.trace.format import (
    CHAIN_PREFIX,
    CHAIN_RECORD_SIZE,
    CHUNK_HEADER_SIZE,
    DEFAULT_CHUNK_THRESHOLD,
    MAGIC,
    MAX_CHUNK_PAYLOAD,
    MAX_RECORD_SIZE,
    EventKind,
)
from replay.trace.header import TraceHeader
from replay.trace.reader import Record, TracePosition, TraceReader
from replay.trace.records import check_record
from replay.trace.writer import TraceWriter
from tests.strategies import headers, records

K = EventKind
#: Most tests here frame chunks by hand, which version 1 (no CHAIN records)
#: keeps simple; the reader still reads it. Version 2's chain is tested at
#: the end, with HEADER_V2.
HEADER = TraceHeader(
    scenario="tests.scenarios:Echo",
    seed=7,
    package_version="0.1.0",
    python_version="3.11",
    parameters={"n": 3},
    format_version=1,
)
HEADER_V2 = dataclasses.replace(HEADER, format_version=2)
SAMPLE: list[Record] = [
    (K.CLOCK, 0, 1, 1_000),
    (K.CHOICE, 1, 3, 2),
    (K.CHOICES, 4, encode_choices([(0, 3, 1), (2, 2, 0), (1, 5, 4)])),
    (K.INPUT, 5, "serial0", b"hello\n"),
    (K.RANDOM, 6, 2**64 - 1),
    (K.MUTEX, 1, 2),
    (K.CHECKPOINT, 9, 1, 0xDEADBEEF_CAFEF00D),
    (K.FAULT, 10, 3, "disk0", -1),
    (K.CLOCK, 11, 2, -5),
    (K.SHUTDOWN, 12, "guest-poweroff"),
]
MAGIC_TEXT = r"b'\x89EVR\r\n\x1a\n'"
KNOWN_KINDS = (
    "a known event kind (END=1, CHECKPOINT=2, CHOICE=3, CHOICES=4, INPUT=5, CLOCK=6, "
    "RANDOM=7, MUTEX=8, SHUTDOWN=9, FAULT=10, "
    "CLOCK_CHECKPOINTS=12, ASYNC_EVENT=13)"
)


def write(
    recs: Sequence[Sequence[Any]],
    *,
    threshold: int = DEFAULT_CHUNK_THRESHOLD,
    header: TraceHeader = HEADER,
) -> bytes:
    out = io.BytesIO()
    with TraceWriter(out, header, chunk_threshold=threshold) as writer:
        for record in recs:
            writer.write(record)
    return out.getvalue()


def read_all(data: bytes, *, strict: bool = True) -> tuple[list[Record], TraceReader]:
    reader = TraceReader(io.BytesIO(data), strict=strict)
    return list(reader), reader


def chunks(data: bytes) -> list[tuple[int, int, int]]:
    """(offset, payload length, record count) of each chunk: a second, minimal reader."""
    found = []
    offset = len(MAGIC)
    while offset < len(data):
        length, count, _crc = struct.unpack_from("<III", data, offset)
        found.append((offset, length, count))
        offset += CHUNK_HEADER_SIZE + length
    assert offset == len(data)
    return found


def frame(payload: bytes, count: int) -> bytes:
    """One chunk around ``payload``, with a correct CRC."""
    head = struct.pack("<II", len(payload), count)
    return head + zlib.crc32(payload, zlib.crc32(head)).to_bytes(4, "little") + payload


def pack(value: object) -> bytes:
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


def header_chunk(**changes: Any) -> bytes:
    record = list(HEADER.to_record())
    for index, value in changes.items():
        record[int(index[1:])] = value
    return MAGIC + frame(pack(record), 1)


HEADER_BYTES = header_chunk()
DATA_START = len(HEADER_BYTES)  # the first data chunk's offset


def message(text: str) -> str:
    return "^" + re.escape(text) + "$"


# --- round trips -----------------------------------------------------------


def test_a_trace_round_trips() -> None:
    data = write(SAMPLE)
    reader = TraceReader(io.BytesIO(data))
    assert reader.header == HEADER
    assert list(reader) == SAMPLE
    assert reader.complete
    assert reader.records_read == len(SAMPLE)
    assert (reader.truncated_at, reader.stop_error) == (None, None)


def test_the_file_starts_with_magic_and_a_header_chunk() -> None:
    data = write([])
    assert data[:8] == b"\x89EVR\r\n\x1a\n"
    assert data.startswith(HEADER_BYTES)
    # One END record, alone in the last chunk.
    assert data[DATA_START:] == frame(bytes([0x92, 0x01, 0x00]), 1)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(records(), max_size=40), st.integers(1, 300), headers())
def test_any_valid_records_round_trip_and_recording_twice_gives_the_same_bytes(
    recs: list[Record], threshold: int, header: TraceHeader
) -> None:
    data = write(recs, threshold=threshold, header=header)
    assert write(recs, threshold=threshold, header=header) == data
    got, reader = read_all(data)
    assert got == [tuple(r) for r in recs]
    assert reader.header == header
    assert reader.complete


GOLDEN = bytes.fromhex(
    "89455652 0d0a1a0a 31000000 01000000 f1ea0152 9b00ae65 76726570 6c61792d"
    "74726163 6502a765 783a4563 686f81a1 6e0307a4 6669666f 90a5302e 312e30a4"
    "332e3131 802c0000 00030000 00bc8e3a 0d940301 03029201 01920bc4 20c0afac"
    "f7fa230a 7449bcf5 5594ce14 8fb95c2a 9aa19573 08c25271 291babdb c0"
)
#: The same trace in version 1, before the chain: still read, and still written
#: for a header of version 1 (a re-recording of an old trace).
GOLDEN_V1 = bytes.fromhex(
    "89455652 0d0a1a0a 31000000 01000000 4ee21e9b 9b00ae65 76726570 6c61792d"
    "74726163 6501a765 783a4563 686f81a1 6e0307a4 6669666f 90a5302e 312e30a4"
    "332e3131 80080000 00020000 00a4e6cf 5f940301 03029201 01"
)


@pytest.mark.parametrize(("version", "golden"), [(2, GOLDEN), (1, GOLDEN_V1)])
def test_the_bytes_are_those_of_the_example_in_the_docs(version: int, golden: bytes) -> None:
    # docs/trace-format.md section 7. If this changes, the format changed:
    # bump FORMAT_VERSION and update the docs.
    header = TraceHeader(
        scenario="ex:Echo",
        seed=7,
        package_version="0.1.0",
        python_version="3.11",
        parameters={"n": 3},
        format_version=version,
    )
    assert write([(K.CHOICE, 1, 3, 2)], header=header) == golden
    got, reader = read_all(golden)
    assert (got, reader.header) == ([(K.CHOICE, 1, 3, 2)], header)
    assert reader.header.format_version == version


def test_a_recorded_decision_costs_about_two_bytes() -> None:
    rng = random.Random(5)
    out = io.BytesIO()
    batch = bytearray()
    with TraceWriter(out, HEADER_V2) as writer:
        empty = (
            writer.bytes_written + len(pack([K.END, 0])) + CHUNK_HEADER_SIZE + CHAIN_RECORD_SIZE
        )
        for step in range(100_000):
            n_options = rng.randint(2, 8)
            encode_choice_into(batch, rng.randint(0, 127), n_options, rng.randrange(n_options))
            if len(batch) >= 4096:
                writer.write((K.CHOICES, step, bytes(batch)))
                batch.clear()
        writer.write((K.CHOICES, step, bytes(batch)))
    per_decision = (len(out.getvalue()) - empty) / 100_000
    assert 2.0 < per_decision < 2.01  # the requirement is at most 3


def test_records_come_back_as_tuples_whose_kind_equals_the_event_kind() -> None:
    got, _ = read_all(write([[K.MUTEX, 1, 2]]))
    assert got == [(K.MUTEX, 1, 2)]
    assert type(got[0]) is tuple
    assert got[0][0] == K.MUTEX


def test_chunk_boundaries_are_a_pure_function_of_the_records() -> None:
    data = write(SAMPLE, threshold=16)
    layout = chunks(data)
    # The rule: append the record; close the chunk once it holds >= 16 bytes.
    expected, size, count = [], 0, 0
    for record in [*SAMPLE, (K.END, len(SAMPLE))]:
        size, count = size + len(pack(record)), count + 1
        if size >= 16:
            expected.append((size, count))
            size, count = 0, 0
    if count:
        expected.append((size, count))
    assert [(length, count) for _, length, count in layout[1:]] == expected
    assert len(expected) > 4
    assert write(SAMPLE, threshold=16) == data


def test_a_threshold_of_one_gives_one_record_per_chunk() -> None:
    data = write(SAMPLE, threshold=1)
    assert [count for _, _, count in chunks(data)] == [1] * (len(SAMPLE) + 2)
    assert read_all(data)[0] == SAMPLE


def test_the_writer_counts_what_it_wrote() -> None:
    out = io.BytesIO()
    writer = TraceWriter(out, HEADER, chunk_threshold=16)
    assert (writer.bytes_written, writer.chunks_written) == (DATA_START, 1)
    for record in SAMPLE:
        writer.write(record)
    writer.close()
    writer.close()  # idempotent
    assert writer.records_written == len(SAMPLE)
    assert writer.bytes_written == len(out.getvalue())
    assert writer.chunks_written == len(chunks(out.getvalue()))
    assert not out.closed  # a file object given to the writer stays open


def test_paths_are_opened_and_closed_by_writer_and_reader(tmp_path: Path) -> None:
    path = tmp_path / "trace.evr"
    with TraceWriter(path, HEADER, fsync=True) as writer:
        writer.write(SAMPLE[0])
    reader = TraceReader(str(path))
    assert list(reader) == [SAMPLE[0]]
    assert reader._file.closed  # closed at the end of iteration
    with TraceReader(path) as reader:
        assert reader.header == HEADER
    assert reader._file.closed


class ShortReads(io.RawIOBase):
    """A file that never returns more than 5 bytes per read, like a pipe."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._data.read(min(size, 5))


def test_short_reads_are_retried() -> None:
    reader = TraceReader(ShortReads(write(SAMPLE)))  # type: ignore[arg-type]
    assert list(reader) == SAMPLE
    assert reader.complete


def test_tell_gives_the_chunk_and_index_of_the_last_record() -> None:
    data = write(SAMPLE, threshold=16)
    offsets = [offset for offset, _, count in chunks(data)[1:] for _ in range(count)]
    reader = TraceReader(io.BytesIO(data))
    assert reader.tell() == TracePosition(len(MAGIC), -1)
    for index, _ in enumerate(reader):
        assert reader.tell() == TracePosition(offsets[index], index)


def test_a_text_file_is_refused() -> None:
    with pytest.raises(TypeError, match=r"^TraceReader needs a binary file, got str$"):
        TraceReader(io.StringIO("text"))  # type: ignore[arg-type]


# --- the writer refuses what the reader would -------------------------------


@pytest.mark.parametrize(
    ("record", "text"),
    [
        ((K.CLOCK, -1, 1, 1), "record 0: expected CLOCK.step: int in [0, 2**64), found int -1"),
        ((K.END, 0), "record 0: expected a kind other than END (close() writes it), found END"),
        (
            (K.HEADER,),
            f"record 0: expected {KNOWN_KINDS}, found kind int 0",
        ),
        (
            (K.INPUT, 0, "c", bytes(MAX_RECORD_SIZE)),
            "record 0: expected a record of at most 524288 bytes packed, found 524298 bytes",
        ),
        (
            (K.SHUTDOWN, 0, "\ud800"),
            "record 0: expected a record msgpack can pack, found UnicodeEncodeError('utf-8', "
            "'\\ud800', 0, 1, 'surrogates not allowed')",
        ),
    ],
)
def test_writing_an_invalid_record_is_refused(record: Record, text: str) -> None:
    writer = TraceWriter(io.BytesIO(), HEADER)
    with pytest.raises(InvalidRecordError, match=message(text)):
        writer.write(record)
    assert writer.records_written == 0
    writer.write(SAMPLE[0])  # the writer is still usable


def test_writing_after_close_is_refused() -> None:
    writer = TraceWriter(io.BytesIO(), HEADER)
    writer.close()
    with pytest.raises(ValueError, match=r"^write to a closed TraceWriter$"):
        writer.write(SAMPLE[0])


@pytest.mark.parametrize("threshold", [0, MAX_CHUNK_PAYLOAD])
def test_the_chunk_threshold_is_bounded(threshold: int) -> None:
    with pytest.raises(
        ValueError, match=rf"^chunk_threshold must be in \[1, 524252\], not {threshold}$"
    ):
        TraceWriter(io.BytesIO(), HEADER, chunk_threshold=threshold)


# --- crashes and truncation -------------------------------------------------


def test_an_exception_inside_with_flushes_records_but_writes_no_end() -> None:
    out = io.BytesIO()
    with pytest.raises(RuntimeError), TraceWriter(out, HEADER) as writer:
        for record in SAMPLE:
            writer.write(record)
        raise RuntimeError("the scenario crashed")
    data = out.getvalue()
    got, reader = read_all(data, strict=False)
    assert got == SAMPLE
    assert not reader.complete
    assert reader.truncated_at == len(data)
    assert str(reader.stop_error) == (
        f"byte {len(data)}: expected a chunk header (12 bytes), "
        "found end of file (no END record: the trace is incomplete)"
    )
    with pytest.raises(TraceFormatError, match=message(str(reader.stop_error))):
        read_all(data)


@pytest.mark.parametrize("version", [1, 2])
def test_a_trace_cut_at_any_byte_reads_up_to_its_last_whole_chunk(version: int) -> None:
    data = write(SAMPLE, threshold=16, header=dataclasses.replace(HEADER, format_version=version))
    chained = version >= 2  # each data chunk also holds its CHAIN record
    layout = chunks(data)
    ends = [offset + CHUNK_HEADER_SIZE + length for offset, length, _ in layout]
    header_end = ends[0]
    for cut in range(len(data) + 1):
        prefix = data[:cut]
        if cut == len(data):
            assert read_all(prefix)[0] == SAMPLE
            continue
        with pytest.raises(TraceFormatError):
            read_all(prefix)
        if cut < header_end:
            with pytest.raises(TraceFormatError):
                TraceReader(io.BytesIO(prefix), strict=False)
            continue
        got, reader = read_all(prefix, strict=False)
        whole = [i for i, end in enumerate(ends) if end <= cut]
        boundary = ends[whole[-1]]
        expected_count = sum(layout[i][2] - chained for i in whole[1:])
        assert got == SAMPLE[:expected_count], cut
        assert reader.truncated_at == boundary
        assert not reader.complete
        assert reader.stop_error is not None and reader.stop_error.offset >= boundary


@pytest.mark.parametrize(
    ("cut", "found"),
    [
        (0, "found end of file (no END record: the trace is incomplete)"),
        (5, "found 5 bytes (truncated)"),
    ],
)
def test_what_a_strict_reader_says_about_a_cut_trace(cut: int, found: str) -> None:
    data = write(SAMPLE)
    prefix = data[: DATA_START + cut]
    with pytest.raises(
        TraceFormatError,
        match=message(f"byte {DATA_START}: expected a chunk header (12 bytes), {found}"),
    ):
        read_all(prefix)


def test_a_truncated_payload_is_named() -> None:
    data = write(SAMPLE)
    length = chunks(data)[1][1]
    at = DATA_START + CHUNK_HEADER_SIZE
    with pytest.raises(
        TraceFormatError,
        match=message(
            f"byte {at}: expected a chunk payload of {length} bytes, found 3 bytes (truncated)"
        ),
    ):
        read_all(data[: at + 3])


# --- not a trace, or another format -----------------------------------------


@pytest.mark.parametrize(
    ("data", "found"),
    [
        (b"", "an empty file"),
        (b"\x89EV", "3 bytes (truncated)"),
        (b"hello world, not a trace", r"b'hello wo' (not an evreplay trace)"),
        (
            b"PK\x03\x04\x14\x00\x00\x00\x08\x00",
            r"b'PK\x03\x04\x14\x00\x00\x00' (not an evreplay trace)",
        ),
    ],
)
def test_not_a_trace(data: bytes, found: str) -> None:
    with pytest.raises(
        TraceFormatError,
        match=message(f"byte 0: expected the evreplay trace magic {MAGIC_TEXT}, found {found}"),
    ):
        TraceReader(io.BytesIO(data))


def test_the_path_is_named_in_messages(tmp_path: Path) -> None:
    path = tmp_path / "trace.evr"
    path.write_bytes(b"#!/bin/sh\n")
    with pytest.raises(
        TraceFormatError,
        match=message(
            f"{path}: byte 0: expected the evreplay trace magic {MAGIC_TEXT}, "
            r"found b'#!/bin/s' (not an evreplay trace)"
        ),
    ) as info:
        TraceReader(path)
    assert (info.value.path, info.value.offset) == (str(path), 0)


@pytest.mark.parametrize(
    ("changes", "text"),
    [
        (
            {"_2": 4},
            "byte 20: expected format version 1, 2 or 3, found version 4 (written by a newer "
            "evreplay)",
        ),
        (
            {"_2": 0},
            "byte 20: expected format version 1, 2 or 3, found version 0 (written by an older "
            "evreplay)",
        ),
        ({"_2": "1"}, "byte 20: expected format version 1, 2 or 3, found version str '1'"),
        (
            {"_1": "qemu-replay"},
            "byte 20: expected format name 'evreplay-trace', found str 'qemu-replay'",
        ),
        ({"_0": 3}, "byte 20: expected a HEADER record (kind 0), found kind int 3"),
        (
            {"_5": "seven"},
            "byte 20: expected header.seed: int in [-2**63, 2**64), found str 'seven'",
        ),
        (
            {"_9": "3.11.4"},
            "byte 20: expected header.python_version: \"major.minor\", found str '3.11.4'",
        ),
        ({"_4": [1]}, "byte 20: expected header.parameters: a map, found an array of 1 items"),
    ],
)
def test_a_wrong_header_is_named(changes: dict[str, Any], text: str) -> None:
    data = header_chunk(**changes)
    for strict in (True, False):  # no mode tolerates a bad header
        with pytest.raises(TraceFormatError, match=message(text)):
            TraceReader(io.BytesIO(data), strict=strict)


def test_a_future_version_is_named_even_if_its_header_is_unreadable_to_us() -> None:
    # Only elements 0-2 are promised to stay; the rest may be anything.
    # Here the fourth element is an extension type this version refuses.
    payload = bytes([0x94]) + pack(0) + pack("evreplay-trace") + pack(4) + b"\xc7\x01\x05x"
    with pytest.raises(
        TraceFormatError,
        match=message(
            "byte 20: expected format version 1, 2 or 3, found version 4 (written by a newer "
            "evreplay)"
        ),
    ):
        TraceReader(io.BytesIO(MAGIC + frame(payload, 1)))


@pytest.mark.parametrize(
    ("chunk", "text"),
    [
        (
            frame(pack(7), 1),
            "byte 20: expected a HEADER record (a msgpack array), found msgpack type byte 0x07",
        ),
        (
            frame(pack([0, "evreplay-trace"]), 1),
            "byte 20: expected a HEADER record [0, format_name, format_version, ...], "
            "found an array of 2 items",
        ),
        (
            frame(pack(HEADER.to_record()) * 2, 2),
            "byte 12: expected a header chunk of 1 record, found 2 records",
        ),
        (
            frame(pack(HEADER.to_record()) + b"\x00", 1),
            "byte 20: expected end of the header chunk after the HEADER record, found more bytes",
        ),
        (
            frame(pack(HEADER.to_record())[:-1], 1),
            "byte 20: expected a whole HEADER record, found the chunk ends inside it",
        ),
    ],
)
def test_a_malformed_header_chunk_is_named(chunk: bytes, text: str) -> None:
    with pytest.raises(TraceFormatError, match=message(text)):
        TraceReader(io.BytesIO(MAGIC + chunk))


# --- damaged chunks -----------------------------------------------------------


def _damage(data: bytes, at: int, value: int) -> bytes:
    return data[:at] + bytes([value]) + data[at + 1 :]


def test_a_bad_crc_is_corruption_in_either_mode() -> None:
    # A crash leaves a prefix of what was written; a chunk whose bytes are all
    # there but wrong is not that, so even a tolerant reader refuses it.
    data = write(SAMPLE, threshold=16)
    second = chunks(data)[2][0]
    damaged = _damage(data, second + CHUNK_HEADER_SIZE, data[second + CHUNK_HEADER_SIZE] ^ 1)
    length, _count, stored = struct.unpack_from("<III", damaged, second)
    payload = damaged[second + 12 : second + 12 + length]
    actual = zlib.crc32(payload, zlib.crc32(damaged[second : second + 8]))
    text = (
        f"byte {second}: expected a chunk matching its crc32 0x{stored:08x}, "
        f"found crc32 0x{actual:08x} (corrupt)"
    )
    for strict in (True, False):
        reader = TraceReader(io.BytesIO(damaged), strict=strict)
        got = []
        with pytest.raises(TraceFormatError, match=message(text)):
            got.extend(reader)
        assert got == SAMPLE[: chunks(data)[1][2]]  # the chunks before it were yielded


def test_a_corrupt_last_chunk_is_not_a_truncation() -> None:
    data = write(SAMPLE)
    last = chunks(data)[-1][0]
    damaged = _damage(data, len(data) - 1, data[-1] ^ 1)
    with pytest.raises(TraceFormatError, match=rf"^byte {last}: expected a chunk matching"):
        read_all(damaged, strict=False)


def test_a_file_holding_only_the_magic_has_no_header() -> None:
    for strict in (True, False):
        with pytest.raises(
            TraceFormatError,
            match=message("byte 8: expected a chunk header (12 bytes), found end of file"),
        ):
            TraceReader(io.BytesIO(MAGIC), strict=strict)


@pytest.mark.parametrize(
    ("head", "text"),
    [
        (
            struct.pack("<III", 0xFFFFFFFF, 1, 0),
            "expected a chunk payload length in [1, 1048576], found 4294967295",
        ),
        (struct.pack("<III", 0, 0, 0), "expected a chunk payload length in [1, 1048576], found 0"),
    ],
)
def test_an_impossible_chunk_length_is_refused_before_reading(head: bytes, text: str) -> None:
    for strict in (True, False):
        with pytest.raises(TraceFormatError, match=message(f"byte {DATA_START}: {text}")):
            read_all(HEADER_BYTES + head + b"\x00" * 64, strict=strict)


def test_an_impossible_record_count_is_refused() -> None:
    with pytest.raises(
        TraceFormatError,
        match=message(f"byte {DATA_START + 4}: expected a chunk record count in [1, 3], found 4"),
    ):
        read_all(HEADER_BYTES + frame(b"\x91\x01\x00", 4))


@pytest.mark.parametrize(
    ("payload", "count", "text"),
    [
        (pack(5), 1, "record 0: expected a record (an array [kind, *fields]), found int 5"),
        (
            pack([]),
            1,
            "record 0: expected a record (an array [kind, *fields]), found an empty array",
        ),
        (pack([42, 1]), 1, f"record 0: expected {KNOWN_KINDS}, found kind int 42"),
        (
            pack([6, 1, 1]),
            1,
            "record 0: expected CLOCK [kind, step: uint, clock_type: uint, value_ns: int], "
            "found 2 fields",
        ),
        (
            pack([6, 1, 1, "x"]),
            1,
            "record 0: expected CLOCK.value_ns: int in [-2**63, 2**63), found str 'x'",
        ),
        (
            pack([7, 1, 1]) + pack([3, 0, 2, 2]),
            2,
            "record 1: expected CHOICE.choice < n_options (2), found 2",
        ),
        (
            pack([4, 0, b"\x80" * 11 + b"\x00"]),
            1,
            "record 0: expected CHOICES.packed byte 0: a varint of at most 10 bytes "
            "for decision 0's step_delta, found a longer one",
        ),
        (
            pack([7, 1, 1]) + b"\x94\x06\x01",
            2,
            "record 1: expected a whole record, found the chunk ends inside it",
        ),
        (
            pack([7, 1, 1]) + b"\x00",
            1,
            "record 1: expected end of chunk (record count 1), found 1 more bytes",
        ),
        (
            pack([1, 0]) + pack([7, 1, 1]),
            2,
            "record 0: expected END as the last record of its chunk, found 1 more records",
        ),
        (
            pack([7, 1, 1]) + pack([1, 5]),
            2,
            "record 1: expected END.total_records = 1 (the records before it), found 5",
        ),
        (
            pack([7, {"a": 1}, 1]),
            1,
            "record 0: expected a msgpack record, "
            "found undecodable bytes (ValueError('1 exceeds max_map_len(0)'))",
        ),
        (b"\x91" * 20, 1, "record 0: expected a whole record, found the chunk ends inside it"),
    ],
)
def test_wrong_records_in_a_sound_chunk_are_named_in_either_mode(
    payload: bytes, count: int, text: str
) -> None:
    data = HEADER_BYTES + frame(payload, count)
    for strict in (True, False):
        with pytest.raises(TraceFormatError, match=message(f"chunk at byte {DATA_START}: {text}")):
            read_all(data, strict=strict)


def test_bytes_after_end_are_refused() -> None:
    data = write(SAMPLE)
    with pytest.raises(
        TraceFormatError,
        match=message(
            f"byte {len(data)}: expected end of file after the END chunk, found more bytes"
        ),
    ):
        read_all(data + b"\x00")


def test_hostile_nesting_and_sizes_are_trace_format_errors() -> None:
    for payload in (
        b"\x91" * 5000,  # deeper than msgpack's stack
        b"\xdd\xff\xff\xff\xff",  # an array of 4 billion items
        b"\xdb\xff\xff\xff\xff",  # a 4 GiB string
        b"\xc6\x7f\xff\xff\xff",  # a 2 GiB bin
        b"\xc1",  # never used
        b"\xd4\x05\x00",  # an ext type
        b"\x93\x05\x00\xa2\xff\xfe",  # invalid UTF-8
    ):
        with pytest.raises(TraceFormatError):
            read_all(HEADER_BYTES + frame(payload, 1))


# --- fuzzing: only records or TraceFormatError --------------------------------

BASE = write(SAMPLE, threshold=24)


def _read_everything(data: bytes) -> None:
    for strict in (True, False):
        try:
            for record in TraceReader(io.BytesIO(data), strict=strict):
                assert check_record(record) is None
        except TraceFormatError:
            pass


@st.composite
def mutated_traces(draw: st.DrawFn) -> bytes:
    data = bytearray(BASE)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "random"]))
        if action == "flip" and at < len(data):
            data[at] ^= draw(st.integers(1, 255))
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif action == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        elif action == "truncate":
            del data[at:]
        elif action == "random":
            return draw(st.binary(max_size=200))
    return bytes(data)


@given(mutated_traces())
def test_mutated_traces_give_only_records_or_trace_format_errors(data: bytes) -> None:
    _read_everything(data)


@st.composite
def forged_traces(draw: st.DrawFn) -> bytes:
    """Mutations inside payloads, with CRCs fixed up: reach the record decoder."""
    out = bytearray(HEADER_BYTES)
    for offset, length, count in chunks(BASE)[1:]:
        payload = bytearray(BASE[offset + 12 : offset + 12 + length])
        if draw(st.booleans()):
            at = draw(st.integers(0, len(payload) - 1))
            if draw(st.booleans()):
                payload[at] ^= draw(st.integers(1, 255))
            else:
                payload[at:at] = draw(st.binary(min_size=1, max_size=8))
        if draw(st.integers(0, 9)) == 0:
            payload = bytearray(draw(st.binary(min_size=1, max_size=64)))
        out += frame(bytes(payload), min(count, len(payload)))
    return bytes(out)


@given(forged_traces())
def test_forged_chunks_give_only_records_or_trace_format_errors(data: bytes) -> None:
    _read_everything(data)


@given(st.data())
def test_forged_headers_give_a_header_or_trace_format_error(data: st.DataObject) -> None:
    payload = bytearray(HEADER_BYTES[len(MAGIC) + CHUNK_HEADER_SIZE :])
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(payload) - 1))
        if data.draw(st.booleans()):
            payload[at] ^= data.draw(st.integers(1, 255))
        else:
            payload[at:at] = data.draw(st.binary(min_size=1, max_size=8))
    with contextlib.suppress(TraceFormatError):
        TraceReader(io.BytesIO(MAGIC + frame(bytes(payload), 1) + BASE[DATA_START:]))


@given(st.binary(max_size=300))
def test_random_bytes_after_the_magic_are_trace_format_errors(data: bytes) -> None:
    with pytest.raises(TraceFormatError):
        read_all(MAGIC + data)


@given(st.binary(min_size=1, max_size=300), st.integers(1, 40))
def test_random_payloads_after_a_good_header_give_only_records_or_errors(
    payload: bytes, count: int
) -> None:
    _read_everything(HEADER_BYTES + frame(payload, min(count, len(payload))))


# --- bounded memory -----------------------------------------------------------


@pytest.mark.slow
def test_two_million_records_stream_through_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.evr"
    n = 2_000_000
    with TraceWriter(path, HEADER) as writer:
        for step in range(n):
            writer.write((K.CHOICE, 1, 3, step % 3) if step % 4 else (K.CLOCK, step, 1, step))
    assert path.stat().st_size > 10 * MAX_CHUNK_PAYLOAD
    biggest_record = len(pack([K.CLOCK, n, 1, n]))
    # The writer held at most one chunk: each closed within a record of the threshold.
    with path.open("rb") as f:
        layout = chunks(f.read())
    assert max(length for _, length, _ in layout) < DEFAULT_CHUNK_THRESHOLD + biggest_record

    reader = TraceReader(path)
    count = sum(1 for _ in reader)
    assert (count, reader.records_read, reader.complete) == (n, n, True)
    assert reader.peak_buffered_bytes < DEFAULT_CHUNK_THRESHOLD + biggest_record

    # Independently of what the reader says: everything Python allocates while
    # 300,000 records (tens of MB as objects) stream through stays under 1 MiB.
    tracemalloc.start()
    try:
        with TraceReader(path) as reader:
            for index, _ in enumerate(reader):
                if index == 300_000:
                    break
            _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MAX_CHUNK_PAYLOAD


# --- version 2: the chain ------------------------------------------------------


def payload_of(data: bytes, offset: int) -> bytes:
    length = struct.unpack_from("<I", data, offset)[0]
    return data[offset + CHUNK_HEADER_SIZE : offset + CHUNK_HEADER_SIZE + length]


def replace_chunk(data: bytes, offset: int, payload: bytes, count: int) -> bytes:
    """``data`` with the chunk at ``offset`` replaced (its CRC computed as the format does)."""
    end = offset + CHUNK_HEADER_SIZE + len(payload_of(data, offset))
    return data[:offset] + frame(payload, count) + data[end:]


def test_every_data_chunk_ends_with_the_chain_of_everything_before_it() -> None:
    data = write(SAMPLE, threshold=16, header=HEADER_V2)
    layout = chunks(data)
    assert len(layout) > 4
    # An independent computation of docs/trace-format.md's rule.
    running = hashlib.sha256(payload_of(data, layout[0][0]))
    for offset, _, count in layout[1:]:
        payload = payload_of(data, offset)
        assert count >= 2
        assert payload[-CHAIN_RECORD_SIZE:-32] == CHAIN_PREFIX == b"\x92\x0b\xc4\x20"
        running.update(payload[:-CHAIN_RECORD_SIZE])
        assert payload[-32:] == running.digest()
    # END is the last record before the last chunk's CHAIN.
    assert payload_of(data, layout[-1][0])[:-CHAIN_RECORD_SIZE].endswith(pack([K.END, 10]))
    got, reader = read_all(data)
    assert (got, reader.complete, reader.header.format_version) == (SAMPLE, True, 2)
    assert write(SAMPLE, threshold=16, header=HEADER_V2) == data


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=50)
@given(st.lists(records(), max_size=40), st.integers(1, 300), headers())
def test_any_valid_records_round_trip_in_version_2(
    recs: list[Record], threshold: int, header: TraceHeader
) -> None:
    header = dataclasses.replace(header, format_version=2)
    data = write(recs, threshold=threshold, header=header)
    got, reader = read_all(data)
    assert got == [tuple(r) for r in recs]
    assert reader.complete


def test_a_relabelled_header_with_its_crc_made_right_is_refused_at_the_first_chain() -> None:
    data = write(SAMPLE, header=HEADER_V2)
    first = chunks(data)[1][0]
    forged = list(HEADER_V2.to_record())
    forged[6] = "random:1"  # the chooser
    relabelled = MAGIC + frame(pack(forged), 1) + data[first:]
    assert TraceReader(io.BytesIO(relabelled)).header.chooser == "random:1"  # the header reads
    for strict in (True, False):
        with pytest.raises(TraceFormatError) as info:
            read_all(relabelled, strict=strict)
        assert info.value.offset == first + len(relabelled) - len(data)
        assert "expected a CHAIN digest of the header and records before it (" in str(info.value)
        assert str(info.value).endswith(
            "(the header or a record before it was altered after it was written)"
        )


def test_a_changed_record_with_its_crc_made_right_is_refused_at_its_chunk() -> None:
    data = write(SAMPLE, threshold=16, header=HEADER_V2)
    layout = chunks(data)
    value = pack([K.RANDOM, 6, 2**64 - 1])
    offset, _, count = next(c for c in layout if value in payload_of(data, c[0]))
    payload = payload_of(data, offset).replace(value, pack([K.RANDOM, 6, 2**64 - 2]))
    forged = replace_chunk(data, offset, payload, count)
    with pytest.raises(TraceFormatError, match=rf"^byte {offset}: expected a CHAIN digest"):
        read_all(forged, strict=False)
    # Every record before that chunk still reads, and no record of it.
    reader = TraceReader(io.BytesIO(forged))
    got = []
    with pytest.raises(TraceFormatError):
        got.extend(reader)
    before = sum(n - 1 for at, _, n in layout[1:] if at < offset)
    assert got == SAMPLE[:before]
    assert before <= SAMPLE.index((K.RANDOM, 6, 2**64 - 1))


@pytest.mark.parametrize("edit", ["swap", "drop"])
def test_chunks_swapped_or_dropped_are_refused(edit: str) -> None:
    data = write(SAMPLE, threshold=16, header=HEADER_V2)
    layout = chunks(data)
    (a, a_len, _), (b, b_len, _) = layout[2], layout[3]
    chunk_a = data[a : a + CHUNK_HEADER_SIZE + a_len]
    chunk_b = data[b : b + CHUNK_HEADER_SIZE + b_len]
    middle = chunk_b + chunk_a if edit == "swap" else chunk_b
    forged = data[:a] + middle + data[b + CHUNK_HEADER_SIZE + b_len :]
    with pytest.raises(TraceFormatError, match=rf"^byte {a}: expected a CHAIN digest"):
        read_all(forged, strict=False)


def test_a_version_2_chunk_without_its_chain_is_refused() -> None:
    data = write([], header=HEADER_V2)
    first = chunks(data)[1][0]
    unchained = data[:first] + frame(pack([K.END, 0]), 1)
    with pytest.raises(TraceFormatError, match=message(
        f"byte {first}: expected a chunk whose last record is CHAIN (format version 2), "
        "found none"
    )):
        read_all(unchained, strict=False)


@pytest.mark.parametrize("header", [HEADER, HEADER_V2], ids=["v1", "v2"])
def test_a_chain_record_is_never_a_record(header: TraceHeader) -> None:
    chain = CHAIN_PREFIX + bytes(32)
    with pytest.raises(InvalidRecordError, match=re.escape(KNOWN_KINDS)):
        TraceWriter(io.BytesIO(), header).write((K.CHAIN, bytes(32)))
    # In a version 1 trace, or anywhere but the end of a version 2 chunk, it
    # is an unknown kind, whatever its digest.
    data = write([], header=header)
    first = chunks(data)[1][0]
    records = chain + pack([K.END, 1])
    if header.format_version >= 2:
        running = hashlib.sha256(payload_of(data, chunks(data)[0][0]))
        running.update(records)
        payload, count = records + CHAIN_PREFIX + running.digest(), 3
    else:
        payload, count = records, 2
    with pytest.raises(TraceFormatError, match=message(
        f"chunk at byte {first}: record 0: expected {KNOWN_KINDS}, found kind int 11"
    )):
        read_all(data[:first] + frame(payload, count))


def test_a_chunk_of_the_most_records_stays_within_the_limit() -> None:
    out = io.BytesIO()
    with TraceWriter(out, HEADER_V2, chunk_threshold=MAX_CHUNK_PAYLOAD // 4) as writer:
        for _ in range(70_000):
            writer.write((K.RANDOM, 0, 0))  # 4 bytes: the record count closes the chunk
    layout = chunks(out.getvalue())
    assert max(count for _, _, count in layout) == 65_536  # 65_535 records and CHAIN
    assert sum(1 for _ in TraceReader(io.BytesIO(out.getvalue()))) == 70_000
