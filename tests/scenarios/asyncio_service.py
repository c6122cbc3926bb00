"""Asyncio programs as scenarios: the loop runs in a thread of control of the simulation.

``sim.run()`` drives the simulation (and so the record/play limits), while
:func:`evloop.asyncio.run` runs the program on a :class:`SimEventLoop` in its
own thread of control. Each writes what it saw into :data:`OBSERVED`.
"""

from __future__ import annotations

import asyncio

import evloop.asyncio
from evloop import Simulation

#: What the last run of a scenario in this module observed, in order.
OBSERVED: list[object] = []


def executor_race(sim: Simulation, *, jobs: int = 3, check: bool = False) -> None:
    """Jobs on the default executor finish in the scheduler's order; with ``check``,
    the program insists on submission order (a bug a non-FIFO order finds)."""
    OBSERVED.clear()

    def job(i: int) -> int:
        sim.sleep(1_000)  # blocking work, in virtual time
        OBSERVED.append(("job", i, sim.current_thread.name))
        return i

    async def main() -> None:
        loop = asyncio.get_running_loop()
        done: list[int] = []

        async def one(i: int) -> None:
            done.append(await loop.run_in_executor(None, job, i))

        await asyncio.gather(*(one(i) for i in range(jobs)))
        await asyncio.sleep(0.5)
        OBSERVED.append(("done", tuple(done), loop.time_ns()))
        if check:
            assert done == sorted(done), f"jobs completed out of order: {done}"

    sim.thread("asyncio", lambda: evloop.asyncio.run(main(), sim=sim))


def timer_tie(sim: Simulation) -> None:
    """Two sleeps due at the same nanosecond: their order is a TIMER_TIE decision."""
    OBSERVED.clear()

    async def main() -> None:
        async def sleeper(tag: str) -> None:
            await asyncio.sleep(1)
            OBSERVED.append(tag)

        await asyncio.gather(sleeper("a"), sleeper("b"))

    sim.thread("asyncio", lambda: evloop.asyncio.run(main(), sim=sim))
