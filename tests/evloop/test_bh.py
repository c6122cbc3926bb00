"""Tests for evloop.bh: QEMU's bottom-half flag machine (``util/async.c``).

The rules under test are ``aio_bh_enqueue``, ``aio_bh_dequeue`` and
``aio_bh_poll``: PENDING/SCHEDULED/DELETED/ONESHOT/IDLE, the list moved aside
as a slice before it runs, newest-enqueued first within one batch. The last
test drives every interleaving hypothesis finds against a model written from
those QEMU functions.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evloop import (
    BH,
    SCALE_MS,
    AioContext,
    BHFlags,
    ClockType,
    DeadlockError,
    DispatchKind,
    FdTable,
    SimulationError,
    VirtualClock,
)
from evloop.loop.bh import callback_name
from tests.helpers import new_ctx

IDLE_TIMEOUT_NS = 10 * SCALE_MS


def logging_bh(ctx: AioContext, log: list[str], name: str) -> BH:
    return ctx.bh_new(lambda: log.append(name), name=name)


def freed_message(op: str, name: str, why: str) -> str:
    return (
        f"{op}() on BH {name!r} of context 'aio-context' after it was freed: {why}; "
        "keep the BH alive (do not delete it) while anything may still schedule it"
    )


DELETED_WHY = "it was deleted and its context has since freed it"
ONESHOT_WHY = "a oneshot BH is freed once it has run"


# -- scheduling and order ---------------------------------------------------------


def test_a_new_bh_is_not_scheduled() -> None:
    ctx = new_ctx()
    log: list[str] = []
    bh = logging_bh(ctx, log, "a")
    assert bh.flags == BHFlags(0)
    assert ctx.compute_timeout() == -1
    assert ctx.poll(False) is False
    assert log == []


def test_a_scheduled_bh_runs_once_in_the_next_poll_as_progress() -> None:
    ctx = new_ctx()
    log: list[str] = []
    bh = logging_bh(ctx, log, "a")
    bh.schedule()
    assert bh.flags == BHFlags.PENDING | BHFlags.SCHEDULED
    assert ctx.compute_timeout() == 0
    assert ctx.poll(False) is True
    assert log == ["a"]
    assert bh.flags == BHFlags(0)
    assert ctx.poll(False) is False
    assert log == ["a"]


def test_a_bh_scheduled_while_bhs_run_runs_in_the_next_poll_not_this_one() -> None:
    ctx = new_ctx()
    log: list[str] = []
    other = logging_bh(ctx, log, "other")

    def first_cb() -> None:
        log.append("first")
        if log.count("first") == 1:
            first.schedule()  # itself
            other.schedule()

    first = ctx.bh_new(first_cb, name="first")
    first.schedule()
    assert ctx.poll(False) is True
    assert log == ["first"]
    assert ctx.poll(False) is True
    assert log == ["first", "other", "first"]
    assert ctx.poll(False) is False


def test_within_one_batch_the_newest_enqueued_runs_first() -> None:
    ctx = new_ctx()
    log: list[str] = []
    for name in "abcd":
        logging_bh(ctx, log, name).schedule()
    assert ctx.poll(False) is True
    assert log == ["d", "c", "b", "a"]


def test_scheduling_a_bh_that_is_already_pending_neither_moves_nor_duplicates_it() -> None:
    ctx = new_ctx()
    log: list[str] = []
    a = logging_bh(ctx, log, "a")
    b = logging_bh(ctx, log, "b")
    a.schedule()
    b.schedule()
    a.schedule()  # still pending: only ORs in SCHEDULED, keeps its place
    a.schedule_idle()
    assert ctx.poll(False) is True
    assert log == ["b", "a"]
    assert ctx.poll(False) is False
    assert log == ["b", "a"]


def test_oneshot_bhs_run_once_in_enqueue_order_with_the_others() -> None:
    ctx = new_ctx()
    log: list[str] = []
    logging_bh(ctx, log, "a").schedule()
    ctx.bh_schedule_oneshot(lambda: log.append("once"))
    logging_bh(ctx, log, "b").schedule()
    assert ctx.poll(False) is True
    assert log == ["b", "once", "a"]
    assert ctx.poll(False) is False
    assert log == ["b", "once", "a"]


# -- cancel ---------------------------------------------------------------------


def test_cancel_keeps_the_bh_usable() -> None:
    ctx = new_ctx()
    log: list[str] = []
    bh = logging_bh(ctx, log, "a")
    bh.schedule()
    bh.cancel()
    assert ctx.poll(False) is False
    assert log == []
    bh.schedule()
    assert ctx.poll(False) is True
    assert log == ["a"]


def test_cancel_leaves_the_bh_on_the_list_to_be_dequeued_harmlessly() -> None:
    ctx = new_ctx()
    log: list[str] = []
    bh = logging_bh(ctx, log, "a")
    bh.schedule()
    bh.cancel()
    assert bh.flags == BHFlags.PENDING  # qemu_bh_cancel clears only BH_SCHEDULED
    assert ctx.compute_timeout() == -1  # a cancelled BH does not keep the loop awake
    assert ctx.poll(False) is False
    assert bh.flags == BHFlags(0)


def test_cancel_of_a_bh_that_is_not_scheduled_does_nothing() -> None:
    ctx = new_ctx()
    bh = ctx.bh_new(lambda: None)
    bh.cancel()
    assert bh.flags == BHFlags(0)
    assert ctx.poll(False) is False


# -- delete ---------------------------------------------------------------------


def test_a_bh_deleted_before_it_ran_never_runs_and_is_freed_by_the_next_poll() -> None:
    ctx = new_ctx()
    log: list[str] = []
    bh = logging_bh(ctx, log, "a")
    bh.schedule()
    bh.delete()
    assert bh.flags == BHFlags.PENDING | BHFlags.SCHEDULED | BHFlags.DELETED
    assert ctx.compute_timeout() == -1
    assert ctx.poll(False) is False
    assert log == []
    assert bh.flags == BHFlags.DELETED | BHFlags.FREED


def test_delete_from_inside_its_own_callback_is_legal() -> None:
    ctx = new_ctx()
    runs: list[BH] = []

    def cb() -> None:
        runs.append(bh)
        bh.delete()

    bh = ctx.bh_new(cb, name="self-deleting")
    bh.schedule()
    assert ctx.poll(False) is True
    assert runs == [bh]
    assert bh.flags == BHFlags.PENDING | BHFlags.DELETED
    assert ctx.poll(False) is False  # frees it, runs nothing
    assert bh.flags == BHFlags.DELETED | BHFlags.FREED
    assert runs == [bh]


def test_scheduling_a_deleted_bh_before_it_is_freed_silently_never_runs_it() -> None:
    ctx = new_ctx()
    log: list[str] = []
    bh = logging_bh(ctx, log, "a")
    bh.delete()
    bh.schedule()
    assert ctx.compute_timeout() == -1
    assert ctx.poll(False) is False
    assert log == []


# -- use after free -------------------------------------------------------------


@pytest.mark.parametrize("op", ["schedule", "schedule_idle", "cancel", "delete"])
def test_use_after_free_raises_simulation_error_saying_how_to_fix_it(op: str) -> None:
    ctx = new_ctx()
    bh = ctx.bh_new(lambda: None, name="gone")
    bh.delete()
    ctx.poll(False)
    with pytest.raises(SimulationError, match=re.escape(freed_message(op, "gone", DELETED_WHY))):
        getattr(bh, op)()
    assert bh.flags == BHFlags.DELETED | BHFlags.FREED


def test_use_after_free_names_an_unnamed_bh_by_its_callback() -> None:
    ctx = new_ctx()

    def on_done() -> None:
        pass

    bh = ctx.bh_new(on_done)
    bh.delete()
    ctx.poll(False)
    name = "test_use_after_free_names_an_unnamed_bh_by_its_callback.<locals>.on_done"
    with pytest.raises(SimulationError) as info:
        bh.schedule()
    assert str(info.value) == freed_message("schedule", name, DELETED_WHY)


def test_a_oneshot_bh_used_after_it_ran_raises_saying_oneshots_are_freed() -> None:
    ctx = new_ctx()
    seen: list[BH] = []

    def observer(kind: int, ctx: Any, what: Any) -> None:
        if kind == DispatchKind.BH:
            seen.append(what)

    ctx.set_observer(observer)
    ctx.bh_schedule_oneshot(lambda: None, name="once")
    assert ctx.poll(False) is True
    [bh] = seen
    assert bh.flags == BHFlags.ONESHOT | BHFlags.FREED
    with pytest.raises(SimulationError) as info:
        bh.schedule()
    assert str(info.value) == freed_message("schedule", "once", ONESHOT_WHY)


# -- idle BHs -------------------------------------------------------------------


def test_an_idle_bh_alone_gives_a_10_ms_timeout() -> None:
    ctx = new_ctx()
    bh = ctx.bh_new(lambda: None)
    bh.schedule_idle()
    assert bh.flags == BHFlags.PENDING | BHFlags.SCHEDULED | BHFlags.IDLE
    assert ctx.compute_timeout() == 10_000_000


def test_an_idle_bh_beside_a_scheduled_one_gives_no_timeout() -> None:
    ctx = new_ctx()
    ctx.bh_new(lambda: None).schedule_idle()
    ctx.bh_new(lambda: None).schedule()
    assert ctx.compute_timeout() == 0


def test_an_idle_bh_caps_a_later_timer_deadline_at_10_ms() -> None:
    ctx = new_ctx()
    ctx.timer_new_ns(ClockType.REALTIME, lambda: None).mod_ns(50 * SCALE_MS)
    assert ctx.compute_timeout() == 50 * SCALE_MS
    ctx.bh_new(lambda: None).schedule_idle()
    assert ctx.compute_timeout() == IDLE_TIMEOUT_NS


def test_an_idle_bh_runs_but_is_never_progress() -> None:
    ctx = new_ctx()
    log: list[str] = []
    bh = logging_bh(ctx, log, "idle")
    bh.schedule_idle()
    assert ctx.poll(False) is False
    assert log == ["idle"]
    assert bh.flags == BHFlags(0)  # dequeue clears IDLE too


def test_a_plain_schedule_after_an_idle_one_keeps_the_bh_idle() -> None:
    # aio_bh_enqueue only ORs flags in: IDLE stays until the BH is dequeued.
    ctx = new_ctx()
    bh = ctx.bh_new(lambda: None)
    bh.schedule_idle()
    bh.schedule()
    assert bh.flags == BHFlags.PENDING | BHFlags.SCHEDULED | BHFlags.IDLE
    assert ctx.poll(False) is False


# -- exceptions -----------------------------------------------------------------


def test_a_bh_that_raises_stops_poll_and_the_rest_of_its_batch_runs_next_poll() -> None:
    ctx = new_ctx()
    log: list[str] = []
    boom = RuntimeError("boom")

    def raising() -> None:
        log.append("b")
        raise boom

    logging_bh(ctx, log, "a").schedule()
    ctx.bh_new(raising, name="b").schedule()
    logging_bh(ctx, log, "c").schedule()
    with pytest.raises(RuntimeError) as info:
        ctx.poll(False)
    assert info.value is boom
    assert log == ["c", "b"]
    assert ctx.compute_timeout() == 0  # "a" is still waiting
    logging_bh(ctx, log, "d").schedule()
    assert ctx.poll(False) is True
    # The interrupted batch finishes first, then the BHs enqueued since.
    assert log == ["c", "b", "a", "d"]
    assert ctx.poll(False) is False


def test_a_bh_that_raises_does_not_stop_later_phases_for_good() -> None:
    ctx = new_ctx()
    log: list[str] = []
    boom = ValueError("bh failed")

    def raising() -> None:
        raise boom

    ctx.bh_new(raising).schedule()
    ctx.timer_new_ns(ClockType.REALTIME, lambda: log.append("timer")).mod_ns(0)
    with pytest.raises(ValueError) as info:
        ctx.poll(False)
    assert info.value is boom
    assert log == []
    assert ctx.poll(False) is True
    assert log == ["timer"]


# -- naming ---------------------------------------------------------------------


def test_repr_names_the_bh_and_shows_its_flags() -> None:
    ctx = new_ctx()
    bh = ctx.bh_new(lambda: None, name="tick")
    bh.schedule()
    assert repr(bh) == f"<BH 'tick' flags={BHFlags.PENDING | BHFlags.SCHEDULED!r}>"


def module_level_callback() -> None:
    pass


def test_callback_name_is_the_qualified_name_unwrapping_partials() -> None:
    class Device:
        def kick(self, n: int) -> None:
            pass

    assert callback_name(module_level_callback) == "module_level_callback"
    assert callback_name(functools.partial(module_level_callback)) == "module_level_callback"
    qual = "test_callback_name_is_the_qualified_name_unwrapping_partials.<locals>.Device.kick"
    assert callback_name(functools.partial(Device().kick, 3)) == qual
    assert callback_name(Device().kick) == qual


def test_callback_name_of_a_callable_object_is_its_class() -> None:
    class Kicker:
        def __call__(self) -> None:
            pass

    assert callback_name(Kicker()) == (
        "test_callback_name_of_a_callable_object_is_its_class.<locals>.Kicker"
    )


# -- the flag machine, against a model ------------------------------------------
#
# The model is written from QEMU's util/async.c, not from evloop: bh_list is a
# head-first list (QSLIST_INSERT_HEAD_ATOMIC), aio_bh_poll moves it aside as a
# slice and dequeues from its head, aio_bh_dequeue clears PENDING, SCHEDULED
# and IDLE and reports the old flags. FREED is evloop's marker for "g_free was
# called", and any later use of the BH must raise SimulationError.
#
# It is an *online* model: when the real loop calls BH i's callback, the
# callback asks the model which BH must run next and checks it is i, then
# performs its scripted actions on both the model and the real BHs. So a BH
# run too early, too late, twice or after it was freed fails at that call.

PENDING, SCHEDULED, DELETED, ONESHOT, IDLE, FREED = 1, 2, 4, 8, 16, 32
N_BHS = 3
OPS = ("schedule", "schedule_idle", "cancel", "delete")


class UseAfterFree(Exception):
    pass


class BHModel:
    def __init__(self, n: int) -> None:
        self.flags = [0] * n
        self.bh_list: list[int] = []  # head first
        self.slice: list[int] = []
        self.notified = False
        self.progress = False

    def _enqueue(self, i: int, new_flags: int) -> None:
        old = self.flags[i]
        self.flags[i] = old | PENDING | new_flags
        if not old & PENDING:
            self.bh_list.insert(0, i)
        self.notified = True  # aio_bh_enqueue ends with aio_notify

    def apply(self, op: str, i: int) -> None:
        if self.flags[i] & FREED:
            raise UseAfterFree
        if op == "schedule":
            self._enqueue(i, SCHEDULED)
        elif op == "schedule_idle":
            self._enqueue(i, SCHEDULED | IDLE)
        elif op == "delete":
            self._enqueue(i, DELETED)
        else:
            self.flags[i] &= ~SCHEDULED

    def timeout(self) -> int:
        """aio_compute_timeout with no timers."""
        timeout = -1
        for i in self.bh_list + self.slice:
            f = self.flags[i]
            if f & (SCHEDULED | DELETED) == SCHEDULED:
                if not f & IDLE:
                    return 0
                timeout = IDLE_TIMEOUT_NS
        return timeout

    def begin_poll(self) -> None:
        """After the wait: aio_notify_accept, then QSLIST_MOVE_ATOMIC."""
        self.notified = False
        self.progress = False
        self.slice = self.bh_list
        self.bh_list = []

    def next_to_run(self) -> int | None:
        while self.slice:
            i = self.slice.pop(0)
            f = self.flags[i]
            self.flags[i] = f & ~(PENDING | SCHEDULED | IDLE)
            if f & (DELETED | ONESHOT):
                self.flags[i] |= FREED
            if f & (SCHEDULED | DELETED) == SCHEDULED:
                if not f & IDLE:
                    self.progress = True
                return i
        return None


Action = tuple[str, int]
Step = tuple[str, int] | tuple[str, bool]

actions = st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, N_BHS - 1)), max_size=2)
steps: st.SearchStrategy[Step] = st.one_of(
    st.tuples(
        st.sampled_from(("schedule", "schedule", "schedule_idle", "cancel", "delete")),
        st.integers(0, N_BHS - 1),
    ),
    st.tuples(st.just("poll"), st.booleans()),
)


class BHHarness:
    """The real context and BHs, run in lockstep with a :class:`BHModel`."""

    def __init__(self, scripts: list[list[Action]]) -> None:
        self.clock = VirtualClock()
        self.ctx = AioContext(self.clock, FdTable())
        self.model = BHModel(N_BHS)
        self.scripts = scripts
        self.ran: list[int] = []
        self.bhs = [self.ctx.bh_new(self._callback(i), name=f"bh{i}") for i in range(N_BHS)]

    def _callback(self, i: int) -> Callable[[], None]:
        def cb() -> None:
            expected = self.model.next_to_run()
            assert expected == i, f"bh{i} ran where the model expected {expected}"
            self.ran.append(i)
            for op, target in self.scripts[i]:
                self.do(op, target)

        return cb

    def do(self, op: str, i: int) -> None:
        bh = self.bhs[i]
        try:
            self.model.apply(op, i)
        except UseAfterFree:
            with pytest.raises(SimulationError) as info:
                getattr(bh, op)()
            assert str(info.value) == freed_message(op, f"bh{i}", DELETED_WHY)
            return
        getattr(bh, op)()

    def poll(self, blocking: bool) -> None:
        model = self.model
        before = self.clock.get_ns(ClockType.REALTIME)
        timeout = model.timeout() if blocking else 0
        if timeout and model.notified:
            timeout = 0  # a pending aio_notify() cancels the wait
        if timeout < 0:
            with pytest.raises(DeadlockError):
                self.ctx.poll(True)
            assert self.clock.get_ns(ClockType.REALTIME) == before
            return
        model.begin_poll()
        self.ran = []
        progress = self.ctx.poll(blocking)
        assert model.next_to_run() is None, "a BH the model expected to run did not"
        assert progress is model.progress
        assert self.clock.get_ns(ClockType.REALTIME) == before + timeout

    def check_invariants(self) -> None:
        model = self.model
        assert [int(bh.flags) for bh in self.bhs] == model.flags
        assert self.ctx.compute_timeout() == model.timeout()
        # Each BH is on the list at most once, at the place QEMU's list has it.
        # (evloop appends and pops from the end: its head is the last item.)
        index = {id(bh): i for i, bh in enumerate(self.bhs)}
        on_list = [index[id(bh)] for bh in reversed(self.ctx._bh_list)]
        assert len(set(on_list)) == len(on_list)
        assert on_list == model.bh_list
        assert not any(self.ctx._bh_slices), "a slice outlived its poll"


@settings(max_examples=300, deadline=None)
@given(st.lists(actions, min_size=N_BHS, max_size=N_BHS), st.lists(steps, max_size=40))
def test_any_interleaving_keeps_the_bh_flag_machine_invariants(
    scripts: list[list[Action]], program: list[Step]
) -> None:
    h = BHHarness(scripts)
    for step in program:
        if step[0] == "poll":
            h.poll(bool(step[1]))
        else:
            h.do(str(step[0]), int(step[1]))
        h.check_invariants()
    # Drain: whatever is left runs (or is freed) by model rule, then the loop is quiet.
    for _ in range(N_BHS * 4):
        if h.model.timeout() != 0 and not h.model.bh_list:
            break
        h.poll(False)
        h.check_invariants()
