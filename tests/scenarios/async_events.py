"""Bottom halves scheduled from other threads, for the async-event queue (``replay-events.c``).

Two worker threads each sleep a while and schedule a BH of the main loop's
context (QEMU's ``replay_bh_schedule_event`` queues exactly such a one), one
of them also a oneshot BH (``replay_bh_oneshot_event``); the main thread
schedules its own BH, which is never queued. An IOThread's context gets one
BH from the main thread. ``RAN`` keeps what ran, in order, with the step count
of the simulation when it ran.
"""

from __future__ import annotations

from evloop import SCALE_MS, ClockType, Simulation

RAN: list[tuple[str, int]] = []


def scenario(sim: Simulation, *, rounds: int = 3) -> None:
    RAN.clear()
    ctx = sim.main_loop.aio_context

    def ran(name: str) -> None:
        RAN.append((name, sim.steps))

    bhs = {name: ctx.bh_new(lambda n=name: ran(n), name=name) for name in ("w1", "w2", "own")}
    io = sim.iothread("io0")
    io_bh = io.ctx.bh_new(lambda: ran("io"), name="io")

    def worker(name: str, period_ms: int) -> None:
        for i in range(rounds):
            sim.sleep(period_ms * SCALE_MS)
            bhs[name].schedule()
            if i == 0:
                ctx.bh_schedule_oneshot(lambda n=name: ran(f"{n}-once"), name=f"{name}-once")

    sim.thread("w1", lambda: worker("w1", 2))
    sim.thread("w2", lambda: worker("w2", 3))

    def tick() -> None:
        bhs["own"].schedule()
        io_bh.schedule()

    timer = sim.main_loop.timer_new_ns(ClockType.VIRTUAL, tick, name="tick")
    timer.mod_ns(5 * SCALE_MS)
    stop = sim.main_loop.timer_new_ns(ClockType.VIRTUAL, io.stop, name="stop")
    stop.mod_ns(20 * SCALE_MS)
