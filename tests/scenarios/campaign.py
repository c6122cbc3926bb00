"""A model with two distinct bugs, for campaigns: each found, grouped and shrunk on its own.

Four threads of control wake at the same virtual instants; who runs first
is the scheduler's choice, and QEMU's own order (FIFO: the order they were
started in) is the one the code silently assumes:

* **requests out of order**: two clients wake at t = 5 ms and queue their
  request; ``serve`` asserts the queue is in client order
  (an ``AssertionError`` in ``serve``);
* **a stale read**: ``reader`` and ``writer`` wake at t = 7 ms; the reader
  caches the value and raises ``RuntimeError`` if the writer got there
  first.

In FIFO order the run is clean; each bug needs one decision of its own
taken the other way. :func:`async_two_bugs` is the same pair in an asyncio
program.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import evloop.asyncio
from evloop import SCALE_MS, Simulation


def two_bugs(sim: Simulation) -> None:
    ctx = sim.main_loop.aio_context
    queue: list[int] = []
    value = {"written": False}

    def client(i: int) -> None:
        sim.sleep(5 * SCALE_MS)
        queue.append(i)
        ctx.bh_schedule_oneshot(serve, name=f"serve-{i}")

    def serve() -> None:
        assert queue == sorted(queue), f"requests out of order: {queue}"

    def reader() -> None:
        sim.sleep(7 * SCALE_MS)
        if value["written"]:
            raise RuntimeError("stale read: the writer ran before the reader cached the value")

    def writer() -> None:
        sim.sleep(7 * SCALE_MS)
        value["written"] = True

    for i in range(2):
        sim.thread(f"client{i}", lambda i=i: client(i))
    sim.thread("reader", reader)
    sim.thread("writer", writer)


def async_two_bugs(sim: Simulation) -> None:
    """The same two kinds of bug in an asyncio program on the simulation's loop.

    Blocking jobs run on the default executor (threads of control) and finish
    in the scheduler's order: the program asserts they complete in submission
    order (an ``AssertionError`` in ``main``), then a reader job raises
    ``RuntimeError`` if a writer job ran first.
    """
    value = {"written": False}

    def job(i: int) -> int:
        sim.sleep(1_000)
        return i

    def read() -> None:
        sim.sleep(1_000)
        if value["written"]:
            raise RuntimeError("stale read: the writer job ran before the reader job")

    def write() -> None:
        sim.sleep(1_000)
        value["written"] = True

    async def main() -> None:
        loop = asyncio.get_running_loop()
        done: list[int] = []

        async def one(i: int) -> None:
            done.append(await loop.run_in_executor(None, job, i))

        await asyncio.gather(one(0), one(1))
        assert done == sorted(done), f"jobs completed out of order: {done}"
        await asyncio.gather(loop.run_in_executor(None, read),
                             loop.run_in_executor(None, write))

    sim.thread("asyncio", lambda: evloop.asyncio.run(main(), sim=sim))


def signature(kind: str, marker: str) -> str:
    """``"Kind at campaign.py:LINE"``, LINE the line of this file holding ``marker``: what a
    campaign calls the failure raised there (the tests name bugs by it)."""
    lines = Path(__file__).read_text().splitlines()
    [line] = [n for n, text in enumerate(lines, 1) if marker in text and "marker" not in text]
    return f"{kind} at campaign.py:{line}"
