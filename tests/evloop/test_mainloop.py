"""Tests for evloop.mainloop: ``main_loop_wait`` and glib's iteration (``util/main-loop.c``).

``MainLoop.iteration(may_block)`` is ``g_main_context_iteration(NULL,
may_block)`` over QEMU's two sources, ``qemu_aio_context`` and
``iohandler_ctx``; ``MainLoop.wait`` is ``main_loop_wait``, which folds the
main-loop timers' deadline (in ns) into glib's poll timeout (in ms) and runs
those timers after the sources dispatched.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from evloop import (
    SCALE_MS,
    AioContext,
    ClockType,
    DeadlockError,
    DispatchKind,
    FdTable,
    MainLoop,
    VirtualClock,
    WaitCondition,
    WarpBlocker,
)
from tests.helpers import appender

REALTIME = ClockType.REALTIME

DEADLOCK_MESSAGE = (
    "a blocking wait on main_loop_wait with an infinite timeout would never return: "
    "nothing is ready, no timer is pending, and nothing else runs"
)


class OtherThread:
    """A fake :class:`~evloop.Blocker`: another thread of control runs ``action``
    while the loop waits (the first wait only), then the wait goes on as a
    :class:`~evloop.WarpBlocker` would."""

    def __init__(self, clock: VirtualClock, action: Callable[[], object]) -> None:
        self.clock = clock
        self.action: Callable[[], object] | None = action

    def block(self, cond: WaitCondition, timeout_ns: int) -> None:
        action, self.action = self.action, None
        if action is not None:
            action()
        if timeout_ns == 0 or cond.ready():
            return
        WarpBlocker(self.clock).block(cond, timeout_ns)


def now(loop: MainLoop) -> int:
    return loop.clock.get_ns(REALTIME)


def drained() -> MainLoop:
    loop = MainLoop()
    while loop.iteration(False):
        pass
    return loop


# -- construction ----------------------------------------------------------------


def test_a_main_loop_builds_a_fresh_clock_and_fd_table_by_default() -> None:
    loop = MainLoop()
    assert isinstance(loop.clock, VirtualClock)
    assert isinstance(loop.fds, FdTable)
    assert loop.aio_context.name == "aio-context"
    assert loop.iohandler_context.name == "io-handler"
    assert loop.aio_context.clock is loop.clock
    assert loop.iohandler_context.fds is loop.fds


def test_a_main_loop_shares_the_clock_and_fd_table_it_is_given() -> None:
    clock = VirtualClock()
    fds = FdTable()
    loop = MainLoop(clock, fds)
    assert loop.clock is clock
    assert loop.fds is fds
    assert isinstance(loop.aio_context, AioContext)


def test_repr_shows_both_sources() -> None:
    loop = MainLoop()
    assert repr(loop) == (
        "<MainLoop <AioContext 'aio-context' handlers=0 bhs=0 timers=0> "
        "<AioContext 'io-handler' handlers=0 bhs=0 timers=0>>"
    )


# -- iteration: prepare, poll, check, dispatch -------------------------------------


def test_iteration_returns_false_when_nothing_was_dispatched() -> None:
    loop = drained()
    assert loop.iteration(False) is False
    assert now(loop) == 0


def test_iteration_dispatches_a_cross_thread_notify_once_without_progress() -> None:
    # aio_notify from another thread while glib polls: notify_me has bit 0 (from
    # aio_ctx_prepare), so the context's notifier is set, aio_ctx_check sees it
    # (aio_pending), and the source dispatches, which only clears the notifier.
    clock = VirtualClock()
    loop = MainLoop(clock)
    while loop.iteration(False):
        pass
    loop.fds.blocker = OtherThread(clock, loop.aio_context.notify)
    assert loop.iteration(True) is True
    assert now(loop) == 0
    assert loop.iteration(False) is False


def test_a_source_ready_at_prepare_is_not_checked() -> None:
    # glib's g_main_context_check calls check() only `if (!(source->flags &
    # G_SOURCE_READY))`: aio_ctx_check, which clears notify_me's bit 0, does not
    # run for a context that was ready at prepare. So a notify from its dispatch
    # still sets its notifier, and the next iteration dispatches that.
    loop = drained()
    ctx = loop.aio_context
    ctx.bh_new(ctx.notify).schedule()
    assert loop.iteration(False) is True
    assert loop.iteration(False) is True
    assert loop.iteration(False) is False


def test_iteration_dispatches_ready_bhs_fds_and_timers_of_both_sources() -> None:
    loop = drained()
    log: list[str] = []
    r, w = loop.fds.pipe()
    loop.set_fd_handler(r, lambda: log.append(loop.fds.read(r, 10).decode()), None)
    loop.aio_context.bh_new(lambda: log.append("bh")).schedule()
    loop.aio_context.timer_new_ns(REALTIME, lambda: log.append("timer")).mod_ns(0)
    loop.fds.write(w, b"fd")
    assert loop.iteration(False) is True
    assert log == ["bh", "timer", "fd"]  # aio-context's source first, then io-handler's
    assert loop.iteration(False) is False


def test_glib_timeouts_round_up_to_whole_ms() -> None:
    loop = drained()
    fired: list[int] = []
    t = loop.aio_context.timer_new_ns(REALTIME, lambda: fired.append(now(loop)))
    t.mod_ns(750 * SCALE_MS + SCALE_MS // 2)
    assert loop.iteration(True) is True
    assert now(loop) == 751 * SCALE_MS
    assert fired == [751 * SCALE_MS]


def test_a_blocking_iteration_ends_when_an_iohandler_fd_is_ready() -> None:
    loop = drained()
    r, w = loop.fds.pipe()
    got: list[bytes] = []
    loop.set_fd_handler(r, lambda: got.append(loop.fds.read(r, 10)), None)
    loop.aio_context.timer_new_ns(REALTIME, lambda: None).mod_ns(SCALE_MS)
    loop.fds.write(w, b"x")
    assert loop.iteration(True) is True
    assert got == [b"x"]
    assert now(loop) == 0


def test_iteration_with_an_infinite_timeout_raises_deadlock_error() -> None:
    loop = drained()
    with pytest.raises(DeadlockError, match=re.escape(DEADLOCK_MESSAGE)) as info:
        loop.iteration(True)
    assert info.value.blocked == (("main", "main_loop_wait"),)
    assert now(loop) == 0
    assert loop.iteration(False) is False  # the failed round left the sources usable


def test_iteration_does_not_run_main_loop_timers() -> None:
    loop = drained()
    log: list[str] = []
    loop.timer_new_ns(REALTIME, lambda: log.append("main-loop timer")).mod_ns(0)
    assert loop.iteration(False) is False
    assert log == []
    assert loop.wait(nonblocking=True) is True
    assert log == ["main-loop timer"]


# -- the iohandler context -------------------------------------------------------


def test_iohandler_context_fds_are_never_dispatched_by_aio_context_poll() -> None:
    loop = drained()
    r, w = loop.fds.pipe()
    log: list[str] = []
    loop.set_fd_handler(r, lambda: log.append("chardev"), None)
    assert loop.iohandler_context.handler_count() == 1
    assert loop.aio_context.handler_count() == 0
    loop.fds.write(w, b"x")
    assert loop.aio_context.poll(False) is False
    assert log == []
    # A blocking aio_poll(qemu_aio_context) does not wake for it either.
    with pytest.raises(DeadlockError):
        loop.aio_context.poll(True)
    assert log == []
    # Only the main loop does.
    assert loop.iteration(False) is True
    assert log == ["chardev"]


def test_set_fd_handler_with_no_handlers_removes_the_iohandler() -> None:
    loop = drained()
    r, w = loop.fds.pipe()
    log: list[str] = []
    loop.set_fd_handler(r, lambda: log.append("r"), None)
    loop.set_fd_handler(r, None, None)
    assert loop.iohandler_context.handler_count() == 0
    loop.fds.write(w, b"x")
    assert loop.iteration(False) is False
    assert log == []


# -- main_loop_wait ----------------------------------------------------------------


def test_main_loop_wait_folds_the_main_loop_timer_deadline_in() -> None:
    # main_loop_wait: timeout_ns = qemu_soonest_timeout(-1, timerlistgroup_deadline_ns(
    # &main_loop_tlg)), waited in ns by qemu_poll_ns: no rounding to ms.
    loop = drained()
    fired: list[int] = []
    deadline = 750 * SCALE_MS + SCALE_MS // 2
    loop.timer_new_ns(REALTIME, lambda: fired.append(now(loop))).mod_ns(deadline)
    assert loop.wait() is True
    assert now(loop) == deadline
    assert fired == [deadline]


def test_main_loop_wait_waits_for_the_sooner_of_glib_and_main_loop_timers() -> None:
    loop = drained()
    log: list[tuple[str, int]] = []
    half = SCALE_MS // 2
    main = loop.timer_new_ns(REALTIME, lambda: log.append(("main", now(loop))))
    main.mod_ns(750 * SCALE_MS + half)
    aio = loop.aio_context.timer_new_ns(REALTIME, lambda: log.append(("aio", now(loop))))
    aio.mod_ns(750 * SCALE_MS + half + 1)
    assert loop.wait() is True  # 751 ms for glib, 750.5 ms for the main-loop timer
    assert log == [("main", 750 * SCALE_MS + half)]
    assert loop.wait() is True  # 1 ns left, rounded up to 1 ms
    assert log == [("main", 750 * SCALE_MS + half), ("aio", 751 * SCALE_MS + half)]


def test_main_loop_wait_runs_its_timers_after_the_sources_dispatch() -> None:
    loop = drained()
    log: list[str] = []
    loop.timer_new_ns(REALTIME, lambda: log.append("main-loop timer")).mod_ns(0)
    loop.aio_context.bh_new(lambda: log.append("bh")).schedule()
    assert loop.wait() is True
    assert log == ["bh", "main-loop timer"]


def test_main_loop_timers_run_clock_by_clock() -> None:
    loop = drained()
    loop.clock.enable(ClockType.VIRTUAL, True)
    log: list[str] = []
    for t in reversed(ClockType):
        loop.timer_new_ns(t, appender(log, t.name)).mod_ns(loop.clock.get_ns(t))
    assert loop.wait(nonblocking=True) is True
    assert log == ["REALTIME", "VIRTUAL", "HOST", "VIRTUAL_RT"]


def test_main_loop_wait_nonblocking_does_not_move_the_clock() -> None:
    loop = drained()
    loop.timer_new_ns(REALTIME, lambda: None).mod_ns(5 * SCALE_MS)
    loop.aio_context.timer_new_ns(REALTIME, lambda: None).mod_ns(3 * SCALE_MS)
    assert loop.wait(nonblocking=True) is False
    assert now(loop) == 0


def test_main_loop_wait_with_an_infinite_timeout_raises_deadlock_error() -> None:
    loop = drained()
    with pytest.raises(DeadlockError, match=re.escape(DEADLOCK_MESSAGE)):
        loop.wait()
    assert now(loop) == 0


def test_a_disabled_clock_gives_main_loop_wait_no_deadline() -> None:
    loop = drained()
    loop.timer_new_ns(ClockType.VIRTUAL, lambda: None).mod_ns(SCALE_MS)  # VIRTUAL is stopped
    with pytest.raises(DeadlockError):
        loop.wait()


# -- observation and determinism ---------------------------------------------------


def test_the_observer_sees_every_callback_of_both_sources_and_the_main_loop_timers() -> None:
    loop = drained()
    told: list[tuple[str, str]] = []
    names = {id(loop.aio_context): "aio", id(loop.iohandler_context): "io", id(loop): "main"}

    def observer(kind: int, ctx: Any, what: Any) -> None:
        told.append((DispatchKind.NAMES[kind], names[id(ctx)]))

    loop.set_observer(observer)
    r, w = loop.fds.pipe()
    loop.set_fd_handler(r, lambda: loop.fds.read(r, 10), None)
    loop.fds.write(w, b"x")
    loop.aio_context.bh_new(lambda: None).schedule()
    loop.aio_context.timer_new_ns(REALTIME, lambda: None).mod_ns(0)
    loop.timer_new_ns(REALTIME, lambda: None).mod_ns(0)
    assert loop.wait(nonblocking=True) is True
    assert told == [("bh", "aio"), ("timer", "aio"), ("read", "io"), ("timer", "main")]


def _scenario_trace() -> list[tuple[int, str]]:
    loop = drained()
    trace: list[tuple[int, str]] = []

    def log(what: str) -> Callable[[], None]:
        return lambda: trace.append((now(loop), what))

    r, w = loop.fds.pipe()

    def on_read() -> None:
        data = loop.fds.read(r, 100)
        trace.append((now(loop), f"read {data!r}"))
        if data == b"ping":
            loop.aio_context.bh_schedule_oneshot(log("oneshot"))

    loop.set_fd_handler(r, on_read, None)
    tick = loop.aio_context.timer_new(REALTIME, SCALE_MS, log("tick"))
    tick.mod(3)
    writer = loop.timer_new_ns(REALTIME, lambda: loop.fds.write(w, b"ping"))
    writer.mod_ns(1_500_000)
    loop.aio_context.bh_new(log("bh")).schedule()
    for _ in range(6):
        try:
            loop.wait()
        except DeadlockError:
            trace.append((now(loop), "idle"))
            break
    return trace


def test_ten_runs_of_one_scenario_give_one_trace() -> None:
    traces = {tuple(_scenario_trace()) for _ in range(10)}
    assert len(traces) == 1
    [trace] = traces
    assert trace == (
        (0, "bh"),
        (1_500_000, "read b'ping'"),
        (1_500_000, "oneshot"),
        (3_500_000, "tick"),  # 1.5 ms were left at 1.5 ms: glib waits 2 ms
        (3_500_000, "idle"),
    )
