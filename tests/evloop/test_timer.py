"""Tests for evloop.timer: QEMU's timer lists (``util/qemu-timer.c``).

The QEMU functions each rule comes from are named in the tests. The last test
runs any sequence of mod/anticipate/cancel/advance/enable/poll across several
timers on several clocks against a model written from ``timer_mod_ns_locked``
and ``timerlist_run_timers``.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evloop import (
    HOST_EPOCH_NS,
    QEMU_TIMER_ATTR_ALL,
    QEMU_TIMER_ATTR_EXTERNAL,
    SCALE_MS,
    SCALE_NS,
    SCALE_US,
    AioContext,
    ClockType,
    DispatchKind,
    FdTable,
    MainLoop,
    Timer,
    VirtualClock,
    qemu_clock_deadline_ns_all,
)
from evloop.loop.timer import TimerList
from evloop.loop.timergroup import TimerListGroup
from tests.helpers import new_ctx

REALTIME = ClockType.REALTIME
VIRTUAL = ClockType.VIRTUAL
HOST = ClockType.HOST
VIRTUAL_RT = ClockType.VIRTUAL_RT


def logging_timer(ctx: AioContext, log: list[str], name: str, clock: ClockType = REALTIME) -> Timer:
    return ctx.timer_new_ns(clock, lambda: log.append(name), name=name)


class NotifyCounter:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


# -- order ----------------------------------------------------------------------


def test_timers_fire_sorted_by_expiry() -> None:
    ctx = new_ctx()
    log: list[str] = []
    logging_timer(ctx, log, "30").mod_ns(30)
    logging_timer(ctx, log, "10").mod_ns(10)
    logging_timer(ctx, log, "20").mod_ns(20)
    ctx.clock.advance(30)
    assert ctx.poll(False) is True
    assert log == ["10", "20", "30"]


def test_timers_with_equal_expiry_fire_first_in_first_out() -> None:
    ctx = new_ctx()
    log: list[str] = []
    for name in "abc":
        logging_timer(ctx, log, name).mod_ns(100)
    ctx.clock.advance(100)
    ctx.poll(False)
    assert log == ["a", "b", "c"]


def test_rearming_a_pending_timer_makes_it_the_newest_of_its_ties() -> None:
    # timer_mod_ns = timer_del_locked + timer_mod_ns_locked: it goes after its equals.
    ctx = new_ctx()
    log: list[str] = []
    timers = {name: logging_timer(ctx, log, name) for name in "abc"}
    for t in timers.values():
        t.mod_ns(100)
    timers["a"].mod_ns(100)
    ctx.clock.advance(100)
    ctx.poll(False)
    assert log == ["b", "c", "a"]


def test_only_timers_due_at_the_current_time_run() -> None:
    ctx = new_ctx()
    log: list[str] = []
    logging_timer(ctx, log, "due").mod_ns(50)
    logging_timer(ctx, log, "later").mod_ns(51)
    ctx.clock.advance(50)
    assert ctx.poll(False) is True
    assert log == ["due"]
    assert ctx.poll(False) is False
    ctx.clock.advance(1)
    assert ctx.poll(False) is True
    assert log == ["due", "later"]


# -- mod, mod_anticipate, cancel ----------------------------------------------


def test_mod_of_a_negative_time_stores_0() -> None:
    ctx = new_ctx()
    t = ctx.timer_new_ns(REALTIME, lambda: None)
    t.mod_ns(-5)
    assert t.pending() is True
    assert t.expire_time_ns() == 0


def test_mod_of_a_negative_time_goes_ahead_of_timers_already_due_at_0() -> None:
    # QEMU timer_mod_ns_locked walks the list while `t->expire_time <= expire_time`
    # with the *raw* (negative) time, so a negative time stops at the head, ahead of
    # every timer already at 0, and only then stores MAX(expire_time, 0).
    ctx = new_ctx()
    log: list[str] = []
    logging_timer(ctx, log, "zero").mod_ns(0)
    logging_timer(ctx, log, "minus-one").mod_ns(-1)
    logging_timer(ctx, log, "minus-five").mod_ns(-5)
    ctx.poll(False)
    assert log == ["minus-five", "minus-one", "zero"]


def test_mod_uses_the_timer_scale() -> None:
    ctx = new_ctx()
    us = ctx.timer_new(REALTIME, SCALE_US, lambda: None)
    us.mod(7)
    assert us.expire_time_ns() == 7_000
    assert us.scale == SCALE_US
    ns = ctx.timer_new(REALTIME, SCALE_NS, lambda: None)
    ns.mod(7)
    assert ns.expire_time_ns() == 7


def test_timer_new_with_scale_ms_mod_5_fires_at_5_ms() -> None:
    ctx = new_ctx()
    fired_at: list[int] = []
    t = ctx.timer_new(REALTIME, SCALE_MS, lambda: fired_at.append(ctx.clock.get_ns(REALTIME)))
    t.mod(5)
    assert t.expire_time_ns() == 5 * SCALE_MS
    ctx.poll(False)  # take in the notify that arming the head gave
    assert ctx.compute_timeout() == 5 * SCALE_MS
    assert ctx.poll(True) is True
    assert fired_at == [5 * SCALE_MS]


def test_a_timer_scale_must_be_positive() -> None:
    ctx = new_ctx()
    with pytest.raises(
        ValueError, match=re.escape("a timer's scale must be a positive number of ns, not 0")
    ):
        ctx.timer_new(REALTIME, 0, lambda: None)


def test_mod_anticipate_only_moves_earlier() -> None:
    ctx = new_ctx()
    t = ctx.timer_new_ns(REALTIME, lambda: None)
    t.mod_ns(100)
    t.mod_anticipate_ns(200)
    assert t.expire_time_ns() == 100
    t.mod_anticipate_ns(100)
    assert t.expire_time_ns() == 100
    t.mod_anticipate_ns(40)
    assert t.expire_time_ns() == 40


def test_mod_anticipate_arms_a_timer_that_is_not_pending() -> None:
    ctx = new_ctx()
    t = ctx.timer_new(REALTIME, SCALE_US, lambda: None)
    t.mod_anticipate(3)
    assert t.expire_time_ns() == 3_000
    t.mod_anticipate(9)
    assert t.expire_time_ns() == 3_000


def test_mod_anticipate_to_an_equal_time_keeps_the_place_among_ties() -> None:
    ctx = new_ctx()
    log: list[str] = []
    a = logging_timer(ctx, log, "a")
    b = logging_timer(ctx, log, "b")
    a.mod_ns(10)
    b.mod_ns(10)
    a.mod_anticipate_ns(10)  # not earlier: untouched, still ahead of b
    ctx.clock.advance(10)
    ctx.poll(False)
    assert log == ["a", "b"]


def test_cancel_stops_a_pending_timer_and_it_can_be_armed_again() -> None:
    ctx = new_ctx()
    log: list[str] = []
    t = logging_timer(ctx, log, "t")
    t.mod_ns(10)
    t.cancel()
    assert t.pending() is False
    assert t.expire_time_ns() == -1
    assert ctx.compute_timeout() == -1
    ctx.clock.advance(10)
    assert ctx.poll(False) is False
    t.cancel()  # not pending: nothing to do
    t.mod_ns(20)
    ctx.clock.advance(10)
    assert ctx.poll(False) is True
    assert log == ["t"]


def test_expired_compares_in_the_timer_scale() -> None:
    ctx = new_ctx()
    t = ctx.timer_new(REALTIME, SCALE_MS, lambda: None)
    t.mod(5)
    assert t.expired(4) is False
    assert t.expired(5) is True
    assert t.expired(6) is True


def test_expired_is_true_for_a_timer_that_is_not_pending() -> None:
    # QEMU timer_expired -> timer_expired_ns: `timer_head && expire_time <= current_time`;
    # a timer that is not pending has expire_time -1, which is <= any current time.
    ctx = new_ctx()
    t = ctx.timer_new(REALTIME, SCALE_MS, lambda: None)
    assert t.expired(0) is True
    t.mod(5)
    t.cancel()
    assert t.expired(0) is True


def test_repr_names_the_timer_its_clock_and_its_expiry() -> None:
    ctx = new_ctx()
    t = ctx.timer_new_ns(HOST, lambda: None, name="watchdog")
    assert repr(t) == "<Timer 'watchdog' HOST expire_ns=-1>"
    t.mod_ns(HOST_EPOCH_NS + 5)
    assert repr(t) == f"<Timer 'watchdog' HOST expire_ns={HOST_EPOCH_NS + 5}>"
    assert t.clock_type is HOST


# -- inside the callback ----------------------------------------------------------


def test_a_timer_has_expire_time_minus_1_inside_its_callback() -> None:
    ctx = new_ctx()
    seen: list[tuple[bool, int]] = []
    t = ctx.timer_new_ns(REALTIME, lambda: seen.append((t.pending(), t.expire_time_ns())))
    t.mod_ns(0)
    ctx.poll(False)
    assert seen == [(False, -1)]


def test_a_rearm_at_or_before_the_sampled_time_runs_again_in_the_same_pass() -> None:
    ctx = new_ctx()
    ctx.clock.advance(1_000)
    runs: list[int] = []

    def cb() -> None:
        runs.append(t.expire_time_ns())
        if len(runs) == 1:
            t.mod_ns(1_000)  # at the sampled time
        elif len(runs) == 2:
            t.mod_ns(10)  # before it

    t = ctx.timer_new_ns(REALTIME, cb)
    t.mod_ns(500)
    assert ctx.poll(False) is True
    assert runs == [-1, -1, -1]
    assert t.pending() is False


def test_a_callback_rearming_its_timer_after_the_sampled_time_waits_for_the_next_pass() -> None:
    ctx = new_ctx()
    runs: list[int] = []

    def cb() -> None:
        runs.append(ctx.clock.get_ns(REALTIME))
        t.mod_ns(ctx.clock.get_ns(REALTIME) + 1)

    t = ctx.timer_new_ns(REALTIME, cb)
    t.mod_ns(0)
    assert ctx.poll(False) is True
    assert runs == [0]
    assert t.expire_time_ns() == 1
    ctx.clock.advance(1)
    assert ctx.poll(False) is True
    assert runs == [0, 1]


def test_the_clock_is_sampled_once_per_pass() -> None:
    # timerlist_run_timers reads qemu_clock_get_ns once: a timer that comes due
    # while earlier callbacks run (here, time passes inside one) waits a pass.
    ctx = new_ctx()
    log: list[str] = []

    def slow() -> None:
        log.append("slow")
        ctx.clock.advance(100)

    ctx.timer_new_ns(REALTIME, slow).mod_ns(0)
    logging_timer(ctx, log, "later").mod_ns(50)
    assert ctx.poll(False) is True
    assert log == ["slow"]
    assert ctx.poll(False) is True
    assert log == ["slow", "later"]


def test_a_timer_armed_by_a_callback_for_a_due_time_runs_in_the_same_pass_in_order() -> None:
    ctx = new_ctx()
    log: list[str] = []
    b = logging_timer(ctx, log, "b")

    def a_cb() -> None:
        log.append("a")
        b.mod_ns(3)

    ctx.timer_new_ns(REALTIME, a_cb).mod_ns(0)
    logging_timer(ctx, log, "c").mod_ns(5)
    ctx.clock.advance(5)
    ctx.poll(False)
    assert log == ["a", "b", "c"]


def test_a_timer_cancelled_by_an_earlier_callback_of_the_pass_does_not_run() -> None:
    ctx = new_ctx()
    log: list[str] = []
    victim = logging_timer(ctx, log, "victim")
    ctx.timer_new_ns(REALTIME, victim.cancel).mod_ns(0)
    victim.mod_ns(0)
    assert ctx.poll(False) is True
    assert log == []


def test_a_timer_that_raises_stops_poll_and_the_other_due_timers_run_next_poll() -> None:
    ctx = new_ctx()
    log: list[str] = []
    boom = RuntimeError("timer failed")

    def raising() -> None:
        log.append("raising")
        raise boom

    t = ctx.timer_new_ns(REALTIME, raising)
    t.mod_ns(0)
    logging_timer(ctx, log, "next").mod_ns(0)
    with pytest.raises(RuntimeError) as info:
        ctx.poll(False)
    assert info.value is boom
    assert log == ["raising"]
    assert t.pending() is False
    assert ctx.poll(False) is True
    assert log == ["raising", "next"]


# -- deadlines and disabled clocks -------------------------------------------------


def test_deadline_is_minus_1_for_an_empty_list() -> None:
    clock = VirtualClock()
    tl = TimerList(clock, REALTIME)
    assert tl.deadline_ns() == -1
    assert len(tl) == 0
    assert tl.has_timers() is False
    assert tl.expired() is False
    assert new_ctx(clock).compute_timeout() == -1


def test_deadline_is_the_time_left_and_0_once_due() -> None:
    clock = VirtualClock()
    tl = TimerList(clock, HOST)
    t = Timer(tl, SCALE_NS, lambda: None)
    t.mod_ns(HOST_EPOCH_NS + 300)
    assert tl.deadline_ns() == 300
    assert tl.expired() is False
    clock.advance(299)
    assert tl.deadline_ns() == 1
    clock.advance(5)
    assert tl.deadline_ns() == 0
    assert tl.expired() is True


def test_deadline_is_minus_1_for_a_disabled_clock_and_its_timers_do_not_run() -> None:
    clock = VirtualClock()
    ctx = new_ctx(clock)
    log: list[str] = []
    logging_timer(ctx, log, "virtual", VIRTUAL).mod_ns(0)
    assert ctx.compute_timeout() == -1  # VIRTUAL starts disabled
    assert ctx.poll(False) is False
    assert log == []
    clock.enable(REALTIME, False)
    logging_timer(ctx, log, "realtime", REALTIME).mod_ns(0)
    clock.advance(10)
    assert ctx.compute_timeout() == -1
    assert ctx.poll(False) is False
    assert log == []
    clock.enable(VIRTUAL, True)
    clock.enable(REALTIME, True)
    assert ctx.compute_timeout() == 0
    assert ctx.poll(False) is True
    assert log == ["realtime", "virtual"]


def test_a_group_deadline_is_the_soonest_over_its_enabled_clocks() -> None:
    clock = VirtualClock()
    tlg = TimerListGroup(clock)
    tlg.new_timer(REALTIME, 1, lambda: None, None).mod_ns(900)
    tlg.new_timer(HOST, 1, lambda: None, None).mod_ns(HOST_EPOCH_NS + 400)
    tlg.new_timer(VIRTUAL, 1, lambda: None, None).mod_ns(5)  # disabled: ignored
    assert tlg.deadline_ns() == 400
    clock.enable(HOST, False)
    assert tlg.deadline_ns() == 900
    assert tlg.pending_count() == 3


def test_enabling_a_clock_notifies_the_contexts_that_have_timer_lists_on_it() -> None:
    # qemu_clock_enable(type, true) on a disabled clock calls qemu_clock_notify,
    # which calls timerlist_notify on every list of that clock: aio_notify for an
    # AioContext's lists. So the next blocking aio_poll does not block.
    clock = VirtualClock()
    ctx = new_ctx(clock)
    ctx.timer_new_ns(VIRTUAL, lambda: None).mod_ns(5 * SCALE_MS)
    ctx.timer_new_ns(REALTIME, lambda: None).mod_ns(100 * SCALE_MS)
    ctx.poll(False)  # take in the notifies that arming gave
    clock.enable(VIRTUAL, True)
    assert ctx.poll(True) is False
    assert clock.get_ns(REALTIME) == 0


# -- notify on a new head ------------------------------------------------------


def test_arming_a_timer_that_becomes_the_head_notifies_its_list() -> None:
    # timer_mod_ns: `if (rearm) timerlist_rearm(...)` when inserted at the head.
    clock = VirtualClock()
    notify = NotifyCounter()
    tl = TimerList(clock, REALTIME, notify)
    a = Timer(tl, 1, lambda: None)
    b = Timer(tl, 1, lambda: None)
    a.mod_ns(10)
    assert notify.count == 1
    b.mod_ns(20)  # behind the head
    assert notify.count == 1
    b.mod_ns(10)  # a tie goes behind its equals: still not the head
    assert notify.count == 1
    b.mod_ns(5)
    assert notify.count == 2
    b.mod_ns(30)  # leaves the head: timer_del + insert behind a, no notify
    assert notify.count == 2
    a.mod_ns(40)  # b becomes the head by a removal, and nobody was inserted there
    assert notify.count == 2
    b.cancel()  # timer_del never notifies
    assert notify.count == 2
    a.mod_anticipate_ns(35)  # only timer left: inserted at the head
    assert notify.count == 3


def test_arming_the_head_of_an_aio_context_list_notifies_the_context() -> None:
    # So a blocking poll right after timer_mod does not block (test-aio.c says as much:
    # "timer_mod may well cause an event notifier to have gone off").
    ctx = new_ctx()
    ctx.timer_new_ns(REALTIME, lambda: None).mod_ns(5 * SCALE_MS)
    assert ctx.poll(True) is False
    assert ctx.clock.get_ns(REALTIME) == 0
    assert ctx.poll(True) is True
    assert ctx.clock.get_ns(REALTIME) == 5 * SCALE_MS


# -- the seams: observer and checkpoint gate -------------------------------------


def test_the_observer_is_told_of_each_timer_before_its_callback() -> None:
    ctx = new_ctx()
    told: list[tuple[int, Any, Any, int]] = []
    log: list[str] = []

    def observer(kind: int, ctx: Any, what: Any) -> None:
        told.append((kind, ctx, what, len(log)))

    ctx.set_observer(observer)
    t = logging_timer(ctx, log, "t")
    t.mod_ns(0)
    ctx.poll(False)
    assert told == [(DispatchKind.TIMER, ctx, t, 0)]
    assert log == ["t"]


def test_a_checkpoint_gate_that_says_no_skips_the_run() -> None:
    clock = VirtualClock()
    tl = TimerList(clock, VIRTUAL_RT)
    log: list[str] = []
    t = Timer(tl, 1, lambda: log.append("t"))
    asked: list[ClockType] = []
    answer = [False]

    def gate(clock_type: ClockType) -> bool:
        asked.append(clock_type)
        return answer[0]

    tl.checkpoint = gate
    t.mod_ns(0)
    assert tl.run_timers() is False
    assert log == []
    assert t.pending() is True
    answer[0] = True
    assert tl.run_timers() is True
    assert log == ["t"]
    assert asked == [VIRTUAL_RT, VIRTUAL_RT]


# -- storage --------------------------------------------------------------------


def test_many_rearms_keep_one_pending_entry_and_fire_once() -> None:
    clock = VirtualClock()
    tl = TimerList(clock, REALTIME)
    log: list[int] = []
    t = Timer(tl, 1, lambda: log.append(clock.get_ns(REALTIME)))
    other = Timer(tl, 1, lambda: log.append(-1))
    other.mod_ns(10_000)
    for expire in range(1_000, 800, -1):  # each re-arm becomes the new head
        t.mod_ns(expire)
    assert len(tl) == 2
    # Dead entries are dropped once they outnumber the live ones (lazy deletion).
    assert len(tl._heap) <= 2 * 65 + 2
    clock.advance(801)
    assert tl.run_timers() is True
    assert log == [801]
    assert len(tl) == 1


# -- any sequence, against a model -----------------------------------------------
#
# The model keeps each clock's list as QEMU does: a list sorted by expiry with
# ties in arm order (timer_mod_ns_locked inserts after every timer whose expiry
# is <= the new one; times here are never negative). timerlist_run_timers: per
# clock in ClockType order, skip a disabled clock, sample the time once, then
# repeatedly take the head while it is due. A callback may make time pass and
# may re-arm its own timer relative to the (possibly moved) clock.

N_TIMERS = 4
UNIT = 1_000  # small offsets in µs make ties common


class TimerModel:
    def __init__(self, clocks: list[ClockType]) -> None:
        self.clocks = clocks
        self.now = [0, 0, HOST_EPOCH_NS, 0]
        self.enabled = [True, True, True, True]
        self.lists: dict[ClockType, list[int]] = {c: [] for c in ClockType}
        self.expire = [-1] * len(clocks)

    def arm(self, i: int, expire_ns: int) -> None:
        self.cancel(i)
        lst = self.lists[self.clocks[i]]
        pos = 0
        while pos < len(lst) and self.expire[lst[pos]] <= expire_ns:
            pos += 1
        lst.insert(pos, i)
        self.expire[i] = expire_ns

    def cancel(self, i: int) -> None:
        if self.expire[i] >= 0:
            self.lists[self.clocks[i]].remove(i)
            self.expire[i] = -1

    def anticipate(self, i: int, expire_ns: int) -> None:
        if self.expire[i] == -1 or self.expire[i] > expire_ns:
            self.arm(i, expire_ns)

    def advance(self, ns: int) -> None:
        for c in ClockType:
            if c is not VIRTUAL or self.enabled[VIRTUAL]:
                self.now[c] += ns

    def deadline(self) -> int:
        deadline = -1
        for c in ClockType:
            lst = self.lists[c]
            if lst and self.enabled[c]:
                delta = max(0, self.expire[lst[0]] - self.now[c])
                deadline = delta if deadline < 0 else min(deadline, delta)
        return deadline


Plan = tuple[int, int, int]  # (re-arm budget, re-arm offset in units, time passing in units)
TimerStep = tuple[Any, ...]

timer_steps: st.SearchStrategy[TimerStep] = st.one_of(
    st.tuples(
        st.sampled_from(("mod", "anticipate")), st.integers(0, N_TIMERS - 1), st.integers(-2, 6)
    ),
    st.tuples(st.just("cancel"), st.integers(0, N_TIMERS - 1)),
    st.tuples(st.just("advance"), st.integers(0, 5)),
    st.tuples(st.just("enable_virtual"), st.booleans()),
    st.tuples(st.just("poll")),
)
plans = st.tuples(st.integers(0, 2), st.integers(-2, 2), st.integers(0, 2))


class TimerHarness:
    def __init__(self, clocks: list[ClockType], plans: list[Plan]) -> None:
        self.clock = VirtualClock()
        self.clock.enable(VIRTUAL, True)
        self.ctx = AioContext(self.clock, FdTable())
        self.model = TimerModel(clocks)
        self.plans = plans
        self.budget = [plan[0] for plan in plans]
        self.fired: list[int] = []
        self.timers = [
            self.ctx.timer_new_ns(c, self._callback(i), name=f"t{i}") for i, c in enumerate(clocks)
        ]

    def _callback(self, i: int) -> Callable[[], None]:
        def cb() -> None:
            self.fired.append(i)
            _, offset, passing = self.plans[i]
            if passing:
                self.clock.advance(passing * UNIT)
            if self.budget[i]:
                self.budget[i] -= 1
                c = self.model.clocks[i]
                self.timers[i].mod_ns(max(0, self.clock.get_ns(c) + offset * UNIT))

        return cb

    def expected_poll(self) -> list[int]:
        """What timerlistgroup_run_timers runs, applied to the model."""
        m = self.model
        fired: list[int] = []
        budget = list(self.budget)
        for c in ClockType:
            lst = m.lists[c]
            if not lst or not m.enabled[c]:
                continue
            current = m.now[c]
            while lst and m.expire[lst[0]] <= current:
                i = lst.pop(0)
                m.expire[i] = -1
                fired.append(i)
                _, offset, passing = self.plans[i]
                if passing:
                    m.advance(passing * UNIT)
                if budget[i]:
                    budget[i] -= 1
                    m.arm(i, max(0, m.now[c] + offset * UNIT))
        return fired

    def step(self, step: TimerStep) -> None:
        m = self.model
        kind = step[0]
        if kind in ("mod", "anticipate"):
            i, offset = step[1], step[2]
            expire = max(0, self.clock.get_ns(m.clocks[i]) + offset * UNIT)
            if kind == "mod":
                m.arm(i, expire)
                self.timers[i].mod_ns(expire)
            else:
                m.anticipate(i, expire)
                self.timers[i].mod_anticipate_ns(expire)
        elif kind == "cancel":
            m.cancel(step[1])
            self.timers[step[1]].cancel()
        elif kind == "advance":
            m.advance(step[1] * UNIT)
            self.clock.advance(step[1] * UNIT)
        elif kind == "enable_virtual":
            m.enabled[VIRTUAL] = step[1]
            self.clock.enable(VIRTUAL, step[1])
        else:
            expected = self.expected_poll()
            self.fired = []
            assert self.ctx.poll(False) is bool(expected)
            assert self.fired == expected

    def check(self) -> None:
        m = self.model
        assert [self.clock.get_ns(c) for c in ClockType] == m.now
        assert [t.expire_time_ns() for t in self.timers] == m.expire
        assert [t.pending() for t in self.timers] == [e >= 0 for e in m.expire]
        assert self.ctx.compute_timeout() == m.deadline()


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(list(ClockType)), min_size=N_TIMERS, max_size=N_TIMERS),
    st.lists(plans, min_size=N_TIMERS, max_size=N_TIMERS),
    st.lists(timer_steps, max_size=50),
)
def test_timers_always_fire_in_expiry_then_arm_order(
    clocks: list[ClockType], plans: list[Plan], program: list[TimerStep]
) -> None:
    h = TimerHarness(clocks, plans)
    for step in program:
        h.step(step)
        h.check()


# == timer attributes and qemu_clock_deadline_ns_all (util/qemu-timer.c) =================


def test_a_timer_has_no_attributes_unless_given_some() -> None:
    # include/qemu/timer.h: QEMU_TIMER_ATTR_EXTERNAL is BIT(0); timer_init_full
    # stores the attributes; aio_timer_new and timer_new_ns pass 0.
    assert (QEMU_TIMER_ATTR_EXTERNAL, QEMU_TIMER_ATTR_ALL) == (1, 0xFFFFFFFF)
    ctx = new_ctx()
    assert ctx.timer_new_ns(VIRTUAL, lambda: None).attributes == 0
    t = ctx.timer_new(VIRTUAL, SCALE_MS, lambda: None, attributes=QEMU_TIMER_ATTR_EXTERNAL)
    assert t.attributes == QEMU_TIMER_ATTR_EXTERNAL
    ml = MainLoop(VirtualClock())
    assert ml.timer_new_ns(VIRTUAL, lambda: None, attributes=1).attributes == 1
    assert ml.timer_new(VIRTUAL, SCALE_US, lambda: None).attributes == 0


def test_timer_attributes_outside_the_mask_bits_are_refused() -> None:
    ctx = new_ctx()
    message = "a timer's attributes must be a mask of QEMU_TIMER_ATTR_* bits, not -1"
    with pytest.raises(ValueError, match=re.escape(message)):
        ctx.timer_new_ns(VIRTUAL, lambda: None, attributes=-1)


def test_an_external_timer_runs_like_any_other() -> None:
    ctx = new_ctx()
    ctx.clock.enable(VIRTUAL, True)
    ran: list[str] = []
    ctx.timer_new_ns(VIRTUAL, lambda: ran.append("ext"), attributes=1).mod_ns(10)
    ctx.timer_new_ns(VIRTUAL, lambda: ran.append("guest")).mod_ns(10)
    ctx.clock.advance(10)
    assert ctx.poll(False) is True
    assert ran == ["ext", "guest"]


def three_loops_on_one_clock() -> tuple[VirtualClock, AioContext, AioContext, MainLoop]:
    clock = VirtualClock()
    clock.enable(VIRTUAL, True)
    return clock, AioContext(clock, FdTable()), AioContext(clock, FdTable()), MainLoop(clock)


def test_deadline_ns_all_is_the_soonest_over_every_timer_list_of_the_clock() -> None:
    # qemu_clock_deadline_ns_all walks clock->timerlists: every context's list
    # and the main loop's, not one group's as timerlistgroup_deadline_ns does.
    clock, a, b, ml = three_loops_on_one_clock()
    assert qemu_clock_deadline_ns_all(clock, VIRTUAL) == -1
    a.timer_new_ns(VIRTUAL, lambda: None).mod_ns(500)
    ml.timer_new_ns(VIRTUAL, lambda: None).mod_ns(300)
    b.timer_new_ns(REALTIME, lambda: None).mod_ns(100)  # another clock: not counted
    assert qemu_clock_deadline_ns_all(clock, VIRTUAL) == 300
    assert qemu_clock_deadline_ns_all(clock, REALTIME) == 100
    assert a.tlg.deadline_ns() == 500
    clock.advance(400)
    assert qemu_clock_deadline_ns_all(clock, VIRTUAL) == 0  # due: 0, never negative


def test_deadline_ns_all_skips_timers_with_attributes_outside_the_mask() -> None:
    # util/qemu-timer.c: "Skip all external timers": while (ts->attributes & ~attr_mask).
    clock, a, b, _ml = three_loops_on_one_clock()
    b.timer_new_ns(VIRTUAL, lambda: None, attributes=QEMU_TIMER_ATTR_EXTERNAL).mod_ns(100)
    b.timer_new_ns(VIRTUAL, lambda: None, attributes=QEMU_TIMER_ATTR_EXTERNAL).mod_ns(200)
    b.timer_new_ns(VIRTUAL, lambda: None).mod_ns(700)
    assert qemu_clock_deadline_ns_all(clock, VIRTUAL) == 100
    assert qemu_clock_deadline_ns_all(clock, VIRTUAL, QEMU_TIMER_ATTR_ALL) == 100
    assert qemu_clock_deadline_ns_all(clock, VIRTUAL, ~QEMU_TIMER_ATTR_EXTERNAL) == 700
    a.timer_new_ns(VIRTUAL, lambda: None, attributes=QEMU_TIMER_ATTR_EXTERNAL).mod_ns(50)
    assert qemu_clock_deadline_ns_all(clock, VIRTUAL, 0) == 700
    assert qemu_clock_deadline_ns_all(clock, VIRTUAL) == 50


def test_deadline_ns_all_of_a_disabled_clock_is_minus_1() -> None:
    clock, a, _b, _ml = three_loops_on_one_clock()
    a.timer_new_ns(VIRTUAL, lambda: None).mod_ns(5)
    clock.enable(VIRTUAL, False)
    assert qemu_clock_deadline_ns_all(clock, VIRTUAL) == -1


def test_deadline_ns_all_forgets_the_timer_lists_of_a_group_that_is_gone() -> None:
    # timerlist_free takes a list off its clock's list.
    clock = VirtualClock()
    group = TimerListGroup(clock)
    group.new_timer(REALTIME, 1, lambda: None, None).mod_ns(10)
    assert qemu_clock_deadline_ns_all(clock, REALTIME) == 10
    del group
    gc.collect()
    assert qemu_clock_deadline_ns_all(clock, REALTIME) == -1
    assert clock.timer_groups == []
