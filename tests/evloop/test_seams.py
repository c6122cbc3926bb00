"""Tests for evloop.seams: every replay seam, plugged once through ``Simulation.plug``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from evloop import (
    SCALE_MS,
    Blocker,
    ChoiceKind,
    Chooser,
    ClockType,
    Seams,
    Simulation,
    SimulationError,
    WaitCondition,
)
from evloop.seams import bind_observer


class Hooks:
    def __init__(self) -> None:
        self.seen: list[tuple[str, object]] = []

    def checkpoint(self, step: int) -> None:
        self.seen.append(("checkpoint", step))

    def input(self, channel: str, data: bytes, close: bool) -> None:
        self.seen.append(("input", (channel, data, close)))

    def shutdown(self, cause: str) -> None:
        self.seen.append(("shutdown", cause))


class Last:
    """A chooser that always picks the last option, and remembers what it wrapped."""

    def __init__(self, inner: Chooser) -> None:
        self.inner = inner
        self.asked: list[tuple[ChoiceKind, list[str]]] = []

    def choose(self, kind: ChoiceKind, options: Sequence[str]) -> int:
        self.asked.append((kind, list(options)))
        return len(options) - 1


class CountingBlocker:
    def __init__(self, inner: Blocker) -> None:
        self.inner = inner
        self.waits = 0

    def block(self, cond: WaitCondition, timeout_ns: int) -> None:
        self.waits += 1
        self.inner.block(cond, timeout_ns)


def test_every_seam_is_plugged_by_one_call() -> None:
    hooks = Hooks()
    wrapped: list[Last] = []
    blockers: list[CountingBlocker] = []

    def chooser(inner: Chooser) -> Chooser:
        wrapped.append(Last(inner))
        return wrapped[-1]

    def blocker(inner: Blocker) -> Blocker:
        blockers.append(CountingBlocker(inner))
        return blockers[-1]

    with Simulation(checkpoint_interval=2) as sim:
        own = sim.chooser
        sim.plug(Seams(
            chooser=chooser,
            clock_read=lambda clock_type, value: value + 7,
            random_draw=lambda value: 42,
            hooks=hooks,
            blocker=blocker,
        ))
        assert sim.chooser is wrapped[0] and wrapped[0].inner is own
        assert sim.clock.get_ns(ClockType.HOST) == sim.clock._now[ClockType.HOST] + 7
        assert sim.random.getrandbits(64) == 42
        assert sim.fds.blocker is blockers[0]
        order: list[str] = []
        for name in ("a", "b"):
            sim.thread(name, lambda name=name: order.append(name))
        sim.run()
        assert order == ["b", "a"]  # the last option each time
        assert wrapped[0].asked == [(ChoiceKind.THREAD, ["a", "b"])]
        assert blockers[0].waits > 0
        assert hooks.seen[0] == ("checkpoint", 2)


def test_a_timer_gate_reaches_every_timer_list_even_of_later_contexts() -> None:
    gated: list[tuple[str, ClockType]] = []
    ran: list[str] = []
    with Simulation(fast_path=False) as sim:
        ctx = sim.main_loop.aio_context

        def gate(clock_type: ClockType) -> bool:
            gated.append((sim.current_thread.name, clock_type))
            return True

        sim.plug(Seams(timer_gate=gate))
        io = sim.iothread("io0")
        for owner, name in ((sim.main_loop, "main"), (ctx, "aio"), (io.ctx, "io")):
            label = f"{name}-HOST"
            t = owner.timer_new_ns(ClockType.HOST, lambda label=label: ran.append(label))
            t.mod_ns(sim.clock._now[ClockType.HOST] + SCALE_MS)
        sim.run(until_ns=10 * SCALE_MS)
    assert sorted(ran) == ["aio-HOST", "io-HOST", "main-HOST"]
    assert sorted(set(gated)) == [("io0", ClockType.HOST), ("main", ClockType.HOST)]


def test_seams_are_plugged_once() -> None:
    with Simulation() as sim:
        sim.plug(Seams())
        with pytest.raises(
            SimulationError, match=r"^a simulation's seams are plugged once; this one already is$"
        ):
            sim.plug(Seams())


def test_seams_are_plugged_before_the_first_step() -> None:
    with Simulation() as sim:
        sim.main_loop.aio_context.bh_schedule_oneshot(lambda: None)
        sim.run()
        with pytest.raises(
            SimulationError,
            match=r"^plug the seams before the simulation runs \(it has run 1 steps\)$",
        ):
            sim.plug(Seams())


def test_an_empty_seams_value_changes_nothing() -> None:
    def run(plugged: bool) -> tuple[int, int, list[str]]:
        with Simulation(seed=3) as sim:
            if plugged:
                sim.plug(Seams())
            out: list[str] = []
            for name in ("a", "b", "c"):
                sim.thread(name, lambda name=name: (sim.yield_now(), out.append(name)))
            sim.run()
            return sim.steps, sim.digest, out

    assert run(True) == run(False)


# -- bind_observer ---------------------------------------------------------------------


def test_bind_observer_tells_a_plain_observer_what_it_would_be_told() -> None:
    seen: list[tuple[int, object, object]] = []

    def observer(kind: int, ctx: object, what: object) -> None:
        seen.append((kind, ctx, what))

    bound = bind_observer(observer, 4, "ctx")
    bound("a")
    bound("b")
    assert seen == [(4, "ctx", "a"), (4, "ctx", "b")]


def test_bind_observer_takes_the_bound_form_an_observer_offers() -> None:
    calls: list[object] = []

    class Bindable:
        def __call__(self, kind: int, ctx: object, what: object) -> None:
            calls.append(("unbound", what))

        def bind(self, kind: int, ctx: object) -> Callable[[object], None]:
            return lambda what: calls.append((kind, ctx, what))

    bind_observer(Bindable(), 1, "c")("w")
    assert calls == [(1, "c", "w")]


class _Item:
    def __init__(self, uid: int) -> None:
        self.uid = uid


@pytest.mark.parametrize("recent", [0, 4])
def test_the_simulations_bound_observer_counts_and_folds_as_the_unbound_one(recent: int) -> None:
    # The same dispatches told to a simulation's lean observer one by one,
    # and through its bound form: the same steps, digest and ring of recent steps.
    def told(bound: bool) -> tuple[int, int, list[tuple[object, ...]]]:
        with Simulation(recent=recent) as sim:
            observer = sim._dispatch_observer
            assert hasattr(observer, "bind")  # the lean observer offers it
            ctx = sim.main_loop.aio_context
            items = [_Item(uid) for uid in (3, 1, 2, 7)]
            for now, item in enumerate(items):
                sim.clock.advance(now * 1000 + 1)
                if bound:
                    bind_observer(observer, 4, ctx)(item)
                else:
                    observer(4, ctx, item)
            ring = [(*raw[:4], raw[5].uid) for raw in sim._recent or ()]
            return sim.steps, sim.digest, ring

    assert told(True) == told(False)
    assert told(True)[0] == 4
