"""Tests for evloop.machine.preemption: fine preemption points inside the loop's primitives.

Each point is shown where the module docstring puts it, by a fake chooser that
looks at the shared state at every PREEMPT decision (the moment the running
thread could lose the turn) and says which QEMU step has happened and which
has not. The points follow QEMU's ``util/async.c`` (``aio_bh_enqueue``,
``aio_notify``, ``aio_notify_accept``, ``aio_ctx_prepare``/``check``),
``util/aio-posix.c`` (``aio_poll``'s phases), ``util/qemu-timer.c``
(``timerlist_rearm``) and ``util/event_notifier-posix.c``.
"""

from __future__ import annotations

import select
from collections.abc import Callable, Sequence

import pytest

from evloop import (
    AioContext,
    BHFlags,
    ChoiceKind,
    ClockType,
    EventNotifier,
    FdTable,
    RandomChooser,
    Simulation,
    SimulationError,
)
from evloop.loop.bh import BH
from evloop.machine.scheduler import Backend


class Probe:
    """A chooser that notes ``look()`` at every PREEMPT decision and answers from a script."""

    def __init__(self, look: Callable[[], object], script: Sequence[int] = ()) -> None:
        self.look = look
        self.script = list(script)
        self.seen: list[object] = []
        self.kinds: list[ChoiceKind] = []
        self.options: list[tuple[str, ...]] = []

    def choose(self, kind: ChoiceKind, options: Sequence[str]) -> int:
        self.kinds.append(kind)
        if kind is not ChoiceKind.PREEMPT:
            return 0
        seen = self.look()
        self.seen.append(seen)
        self.options.append(tuple(options))
        # The script answers only the decisions look() cares about (not None).
        return self.script.pop(0) if self.script and seen is not None else 0


def _bystander(sim: Simulation, turns: int = 200, at: int = 0) -> None:
    """A thread that stays runnable from ``at`` ns on (it only yields), so that
    every point is a decision."""

    def spin() -> None:
        if at:
            sim.sleep(at)
        for _ in range(turns):
            sim.yield_now()

    sim.thread("bystander", spin)


@pytest.fixture(params=["greenlet", "os"])
def threads(request: pytest.FixtureRequest) -> Backend:
    backend: Backend = request.param
    return backend


def test_off_is_the_default_and_swaps_nothing() -> None:
    with Simulation() as sim:
        assert sim.preemption == "off"
        io = sim.iothread("io")
        assert type(io.ctx) is AioContext
        assert type(sim.main_loop.aio_context) is AioContext
        assert type(io.ctx.bh_new(lambda: None)) is BH
        assert type(sim.fds) is FdTable and sim.fds.preempt is None


def test_off_asks_no_preempt_decision_and_fine_does(threads: Backend) -> None:
    def run(mode: str) -> Probe:
        probe = Probe(lambda: None)
        with Simulation(chooser=probe, preemption=mode, threads=threads) as sim:  # type: ignore[arg-type]
            io = sim.iothread("io")
            _bystander(sim, 20)

            def worker() -> None:
                io.ctx.bh_new(lambda: None).schedule()
                sim.sleep(10)
                io.stop()

            sim.thread("worker", worker)
            sim.run()
        return probe

    assert ChoiceKind.PREEMPT not in run("off").kinds
    fine = run("fine")
    assert ChoiceKind.PREEMPT in fine.kinds
    # Option 0 is always the running thread: answering 0 never preempts.
    assert all(len(options) >= 2 for options in fine.options)


def test_bh_schedule_has_a_point_between_enqueue_and_notify() -> None:
    # qemu_bh_schedule -> aio_bh_enqueue (util/async.c): the BH is on the list
    # (PENDING) before aio_notify sets ctx->notified, and notified is set before
    # notify_me is read (aio_notify); the eventfd is written after both.
    state: dict[str, object] = {}

    def look() -> tuple[bool, bool, bool] | None:
        bh, ctx = state.get("bh"), state.get("ctx")
        if not isinstance(bh, BH) or not isinstance(ctx, AioContext):
            return None
        pending = bool(bh.flags & BHFlags.PENDING)
        kicked = bool(ctx.fds.mask(ctx.notifier.fd) & select.POLLIN)
        return pending, ctx._notified, kicked

    probe = Probe(look)
    with Simulation(chooser=probe, preemption="fine") as sim:
        io = sim.iothread("io")
        _bystander(sim, at=5)

        def worker() -> None:
            sim.sleep(5)  # the IOThread is blocked in aio_poll by now: notify_me is 2
            state["ctx"] = io.ctx
            bh = io.ctx.bh_new(lambda: None)
            state["bh"] = bh
            bh.schedule()
            state.clear()
            io.stop()

        sim.thread("worker", worker)
        sim.run()
    seen = [s for s in probe.seen if s is not None]
    # enqueued, not notified; notified, eventfd not yet written (before the write)
    assert seen[:3] == [(True, False, False), (True, True, False), (True, True, False)]


