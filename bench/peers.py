"""The peers evreplay is measured against, each doing the same work as its workload.

Every function here is a *prepare* (see :mod:`bench.harness`): it builds its
world untimed and returns a ``run()`` that does the work and returns how many
operations it did. The per-dispatch work is the same everywhere: count the
dispatch, take the timer's next delay, re-arm or retire.

* :func:`heapq_timers` is the floor: a bare ``heapq`` of ``(t, seq, cb)``, no
  loop, no clock object, no cancellation. Nothing written in Python that
  dispatches timers in order can be much cheaper.
* :func:`asyncio_timers` runs on :class:`VirtualClockLoop`, an asyncio loop
  whose selector never sleeps: ``select(timeout)`` moves a virtual clock by
  ``timeout`` and returns nothing, and ``loop.time()`` reads that clock.
* :func:`trio_timers` uses ``trio.testing.MockClock(autojump_threshold=0)``,
  which jumps to the next deadline as soon as every task is blocked.
* :func:`asyncio_call_soon` is the chain a bottom half is compared with, on
  the stock loop (which polls its selector with timeout 0 on every turn, a
  system call) or on :class:`VirtualClockLoop` (no system call).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import selectors
from collections.abc import Callable, Generator, Mapping
from typing import Any

import simpy
import trio
import trio.testing

from .delays import delay_streams, delay_streams_s
from .harness import Run

__all__ = [
    "VirtualClockLoop",
    "asyncio_call_soon",
    "asyncio_ping_pong",
    "asyncio_reader_bounce",
    "asyncio_timers",
    "heapq_timers",
    "simpy_timers",
    "trio_timers",
]


# -- an asyncio loop on a virtual clock --------------------------------------


def _fd(fileobj: Any) -> int:
    return fileobj if isinstance(fileobj, int) else int(fileobj.fileno())


class _WarpSelector(selectors.BaseSelector):
    """A selector that never waits: ``select(timeout)`` advances ``now`` by ``timeout``.

    Nothing registered here ever becomes ready (the loop's self-pipe is the
    only thing asyncio registers in these workloads), so ``select`` with no
    timeout would wait forever: it raises instead of hanging.
    """

    def __init__(self) -> None:
        self.now = 0.0
        self._keys: dict[Any, selectors.SelectorKey] = {}

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        key = selectors.SelectorKey(fileobj, _fd(fileobj), events, data)
        if key.fd in self._keys:
            raise KeyError(f"{fileobj!r} (fd {key.fd}) is already registered")
        self._keys[key.fd] = key
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._keys.pop(_fd(fileobj))

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:
            raise RuntimeError("the virtual-clock asyncio loop would block forever")
        if timeout > 0:
            self.now += timeout
        return []

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._keys

    def close(self) -> None:
        self._keys.clear()


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """An asyncio loop whose time is virtual and whose waits return at once."""

    def __init__(self) -> None:
        self._warp = _WarpSelector()
        super().__init__(self._warp)

    def time(self) -> float:
        return self._warp.now


# -- workload 1: timers -------------------------------------------------------


def heapq_timers(n_timers: int, total: int) -> Run:
    """The floor: heappop ``(t, seq, cb)``, advance ``now``, call ``cb``, which re-pushes."""
    heap: list[tuple[int, int, Callable[[], None]]] = []
    seq = itertools.count()
    now = [0]
    done = [0]

    def arm(stream: tuple[int, ...]) -> None:
        delays = iter(stream)

        def fire() -> None:
            done[0] += 1
            delay = next(delays, None)
            if delay is not None:
                heapq.heappush(heap, (now[0] + delay, next(seq), fire))

        heap.append((next(delays), next(seq), fire))

    for stream in delay_streams(n_timers, total):
        arm(stream)
    heapq.heapify(heap)

    def run() -> int:
        pop = heapq.heappop
        while heap:
            now[0], _, fire = pop(heap)
            fire()
        return done[0]

    return run


def simpy_timers(n_timers: int, total: int) -> Run:
    """``n_timers`` simpy processes, each yielding one timeout per delay of its stream."""
    env = simpy.Environment()
    done = [0]

    def proc(stream: tuple[int, ...]) -> Any:
        timeout = env.timeout
        for delay in stream:
            yield timeout(delay)
            done[0] += 1

    for stream in delay_streams(n_timers, total):
        env.process(proc(stream))

    def run() -> int:
        env.run()
        return done[0]

    return run


def asyncio_timers(n_timers: int, total: int) -> Run:
    """``call_later`` callbacks on :class:`VirtualClockLoop`, re-arming themselves."""
    loop = VirtualClockLoop()
    done = [0]
    live = [n_timers]

    def arm(stream: tuple[float, ...]) -> None:
        delays = iter(stream)

        def fire() -> None:
            done[0] += 1
            delay = next(delays, None)
            if delay is not None:
                loop.call_later(delay, fire)
                return
            live[0] -= 1
            if not live[0]:
                loop.stop()

        loop.call_later(next(delays), fire)

    for stream in delay_streams_s(n_timers, total):
        arm(stream)
    return _run_and_close(loop, done)


def _run_and_close(loop: asyncio.AbstractEventLoop, done: list[int]) -> Run:
    def run() -> int:
        try:
            loop.run_forever()
        finally:
            loop.close()
        return done[0]

    return run


def trio_timers(n_timers: int, total: int) -> Run:
    """``n_timers`` trio tasks doing ``await trio.sleep(delay)`` under an autojumping MockClock."""
    streams = delay_streams_s(n_timers, total)
    done = [0]

    async def sleeper(stream: tuple[float, ...]) -> None:
        sleep = trio.sleep
        for delay in stream:
            await sleep(delay)
            done[0] += 1

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for stream in streams:
                nursery.start_soon(sleeper, stream)

    def run() -> int:
        trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
        return done[0]

    return run


def asyncio_reader_bounce(bounces: int) -> Run:
    """A byte bounced between two ``add_reader`` callbacks over a real socket pair.

    The stock loop: each hop is a ``send``, an ``epoll_wait`` and a ``recv``.
    """
    import socket

    loop = asyncio.new_event_loop()
    left, right = socket.socketpair()
    left.setblocking(False)
    right.setblocking(False)
    done = [0]

    def there() -> None:
        right.recv(1)
        right.send(b"y")

    def back() -> None:
        left.recv(1)
        done[0] += 1
        if done[0] < bounces:
            left.send(b"x")
        else:
            loop.stop()

    loop.add_reader(right.fileno(), there)
    loop.add_reader(left.fileno(), back)
    left.send(b"x")

    def run() -> int:
        try:
            loop.run_forever()
        finally:
            loop.close()
            left.close()
            right.close()
        return done[0]

    return run


# -- workload 2: the call_soon chain ------------------------------------------


def asyncio_call_soon(count: int, virtual: bool = False) -> Run:
    """One callback that ``call_soon``s itself ``count`` times, then stops the loop."""
    loop = VirtualClockLoop() if virtual else asyncio.new_event_loop()
    done = [0]

    def step() -> None:
        done[0] += 1
        if done[0] < count:
            loop.call_soon(step)
        else:
            loop.stop()

    loop.call_soon(step)
    return _run_and_close(loop, done)


# -- workload 3: ping-pong over an in-memory pipe ------------------------------


def asyncio_ping_pong(round_trips: int) -> Run:
    """Two coroutines on the stock loop exchanging one byte each way per round trip.

    Each direction of the in-memory "socket pair" is an ``asyncio.StreamReader``
    that the other side feeds: no socket, no system call per message.
    """
    done = [0]

    async def main() -> None:
        to_pong, to_ping = asyncio.StreamReader(), asyncio.StreamReader()

        async def ping() -> None:
            for _ in range(round_trips):
                to_pong.feed_data(b"x")
                await to_ping.readexactly(1)
                done[0] += 1

        async def pong() -> None:
            for _ in range(round_trips):
                await to_pong.readexactly(1)
                to_ping.feed_data(b"y")

        await asyncio.gather(ping(), pong())

    loop = asyncio.new_event_loop()

    def run() -> int:
        try:
            loop.run_until_complete(main())
        finally:
            loop.close()
        return done[0]

    return run


# -- workload 8: switches between flows of control ------------------------------


def asyncio_event_bounce(round_trips: int) -> Run:
    """Two tasks on the stock loop bouncing through two ``asyncio.Event``\\ s."""
    done = [0]

    async def main() -> None:
        ping_ev, pong_ev = asyncio.Event(), asyncio.Event()

        async def ping() -> None:
            for _ in range(round_trips):
                pong_ev.set()
                await ping_ev.wait()
                ping_ev.clear()
                done[0] += 1

        async def pong() -> None:
            for _ in range(round_trips):
                await pong_ev.wait()
                pong_ev.clear()
                ping_ev.set()

        await asyncio.gather(ping(), pong())

    def run() -> int:
        asyncio.run(main())
        return done[0]

    return run


def generator_round_trips(round_trips: int) -> Run:
    """``gen.send`` then ``yield``, ``round_trips`` times: the cheapest Python switch."""
    done = [0]

    def body() -> Generator[None, None, None]:
        for _ in range(round_trips):
            done[0] += 1
            yield

    def run() -> int:
        gen = body()
        send = gen.send
        send(None)
        for _ in range(round_trips - 1):
            send(None)
        with contextlib.suppress(StopIteration):
            send(None)
        return done[0]

    return run
