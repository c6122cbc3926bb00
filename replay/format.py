"""The on-disk format of an evreplay trace: constants, event kinds, layouts.

docs/trace-format.md is the specification; this module is its executable
form, and the two change together. The rules it keeps:

* **Stable envelope, versioned contents.** The magic, the chunk framing and the
  first three elements of the header record (kind, format name, format
  version) never change, so any reader, old or new, can say "this is an
  evreplay trace of version N" before it understands anything else. Everything
  after them belongs to ``FORMAT_VERSION``.
* **Records are msgpack arrays ``[kind, *fields]``**, never maps: positional
  fields cost one byte of framing instead of a key per field, and the layout
  of each kind is written down once, in :data:`RECORD_LAYOUTS`.
* **Canonical bytes.** Every msgpack option is pinned here, maps are written
  with sorted keys, varints are minimal, and nothing that varies between runs
  (time, host, path) is ever written, so the same content always gives the
  same file, byte for byte.
* **Every bound is checked before allocation.** A reader handed hostile bytes
  allocates at most a chunk's payload plus the bounded containers the unpacker
  limits below allow (RECORD_UNPACKER_LIMITS, HEADER_UNPACKER_LIMITS).
* **Record decisions, not consequences.** A trace holds only the answers to
  nondeterministic questions; CHOICES packs scheduling decisions at about two
  bytes each.
"""

from __future__ import annotations

import itertools
import math
import re
import struct
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from types import MappingProxyType
from typing import Any, Final, TypeAlias

from .errors import InvalidRecordError, TraceFormatError

__all__ = [
    "CHUNK_HEADER",
    "CHUNK_HEADER_SIZE",
    "DEFAULT_CHUNK_THRESHOLD",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "HEADER_FIELDS",
    "HEADER_UNPACKER_LIMITS",
    "MAGIC",
    "MAX_BATCHED_OPTIONS",
    "MAX_CHUNK_PAYLOAD",
    "MAX_CHUNK_RECORDS",
    "MAX_CHUNK_THRESHOLD",
    "MAX_HEADER_ITEMS",
    "MAX_PARAM_DEPTH",
    "MAX_RECORD_SIZE",
    "MAX_VARINT_SIZE",
    "PACKER_OPTIONS",
    "RECORD_LAYOUTS",
    "RECORD_UNPACKER_LIMITS",
    "EventKind",
    "FieldSpec",
    "FieldType",
    "MapPairs",
    "ParamValue",
    "Problem",
    "RecordLayout",
    "TraceHeader",
    "check_record",
    "current_python_version",
    "decode_choices",
    "describe_value",
    "encode_choice_into",
    "encode_choices",
    "header_from_fields",
]

FORMAT_NAME: Final = "evreplay-trace"
FORMAT_VERSION: Final = 1

#: The first 8 bytes of every trace. As PNG's signature does, it catches the
#: usual ways a binary file gets mangled: the high-bit byte 0x89 dies in a
#: 7-bit channel, "\r\n" is rewritten by newline conversion, 0x1a stops a DOS
#: ``type``, and the final "\n" is eaten by the reverse conversion.
MAGIC: Final = b"\x89EVR\r\n\x1a\n"

#: Before each chunk's payload: payload length, record count, then the CRC-32
#: (zlib's) of the 8 bytes before it followed by the payload. The CRC covers
#: the length and the count, so damage to either is caught as a bad chunk
#: rather than misread as records.
CHUNK_HEADER: Final = struct.Struct("<III")
CHUNK_HEADER_SIZE: Final = CHUNK_HEADER.size

