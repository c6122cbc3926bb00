"""Tests for evloop.sanitizer: real time and randomness, routed or refused inside a run.

What these pin down, from the issue:

* while a sanitized simulation runs, ``time.time``/``monotonic``/``perf_counter``
  (and their ``_ns`` forms), ``time.sleep``, module-level ``random.*``,
  ``os.urandom`` and ``uuid.uuid1``/``uuid4`` called from its threads of
  control are answered from its clock and RNG (routed), or raise
  :class:`NondeterminismError` naming the call site and what to use instead
  (strict); an unregistered thread is refused in both modes;
* a call from any other OS thread during the run gets the real function;
* nothing is patched outside a sanitizer, and everything is put back on exit,
  also when the run raises; nested use is a no-op for the inner one;
* a scenario that picks timer delays from ``time.time()`` is deterministic
  when sanitized, and records and plays bit-exactly (simulation and host mode).

The scenarios at the end are module-level so that a play can import them by
the name the trace holds (``tests.evloop.test_sanitizer:...``). Pytest may import
this file under another name, so the tests read what a scenario observed
through :func:`scenario_module`.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import evloop
from evloop import (
    HOST_EPOCH_NS,
    SCALE_MS,
    ClockType,
    EvloopError,
    FifoChooser,
    NondeterminismError,
    Simulation,
    SimulationError,
)
from evloop.machine.sanitizer import PATCHED_CALLS, RANDOM_FUNCTIONS, Sanitizer
from replay import (
    EventKind,
    Player,
    Recorder,
    ReplayDivergence,
    TraceHeader,
    TraceReader,
    TraceWriter,
    play,
    record,
)
from replay.host.mode import play_host, record_host
from tests.helpers import assert_same_run

SCENARIOS = "tests.evloop.test_sanitizer"
WALL_CLOCK = f"{SCENARIOS}:wall_clock_scenario"

#: Where each patched attribute lives, by the name the sanitizer's messages use.
OWNERS: dict[str, tuple[object, str]] = {
    call: (
        (threading.Thread, "start")
        if call == "threading.Thread.start"
        else ({"time": time, "random": random, "os": os, "uuid": uuid}[call.split(".")[0]],
              call.split(".")[1])
    )
    for call in PATCHED_CALLS
}


def current_attributes() -> dict[str, object]:
    return {call: getattr(owner, attr) for call, (owner, attr) in OWNERS.items()}


ORIGINALS = current_attributes()


@pytest.fixture(autouse=True)
def nothing_left_patched() -> Iterator[None]:
    """Every test starts and ends with the real functions in place."""
    assert current_attributes() == ORIGINALS
    yield
    assert current_attributes() == ORIGINALS


def display_path(filename: str) -> str:
    """How a call site's file is shown: relative to the working directory when inside it."""
    relative = os.path.relpath(filename)
    return filename if relative.startswith(os.pardir) else relative


def call_patched(owner: object, attr: str, *args: Any, **kwargs: Any) -> Any:
    return getattr(owner, attr)(*args, **kwargs)  # the call site strict mode names


CALL_SITE = f"{display_path(__file__)}:{call_patched.__code__.co_firstlineno + 1}"


def refusal(call: str, advice: str, site: str = CALL_SITE, note: str | None = None) -> str:
    """The exact message of a refused call (and the note pytest adds), as a ``match`` pattern."""
    message = f"{call}() called at {site} inside a simulation: {advice} instead"
    if note is not None:
        message += f"\n{note}"
    return "^" + re.escape(message) + "$"


HOST_ADVICE = "read the simulation's clock (sim.clock.get_ns(ClockType.HOST))"
REALTIME_ADVICE = "read the simulation's clock (sim.now_ns, the REALTIME clock)"
UUID_ADVICE = (
    "build it from the simulation's RNG (uuid.UUID(bytes=sim.random.randbytes(16), version=4))"
)
THREAD_ADVICE = (
    "a thread the simulation does not know runs outside its turn lock and cannot be made "
    "deterministic; start a thread of control with sim.thread(name, fn)"
)


