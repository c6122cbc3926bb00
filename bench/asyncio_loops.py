"""Workload 8: asyncio programs on SimEventLoop, the stock loop and virtual-time peers.

Each function builds one program on one loop (untimed) and returns its
``run``. The same program runs on every loop it is compared on:

* :func:`call_soon_chain`: one callback that ``call_soon``s itself.
* :func:`event_ping_pong`: two tasks handing the turn over through two
  ``asyncio.Event``\\s.
* :func:`queue_pipeline`: a producer and a consumer through an
  ``asyncio.Queue`` of one slot, so they hand over at every item.
* :func:`sleepers`: ``n`` tasks each doing ``await asyncio.sleep(d)`` over
  the shared seeded delay streams (``delays.py``): the timer-heavy program
  the virtual-time loops are compared on.

Loops (``LOOPS``): ``evreplay`` is :class:`evloop.asyncio.SimEventLoop` on a
fresh simulation; ``asyncio`` is the stock loop (real time: it selects, a
system call, every iteration); ``solipsism`` is ``async_solipsism``'s loop and
``looptime`` is ``looptime``'s (both virtual time, both on PyPI). A missing
peer makes its figure ``unavailable``. looptime is installed apart, in
:data:`ISOLATED_PEERS` (``make bench`` does it), because its pytest plugin
fails every pytest run that lacks pytest-asyncio.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from .delays import delay_streams_s
from .harness import Run, Unavailable

__all__ = [
    "ISOLATED_PEERS",
    "LOOPS",
    "call_soon_chain",
    "event_ping_pong",
    "queue_main",
    "queue_pipeline",
    "sleepers",
    "sleepers_main",
]


def _evreplay() -> asyncio.AbstractEventLoop:
    from evloop.asyncio import SimEventLoop

    return SimEventLoop()


def _stock() -> asyncio.AbstractEventLoop:
    return asyncio.new_event_loop()


def _solipsism() -> asyncio.AbstractEventLoop:
    try:
        import async_solipsism
    except ImportError as exc:
        raise Unavailable(f"async-solipsism is not installed ({exc})") from exc
    loop: asyncio.AbstractEventLoop = async_solipsism.EventLoop()
    return loop


#: Where ``make bench`` installs looptime, off the path of every pytest run:
#: looptime's pytest plugin fails any run that lacks pytest-asyncio.
ISOLATED_PEERS = Path(__file__).resolve().parent.parent / ".venv" / "bench-peers"


def _looptime() -> asyncio.AbstractEventLoop:
    if ISOLATED_PEERS.is_dir() and str(ISOLATED_PEERS) not in sys.path:
        sys.path.append(str(ISOLATED_PEERS))
    try:
        import looptime
    except ImportError as exc:
        raise Unavailable(
            f"looptime is not installed (make bench installs it in {ISOLATED_PEERS}): {exc}"
        ) from exc
    loop: asyncio.AbstractEventLoop = looptime.new_event_loop(_enabled=True)
    return loop


LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "evreplay": _evreplay,
    "asyncio": _stock,
    "solipsism": _solipsism,
    "looptime": _looptime,
}


def _until_complete(
    loop: asyncio.AbstractEventLoop, main: Coroutine[Any, Any, None], done: list[int]
) -> Run:
    def run() -> int:
        try:
            loop.run_until_complete(main)
        finally:
            loop.close()
        return done[0]

    return run


def call_soon_chain(loop_name: str, count: int) -> Run:
    loop = LOOPS[loop_name]()
    done = [0]

    def step() -> None:
        done[0] += 1
        if done[0] < count:
            loop.call_soon(step)
        else:
            loop.stop()

    loop.call_soon(step)

    def run() -> int:
        try:
            loop.run_forever()
        finally:
            loop.close()
        return done[0]

    return run


def event_ping_pong(loop_name: str, round_trips: int) -> Run:
    loop = LOOPS[loop_name]()
    done = [0]

    async def main() -> None:
        to_pong, to_ping = asyncio.Event(), asyncio.Event()

        async def ping() -> None:
            for _ in range(round_trips):
                to_pong.set()
                await to_ping.wait()
                to_ping.clear()
                done[0] += 1

        async def pong() -> None:
            for _ in range(round_trips):
                await to_pong.wait()
                to_pong.clear()
                to_ping.set()

        await asyncio.gather(ping(), pong())

    return _until_complete(loop, main(), done)


def queue_pipeline(loop_name: str, items: int, maxsize: int = 1) -> Run:
    loop = LOOPS[loop_name]()
    done = [0]
    return _until_complete(loop, queue_main(items, maxsize, done), done)


async def queue_main(items: int, maxsize: int, done: list[int]) -> None:
    """The queue pipeline's program (also recorded and played: ``workloads.py``)."""
    queue: asyncio.Queue[int] = asyncio.Queue(maxsize)

    async def producer() -> None:
        for i in range(items):
            await queue.put(i)

    async def consumer() -> None:
        for _ in range(items):
            await queue.get()
            done[0] += 1

    await asyncio.gather(producer(), consumer())


def sleepers(loop_name: str, tasks: int, total: int) -> Run:
    loop = LOOPS[loop_name]()
    if loop_name == "solipsism":
        # async_solipsism warns when two deadlines are closer than its clock's
        # resolution (1 us) and lets them fire together; that is its way.
        import warnings

        from async_solipsism.exceptions import ResolutionWarning

        run = _sleepers_on(loop, tasks, total)

        def quiet() -> int:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ResolutionWarning)
                return run()

        return quiet
    return _sleepers_on(loop, tasks, total)


def _sleepers_on(loop: asyncio.AbstractEventLoop, tasks: int, total: int) -> Run:
    done = [0]
    return _until_complete(loop, sleepers_main(tasks, total, done), done)


async def sleepers_main(tasks: int, total: int, done: list[int]) -> None:
    """The sleepers' program (also recorded and played: ``workloads.py``)."""
    streams = delay_streams_s(tasks, total)

    async def sleeper(stream: tuple[float, ...]) -> None:
        sleep = asyncio.sleep
        for delay in stream:
            await sleep(delay)
            done[0] += 1

    await asyncio.gather(*(sleeper(stream) for stream in streams))
