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
* **Chained chunks** (version 2). Each data chunk ends with a CHAIN record:
  the SHA-256 of every byte of the records before it, the HEADER's first. A
  CRC says a chunk is as written; the chain says the chunks and the header
  belong together, so a changed header, a changed record with its chunk's
  CRC made right again, or chunks swapped or dropped, is refused at the
  first chunk whose CHAIN no longer holds. Host mode's real inputs, which no
  replay can check against anything else, rely on it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from types import MappingProxyType
from typing import Any, Final, TypeAlias

__all__ = [
    "CHAIN_DIGEST_SIZE",
    "CHAIN_PREFIX",
    "CHAIN_RECORD_SIZE",
    "CHUNK_HEADER",
    "CHUNK_HEADER_SIZE",
    "DEFAULT_CHUNK_THRESHOLD",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "HEADER_UNPACKER_LIMITS",
    "LENGTH_AND_COUNT",
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
    "READABLE_VERSIONS",
    "RECORD_UNPACKER_LIMITS",
    "TIMER_CHECKPOINTS_VERSION",
    "CheckpointKind",
    "EventKind",
    "FieldSpec",
    "FieldType",
    "Problem",
    "RecordLayout",
]

FORMAT_NAME: Final = "evreplay-trace"
#: Version 2 added the CHAIN record that ends every data chunk. Version 3 added
#: the timer checkpoints (CLOCK_CHECKPOINTS): a play asks the log before a timer
#: list runs, as QEMU's ``replay_checkpoint`` does, so a run with due timers
#: logs events that versions 1 and 2 never had.
FORMAT_VERSION: Final = 3
#: The versions this reader reads, and this writer writes (a play re-records
#: a trace in its own version, so that an old trace still compares bit-exact).
READABLE_VERSIONS: Final = (1, 2, 3)
#: The first version whose runs take timer checkpoints (CLOCK_CHECKPOINTS).
TIMER_CHECKPOINTS_VERSION: Final = 3

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
#: The part of CHUNK_HEADER that its CRC covers.
LENGTH_AND_COUNT: Final = struct.Struct("<II")

#: Hard limits, enforced by the reader before it allocates anything, and by
#: the writer so that it never writes what the reader refuses.
MAX_CHUNK_PAYLOAD: Final = 1 << 20
MAX_CHUNK_RECORDS: Final = 1 << 16
MAX_RECORD_SIZE: Final = 1 << 19
#: The CHAIN record that ends each data chunk of a version 2 trace, always
#: these exact bytes: a msgpack array of 2 (0x92), kind 11, bin 8 of 32 bytes
#: (0xc4 0x20), then the SHA-256 digest.
CHAIN_PREFIX: Final = b"\x92\x0b\xc4\x20"
CHAIN_DIGEST_SIZE: Final = 32
CHAIN_RECORD_SIZE: Final = len(CHAIN_PREFIX) + CHAIN_DIGEST_SIZE
#: A writer closes a chunk as soon as its payload reaches the threshold, so a
#: payload is below threshold + MAX_RECORD_SIZE + CHAIN_RECORD_SIZE <= MAX_CHUNK_PAYLOAD.
DEFAULT_CHUNK_THRESHOLD: Final = 1 << 16
MAX_CHUNK_THRESHOLD: Final = MAX_CHUNK_PAYLOAD - MAX_RECORD_SIZE - CHAIN_RECORD_SIZE
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

INT64_MIN: Final = -(1 << 63)
INT64_MAX: Final = (1 << 63) - 1
UINT64_MAX: Final = (1 << 64) - 1
#: The most fields a record has (versions 1 and 2); bounds the unpacker's arrays.
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
    CHOICE = 3  #: step, n_options, choice: one decision, at an absolute step
    CHOICES = 4  #: first_step, packed (varint triples, see encode_choices)
    INPUT = 5  #: step, channel, data: external input bytes
    CLOCK = 6  #: step, clock_type, value_ns: a clock read from outside
    RANDOM = 7  #: step, value (uint64): external entropy
    MUTEX = 8  #: step_delta, thread_index: a replay-mutex grant
    SHUTDOWN = 9  #: step, cause
    FAULT = 10  #: step, fault_kind, target, arg: an injected fault
    #: digest (bin 32): ends each data chunk (version 2); part of the framing,
    #: checked and dropped by the reader, never yielded and never counted.
    CHAIN = 11
    #: first_step, packed (varint step delta + clock type byte, see
    #: trace/clockpoints.py): QEMU's CHECKPOINT_CLOCK_VIRTUAL/_HOST/_VIRTUAL_RT
    #: events, batched as CHOICES batches decisions (version 3)
    CLOCK_CHECKPOINTS = 12
    #: step, sequence, name: one BH of the async-event queue as it is released
    #: (QEMU's EVENT_ASYNC, ``replay_save_event``). Only in a trace whose header
    #: has ``run.async_events``; opt-in, so the version stays 3
    ASYNC_EVENT = 13


class CheckpointKind(IntEnum):
    """What a CHECKPOINT record's ``checkpoint_kind`` field says."""

    INIT = 0  #: after the header, before the first step
    PERIODIC = 1  #: every ``checkpoint_interval`` steps
    FINAL = 2  #: after the last step, before END


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