def test_aio_poll_phases_and_notify_me_updates_are_points() -> None:
    # aio_poll (util/aio-posix.c): entry; notify_me += 2 before notified is read;
    # notify_me -= 2 and aio_notify_accept after the wait; then aio_bh_poll,
    # the fd handlers and the timer lists, each after a point.
    ran: list[str] = []
    state: dict[str, AioContext] = {}

    def look() -> tuple[int, bool, tuple[str, ...]] | None:
        ctx = state.get("ctx")
        if ctx is None or sim.current_thread.name != "io":
            return None
        return ctx._notify_me, ctx._notified, tuple(ran)

    probe = Probe(look)
    with Simulation(chooser=probe, preemption="fine") as sim:
        io = sim.iothread("io")
        state["ctx"] = io.ctx
        _bystander(sim)
        timer = io.ctx.timer_new_ns(ClockType.VIRTUAL, lambda: ran.append("timer"))
        io.ctx.bh_schedule_oneshot(lambda: ran.append("bh"))
        timer.mod_ns(0)
        read_fd, write_fd = sim.fds.pipe()
        sim.fds.write(write_fd, b"x")
        io.ctx.set_fd_handler(read_fd, lambda: (ran.append("fd"), sim.fds.read(read_fd, 1)), None)

        def stopper() -> None:
            sim.sleep(100)
            io.ctx.set_fd_handler(read_fd, None, None)
            io.stop()

        sim.thread("stopper", stopper)
        sim.run()
    seen = [s for s in probe.seen if s is not None]
    # The first poll: nothing has run at its entry, before the BH phase, the
    # handler phase, or the timer phase; each phase has run by the next point.
    assert (0, False, ()) in seen
    assert (0, False, ("bh",)) in seen  # after aio_bh_poll, before the fd handlers
    assert (0, False, ("bh", "fd")) in seen  # before the timer lists
    # A blocking poll raises notify_me before it reads notified, lowers it after.
    assert any(notify_me == 2 for notify_me, _, _ in seen)


def test_timer_mod_has_a_point_before_the_rearm_notify() -> None:
    # timer_mod_ns -> timerlist_rearm (util/qemu-timer.c): the timer is on its
    # list before the list's owner is notified.
    state: dict[str, object] = {}

    def look() -> tuple[bool, bool] | None:
        ctx, timer = state.get("ctx"), state.get("timer")
        if not isinstance(ctx, AioContext) or timer is None:
            return None
        return timer.pending(), ctx._notified  # type: ignore[attr-defined]

    probe = Probe(look)
    with Simulation(chooser=probe, preemption="fine") as sim:
        io = sim.iothread("io")
        _bystander(sim, at=5)

        def worker() -> None:
            sim.sleep(5)
            timer = io.ctx.timer_new_ns(ClockType.VIRTUAL, lambda: None)
            state["ctx"], state["timer"] = io.ctx, timer
            timer.mod_ns(sim.now_ns + 1000)
            state.clear()
            io.stop()

        sim.thread("worker", worker)
        sim.run()
    seen = [s for s in probe.seen if s is not None]
    assert seen[0] == (True, False)


def test_event_notifier_set_and_test_and_clear_are_points(threads: Backend) -> None:
    # event_notifier_set / event_notifier_test_and_clear (util/event_notifier-posix.c).
    state: dict[str, EventNotifier] = {}

    def look() -> bool | None:
        e = state.get("e")
        return None if e is None else bool(sim.fds.mask(e.fd) & select.POLLIN)

    probe = Probe(look)
    with Simulation(chooser=probe, preemption="fine", threads=threads) as sim:
        _bystander(sim)

        def worker() -> None:
            e = EventNotifier(sim.fds)
            state["e"] = e
            e.set()
            e.test_and_clear()
            del state["e"]

        sim.thread("worker", worker)
        sim.run()
    assert [s for s in probe.seen if s is not None] == [False, True]


