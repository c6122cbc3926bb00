"""A scenario whose only decisions are COROUTINE ones: which thread's coroutine runs first.

Two threads of control each schedule ``per_thread`` coroutines on one
context at the same virtual instant, while the thread that polls that
context is still asleep; its ``co_schedule_bh`` then finds coroutines from
both threads and asks the chooser which thread's next one to enter.
:data:`OBSERVED` keeps the order they ran in.
"""

from __future__ import annotations

from evloop import Simulation, aio_co_schedule, qemu_coroutine_create

OBSERVED: list[str] = []


def two_schedulers(sim: Simulation, *, per_thread: int = 3) -> None:
    OBSERVED.clear()
    ctx = sim.new_aio_context("late")

    def schedule(thread: str) -> None:
        sim.sleep(1000)
        for i in range(per_thread):
            name = f"{thread}.{i}"
            co = qemu_coroutine_create(lambda name=name: OBSERVED.append(name), name=name)
            aio_co_schedule(ctx, co)

    def poller() -> None:
        sim.sleep(2000)
        ctx.poll(True)

    sim.thread("a", lambda: schedule("a"))
    sim.thread("b", lambda: schedule("b"))
    sim.thread("poller", poller)