def advice_for(call: str) -> str:
    if call in ("time.time", "time.time_ns"):
        return HOST_ADVICE
    if call.startswith(("time.monotonic", "time.perf_counter")):
        return REALTIME_ADVICE
    if call == "time.sleep":
        return "block in virtual time (sim.sleep(ns))"
    if call.startswith("random."):
        return f"draw from the simulation's RNG (sim.{call})"
    if call == "os.urandom":
        return "draw from the simulation's RNG (sim.random.randbytes(n))"
    if call.startswith("uuid."):
        return UUID_ADVICE
    assert call == "threading.Thread.start"
    return THREAD_ADVICE


def moved_sim(seed: int = 7) -> Simulation:
    """A simulation whose clocks have moved off zero, so that a wrong clock shows."""
    sim = Simulation(seed)
    sim.clock.advance(1_234_567_891)
    return sim


#: Arguments for each routed ``random`` function (fresh objects each call).
RANDOM_ARGS: dict[str, Callable[[], tuple[tuple[Any, ...], dict[str, Any]]]] = {
    "betavariate": lambda: ((2.0, 3.0), {}),
    "binomialvariate": lambda: ((), {"n": 10, "p": 0.3}),
    "choice": lambda: (([10, 20, 30, 40],), {}),
    "choices": lambda: (("abcdef",), {"k": 5}),
    "expovariate": lambda: ((1.5,), {}),
    "gammavariate": lambda: ((2.0, 1.0), {}),
    "gauss": lambda: ((0.0, 1.0), {}),
    "getrandbits": lambda: ((70,), {}),
    "lognormvariate": lambda: ((0.0, 1.0), {}),
    "normalvariate": lambda: ((0.0, 1.0), {}),
    "paretovariate": lambda: ((2.0,), {}),
    "randbytes": lambda: ((9,), {}),
    "randint": lambda: ((1, 6), {}),
    "random": lambda: ((), {}),
    "randrange": lambda: ((10, 1000, 7), {}),
    "sample": lambda: ((range(100), 5), {}),
    "shuffle": lambda: ((list(range(20)),), {}),
    "triangular": lambda: ((0.0, 10.0, 2.0), {}),
    "uniform": lambda: ((1.0, 2.0), {}),
    "vonmisesvariate": lambda: ((0.0, 1.0), {}),
    "weibullvariate": lambda: ((1.0, 2.0), {}),
}


def patched_call_args(call: str) -> tuple[object, str, tuple[Any, ...], dict[str, Any]]:
    """owner, attribute and arguments of one call of each patched function."""
    owner, attr = OWNERS[call]
    if call.startswith("random."):
        args, kwargs = RANDOM_ARGS[attr]()
        return owner, attr, args, kwargs
    if call == "threading.Thread.start":
        return threading.Thread(target=lambda: None), attr, (), {}
    extra: dict[str, tuple[Any, ...]] = {"time.sleep": (0.5,), "os.urandom": (8,)}
    return owner, attr, extra.get(call, ()), {}


# -- the surface -------------------------------------------------------------------------


def test_every_leaky_call_of_the_issue_is_patched() -> None:
    assert set(PATCHED_CALLS) == {
        "time.time", "time.time_ns", "time.monotonic", "time.monotonic_ns",
        "time.perf_counter", "time.perf_counter_ns", "time.sleep",
        "os.urandom", "uuid.uuid1", "uuid.uuid4", "threading.Thread.start",
        *(f"random.{name}" for name in RANDOM_FUNCTIONS),
    }
    assert len(PATCHED_CALLS) == len(set(PATCHED_CALLS))


def test_every_function_of_the_hidden_random_instance_is_routed_but_its_state() -> None:
    hidden = random.random.__self__  # type: ignore[attr-defined]  # the global Random()
    bound = {
        name for name in dir(random)
        if getattr(getattr(random, name), "__self__", None) is hidden
    }
    assert set(RANDOM_FUNCTIONS) == bound - {"seed", "getstate", "setstate"}
    assert set(RANDOM_ARGS) >= set(RANDOM_FUNCTIONS)


