"""Tests for evloop.iothread: a thread of control polling its own AioContext.

Cross-thread work is a bottom half scheduled on the target context: it wakes
the target's blocking poll through ``notify()``, with no virtual time passing.
"""

from __future__ import annotations

import pytest

from evloop import AioContext, ClockType, IOThread, Simulation, ThreadState
from tests.helpers import Boom


def test_an_iothread_has_its_own_named_context_and_thread() -> None:
    with Simulation() as sim:
        io = sim.iothread("io0")
        assert isinstance(io, IOThread)
        assert io.name == "io0"
        assert isinstance(io.ctx, AioContext)
        assert io.ctx.name == "io0"
        assert io.ctx is not sim.main_loop.aio_context
        assert io.thread is not None
        assert io.thread.name == "io0"
        assert io.running
        assert sim.iothreads == [io]
        assert repr(io) == "<IOThread 'io0' running=True>"


def test_a_bh_scheduled_from_main_runs_in_the_iothread_without_time_passing() -> None:
    with Simulation(log=True) as sim:
        io = sim.iothread("io0")
        sim.run()  # the IOThread is now blocked in poll with an infinite timeout
        ran: list[tuple[str, int]] = []
        io.ctx.bh_schedule_oneshot(
            lambda: ran.append((sim.current_thread.name, sim.now_ns)), name="work"
        )
        sim.sleep(0)
        result = sim.run()
        assert sim.log is not None
        bhs = [(e.thread, e.context, e.name) for e in sim.log if e.kind == "bh"]
    assert ran == [("io0", 0)]
    assert bhs == [("io0", "io0", "work")]
    assert result.time_ns == 0


def test_bhs_ping_pong_between_the_main_loop_and_an_iothread() -> None:
    with Simulation(log=True) as sim:
        io = sim.iothread("io0")
        main_ctx = sim.main_loop.aio_context
        hops: list[tuple[str, int]] = []

        def on_io(n: int) -> None:
            hops.append((sim.current_thread.name, n))
            if n:
                main_ctx.bh_schedule_oneshot(lambda: on_main(n - 1), name=f"main{n - 1}")

        def on_main(n: int) -> None:
            hops.append((sim.current_thread.name, n))
            if n:
                io.ctx.bh_schedule_oneshot(lambda: on_io(n - 1), name=f"io{n - 1}")

        io.ctx.bh_schedule_oneshot(lambda: on_io(4), name="io4")
        sim.run()
    assert hops == [("io0", 4), ("main", 3), ("io0", 2), ("main", 1), ("io0", 0)]


def test_timers_on_the_iothread_context_fire_in_the_iothread_on_time() -> None:
    with Simulation() as sim:
        io = sim.iothread("io0")
        fired: list[tuple[str, int]] = []

        def tick() -> None:
            fired.append((sim.current_thread.name, sim.now_ns))
            if len(fired) < 3:
                timer.mod_ns(sim.now_ns + 1_000_000)

        timer = io.ctx.timer_new_ns(ClockType.VIRTUAL, tick, name="tick")
        timer.mod_ns(1_000_000)
        result = sim.run()
    assert fired == [("io0", 1_000_000), ("io0", 2_000_000), ("io0", 3_000_000)]
    assert result.reason.value == "idle"


def test_a_timer_armed_from_another_thread_wakes_the_iothread_earlier() -> None:
    with Simulation() as sim:
        io = sim.iothread("io0")
        fired: list[int] = []
        late = io.ctx.timer_new_ns(ClockType.VIRTUAL, lambda: fired.append(sim.now_ns))
        late.mod_ns(10_000_000)
        sim.run(until_ns=1_000)
        early = io.ctx.timer_new_ns(ClockType.VIRTUAL, lambda: fired.append(sim.now_ns))
        early.mod_ns(2_000_000)
        sim.run()
    assert fired == [2_000_000, 10_000_000]


def test_stop_and_join_end_the_iothread() -> None:
    with Simulation() as sim:
        io = sim.iothread("io0")
        sim.run()
        io.stop()
        assert io.join() is True
        assert not io.running
        assert io.thread is not None
        assert io.thread.state is ThreadState.DONE
        assert repr(io) == "<IOThread 'io0' running=False>"


def test_stop_before_the_iothread_ever_ran() -> None:
    with Simulation() as sim:
        io = sim.iothread("io0")
        io.stop()
        assert io.join() is True


def test_stop_is_a_oneshot_bh_on_the_iothread_context() -> None:
    with Simulation(log=True) as sim:
        io = sim.iothread("io0")
        sim.run()
        io.stop()
        io.join()
        assert sim.log is not None
        bhs = [(e.thread, e.context, e.name) for e in sim.log if e.kind == "bh"]
    assert bhs == [("io0", "io0", "io0:stop")]


def test_work_scheduled_before_stop_still_runs() -> None:
    with Simulation() as sim:
        io = sim.iothread("io0")
        ran: list[str] = []
        io.ctx.bh_schedule_oneshot(lambda: ran.append("before"), name="before")
        io.stop()
        io.join()
    assert ran == ["before"]


def test_work_scheduled_after_the_iothread_ended_never_runs() -> None:
    with Simulation() as sim:
        io = sim.iothread("io0")
        io.stop()
        io.join()
        ran: list[str] = []
        io.ctx.bh_schedule_oneshot(lambda: ran.append("after"), name="after")
        result = sim.run()
    assert ran == []
    assert result.reason.value == "idle"


def test_join_with_a_timeout_returns_false_while_it_runs() -> None:
    with Simulation() as sim:
        io = sim.iothread("io0")
        assert io.join(timeout_ns=100) is False
        assert sim.now_ns == 100
        assert io.running


def test_a_stop_from_another_thread_of_control() -> None:
    with Simulation() as sim:
        io = sim.iothread("io0")

        def controller() -> None:
            sim.sleep(50)
            io.stop()
            io.join()

        ctl = sim.thread("controller", controller)
        sim.run()
        assert ctl.done
        assert io.thread is not None and io.thread.done
        assert sim.now_ns == 50


def test_an_idle_iothread_is_a_normal_end_of_the_run() -> None:
    with Simulation() as sim:
        sim.iothread("io0")
        sim.iothread("io1")
        result = sim.run()
    assert result.reason.value == "idle"
    assert result.time_ns == 0


def test_an_exception_in_an_iothread_callback_stops_the_run() -> None:
    error = Boom("in the iothread")
    with Simulation() as sim:
        io = sim.iothread("io0")

        def bad() -> None:
            raise error

        io.ctx.bh_schedule_oneshot(bad, name="bad")
        with pytest.raises(Boom) as info:
            sim.run()
    assert info.value is error
    assert info.value.__notes__ == ["(raised in thread of control 'io0')"]


def test_a_refused_iothread_leaves_nothing_behind() -> None:
    with Simulation() as sim:
        sim.thread("io0", lambda: None)
        fds_before = sim.fds.open_fds()
        with pytest.raises(ValueError, match=r"^a thread of control named 'io0' already exists"):
            sim.iothread("io0")
        assert sim.iothreads == []
        assert sim.fds.open_fds() == fds_before
