"""The one record describer: what each field of each record kind means, and how it reads.

:func:`record_detail` is the only place that turns a record's positional
fields into named, JSON-able values (checkpoint and clock kinds by name,
digests and random values in hex, input bytes in hex); the tools build their
events from it. Two renderings read those values: :func:`show_record`, the
short ``KIND(field=value, ...)`` form a divergence reports, and
:func:`detail_text`, the text of one ``replay dump`` line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from evloop import ClockType

from .format import CheckpointKind, EventKind

__all__ = ["detail_text", "record_detail", "show_record"]


def _enum_name(enum: type[CheckpointKind] | type[ClockType], value: int) -> str:
    return enum(value).name if value in enum._value2member_map_ else str(value)


def record_detail(record: tuple[Any, ...]) -> tuple[str, dict[str, Any]]:
    """A record's kind (lower case, one of the tools' RECORD_KINDS) and its named fields.

    A CHOICE here is one decision ``(CHOICE, step, n_options, choice)``: a CHOICE
    record, or one decision of a CHOICES batch.
    """
    kind = record[0]
    if kind == EventKind.CHECKPOINT:
        name = _enum_name(CheckpointKind, record[2])
        return "checkpoint", {"checkpoint": name, "digest": f"{record[3]:#018x}"}
    if kind == EventKind.CLOCK_CHECKPOINTS and type(record[2]) is int:
        # One checkpoint of a batch, (CLOCK_CHECKPOINTS, step, clock_type), as play reads it.
        return "checkpoint", {"checkpoint": f"CLOCK_{_enum_name(ClockType, record[2])}"}
    if kind == EventKind.CHOICE:
        return "choice", {"options": record[2], "choice": record[3]}
    if kind == EventKind.ASYNC_EVENT:
        return "async_event", {"sequence": record[2], "name": record[3]}
    if kind == EventKind.INPUT:
        data = bytes(record[3])
        return "input", {"channel": record[2], "size": len(data), "data_hex": data.hex()}
    if kind == EventKind.CLOCK:
        return "clock", {"clock": _enum_name(ClockType, record[2]), "offset_ns": record[3]}
    if kind == EventKind.RANDOM:
        return "random", {"value": f"{record[2]:#018x}"}
    if kind == EventKind.MUTEX:
        return "mutex", {"step_delta": record[1], "thread_index": record[2]}
    if kind == EventKind.SHUTDOWN:
        return "shutdown", {"cause": record[2]}
    if kind == EventKind.FAULT:
        return "fault", {"fault_kind": record[2], "target": record[3], "arg": record[4]}
    return EventKind(kind).name.lower(), {"fields": list(record[1:])}


def _input_text(data_hex: str, shown: int) -> str:
    data = bytes.fromhex(data_hex)
    return "close" if not data else f"{len(data)} bytes {data[:shown]!r}"


def show_record(record: tuple[Any, ...] | None) -> str:
    """A short, readable description of a record (for divergence reports)."""
    if record is None:
        return "the end of the trace"
    kind = EventKind(record[0])
    _, d = record_detail(record)
    step = record[1]
    if kind is EventKind.CHOICE:
        return f"CHOICE(step={step}, options={d['options']}, choice={d['choice']})"
    if kind is EventKind.CHECKPOINT:
        return f"CHECKPOINT {d['checkpoint']}(step={step}, digest={d['digest']})"
    if kind is EventKind.CLOCK_CHECKPOINTS and "checkpoint" in d:
        return f"CHECKPOINT {d['checkpoint']}(step={step})"
    if kind is EventKind.ASYNC_EVENT:
        return f"ASYNC_EVENT(step={step}, sequence={d['sequence']}, name={d['name']!r})"
    if kind is EventKind.INPUT:
        return f"INPUT(step={step}, channel={d['channel']!r}, {_input_text(d['data_hex'], 16)})"
    if kind is EventKind.CLOCK:
        return f"CLOCK(step={step}, {d['clock']}, offset={d['offset_ns']})"
    if kind is EventKind.RANDOM:
        return f"RANDOM(step={step}, value={int(d['value'], 16):#x})"
    if kind is EventKind.SHUTDOWN:
        return f"SHUTDOWN(step={step}, cause={d['cause']!r})"
    return f"{kind.name}{tuple(record[1:])!r}"


def detail_text(kind: str, d: Mapping[str, Any]) -> str:
    """What one record event says, after its step and kind, on a ``replay dump`` line."""
    if kind == "checkpoint":
        if "digest" not in d:  # a timer checkpoint (format 3): no state digest
            return str(d["checkpoint"])
        return f"{d['checkpoint']} digest={d['digest']}"
    if kind == "async_event":
        return f"#{d['sequence']} {d['name']}"
    if kind == "choice":
        return f"option {d['choice']} of {d['options']}"
    if kind == "input":
        return f"{d['channel']}: {_input_text(d['data_hex'], 32)}"
    if kind == "clock":
        if d["clock"] == "REALTIME":  # host mode only: real time that passed in a wait
            return f"REALTIME advanced {d['offset_ns']} ns (host mode)"
        return f"{d['clock']} read, offset {d['offset_ns']} ns"
    if kind == "random":
        return f"drew {d['value']}"
    if kind == "mutex":
        return f"grant to thread {d['thread_index']} (step delta {d['step_delta']})"
    if kind == "shutdown":
        return str(d["cause"])
    return ", ".join(f"{k}={v!r}" for k, v in d.items())