def test_nondeterminism_error_is_an_exported_evloop_error() -> None:
    assert issubclass(NondeterminismError, EvloopError)
    assert evloop.NondeterminismError is NondeterminismError
    assert "NondeterminismError" in evloop.__all__


def test_sanitize_is_off_by_default_and_patches_nothing() -> None:
    seen: list[float] = []
    sim = Simulation(sanitize=False)
    sim.main_loop.timer_new_ns(ClockType.REALTIME, lambda: seen.append(time.time())).mod_ns(5)
    sim.run()
    assert seen[0] > 1.5e9  # the real wall clock, not HOST (2000-01-01)


def test_building_a_sanitized_simulation_patches_nothing_until_it_runs() -> None:
    Simulation(sanitize=True)
    Simulation(sanitize="strict")
    assert current_attributes() == ORIGINALS


# -- routed: answered from the simulation --------------------------------------------------

CLOCK_ROUTES: dict[str, Callable[[Simulation], object]] = {
    "time.time": lambda sim: sim.clock.get_ns(ClockType.HOST) / 1_000_000_000,
    "time.time_ns": lambda sim: sim.clock.get_ns(ClockType.HOST),
    "time.monotonic": lambda sim: sim.now_ns / 1_000_000_000,
    "time.monotonic_ns": lambda sim: sim.now_ns,
    "time.perf_counter": lambda sim: sim.now_ns / 1_000_000_000,
    "time.perf_counter_ns": lambda sim: sim.now_ns,
}


@pytest.mark.parametrize("call", sorted(CLOCK_ROUTES))
def test_a_routed_clock_read_is_the_simulations_clock(call: str) -> None:
    sim = moved_sim()
    owner, attr = OWNERS[call]
    with Sanitizer(sim):
        got = call_patched(owner, attr)
        assert got == CLOCK_ROUTES[call](sim)
        assert type(got) is (int if call.endswith("_ns") else float)
    assert call_patched(owner, attr) != got  # the real clock again


def test_a_routed_wall_clock_read_goes_through_the_clock_read_hook() -> None:
    sim = moved_sim()
    reads: list[tuple[ClockType, int]] = []

    def hook(clock_type: ClockType, value: int) -> int:
        reads.append((clock_type, value))
        return value + 1_000

    sim.clock.read_hook = hook
    with Sanitizer(sim):
        assert time.time_ns() == HOST_EPOCH_NS + 1_234_567_891 + 1_000
        assert time.monotonic_ns() == 1_234_567_891  # REALTIME has no door
    assert reads == [(ClockType.HOST, HOST_EPOCH_NS + 1_234_567_891)]


def test_a_routed_sleep_blocks_in_virtual_time_to_the_nearest_ns() -> None:
    sim = Simulation()
    with Sanitizer(sim):
        time.sleep(1.001)  # int(1.001 * 1e9) would be 1 ns short
        assert sim.now_ns == 1_001_000_000
        time.sleep(2)
        assert sim.now_ns == 3_001_000_000
        time.sleep(0)
        assert sim.now_ns == 3_001_000_000
        with pytest.raises(ValueError, match=r"^sleep length must be non-negative$"):
            time.sleep(-0.5)
        with pytest.raises(ValueError, match=r"^Invalid value NaN \(not a number\)$"):
            time.sleep(float("nan"))


def test_a_routed_sleep_in_threads_of_control_interleaves_in_virtual_time() -> None:
    sim = Simulation(sanitize=True)
    seen: list[tuple[str, int]] = []

    def worker(name: str, period_s: float) -> Callable[[], None]:
        def run() -> None:
            for _ in range(3):
                time.sleep(period_s)  # 300 virtual seconds in all: no real wait
                seen.append((name, sim.now_ns))

        return run

    sim.thread("slow", worker("slow", 100.0))
    sim.thread("fast", worker("fast", 40.0))
    sim.run()
    assert seen == [
        ("fast", 40 * 10**9), ("fast", 80 * 10**9), ("slow", 100 * 10**9),
        ("fast", 120 * 10**9), ("slow", 200 * 10**9), ("slow", 300 * 10**9),
    ]