#: Hard limits, enforced by the reader before it allocates anything, and by
#: the writer so that it never writes what the reader refuses.
MAX_CHUNK_PAYLOAD: Final = 1 << 20
MAX_CHUNK_RECORDS: Final = 1 << 16
MAX_RECORD_SIZE: Final = 1 << 19
#: A writer closes a chunk as soon as its payload reaches the threshold, so a
#: payload is below threshold + MAX_RECORD_SIZE <= MAX_CHUNK_PAYLOAD.
DEFAULT_CHUNK_THRESHOLD: Final = 1 << 16
MAX_CHUNK_THRESHOLD: Final = MAX_CHUNK_PAYLOAD - MAX_RECORD_SIZE
#: Entries in any array or map of the header (parameters, faults, lists).
MAX_HEADER_ITEMS: Final = 1024
#: Nesting of lists inside a parameter value.
MAX_PARAM_DEPTH: Final = 8
#: An unsigned LEB128 varint below 2**64 needs at most 10 bytes.
MAX_VARINT_SIZE: Final = 10
#: Every choice among up to this many options fits a CHOICES decision, whose
#: option/choice varint n*(n-1)/2 + choice must stay below 2**64 (a few choices
#: among one more option fit too). CHOICE records take any uint64.
MAX_BATCHED_OPTIONS: Final = 6_074_000_999

_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1
_UINT64_MAX: Final = (1 << 64) - 1
#: The most fields a record of version 1 has; bounds the unpacker's arrays.
_MAX_RECORD_FIELDS: Final = 15

#: Every Packer option, pinned: str -> msgpack str and bytes -> bin
#: (use_bin_type); int/str/bytes/list subclasses such as IntEnum members and
#: tuples are packed as their base type (strict_types=False), while bool stays
#: msgpack true/false; floats are always float64; datetimes and unknown types
#: are refused (no ``default`` hook); each ``pack`` returns its bytes.
PACKER_OPTIONS: Final[Mapping[str, Any]] = MappingProxyType(
    {
        "use_bin_type": True,
        "strict_types": False,
        "use_single_float": False,
        "autoreset": True,
        "datetime": False,
        "unicode_errors": "strict",
        "default": None,
    }
)

_COMMON_UNPACKER_OPTIONS: Final[Mapping[str, Any]] = {
    "raw": False,  # msgpack str -> str, strict UTF-8 (bad bytes: ValueError)
    "unicode_errors": "strict",
    "use_list": False,  # arrays -> tuples: records are immutable
    "strict_map_key": True,
    "timestamp": 0,
    "max_buffer_size": MAX_CHUNK_PAYLOAD,
    # The unpacker's first buffer (msgpack's default is 1 MiB); feed() grows
    # it up to max_buffer_size when a chunk needs more.
    "read_size": DEFAULT_CHUNK_THRESHOLD,
    "max_str_len": MAX_RECORD_SIZE,
    "max_bin_len": MAX_RECORD_SIZE,
    "max_ext_len": 0,  # the format uses no extension types
}

#: Limits for data chunks. An array header makes msgpack allocate its slots
#: before the elements arrive, and msgpack nests up to 1024 levels, so these
#: bound the worst hostile payload to 1024 * 16 * 8 bytes. Records hold no
#: maps at all.
RECORD_UNPACKER_LIMITS: Final[Mapping[str, Any]] = MappingProxyType(
    {**_COMMON_UNPACKER_OPTIONS, "max_array_len": _MAX_RECORD_FIELDS + 1, "max_map_len": 0}
)
#: Limits for the header chunk: at worst 1024 * 1024 * 8 bytes (8 MiB) of
#: slots while a hostile header is decoded, then freed.
HEADER_UNPACKER_LIMITS: Final[Mapping[str, Any]] = MappingProxyType(
    {
        **_COMMON_UNPACKER_OPTIONS,
        "max_array_len": MAX_HEADER_ITEMS,
        "max_map_len": MAX_HEADER_ITEMS,
    }
)


