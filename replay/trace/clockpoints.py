"""The CLOCK_CHECKPOINTS record's payload: QEMU's timer checkpoints as a byte stream.

QEMU logs ``EVENT_CHECKPOINT + CHECKPOINT_CLOCK_<type>`` as one byte each
time ``timerlist_run_timers`` asks ``replay_checkpoint`` (util/qemu-timer.c,
replay/replay.c). A run with timers takes one before nearly every timer it
runs, so they are batched as CHOICES batches decisions (trace/choices.py):
each checkpoint is

1. ``step_delta``, an unsigned LEB128 varint, minimal, below 2**64: the
   steps since the previous checkpoint of the batch (since ``first_step``
   for the first);
2. one byte, the clock type: 1 (VIRTUAL), 2 (HOST) or 3 (VIRTUAL_RT).
   REALTIME takes no checkpoint, as in QEMU.

So a checkpoint less than 128 steps after the previous one takes two bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import accumulate
from typing import Final

from evloop import ClockType

from ..errors import InvalidRecordError, TraceFormatError
from .choices import _get_varint, _put_varint, _VarintProblem
from .format import UINT64_MAX

__all__ = [
    "CHECKPOINT_CLOCKS",
    "batch_clock_checkpoints",
    "batch_last_clock_step",
    "clock_checkpoints_problem",
    "encode_clock_checkpoint_into",
    "next_clock_checkpoint",
]

#: The clock types that take a checkpoint (``CHECKPOINT_CLOCK_<type>``), as their byte.
CHECKPOINT_CLOCKS: Final = frozenset(
    {int(ClockType.VIRTUAL), int(ClockType.HOST), int(ClockType.VIRTUAL_RT)}
)
_CLOCKS_TEXT: Final = "a clock type byte: 1 (VIRTUAL), 2 (HOST) or 3 (VIRTUAL_RT)"


def encode_clock_checkpoint_into(out: bytearray, step_delta: int, clock_type: int) -> None:
    """Append one checkpoint to a CLOCK_CHECKPOINTS stream being built (the recorder's path)."""
    if clock_type not in CHECKPOINT_CLOCKS:
        raise InvalidRecordError(_CLOCKS_TEXT, str(clock_type))
    if not 0 <= step_delta <= UINT64_MAX:
        raise InvalidRecordError("step_delta in [0, 2**64)", str(step_delta))
    _put_varint(out, step_delta)
    out.append(clock_type)


def _decode(packed: bytes) -> Iterator[tuple[int, int]]:
    """``(step_delta, clock_type)`` of each checkpoint; :class:`_VarintProblem` at damage."""
    position = 0
    end = len(packed)
    number = 0
    while position < end:
        delta, position = _get_varint(packed, position, f"checkpoint {number}'s step_delta")
        if position == end:
            raise _VarintProblem(position, _CLOCKS_TEXT, "end of stream (it ends mid-checkpoint)")
        clock = packed[position]
        if clock not in CHECKPOINT_CLOCKS:
            raise _VarintProblem(position, _CLOCKS_TEXT, str(clock))
        position += 1
        number += 1
        yield delta, clock


def next_clock_checkpoint(packed: bytes, position: int) -> tuple[int, int, int]:
    """``(step_delta, clock_type, next position)`` of the checkpoint at ``position``.

    For a stream already checked (a record a TraceReader yielded): damage
    raises :class:`TraceFormatError` without a file offset.
    """
    try:
        delta, position = _get_varint(packed, position, "a checkpoint's step_delta")
        clock = packed[position]
    except (_VarintProblem, IndexError):
        raise TraceFormatError(position, "a whole CLOCK_CHECKPOINTS checkpoint", "damage") from None
    return delta, clock, position + 1


def batch_clock_checkpoints(
    first_step: int, packed: bytes, *, offset: int = 0, path: str | None = None
) -> Iterator[tuple[int, int]]:
    """The checkpoints of a CLOCK_CHECKPOINTS record as ``(step, clock_type)``, steps absolute.

    Damage raises :class:`TraceFormatError` at ``offset`` plus the damaged
    byte's position; records a TraceReader yields have been checked already.
    """
    packed = bytes(packed)
    if _one_byte_stream(packed):
        steps = accumulate(packed[0::2], initial=first_step)
        next(steps)  # first_step itself
        yield from zip(steps, packed[1::2], strict=True)
        return
    step = first_step
    try:
        for delta, clock in _decode(packed):
            step += delta
            yield step, clock
    except _VarintProblem as problem:
        raise TraceFormatError(
            offset + problem.position, problem.expected, problem.found, path
        ) from None


def batch_last_clock_step(first_step: int, packed: bytes) -> int:
    """The step of a CLOCK_CHECKPOINTS record's last checkpoint (``first_step`` plus every delta).

    Damage raises as :func:`batch_clock_checkpoints` does.
    """
    packed = bytes(packed)
    if _one_byte_stream(packed):
        return first_step + sum(packed[0::2])
    last = first_step
    for last, _ in batch_clock_checkpoints(first_step, packed):  # noqa: B007
        pass
    return last


def _one_byte_stream(packed: bytes) -> bool:
    """Every step_delta below 128 (the usual case): the stream is valid iff its
    length is even and each odd byte is a clock type; checked at C speed."""
    return (
        packed.isascii() and len(packed) % 2 == 0 and not packed[1::2].strip(_CLOCK_BYTES)
    )


_CLOCK_BYTES: Final = bytes(sorted(CHECKPOINT_CLOCKS))


def clock_checkpoints_problem(packed: bytes) -> tuple[int, str, str] | None:
    """None for a valid, non-empty stream; else (position, expected, found)."""
    if not packed:
        return 0, "at least one checkpoint", "an empty stream"
    if _one_byte_stream(packed):
        return None
    try:
        for _ in _decode(packed):
            pass
    except _VarintProblem as problem:
        return problem.position, problem.expected, problem.found
    return None