def test_a_patched_function_evloop_calls_directly_is_still_sanitized() -> None:
    # evloop itself is not an exempt caller: a thread whose function *is*
    # time.sleep sleeps in virtual time. (The partial is made during the run:
    # one made before it would hold the real time.sleep, like ``from time import``.)
    sim = Simulation(sanitize=True)
    sim.main_loop.timer_new_ns(
        ClockType.REALTIME,
        lambda: sim.thread("sleeper", functools.partial(time.sleep, 5)),
        name="spawn",
    ).mod_ns(0)
    sim.run()
    assert sim.now_ns == 5 * 10**9


@pytest.mark.parametrize("name", RANDOM_FUNCTIONS)
def test_a_routed_random_call_is_the_same_call_on_sim_random(name: str) -> None:
    sim, twin = Simulation(seed=11), Simulation(seed=11)
    hidden_state = random.getstate()
    args, kwargs = RANDOM_ARGS[name]()
    with Sanitizer(sim):
        got = call_patched(random, name, *args, **kwargs)
    twin_args, twin_kwargs = RANDOM_ARGS[name]()
    expected = getattr(twin.random, name)(*twin_args, **twin_kwargs)
    assert got == expected
    if name == "shuffle":
        assert args == twin_args and args[0] != sorted(args[0])
    assert sim.random.getstate() == twin.random.getstate() != Simulation(seed=11).random.getstate()
    assert random.getstate() == hidden_state  # the hidden instance was not touched


def test_routed_random_draws_go_through_the_draw_hook() -> None:
    sim = Simulation(seed=3)
    draws: list[int] = []

    def hook(value: int) -> int:
        draws.append(value)
        return 42

    sim.random.draw_hook = hook
    with Sanitizer(sim):
        assert random.getrandbits(64) == 42
        assert os.urandom(8) == (42).to_bytes(8, "little")
    assert len(draws) == 2


def test_a_routed_urandom_is_bytes_of_sim_random() -> None:
    sim, twin = Simulation(seed=5), Simulation(seed=5)
    with Sanitizer(sim):
        assert os.urandom(13) == twin.random.randbytes(13)
        assert os.urandom(0) == b""
        with pytest.raises(ValueError, match=r"^negative argument not allowed$"):
            os.urandom(-1)


def test_a_routed_uuid4_is_built_from_sim_random() -> None:
    sim, twin = Simulation(seed=5), Simulation(seed=5)
    with Sanitizer(sim):
        got = uuid.uuid4()
    assert got == uuid.UUID(bytes=twin.random.randbytes(16), version=4)
    assert (got.version, got.variant) == (4, uuid.RFC_4122)


def test_a_routed_uuid1_is_built_from_the_host_clock_and_sim_random() -> None:
    sim, twin = moved_sim(5), Simulation(seed=5)
    timestamp = (HOST_EPOCH_NS + 1_234_567_891) // 100 + 0x01B21DD213814000
    with Sanitizer(sim):
        first = uuid.uuid1()
        second = uuid.uuid1()  # same instant: the timestamp still increases
        given = uuid.uuid1(node=0x123456789ABC, clock_seq=0x1ABC)
    assert (first.version, first.variant) == (1, uuid.RFC_4122)
    assert first.time == timestamp and second.time == timestamp + 1
    assert first.clock_seq == twin.random.getrandbits(14)
    assert first.node == twin.random.getrandbits(48) | (1 << 40)
    assert (given.time, given.node, given.clock_seq) == (timestamp + 2, 0x123456789ABC, 0x1ABC)


# -- strict: refused with the call site ----------------------------------------------------


@pytest.mark.parametrize("call", PATCHED_CALLS)
def test_strict_refuses_every_patched_call_naming_its_site(call: str) -> None:
    sim = moved_sim()
    owner, attr, args, kwargs = patched_call_args(call)
    state = sim.random.getstate()
    with Sanitizer(sim, strict=True), pytest.raises(
        NondeterminismError, match=refusal(call, advice_for(call))
    ) as info:
        call_patched(owner, attr, *args, **kwargs)
    assert (info.value.call, info.value.site) == (call, CALL_SITE)
    assert sim.random.getstate() == state and sim.now_ns == 1_234_567_891  # nothing happened


