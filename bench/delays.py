"""The seeded delays that every timer workload, ours and the peers', shares.

``delay_streams(n, total)`` draws ``total`` delays (uniform integers in
``1..MAX_DELAY_NS``) from ``random.Random(seed)`` and deals them to ``n``
timers like cards: timer ``i`` gets delays ``i``, ``i + n``, ``i + 2n``, ...
Timer ``i`` waits its first delay, fires, re-arms with its next delay, and
retires when its stream runs out. So every peer schedules the *same* events
at the same virtual instants, whatever order it happens to break ties in,
and the total number of dispatches is exactly ``total``.

Streams are computed once per ``(n, total, seed)`` and cached (untimed), as
tuples, so no workload can disturb another's.
"""

from __future__ import annotations

import random
from functools import lru_cache

__all__ = ["MAX_DELAY_NS", "delay_streams", "delay_streams_s"]

MAX_DELAY_NS = 1_000_000


@lru_cache(maxsize=8)
def delay_streams(n_timers: int, total: int, seed: int = 0) -> tuple[tuple[int, ...], ...]:
    """``n_timers`` streams of integer ns delays, ``total`` delays in all."""
    if n_timers < 1 or total < n_timers:
        raise ValueError(f"need 1 <= n_timers <= total, got {n_timers} and {total}")
    rng = random.Random(seed)
    delays = [rng.randint(1, MAX_DELAY_NS) for _ in range(total)]
    return tuple(tuple(delays[i::n_timers]) for i in range(n_timers))


@lru_cache(maxsize=8)
def delay_streams_s(n_timers: int, total: int, seed: int = 0) -> tuple[tuple[float, ...], ...]:
    """The same streams in float seconds, for the peers whose clocks are seconds."""
    return tuple(
        tuple(ns / 1e9 for ns in stream) for stream in delay_streams(n_timers, total, seed)
    )
