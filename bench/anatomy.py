"""What one timer dispatch of the fast path costs, feature by feature.

``python -m bench.anatomy [DISPATCHES]`` runs workload 1 (1000 timers, seeded
delays, every callback re-arming its timer with ``timer.mod_ns(get_ns(VIRTUAL)
+ delay)``) on a stand-alone model of the quiet timer loop
(``TimerList.run_warping``, which calls the step observer and
``VirtualClock.advance`` where the model inlines them), with each of the
three things it does beyond popping a heap switched off in turn:

* **guard**: the per-pass check that the fast path is still exact (no bottom
  half, no ready fd, no other timer list, no other thread, no input, ...);
* **digest**: counting the step and folding it into the rolling digest that
  replay checkpoints compare;
* **clocks**: moving all four clocks (REALTIME, VIRTUAL, HOST, VIRTUAL_RT)
  rather than the one the timers are on.

It prints each variant's rate beside simpy's and the bare heapq floor's, in
the same run. It is a model of the loop, not the loop: it shows where the
time goes, so that a change to the real loop can be judged before it is made;
``python -m bench --only timers`` measures the real one.
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable, Iterator
from heapq import heappop, heappush
from typing import Any

from . import peers
from .delays import delay_streams

__all__ = ["main", "model"]

_PRIME = 0x100000001B3
_MASK64 = (1 << 64) - 1


class _Timer:
    __slots__ = ("_entry", "_list", "cb", "uid")

    def __init__(self, timer_list: _TimerList, uid: int) -> None:
        self._entry: tuple[int, int, _Timer] | None = None
        self._list = timer_list
        self.cb: Callable[[], None] = _nothing
        self.uid = uid

    def mod_ns(self, expire_ns: int) -> None:  # Timer.mod_ns's common case
        tl = self._list
        self._entry = entry = (expire_ns, tl.seq, self)
        tl.seq += 1
        heap = tl.heap
        heappush(heap, entry)
        if heap[0] is entry and tl.notify is not None:
            tl.notify()


class _TimerList:
    __slots__ = ("heap", "notify", "seq")

    def __init__(self) -> None:
        self.heap: list[tuple[int, int, _Timer]] = []
        self.notify: Callable[[], None] | None = None
        self.seq = 0


class _Clock:
    __slots__ = ("now",)

    def __init__(self) -> None:
        self.now = [0, 0, 946_684_800 * 10**9, 0]

    def get_ns(self, clock_type: int) -> int:
        value = self.now[clock_type]
        if clock_type >= 2:
            pass  # the fault and replay read hooks
        return value


class _Flags:
    """Stand-ins for the objects the guard reads."""

    def __init__(self) -> None:
        self.notified = False
        self.ready: dict[int, Any] = {}
        self.checkpoint = None
        self.steps = 0
        self.digest = 0


def _nothing() -> None:
    pass


def model(n_timers: int, total: int, *, guard: bool, digest: bool, clocks: bool) -> float:
    """Dispatches per second of the modelled loop with the given features on."""
    tl = _TimerList()
    clock = _Clock()
    get_ns = clock.get_ns
    done = [0]

    def arm(timer: _Timer, delays: Iterator[int]) -> None:
        def fire() -> None:
            done[0] += 1
            delay = next(delays, None)
            if delay is not None:
                timer.mod_ns(get_ns(1) + delay)

        timer.cb = fire
        timer.mod_ns(next(delays))

    for uid, stream in enumerate(delay_streams(n_timers, total)):
        arm(_Timer(tl, uid), iter(stream))
    aio, ioh, sim = _Flags(), _Flags(), _Flags()
    others: list[list[Any]] = [[], [], []]
    main = object()
    threads = [main]
    external: list[Any] = []
    enabled = [True, True, True, True]
    heap, now, pop = tl.heap, clock.now, heappop
    tag = (4 << 56) | (1 << 32)
    gc.collect()
    start = time.perf_counter_ns()
    while heap:
        if guard and (
            aio.notified or ioh.notified or aio.ready or ioh.ready
            or others[0] or others[1] or others[2]
            or threads[-1] is not main or external or sim.checkpoint is not None
        ):
            break
        entry = heap[0]
        timer = entry[2]
        if timer._entry is not entry:
            pop(heap)
            continue
        if not enabled[1]:
            break
        delta = entry[0] - now[1]
        if delta > 0:
            now[0] += delta
            now[1] += delta
            if clocks:
                now[2] += delta
                now[3] += delta
        current = now[1]
        while True:
            pop(heap)
            timer._entry = None
            if digest:
                sim.steps += 1
                sim.digest = ((sim.digest ^ now[0]) * _PRIME + (tag | timer.uid)) & _MASK64
            timer.cb()
            if not heap:
                break
            entry = heap[0]
            timer = entry[2]
            if timer._entry is not entry or entry[0] > current:
                break
    elapsed = time.perf_counter_ns() - start
    if done[0] != total:
        raise RuntimeError(f"the model dispatched {done[0]} timers, expected {total}")
    return total * 1e9 / elapsed


def _best(sample: Callable[[], float], rounds: int = 3) -> float:
    return max(sample() for _ in range(rounds))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    total = int(args[0]) if args else 300_000
    n = 1000
    delay_streams(n, total)

    def rate(run: Callable[[], int]) -> float:
        gc.collect()
        start = time.perf_counter_ns()
        ops = run()
        return ops * 1e9 / (time.perf_counter_ns() - start)

    simpy = _best(lambda: rate(peers.simpy_timers(n, total)))
    heapq_floor = _best(lambda: rate(peers.heapq_timers(n, total)))
    print(f"timer dispatch anatomy: {n} timers, {total:,} dispatches, best of 3")
    print(f"{'variant':44} {'dispatch/s':>12} {'/ simpy':>8} {'/ heapq':>8}")
    variants = [
        ("the fast path: guard, digest, four clocks", True, True, True),
        ("without the guard", False, True, True),
        ("without the digest", True, False, True),
        ("with two clocks, not four", True, True, False),
        ("without any of the three", False, False, False),
    ]
    for label, guard, digest, clocks in variants:
        r = _best(lambda g=guard, d=digest, c=clocks: model(n, total, guard=g, digest=d, clocks=c))
        print(f"{label:44} {r:12,.0f} {r / simpy:7.2f}x {r / heapq_floor:7.2f}x")
    print(f"{'simpy':44} {simpy:12,.0f}")
    print(f"{'bare heapq floor':44} {heapq_floor:12,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