class EventKind(IntEnum):
    """What a record is; its first element.

    Bump rule (QEMU's ``REPLAY_VERSION`` in replay/replay.c): any change to the
    order or number of the kinds below, or to the fields of any record
    (including HEADER's), must bump ``FORMAT_VERSION``. New kinds go at the
    end. Optional, informational header data that no replayer needs goes in
    ``TraceHeader.extensions`` and needs no bump.
    """

    HEADER = 0  #: the first record of every trace; see TraceHeader
    END = 1  #: total_records: the trace is complete
    CHECKPOINT = 2  #: step, checkpoint_kind, digest (uint64)
    CHOICE = 3  #: step_delta, n_options, choice
    CHOICES = 4  #: first_step, packed (varint triples, see encode_choices)
    INPUT = 5  #: step, channel, data: external input bytes
    CLOCK = 6  #: step, clock_type, value_ns: a clock read from outside
    RANDOM = 7  #: step, value (uint64): external entropy
    MUTEX = 8  #: step_delta, thread_index: a replay-mutex grant
    SHUTDOWN = 9  #: step, cause
    FAULT = 10  #: step, fault_kind, target, arg: an injected fault


class FieldType(IntEnum):
    """The msgpack type and range of one record field."""

    UINT = 0  #: msgpack int in [0, 2**64)
    INT = 1  #: msgpack int in [-2**63, 2**63)
    STR = 2  #: msgpack str (UTF-8)
    BIN = 3  #: msgpack bin


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    type: FieldType


#: What check_record reports: (expected, found), both for a human.
Problem: TypeAlias = tuple[str, str]


@dataclass(frozen=True, slots=True)
class RecordLayout:
    """The fields after ``kind`` in a record, and any rule across them."""

    kind: EventKind
    fields: tuple[FieldSpec, ...]
    #: Checks relations between fields, called once each field has its type.
    extra: Callable[[Sequence[Any]], Problem | None] | None = None

    def describe(self) -> str:
        names = ", ".join(f"{f.name}: {f.type.name.lower()}" for f in self.fields)
        return f"{self.kind.name} [kind, {names}]"


def _is_int(value: object) -> bool:
    # bool is an int subclass but packs as msgpack true/false.
    return type(value) is int or (isinstance(value, int) and not isinstance(value, bool))


def _check_uint(value: object) -> bool:
    return _is_int(value) and 0 <= value <= _UINT64_MAX  # type: ignore[operator]


def _check_int(value: object) -> bool:
    return _is_int(value) and _INT64_MIN <= value <= _INT64_MAX  # type: ignore[operator]


def _check_str(value: object) -> bool:
    return isinstance(value, str)


def _check_bin(value: object) -> bool:
    return isinstance(value, bytes | bytearray)


_FIELD_CHECKS: Final = {
    FieldType.UINT: (_check_uint, "int in [0, 2**64)"),
    FieldType.INT: (_check_int, "int in [-2**63, 2**63)"),
    FieldType.STR: (_check_str, "str"),
    FieldType.BIN: (_check_bin, "bin"),
}


def describe_value(value: object) -> str:
    """A short description of a decoded value, for error messages."""
    if value is None:
        return "nil"
    if isinstance(value, MapPairs):
        return f"a map of {len(value)} entries"
    if isinstance(value, dict):
        return f"a map of {len(value)} entries"
    if isinstance(value, tuple | list):
        return f"an array of {len(value)} items"
    if isinstance(value, bytes | bytearray):
        return f"bin of {len(value)} bytes"
    if _is_int(value):
        return f"int {int(value)}"  # type: ignore[call-overload]
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{type(value).__name__} {text}"


def _check_choice(record: Sequence[Any]) -> Problem | None:
    _, _, n_options, choice = record
    if n_options < 1:
        return ("CHOICE.n_options >= 1", str(n_options))
    if choice >= n_options:
        return (f"CHOICE.choice < n_options ({n_options})", str(choice))
    return None


def _valid_choices(packed: bytes | bytearray) -> bool:
    """True if ``packed`` is a whole, canonical CHOICES stream (maybe empty)."""
    # When every varint is one byte (the usual case), the stream is valid iff
    # it holds whole pairs; isascii() checks "no byte >= 0x80" at C speed.
    if packed.isascii():
        return len(packed) % 2 == 0
    return _CHOICES_STREAM.fullmatch(packed) is not None


def _check_choices(record: Sequence[Any]) -> Problem | None:
    packed = record[2]
    if packed and _valid_choices(packed):
        return None
    if not packed:
        return ("CHOICES.packed holding at least one decision", "an empty stream")
    problem = _choices_problem(bytes(packed))
    assert problem is not None, "the regex and the decoder disagree"
    position, expected, found = problem
    return (f"CHOICES.packed byte {position}: {expected}", found)


