"""Tests for evloop.loop.quiet and its primitives: the dirty signal, TimerList.run_warping."""

from __future__ import annotations

from evloop import SCALE_MS, ClockType, MainLoop, Simulation
from evloop.loop.quiet import QUIET_AGAIN, QUIET_NO, QUIET_UNTIL, run_quiet
from evloop.loop.timer import (
    WARP_DIRTY,
    WARP_DUE,
    WARP_EMPTY,
    WARP_LIMIT,
    WARP_UNTIL,
    TimerList,
)


class Steps:
    def __init__(self) -> None:
        self.steps = 0


# -- the dirty signal -----------------------------------------------------------------


def test_one_dirty_signal_is_shared_by_both_contexts_and_the_main_loop_timers() -> None:
    ml = MainLoop()
    cells = {id(ml.dirty), id(ml.aio_context.dirty), id(ml.iohandler_context.dirty)}
    cells |= {id(tl.dirty) for tl in ml.tlg.lists}
    for ctx in (ml.aio_context, ml.iohandler_context):
        cells |= {id(tl.dirty) for tl in ctx.tlg.lists}
    assert cells == {id(ml.dirty)}


def test_what_can_end_quietness_raises_the_dirty_signal() -> None:
    ml = MainLoop()
    aio, ioh = ml.aio_context, ml.iohandler_context
    r, w = ml.fds.pipe()

    def raised(action: object) -> bool:
        ml.dirty[0] = False
        assert callable(action)
        action()
        return ml.dirty[0]

    t = ioh.timer_new_ns(ClockType.VIRTUAL, lambda: None)
    assert raised(lambda: t.mod_ns(5))  # a new head
    assert not raised(lambda: ioh.timer_new_ns(ClockType.VIRTUAL, print))  # not armed
    assert raised(lambda: aio.bh_schedule_oneshot(lambda: None))
    assert raised(lambda: aio.set_fd_handler(r, lambda: None, None))
    assert raised(lambda: ml.fds.write(w, b"x"))  # the handler's fd became ready
    assert raised(ioh.notify)
    assert raised(lambda: aio.poll(False))


def test_a_timer_that_does_not_become_the_head_is_not_news() -> None:
    ml = MainLoop()
    first = ml.timer_new_ns(ClockType.VIRTUAL, lambda: None)
    later = ml.timer_new_ns(ClockType.VIRTUAL, lambda: None)
    first.mod_ns(10)
    ml.dirty[0] = False
    later.mod_ns(20)
    assert not ml.dirty[0]
    later.mod_ns(5)
    assert ml.dirty[0]


def test_a_thread_or_input_appearing_raises_the_simulations_dirty_signal() -> None:
    with Simulation() as sim:
        sim.main_loop.dirty[0] = False
        sim.thread("t", lambda: None)
        assert sim.main_loop.dirty[0]
        sim.main_loop.dirty[0] = False
        _, b = sim.fds.socketpair()
        sim.peer(b).send(b"x", at_ns=5)
        assert sim.main_loop.dirty[0]
        sim.main_loop.dirty[0] = False
        sim.shutdown()
        assert sim.main_loop.dirty[0]


# -- TimerList.run_warping ------------------------------------------------------------


def _list_with(delays: list[int], seen: list[tuple[int, int]]) -> tuple[MainLoop, TimerList]:
    ml = MainLoop()
    tl = ml.tlg.lists[ClockType.REALTIME]
    for i, d in enumerate(delays):
        t = ml.timer_new_ns(ClockType.REALTIME, lambda i=i: seen.append((i, ml.clock._now[0])))
        t.mod_ns(d)
    ml.dirty[0] = False
    return ml, tl


def test_run_warping_warps_to_each_head_and_runs_what_is_due() -> None:
    seen: list[tuple[int, int]] = []
    _, tl = _list_with([30, 10, 10, 20], seen)
    assert tl.run_warping(None, None, -1, Steps(), -1) == WARP_EMPTY
    assert seen == [(1, 10), (2, 10), (3, 20), (0, 30)]