def test_an_unregistered_thread_is_refused_in_routed_mode_too() -> None:
    sim = Simulation()
    thread = threading.Thread(target=lambda: None)
    with Sanitizer(sim), pytest.raises(
        NondeterminismError, match=refusal("threading.Thread.start", THREAD_ADVICE)
    ):
        call_patched(thread, "start")
    assert thread.ident is None  # it never started
    thread.start()  # outside the simulation it is an ordinary thread
    thread.join()


def read_wall_clock() -> float:
    return time.time()


READ_SITE = f"{display_path(__file__)}:{read_wall_clock.__code__.co_firstlineno + 1}"


def test_strict_refuses_a_read_from_a_callback_during_the_run() -> None:
    sim = Simulation(sanitize="strict")
    sim.main_loop.timer_new_ns(ClockType.REALTIME, read_wall_clock, name="read").mod_ns(10)
    with pytest.raises(NondeterminismError, match=refusal("time.time", HOST_ADVICE, READ_SITE)):
        sim.run()


def test_strict_refuses_a_read_from_a_thread_of_control_and_names_it() -> None:
    sim = Simulation(sanitize="strict")
    sim.thread("reader", read_wall_clock)
    note = "(raised in thread of control 'reader')"
    with pytest.raises(
        NondeterminismError, match=refusal("time.time", HOST_ADVICE, READ_SITE, note)
    ) as info:
        sim.run()
    assert info.value.__notes__ == [note]


@pytest.mark.parametrize("sanitize", [True, "strict"])
def test_threads_of_control_start_in_both_modes_also_during_the_run(
    sanitize: bool | str,
) -> None:
    seen: list[str] = []
    with Simulation(sanitize=sanitize) as sim:

        def spawn() -> None:
            sim.thread("late", lambda: seen.append("late"))
            io = sim.iothread("io")
            io.ctx.bh_schedule_oneshot(lambda: seen.append("io"), name="io-bh")

        sim.thread("early", lambda: seen.append("early"))
        sim.main_loop.timer_new_ns(ClockType.REALTIME, spawn, name="spawn").mod_ns(SCALE_MS)
        sim.run()
    assert sorted(seen) == ["early", "io", "late"]


def test_logging_keeps_the_real_clock_even_in_strict_mode() -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("tests.evloop.test_sanitizer.logging")
    handler = Keep()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        sim = Simulation(sanitize="strict")
        sim.main_loop.timer_new_ns(
            ClockType.REALTIME, lambda: logger.info("tick"), name="log"
        ).mod_ns(SCALE_MS)
        sim.run()
    finally:
        logger.removeHandler(handler)
    assert [r.getMessage() for r in records] == ["tick"]
    assert records[0].created > 1.5e9  # the real wall clock, not HOST


# -- only the simulation's threads ---------------------------------------------------------


def test_another_os_thread_calls_the_real_functions_during_the_run() -> None:
    go, done = threading.Event(), threading.Event()
    seen: dict[str, Any] = {}
    hidden_state = random.getstate()
    random.seed(1234)

    def bystander() -> None:
        go.wait()
        seen["patched"] = time.time is not ORIGINALS["time.time"]
        seen["time"] = time.time()
        seen["random"] = random.random()
        seen["urandom"] = len(os.urandom(4))
        seen["uuid"] = uuid.uuid4().version
        start = time.perf_counter()
        time.sleep(0.002)
        seen["slept"] = time.perf_counter() - start
        helper = threading.Thread(target=lambda: None)
        helper.start()  # not refused: this thread is not the simulation's
        helper.join()
        seen["started"] = helper.ident is not None
        done.set()

    def meet() -> None:
        go.set()
        assert done.wait(timeout=10.0)  # the simulation holds still meanwhile
        seen["sim time"] = time.time()

    outsider = threading.Thread(target=bystander, name="bystander")
    outsider.start()
    try:
        sim = Simulation(sanitize=True)
        sim.main_loop.timer_new_ns(ClockType.REALTIME, meet, name="meet").mod_ns(SCALE_MS)
        sim.run()
        outsider.join(timeout=10.0)
    finally:
        random.setstate(hidden_state)
    assert seen["patched"] is True
    assert seen["time"] > 1.5e9  # the real wall clock, not HOST (2000-01-01)
    assert seen["random"] == random.Random(1234).random()
    assert (seen["urandom"], seen["uuid"], seen["started"]) == (4, 4, True)
    assert seen["slept"] >= 0.002
    assert seen["sim time"] == (HOST_EPOCH_NS + SCALE_MS) / 1_000_000_000


