"""The record layouts of a trace and the checks every record read or written passes.

Each kind's fields are written down once, in :data:`RECORD_LAYOUTS`;
:func:`check_record` says what is wrong with a record (expected, found), and the
reader's fast checks accept the common well-formed records without building a
message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final

from .choices import CHOICES_STREAM, choices_problem
from .clockpoints import clock_checkpoints_problem
from .format import (
    INT64_MAX,
    INT64_MIN,
    UINT64_MAX,
    EventKind,
    FieldSpec,
    FieldType,
    Problem,
    RecordLayout,
)

__all__ = ["RECORD_LAYOUTS", "MapPairs", "check_record", "describe_value"]

class MapPairs(tuple[tuple[Any, Any], ...]):
    """A decoded msgpack map, as its (key, value) pairs in file order.

    The header is decoded with ``object_pairs_hook=MapPairs`` so that the
    reader sees duplicate and unsorted keys (a dict would hide them) and can
    tell a map from an array.
    """

    __slots__ = ()


def is_int(value: object) -> bool:
    # bool is an int subclass but packs as msgpack true/false.
    return type(value) is int or (isinstance(value, int) and not isinstance(value, bool))


def _check_uint(value: object) -> bool:
    return is_int(value) and 0 <= value <= UINT64_MAX  # type: ignore[operator]


def _check_int(value: object) -> bool:
    return is_int(value) and INT64_MIN <= value <= INT64_MAX  # type: ignore[operator]


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
    if is_int(value):
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
    return CHOICES_STREAM.fullmatch(packed) is not None


def _check_choices(record: Sequence[Any]) -> Problem | None:
    packed = record[2]
    if packed and _valid_choices(packed):
        return None
    if not packed:
        return ("CHOICES.packed holding at least one decision", "an empty stream")
    problem = choices_problem(bytes(packed))
    assert problem is not None, "the regex and the decoder disagree"
    position, expected, found = problem
    return (f"CHOICES.packed byte {position}: {expected}", found)


def _check_clock_checkpoints(record: Sequence[Any]) -> Problem | None:
    problem = clock_checkpoints_problem(bytes(record[2]))
    if problem is None:
        return None
    position, expected, found = problem
    return (f"CLOCK_CHECKPOINTS.packed byte {position}: {expected}", found)


def _layout(
    kind: EventKind,
    *fields: tuple[str, FieldType],
    extra: Callable[[Sequence[Any]], Problem | None] | None = None,
) -> RecordLayout:
    return RecordLayout(kind, tuple(FieldSpec(n, t) for n, t in fields), extra)


_U, _I, _S, _B = FieldType.UINT, FieldType.INT, FieldType.STR, FieldType.BIN

#: The layout of every record kind but HEADER (whose layout is TraceHeader's)
#: and CHAIN (framing: exact bytes, format.CHAIN_PREFIX; never a record to a
#: reader's or writer's user, so check_record refuses it as it refuses any unknown kind).
RECORD_LAYOUTS: Final[Mapping[EventKind, RecordLayout]] = MappingProxyType(
    {
        layout.kind: layout
        for layout in (
            _layout(EventKind.END, ("total_records", _U)),
            _layout(EventKind.CHECKPOINT, ("step", _U), ("checkpoint_kind", _U), ("digest", _U)),
            _layout(
                EventKind.CHOICE,
                ("step", _U),
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
            _layout(
                EventKind.CLOCK_CHECKPOINTS,
                ("first_step", _U),
                ("packed", _B),
                extra=_check_clock_checkpoints,
            ),
            _layout(EventKind.ASYNC_EVENT, ("step", _U), ("sequence", _U), ("name", _S)),
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
    entry = _CHECKS.get(kind) if is_int(kind) else None
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
# _explain rejects (tests/replay/trace/test_format.py checks this). A kind without one is
# checked by _explain alone, correctly but slower.
# fmt: off
def _fast_end(r: Any) -> bool:
    return len(r) == 2 and type(r[1]) is int and 0 <= r[1] <= UINT64_MAX


def _fast_checkpoint(r: Any) -> bool:
    if len(r) != 4:
        return False
    _, s, k, d = r
    return (type(s) is int and type(k) is int and type(d) is int
            and 0 <= s <= UINT64_MAX and 0 <= k <= UINT64_MAX and 0 <= d <= UINT64_MAX)


def _fast_choice(r: Any) -> bool:
    if len(r) != 4:
        return False
    _, d, n, c = r
    return (type(d) is int and type(n) is int and type(c) is int
            and 0 <= d <= UINT64_MAX and 0 <= c < n <= UINT64_MAX)


def _fast_choices(r: Any) -> bool:
    if len(r) != 3:
        return False
    _, s, p = r
    return (type(s) is int and 0 <= s <= UINT64_MAX and type(p) is bytes and len(p) > 0
            and _valid_choices(p))


def _fast_input(r: Any) -> bool:
    if len(r) != 4:
        return False
    _, s, ch, data = r
    return type(s) is int and 0 <= s <= UINT64_MAX and type(ch) is str and type(data) is bytes


def _fast_clock(r: Any) -> bool:
    if len(r) != 4:
        return False
    _, s, t, v = r
    return (type(s) is int and type(t) is int and type(v) is int
            and 0 <= s <= UINT64_MAX and 0 <= t <= UINT64_MAX and INT64_MIN <= v <= INT64_MAX)


def _fast_step_uint(r: Any) -> bool:  # RANDOM, MUTEX: two uints
    if len(r) != 3:
        return False
    _, s, v = r
    return type(s) is int and type(v) is int and 0 <= s <= UINT64_MAX and 0 <= v <= UINT64_MAX


def _fast_shutdown(r: Any) -> bool:
    return len(r) == 3 and type(r[1]) is int and 0 <= r[1] <= UINT64_MAX and type(r[2]) is str


def _fast_fault(r: Any) -> bool:
    if len(r) != 5:
        return False
    _, s, k, t, a = r
    return (type(s) is int and type(k) is int and type(t) is str and type(a) is int
            and 0 <= s <= UINT64_MAX and 0 <= k <= UINT64_MAX and INT64_MIN <= a <= INT64_MAX)


def _fast_clock_checkpoints(r: Any) -> bool:
    if len(r) != 3:
        return False
    _, s, p = r
    return (type(s) is int and 0 <= s <= UINT64_MAX and type(p) is bytes
            and clock_checkpoints_problem(p) is None)


def _fast_async_event(r: Any) -> bool:
    if len(r) != 4:
        return False
    _, s, q, n = r
    return (type(s) is int and type(q) is int and type(n) is str
            and 0 <= s <= UINT64_MAX and 0 <= q <= UINT64_MAX)
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
    EventKind.CLOCK_CHECKPOINTS: _fast_clock_checkpoints,
    EventKind.ASYNC_EVENT: _fast_async_event,
}