def test_a_preempt_answer_hands_the_turn_and_the_thread_resumes_later(threads: Backend) -> None:
    # The first point of the worker's qemu_bh_schedule (BH enqueued, aio_notify
    # not run) hands the turn to the bystander, which sees the enqueued BH.
    order: list[str] = []
    state: dict[str, BH] = {}

    def look() -> str | None:
        name = sim.current_thread.name
        return name if name == "worker" and "bh" in state else None

    with Simulation(chooser=RandomChooser(0), preemption="fine", threads=threads) as sim:
        probe = Probe(look, script=[1])
        sim._sched.chooser = sim.chooser = probe
        io = sim.iothread("io")

        def bystander() -> None:
            sim.sleep(5)
            bh = state.get("bh")
            order.append(f"bystander sees {bh.flags!r}" if bh is not None else "bystander")

        def worker() -> None:
            sim.sleep(5)
            bh = io.ctx.bh_new(lambda: order.append("bh ran"))
            state["bh"] = bh
            bh.schedule()
            order.append("worker notified")
            io.stop()

        sim.thread("worker", worker)
        sim.thread("bystander", bystander)
        sim.run()
    first = probe.seen.index("worker")
    assert probe.options[first][0] == "worker"  # option 0: the running thread
    assert order[0] == "bystander sees <BHFlags.PENDING|SCHEDULED: 3>"
    assert order[1:3] == ["worker notified", "bh ran"]


def test_preemption_point_is_nothing_when_off_and_a_decision_when_fine() -> None:
    for mode, expected in (("off", 0), ("fine", 3)):
        probe = Probe(lambda: sim.current_thread.name == "model" or None)
        with Simulation(chooser=probe, preemption=mode) as sim:  # type: ignore[arg-type]
            _bystander(sim, 10)

            def modelled() -> None:
                for _ in range(3):
                    sim.preemption_point()

            sim.thread("model", modelled)
            sim.run()
        assert probe.seen.count(True) == expected


def test_no_decision_when_nobody_else_can_run() -> None:
    # From t=5 on, the worker runs while the main loop and the IOThread are
    # blocked: its points ask nothing (at t=0 every thread was runnable).
    probe = Probe(lambda: sim.now_ns)
    with Simulation(chooser=probe, preemption="fine") as sim:
        io = sim.iothread("io")

        def worker() -> None:
            sim.sleep(5)
            for _ in range(5):
                io.ctx.bh_new(lambda: None).schedule()
                sim.sleep(10)  # the IOThread runs the BH and blocks again meanwhile
            io.stop()

        sim.thread("worker", worker)
        sim.run()
    assert probe.seen and all(t == 0 for t in probe.seen)


def test_set_preemption_before_the_first_step_only() -> None:
    with Simulation() as sim:
        with pytest.raises(ValueError, match="preemption must be 'off' or 'fine', not 'coarse'"):
            sim.set_preemption("coarse")  # type: ignore[arg-type]
        sim.thread("t", lambda: sim.sleep(1))
        sim.run()
        with pytest.raises(SimulationError, match="before the simulation runs"):
            sim.set_preemption("fine")
    with Simulation(preemption="fine") as sim:
        sim.set_preemption("fine")  # already on: nothing to do
        with pytest.raises(SimulationError, match="cannot be turned off once on"):
            sim.set_preemption("off")


def test_fine_mode_made_late_still_covers_every_context() -> None:
    # Set by a scenario after the simulation was built: the main loop's two
    # contexts, its timer lists, the notifiers and contexts made later are all fine.
    with Simulation() as sim:
        sim.set_preemption("fine")
        io = sim.iothread("io")
        for ctx in (sim.main_loop.aio_context, sim.main_loop.iohandler_context, io.ctx):
            assert type(ctx) is not AioContext and isinstance(ctx, AioContext)
            assert type(ctx.bh_new(lambda: None)) is not BH
        assert type(sim.fds) is not FdTable and sim.fds.preempt is not None
