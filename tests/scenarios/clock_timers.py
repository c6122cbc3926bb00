"""Timers on every clock, for the timer checkpoints of format 3 (``util/qemu-timer.c``).

The main loop arms, once each tick of ``ticks``: two VIRTUAL timers due at
the same nanosecond (two checkpoints in one run of the list), one VIRTUAL
timer with ``QEMU_TIMER_ATTR_EXTERNAL`` (none), a REALTIME timer (none), a
HOST and a VIRTUAL_RT timer (one each); an IOThread's context runs one
VIRTUAL timer of its own. ``FIRED`` keeps what ran, in order.
"""

from __future__ import annotations

from evloop import QEMU_TIMER_ATTR_EXTERNAL, SCALE_MS, ClockType, Simulation

FIRED: list[str] = []


def scenario(sim: Simulation, *, ticks: int = 3) -> None:
    FIRED.clear()
    ml = sim.main_loop
    get = sim.clock.get_ns

    def every(name: str, clock: ClockType, period_ms: int, attributes: int = 0) -> None:
        count = [0]

        def fire() -> None:
            FIRED.append(name)
            count[0] += 1
            if count[0] < ticks:
                timer.mod_ns(get(clock) + period_ms * SCALE_MS)

        timer = ml.timer_new_ns(clock, fire, name=name, attributes=attributes)
        timer.mod_ns(get(clock) + period_ms * SCALE_MS)

    every("virtual-a", ClockType.VIRTUAL, 2)
    every("virtual-b", ClockType.VIRTUAL, 2)
    every("external", ClockType.VIRTUAL, 3, QEMU_TIMER_ATTR_EXTERNAL)
    every("realtime", ClockType.REALTIME, 5)
    every("host", ClockType.HOST, 7)
    every("virtual-rt", ClockType.VIRTUAL_RT, 11)

    io = sim.iothread("io0")
    io_timer = io.ctx.timer_new_ns(ClockType.VIRTUAL, lambda: FIRED.append("io-virtual"))
    io_timer.mod_ns(get(ClockType.VIRTUAL) + 4 * SCALE_MS)

    ml.timer_new_ns(ClockType.REALTIME, io.stop, name="stop").mod_ns(40 * SCALE_MS)


def virtual_ticks(sim: Simulation, *, ticks: int = 30, noise_every: int = 0) -> None:
    """One VIRTUAL timer of the main loop re-arming itself: the quiet fast path's case.

    With ``noise_every`` N, every Nth tick also schedules 200 bottom halves,
    so the next checkpoint comes more than 127 steps later.
    """
    FIRED.clear()
    get = sim.clock.get_ns
    ctx = sim.main_loop.aio_context

    def fire() -> None:
        FIRED.append("tick")
        if noise_every and len(FIRED) % noise_every == 0:
            for _ in range(200):
                ctx.bh_schedule_oneshot(lambda: None, name="noise")
        if len(FIRED) < ticks:
            timer.mod_ns(get(ClockType.VIRTUAL) + SCALE_MS)

    timer = sim.main_loop.timer_new_ns(ClockType.VIRTUAL, fire, name="tick")
    timer.mod_ns(SCALE_MS)
