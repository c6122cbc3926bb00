"""Tests for evloop.scheduler: threads of control, the turn, warps, deadlocks.

Threads of control are greenlets on one OS thread (the default) or real OS
threads (``threads="os"``); either way the scheduler lets exactly one of them
run simulation code at a time, and most tests here run on both backends.
These tests drive it through the public surface of
:class:`~evloop.Simulation` (``thread``, ``sleep``, ``event``, ``yield_now``,
``join``) and check the rules of the module docstring: FIFO
turns, time moving only when nobody can run, a deadlock named instead of a
hang, a failing thread stopping the run, and no OS thread outliving ``close``.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evloop import (
    ChoiceKind,
    ClockType,
    DeadlockError,
    EvloopError,
    Simulation,
    SimulationError,
    ThreadOfControl,
    ThreadState,
)
from evloop.machine.scheduler import Backend


@pytest.fixture(params=["greenlet", "os"])
def threads(request: pytest.FixtureRequest) -> Backend:
    backend: Backend = request.param
    return backend


class ReplayChooser:
    """Answers from a script (modulo the number of options), then FIFO."""

    def __init__(self, answers: Sequence[int]) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[ChoiceKind, tuple[str, ...]]] = []

    def choose(self, kind: ChoiceKind, options: Sequence[str]) -> int:
        self.calls.append((kind, tuple(options)))
        return self.answers.pop(0) % len(options) if self.answers else 0


class Failure(Exception):
    pass


# -- threads of control take turns, on one OS thread or on their own -----------------------


def _idents(threads: Backend) -> dict[str, tuple[int, str]]:
    with Simulation(threads=threads) as sim:
        seen: dict[str, tuple[int, str]] = {}

        def record(name: str) -> None:
            seen[name] = (threading.get_ident(), threading.current_thread().name)

        sim.thread("a", lambda: record("a"))
        sim.thread("b", lambda: record("b"))
        sim.run()
    return seen


def test_with_os_threads_each_thread_of_control_is_its_own_os_thread() -> None:
    seen = _idents("os")
    assert seen["a"][1] == "evloop:a"
    assert seen["b"][1] == "evloop:b"
    assert len({seen["a"][0], seen["b"][0], threading.get_ident()}) == 3


def test_greenlets_are_the_default_and_run_on_the_simulations_os_thread() -> None:
    seen = _idents("greenlet")
    me = (threading.get_ident(), threading.current_thread().name)
    assert seen == {"a": me, "b": me}
    with Simulation() as sim:
        assert sim._sched.backend == "greenlet"


def test_an_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^threads must be 'greenlet' or 'os', not 'fibers'$"):
        Simulation(threads="fibers")  # type: ignore[arg-type]


def test_only_one_thread_of_control_runs_at_a_time(threads: Backend) -> None:
    inside = 0
    overlaps = 0
    with Simulation(threads=threads) as sim:

        def busy() -> None:
            nonlocal inside, overlaps
            for _ in range(50):
                inside += 1
                if inside > 1:
                    overlaps += 1
                time.sleep(0)  # invite the OS to run another thread here
                inside -= 1
                sim.yield_now()

        for i in range(4):
            sim.thread(f"t{i}", busy)
        sim.run()
    assert overlaps == 0


def test_the_main_thread_is_thread_of_control_0(threads: Backend) -> None:
    with Simulation(threads=threads) as sim:
        main = sim.threads[0]
        assert main.name == "main"
        assert main.index == 0
        assert sim.current_thread is main
        assert main.state is ThreadState.RUNNING
        assert repr(main) == "<ThreadOfControl 'main' #0 running>"


def test_current_thread_names_the_thread_running_the_code(threads: Backend) -> None:
    with Simulation(threads=threads) as sim:
        names: list[str] = []
        sim.thread("vcpu0", lambda: names.append(sim.current_thread.name))
        sim.run()
        names.append(sim.current_thread.name)
    assert names == ["vcpu0", "main"]


def test_a_thread_goes_runnable_blocked_done(threads: Backend) -> None:
    with Simulation(threads=threads) as sim:
        t = sim.thread("w", lambda: sim.sleep(100))
        assert isinstance(t, ThreadOfControl)
        assert t.state is ThreadState.RUNNABLE
        assert t.is_alive() and not t.done
        assert repr(t) == "<ThreadOfControl 'w' #1 runnable>"
        sim.run(until_ns=50)
        assert t.state is ThreadState.BLOCKED
        assert t.waiting_for() == "sleep(100) (until t=100)"
        assert repr(t) == "<ThreadOfControl 'w' #1 sleep(100) (until t=100)>"
        sim.run()
        assert t.state is ThreadState.DONE
        assert t.done and not t.is_alive()
        assert t.waiting_for() == "done"


def test_a_thread_can_start_threads(threads: Backend) -> None:
    with Simulation(threads=threads) as sim:
        order: list[str] = []

        def parent() -> None:
            order.append("parent")
            child = sim.thread("child", lambda: order.append("child"))
            child.join()
            order.append("parent joined")

        sim.thread("parent", parent)
        sim.run()
    assert order == ["parent", "child", "parent joined"]


# -- FIFO turns ----------------------------------------------------------------------------


def test_threads_first_run_in_the_order_they_were_started(threads: Backend) -> None:
    with Simulation(threads=threads) as sim:
        order: list[str] = []
        for name in ("c", "a", "b"):
            sim.thread(name, lambda name=name: order.append(name))
        sim.run()
    assert order == ["c", "a", "b"]


def test_yield_now_hands_the_turn_to_the_longest_waiting_thread(threads: Backend) -> None:
    with Simulation(threads=threads) as sim:
        order: list[str] = []

        def worker(name: str) -> None:
            for i in range(3):
                order.append(f"{name}{i}")
                sim.yield_now()

        sim.thread("a", lambda: worker("a"))
        sim.thread("b", lambda: worker("b"))
        sim.run()
        assert sim.now_ns == 0
    assert order == ["a0", "b0", "a1", "b1", "a2", "b2"]


def test_yield_now_alone_returns_at_once(threads: Backend) -> None:
    with Simulation(threads=threads) as sim:
        sim.yield_now()
        assert sim.now_ns == 0
        assert sim.steps == 0


def test_sleep_0_is_a_preemption_point(threads: Backend) -> None:
    with Simulation(threads=threads) as sim:
        order: list[str] = []

        def a() -> None:
            order.append("a0")
            sim.sleep(0)
            order.append("a1")

        sim.thread("a", a)
        sim.thread("b", lambda: order.append("b"))
        sim.run()
    assert order == ["a0", "b", "a1"]


# -- time moves only when nobody can run ---------------------------------------------------


def test_the_clock_warps_to_the_soonest_wake_when_everyone_is_blocked(threads: Backend) -> None:
    with Simulation(threads=threads) as sim:
        woke: list[tuple[str, int, int]] = []

        def sleeper(name: str, ns: int) -> None:
            sim.sleep(ns)
            woke.append((name, sim.now_ns, sim.clock.get_ns(ClockType.VIRTUAL)))

        sim.thread("slow", lambda: sleeper("slow", 300))
        sim.thread("fast", lambda: sleeper("fast", 100))
        result = sim.run()
    assert woke == [("fast", 100, 100), ("slow", 300, 300)]
    assert result.time_ns == 300


def test_simultaneous_wakes_run_in_the_order_the_sleeps_began(threads: Backend) -> None:
    with Simulation(threads=threads) as sim:
        woke: list[str] = []

        def sleeper(name: str, ns: int) -> None:
            sim.sleep(ns)
            woke.append(name)

        sim.thread("a", lambda: sleeper("a", 100))
        sim.thread("b", lambda: sleeper("b", 50))
        sim.thread("c", lambda: (sim.sleep(50), sleeper("c", 50)))
        sim.run()
    assert woke == ["b", "a", "c"]


def test_time_does_not_move_while_a_thread_can_run(threads: Backend) -> None:
    with Simulation(threads=threads) as sim:
        times: list[int] = []

        def spinner() -> None:
            for _ in range(10):
                sim.yield_now()
                times.append(sim.now_ns)

        sim.thread("spin", spinner)
        sim.thread("sleeper", lambda: sim.sleep(5))
        sim.run()
    assert times == [0] * 10


def test_the_main_thread_can_sleep_outside_run_and_others_run_meanwhile(threads: Backend) -> None:
    with Simulation(threads=threads) as sim:
        seen: list[int] = []

        def w() -> None:
            sim.sleep(30)
            seen.append(sim.now_ns)

        sim.thread("w", w)
        sim.sleep(100)
        assert sim.now_ns == 100
        assert seen == [30]


def test_a_lone_main_thread_sleeping_just_advances_the_clock(threads: Backend) -> None:
    with Simulation(threads=threads) as sim:
        sim.sleep(250)
        assert sim.now_ns == 250
        assert sim.clock.get_ns(ClockType.VIRTUAL) == 250


def test_a_negative_sleep_is_refused(threads: Backend) -> None:
    with (
        Simulation(threads=threads) as sim,
        pytest.raises(ValueError, match=r"^cannot sleep for a negative time \(-1 ns\)$"),
    ):
        sim.sleep(-1)


# -- events and joins ----------------------------------------------------------------------


def test_an_event_wakes_its_waiter_at_the_time_it_is_set(threads: Backend) -> None:
    with Simulation(threads=threads) as sim:
        ev = sim.event("ready")
        got: list[tuple[bool, int]] = []

        def setter() -> None:
            sim.sleep(70)
            ev.set()

        sim.thread("waiter", lambda: got.append((ev.wait(), sim.now_ns)))
        sim.thread("setter", setter)
        sim.run()
    assert got == [(True, 70)]


def test_an_event_wait_times_out(threads: Backend) -> None:
    with Simulation(threads=threads) as sim:
        ev = sim.event("never")
        got: list[tuple[bool, int]] = []
        sim.thread("waiter", lambda: got.append((ev.wait(timeout_ns=50), sim.now_ns)))
        sim.run()
    assert got == [(False, 50)]


def test_an_event_set_beforehand_does_not_block(threads: Backend) -> None:
    with Simulation(threads=threads) as sim:
        ev = sim.event("e")
        ev.set()
        assert ev.wait() is True
        assert ev.wait(timeout_ns=0) is True
        assert sim.steps == 0


def test_event_set_clear_is_set_and_repr(threads: Backend) -> None:
    with Simulation(threads=threads) as sim:
        ev = sim.event("flag")
        assert ev.name == "flag"
        assert not ev.is_set()
        assert repr(ev) == "<SimEvent 'flag' clear>"
        ev.set()
        assert ev.is_set()
        assert repr(ev) == "<SimEvent 'flag' set>"
        ev.clear()
        assert not ev.is_set()


def test_an_event_set_and_cleared_before_the_waiter_runs_does_not_wake_it(threads: Backend) -> None:
    with Simulation(threads=threads) as sim:
        ev = sim.event("blink")
        got: list[tuple[bool, int]] = []

        def blinker() -> None:
            ev.set()
            ev.clear()

        sim.thread("waiter", lambda: got.append((ev.wait(timeout_ns=40), sim.now_ns)))
        sim.thread("blinker", blinker)
        sim.run()
    assert got == [(False, 40)]


def test_join_waits_for_a_thread_to_end(threads: Backend) -> None:
    with Simulation(threads=threads) as sim:
        t = sim.thread("w", lambda: sim.sleep(80))
        assert t.join() is True
        assert sim.now_ns == 80
        assert t.done


def test_join_with_a_timeout_returns_false_if_the_thread_is_still_alive(threads: Backend) -> None:
    with Simulation(threads=threads) as sim:
        t = sim.thread("w", lambda: sim.sleep(80))
        assert t.join(timeout_ns=30) is False
        assert sim.now_ns == 30
        assert t.join() is True
        assert sim.now_ns == 80


def test_join_of_a_finished_thread_returns_at_once(threads: Backend) -> None:
    with Simulation(threads=threads) as sim:
        t = sim.thread("w", lambda: None)
        sim.run()
        steps = sim.steps
        assert t.join() is True
        assert sim.steps == steps


def test_a_thread_cannot_join_itself(threads: Backend) -> None:
    with Simulation(threads=threads) as sim:
        errors: list[BaseException] = []
        me: list[ThreadOfControl] = []

        def w() -> None:
            try:
                me[0].join()
            except SimulationError as exc:
                errors.append(exc)

        me.append(sim.thread("w", w))
        sim.run()
    assert [str(e) for e in errors] == ["thread of control 'w' cannot join itself"]


# -- deadlock is named, never a hang -------------------------------------------------------


def test_a_thread_waiting_on_an_event_no_one_sets_is_a_deadlock(threads: Backend) -> None:
    with Simulation(threads=threads) as sim:
        ev = sim.event("never")
        sim.thread("waiter", lambda: ev.wait())
        with pytest.raises(DeadlockError) as info:
            sim.run()
    assert info.value.blocked == (("main", "main_loop_wait"), ("waiter", "event 'never'"))
    assert str(info.value) == (
        "deadlock at t=0 ns: every thread of control is blocked, and no timer, timeout or "
        "external input is pending:\n"
        "  main: blocked in main_loop_wait\n"
        "  waiter: blocked in event 'never'"
    )
    assert isinstance(info.value, EvloopError)


def test_a_deadlock_is_found_after_time_has_passed(threads: Backend) -> None:
    with Simulation(threads=threads) as sim:
        ev = sim.event("go")

        def a() -> None:
            sim.sleep(500)
            ev.wait()

        t = sim.thread("a", a)
        sim.thread("b", lambda: t.join())
        with pytest.raises(DeadlockError) as info:
            sim.run()
    assert info.value.blocked == (
        ("main", "main_loop_wait"),
        ("a", "event 'go'"),
        ("b", "join('a')"),
    )
    assert str(info.value).startswith("deadlock at t=500 ns: ")


def test_the_main_thread_waiting_outside_run_on_an_event_is_a_deadlock(threads: Backend) -> None:
    with Simulation(threads=threads) as sim:
        ev = sim.event("e")
        with pytest.raises(DeadlockError) as info:
            ev.wait()
    assert info.value.blocked == (("main", "event 'e'"),)
    assert str(info.value) == (
        "deadlock at t=0 ns: every thread of control is blocked, and no timer, timeout or "
        "external input is pending:\n"
        "  main: blocked in event 'e'"
    )


def test_idle_loops_are_listed_in_a_deadlock_but_do_not_cause_one(threads: Backend) -> None:
    with Simulation(threads=threads) as sim:
        sim.iothread("io")
        sim.main_loop.aio_context.thread_pool_submit(lambda: None, lambda _: None)
        ev = sim.event("never")
        sim.thread("vcpu", lambda: ev.wait())
        with pytest.raises(DeadlockError) as info:
            sim.run()
    assert info.value.blocked == (
        ("main", "main_loop_wait"),
        ("io", "poll of AioContext 'io'"),
        ("aio-context/worker-0", "thread pool of 'aio-context': waiting for work"),
        ("vcpu", "event 'never'"),
    )


def test_idle_loops_alone_are_a_normal_end(threads: Backend) -> None:
    with Simulation(threads=threads) as sim:
        sim.iothread("io")
        sim.main_loop.aio_context.thread_pool_submit(lambda: None, lambda _: None)
        result = sim.run()
    assert result.reason.value == "idle"


def test_a_wait_with_a_timeout_is_never_a_deadlock(threads: Backend) -> None:
    with Simulation(threads=threads) as sim:
        ev = sim.event("never")
        got: list[bool] = []
        sim.thread("w", lambda: got.append(ev.wait(timeout_ns=10**9)))
        result = sim.run()
    assert got == [False]
    assert result.time_ns == 10**9


def test_the_simulation_runs_on_after_a_deadlock_is_resolved(threads: Backend) -> None:
    with Simulation(threads=threads) as sim:
        ev = sim.event("late")
        got: list[int] = []
        sim.thread("w", lambda: (ev.wait(), got.append(sim.now_ns)))
        with pytest.raises(DeadlockError):
            sim.run()
        ev.set()
        sim.run()
    assert got == [0]


# -- a failing thread stops the run --------------------------------------------------------


def test_an_exception_in_a_thread_is_reraised_from_run_with_a_note(threads: Backend) -> None:
    error = Failure("boom")

    def bad() -> None:
        sim.sleep(10)
        raise error

    with Simulation(threads=threads) as sim:
        sim.thread("bad", bad)
        with pytest.raises(Failure) as info:
            sim.run()
        assert sim.now_ns == 10
    assert info.value is error
    assert info.value.__notes__ == ["(raised in thread of control 'bad')"]


def test_a_failure_stops_the_run_before_later_events(threads: Backend) -> None:
    with Simulation(threads=threads) as sim:
        later: list[int] = []
        sim.thread("bad", lambda: (sim.sleep(10), (_ for _ in ()).throw(Failure("x"))))
        sim.thread("later", lambda: (sim.sleep(20), later.append(sim.now_ns)))
        with pytest.raises(Failure):
            sim.run()
        assert later == []
        assert sim.now_ns == 10
        # The rest of the simulation is intact and runs on.
        sim.run()
        assert later == [20]


def test_an_exception_in_a_thread_is_reraised_from_a_join(threads: Backend) -> None:
    error = Failure("in worker")
    with Simulation(threads=threads) as sim:
        t = sim.thread("w", lambda: (_ for _ in ()).throw(error))
        with pytest.raises(Failure) as info:
            t.join()
    assert info.value is error
    assert info.value.__notes__ == ["(raised in thread of control 'w')"]


def test_a_thread_that_catches_its_own_exception_does_not_stop_the_run(threads: Backend) -> None:
    with Simulation(threads=threads) as sim:
        caught: list[str] = []

        def w() -> None:
            try:
                raise Failure("handled")
            except Failure as exc:
                caught.append(str(exc))

        sim.thread("w", w)
        assert sim.run().reason.value == "idle"
    assert caught == ["handled"]


# -- misuse --------------------------------------------------------------------------------


STRANGER = (
    "a blocking evloop call came from OS thread 'stranger', but the turn belongs to thread of "
    "control 'main': start threads with sim.thread() so the simulation knows who can run"
)


def _from_a_stranger(fn: object) -> BaseException | None:
    caught: list[BaseException] = []

    def body() -> None:
        try:
            fn()  # type: ignore[operator]
        except BaseException as exc:
            caught.append(exc)

    t = threading.Thread(target=body, name="stranger")
    t.start()
    t.join()
    return caught[0] if caught else None


def test_a_blocking_call_from_an_unknown_os_thread_is_refused(threads: Backend) -> None:
    with Simulation(threads=threads) as sim:
        ev = sim.event("e")
        worker = sim.thread("w", lambda: None)
        r, _ = sim.fds.pipe()
        calls = [
            lambda: sim.sleep(10),
            lambda: ev.wait(),
            lambda: ev.wait(timeout_ns=5),
            lambda: worker.join(),
            lambda: sim.fds.poll([(r, 1)], -1),
            lambda: sim.main_loop.aio_context.poll(True),
        ]
        for call in calls:
            exc = _from_a_stranger(call)
            assert isinstance(exc, SimulationError)
            assert str(exc) == STRANGER
        assert sim.now_ns == 0


def test_a_yield_from_an_unknown_os_thread_is_refused(threads: Backend) -> None:
    with Simulation(threads=threads) as sim:
        sim.thread("w", lambda: None)
        exc = _from_a_stranger(sim.yield_now)
        assert isinstance(exc, SimulationError)
        assert str(exc) == STRANGER


def test_thread_names_must_be_unique(threads: Backend) -> None:
    with Simulation(threads=threads) as sim:
        sim.thread("vcpu0", lambda: None)
        with pytest.raises(
            ValueError,
            match=r"^a thread of control named 'vcpu0' already exists: names identify threads "
            r"in traces, so they must be unique$",
        ):
            sim.thread("vcpu0", lambda: None)
        with pytest.raises(ValueError, match=r"^a thread of control named 'main' already exists"):
            sim.thread("main", lambda: None)
        with pytest.raises(ValueError, match=r"^a thread of control named 'vcpu0' already exists"):
            sim.iothread("vcpu0")
        assert [t.name for t in sim.threads] == ["main", "vcpu0"]


def test_a_thread_needs_a_name(threads: Backend) -> None:
    with (
        Simulation(threads=threads) as sim,
        pytest.raises(ValueError, match=r"^a thread of control needs a non-empty name, not ''$"),
    ):
        sim.thread("", lambda: None)


# -- close unwinds everything --------------------------------------------------------------


def test_close_unwinds_every_waiting_thread(threads: Backend) -> None:
    before = set(threading.enumerate())
    sim = Simulation(threads=threads)
    try:
        ev = sim.event("never")
        sim.thread("on-event", lambda: ev.wait())
        sim.thread("sleeping", lambda: sim.sleep(10**12))
        sim.iothread("io")
        sim.main_loop.aio_context.thread_pool_submit(lambda: 1, lambda _: None)
        sim.run(until_ns=5)
        sim.thread("never-started", lambda: None)
        alive = [t for t in threading.enumerate() if t not in before]
        assert len(alive) == (5 if threads == "os" else 0)
        if threads == "greenlet":  # four parked greenlets, one never started
            assert [bool(t._glet) for t in sim.threads[1:]] == [True] * 4 + [False]
    finally:
        sim.close()
    assert [t.state for t in sim.threads[1:]] == [ThreadState.DONE] * 5
    if threads == "greenlet":
        assert [bool(t._glet) for t in sim.threads[1:]] == [False] * 5
    assert [t for t in threading.enumerate() if t not in before] == []


def test_close_is_idempotent_and_the_context_manager_closes(threads: Backend) -> None:
    before = set(threading.enumerate())
    with Simulation(threads=threads) as sim:
        sim.thread("w", lambda: sim.event("never").wait())
        sim.run(until_ns=1)
    sim.close()
    assert [t for t in threading.enumerate() if t not in before] == []


def test_close_after_a_deadlock_leaks_nothing(threads: Backend) -> None:
    with Simulation(threads=threads) as sim:
        sim.thread("w", lambda: sim.event("never").wait())
        with pytest.raises(DeadlockError):
            sim.run()


def test_close_unwinds_a_thread_whose_finally_blocks_again(threads: Backend) -> None:
    with Simulation(threads=threads) as sim:

        def w() -> None:
            try:
                sim.event("never").wait()
            finally:
                sim.sleep(5)

        sim.thread("w", w)
        sim.run(until_ns=1)


def test_a_closed_simulation_refuses_new_threads_and_runs(threads: Backend) -> None:
    sim = Simulation(threads=threads)
    sim.close()
    with pytest.raises(SimulationError, match=r"^this simulation is closed$"):
        sim.thread("w", lambda: None)
    with pytest.raises(SimulationError, match=r"^this simulation is closed$"):
        sim.iothread("io")
    with pytest.raises(SimulationError, match=r"^this simulation is closed$"):
        sim.run()


# -- properties ----------------------------------------------------------------------------


sleep_programs = st.lists(
    st.lists(st.integers(min_value=0, max_value=50), max_size=6), min_size=1, max_size=4
)


def _run_program(
    program: list[list[int]], answers: Sequence[int] = ()
) -> tuple[dict[str, list[int]], int, tuple[tuple[object, ...], ...]]:
    chooser = ReplayChooser(answers)
    seen: dict[str, list[int]] = {}
    with Simulation(chooser=chooser, log=True) as sim:

        def worker(name: str, sleeps: list[int]) -> None:
            times = seen.setdefault(name, [])
            for ns in sleeps:
                sim.sleep(ns)
                times.append(sim.now_ns)

        for i, sleeps in enumerate(program):
            sim.thread(f"t{i}", lambda i=i, sleeps=sleeps: worker(f"t{i}", sleeps))
        result = sim.run()
        assert sim.log is not None
        log = tuple(e.as_tuple() for e in sim.log)
    for kind, options in chooser.calls:
        assert kind is ChoiceKind.THREAD
        assert len(options) >= 2
    return seen, result.time_ns, log


def _prefix_sums(xs: list[int]) -> list[int]:
    out, total = [], 0
    for x in xs:
        total += x
        out.append(total)
    return out


@settings(max_examples=30, deadline=None)
@given(sleep_programs)
def test_every_sleep_wakes_exactly_on_time(program: list[list[int]]) -> None:
    seen, end, _ = _run_program(program)
    for i, sleeps in enumerate(program):
        assert seen[f"t{i}"] == _prefix_sums(sleeps)
    assert end == max((sum(s) for s in program), default=0)


@settings(max_examples=30, deadline=None)
@given(sleep_programs, st.lists(st.integers(min_value=0, max_value=10), max_size=30))
def test_any_chooser_answers_keep_sleeps_on_time(
    program: list[list[int]], answers: list[int]
) -> None:
    seen, end, _ = _run_program(program, answers)
    for i, sleeps in enumerate(program):
        assert seen[f"t{i}"] == _prefix_sums(sleeps)
    assert end == max((sum(s) for s in program), default=0)


@settings(max_examples=15, deadline=None)
@given(sleep_programs, st.lists(st.integers(min_value=0, max_value=10), max_size=30))
def test_the_same_program_and_answers_give_the_same_log(
    program: list[list[int]], answers: list[int]
) -> None:
    assert _run_program(program, answers) == _run_program(program, answers)


# -- stress --------------------------------------------------------------------------------


def _handoff_ring(iterations: int, threads: Backend = "greenlet") -> tuple[object, ...]:
    with Simulation(log=True, threads=threads) as sim:
        events = [sim.event(f"e{i}") for i in range(4)]
        counts = [0] * 4

        def worker(i: int) -> None:
            for k in range(iterations):
                if k % 2 == 0:
                    sim.sleep(1 + (i + k) % 3)
                else:
                    events[(i + 1) % 4].set()
                    events[i].wait(timeout_ns=5)
                    events[i].clear()
                counts[i] += 1

        for i in range(4):
            sim.thread(f"vcpu{i}", lambda i=i: worker(i))
        result = sim.run()
        assert sim.log is not None
        assert counts == [iterations] * 4
        assert all(t.done for t in sim.threads[1:])
        return result, sim.digest, tuple(e.as_tuple() for e in sim.log)


def test_stress_four_threads_2000_sleeps_and_handoffs_each_are_deterministic() -> None:
    runs = {_handoff_ring(2000) for _ in range(3)}
    assert len(runs) == 1
    ((result, _, log),) = runs
    assert result.reason.value == "idle"
    assert len(log) == result.steps


def test_both_backends_give_the_same_steps_log_and_digest() -> None:
    assert _handoff_ring(300, "greenlet") == _handoff_ring(300, "os")


# -- fork --------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_parked_greenlet_threads_survive_fork_and_finish_in_the_child() -> None:
    with Simulation() as sim:
        done: list[str] = []
        for i in range(8):
            sim.thread(f"t{i}", lambda i=i: (sim.sleep(100 + i), done.append(f"t{i}")))
        sim.run(until_ns=50)  # all eight parked in their sleeps
        with warnings.catch_warnings():
            # 3.12+ warns about fork in a process with other OS threads (pytest's).
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the child: resume the parked threads; report through the exit code
            code = 1
            try:
                result = sim.run()
                ok = result.reason.value == "idle" and done == [f"t{i}" for i in range(8)]
                code = 0 if ok else 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert done == []  # the parent's copies are still parked
        sim.run()
        assert done == [f"t{i}" for i in range(8)]


def test_a_preemption_point_hands_the_turn_back_only_when_nobody_else_can_run() -> None:
    sim = Simulation()
    seen: list[tuple[str, bool]] = []
    gate = sim.event("gate")

    def a() -> None:
        sched = sim._sched
        me = sched.current
        seen.append(("b waits on the gate", sched.hands_back(me)))
        gate.set()
        seen.append(("b can run", sched.hands_back(me)))
        sim.yield_now()
        seen.append(("b is done", sched.hands_back(me)))

    def b() -> None:
        gate.wait()

    sim.thread("b", b)
    sim.thread("a", a)
    sim.run()
    sim.close()
    assert seen == [("b waits on the gate", True), ("b can run", False), ("b is done", True)]
