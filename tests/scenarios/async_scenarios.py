"""Coroutine scenarios: ``async def main()`` and ``async def scenario(sim)``, as users write them.

Each writes what it saw into :data:`OBSERVED`, so a test can compare a
recording with its play.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from evloop import Simulation

#: What the last run of a scenario in this module observed, in order.
OBSERVED: list[object] = []


async def echo(*, rounds: int = 2) -> None:
    """``async def main()``: an echo server and a client on the virtual network."""
    OBSERVED.clear()
    loop = asyncio.get_running_loop()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.readline():
            await asyncio.sleep(0.25)
            writer.write(data.upper())
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 7000)
    async with server:
        reader, writer = await asyncio.open_connection("127.0.0.1", 7000)
        for i in range(rounds):
            writer.write(b"ping %d\n" % i)
            OBSERVED.append((await reader.readline(), loop.time_ns()))
        writer.close()
        await writer.wait_closed()


async def with_sim(sim: Simulation, *, sleeps: int = 3) -> None:
    """``async def scenario(sim)``: the loop's clock is the simulation's."""
    OBSERVED.clear()
    for _ in range(sleeps):
        await asyncio.sleep(0.001)
        OBSERVED.append(sim.now_ns)


def returns_coroutine(sim: Simulation) -> Coroutine[Any, Any, None]:
    """A plain scenario that sets up, then hands back a coroutine to run."""
    OBSERVED.clear()
    sim.thread("beside", lambda: OBSERVED.append(("thread", sim.now_ns)))

    async def main() -> None:
        await asyncio.sleep(2)
        OBSERVED.append(("coroutine", sim.now_ns))

    return main()


async def failing(*, after: float = 0.5) -> None:
    """Fails once virtual time reaches ``after`` seconds."""
    await asyncio.sleep(after)
    raise RuntimeError(f"failed at {asyncio.get_running_loop().time()}")


async def woken_in_set_order(*, ordered: bool = False) -> None:
    """Workers wake in the order their futures are resolved, here the iteration order of a
    set of futures: their hashes are their addresses, so that order is the process's.
    ``ordered=True`` resolves them in creation order (the fix)."""
    loop = asyncio.get_running_loop()
    futures = [loop.create_future() for _ in range(8)]
    woken: list[int] = []

    async def worker(i: int, future: asyncio.Future[None]) -> None:
        await future
        woken.append(i)
        await asyncio.sleep(0.001 * len(woken))

    tasks = [asyncio.create_task(worker(i, f), name=f"worker-{i}") for i, f in enumerate(futures)]
    await asyncio.sleep(0)  # every worker now waits on its future
    for future in futures if ordered else set(futures):
        future.set_result(None)
    await asyncio.gather(*tasks)