# -- undone on exit ------------------------------------------------------------------------


def test_everything_is_patched_during_the_run_and_restored_after() -> None:
    during: dict[str, object] = {}
    sim = Simulation(sanitize=True)
    sim.main_loop.timer_new_ns(
        ClockType.REALTIME, lambda: during.update(current_attributes()), name="look"
    ).mod_ns(1)
    sim.run()
    assert all(during[call] is not ORIGINALS[call] for call in PATCHED_CALLS)
    assert all(getattr(during[call], "__wrapped__", None) is ORIGINALS[call]
               for call in PATCHED_CALLS)
    assert current_attributes() == ORIGINALS


def test_everything_is_restored_when_the_run_raises() -> None:
    def boom() -> None:
        raise RuntimeError("boom")

    sim = Simulation(sanitize=True)
    sim.main_loop.timer_new_ns(ClockType.REALTIME, boom, name="boom").mod_ns(1)
    with pytest.raises(RuntimeError, match=r"^boom$"):
        sim.run()
    assert current_attributes() == ORIGINALS
    sim = Simulation(sanitize="strict")
    sim.thread("reader", read_wall_clock)
    with pytest.raises(NondeterminismError):
        sim.run()
    assert current_attributes() == ORIGINALS


def test_everything_is_restored_when_the_body_of_a_with_raises() -> None:
    with pytest.raises(KeyError), Sanitizer(Simulation()):
        assert time.time is not ORIGINALS["time.time"]
        raise KeyError("x")
    assert current_attributes() == ORIGINALS


def test_a_simulation_runs_again_after_a_sanitized_run() -> None:
    sim = Simulation(sanitize=True)
    seen: list[float] = []
    timer = sim.main_loop.timer_new_ns(ClockType.REALTIME, lambda: seen.append(time.time()))
    timer.mod_ns(SCALE_MS)
    sim.run()
    timer.mod_ns(sim.now_ns + SCALE_MS)
    sim.run()
    assert seen == [
        (HOST_EPOCH_NS + SCALE_MS) / 1_000_000_000,
        (HOST_EPOCH_NS + 2 * SCALE_MS) / 1_000_000_000,
    ]


def test_exit_without_enter_is_refused() -> None:
    with pytest.raises(
        SimulationError, match=r"^Sanitizer.__exit__ without a matching __enter__$"
    ):
        Sanitizer(Simulation()).__exit__(None, None, None)


# -- nesting -------------------------------------------------------------------------------


def test_nested_use_for_one_simulation_is_a_no_op_for_the_inner_one() -> None:
    sim = moved_sim()
    outer = Sanitizer(sim)
    with outer:
        patched = time.time
        with Sanitizer(sim, strict=True) as inner:
            assert not inner.active and outer.active
            assert time.time is patched
            assert time.time_ns() == sim.clock.get_ns(ClockType.HOST)  # routed, not refused
        assert time.time is patched and outer.active
        assert time.monotonic_ns() == sim.now_ns
    assert not outer.active


def test_one_sanitizer_entered_twice_stays_until_its_outer_exit() -> None:
    sim = moved_sim()
    sanitizer = Sanitizer(sim, strict=True)
    with sanitizer:
        with sanitizer:
            pass
        assert sanitizer.active
        with pytest.raises(NondeterminismError):
            time.time()
    assert not sanitizer.active


