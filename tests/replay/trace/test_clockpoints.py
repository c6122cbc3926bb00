"""The CLOCK_CHECKPOINTS stream (format 3): QEMU's CHECKPOINT_CLOCK_* events, batched."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replay import TraceFormatError
from replay.errors import InvalidRecordError
from replay.trace.clockpoints import (
    batch_clock_checkpoints,
    batch_last_clock_step,
    clock_checkpoints_problem,
    encode_clock_checkpoint_into,
)
from replay.trace.records import check_record

CHECKPOINTS = st.lists(
    st.tuples(st.integers(0, 2**64 - 1), st.sampled_from([1, 2, 3])), min_size=1, max_size=50
)


@given(CHECKPOINTS, st.integers(0, 2**32))
def test_a_stream_decodes_to_the_checkpoints_it_was_built_from(
    checkpoints: list[tuple[int, int]], first: int
) -> None:
    out = bytearray()
    for delta, clock in checkpoints:
        encode_clock_checkpoint_into(out, delta, clock)
    assert clock_checkpoints_problem(bytes(out)) is None
    steps = []
    step = first
    for delta, clock in checkpoints:
        step += delta
        steps.append((step, clock))
    assert list(batch_clock_checkpoints(first, bytes(out))) == steps
    assert batch_last_clock_step(first, bytes(out)) == step


@given(st.lists(st.sampled_from([1, 2, 3]), min_size=1, max_size=50), st.integers(0, 2**32))
def test_the_last_step_of_a_stream_of_one_byte_deltas_is_their_sum(
    clocks: list[int], first: int
) -> None:
    out = bytearray()
    for delta, clock in enumerate(clocks):
        encode_clock_checkpoint_into(out, delta % 128, clock)
    assert out.isascii()
    assert batch_last_clock_step(first, bytes(out)) == first + sum(
        delta % 128 for delta in range(len(clocks))
    )


def test_a_checkpoint_under_128_steps_after_the_last_takes_two_bytes() -> None:
    out = bytearray()
    encode_clock_checkpoint_into(out, 5, 1)
    encode_clock_checkpoint_into(out, 127, 3)
    encode_clock_checkpoint_into(out, 128, 2)
    assert bytes(out) == b"\x05\x01\x7f\x03\x80\x01\x02"


def test_realtime_takes_no_checkpoint() -> None:
    """util/qemu-timer.c timerlist_run_timers: QEMU_CLOCK_REALTIME has no checkpoint."""
    with pytest.raises(InvalidRecordError, match=r"a clock type byte: 1 \(VIRTUAL\), 2 \(HOST\)"):
        encode_clock_checkpoint_into(bytearray(), 0, 0)


@pytest.mark.parametrize(
    ("packed", "problem"),
    [
        (b"", (0, "at least one checkpoint", "an empty stream")),
        (b"\x00\x04", (1, "a clock type byte: 1 (VIRTUAL), 2 (HOST) or 3 (VIRTUAL_RT)", "4")),
        (b"\x00\x00", (1, "a clock type byte: 1 (VIRTUAL), 2 (HOST) or 3 (VIRTUAL_RT)", "0")),
        (
            b"\x00\x01\x05",
            (3, "a clock type byte: 1 (VIRTUAL), 2 (HOST) or 3 (VIRTUAL_RT)",
             "end of stream (it ends mid-checkpoint)"),
        ),
        (
            b"\x80\x00\x01",
            (0, "a minimal varint for checkpoint 0's step_delta", "a redundant trailing zero byte"),
        ),
        (
            b"\x00\x01\x80",
            (2, "a whole varint for checkpoint 1's step_delta", "end of stream (truncated)"),
        ),
        (
            b"\xff" * 11 + b"\x01",
            (0, "a varint of at most 10 bytes for checkpoint 0's step_delta", "a longer one"),
        ),
        (
            b"\xff" * 9 + b"\x7f\x01",
            (0, "a varint below 2**64 for checkpoint 0's step_delta", str(2**70 - 1)),
        ),
    ],
)
def test_a_damaged_stream_is_named_where_it_is_damaged(
    packed: bytes, problem: tuple[int, str, str]
) -> None:
    assert clock_checkpoints_problem(packed) == problem
    expected = (f"CLOCK_CHECKPOINTS.packed byte {problem[0]}: {problem[1]}", problem[2])
    assert check_record((12, 0, packed)) == expected


def test_decoding_a_damaged_stream_raises_a_format_error_at_its_offset() -> None:
    with pytest.raises(TraceFormatError) as info:
        list(batch_clock_checkpoints(0, b"\x00\x01\x80\x00\x01", offset=100))
    assert info.value.offset == 102