def _layout(
    kind: EventKind,
    *fields: tuple[str, FieldType],
    extra: Callable[[Sequence[Any]], Problem | None] | None = None,
) -> RecordLayout:
    return RecordLayout(kind, tuple(FieldSpec(n, t) for n, t in fields), extra)


_U, _I, _S, _B = FieldType.UINT, FieldType.INT, FieldType.STR, FieldType.BIN

#: The layout of every record kind but HEADER (whose layout is TraceHeader's).
RECORD_LAYOUTS: Final[Mapping[EventKind, RecordLayout]] = MappingProxyType(
    {
        layout.kind: layout
        for layout in (
            _layout(EventKind.END, ("total_records", _U)),
            _layout(EventKind.CHECKPOINT, ("step", _U), ("checkpoint_kind", _U), ("digest", _U)),
            _layout(
                EventKind.CHOICE,
                ("step_delta", _U),
                ("n_options", _U),
                ("choice", _U),
                extra=_check_choice,
            ),
            _layout(EventKind.CHOICES, ("first_step", _U), ("packed", _B), extra=_check_choices),
            _layout(EventKind.INPUT, ("step", _U), ("channel", _S), ("data", _B)),
            _layout(EventKind.CLOCK, ("step", _U), ("clock_type", _U), ("value_ns", _I)),
            _layout(EventKind.RANDOM, ("step", _U), ("value", _U)),
            _layout(EventKind.MUTEX, ("step_delta", _U), ("thread_index", _U)),
            _layout(EventKind.SHUTDOWN, ("step", _U), ("cause", _S)),
            _layout(EventKind.FAULT, ("step", _U), ("fault_kind", _U), ("target", _S), ("arg", _I)),
        )
    }
)

# Per kind, the layout and its field checks, flattened for the hot path.
_CHECKS: Final[dict[int, tuple[RecordLayout, tuple[tuple[Callable[[object], bool], str], ...]]]] = {
    int(kind): (layout, tuple(_FIELD_CHECKS[f.type] for f in layout.fields))
    for kind, layout in RECORD_LAYOUTS.items()
}
_KNOWN_KINDS: Final = (
    f"a known event kind ({', '.join(f'{k.name}={k.value}' for k in RECORD_LAYOUTS)})"
)
_A_RECORD: Final = "a record (an array [kind, *fields])"


def check_record(record: object) -> Problem | None:
    """``None`` if ``record`` is a valid record other than HEADER, else what is wrong.

    Called by the reader on every record it decodes and by the writer on every
    record it is given, so the two can never disagree. Accepts lists and tuples,
    and int subclasses (IntEnum members) for int fields.
    """
    # Fast path: exact types, which is all msgpack ever decodes.
    if type(record) is tuple or type(record) is list:
        kind = record[0] if record else None
        if type(kind) is int:
            fast = _FAST_CHECKS.get(kind)
            if fast is not None and fast(record):
                return None
    return _explain(record)


def _explain(record: object) -> Problem | None:
    """The slow, thorough check: what is wrong, or None after all."""
    if not isinstance(record, tuple | list) or isinstance(record, MapPairs):
        return (_A_RECORD, describe_value(record))
    if not record:
        return (_A_RECORD, "an empty array")
    kind = record[0]
    entry = _CHECKS.get(kind) if _is_int(kind) else None
    if entry is None:
        return (_KNOWN_KINDS, f"kind {describe_value(kind)}")
    layout, checks = entry
    if len(record) != len(checks) + 1:
        return (layout.describe(), f"{len(record) - 1} fields")
    for spec, (check, type_text), value in zip(layout.fields, checks, record[1:], strict=True):
        if not check(value):
            return (f"{layout.kind.name}.{spec.name}: {type_text}", describe_value(value))
    return None if layout.extra is None else layout.extra(record)


