"""The quiet iterations of Simulation.run (evloop/loop/quiet.py) are exact.

Simulation.run may run quiet main-loop iterations cheaply: warp to the one
timer list's deadlines (a main-loop list, or a context's, whose waits glib
rounds to whole ms) and run them directly, run batches of bottom halves back
to back, or run ready fd handlers iteration after iteration, only where a
full main_loop_wait would do the same. These tests run randomized scenarios
both ways and require the same steps, the same log, the same digest and the
same checkpoints.
"""

from __future__ import annotations

import select
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evloop import BH, SCALE_MS, ClockType, Seams, Simulation, Timer


@dataclass(frozen=True)
class Op:
    kind: str
    a: int
    b: int


ops = st.lists(
    st.builds(
        Op,
        st.sampled_from(
            [
                "main_timer",
                "ctx_timer",
                "bh",
                "idle_bh",
                "pipe",
                "thread",
                "host_timer",
                "rt_timer",
                "disable_virtual",
                "peer",
                "bh_family",
                "nested_poll",
                "rearm_other",
                "ioh_work",
                "ctx_rearm",
                "ioh_rearm",
                "bounce",
            ]
        ),
        st.integers(0, 5),
        st.integers(0, 3_000_000),
    ),
    max_size=25,
)


def build(sim: Simulation, script: list[Op]) -> list[object]:
    """Set up a scenario from ``script``; callbacks append what they see to a list."""
    seen: list[object] = []
    ml = sim.main_loop
    aio = ml.aio_context
    ioh = ml.iohandler_context
    r, w = sim.fds.pipe()

    def on_read() -> None:
        seen.append(("read", sim.fds.read(r, 100), sim.now_ns))

    aio.set_fd_handler(r, on_read, None)
    for i, op in enumerate(script):
        if op.kind in ("main_timer", "host_timer", "rt_timer"):
            clock = {
                "main_timer": ClockType.VIRTUAL,
                "host_timer": ClockType.HOST,
                "rt_timer": ClockType.REALTIME,
            }[op.kind]
            repeats = [op.a]
            holder: list[Timer] = []  # each callback re-arms its own timer

            def fire(
                i: int = i,
                clock: ClockType = clock,
                op: Op = op,
                repeats: list[int] = repeats,
                holder: list[Timer] = holder,
            ) -> None:
                seen.append(("timer", i, sim.now_ns))
                if repeats[0] > 0:
                    repeats[0] -= 1
                    holder[0].mod_ns(sim.clock.get_ns(clock) + op.b // 3 + 1)
                    if op.a == 3:
                        aio.bh_schedule_oneshot(lambda: seen.append(("bh-from-timer", i)))
                    if op.a == 4:
                        sim.fds.write(w, b"t")

            timer = ml.timer_new_ns(clock, fire)
            holder.append(timer)
            timer.mod_ns(sim.clock.get_ns(clock) + op.b)
        elif op.kind == "ctx_timer":
            t2 = aio.timer_new_ns(ClockType.VIRTUAL, lambda i=i: seen.append(("ctx", i)))
            t2.mod_ns(op.b + 250_000)
        elif op.kind in ("bh", "idle_bh"):
            count = [op.a + 1]
            bhs: list[BH] = []  # each callback reschedules its own BH

            def run_bh(
                i: int = i, count: list[int] = count, idle: bool = op.kind == "idle_bh",
                bhs: list[BH] = bhs,
            ) -> None:
                seen.append(("bh", i, count[0]))
                count[0] -= 1
                if count[0] > 0:
                    bhs[0].schedule_idle() if idle else bhs[0].schedule()

            bh = aio.bh_new(run_bh)
            bhs.append(bh)
            bh.schedule()
        elif op.kind == "bh_family":
            # A BH that schedules a oneshot, deletes or cancels a sibling, and
            # re-schedules itself: the flag machine inside one batch.
            sibling = aio.bh_new(lambda i=i: seen.append(("sibling", i)))
            left = [op.a + 1]

            me: list[BH] = []

            def parent(
                i: int = i, op: Op = op, left: list[int] = left, sibling: BH = sibling,
                me: list[BH] = me,
            ) -> None:
                seen.append(("parent", i, left[0]))
                left[0] -= 1
                aio.bh_schedule_oneshot(lambda: seen.append(("oneshot", i)))
                if left[0] == 1 and op.b % 3 == 0:
                    sibling.delete()
                elif left[0] > 0:
                    sibling.schedule()
                    if op.b % 3 == 1:
                        sibling.cancel()
                if left[0] > 0:
                    me[0].schedule()

            me.append(aio.bh_new(parent))
            me[0].schedule()
            sibling.schedule()
        elif op.kind == "rearm_other":
            # Timers that move, cancel or re-arm each other (dead heap entries
            # at the head, ties at the sampled time), some scheduling a BH.
            pair: list[Timer] = []

            def first(i: int = i, op: Op = op, pair: list[Timer] = pair) -> None:
                seen.append(("first", i, sim.now_ns))
                other = pair[1]
                if op.a % 4 == 0:
                    other.cancel()
                elif op.a % 4 == 1:
                    other.mod_ns(sim.clock.get_ns(ClockType.VIRTUAL))  # due now: same pass
                elif op.a % 4 == 2:
                    other.mod_ns(sim.clock.get_ns(ClockType.VIRTUAL) + op.b // 7 + 1)
                if op.b % 2:
                    aio.bh_schedule_oneshot(lambda: seen.append(("bh-from-first", i)))

            def second(i: int = i, pair: list[Timer] = pair) -> None:
                seen.append(("second", i, sim.now_ns))

            pair.append(ml.timer_new_ns(ClockType.VIRTUAL, first))
            pair.append(ml.timer_new_ns(ClockType.VIRTUAL, second))
            pair[0].mod_ns(op.b)
            pair[1].mod_ns(op.b)
            pair[1].mod_ns(op.b + op.a // 4)  # a dead entry left behind, between
        elif op.kind == "ioh_work":
            # A BH gives iohandler_context work (a BH, or a timer due at once
            # or later), sometimes polling it right away.

            def give(i: int = i, op: Op = op) -> None:
                seen.append(("give", i))
                if op.a % 3 == 0:
                    ioh.bh_schedule_oneshot(lambda: seen.append(("ioh-bh", i)))
                else:
                    t = ioh.timer_new_ns(
                        ClockType.VIRTUAL, lambda: seen.append(("ioh-timer", i, sim.now_ns))
                    )
                    t.mod_ns(sim.clock.get_ns(ClockType.VIRTUAL) + (op.a % 3 - 1) * op.b)
                if op.b % 2:
                    seen.append(("ioh-polled", i, ioh.poll(False)))

            aio.bh_schedule_oneshot(give)
        elif op.kind == "nested_poll":
            # A BH that polls its own context from inside (AIO_WAIT_WHILE style).
            other = aio.bh_new(lambda i=i: seen.append(("polled", i)))
            rounds = [op.a]
            slot: list[BH] = []

            def waiter(
                i: int = i, rounds: list[int] = rounds, other: BH = other, slot: list[BH] = slot
            ) -> None:
                other.schedule()
                seen.append(("waiter", i, aio.poll(False)))
                if rounds[0] > 0:
                    rounds[0] -= 1
                    slot[0].schedule()

            slot.append(aio.bh_new(waiter))
            if op.a < 5:
                slot[0].schedule()
            if op.b % 2:
                # ... and a timer that does the same, armed by a BH to run
                # right after its batch (due at once).
                def timer_polls(i: int = i, other: BH = other) -> None:
                    other.schedule()
                    seen.append(("timer-polled", i, aio.poll(False)))

                poller = ml.timer_new_ns(ClockType.VIRTUAL, timer_polls)
                aio.bh_schedule_oneshot(
                    lambda poller=poller: poller.mod_ns(sim.clock.get_ns(ClockType.VIRTUAL))
                )
        elif op.kind in ("ctx_rearm", "ioh_rearm"):
            # A context's own timer re-arming itself (glib rounds its wait up
            # to whole ms), on REALTIME or VIRTUAL; some schedule a BH.
            ctx = aio if op.kind == "ctx_rearm" else ioh
            ctx_clock = ClockType.REALTIME if op.a % 2 else ClockType.VIRTUAL
            left = [op.a]
            own: list[Timer] = []

            def again(
                i: int = i, op: Op = op, left: list[int] = left, own: list[Timer] = own,
                ctx_clock: ClockType = ctx_clock,
            ) -> None:
                seen.append(("rearm", i, sim.now_ns))
                if left[0] > 0:
                    left[0] -= 1
                    own[0].mod_ns(sim.clock.get_ns(ctx_clock) + op.b // 5 + 1)
                    if left[0] == 2:
                        aio.bh_schedule_oneshot(lambda: seen.append(("bh-from-rearm", i)))

            own.append(ctx.timer_new_ns(ctx_clock, again))
            own[0].mod_ns(sim.clock.get_ns(ctx_clock) + op.b)
        elif op.kind == "bounce":
            # A byte bounced between two fd read handlers over two pipes; the
            # second handler sometimes schedules a BH or arms a timer.
            r1, w1 = sim.fds.pipe()
            r2, w2 = sim.fds.pipe()
            bounces = [op.a * 3 + 1]

            def hop(i: int = i, r1: int = r1, w2: int = w2) -> None:
                sim.fds.read(r1, 1)
                sim.fds.write(w2, b"b")

            def back(
                i: int = i, op: Op = op, r2: int = r2, w1: int = w1, bounces: list[int] = bounces
            ) -> None:
                sim.fds.read(r2, 1)
                seen.append(("bounce", i, bounces[0], sim.now_ns))
                bounces[0] -= 1
                if bounces[0] > 0:
                    sim.fds.write(w1, b"a")
                if bounces[0] % 3 == 0 and op.b % 3 == 0:
                    aio.bh_schedule_oneshot(lambda: seen.append(("bh-from-fd", i)))
                if bounces[0] % 3 == 1 and op.b % 3 == 1:
                    t3 = aio.timer_new_ns(
                        ClockType.VIRTUAL, lambda: seen.append(("timer-from-fd", i, sim.now_ns))
                    )
                    t3.mod_ns(sim.clock.get_ns(ClockType.VIRTUAL) + op.b // 11)

            aio.set_fd_handler(r1, hop, None)
            aio.set_fd_handler(r2, back, None)
            sim.fds.write(w1, b"a")
        elif op.kind == "pipe":
            sim.fds.write(w, bytes([65 + op.a]))
        elif op.kind == "thread":

            def body(i: int = i, op: Op = op) -> None:
                for _ in range(op.a + 1):
                    sim.sleep(op.b // 4 + 1)
                    aio.bh_schedule_oneshot(lambda: seen.append(("from-thread", i)))

            sim.thread(f"t{i}", body)
        elif op.kind == "disable_virtual":

            def stop_vm() -> None:
                sim.clock.enable(ClockType.VIRTUAL, False)
                seen.append(("vm-stop", sim.now_ns))

            stopper = ml.timer_new_ns(ClockType.REALTIME, stop_vm)
            stopper.mod_ns(op.b * 2)
        elif op.kind == "peer":
            a, b = sim.fds.socketpair()
            peer = sim.peer(b, name=f"peer{i}")
            peer.send(b"x" * (op.a + 1), at_ns=op.b)
            ml.set_fd_handler(a, lambda a=a: seen.append(("sock", sim.fds.read(a, 64))), None)
    return seen


class Hooks:
    """What the replay layer sees: checkpoints (with the digest and the recent steps)."""

    def __init__(self) -> None:
        self.sim: Simulation | None = None
        self.seen: list[object] = []

    def checkpoint(self, step: int) -> None:
        assert self.sim is not None
        recent = [e.as_tuple() for e in self.sim.recent_events()]
        self.seen.append(("checkpoint", step, self.sim.digest, recent))

    def input(self, channel: str, data: bytes, close: bool) -> None:
        self.seen.append(("input", channel, data, close))

    def shutdown(self, cause: str) -> None:
        self.seen.append(("shutdown", cause))


def run(
    script: list[Op],
    fast: bool,
    log: bool,
    until: int | None,
    steps: int | None,
    hooked: bool = False,
):
    hooks = Hooks() if hooked else None
    with Simulation(
        seed=1, log=log, fast_path=fast,
        recent=3 if hooked else 0, checkpoint_interval=3,
    ) as sim:
        if hooks is not None:
            hooks.sim = sim
            sim.plug(Seams(hooks=hooks))
        seen = build(sim, script)
        result = sim.run(until_ns=until, max_steps=steps)
        return (
            result,
            sim.steps,
            sim.digest,
            sim.now_ns,
            seen,
            None if sim.log is None else [e.as_tuple() for e in sim.log],
            None if hooks is None else hooks.seen,
        )


@pytest.mark.slow
@settings(max_examples=500, deadline=None)
@given(
    script=ops,
    log=st.booleans(),
    until=st.none() | st.integers(0, 20 * SCALE_MS),
    steps=st.none() | st.integers(0, 60),
    hooked=st.booleans(),
)
def test_fast_path_is_observably_identical_to_the_full_loop(script, log, until, steps, hooked):
    # hooked: as under record and play, with checkpoints every 3 steps that
    # see the digest and the ring of recent steps.
    fast = run(script, True, log, until, steps, hooked)
    assert fast == run(script, False, log, until, steps, hooked)



@settings(max_examples=150, deadline=None)
@given(script=ops, fast=st.booleans())
def test_the_lean_observer_folds_the_same_digest_as_the_logging_one(script, fast):
    # Without a log the simulation counts and folds steps with its lean
    # observer (which keeps the key's upper half between dispatches); with
    # one, with _observe. Contexts, kinds and threads change in these runs.
    lean = run(script, fast, False, None, None)
    logged = run(script, fast, True, None, None)
    assert lean[1:4] == logged[1:4]  # steps, digest, time
    assert lean[1] == len(logged[5])


@settings(max_examples=150, deadline=None)
@given(script=ops, fast=st.booleans())
def test_the_lean_observer_keeps_the_same_ring_of_recent_steps_as_the_logging_one(script, fast):
    # With a ring of recent steps (as record and play keep one) and no log,
    # the lean observer keeps the ring; with a log, _observe does. Every
    # periodic checkpoint sees the digest and the ring.
    lean = run(script, fast, False, None, None, hooked=True)
    logged = run(script, fast, True, None, None, hooked=True)
    assert lean[1:4] == logged[1:4]  # steps, digest, time
    assert lean[6] == logged[6]  # each checkpoint's step, digest and recent steps
    assert lean[1] == len(logged[5])


def test_the_lean_observer_folds_the_thread_of_each_dispatch_on_one_context() -> None:
    # Two threads of control take turns polling one context: the same kind
    # and context, dispatched by one thread and then the other.
    def digest(log: bool) -> tuple[int, int]:
        with Simulation(log=log) as sim:
            ctx = sim.new_aio_context("shared")

            def worker(name: str) -> Callable[[], None]:
                def body() -> None:
                    for i in range(5):
                        ctx.bh_schedule_oneshot(lambda: None, name=f"{name}{i}")
                        ctx.poll(False)
                        sim.sleep(10)

                return body

            sim.thread("a", worker("a"))
            sim.thread("b", worker("b"))
            sim.run()
            if log:
                assert sim.log is not None
                assert [e.thread for e in sim.log if e.kind == "bh"][:2] == ["a", "b"]
            return sim.steps, sim.digest

    assert digest(False) == digest(True)

def test_fast_path_handles_many_timers_like_the_full_loop() -> None:
    script = [Op("main_timer", 5, 1000 * k + 7) for k in range(40)]
    fast = run(script, True, False, None, None)
    full = run(script, False, False, None, None)
    assert fast == full
    assert fast[1] == 40 * 6  # every timer fired 1 + 5 times


def test_fast_path_stops_at_until_exactly() -> None:
    script = [Op("main_timer", 5, 1_000_000)]
    result = run(script, True, False, 2_500_000, None)[0]
    assert result.time_ns == 2_500_000
    assert result.reason.value == "until"


def test_fd_ready_during_fast_path_falls_back() -> None:
    # A timer writing into a watched pipe must see its handler run in the same
    # iteration order as the full loop.
    script = [Op("main_timer", 4, 10), Op("main_timer", 4, 500_000)]
    assert run(script, True, True, None, None) == run(script, False, True, None, None)
    assert any(e[0] == "read" for e in run(script, True, True, None, None)[4])


_ = select


def test_a_step_limit_reached_inside_the_fast_path_is_not_overrun() -> None:
    # Found by the property above: the timer (step 1) schedules a BH; the fast
    # path hands back to the full loop, which must stop before running it.
    script = [Op("main_timer", 3, 0)]
    fast = run(script, True, False, None, 1)
    assert fast == run(script, False, False, None, 1)
    assert fast[0].steps == 1


def test_a_dead_entry_between_two_due_timers_does_not_end_the_pass() -> None:
    # The first timer schedules a BH; a dead heap entry sits between it and a
    # second timer due at the same time. run_timers runs both in one pass,
    # before the BH: the fast path must not stop at the dead entry.
    script = [Op("rearm_other", 3, 1001)]
    fast = run(script, True, False, None, None)
    assert fast == run(script, False, False, None, None)
    names = [e[0] for e in fast[4]]
    assert names.index("second") < names.index("bh-from-first")