def test_a_sanitized_run_inside_a_sanitizer_keeps_the_outer_mode() -> None:
    sim = Simulation(sanitize="strict")
    seen: list[float] = []
    sim.main_loop.timer_new_ns(ClockType.REALTIME, lambda: seen.append(time.time())).mod_ns(5)
    with Sanitizer(sim):  # routed, outermost: the run's own strict sanitizer is a no-op
        sim.run()
        assert time.time is not ORIGINALS["time.time"]
    assert seen == [(HOST_EPOCH_NS + 5) / 1_000_000_000]


def test_the_innermost_sanitizer_answers_for_its_own_simulation() -> None:
    first, second = Simulation(seed=1), moved_sim(2)  # both run on this OS thread
    with Sanitizer(first):
        assert time.monotonic_ns() == 0
        with Sanitizer(second, strict=True), pytest.raises(NondeterminismError):
            time.monotonic_ns()
        with Sanitizer(second):
            assert time.monotonic_ns() == 1_234_567_891
        assert time.monotonic_ns() == 0


def test_a_simulation_run_inside_another_ones_callback_answers_its_own_threads() -> None:
    outer = Simulation(sanitize=True)
    seen: list[tuple[str, float]] = []

    def nested_run() -> None:
        inner = Simulation(sanitize=True)
        inner.clock.advance(7 * SCALE_MS)
        inner.main_loop.timer_new_ns(
            ClockType.REALTIME, lambda: seen.append(("inner", time.monotonic())), name="in"
        ).mod_ns(8 * SCALE_MS)
        inner.run()
        inner.close()
        seen.append(("outer", time.monotonic()))

    outer.main_loop.timer_new_ns(ClockType.REALTIME, nested_run, name="nest").mod_ns(SCALE_MS)
    outer.run()
    assert seen == [("inner", 0.008), ("outer", 0.001)]


# -- determinism, record and replay ----------------------------------------------------------

#: What the last run of :func:`wall_clock_scenario` observed, in order.
OBSERVED: list[tuple[object, ...]] = []


def wall_clock_scenario(sim: Simulation, *, rounds: int = 6, sanitize: bool = True) -> None:
    """Timer delays picked from ``time.time()``, ``random`` and ``uuid``; a sleeping thread.

    With ``sanitize`` the scenario turns the sanitizer on itself (``sim.sanitize``
    is read by ``run()``), so that ``replay.record``/``play`` run it sanitized.
    """
    if sanitize:
        sim.sanitize = True
    OBSERVED.clear()
    ticks = [0]

    def tick() -> None:
        now = time.time()
        ticks[0] += 1
        OBSERVED.append(("tick", sim.now_ns, now, uuid.uuid4().hex, os.urandom(2).hex()))
        if ticks[0] < rounds:
            delay_ns = 1_000 + int(now * 1e6) % 1_000 * 1_000 + random.randrange(1_000)
            timer.mod_ns(sim.now_ns + delay_ns)

    timer = sim.main_loop.timer_new_ns(ClockType.REALTIME, tick, name="tick")
    timer.mod_ns(1_000)

    def worker() -> None:
        for _ in range(rounds):
            time.sleep(random.uniform(0.0001, 0.002))
            OBSERVED.append(("worker", sim.now_ns, time.monotonic_ns(), uuid.uuid1().hex))

    sim.thread("worker", worker)


def scenario_module() -> ModuleType:
    """This file as a play imports it (pytest may have imported it under another name)."""
    return importlib.import_module(SCENARIOS)


def run_wall_clock(seed: int) -> tuple[list[Any], list[tuple[object, ...]], int]:
    sim = Simulation(seed, log=True)
    wall_clock_scenario(sim)
    sim.run()
    assert sim.log is not None
    sim.close()
    return [e.as_tuple() for e in sim.log], list(OBSERVED), sim.digest


def test_a_scenario_reading_time_time_is_deterministic_when_sanitized() -> None:
    runs = [run_wall_clock(seed=5) for _ in range(2)]
    assert runs[0] == runs[1]
    _, observed, _ = runs[0]
    ticks = [o for o in observed if o[0] == "tick"]
    assert len(ticks) == 6 and len(observed) == 12
    for _, now_ns, wall, *_ in ticks:
        assert isinstance(now_ns, int)
        assert wall == (HOST_EPOCH_NS + now_ns) / 1_000_000_000  # HOST moves with simulation time
    assert run_wall_clock(seed=6)[1] != observed  # the seed, not the host, decides


