"""Tests for evloop.chooser: the single door every scheduling decision goes through.

The fakes here are choosers a test can read back: :class:`RecordingChooser`
answers from a script (or always the last option) and keeps every question it
was asked, so a test can show that the simulation really takes its order from
the chooser, asks the right kind of question at the right point, lists the
options in FIFO order, and never asks a question with a single answer.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evloop import (
    ChoiceKind,
    ChoicePoint,
    Chooser,
    FifoChooser,
    PCTChooser,
    RandomChooser,
    SimRandom,
    Simulation,
    SimulationError,
    SystematicChooser,
)
from tests.helpers import Boom


class RecordingChooser:
    """Answers from ``answers`` in turn, then always the last option; records every question."""

    def __init__(self, answers: Sequence[int] = ()) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[ChoiceKind, tuple[str, ...]]] = []

    def choose(self, kind: ChoiceKind, options: Sequence[str]) -> int:
        self.calls.append((kind, tuple(options)))
        if self.answers:
            return self.answers.pop(0)
        return len(options) - 1

    def __repr__(self) -> str:
        return "RecordingChooser()"


class SeededChooser:
    """A fuzzer's chooser: a seeded random pick, every question recorded."""

    def __init__(self, seed: int) -> None:
        self.random = SimRandom(seed)
        self.calls: list[tuple[ChoiceKind, tuple[str, ...], int]] = []

    def choose(self, kind: ChoiceKind, options: Sequence[str]) -> int:
        index = self.random.randrange(len(options))
        self.calls.append((kind, tuple(options), index))
        return index



