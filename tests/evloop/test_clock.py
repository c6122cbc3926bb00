"""Tests for evloop.clock: QEMU's four clocks on virtual time (``util/qemu-timer.c``)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evloop import (
    HOST_EPOCH_NS,
    SCALE_MS,
    SCALE_NS,
    SCALE_US,
    ClockType,
    VirtualClock,
    soonest_timeout,
    timeout_ns_to_ms,
)
from evloop.loop.clock import poll_wait_ns

INT32_MAX = 2**31 - 1

ALL_CLOCKS = tuple(ClockType)
RUNNING_CLOCKS = (ClockType.REALTIME, ClockType.HOST, ClockType.VIRTUAL_RT)


def readings(clock: VirtualClock) -> list[int]:
    return [clock.get_ns(t) for t in ClockType]


# -- the clock types ------------------------------------------------------------


def test_clock_types_are_numbered_as_qemus_and_ordered_as_timers_run() -> None:
    assert [(t.name, int(t)) for t in ClockType] == [
        ("REALTIME", 0),
        ("VIRTUAL", 1),
        ("HOST", 2),
        ("VIRTUAL_RT", 3),
    ]


def test_scales_are_ns_per_unit() -> None:
    assert (SCALE_NS, SCALE_US, SCALE_MS) == (1, 1_000, 1_000_000)


# -- a new clock ----------------------------------------------------------------


def test_a_new_clock_reads_zero_but_host_which_reads_the_epoch() -> None:
    clock = VirtualClock()
    assert HOST_EPOCH_NS == 946_684_800_000_000_000  # 2000-01-01T00:00:00Z
    assert readings(clock) == [0, 0, HOST_EPOCH_NS, 0]


def test_virtual_starts_disabled_and_the_others_enabled() -> None:
    clock = VirtualClock()
    assert [clock.enabled(t) for t in ClockType] == [True, False, True, True]


def test_repr_shows_every_clock_and_which_are_stopped() -> None:
    clock = VirtualClock()
    assert repr(clock) == (
        f"<VirtualClock REALTIME=0, VIRTUAL=0 (stopped), HOST={HOST_EPOCH_NS}, VIRTUAL_RT=0>"
    )


# -- advancing ------------------------------------------------------------------


def test_virtual_does_not_advance_while_disabled_others_do() -> None:
    clock = VirtualClock()
    clock.advance(5 * SCALE_MS)
    assert readings(clock) == [5 * SCALE_MS, 0, HOST_EPOCH_NS + 5 * SCALE_MS, 5 * SCALE_MS]


def test_virtual_advances_once_enabled_and_keeps_its_value_when_stopped_again() -> None:
    clock = VirtualClock()
    clock.advance(1_000)
    clock.enable(ClockType.VIRTUAL, True)
    clock.advance(300)
    assert clock.get_ns(ClockType.VIRTUAL) == 300
    clock.enable(ClockType.VIRTUAL, False)
    clock.advance(7_000)
    assert clock.get_ns(ClockType.VIRTUAL) == 300
    assert clock.get_ns(ClockType.REALTIME) == 8_300


def test_a_disabled_running_clock_still_counts() -> None:
    # qemu_clock_enable(false) only stops a clock's timers; only VIRTUAL stops counting.
    clock = VirtualClock()
    for t in RUNNING_CLOCKS:
        clock.enable(t, False)
    clock.advance(42)
    assert readings(clock) == [42, 0, HOST_EPOCH_NS + 42, 42]


def test_advance_by_zero_changes_nothing() -> None:
    clock = VirtualClock()
    clock.advance(0)
    assert readings(clock) == [0, 0, HOST_EPOCH_NS, 0]


def test_advance_backwards_is_refused() -> None:
    clock = VirtualClock()
    with pytest.raises(ValueError, match=re.escape("cannot move a clock backwards (advance(-1))")):
        clock.advance(-1)
    assert readings(clock) == [0, 0, HOST_EPOCH_NS, 0]


def test_advance_to_moves_realtime_to_the_given_reading() -> None:
    clock = VirtualClock()
    clock.advance_to(1_500)
    assert readings(clock) == [1_500, 0, HOST_EPOCH_NS + 1_500, 1_500]


def test_advance_to_a_reading_already_past_does_nothing() -> None:
    clock = VirtualClock()
    clock.advance(2_000)
    clock.advance_to(1_000)
    clock.advance_to(2_000)
    assert clock.get_ns(ClockType.REALTIME) == 2_000


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 10**12)), max_size=30))
def test_every_running_clock_counts_every_advance_and_virtual_only_while_enabled(
    steps: list[tuple[bool, int]],
) -> None:
    clock = VirtualClock()
    total = virtual = 0
    for virtual_on, ns in steps:
        clock.enable(ClockType.VIRTUAL, virtual_on)
        clock.advance(ns)
        total += ns
        if virtual_on:
            virtual += ns
    assert readings(clock) == [total, virtual, HOST_EPOCH_NS + total, total]


# -- enabling and listeners -----------------------------------------------------


def test_enabling_a_clock_notifies_listeners_only_on_a_rising_edge() -> None:
    clock = VirtualClock()
    told: list[ClockType] = []
    clock.add_listener(told.append)
    clock.enable(ClockType.VIRTUAL, True)
    clock.enable(ClockType.VIRTUAL, True)  # already enabled: no edge
    clock.enable(ClockType.REALTIME, True)  # enabled from the start: no edge
    clock.enable(ClockType.HOST, False)  # disabling never notifies
    clock.enable(ClockType.HOST, True)
    assert told == [ClockType.VIRTUAL, ClockType.HOST]


def test_listeners_are_told_in_registration_order_until_removed() -> None:
    clock = VirtualClock()
    told: list[tuple[str, ClockType]] = []

    def first(t: ClockType) -> None:
        told.append(("first", t))

    def second(t: ClockType) -> None:
        told.append(("second", t))

    clock.add_listener(first)
    clock.add_listener(second)
    clock.enable(ClockType.VIRTUAL, True)
    clock.remove_listener(first)
    clock.enable(ClockType.VIRTUAL, False)
    clock.enable(ClockType.VIRTUAL, True)
    assert told == [
        ("first", ClockType.VIRTUAL),
        ("second", ClockType.VIRTUAL),
        ("second", ClockType.VIRTUAL),
    ]


def test_enable_takes_the_plain_qemu_number_of_a_clock() -> None:
    clock = VirtualClock()
    told: list[ClockType] = []
    clock.add_listener(told.append)
    clock.enable(1, True)  # type: ignore[arg-type]
    assert clock.enabled(ClockType.VIRTUAL)
    assert told == [ClockType.VIRTUAL]
    assert type(told[0]) is ClockType


# -- timeout_ns_to_ms -----------------------------------------------------------


@pytest.mark.parametrize(
    ("ns", "ms"),
    [
        (-1, -1),
        (-(10**12), -1),
        (0, 0),
        (1, 1),
        (999_999, 1),
        (1_000_000, 1),
        (1_000_001, 2),
        (750_500_000, 751),
        (INT32_MAX * SCALE_MS, INT32_MAX),
        (INT32_MAX * SCALE_MS + 1, INT32_MAX),
        (2**62, INT32_MAX),
    ],
)
def test_timeout_ns_to_ms_rounding(ns: int, ms: int) -> None:
    assert timeout_ns_to_ms(ns) == ms


@given(st.integers(1, INT32_MAX * SCALE_MS))
def test_timeout_ns_to_ms_rounds_up_to_the_least_whole_ms_that_covers_it(ns: int) -> None:
    ms = timeout_ns_to_ms(ns)
    assert ms * SCALE_MS >= ns > (ms - 1) * SCALE_MS


# -- soonest_timeout ------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "soonest"),
    [
        (-1, -1, -1),
        (-1, 5, 5),
        (5, -1, 5),
        (3, 5, 3),
        (5, 3, 3),
        (0, -1, 0),
        (-1, 0, 0),
        (0, 7, 0),
        (4, 4, 4),
    ],
)
def test_soonest_timeout(a: int, b: int, soonest: int) -> None:
    assert soonest_timeout(a, b) == soonest


timeouts = st.just(-1) | st.integers(0, 2**63 - 1)


@given(timeouts, timeouts)
def test_soonest_timeout_is_the_minimum_with_minus_one_as_infinity(a: int, b: int) -> None:
    finite = [t for t in (a, b) if t >= 0]
    assert soonest_timeout(a, b) == (min(finite) if finite else -1)
    assert soonest_timeout(a, b) == soonest_timeout(b, a)


# -- read_hook ------------------------------------------------------------------


def test_read_hook_sees_and_may_replace_only_host_and_virtual_rt_reads() -> None:
    clock = VirtualClock()
    seen: list[tuple[ClockType, int]] = []

    def hook(t: ClockType, value: int) -> int:
        seen.append((t, value))
        return value + 7

    clock.read_hook = hook
    clock.advance(10)
    assert readings(clock) == [10, 0, HOST_EPOCH_NS + 17, 17]
    assert seen == [(ClockType.HOST, HOST_EPOCH_NS + 10), (ClockType.VIRTUAL_RT, 10)]
    assert type(seen[0][0]) is ClockType


@given(st.one_of(st.integers(-5, 5 * SCALE_MS), st.integers(-(2**70), 2**70)))
def test_poll_wait_ns_is_the_ms_timeout_in_ns(ns: int) -> None:
    assert poll_wait_ns(ns) == timeout_ns_to_ms(ns) * SCALE_MS


def test_poll_wait_ns_rounds_up_to_whole_ms_and_caps_at_int32_max_ms() -> None:
    assert [poll_wait_ns(n) for n in (1, SCALE_MS, SCALE_MS + 1, 0, -1)] == [
        SCALE_MS, SCALE_MS, 2 * SCALE_MS, 0, -SCALE_MS,
    ]
    assert poll_wait_ns(2**62) == (2**31 - 1) * SCALE_MS