# One predicate per kind, for exact types only: true means valid; false means
# "ask _explain", which also accepts subclasses. Each must accept nothing that
# _explain rejects (tests/test_format.py checks this). A kind without one is
# checked by _explain alone, correctly but slower.
# fmt: off
def _fast_end(r: Any) -> bool:
    return len(r) == 2 and type(r[1]) is int and 0 <= r[1] <= _UINT64_MAX


def _fast_checkpoint(r: Any) -> bool:
    if len(r) != 4:
        return False
    _, s, k, d = r
    return (type(s) is int and type(k) is int and type(d) is int
            and 0 <= s <= _UINT64_MAX and 0 <= k <= _UINT64_MAX and 0 <= d <= _UINT64_MAX)


def _fast_choice(r: Any) -> bool:
    if len(r) != 4:
        return False
    _, d, n, c = r
    return (type(d) is int and type(n) is int and type(c) is int
            and 0 <= d <= _UINT64_MAX and 0 <= c < n <= _UINT64_MAX)


def _fast_choices(r: Any) -> bool:
    if len(r) != 3:
        return False
    _, s, p = r
    return (type(s) is int and 0 <= s <= _UINT64_MAX and type(p) is bytes and len(p) > 0
            and _valid_choices(p))


def _fast_input(r: Any) -> bool:
    if len(r) != 4:
        return False
    _, s, ch, data = r
    return type(s) is int and 0 <= s <= _UINT64_MAX and type(ch) is str and type(data) is bytes


def _fast_clock(r: Any) -> bool:
    if len(r) != 4:
        return False
    _, s, t, v = r
    return (type(s) is int and type(t) is int and type(v) is int
            and 0 <= s <= _UINT64_MAX and 0 <= t <= _UINT64_MAX and _INT64_MIN <= v <= _INT64_MAX)


def _fast_step_uint(r: Any) -> bool:  # RANDOM, MUTEX: two uints
    if len(r) != 3:
        return False
    _, s, v = r
    return type(s) is int and type(v) is int and 0 <= s <= _UINT64_MAX and 0 <= v <= _UINT64_MAX


def _fast_shutdown(r: Any) -> bool:
    return len(r) == 3 and type(r[1]) is int and 0 <= r[1] <= _UINT64_MAX and type(r[2]) is str


def _fast_fault(r: Any) -> bool:
    if len(r) != 5:
        return False
    _, s, k, t, a = r
    return (type(s) is int and type(k) is int and type(t) is str and type(a) is int
            and 0 <= s <= _UINT64_MAX and 0 <= k <= _UINT64_MAX and _INT64_MIN <= a <= _INT64_MAX)
# fmt: on


_FAST_CHECKS: Final[dict[int, Callable[[Any], bool]]] = {
    EventKind.END: _fast_end,
    EventKind.CHECKPOINT: _fast_checkpoint,
    EventKind.CHOICE: _fast_choice,
    EventKind.CHOICES: _fast_choices,
    EventKind.INPUT: _fast_input,
    EventKind.CLOCK: _fast_clock,
    EventKind.RANDOM: _fast_step_uint,
    EventKind.MUTEX: _fast_step_uint,
    EventKind.SHUTDOWN: _fast_shutdown,
    EventKind.FAULT: _fast_fault,
}


# --- CHOICES: decisions as a varint stream ---------------------------------
#
# Each decision is two unsigned LEB128 varints, minimal (no redundant 0x80/0x00
# tail), each below 2**64:
#   1. step_delta;
#   2. n_options * (n_options - 1) // 2 + choice, the triangular number of the
#      pair, which folds n_options and choice (choice < n_options) into one
#      value below 128 whenever n_options <= 15.
# So a decision among up to 15 options after fewer than 128 steps takes two
# bytes; three separate varints could never get under three.

# One canonical varint below 2**64: 1 byte; or 2-9 bytes whose last is nonzero;
# or 10 bytes whose last is exactly 0x01 (bit 63).
_VARINT: Final = rb"(?:[\x00-\x7f]|[\x80-\xff]{1,8}[\x01-\x7f]|[\x80-\xff]{9}\x01)"
_CHOICES_STREAM: Final = re.compile(rb"(?:" + _VARINT + _VARINT + rb")*")


