"""Scenarios that a test changes between record and play, to check divergence reports.

* :func:`flagged` reads the module-level :data:`CHANGE_AT`: from that tick on
  it reads the HOST clock where the recorded run drew a random number.
* :data:`scenario` is :func:`original`; a test monkeypatches it to
  :func:`changed`, which differs from tick :data:`EXTRA_BH_TICK` on by one
  extra bottom half (a change only the checkpoint digests can see).
* :func:`in_thread` reads :data:`THREAD_CHANGE_AT` in a thread of control.
* :func:`typed` sends :data:`TYPED` through a scripted peer.

Each records the step at which each tick ran in :data:`TICK_STEPS`.
"""

from __future__ import annotations

from evloop import SCALE_MS, ClockType, Simulation

#: From this tick on, :func:`flagged` reads the HOST clock instead of drawing (None: never).
CHANGE_AT: int | None = None
#: From this round on, :func:`in_thread`'s worker reads the clock instead of drawing.
THREAD_CHANGE_AT: int | None = None
#: The tick at which :func:`changed` schedules its extra bottom half.
EXTRA_BH_TICK = 4
#: What :func:`typed`'s peer types.
TYPED = b"abcd"

#: ``sim.steps`` when each tick's callback ran, in the last run.
TICK_STEPS: list[int] = []


def flagged(sim: Simulation, *, ticks: int = 10) -> None:
    TICK_STEPS.clear()

    def tick() -> None:
        n = len(TICK_STEPS)
        TICK_STEPS.append(sim.steps)
        if CHANGE_AT is not None and n >= CHANGE_AT:
            sim.clock.get_ns(ClockType.HOST)
        else:
            sim.random.getrandbits(64)
        if n + 1 < ticks:
            timer.mod_ns(sim.now_ns + SCALE_MS)

    timer = sim.main_loop.timer_new_ns(ClockType.REALTIME, tick, name="tick")
    timer.mod_ns(SCALE_MS)


def swallowing(sim: Simulation, *, ticks: int = 6) -> None:
    """:func:`flagged`, but each tick swallows every exception its work raises."""
    TICK_STEPS.clear()

    def tick() -> None:
        n = len(TICK_STEPS)
        TICK_STEPS.append(sim.steps)
        try:
            if CHANGE_AT is not None and n >= CHANGE_AT:
                sim.clock.get_ns(ClockType.HOST)
            else:
                sim.random.getrandbits(64)
        except Exception:  # careless user code: must not hide a divergence
            pass
        if n + 1 < ticks:
            timer.mod_ns(sim.now_ns + SCALE_MS)

    timer = sim.main_loop.timer_new_ns(ClockType.REALTIME, tick, name="tick")
    timer.mod_ns(SCALE_MS)


def _ticking(sim: Simulation, ticks: int, extra_bh_at: int | None) -> None:
    TICK_STEPS.clear()
    ctx = sim.main_loop.aio_context

    def tick() -> None:
        n = len(TICK_STEPS)
        TICK_STEPS.append(sim.steps)
        if n == extra_bh_at:
            ctx.bh_schedule_oneshot(lambda: None, name="extra")
        if n + 1 < ticks:
            timer.mod_ns(sim.now_ns + SCALE_MS)

    timer = sim.main_loop.timer_new_ns(ClockType.REALTIME, tick, name="tick")
    timer.mod_ns(SCALE_MS)


def original(sim: Simulation, *, ticks: int = 10) -> None:
    _ticking(sim, ticks, None)


def changed(sim: Simulation, *, ticks: int = 10) -> None:
    _ticking(sim, ticks, EXTRA_BH_TICK)


#: The name traces record; a test monkeypatches it to :func:`changed`.
scenario = original


def in_thread(sim: Simulation, *, rounds: int = 6) -> None:
    TICK_STEPS.clear()

    def worker() -> None:
        for n in range(rounds):
            sim.sleep(SCALE_MS)
            TICK_STEPS.append(sim.steps)
            if THREAD_CHANGE_AT is not None and n >= THREAD_CHANGE_AT:
                sim.clock.get_ns(ClockType.VIRTUAL_RT)
            else:
                sim.random.getrandbits(64)

    sim.thread("worker", worker)


def typed(sim: Simulation) -> None:
    TICK_STEPS.clear()
    fds = sim.fds
    guest, host = fds.socketpair()
    peer = sim.peer(host, name="typist")
    for i, byte in enumerate(TYPED):
        peer.send(bytes([byte]), at_ns=(i + 1) * SCALE_MS)

    def serial_read() -> None:
        TICK_STEPS.append(sim.steps)
        fds.read(guest, 64)

    sim.main_loop.set_fd_handler(guest, serial_read, None)


#: The tick at which :func:`skipping` skips its draw (None: never).
SKIP_AT: int | None = None


def skipping(sim: Simulation, *, ticks: int = 8) -> None:
    """Each tick draws a random number, except tick :data:`SKIP_AT`, which does nothing.

    A play with the skip set passes the step where the trace's draw was due and
    is caught only at the next tick's draw: the departure comes before its notice.
    """
    TICK_STEPS.clear()

    def tick() -> None:
        n = len(TICK_STEPS)
        TICK_STEPS.append(sim.steps)
        if n != SKIP_AT:
            sim.random.getrandbits(64)
        sim.main_loop.aio_context.bh_schedule_oneshot(lambda: None, name=f"after-{n}")
        if n + 1 < ticks:
            timer.mod_ns(sim.now_ns + SCALE_MS)

    timer = sim.main_loop.timer_new_ns(ClockType.REALTIME, tick, name="tick")
    timer.mod_ns(SCALE_MS)