def test_a_sanitized_scenario_records_and_plays_bit_exactly(tmp_path: Path) -> None:
    _, plain_observed, plain_digest = run_wall_clock(seed=5)
    path = tmp_path / "wall.evr"
    recorded = record(WALL_CLOCK, path, seed=5)
    assert recorded.failure is None and recorded.digest == plain_digest
    observed = list(scenario_module().OBSERVED)
    assert observed == plain_observed
    with TraceReader(path) as reader:
        records = list(reader)
    clock_reads = [r for r in records if r[0] == EventKind.CLOCK]
    assert {r[2] for r in clock_reads} == {int(ClockType.HOST)}  # time.time and uuid1
    assert any(r[0] == EventKind.RANDOM for r in records)
    assert_same_run(recorded, play(path))
    assert observed == scenario_module().OBSERVED


def test_the_constructor_flag_records_and_plays_bit_exactly(tmp_path: Path) -> None:
    # What record()/play() would do with a ``sanitize`` option: build the
    # simulations with Simulation(sanitize=True) around a scenario that does
    # not turn it on itself.
    header = TraceHeader(
        scenario=WALL_CLOCK, seed=5, parameters={"sanitize": False},
        package_version=evloop.__version__,
    )
    path, again = tmp_path / "recorded.evr", tmp_path / "played.evr"
    rec = Recorder(TraceWriter(path, header))
    sim = Simulation(5, chooser=FifoChooser(), sanitize=True)
    rec.attach(sim)
    rec.start()
    wall_clock_scenario(sim, sanitize=False)
    sim.run()
    rec.finish(None)
    sim.close()
    observed = list(OBSERVED)
    with TraceReader(path) as reader:
        player = Player(reader, TraceWriter(again, reader.header))
        replayed = Simulation(5, sanitize=True)
        player.attach(replayed)
        player.start()
        wall_clock_scenario(replayed, sanitize=False)
        replayed.run()
        player.finish(None)
        replayed.close()
    assert player.divergence is None
    assert path.read_bytes() == again.read_bytes()
    assert observed == OBSERVED
    # play() builds its simulation without the flag: the scenario then reads
    # the real clock and RNG, which the trace cannot account for.
    with pytest.raises(ReplayDivergence):
        play(path)


HOST_OBSERVED: list[tuple[object, ...]] = []


def host_wall_clock(sim: Simulation, *, count: int = 3, tick_ms: int = 2) -> None:
    """Host mode, sanitized: ``time.time()`` is the recorded real wall clock."""
    sim.sanitize = True
    HOST_OBSERVED.clear()

    def tick() -> None:
        HOST_OBSERVED.append(("tick", sim.now_ns, time.time_ns(), time.monotonic_ns()))
        if len(HOST_OBSERVED) < count:
            timer.mod_ns(sim.now_ns + tick_ms * SCALE_MS)

    timer = sim.main_loop.timer_new_ns(ClockType.REALTIME, tick, name="tick")
    timer.mod_ns(tick_ms * SCALE_MS)


def test_a_sanitized_host_mode_program_records_real_time_and_plays_it(tmp_path: Path) -> None:
    path = tmp_path / "host.evr"
    before = time.time_ns()
    rec = record_host(f"{SCENARIOS}:host_wall_clock", path, inputs={})
    after = time.time_ns()
    recorded = list(scenario_module().HOST_OBSERVED)
    assert [o[0] for o in recorded] == ["tick"] * 3
    for _, now_ns, wall_ns, monotonic_ns in recorded:
        assert before <= wall_ns <= after  # the real wall clock, through the recorded door
        assert monotonic_ns == now_ns
    assert rec.time_ns >= 3 * 2 * SCALE_MS  # the host clock really waited
    played = play_host(path)
    assert played.bit_exact is True
    assert recorded == scenario_module().HOST_OBSERVED
