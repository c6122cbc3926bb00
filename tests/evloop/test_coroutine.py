"""Tests for evloop.coroutine: QEMU's coroutines on greenlets.

The first half ports the coroutine cases of QEMU's ``tests/unit/test-coroutine.c``
(``/basic/*``); the second the scheduling cases of ``test-aio-multithread.c``
(``/aio/multi/*``), adapted to virtual time: where QEMU lets threads race for
a wall-clock second, coroutines here hop between IOThreads with a virtual
sleep per hop, for a virtual millisecond, under random choosers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from evloop import (
    SCALE_MS,
    SCALE_US,
    ChoiceKind,
    ClockType,
    Coroutine,
    RandomChooser,
    Simulation,
    SimulationError,
    aio_co_enter,
    aio_co_schedule,
    aio_co_wake,
    qemu_co_sleep_ns,
    qemu_coroutine_create,
    qemu_coroutine_enter,
    qemu_coroutine_self,
    qemu_coroutine_yield,
    qemu_in_coroutine,
)
from evloop.machine.coroutine import (
    aio_co_reschedule_self,
    qemu_coroutine_entered,
    qemu_get_current_aio_context,
)
from tests.helpers import Boom, assert_same_run, record_and_play
from tests.scenarios import coroutines as scenario

# -- /basic: test-coroutine.c ------------------------------------------------------------


def test_in_coroutine() -> None:
    seen: list[bool] = []
    assert not qemu_in_coroutine()
    qemu_coroutine_enter(qemu_coroutine_create(lambda: seen.append(qemu_in_coroutine())))
    assert seen == [True]
    assert not qemu_in_coroutine()


def test_self() -> None:
    seen: list[Coroutine | None] = []
    co = qemu_coroutine_create(lambda: seen.append(qemu_coroutine_self()))
    qemu_coroutine_enter(co)
    assert seen == [co]
    assert qemu_coroutine_self() is None


def test_entered() -> None:
    seen: dict[str, bool] = {}

    def inner() -> None:
        seen["inner sees outer"] = qemu_coroutine_entered(outer)
        seen["inner sees inner"] = qemu_coroutine_entered(inner_co)

    def outer_fn() -> None:
        seen["outer sees outer"] = qemu_coroutine_entered(outer)
        seen["outer sees inner, before"] = qemu_coroutine_entered(inner_co)
        qemu_coroutine_enter(inner_co)
        qemu_coroutine_yield()

    inner_co = qemu_coroutine_create(inner)
    outer = qemu_coroutine_create(outer_fn)
    qemu_coroutine_enter(outer)
    assert seen == {
        "outer sees outer": True,
        "outer sees inner, before": False,
        "inner sees outer": True,
        "inner sees inner": True,
    }
    assert not qemu_coroutine_entered(outer)  # it yielded


def test_lifecycle() -> None:
    done = 0

    def set_and_exit() -> None:
        nonlocal done
        done += 1

    for _ in range(1000):  # create, run and finish, many times over
        co = qemu_coroutine_create(set_and_exit)
        qemu_coroutine_enter(co)
        assert co.done
    assert done == 1000
    with pytest.raises(SimulationError, match=r"^coroutine 'test_lifecycle.<locals>.set_and_exit' "
                       r"entered after it returned$"):
        qemu_coroutine_enter(co)


def test_yield() -> None:
    expected = 5
    remaining = expected

    def yield_5_times() -> None:
        nonlocal remaining
        while remaining:
            remaining -= 1
            qemu_coroutine_yield()

    co = qemu_coroutine_create(yield_5_times)
    entries = 0
    while not co.done:
        qemu_coroutine_enter(co)
        entries += 1
    assert entries == expected + 1


def test_yield_from_any_depth() -> None:
    trail: list[int] = []

    def deep(n: int) -> None:
        if n == 0:
            trail.append(0)
            qemu_coroutine_yield()
            trail.append(-1)
            return
        deep(n - 1)

    co = qemu_coroutine_create(lambda: deep(50))
    qemu_coroutine_enter(co)
    assert trail == [0] and not co.done
    qemu_coroutine_enter(co)
    assert trail == [0, -1] and co.done


MAX_NESTING_DEPTH = 128


def test_nesting() -> None:
    n_enter = n_return = max_depth = 0

    def nest(depth: int) -> None:
        nonlocal n_enter, n_return, max_depth
        n_enter += 1
        max_depth = max(max_depth, depth)
        if depth < MAX_NESTING_DEPTH:
            qemu_coroutine_enter(qemu_coroutine_create(lambda: nest(depth + 1)))
        n_return += 1

    qemu_coroutine_enter(qemu_coroutine_create(lambda: nest(1)))
    assert (n_enter, n_return, max_depth) == (MAX_NESTING_DEPTH,) * 3


def test_order() -> None:
    records: list[tuple[int, int]] = []

    def co_order_test() -> None:
        records.append((2, 1))
        assert qemu_in_coroutine()
        qemu_coroutine_yield()
        records.append((2, 2))
        assert qemu_in_coroutine()

    co = qemu_coroutine_create(co_order_test)
    records.append((1, 1))
    qemu_coroutine_enter(co)
    records.append((1, 2))
    assert not qemu_in_coroutine()
    qemu_coroutine_enter(co)
    records.append((1, 3))
    assert not qemu_in_coroutine()
    assert records == [(1, 1), (2, 1), (1, 2), (2, 2), (1, 3)]


def test_co_queue_no_dangling_access() -> None:
    # c1 enters c2, which yields back to c1; c1 returns. Entering c2 again
    # must resume c2 for the new caller, never touch the finished c1.
    trail: list[str] = []

    def c2_fn() -> None:
        trail.append("c2 in")
        qemu_coroutine_yield()
        trail.append("c2 again")

    def c1_fn() -> None:
        qemu_coroutine_enter(c2)
        trail.append("c1 out")

    c2 = qemu_coroutine_create(c2_fn)
    c1 = qemu_coroutine_create(c1_fn)
    qemu_coroutine_enter(c1)
    assert c1.done and not c2.done
    qemu_coroutine_enter(c2)
    assert trail == ["c2 in", "c1 out", "c2 again"]
    assert c2.done


def test_a_wake_from_a_coroutine_runs_once_it_yields_depth_first() -> None:
    with Simulation() as sim:
        ctx = sim.main_loop.aio_context
        trail: list[str] = []

        def waker() -> None:
            aio_co_wake(first)
            aio_co_wake(second)
            trail.append("waker yields")
            qemu_coroutine_yield()

        def sleeper(name: str, wakes: Coroutine | None) -> Callable[[], None]:
            def body() -> None:
                qemu_coroutine_yield()
                trail.append(name)
                if wakes is not None:
                    aio_co_wake(wakes)

            return body

        third = qemu_coroutine_create(sleeper("third", None))
        first = qemu_coroutine_create(sleeper("first", third))
        second = qemu_coroutine_create(sleeper("second", None))

        def main() -> None:
            for co in (first, second, third):
                qemu_coroutine_enter(co)  # each parks in its yield, in ctx
            qemu_coroutine_enter(qemu_coroutine_create(waker))
            trail.append("enter returned")

        ctx.bh_schedule_oneshot(main)
        sim.run()
    # third was woken by first, so it runs before second (QSIMPLEQ_PREPEND).
    assert trail == ["waker yields", "first", "third", "second", "enter returned"]


def test_misuse_is_named() -> None:
    with pytest.raises(SimulationError, match=r"^qemu_coroutine_yield\(\) called outside a "
                       r"coroutine$"):
        qemu_coroutine_yield()

    def reenter() -> None:
        qemu_coroutine_enter(me)

    me = qemu_coroutine_create(reenter, name="loop")
    with pytest.raises(SimulationError, match=r"^coroutine 'loop' re-entered recursively$"):
        qemu_coroutine_enter(me)

    def wake_self() -> None:
        aio_co_enter(None, qemu_coroutine_self())  # type: ignore[arg-type]

    with pytest.raises(SimulationError, match=r"^coroutine 'narcissus' cannot wake itself$"):
        qemu_coroutine_enter(qemu_coroutine_create(wake_self, name="narcissus"))
    with pytest.raises(SimulationError, match=r"^aio_co_wake: coroutine 'new' is not waiting$"):
        aio_co_wake(qemu_coroutine_create(lambda: None, name="new"))


def test_an_exception_reaches_whoever_entered_the_coroutine() -> None:
    def fail() -> None:
        qemu_coroutine_yield()
        raise Boom("in coroutine")

    co = qemu_coroutine_create(fail)
    qemu_coroutine_enter(co)
    with pytest.raises(Boom, match=r"^in coroutine$"):
        qemu_coroutine_enter(co)
    assert co.done
    assert repr(co) == "<Coroutine 'test_an_exception_reaches_whoever_entered_the_coroutine." \
        "<locals>.fail' done>"


def test_a_coroutine_raising_in_a_bottom_half_stops_the_run() -> None:
    with Simulation() as sim:
        ctx = sim.main_loop.aio_context
        co = qemu_coroutine_create(lambda: (_ for _ in ()).throw(Boom("co")))
        aio_co_schedule(ctx, co)
        with pytest.raises(Boom, match=r"^co$"):
            sim.run()


# -- the contexts: main loop and IOThreads ---------------------------------------------


def test_each_thread_of_control_has_its_aio_context() -> None:
    seen: dict[str, object] = {}
    with Simulation() as sim:
        io = sim.iothread("io")
        seen["driver"] = qemu_get_current_aio_context()  # outside run: no thread of control
        sim.main_loop.aio_context.bh_schedule_oneshot(
            lambda: seen.update(main=qemu_get_current_aio_context())
        )
        io.ctx.bh_schedule_oneshot(lambda: seen.update(io=qemu_get_current_aio_context()))
        sim.thread("vcpu", lambda: seen.update(vcpu=qemu_get_current_aio_context()))
        io.stop()
        sim.run()
        assert seen == {
            "driver": None,
            "main": sim.main_loop.aio_context,
            "io": io.ctx,
            "vcpu": None,
        }
    assert qemu_get_current_aio_context() is None


@pytest.mark.parametrize("threads", ["greenlet", "os"])
def test_a_coroutine_sleeps_in_virtual_time_on_an_iothread(threads: str) -> None:
    trail: list[tuple[str, int, str]] = []
    with Simulation(threads=threads) as sim:  # type: ignore[arg-type]
        io = sim.iothread("io")

        def body() -> None:
            for _ in range(3):
                qemu_co_sleep_ns(ClockType.VIRTUAL, 7 * SCALE_US)
                trail.append(("woke", sim.now_ns, sim.current_thread.name))
            sim.sleep(SCALE_US)  # a real wait of the thread, from inside the coroutine
            trail.append(("slept", sim.now_ns, sim.current_thread.name))
            io.stop()

        aio_co_schedule(io.ctx, qemu_coroutine_create(body))
        sim.run()
    assert trail == [
        ("woke", 7_000, "io"),
        ("woke", 14_000, "io"),
        ("woke", 21_000, "io"),
        ("slept", 22_000, "io"),
    ]


def test_a_coroutine_moves_between_the_main_loop_and_an_iothread() -> None:
    trail: list[str] = []
    with Simulation() as sim:
        io = sim.iothread("io")
        main_ctx = sim.main_loop.aio_context

        def body() -> None:
            trail.append(sim.current_thread.name)
            aio_co_reschedule_self(io.ctx)
            trail.append(sim.current_thread.name)
            aio_co_reschedule_self(main_ctx)
            trail.append(sim.current_thread.name)
            io.stop()

        aio_co_schedule(main_ctx, qemu_coroutine_create(body))
        sim.run()
    assert trail == ["main", "io", "main"]


def test_under_os_threads_a_coroutine_cannot_change_os_thread() -> None:
    with Simulation(threads="os") as sim:
        io = sim.iothread("io")
        main_ctx = sim.main_loop.aio_context

        def body() -> None:
            aio_co_reschedule_self(io.ctx)

        aio_co_schedule(main_ctx, qemu_coroutine_create(body, name="hopper"))
        with pytest.raises(SimulationError) as info:
            sim.run()
    assert str(info.value) == (
        "coroutine 'hopper' cannot be entered from this OS thread: under threads='os' a "
        "coroutine stays on the thread of control that first entered it"
    )
    assert info.value.__notes__ == ["(raised in thread of control 'io')"]


def test_scheduling_twice_is_refused() -> None:
    with Simulation() as sim:
        ctx = sim.main_loop.aio_context
        co = qemu_coroutine_create(lambda: None, name="twice")
        aio_co_schedule(ctx, co)
        with pytest.raises(SimulationError, match=r"^aio_co_schedule: coroutine 'twice' was "
                           r"already scheduled by aio_co_schedule$"):
            aio_co_schedule(ctx, co)
        with pytest.raises(SimulationError, match=r"^coroutine 'twice' entered while scheduled "
                           r"by aio_co_schedule: it would run twice$"):
            qemu_coroutine_enter(co)
        sim.run()
        assert co.done


def test_co_schedule_bh_is_made_on_first_use() -> None:
    with Simulation() as sim:
        ctx = sim.main_loop.aio_context
        assert ctx.co_schedule_bh is None
        aio_co_schedule(ctx, qemu_coroutine_create(lambda: None))
        assert ctx.co_schedule_bh is not None
        assert ctx.co_schedule_bh.name == "aio-context:co_schedule_bh"
        sim.run()


# -- which thread's coroutine first: a chooser decision ------------------------------------


class Recording:
    def __init__(self, answers: list[int]) -> None:
        self.answers = answers
        self.asked: list[tuple[ChoiceKind, tuple[str, ...]]] = []

    def choose(self, kind: ChoiceKind, options: object) -> int:
        opts = tuple(options)  # type: ignore[call-overload]
        self.asked.append((kind, opts))
        return self.answers.pop(0) if self.answers and kind is ChoiceKind.COROUTINE else 0


def test_coroutines_from_two_threads_in_one_batch_are_a_coroutine_decision() -> None:
    chooser = Recording([1, 0, 1])
    with Simulation(chooser=chooser) as sim:
        scenario.two_schedulers(sim, per_thread=2)
        sim.run()
    asked = [opts for kind, opts in chooser.asked if kind is ChoiceKind.COROUTINE]
    # Each thread's coroutines keep their order; only which thread goes next is asked.
    assert asked == [
        ("a.0 (from a)", "b.0 (from b)"),
        ("a.0 (from a)", "b.1 (from b)"),
        ("a.1 (from a)", "b.1 (from b)"),
    ]
    assert scenario.OBSERVED == ["b.0", "a.0", "b.1", "a.1"]


def test_one_threads_coroutines_are_never_a_decision() -> None:
    chooser = Recording([])
    with Simulation(chooser=chooser) as sim:
        ctx = sim.main_loop.aio_context
        for i in range(3):
            aio_co_schedule(ctx, qemu_coroutine_create(lambda: None, name=f"c{i}"))
        sim.run()
    assert chooser.asked == []


def test_a_coroutine_decision_is_recorded_and_replayed(tmp_path: Path) -> None:
    spec = "tests.scenarios.coroutines:two_schedulers"
    orders = set()
    for seed in range(6):
        recorded, played = record_and_play(
            spec, tmp_path / f"co-{seed}.evr", chooser=f"random:{seed}", params={"per_thread": 3}
        )
        assert_same_run(recorded, played)
        assert recorded.decisions > 0
        orders.add(tuple(scenario.OBSERVED))  # what the play ran
    assert len(orders) > 1  # the random choosers really reorder them


# -- /aio/multi: test-aio-multithread.c ----------------------------------------------------

NUM_CONTEXTS = 5


def test_multi_lifecycle() -> None:
    with Simulation() as sim:
        ios = [sim.iothread(f"io{i}") for i in range(NUM_CONTEXTS)]
        for io in ios:
            io.stop()
        for io in ios:
            assert io.join()
        assert all(io.thread is not None and io.thread.done for io in ios)


@pytest.mark.parametrize("seed", range(3))
def test_multi_co_schedule(seed: int) -> None:
    """Coroutines hop to random IOThreads: to_schedule[n] is where n's parked one waits."""
    with Simulation(seed, chooser=RandomChooser(seed)) as sim:
        ios = [sim.iothread(f"io{i}") for i in range(NUM_CONTEXTS)]
        index = {io.ctx: i for i, io in enumerate(ios)}
        to_schedule: list[Coroutine | None] = [None] * NUM_CONTEXTS
        counts = {"here": 0, "other": 0, "retry": 0}
        stopping = False
        active = [NUM_CONTEXTS]  # coroutines not parked in to_schedule
        cos: list[Coroutine] = []

        def my_id() -> int:
            ctx = qemu_get_current_aio_context()
            assert ctx is not None
            return index[ctx]

        def schedule_next(n: int) -> bool:
            co, to_schedule[n] = to_schedule[n], None
            if co is None:
                counts["retry"] += 1
                return False
            counts["here" if n == my_id() else "other"] += 1
            aio_co_schedule(ios[n].ctx, co)
            return True

        def entry() -> None:
            me = my_id()
            assert to_schedule[me] is None
            while not stopping:
                qemu_co_sleep_ns(ClockType.VIRTUAL, SCALE_US)  # virtual time per hop
                if schedule_next(sim.random.randrange(NUM_CONTEXTS)):
                    active[0] += 1
                elif active[0] == 1:
                    # The last one running does not park: with real threads
                    # a slot fills a moment later, but here every coroutine
                    # would park with nobody left to wake them.
                    continue
                active[0] -= 1
                me = my_id()
                to_schedule[me] = qemu_coroutine_self()
                qemu_coroutine_yield()
                assert to_schedule[my_id()] is None

        for io in ios:
            co = qemu_coroutine_create(entry)
            cos.append(co)
            aio_co_schedule(io.ctx, co)
        sim.run(until_ns=SCALE_MS)
        stopping = True
        for i, io in enumerate(ios):
            io.ctx.bh_schedule_oneshot(lambda i=i: schedule_next(i))
        # The ones asleep mid-hop see stopping when they wake, a microsecond on.
        sim.run(until_ns=sim.now_ns + 10 * SCALE_US)
        for io in ios:
            io.stop()
        for io in ios:
            assert io.join()
        sim.run()
    assert all(co.done for co in cos)
    assert counts["here"] + counts["other"] > 100
    assert counts["other"] > counts["here"] > 0
    assert counts["retry"] > 0


# -- the README's example ------------------------------------------------------------------


def test_the_readme_coroutine_example_runs_verbatim_and_prints_what_it_says(
    capsys: pytest.CaptureFixture[str],
) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    (example,) = [b for b in blocks if "qemu_coroutine_create" in b]
    promised = re.search(r"print\(log\)\s+# (.*)\n", example)
    assert promised is not None
    exec(compile(example, "README.md", "exec"), {})
    assert capsys.readouterr().out == promised.group(1) + "\n"
