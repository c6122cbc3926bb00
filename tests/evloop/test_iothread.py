"""Tests for evloop.iothread: a thread of control polling its own AioContext.

Cross-thread work is a bottom half scheduled on the target context: it wakes
the target's blocking poll through ``notify()``, with no virtual time passing.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from evloop import (
    IOTHREAD_POLL_MAX_NS_DEFAULT,
    AioContext,
    ClockType,
    EventNotifier,
    IOThread,
    Simulation,
    ThreadState,
)
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


# -- adaptive polling by default (iothread.c) ----------------------------------------------


def test_an_iothread_polls_by_default_with_qemus_limits() -> None:
    # iothread.c, iothread_instance_init: poll_max_ns = IOTHREAD_POLL_MAX_NS_DEFAULT
    # (32768 ns on POSIX), poll_grow = poll_shrink = 0; iothread_set_aio_context_params
    # hands them to aio_context_set_poll_params.
    assert IOTHREAD_POLL_MAX_NS_DEFAULT == 32768
    with Simulation() as sim:
        io = sim.iothread("io0")
        assert (io.poll_max_ns, io.poll_grow, io.poll_shrink) == (32768, 0, 0)
        assert (io.ctx.poll_max_ns, io.ctx.poll_grow, io.ctx.poll_shrink) == (32768, 0, 0)
        # The main loop's contexts do not poll.
        assert sim.main_loop.aio_context.poll_max_ns == 0


class RingDevice:
    """A virtqueue-like device on an IOThread: an eventfd kick, and a ring that io_poll reads.

    Each kick's request is followed by one more already on the ring when the
    first is handled (``io_read`` sees it), which only polling notices: the
    device sends no kick for it, as a guest does not while the host polls.
    """

    def __init__(self, sim: Simulation, io: IOThread) -> None:
        self.sim = sim
        self.kick = EventNotifier(sim.fds)
        self.ring = 0
        self.log: list[tuple[str, int]] = []
        io.ctx.set_event_notifier(self.kick, self.io_read, self.io_poll, self.io_poll_ready)

    def io_read(self) -> None:
        self.kick.test_and_clear()
        self.log.append(("read", self.sim.now_ns))
        self.ring += 1

    def io_poll(self) -> bool:
        return self.ring > 0

    def io_poll_ready(self) -> None:
        self.ring -= 1
        self.log.append(("poll_ready", self.sim.now_ns))


def run_ring_device(**poll: int) -> list[tuple[str, int]]:
    with Simulation() as sim:
        io = sim.iothread("io0", **poll)
        dev = RingDevice(sim, io)

        def guest() -> None:
            sim.sleep(10_000)  # the IOThread has been blocked for 10 µs
            dev.kick.set()

        sim.thread("guest", guest)
        sim.run()
    return dev.log


def test_an_iothreads_first_short_wake_opens_its_window_and_the_next_poll_finds_the_ring() -> None:
    # util/aio-posix.c (QEMU 10.0+): the 10 µs wake puts the device on the poll
    # list and sets its window (4 µs: block_ns < poll_max_ns), so the IOThread's
    # next blocking aio_poll polls and runs io_poll_ready with no time passing.
    assert run_ring_device() == [("read", 10_000), ("poll_ready", 10_000)]


def test_an_iothread_with_polling_off_never_sees_a_request_that_sent_no_kick() -> None:
    assert run_ring_device(poll_max_ns=0) == [("read", 10_000)]


def test_setting_a_poll_parameter_applies_all_three_and_resets_the_windows() -> None:
    # iothread.c, iothread_set_poll_param -> aio_context_set_poll_params, which
    # zeroes every handler's poll.ns.
    with Simulation() as sim:
        io = sim.iothread("io0")
        dev = RingDevice(sim, io)

        def guest() -> None:
            sim.sleep(10_000)
            dev.kick.set()

        sim.thread("guest", guest)
        sim.run()
        node: Any = io.ctx._handlers[dev.kick.fd]
        assert node.poll_ns == 4000
        io.poll_grow = 3
        assert (io.ctx.poll_max_ns, io.ctx.poll_grow, io.ctx.poll_shrink) == (32768, 3, 0)
        assert node.poll_ns == 0
        io.poll_shrink = 2
        io.poll_max_ns = 0
        assert (io.poll_max_ns, io.poll_grow, io.poll_shrink) == (0, 3, 2)
        assert (io.ctx.poll_max_ns, io.ctx.poll_grow, io.ctx.poll_shrink) == (0, 3, 2)


def test_a_negative_poll_parameter_is_refused_and_changes_nothing() -> None:
    # iothread.c, iothread_set_param: "%s value must be in range [0, INT64_MAX]".
    with Simulation() as sim:
        io = sim.iothread("io0")
        message = "poll-grow value must be in range [0, 9223372036854775807], not -1"
        with pytest.raises(ValueError, match=re.escape(message)):
            io.poll_grow = -1
        assert (io.poll_max_ns, io.poll_grow, io.poll_shrink) == (32768, 0, 0)
        assert io.ctx.poll_grow == 0
        with pytest.raises(TypeError, match="IOThread poll-max-ns must be an int, not float"):
            io.poll_max_ns = 1.5  # type: ignore[assignment]


def test_an_iothread_refused_for_its_poll_parameters_leaves_nothing_behind() -> None:
    with Simulation() as sim:
        fds_before = sim.fds.open_fds()
        message = "poll-shrink value must be in range [0, 9223372036854775807], not -2"
        with pytest.raises(ValueError, match=re.escape(message)):
            sim.iothread("io0", poll_shrink=-2)
        assert sim.iothreads == []
        assert sim.fds.open_fds() == fds_before
        sim.iothread("io0")  # the name is still free


def test_an_iothreads_aio_max_batch_is_its_contexts() -> None:
    # iothread.c, iothread_set_aio_context_params -> aio_context_set_aio_params.
    with Simulation() as sim:
        io = sim.iothread("io0")
        assert io.aio_max_batch == 0
        io.aio_max_batch = 16
        assert io.ctx.aio_max_batch == 16
        with pytest.raises(ValueError, match="aio-max-batch must be a non-negative int"):
            io.aio_max_batch = -3
        assert io.aio_max_batch == 16
