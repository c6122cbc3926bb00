"""Programs that end the run from inside: ``sys.exit``, ``KeyboardInterrupt``, a real SIGINT.

* :func:`exits` raises ``SystemExit`` (``how="exit"``) or ``KeyboardInterrupt``
  (``how="interrupt"``) from a main-loop callback, a thread of control or an
  asyncio task (``where``), a few steps into the run: a failure of the run.
* :func:`signals_itself` delivers a real SIGINT to its own process from a
  callback, after enough steps to fill whole chunks: the user stopping the tool.
* :func:`endless` runs until stopped, touching ``marker`` once it has begun (so
  that a test sending it a signal knows the run is under way).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path

from evloop import SCALE_MS, SCALE_US, ClockType, Simulation


def _end(how: str) -> None:
    if how == "exit":
        sys.exit(0)
    if how == "interrupt":
        raise KeyboardInterrupt
    raise ValueError(f"how must be 'exit' or 'interrupt', not {how!r}")


def exits(
    sim: Simulation, *, where: str = "callback", how: str = "exit"
) -> Coroutine[None, None, None] | None:
    def tick() -> None:
        sim.random.getrandbits(64)
        if sim.now_ns >= 3 * SCALE_MS:
            _end(how)
        timer.mod_ns(sim.now_ns + SCALE_MS)

    timer = sim.main_loop.timer_new_ns(ClockType.VIRTUAL, tick, name="tick")
    if where == "callback":
        timer.mod_ns(SCALE_MS)
    elif where == "thread":

        def worker() -> None:
            for _ in range(3):
                sim.random.getrandbits(64)
                sim.sleep(SCALE_MS)
            _end(how)

        sim.thread("worker", worker)
    elif where == "task":  # run on the simulation's asyncio loop (replay.scenario)

        async def task() -> None:
            await asyncio.sleep(0.003)
            _end(how)

        async def main() -> None:
            await asyncio.gather(task(), asyncio.sleep(1))

        return main()
    else:
        raise ValueError(f"where must be 'callback', 'thread' or 'task', not {where!r}")
    return None


def signals_itself(sim: Simulation, *, after_steps: int = 20_000, in_exec: bool = False) -> None:
    """A real SIGINT to this process after ``after_steps`` steps; with ``in_exec``,
    sent from code run from a string, where the KeyboardInterrupt is then raised."""

    def tick() -> None:
        sim.random.getrandbits(64)
        if sim.steps >= 2 * after_steps:  # never run on if the signal went unseen
            raise RuntimeError("the SIGINT this process sent itself did not stop the run")
        if sim.steps >= after_steps:
            if in_exec:
                exec("os.kill(os.getpid(), signal.SIGINT)", {"os": os, "signal": signal})
            else:
                os.kill(os.getpid(), signal.SIGINT)
        timer.mod_ns(sim.now_ns + SCALE_US)

    timer = sim.main_loop.timer_new_ns(ClockType.VIRTUAL, tick, name="tick")
    timer.mod_ns(SCALE_US)


def endless(sim: Simulation, *, marker: str = "", threads: int = 3) -> None:
    def body() -> None:
        while True:
            sim.random.getrandbits(64)
            sim.yield_now()
            sim.sleep(SCALE_US)

    def tick() -> None:  # the main loop wakes too, so that a step limit can stop the run
        timer.mod_ns(sim.now_ns + SCALE_US)

    timer = sim.main_loop.timer_new_ns(ClockType.VIRTUAL, tick, name="tick")
    timer.mod_ns(SCALE_US)
    for i in range(threads):
        sim.thread(f"t{i}", body)
    if marker:
        Path(marker).touch()