class _VarintProblem(Exception):
    def __init__(self, position: int, expected: str, found: str) -> None:
        super().__init__(position, expected, found)
        self.position = position
        self.expected = expected
        self.found = found


def _put_varint(out: bytearray, value: int) -> None:
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _get_varint(data: bytes, position: int, what: str) -> tuple[int, int]:
    """Decode the varint at ``position``; return (value, position after it)."""
    byte = data[position]
    if byte < 0x80:
        return byte, position + 1
    value = 0
    shift = 0
    start = position
    end = len(data)
    while True:
        if position - start == MAX_VARINT_SIZE:
            raise _VarintProblem(start, f"a varint of at most 10 bytes for {what}", "a longer one")
        if position == end:
            raise _VarintProblem(start, f"a whole varint for {what}", "end of stream (truncated)")
        byte = data[position]
        value |= (byte & 0x7F) << shift
        shift += 7
        position += 1
        if byte < 0x80:
            break
    if byte == 0:
        raise _VarintProblem(
            start, f"a minimal varint for {what}", "a redundant trailing zero byte"
        )
    if value > _UINT64_MAX:
        raise _VarintProblem(start, f"a varint below 2**64 for {what}", str(value))
    return value, position


def encode_choice_into(out: bytearray, step_delta: int, n_options: int, choice: int) -> None:
    """Append one decision to a CHOICES stream being built (the recorder's hot path)."""
    if not 0 <= step_delta <= _UINT64_MAX:
        raise InvalidRecordError("step_delta in [0, 2**64)", str(step_delta))
    if n_options < 1:
        raise InvalidRecordError("n_options >= 1", str(n_options))
    if not 0 <= choice < n_options:
        raise InvalidRecordError(f"choice in [0, {n_options})", str(choice))
    pair = n_options * (n_options - 1) // 2 + choice
    if pair > _UINT64_MAX:
        raise InvalidRecordError(
            f"n_options <= {MAX_BATCHED_OPTIONS} (use a CHOICE record for more)", str(n_options)
        )
    _put_varint(out, step_delta)
    _put_varint(out, pair)


def encode_choices(decisions: Iterable[tuple[int, int, int]]) -> bytes:
    """The CHOICES stream of (step_delta, n_options, choice) decisions."""
    out = bytearray()
    for step_delta, n_options, choice in decisions:
        encode_choice_into(out, step_delta, n_options, choice)
    return bytes(out)