def test_run_warping_rounds_each_wait_as_it_is_told() -> None:
    seen: list[tuple[int, int]] = []
    _, tl = _list_with([3, 1_500_000, 1_600_000], seen)
    ms = lambda ns: -(-ns // SCALE_MS) * SCALE_MS  # noqa: E731
    assert tl.run_warping(ms, None, -1, Steps(), -1) == WARP_EMPTY
    assert seen == [(0, 1_000_000), (1, 2_000_000), (2, 2_000_000)]


def test_run_warping_stops_at_until_after_running_what_is_due_there() -> None:
    seen: list[tuple[int, int]] = []
    ml, tl = _list_with([10, 25, 40], seen)
    assert tl.run_warping(None, None, 30, Steps(), -1) == WARP_UNTIL
    assert seen == [(0, 10), (1, 25)] and ml.clock._now[0] == 30


def test_run_warping_stops_at_the_step_limit_between_passes() -> None:
    seen: list[tuple[int, int]] = []
    ml, tl = _list_with([10, 10, 20], seen)
    counter = Steps()
    ml.tlg.set_observer(lambda kind, ctx, what: setattr(counter, "steps", counter.steps + 1))
    assert tl.run_warping(None, None, -1, counter, 1) == WARP_LIMIT
    assert seen == [(0, 10), (1, 10)]  # a pass is never cut short by the limit


def test_run_warping_stops_after_a_pass_that_raised_the_dirty_signal() -> None:
    seen: list[tuple[int, int]] = []
    ml, tl = _list_with([10, 20], seen)
    other = ml.timer_new_ns(ClockType.VIRTUAL, lambda: None)
    ml.dirty[0] = False
    tl._heap[0][2].cb = lambda: other.mod_ns(100)  # a head on another list: news
    assert tl.run_warping(None, None, -1, Steps(), -1) == WARP_DIRTY
    assert ml.clock._now[0] == 10


def test_a_lists_own_new_head_is_not_news_while_it_warps() -> None:
    ml = MainLoop()
    fired: list[int] = []
    t = ml.timer_new_ns(ClockType.REALTIME, lambda: fired.append(1) or (
        t.mod_ns(ml.clock._now[0] + 7) if len(fired) < 5 else None))
    t.mod_ns(7)
    ml.dirty[0] = False
    tl = ml.tlg.lists[ClockType.REALTIME]
    assert tl.run_warping(None, None, -1, Steps(), -1) == WARP_EMPTY
    assert len(fired) == 5 and ml.clock._now[0] == 35
    assert tl.dirty is ml.dirty  # given back


def test_run_warping_hands_a_due_head_back_when_the_wait_is_rounded() -> None:
    seen: list[tuple[int, int]] = []
    _, tl = _list_with([0], seen)
    assert tl.run_warping(lambda ns: ns, None, -1, Steps(), -1) == WARP_DUE
    assert seen == []


# -- run_quiet ------------------------------------------------------------------------


def test_run_quiet_declines_a_loop_with_more_than_one_timer_list() -> None:
    ml = MainLoop()
    ml.timer_new_ns(ClockType.VIRTUAL, lambda: None).mod_ns(5)
    ml.aio_context.timer_new_ns(ClockType.REALTIME, lambda: None).mod_ns(5)
    assert run_quiet(ml, Steps(), -1, -1) == QUIET_NO


def test_run_quiet_runs_a_context_timer_on_whole_ms_waits() -> None:
    ml = MainLoop()
    ml.clock.enable(ClockType.VIRTUAL, True)
    seen: list[int] = []
    t = ml.aio_context.timer_new_ns(ClockType.VIRTUAL, lambda: seen.append(ml.clock._now[1]))
    t.mod_ns(1_500)
    assert run_quiet(ml, Steps(), -1, -1) == QUIET_AGAIN
    assert seen == [SCALE_MS]


def test_run_quiet_says_until_when_the_wait_ran_into_it() -> None:
    ml = MainLoop()
    seen: list[int] = []
    t = ml.timer_new_ns(ClockType.REALTIME, lambda: seen.append(ml.clock._now[0]))
    t.mod_ns(50)
    assert run_quiet(ml, Steps(), -1, 20) == QUIET_UNTIL
    assert seen == [] and ml.clock._now[0] == 20


def test_run_quiet_runs_ready_handlers_iteration_after_iteration() -> None:
    ml = MainLoop()
    fds = ml.fds
    r1, w1 = fds.pipe()
    r2, w2 = fds.pipe()
    order: list[str] = []

    def a() -> None:
        fds.read(r1, 1)
        order.append("a")
        fds.write(w2, b"y")

    def b() -> None:
        fds.read(r2, 1)
        order.append("b")
        if len(order) < 6:
            fds.write(w1, b"x")

    ml.aio_context.set_fd_handler(r1, a, None)
    ml.aio_context.set_fd_handler(r2, b, None)
    fds.write(w1, b"x")
    assert run_quiet(ml, Steps(), -1, -1) == QUIET_AGAIN
    assert order == ["a", "b", "a", "b", "a", "b"]


def test_run_quiet_runs_bottom_halves_batch_after_batch() -> None:
    ml = MainLoop()
    ran: list[int] = []

    def step() -> None:
        ran.append(len(ran))
        if len(ran) < 10:
            bh.schedule()

    bh = ml.aio_context.bh_new(step)
    bh.schedule()
    calls = 0
    while len(ran) < 10:
        assert run_quiet(ml, Steps(), -1, -1) == QUIET_AGAIN
        calls += 1
    assert ran == list(range(10))
    # Once more only: the context's notifier joins its poll list for real.
    assert calls == 2
