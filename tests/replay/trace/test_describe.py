"""Tests for replay.trace.describe: one describer, its two renderings, exactly."""

from __future__ import annotations

from typing import Any

import pytest

from replay.trace.describe import detail_text, record_detail, show_record
from replay.trace.format import EventKind

CASES: list[tuple[tuple[Any, ...], str, dict[str, Any], str, str]] = [
    (
        (EventKind.CHECKPOINT, 7, 2, 0xABC),
        "checkpoint", {"checkpoint": "FINAL", "digest": "0x0000000000000abc"},
        "CHECKPOINT FINAL(step=7, digest=0x0000000000000abc)",
        "FINAL digest=0x0000000000000abc",
    ),
    (
        (EventKind.CHECKPOINT, 7, 9, 1),
        "checkpoint", {"checkpoint": "9", "digest": "0x0000000000000001"},
        "CHECKPOINT 9(step=7, digest=0x0000000000000001)",
        "9 digest=0x0000000000000001",
    ),
    (
        (EventKind.CHOICE, 3, 4, 1),
        "choice", {"options": 4, "choice": 1},
        "CHOICE(step=3, options=4, choice=1)",
        "option 1 of 4",
    ),
    (
        (EventKind.INPUT, 2, "serial0", b"x" * 40),
        "input", {"channel": "serial0", "size": 40, "data_hex": "78" * 40},
        f"INPUT(step=2, channel='serial0', 40 bytes {b'x' * 16!r})",
        f"serial0: 40 bytes {b'x' * 32!r}",
    ),
    (
        (EventKind.INPUT, 2, "tcp", b""),
        "input", {"channel": "tcp", "size": 0, "data_hex": ""},
        "INPUT(step=2, channel='tcp', close)",
        "tcp: close",
    ),
    (
        (EventKind.CLOCK, 5, 2, -3),
        "clock", {"clock": "HOST", "offset_ns": -3},
        "CLOCK(step=5, HOST, offset=-3)",
        "HOST read, offset -3 ns",
    ),
    (
        (EventKind.CLOCK, 5, 0, 1000),
        "clock", {"clock": "REALTIME", "offset_ns": 1000},
        "CLOCK(step=5, REALTIME, offset=1000)",
        "REALTIME advanced 1000 ns (host mode)",
    ),
    (
        (EventKind.RANDOM, 1, 0xBEEF),
        "random", {"value": "0x000000000000beef"},
        "RANDOM(step=1, value=0xbeef)",
        "drew 0x000000000000beef",
    ),
    (
        (EventKind.MUTEX, 2, 1),
        "mutex", {"step_delta": 2, "thread_index": 1},
        "MUTEX(2, 1)",
        "grant to thread 1 (step delta 2)",
    ),
    (
        (EventKind.SHUTDOWN, 4, "left over"),
        "shutdown", {"cause": "left over"},
        "SHUTDOWN(step=4, cause='left over')",
        "left over",
    ),
    (
        (EventKind.FAULT, 4, 1, "serial0", -1),
        "fault", {"fault_kind": 1, "target": "serial0", "arg": -1},
        "FAULT(4, 1, 'serial0', -1)",
        "fault_kind=1, target='serial0', arg=-1",
    ),
]


@pytest.mark.parametrize(("record", "kind", "detail", "short", "line"), CASES)
def test_each_kind_is_described_once_and_read_two_ways(
    record: tuple[Any, ...], kind: str, detail: dict[str, Any], short: str, line: str
) -> None:
    assert record_detail(record) == (kind, detail)
    assert show_record(record) == short
    assert detail_text(kind, detail) == line


def test_the_end_of_a_trace_is_shown_as_such() -> None:
    assert show_record(None) == "the end of the trace"
