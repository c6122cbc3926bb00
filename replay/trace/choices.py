"""The CHOICES record's payload: scheduling decisions as a stream of varints."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from itertools import accumulate
from typing import Final

from ..errors import InvalidRecordError, TraceFormatError
from .format import MAX_BATCHED_OPTIONS, MAX_VARINT_SIZE, UINT64_MAX

__all__ = [
    "batch_decision_list",
    "batch_decisions",
    "batch_last_step",
    "decode_choices",
    "encode_choice_into",
    "encode_choices",
]

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
CHOICES_STREAM: Final = re.compile(rb"(?:" + _VARINT + _VARINT + rb")*")


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
    if value > UINT64_MAX:
        raise _VarintProblem(start, f"a varint below 2**64 for {what}", str(value))
    return value, position


def encode_choice_into(out: bytearray, step_delta: int, n_options: int, choice: int) -> None:
    """Append one decision to a CHOICES stream being built (the recorder's hot path)."""
    if 0 <= step_delta < 0x80 and 0 <= choice < n_options <= 15:
        # The common decision: both varints are one byte (pair < 120).
        out.append(step_delta)
        out.append(n_options * (n_options - 1) // 2 + choice)
        return
    if not 0 <= step_delta <= UINT64_MAX:
        raise InvalidRecordError("step_delta in [0, 2**64)", str(step_delta))
    if n_options < 1:
        raise InvalidRecordError("n_options >= 1", str(n_options))
    if not 0 <= choice < n_options:
        raise InvalidRecordError(f"choice in [0, {n_options})", str(choice))
    pair = n_options * (n_options - 1) // 2 + choice
    if pair > UINT64_MAX:
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
#: The n_options, and the choice, of every one-byte option/choice varint.
_SMALL_OPTIONS: Final = tuple(n for n, _ in _SMALL_PAIRS)
_SMALL_CHOICES: Final = tuple(c for _, c in _SMALL_PAIRS)


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


def batch_decisions(first_step: int, packed: bytes) -> Iterator[tuple[int, int, int]]:
    """The decisions of a CHOICES record as ``(step, n_options, choice)``, steps absolute.

    Decision ``i`` is at ``first_step + step_delta_0 + ... + step_delta_i``.
    """
    step = first_step
    for delta, n_options, choice in decode_choices(packed):
        step += delta
        yield step, n_options, choice


def _one_byte_varints(packed: bytes) -> bool:
    """Whether every varint of the stream is one byte, in whole pairs (the usual stream)."""
    return packed.isascii() and len(packed) % 2 == 0


def batch_decision_list(first_step: int, packed: bytes) -> list[tuple[int, int, int]]:
    """``list(batch_decisions(first_step, packed))``; the usual stream decoded at C speed.

    When every varint is one byte (deltas below 128, at most 15 options),
    the deltas are the even bytes and the option/choice pairs the odd ones:
    the steps are a running sum, the pairs a table lookup, with no Python
    loop (a player decodes every batch of its trace).
    """
    if not _one_byte_varints(packed):
        return list(batch_decisions(first_step, packed))
    steps = accumulate(packed[0::2], initial=first_step)
    next(steps)
    pairs = packed[1::2]
    options = map(_SMALL_OPTIONS.__getitem__, pairs)
    return list(zip(steps, options, map(_SMALL_CHOICES.__getitem__, pairs), strict=True))


def batch_last_step(first_step: int, packed: bytes) -> int:
    """The step of a CHOICES record's last decision (``first_step`` plus every delta)."""
    if _one_byte_varints(packed):
        return first_step + sum(packed[0::2])
    last = first_step
    for last, _, _ in batch_decisions(first_step, packed):  # noqa: B007
        pass
    return last


def choices_problem(packed: bytes) -> tuple[int, str, str] | None:
    try:
        for _ in _decode(packed):
            pass
    except _VarintProblem as problem:
        return problem.position, problem.expected, problem.found
    return None