#: (n_options, choice) of every one-byte option/choice varint.
_SMALL_PAIRS: Final = tuple(
    (n, pair - n * (n - 1) // 2)
    for pair in range(0x80)
    for n in [(1 + math.isqrt(1 + 8 * pair)) // 2]
)


def _decode(packed: bytes) -> Iterator[tuple[int, int, int]]:
    position = 0
    end = len(packed)
    number = 0
    small_pairs = _SMALL_PAIRS
    while position < end:
        step_delta = packed[position]
        if step_delta < 0x80:
            position += 1
        else:
            step_delta, position = _get_varint(packed, position, f"decision {number}'s step_delta")
        if position == end:
            raise _VarintProblem(
                position,
                f"decision {number}'s option/choice varint",
                "end of stream (it ends mid-decision)",
            )
        pair = packed[position]
        if pair < 0x80:
            position += 1
            n_options, choice = small_pairs[pair]
        else:
            pair, position = _get_varint(packed, position, f"decision {number}'s option/choice")
            n_options = (1 + math.isqrt(1 + 8 * pair)) // 2
            choice = pair - n_options * (n_options - 1) // 2
        yield step_delta, n_options, choice
        number += 1


def decode_choices(
    packed: bytes, *, offset: int = 0, path: str | None = None
) -> Iterator[tuple[int, int, int]]:
    """Yield the (step_delta, n_options, choice) decisions of a CHOICES stream.

    Damage (a varint over 10 bytes, one that does not fit 64 bits or is not
    minimal, a stream ending mid-varint or mid-decision) raises
    :class:`TraceFormatError` at ``offset`` plus the damaged byte's position.
    Records yielded by a TraceReader have been checked already.
    """
    try:
        yield from _decode(bytes(packed))
    except _VarintProblem as problem:
        raise TraceFormatError(
            offset + problem.position, problem.expected, problem.found, path
        ) from None


def _choices_problem(packed: bytes) -> tuple[int, str, str] | None:
    try:
        for _ in _decode(packed):
            pass
    except _VarintProblem as problem:
        return problem.position, problem.expected, problem.found
    return None


# --- The header -------------------------------------------------------------

#: A scenario parameter (or extension) value. Lists are accepted and kept as
#: tuples, which is also how the reader returns them.
ParamValue: TypeAlias = (
    "bool | int | float | str | bytes | tuple[ParamValue, ...] | list[ParamValue] | None"
)


class MapPairs(tuple[tuple[Any, Any], ...]):
    """A decoded msgpack map, as its (key, value) pairs in file order.

    The header is decoded with ``object_pairs_hook=MapPairs`` so that the
    reader sees duplicate and unsorted keys (a dict would hide them) and can
    tell a map from an array.
    """

    __slots__ = ()


def current_python_version() -> str:
    """``"3.11"``: major.minor only, so that a patch release changes no byte."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def _normalize_param(value: object, where: str, depth: int) -> ParamValue:
    if value is None or isinstance(value, bool | str | float):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if _is_int(value):
        if not _INT64_MIN <= value <= _UINT64_MAX:  # type: ignore[operator]
            raise InvalidRecordError(f"{where}: int in [-2**63, 2**64)", str(value))
        return int(value)  # type: ignore[call-overload, no-any-return]
    if type(value) in (list, tuple):
        items: Sequence[object] = value  # type: ignore[assignment]
        if depth >= MAX_PARAM_DEPTH:
            raise InvalidRecordError(
                f"{where}: lists nested at most {MAX_PARAM_DEPTH} deep", "deeper"
            )
        if len(items) > MAX_HEADER_ITEMS:
            raise InvalidRecordError(f"{where}: at most {MAX_HEADER_ITEMS} items", str(len(items)))
        return tuple(_normalize_param(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(items))
    raise InvalidRecordError(
        f"{where}: nil, bool, int, float, str, bin or a list of them", describe_value(value)
    )


def _normalize_map(value: object, where: str) -> Mapping[str, ParamValue]:
    if isinstance(value, MapPairs):
        pairs = list(value)
        keys = [k for k, _ in pairs]
        if not all(isinstance(k, str) for k in keys):
            raise InvalidRecordError(f"{where}: str keys", describe_value(keys))
        if any(a.encode() >= b.encode() for a, b in itertools.pairwise(keys)):
            raise InvalidRecordError(f"{where}: keys unique and sorted", repr(keys)[:60])
    elif isinstance(value, Mapping):
        pairs = sorted(value.items(), key=lambda kv: str(kv[0]).encode("utf-8", "surrogatepass"))
    else:
        raise InvalidRecordError(f"{where}: a map", describe_value(value))
    if len(pairs) > MAX_HEADER_ITEMS:
        raise InvalidRecordError(f"{where}: at most {MAX_HEADER_ITEMS} entries", str(len(pairs)))
    out: dict[str, ParamValue] = {}
    for key, item in pairs:
        if not isinstance(key, str):
            raise InvalidRecordError(f"{where}: str keys", describe_value(key))
        out[key] = _normalize_param(item, f"{where}[{key!r}]", 0)
    return MappingProxyType(out)


def _require(ok: bool, expected: str, value: object) -> None:
    if not ok:
        raise InvalidRecordError(expected, describe_value(value))


_PYTHON_VERSION: Final = re.compile(r"[0-9]+\.[0-9]+")


@dataclass(frozen=True, slots=True, kw_only=True)
class TraceHeader:
    """Everything needed to replay a trace with no other argument.

    Nothing here may vary between two runs of the same content (no time, host
    or path), so two recordings of one run are byte-identical. ``parameters``
    and ``extensions`` come back as read-only mappings with sorted keys and
    lists as tuples, which is also how they are written.
    """

    #: Import path of the scenario, e.g. "examples.echo:EchoScenario".
    scenario: str
    seed: int
    #: The chooser that made the recorded decisions, e.g. "fifo", "random:7".
    chooser: str = "fifo"
    parameters: Mapping[str, ParamValue] = field(default_factory=dict)
    #: Fault specs, in the order given.
    faults: tuple[str, ...] = ()
    package_version: str
    python_version: str = field(default_factory=current_python_version)
    #: Room for optional, informational data that no replayer needs to
    #: understand; new keys need no version bump (see EventKind).
    extensions: Mapping[str, ParamValue] = field(default_factory=dict)
    format_name: str = field(default=FORMAT_NAME, init=False)
    format_version: int = field(default=FORMAT_VERSION, init=False)

    def __post_init__(self) -> None:
        _require(
            isinstance(self.scenario, str) and bool(self.scenario),
            "header.scenario: a non-empty str",
            self.scenario,
        )
        _require(
            _is_int(self.seed) and _INT64_MIN <= self.seed <= _UINT64_MAX,
            "header.seed: int in [-2**63, 2**64)",
            self.seed,
        )
        _require(
            isinstance(self.chooser, str) and bool(self.chooser),
            "header.chooser: a non-empty str",
            self.chooser,
        )
        _require(
            isinstance(self.package_version, str),
            "header.package_version: str",
            self.package_version,
        )
        _require(
            isinstance(self.python_version, str)
            and _PYTHON_VERSION.fullmatch(self.python_version) is not None,
            'header.python_version: "major.minor"',
            self.python_version,
        )
        faults = self.faults
        _require(
            type(faults) in (list, tuple) and len(faults) <= MAX_HEADER_ITEMS,
            f"header.faults: a list of at most {MAX_HEADER_ITEMS} str",
            faults,
        )
        for fault in faults:
            _require(isinstance(fault, str), "header.faults: str items", fault)
        object.__setattr__(self, "seed", int(self.seed))
        object.__setattr__(self, "faults", tuple(faults))
        object.__setattr__(self, "parameters", _normalize_map(self.parameters, "header.parameters"))
        object.__setattr__(self, "extensions", _normalize_map(self.extensions, "header.extensions"))

    def __hash__(self) -> int:
        # The generated hash would hash the mappingproxies, which cannot be.
        return hash(
            (
                self.scenario,
                self.seed,
                self.chooser,
                tuple(self.parameters.items()),
                self.faults,
                self.package_version,
                self.python_version,
                tuple(self.extensions.items()),
            )
        )

    def to_record(self) -> tuple[Any, ...]:
        """The HEADER record, ready to pack (maps as sorted dicts, lists as lists)."""
        return (
            EventKind.HEADER,
            self.format_name,
            self.format_version,
            self.scenario,
            dict(self.parameters),
            self.seed,
            self.chooser,
            list(self.faults),
            self.package_version,
            self.python_version,
            dict(self.extensions),
        )


#: The HEADER record's length: kind and ten fields.
HEADER_FIELDS: Final = 11


def header_from_fields(fields: Sequence[Any]) -> TraceHeader:
    """A TraceHeader from the decoded elements 3.. of a HEADER record.

    The reader has checked kind, format name and version (elements 0-2). Raises
    InvalidRecordError for anything else that is wrong.
    """
    if len(fields) != HEADER_FIELDS - 3:
        raise InvalidRecordError(f"a HEADER record of {HEADER_FIELDS} items", f"{len(fields) + 3}")
    scenario, parameters, seed, chooser, faults, package, python, extensions = fields
    for name, value in (("parameters", parameters), ("extensions", extensions)):
        _require(isinstance(value, MapPairs), f"header.{name}: a map", value)
    return TraceHeader(
        scenario=scenario,
        parameters=parameters,
        seed=seed,
        chooser=chooser,
        faults=faults,
        package_version=package,
        python_version=python,
        extensions=extensions,
    )
