"""The four QEMU clocks, virtual and in integer nanoseconds.

Rules kept here (QEMU ``util/qemu-timer.c``, ``include/qemu/timer.h``):

* ``REALTIME``, ``HOST`` and ``VIRTUAL_RT`` always run; ``VIRTUAL`` runs only
  while it is enabled, as a stopped VM's virtual clock does not move. As in
  QEMU, ``VIRTUAL`` starts disabled (``vm_start`` enables it; a
  :class:`~evloop.Simulation` does so when it is built).
* Time moves only through :meth:`VirtualClock.advance`: nothing here reads the
  host's clock. ``HOST`` starts at :data:`HOST_EPOCH_NS`, a fixed date, so a
  run never depends on the day it ran.
* ``enable(type, False)`` on any clock stops its timers from running and gives
  its timer lists a deadline of -1, as ``qemu_clock_enable`` does; only
  ``VIRTUAL`` also stops counting.
* Enabling a clock notifies its listeners (the timer lists), as
  ``qemu_clock_notify`` does, so a loop blocked with an infinite timeout
  recomputes its deadline.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum
from typing import Any

__all__ = [
    "HOST_EPOCH_NS",
    "SCALE_MS",
    "SCALE_NS",
    "SCALE_US",
    "ClockType",
    "VirtualClock",
    "poll_wait_ns",
    "soonest_timeout",
    "timeout_ns_to_ms",
]

SCALE_NS = 1
SCALE_US = 1000
SCALE_MS = 1000000

#: ``HOST`` reads 2000-01-01T00:00:00Z at the start of every run.
HOST_EPOCH_NS = 946_684_800 * 1_000_000_000

_INT32_MAX = 2**31 - 1


class ClockType(IntEnum):
    """QEMU's ``QEMUClockType``; the order is also the order timers run in."""

    REALTIME = 0
    VIRTUAL = 1
    HOST = 2
    VIRTUAL_RT = 3


_REALTIME = ClockType.REALTIME
_VIRTUAL = ClockType.VIRTUAL


def soonest_timeout(a: int, b: int) -> int:
    """The sooner of two timeouts in ns, where -1 means infinite (``qemu_soonest_timeout``)."""
    if a < 0:
        return b
    if b < 0:
        return a
    return a if a < b else b


def timeout_ns_to_ms(ns: int) -> int:
    """A ns timeout as poll(2) milliseconds (``qemu_timeout_ns_to_ms``).

    Negative is infinite (-1), zero stays zero, anything else rounds *up*
    ("better to wait too long than to busy-wait") and is capped at INT32_MAX.
    """
    if ns < 0:
        return -1
    if ns == 0:
        return 0
    ms = (ns + SCALE_MS - 1) // SCALE_MS
    return ms if ms < _INT32_MAX else _INT32_MAX


def poll_wait_ns(ns: int) -> int:
    """``timeout_ns_to_ms(ns) * SCALE_MS``: how long, in ns, a poll(2) for ``ns`` waits.

    A deadline in whole ms, rounded up, as glib polls for an ``AioContext``;
    the common case (a positive timeout) in one call, as the quiet loop asks
    it once per pass (``quiet.py``).
    """
    if ns > 0:
        ms = (ns + SCALE_MS - 1) // SCALE_MS
        return (ms if ms < _INT32_MAX else _INT32_MAX) * SCALE_MS
    return timeout_ns_to_ms(ns) * SCALE_MS


ClockListener = Callable[[ClockType], None]


class VirtualClock:
    """The four clocks of one simulated machine, moved only by :meth:`advance`."""

    __slots__ = ("_enabled", "_listeners", "_now", "fault_hook", "read_hook", "timer_groups")

    def __init__(self) -> None:
        # Indexed by ClockType: REALTIME, VIRTUAL, HOST, VIRTUAL_RT.
        self._now: list[int] = [0, 0, HOST_EPOCH_NS, 0]
        self._enabled: list[bool] = [True, False, True, True]
        self._listeners: list[ClockListener] = []
        #: Called as ``read_hook(clock_type, value) -> value`` on every read of
        #: HOST or VIRTUAL_RT through :meth:`get_ns`: the replay layer's door
        #: for recording and playing clock reads (QEMU's ``REPLAY_CLOCK``).
        self.read_hook: Callable[[ClockType, int], int] | None = None
        #: Called as ``fault_hook(clock_type, value) -> value`` on the same reads,
        #: *before* ``read_hook``: the fault injector's HOST jumps and skew
        #: (``faults.py``), so the replay door sees every read as the program will.
        self.fault_hook: Callable[[ClockType, int], int] | None = None
        #: Weak references to the timer list groups on this clock, oldest
        #: first (QEMU's ``clock->timerlists``); kept by ``timer.py``.
        self.timer_groups: list[Any] = []

    def get_ns(self, clock_type: ClockType) -> int:
        """The current time of ``clock_type`` in ns (``qemu_clock_get_ns``)."""
        value = self._now[clock_type]
        # REALTIME and VIRTUAL, the reads of every timer callback, are never
        # hooked. Asked first by identity: comparing an IntEnum member with an
        # int takes CPython's generic path, several times the cost of ``is``.
        if clock_type is _VIRTUAL or clock_type is _REALTIME:
            return value
        if clock_type >= 2:
            fault = self.fault_hook
            if fault is not None:
                value = fault(ClockType(clock_type), value)
            hook = self.read_hook
            if hook is not None:
                return hook(ClockType(clock_type), value)
        return value

    def advance(self, ns: int) -> None:
        """Move every running clock forward by ``ns`` (VIRTUAL only while enabled).

        ``TimerList.run_warping`` and the asyncio loop's iteration inline this
        (a call less per warp on their hot paths): keep the three in step.
        """
        if ns < 0:
            raise ValueError(f"cannot move a clock backwards (advance({ns}))")
        now = self._now
        now[0] += ns
        if self._enabled[1]:
            now[1] += ns
        now[2] += ns
        now[3] += ns

    def advance_to(self, realtime_ns: int) -> None:
        """Advance so that ``REALTIME`` reads ``realtime_ns`` (no-op if already past)."""
        delta = realtime_ns - self._now[0]
        if delta > 0:
            self.advance(delta)

    def enable(self, clock_type: ClockType, on: bool) -> None:
        """Enable or disable a clock (``qemu_clock_enable``)."""
        clock_type = ClockType(clock_type)
        old = self._enabled[clock_type]
        self._enabled[clock_type] = bool(on)
        if on and not old:
            for listener in tuple(self._listeners):
                listener(clock_type)

    def enabled(self, clock_type: ClockType) -> bool:
        return self._enabled[clock_type]

    def add_listener(self, listener: ClockListener) -> None:
        """Call ``listener(clock_type)`` whenever a clock is (re-)enabled."""
        self._listeners.append(listener)

    def remove_listener(self, listener: ClockListener) -> None:
        self._listeners.remove(listener)

    def __repr__(self) -> str:
        parts = ", ".join(
            f"{t.name}={self._now[t]}{'' if self._enabled[t] else ' (stopped)'}"
            for t in ClockType
        )
        return f"<VirtualClock {parts}>"
