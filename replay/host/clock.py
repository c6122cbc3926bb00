"""The host clock: real time, read once per step while recording and replayed from the trace."""

from __future__ import annotations

import time
from collections.abc import Callable

from evloop import (
    HOST_EPOCH_NS,
    ClockType,
)

__all__ = ["HostClock", "countdown"]

# -- the clock ----------------------------------------------------------------------------


class HostClock:
    """The real clock of a recording, sampled only where the loop waits (RECORD only).

    It holds no time itself: the simulation's :class:`~evloop.VirtualClock`
    does, and moves by what :meth:`elapsed` measured (rule 4).
    """

    __slots__ = ("_last", "_start")

    def __init__(self) -> None:
        self._start = -1
        self._last = -1

    def start(self) -> int:
        """The first sample; returns the wall time now, relative to HOST_EPOCH_NS."""
        wall = time.time_ns()
        self._start = self._last = time.monotonic_ns()
        return wall - HOST_EPOCH_NS

    def elapsed(self) -> int:
        """Real ns since the previous sample (the clock layer's one monotonic read)."""
        now = time.monotonic_ns()
        delta = now - self._last
        self._last = now
        return delta

    def live_ns(self, clock_type: ClockType, sampled: int) -> int:
        """What a read of ``clock_type`` gives now: HOST is wall time, VIRTUAL_RT real time."""
        if self._start < 0:
            return sampled
        if clock_type is ClockType.HOST:
            return time.time_ns()
        if clock_type is ClockType.VIRTUAL_RT:
            return time.monotonic_ns() - self._start
        return sampled


def countdown(seconds: float) -> Callable[[], float]:
    """Real seconds left of ``seconds`` from now, at each call (giving up on a slow peer).

    Host mode reads real time only in this module; this is its one read that
    is not a sample of the recording (it bounds how long closing waits).
    """
    give_up = time.monotonic() + seconds
    return lambda: give_up - time.monotonic()
