"""Scenarios that find a bug: an assertion fails in a callback or a thread of control.

The failure's message includes an object's repr (with its address), which
differs between processes; the recorded cause masks it.
"""

from __future__ import annotations

from evloop import SCALE_MS, SCALE_US, ClockType, Simulation
from replay import ReplayError

#: The scenarios check their invariants only while this is true (a test turns it off).
ASSERTIONS = True


class Widget:
    """Something whose default repr carries a memory address."""


def callback_fails(sim: Simulation, *, at_tick: int = 3) -> None:
    """A timer callback asserts on a random draw and fails at tick ``at_tick``."""
    ticks: list[int] = []

    def tick() -> None:
        ticks.append(sim.random.randrange(100))
        assert not ASSERTIONS or len(ticks) <= at_tick, (
            f"tick {len(ticks)} of {Widget()!r}: drew {ticks}"
        )
        timer.mod_ns(sim.now_ns + SCALE_MS)

    timer = sim.main_loop.timer_new_ns(ClockType.REALTIME, tick, name="checked-tick")
    timer.mod_ns(SCALE_MS)


def thread_fails(sim: Simulation, *, workers: int = 3, rounds: int = 20) -> None:
    """Workers race on a counter; one asserts an invariant the interleaving breaks."""
    state = {"counter": 0}

    def body(w: int) -> None:
        for n in range(rounds):
            seen = state["counter"]
            sim.yield_now()
            state["counter"] = seen + 1
            if ASSERTIONS and w == 0 and n == rounds - 1:
                assert state["counter"] == workers * rounds, (
                    f"lost updates: counter is {state['counter']}, not {workers * rounds}"
                )
            sim.sleep(SCALE_US)

    for w in range(workers):
        sim.thread(f"racer{w}", lambda w=w: body(w))


def setup_fails(sim: Simulation) -> None:
    """The scenario function itself raises while setting up, after one random draw."""
    sim.random.getrandbits(64)
    raise ValueError("bad machine configuration")


def replay_error(sim: Simulation) -> None:
    """A scenario that raises the replay layer's own error from a callback."""

    def misuse() -> None:
        raise ReplayError("the scenario misused the replay layer")

    sim.main_loop.timer_new_ns(ClockType.REALTIME, misuse, name="misuse").mod_ns(SCALE_MS)


#: How a failure's message varies from run to run (a test sets it).
MESSAGE = ["first"]
#: The type :func:`message_varies` raises (a test swaps it).
ERROR: list[type[Exception]] = [KeyError]


def message_varies(sim: Simulation) -> None:
    """A callback raises with a message that differs between runs (as a set's order does)."""

    def fail() -> None:
        raise ERROR[0](frozenset({"a", "b", "c"}), MESSAGE[0])

    sim.main_loop.aio_context.bh_schedule_oneshot(fail, name="fail")


def thread_fails_two(sim: Simulation, *, rounds: int = 20) -> None:
    """:func:`thread_fails` with one worker fewer: a changed scenario, for reruns."""
    thread_fails(sim, workers=2, rounds=rounds)


def spins(sim: Simulation) -> None:
    """A thread of control that never waits: only the wall-clock watchdog ends it."""

    def spin() -> None:
        n = 0
        while True:
            n += 1

    sim.thread("spinner", spin)


def nested_polls(sim: Simulation) -> None:
    """A bottom half that polls its own context from inside itself, deeper each time.

    Each level draws a random number and schedules the next level, until the
    stack runs out: a RecursionError, at a step that only the program's own
    frames decide.
    """
    ctx = sim.main_loop.aio_context

    def level() -> None:
        sim.random.getrandbits(64)
        ctx.bh_schedule_oneshot(level, name="level")
        ctx.poll(False)

    ctx.bh_schedule_oneshot(level, name="level")