class RaisingChooser:
    """A replaying chooser that finds the run diverged from its trace."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def choose(self, kind: ChoiceKind, options: Sequence[str]) -> int:
        raise self.error


# -- the protocol and the default ----------------------------------------------------------


def test_choice_kinds_have_stable_values() -> None:
    # The kinds are not written in traces (a decision is step, options, choice:
    # docs/trace-format.md, section 5), but tools and saved scripts name them by
    # number: existing values never change, a new kind is appended.
    assert [(k.name, int(k)) for k in ChoiceKind] == [
        ("THREAD", 0),
        ("EXTERNAL", 1),
        ("FAULT", 2),
        ("READY_FD", 3),
        ("TIMER_TIE", 4),
        ("READY_QUEUE", 5),
        ("COROUTINE", 6),
        ("PREEMPT", 7),
    ]


def test_fifo_chooser_always_answers_the_first_option() -> None:
    fifo = FifoChooser()
    assert fifo.choose(ChoiceKind.THREAD, ["a", "b"]) == 0
    assert fifo.choose(ChoiceKind.EXTERNAL, ["x", "y", "z"]) == 0
    assert fifo.choose(ChoiceKind.FAULT, ["none", "drop"]) == 0
    assert repr(fifo) == "FifoChooser()"


def test_fakes_and_the_default_satisfy_the_protocol() -> None:
    choosers: list[Chooser] = [FifoChooser(), RecordingChooser(), SeededChooser(0)]
    for chooser in choosers:
        assert chooser.choose(ChoiceKind.THREAD, ["a", "b"]) in (0, 1)


def test_the_default_chooser_of_a_simulation_is_fifo() -> None:
    with Simulation() as sim:
        assert isinstance(sim.chooser, FifoChooser)


def test_a_simulation_uses_the_chooser_it_is_given() -> None:
    chooser = RecordingChooser()
    with Simulation(chooser=chooser) as sim:
        assert sim.chooser is chooser


def test_random_chooser_draws_each_answer_from_a_seeded_simrandom() -> None:
    chooser = RandomChooser(7)
    assert repr(chooser) == "RandomChooser(seed=7)"
    assert [chooser.choose(ChoiceKind.THREAD, [str(i) for i in range(100)]) for _ in range(4)] == [
        49,
        2,
        74,
        57,
    ]
    assert RandomChooser().seed == 0


@given(st.integers(min_value=0, max_value=2**64 - 1), st.lists(st.integers(2, 9), max_size=30))
def test_random_chooser_answers_are_in_range_and_replayable(seed: int, sizes: list[int]) -> None:
    def answers() -> list[int]:
        chooser = RandomChooser(seed)
        return [chooser.choose(ChoiceKind.THREAD, ["x"] * n) for n in sizes]

    first = answers()
    assert first == answers()
    assert all(0 <= a < n for a, n in zip(first, sizes, strict=True))



@given(st.integers(min_value=0, max_value=2**64 - 1), st.lists(st.integers(1, 40), max_size=60))
def test_random_chooser_answers_a_batch_as_it_chooses_one_by_one(
    seed: int, sizes: list[int]
) -> None:
    batch, one_by_one = RandomChooser(seed), RandomChooser(seed)
    assert batch.answers(sizes) == [
        one_by_one.choose(ChoiceKind.THREAD, ["x"] * n) for n in sizes
    ]
    # Both went as far: the next decision is the same too.
    assert batch.choose(ChoiceKind.EXTERNAL, ["a", "b", "c"]) == one_by_one.choose(
        ChoiceKind.EXTERNAL, ["a", "b", "c"]
    )


def test_fifo_chooser_answers_a_batch_with_the_first_option_each_time() -> None:
    assert FifoChooser().answers([2, 5, 1, 9]) == [0, 0, 0, 0]
    assert FifoChooser().answers([]) == []


def test_pct_chooser_has_no_batch_answers() -> None:
    # Its decisions depend on the options' names: a player asks it each time.
    assert not hasattr(PCTChooser(1), "answers")


def test_pct_chooser_refuses_a_depth_or_horizon_below_1() -> None:
    with pytest.raises(ValueError, match=r"^PCT depth must be at least 1, not 0$"):
        PCTChooser(depth=0)
    with pytest.raises(ValueError, match=r"^PCT horizon must be at least 1, not 0$"):
        PCTChooser(horizon=0)
    assert repr(PCTChooser(5, depth=2)) == "PCTChooser(seed=5, depth=2)"


@given(
    st.integers(min_value=0, max_value=2**32),
    st.lists(st.lists(st.sampled_from("abcdef"), min_size=2, max_size=6, unique=True), max_size=40),
)
def test_pct_chooser_answers_are_in_range_and_replayable(
    seed: int, questions: list[list[str]]
) -> None:
    def answers() -> list[int]:
        chooser = PCTChooser(seed, depth=3, horizon=20)
        return [chooser.choose(ChoiceKind.THREAD, q) for q in questions]

    first = answers()
    assert first == answers()
    assert all(0 <= a < len(q) for a, q in zip(first, questions, strict=True))


@given(st.integers(min_value=0, max_value=2**32))
def test_pct_depth_1_always_runs_the_highest_priority_thread(seed: int) -> None:
    chooser = PCTChooser(seed, depth=1)
    first = ["a", "b", "c"][chooser.choose(ChoiceKind.THREAD, ["a", "b", "c"])]
    for options in (["c", "b", "a"], ["b", "a", "c"], ["a", "b", "c"]):
        assert options[chooser.choose(ChoiceKind.THREAD, options)] == first


@given(st.integers(min_value=0, max_value=2**32))
def test_pct_depth_2_changes_priority_once_within_the_horizon(seed: int) -> None:
    # depth 2: one change point among the first `horizon` decisions; it demotes
    # the thread about to run at that decision (Burckhardt et al.). With the
    # same two threads runnable at every decision, the initially preferred
    # thread wins until the change point and never after it.
    chooser = PCTChooser(seed, depth=2, horizon=2)
    winners = [["a", "b"][chooser.choose(ChoiceKind.THREAD, ["a", "b"])] for _ in range(4)]
    # A change at decision 1 demotes the first winner before it runs (all the
    # same after); a change at decision 2 shows as exactly one switch there.
    last = winners[-1]
    assert winners[1:] == [last] * 3, winners
    assert winners[0] in ("a", "b")


@given(st.integers(min_value=0, max_value=2**32))
def test_pct_applies_every_change_point_even_at_the_first_decision(seed: int) -> None:
    # depth 3, horizon 2: the two change points are decisions 1 and 2, so two
    # of three always-runnable threads have dropped by decision 3. Whichever
    # convention places the demotion (before or after the demoted thread runs),
    # the winner must change, then hold.
    chooser = PCTChooser(seed, depth=3, horizon=2)
    options = ["a", "b", "c"]
    winners = [options[chooser.choose(ChoiceKind.THREAD, options)] for _ in range(5)]
    assert len(set(winners)) >= 2, winners
    assert winners[2] == winners[3] == winners[4], winners


@given(st.integers(min_value=0, max_value=2**32))
def test_pct_fault_decisions_are_mostly_none(seed: int) -> None:
    chooser = PCTChooser(seed)
    answers = [chooser.choose(ChoiceKind.FAULT, ["none", "drop", "dup"]) for _ in range(200)]
    assert all(0 <= a < 3 for a in answers)
    assert answers.count(0) > 100


# -- THREAD decisions ----------------------------------------------------------------------


def test_which_thread_runs_next_is_taken_from_the_chooser() -> None:
    chooser = RecordingChooser()
    with Simulation(chooser=chooser) as sim:
        order: list[str] = []
        for name in ("a", "b", "c"):
            sim.thread(name, lambda name=name: order.append(name))
        sim.run()
    assert order == ["c", "b", "a"]
    # Options are listed longest-waiting first; the last one left is no decision.
    assert chooser.calls == [
        (ChoiceKind.THREAD, ("a", "b", "c")),
        (ChoiceKind.THREAD, ("a", "b")),
    ]


def test_the_same_scenario_under_fifo_runs_in_spawn_order() -> None:
    with Simulation() as sim:
        order: list[str] = []
        for name in ("a", "b", "c"):
            sim.thread(name, lambda name=name: order.append(name))
        sim.run()
    assert order == ["a", "b", "c"]


def test_a_scripted_chooser_picks_each_turn() -> None:
    chooser = RecordingChooser([1, 0])
    with Simulation(chooser=chooser) as sim:
        order: list[str] = []
        for name in ("a", "b", "c"):
            sim.thread(name, lambda name=name: order.append(name))
        sim.run()
    assert order == ["b", "a", "c"]
    assert chooser.calls == [
        (ChoiceKind.THREAD, ("a", "b", "c")),
        (ChoiceKind.THREAD, ("a", "c")),
    ]


def test_a_yield_is_a_decision_with_the_yielder_listed_last() -> None:
    chooser = RecordingChooser([0, 1])
    with Simulation(chooser=chooser) as sim:
        order: list[str] = []

        def a() -> None:
            order.append("a1")
            sim.yield_now()
            order.append("a2")

        def b() -> None:
            order.append("b1")

        sim.thread("a", a)
        sim.thread("b", b)
        sim.run()
    # a runs, yields: b (waiting longer) and a are both runnable; the chooser
    # answers 1, so a goes on before b.
    assert chooser.calls == [
        (ChoiceKind.THREAD, ("a", "b")),
        (ChoiceKind.THREAD, ("b", "a")),
    ]
    assert order == ["a1", "a2", "b1"]


def test_a_single_runnable_thread_is_never_a_question() -> None:
    chooser = RecordingChooser()
    with Simulation(chooser=chooser) as sim:
        times: list[int] = []

        def worker() -> None:
            for _ in range(5):
                sim.sleep(10)
                times.append(sim.now_ns)
            sim.yield_now()

        sim.thread("only", worker)
        io = sim.iothread("io")
        io.ctx.bh_schedule_oneshot(lambda: None, name="noop")
        sim.main_loop.timer_new_ns(0, lambda: None, name="tick").mod_ns(25)
        sim.run()
    assert times == [10, 20, 30, 40, 50]
    # main, "only" and "io" start together; later, only ever one is runnable.
    assert [len(options) for _, options in chooser.calls] == [2]
    assert all(len(options) >= 2 for _, options in chooser.calls)


def test_the_chooser_is_never_asked_when_a_simulation_runs_alone() -> None:
    chooser = RecordingChooser()
    with Simulation(chooser=chooser) as sim:
        for at in (10, 20, 30):
            sim.main_loop.timer_new_ns(0, lambda: None).mod_ns(at)
        sim.sleep(5)
        sim.run()
    assert chooser.calls == []


@pytest.mark.parametrize("answer", [2, -1])
def test_a_thread_answer_out_of_range_is_refused(answer: int) -> None:
    chooser = RecordingChooser([answer])
    with Simulation(chooser=chooser) as sim:
        sim.thread("a", lambda: None)
        sim.thread("b", lambda: None)
        with pytest.raises(
            SimulationError,
            match=rf"^chooser RecordingChooser\(\) answered {answer} to a THREAD decision "
            r"among 2 options$",
        ):
            sim.run()


def test_a_bad_answer_asked_by_an_ending_thread_is_still_the_users_error() -> None:
    # The second decision is taken by thread "a" as it ends: the bad answer
    # must surface as the SimulationError it is, not as an internal error.
    chooser = RecordingChooser([0, 7])
    with Simulation(chooser=chooser) as sim:
        for name in ("a", "b", "c"):
            sim.thread(name, lambda: None)
        with pytest.raises(
            SimulationError,
            match=r"^chooser RecordingChooser\(\) answered 7 to a THREAD decision among 2 options$",
        ):
            sim.run()


def test_a_chooser_that_raises_stops_the_run_with_its_own_exception() -> None:
    # A replaying chooser raises when the run leaves its trace; that error must
    # reach sim.run() as itself, whichever thread asked the question.
    error = Boom("diverged")
    with Simulation(chooser=RaisingChooser(error)) as sim:
        sim.thread("a", lambda: None)
        sim.thread("b", lambda: None)
        with pytest.raises(Boom) as info:
            sim.run()
    assert info.value is error


def test_a_chooser_raising_in_an_ending_thread_stops_the_run_with_its_own_exception() -> None:
    error = Boom("diverged")

    class RaiseSecond:
        def __init__(self) -> None:
            self.n = 0

        def choose(self, kind: ChoiceKind, options: Sequence[str]) -> int:
            self.n += 1
            if self.n == 2:
                raise error
            return 0

    with Simulation(chooser=RaiseSecond()) as sim:
        for name in ("a", "b", "c"):
            sim.thread(name, lambda: None)
        with pytest.raises(Boom) as info:
            sim.run()
    assert info.value is error


# -- EXTERNAL decisions --------------------------------------------------------------------


def test_simultaneous_inputs_from_two_peers_are_ordered_by_the_chooser() -> None:
    chooser = RecordingChooser()
    with Simulation(chooser=chooser, log=True) as sim:
        _, pipe_w = sim.fds.pipe()
        _, sock_peer = sim.fds.socketpair()
        sim.peer(pipe_w, "serial").send(b"abc", at_ns=100)
        sim.peer(sock_peer, "client").send(b"hello", at_ns=100)
        sim.run()
        assert sim.log is not None
        inputs = [(e.time_ns, e.thread, e.name) for e in sim.log if e.kind == "input"]
    assert chooser.calls == [(ChoiceKind.EXTERNAL, ("serial: 3 bytes", "client: 5 bytes"))]
    assert inputs == [(100, "client", "5 bytes"), (100, "serial", "3 bytes")]


def test_inputs_at_different_times_are_no_decision() -> None:
    chooser = RecordingChooser()
    with Simulation(chooser=chooser) as sim:
        _, w1 = sim.fds.pipe()
        _, w2 = sim.fds.pipe()
        sim.peer(w1, "p").send(b"a", at_ns=100)
        sim.peer(w2, "q").send(b"b", at_ns=101)
        sim.run()
    assert chooser.calls == []


def test_three_simultaneous_inputs_are_two_decisions() -> None:
    chooser = RecordingChooser([1, 1])
    with Simulation(chooser=chooser, log=True) as sim:
        for name in ("p", "q", "r"):
            _, w = sim.fds.pipe()
            sim.peer(w, name).send(b"x", at_ns=50)
        sim.run()
        assert sim.log is not None
        order = [e.thread for e in sim.log if e.kind == "input"]
    assert chooser.calls == [
        (ChoiceKind.EXTERNAL, ("p: 1 bytes", "q: 1 bytes", "r: 1 bytes")),
        (ChoiceKind.EXTERNAL, ("p: 1 bytes", "r: 1 bytes")),
    ]
    assert order == ["q", "r", "p"]


@pytest.mark.parametrize("answer", [2, -1])
def test_an_external_answer_out_of_range_is_refused(answer: int) -> None:
    chooser = RecordingChooser([answer])
    with Simulation(chooser=chooser) as sim:
        _, w1 = sim.fds.pipe()
        _, w2 = sim.fds.pipe()
        sim.peer(w1, "p").send(b"a", at_ns=10)
        sim.peer(w2, "q").send(b"b", at_ns=10)
        with pytest.raises(
            SimulationError,
            match=rf"^chooser RecordingChooser\(\) answered {answer} to an EXTERNAL decision "
            r"among 2 options$",
        ):
            sim.run()


# -- properties ----------------------------------------------------------------------------


def _fuzzed_run(seed: int) -> tuple[list[tuple[ChoiceKind, tuple[str, ...], int]], list[str]]:
    chooser = SeededChooser(seed)
    with Simulation(chooser=chooser) as sim:
        order: list[str] = []

        def worker(name: str) -> None:
            for i in range(3):
                order.append(f"{name}{i}")
                sim.yield_now()

        for name in ("a", "b", "c"):
            sim.thread(name, lambda name=name: worker(name))
        for name in ("p", "q"):
            _, w = sim.fds.pipe()
            sim.peer(w, name).send(b"x", at_ns=0)
        sim.run()
    return chooser.calls, order


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=0, max_value=2**32))
def test_every_question_has_two_or_more_options_and_a_valid_answer(seed: int) -> None:
    calls, order = _fuzzed_run(seed)
    assert calls
    for kind, options, index in calls:
        assert kind in (ChoiceKind.THREAD, ChoiceKind.EXTERNAL)
        assert len(options) >= 2
        assert 0 <= index < len(options)
    # Whatever the order, each thread's own steps stay in program order.
    for name in ("a", "b", "c"):
        assert [s for s in order if s[0] == name] == [f"{name}0", f"{name}1", f"{name}2"]


@settings(max_examples=10, deadline=None)
@given(st.integers(min_value=0, max_value=2**32))
def test_a_seeded_chooser_replays_the_same_run(seed: int) -> None:
    assert _fuzzed_run(seed) == _fuzzed_run(seed)


def test_different_seeds_reach_different_orders() -> None:
    orders = {tuple(_fuzzed_run(seed)[1]) for seed in range(20)}
    assert len(orders) > 1


# -- the systematic chooser ---------------------------------------------------------------


def _yielders(sim: Simulation, log: list[str]) -> None:
    def worker(name: str) -> None:
        log.append(f"{name}1")
        sim.yield_now()
        log.append(f"{name}2")

    sim.thread("a", lambda: worker("a"))
    sim.thread("b", lambda: worker("b"))


def test_systematic_chooser_keeps_the_running_thread_and_logs_where_it_was() -> None:
    chooser = SystematicChooser()
    log: list[str] = []
    with Simulation(chooser=chooser) as sim:
        _yielders(sim, log)
        sim.run()
    assert log == ["a1", "a2", "b1", "b2"]
    # First: main blocks, a and b wait (nobody running among them); then a
    # yields with b waiting longer: [b, a], a running at index 1, kept.
    assert chooser.log == [
        ChoicePoint(ChoiceKind.THREAD, 2, -1, 0),
        ChoicePoint(ChoiceKind.THREAD, 2, 1, 1),
    ]
    assert chooser.preemptions == 0


def test_systematic_chooser_follows_its_prefix_and_counts_preemptions() -> None:
    # b first (free), a at b's preemption point (1), b at a's (2).
    chooser = SystematicChooser([1, 0, 0])
    log: list[str] = []
    with Simulation(chooser=chooser) as sim:
        _yielders(sim, log)
        sim.run()
    assert log == ["b1", "a1", "b2", "a2"]
    assert [(p.running, p.choice) for p in chooser.log] == [(-1, 1), (1, 0), (1, 0)]
    assert chooser.preemptions == 2
    assert chooser.diverged_at is None


def test_systematic_chooser_marks_a_prefix_answer_out_of_range() -> None:
    chooser = SystematicChooser([5])
    with Simulation(chooser=chooser) as sim:
        _yielders(sim, [])
        sim.run()
    assert chooser.diverged_at == 0 and chooser.log[0].choice == 0


def test_systematic_chooser_answers_fifo_unlogged_past_max_decisions() -> None:
    chooser = SystematicChooser(max_decisions=1)
    log: list[str] = []
    with Simulation(chooser=chooser) as sim:
        _yielders(sim, log)
        sim.run()
    assert log == ["a1", "b1", "a2", "b2"]  # a's yield went FIFO: b, the longest waiting
    assert len(chooser.log) == 1 and chooser.beyond == 2
    with pytest.raises(ValueError, match=r"^max_decisions must be at least 1, not 0$"):
        SystematicChooser(max_decisions=0)


def test_choice_point_order_and_costs() -> None:
    point = ChoicePoint(ChoiceKind.THREAD, 3, 2, 2)
    assert (point.default, point.order()) == (2, [2, 0, 1])
    assert [point.costs(i) for i in range(3)] == [1, 1, 0]
    free = ChoicePoint(ChoiceKind.EXTERNAL, 3, -1, 0)
    assert (free.default, free.order(), [free.costs(i) for i in range(3)]) == (
        0, [0, 1, 2], [0, 0, 0]
    )
