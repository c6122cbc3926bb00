"""Tests for evloop.simulation: running a whole simulated machine.

Besides the contract of :meth:`Simulation.run` (idle, ``until_ns``,
``max_steps``, ``shutdown``), the log and the step counter, this file holds
the determinism scenarios: each is run ten times in fresh simulations and must
give exactly one distinct log, as trio's scheduler test does; and the same
scenarios run in subprocesses under different ``PYTHONHASHSEED`` values must
give the same logs as here.

The scenario functions are plain module-level functions returning JSON-able
data so that the subprocess test can import this file and run them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evloop import (
    HOST_EPOCH_NS,
    SCALE_MS,
    ClockType,
    DispatchEvent,
    FdTable,
    MainLoop,
    RandomChooser,
    RunResult,
    Simulation,
    SimulationError,
    StopReason,
    VirtualClock,
)
from tests.helpers import Boom, json_from_child

Log = list[list[Any]]


def _finish(sim: Simulation, result: RunResult) -> dict[str, Any]:
    assert sim.log is not None
    return {
        "log": [list(e.as_tuple()) for e in sim.log],
        "result": [result.reason.value, result.steps, result.time_ns, result.shutdown_cause],
        "digest": sim.digest,
    }


# -- the determinism scenarios -------------------------------------------------------------


def scenario_timers_on_several_clocks(seed: int = 0) -> dict[str, Any]:
    """Periodic main-loop timers on all four clocks, context timers in ms, and ties."""
    with Simulation(seed, log=True) as sim:
        ml = sim.main_loop
        ctx = ml.aio_context

        def periodic(clock_type: ClockType, name: str, period: int, count: int) -> None:
            left = [count]

            def cb() -> None:
                left[0] -= 1
                if left[0]:
                    timer.mod_ns(sim.clock.get_ns(clock_type) + period)

            timer = ml.timer_new_ns(clock_type, cb, name=name)
            timer.mod_ns(sim.clock.get_ns(clock_type) + period)

        periodic(ClockType.REALTIME, "rt", 300, 10)
        periodic(ClockType.VIRTUAL, "virt", 500, 6)
        periodic(ClockType.HOST, "host", 700, 4)
        periodic(ClockType.VIRTUAL_RT, "vrt", 300, 10)  # ties with "rt"
        for i in range(3):
            ctx.timer_new_ns(ClockType.VIRTUAL, lambda: None, name=f"ctx{i}").mod_ns(
                SCALE_MS + 250 * i
            )
        ctx.timer_new(ClockType.VIRTUAL, SCALE_MS, lambda: None, name="ms").mod(2)
        result = sim.run()
        return _finish(sim, result)


def scenario_bhs_across_iothread_and_main_loop(seed: int = 0) -> dict[str, Any]:
    """BH ping-pong between the main loop and two IOThreads, with timers and a vCPU."""
    with Simulation(seed, log=True) as sim:
        io0 = sim.iothread("io0")
        io1 = sim.iothread("io1")
        main_ctx = sim.main_loop.aio_context

        def hop(n: int) -> None:
            if n == 0:
                return
            target = (main_ctx, io0.ctx, io1.ctx)[n % 3]
            target.bh_schedule_oneshot(lambda: hop(n - 1), name=f"hop{n - 1}")

        io0.ctx.bh_schedule_oneshot(lambda: hop(12), name="hop12")
        io1.ctx.timer_new_ns(ClockType.VIRTUAL, lambda: hop(5), name="io1-timer").mod_ns(1000)

        def vcpu() -> None:
            for i in range(4):
                sim.sleep(400)
                io0.ctx.bh_schedule_oneshot(lambda: None, name=f"vcpu-kick{i}")
                main_ctx.bh_schedule_oneshot(lambda: None, name=f"vcpu-main{i}")

        sim.thread("vcpu0", vcpu)
        result = sim.run()
        io0.stop()
        io1.stop()
        io0.join()
        io1.join()
        result = sim.run()
        return _finish(sim, result)


def scenario_thread_pool_requests(seed: int = 0) -> dict[str, Any]:
    """Requests from the main loop and an IOThread, durations drawn from sim.random."""
    with Simulation(seed, log=True) as sim:
        io = sim.iothread("io0")
        main_ctx = sim.main_loop.aio_context
        results: list[object] = []

        def request(i: int, ns: int) -> Callable[[], object]:
            def fn() -> object:
                sim.sleep(ns)
                return i

            return fn

        for i in range(6):
            main_ctx.thread_pool_submit(
                request(i, sim.random.randrange(1, 5) * 100), results.append
            )

        def submit_from_io() -> None:
            for i in range(6, 10):
                io.ctx.thread_pool_submit(
                    request(i, sim.random.randrange(1, 5) * 100), results.append
                )

        io.ctx.bh_schedule_oneshot(submit_from_io, name="submit")

        def later() -> None:
            sim.sleep(250)
            main_ctx.thread_pool_submit(request(10, 50), results.append)

        sim.thread("later", later)
        result = sim.run()
        out = _finish(sim, result)
        out["results"] = results
        return out


def scenario_vcpus_sleeping_and_signalling(seed: int = 0) -> dict[str, Any]:
    """vCPU-like threads: sleeps, event handoffs, joins, kicks into the main loop."""
    with Simulation(seed, log=True) as sim:
        events = [sim.event(f"kick{i}") for i in range(3)]
        main_ctx = sim.main_loop.aio_context

        def vcpu(i: int) -> None:
            for k in range(8):
                sim.sleep(10 * (i + 1) + k)
                events[(i + 1) % 3].set()
                if events[i].wait(timeout_ns=25):
                    events[i].clear()
                main_ctx.bh_schedule_oneshot(lambda: None, name=f"vcpu{i}-io{k}")
                sim.yield_now()

        threads = [sim.thread(f"vcpu{i}", lambda i=i: vcpu(i)) for i in range(3)]

        def reaper() -> None:
            for t in threads:
                t.join()
            sim.shutdown("all vcpus halted")

        sim.thread("reaper", reaper)
        result = sim.run()
        return _finish(sim, result)


def scenario_external_input_on_a_pipe_and_a_socket(seed: int = 0) -> dict[str, Any]:
    """A serial pipe and a client socket, with simultaneous input and replies."""
    with Simulation(seed, log=True) as sim:
        serial_r, serial_w = sim.fds.pipe()
        sock, client_end = sim.fds.socketpair()
        serial = sim.peer(serial_w, "serial")
        client = sim.peer(client_end, "client")
        got: list[list[Any]] = []

        def on_serial() -> None:
            try:
                data = sim.fds.read(serial_r, 4)  # small reads: several callbacks
            except BlockingIOError:
                return
            got.append(["serial", sim.now_ns, data.hex()])
            if not data:
                sim.main_loop.set_fd_handler(serial_r, None, None)

        def on_sock() -> None:
            try:
                data = sim.fds.read(sock, 100)
            except BlockingIOError:
                return
            got.append(["sock", sim.now_ns, data.hex()])
            if data:
                sim.fds.write(sock, b"ack:" + data)
            else:
                sim.main_loop.set_fd_handler(sock, None, None)

        sim.main_loop.set_fd_handler(serial_r, on_serial, None)
        sim.main_loop.set_fd_handler(sock, on_sock, None)
        for t in (100, 200, 200, 350):
            serial.send(b"line%d\n" % t, at_ns=t)
        for t in (200, 300, 350):
            client.send(b"req%d" % t, at_ns=t)
        serial.close(at_ns=500)
        client.close(at_ns=600)
        result = sim.run()
        out = _finish(sim, result)
        out["got"] = got
        return out


def scenario_random_chooser(seed: int = 3) -> dict[str, Any]:
    """Everything at once under a seeded random chooser."""
    with Simulation(seed, chooser=RandomChooser(seed), log=True) as sim:
        io = sim.iothread("io0")
        ev = sim.event("go")
        for name in ("p", "q", "r"):
            r, w = sim.fds.pipe()
            sim.main_loop.set_fd_handler(r, lambda r=r: sim.fds.read(r, 100), None)
            peer = sim.peer(w, name)
            peer.send(b"x", at_ns=0)
            peer.send(b"y", at_ns=100)

        def worker(i: int) -> None:
            for k in range(5):
                sim.yield_now()
                io.ctx.bh_schedule_oneshot(lambda: None, name=f"w{i}-{k}")
                if k == 2:
                    ev.wait(timeout_ns=50)
            ev.set()

        for i in range(3):
            sim.thread(f"w{i}", lambda i=i: worker(i))
        sim.main_loop.aio_context.thread_pool_submit(lambda: sim.yield_now(), lambda _: None)
        result = sim.run()
        return _finish(sim, result)


SCENARIOS: dict[str, Callable[[], dict[str, Any]]] = {
    "timers_on_several_clocks": scenario_timers_on_several_clocks,
    "bhs_across_iothread_and_main_loop": scenario_bhs_across_iothread_and_main_loop,
    "thread_pool_requests": scenario_thread_pool_requests,
    "vcpus_sleeping_and_signalling": scenario_vcpus_sleeping_and_signalling,
    "external_input_on_a_pipe_and_a_socket": scenario_external_input_on_a_pipe_and_a_socket,
    "random_chooser": scenario_random_chooser,
}


def run_all_scenarios() -> dict[str, dict[str, Any]]:
    return {name: fn() for name, fn in SCENARIOS.items()}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_ten_runs_of_a_scenario_give_one_distinct_log(name: str) -> None:
    scenario = SCENARIOS[name]
    runs = [json.dumps(scenario(), sort_keys=True) for _ in range(10)]
    assert len(set(runs)) == 1
    log = json.loads(runs[0])["log"]
    assert len(log) > 10  # the scenario does something worth comparing
    assert [entry[0] for entry in log] == list(range(1, len(log) + 1))


def test_the_scenarios_end_as_expected() -> None:
    out = run_all_scenarios()
    assert out["vcpus_sleeping_and_signalling"]["result"][0] == "shutdown"
    assert out["vcpus_sleeping_and_signalling"]["result"][3] == "all vcpus halted"
    assert sorted(out["thread_pool_requests"]["results"]) == list(range(11))
    for name in SCENARIOS:
        if name != "vcpus_sleeping_and_signalling":
            assert out[name]["result"][0] == "idle", name


def test_different_seeds_of_the_random_chooser_reach_different_logs() -> None:
    logs = {json.dumps(scenario_random_chooser(seed)["log"]) for seed in range(6)}
    assert len(logs) > 1


_SUBPROCESS_CODE = """
import json, sys
sys.path.insert(0, sys.argv[1])
import test_simulation
print(json.dumps(test_simulation.run_all_scenarios(), sort_keys=True))
"""


def test_scenarios_give_the_same_logs_under_any_hash_seed() -> None:
    tests_dir = str(Path(__file__).resolve().parent)
    outputs = [json_from_child(_SUBPROCESS_CODE, tests_dir, hash_seed=s) for s in (0, 4242)]
    here = json.loads(json.dumps(run_all_scenarios(), sort_keys=True))
    assert outputs[0] == outputs[1]
    assert outputs[0] == here


# -- construction --------------------------------------------------------------------------


def test_a_simulation_bundles_a_clock_fds_and_a_main_loop() -> None:
    with Simulation(seed=7) as sim:
        assert sim.seed == 7
        assert isinstance(sim.clock, VirtualClock)
        assert isinstance(sim.fds, FdTable)
        assert isinstance(sim.main_loop, MainLoop)
        assert sim.main_loop.clock is sim.clock
        assert sim.main_loop.fds is sim.fds
        assert sim.clock.enabled(ClockType.VIRTUAL)
        assert sim.now_ns == 0
        assert sim.clock.get_ns(ClockType.HOST) == HOST_EPOCH_NS
        assert sim.steps == 0
        assert sim.log is None
        assert [t.name for t in sim.threads] == ["main"]
        assert repr(sim) == "<Simulation seed=7 t=0 steps=0 threads=['main']>"


def test_the_seed_must_be_an_int() -> None:
    with pytest.raises(TypeError, match=r"^seed must be an int, not str$"):
        Simulation(seed="0")  # type: ignore[arg-type]


def test_results_and_log_entries_are_frozen_records() -> None:
    result = RunResult(StopReason.IDLE, 1, 2)
    assert result.shutdown_cause is None
    event = DispatchEvent(1, 2, "main", "aio-context", "bh", "x")
    assert event.as_tuple() == (1, 2, "main", "aio-context", "bh", "x")
    with pytest.raises(AttributeError):
        event.step = 5  # type: ignore[misc]
    with pytest.raises(AttributeError):
        result.steps = 5  # type: ignore[misc]
    assert not hasattr(event, "__dict__")


def test_stop_reasons() -> None:
    assert {r.name: r.value for r in StopReason} == {
        "IDLE": "idle",
        "UNTIL": "until",
        "MAX_STEPS": "max_steps",
        "SHUTDOWN": "shutdown",
    }


# -- run until idle ------------------------------------------------------------------------


def test_an_empty_simulation_is_idle_at_once() -> None:
    with Simulation() as sim:
        assert sim.run() == RunResult(StopReason.IDLE, 0, 0, None)


def test_the_clock_warps_to_each_deadline_of_every_thread_of_control() -> None:
    with Simulation(log=True) as sim:
        io = sim.iothread("io0")
        sim.main_loop.timer_new_ns(ClockType.VIRTUAL, lambda: None, name="main-500").mod_ns(500)
        io.ctx.timer_new_ns(ClockType.VIRTUAL, lambda: None, name="io-300").mod_ns(300)
        sim.thread("sleeper", lambda: sim.sleep(400))
        result = sim.run()
        assert sim.log is not None
        timers = [(e.time_ns, e.thread, e.name) for e in sim.log if e.kind == "timer"]
    assert timers == [(300, "io0", "io-300"), (500, "main", "main-500")]
    assert result == RunResult(StopReason.IDLE, result.steps, 500, None)


def test_a_main_loop_timer_armed_from_a_thread_wakes_the_main_loop() -> None:
    with Simulation() as sim:
        fired: list[tuple[str, int]] = []

        def arm() -> None:
            sim.sleep(100)
            sim.main_loop.timer_new_ns(
                ClockType.VIRTUAL, lambda: fired.append((sim.current_thread.name, sim.now_ns))
            ).mod_ns(sim.now_ns + 50)

        sim.thread("armer", arm)
        sim.run()
    assert fired == [("main", 150)]


timer_specs = st.lists(
    st.tuples(
        st.sampled_from(
            [ClockType.REALTIME, ClockType.VIRTUAL, ClockType.HOST, ClockType.VIRTUAL_RT]
        ),
        st.integers(min_value=0, max_value=40),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=40, deadline=None)
@given(timer_specs)
def test_main_loop_timers_fire_at_their_deadline_in_deadline_clock_arm_order(
    specs: list[tuple[ClockType, int]],
) -> None:
    with Simulation() as sim:
        fired: list[tuple[int, int]] = []
        for i, (clock_type, at) in enumerate(specs):
            base = sim.clock.get_ns(clock_type)
            sim.main_loop.timer_new_ns(
                clock_type, lambda i=i: fired.append((i, sim.now_ns))
            ).mod_ns(base + at)
        sim.run()
    expected = sorted(range(len(specs)), key=lambda i: (specs[i][1], specs[i][0], i))
    assert [i for i, _ in fired] == expected
    assert all(now == specs[i][1] for i, now in fired)


def test_run_ends_with_a_cancelled_bh_still_queued() -> None:
    with Simulation() as sim:
        ran: list[str] = []
        bh = sim.main_loop.aio_context.bh_new(lambda: ran.append("bh"))
        bh.schedule()
        bh.cancel()
        assert sim.run() == RunResult(StopReason.IDLE, 0, 0, None)
    assert ran == []


def test_run_ends_with_an_idle_bh() -> None:
    with Simulation() as sim:
        ran: list[int] = []
        bh = sim.main_loop.aio_context.bh_new(lambda: ran.append(sim.now_ns))
        bh.schedule_idle()
        assert sim.run().reason is StopReason.IDLE
    assert len(ran) == 1


def test_a_bh_and_a_main_loop_timer_due_together_both_run() -> None:
    with Simulation() as sim:
        ran: list[str] = []
        sim.main_loop.timer_new_ns(ClockType.VIRTUAL, lambda: ran.append("timer")).mod_ns(0)
        sim.main_loop.aio_context.bh_schedule_oneshot(lambda: ran.append("bh"))
        assert sim.run() == RunResult(StopReason.IDLE, 2, 0, None)
    assert ran == ["bh", "timer"]


def test_a_main_loop_bh_with_another_thread_of_control_runs() -> None:
    with Simulation() as sim:
        ran: list[str] = []
        sim.thread("w", lambda: None)
        sim.main_loop.aio_context.bh_schedule_oneshot(lambda: ran.append("bh"))
        assert sim.run().reason is StopReason.IDLE
    assert ran == ["bh"]


# -- until_ns ------------------------------------------------------------------------------


def test_until_stops_at_that_time_exactly() -> None:
    with Simulation() as sim:
        sim.thread("sleeper", lambda: sim.sleep(10_000))
        result = sim.run(until_ns=1234)
        assert result == RunResult(StopReason.UNTIL, result.steps, 1234, None)
        assert sim.now_ns == 1234
        assert sim.clock.get_ns(ClockType.REALTIME) == 1234
        assert sim.clock.get_ns(ClockType.VIRTUAL) == 1234
        assert sim.run().time_ns == 10_000


def test_until_on_a_quiet_simulation_still_moves_the_clock_there() -> None:
    with Simulation() as sim:
        assert sim.run(until_ns=5000) == RunResult(StopReason.UNTIL, 0, 5000, None)


def test_a_timer_due_exactly_at_until_runs_before_the_stop() -> None:
    with Simulation() as sim:
        fired: list[int] = []
        sim.main_loop.timer_new_ns(ClockType.VIRTUAL, lambda: fired.append(sim.now_ns)).mod_ns(700)
        sim.main_loop.timer_new_ns(ClockType.VIRTUAL, lambda: fired.append(sim.now_ns)).mod_ns(701)
        result = sim.run(until_ns=700)
        assert fired == [700]
        assert result.reason is StopReason.UNTIL
        assert result.time_ns == 700
        sim.run()
        assert fired == [700, 701]


def test_until_now_returns_at_once() -> None:
    with Simulation() as sim:
        sim.main_loop.timer_new_ns(ClockType.VIRTUAL, lambda: None).mod_ns(0)
        assert sim.run(until_ns=0) == RunResult(StopReason.UNTIL, 0, 0, None)


def test_until_in_the_past_is_refused() -> None:
    with Simulation() as sim:
        sim.run(until_ns=10)
        with pytest.raises(ValueError, match=r"^until_ns=5 is in the past \(now is t=10 ns\)$"):
            sim.run(until_ns=5)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=1000), min_size=1, max_size=6), st.integers(0, 1200)
)
def test_until_splits_a_run_without_changing_what_happens(deadlines: list[int], until: int) -> None:
    def run(split: bool) -> list[tuple[int, int]]:
        with Simulation() as sim:
            fired: list[tuple[int, int]] = []
            for i, at in enumerate(deadlines):
                sim.main_loop.timer_new_ns(
                    ClockType.VIRTUAL, lambda i=i: fired.append((i, sim.now_ns))
                ).mod_ns(at)
            if split:
                result = sim.run(until_ns=until)
                assert result.time_ns == until
                assert all(t <= until for _, t in fired)
            sim.run()
            return fired

    assert run(True) == run(False)


# -- max_steps -----------------------------------------------------------------------------


def _bh_every_10ns(sim: Simulation, count: int) -> None:
    def body() -> None:
        for i in range(count):
            sim.main_loop.aio_context.bh_schedule_oneshot(lambda: None, name=f"bh{i}")
            sim.sleep(10)

    sim.thread("producer", body)


def test_max_steps_stops_at_the_first_iteration_boundary_at_or_after_the_limit() -> None:
    with Simulation(log=True) as sim:
        _bh_every_10ns(sim, 10)
        result = sim.run(max_steps=5)
        assert sim.log is not None
        assert result.reason is StopReason.MAX_STEPS
        assert result.steps == sim.steps == len(sim.log)
        # Never before the limit; at most the rest of one main-loop iteration after it.
        assert 5 <= result.steps <= 7
        assert result.time_ns == sim.log[-1].time_ns


def test_max_steps_counts_from_the_start_of_each_run() -> None:
    with Simulation() as sim:
        _bh_every_10ns(sim, 20)
        first = sim.run(max_steps=4)
        second = sim.run(max_steps=4)
        assert first.reason is second.reason is StopReason.MAX_STEPS
        assert second.steps >= first.steps + 4
        assert sim.run().reason is StopReason.IDLE


def test_max_steps_zero_returns_at_once() -> None:
    with Simulation() as sim:
        _bh_every_10ns(sim, 3)
        assert sim.run(max_steps=0) == RunResult(StopReason.MAX_STEPS, 0, 0, None)


def test_a_negative_max_steps_is_refused() -> None:
    with (
        Simulation() as sim,
        pytest.raises(ValueError, match=r"^max_steps must be non-negative, not -1$"),
    ):
        sim.run(max_steps=-1)


def test_a_run_stopped_by_max_steps_resumes_to_the_same_end() -> None:
    def run(limit: int | None) -> list[tuple[int, ...]]:
        with Simulation(log=True) as sim:
            _bh_every_10ns(sim, 6)
            while limit is not None and sim.run(max_steps=limit).reason is StopReason.MAX_STEPS:
                pass
            sim.run()
            assert sim.log is not None
            return [e.as_tuple() for e in sim.log]

    assert run(3) == run(None)
    assert run(1) == run(None)


# -- shutdown ------------------------------------------------------------------------------


def test_shutdown_from_another_thread_of_control_ends_the_run() -> None:
    with Simulation() as sim:
        after: list[int] = []

        def w() -> None:
            sim.sleep(500)
            sim.shutdown("power off")
            after.append(sim.now_ns)  # the caller goes on until it blocks
            sim.sleep(500)
            after.append(sim.now_ns)

        sim.thread("w", w)
        result = sim.run()
        assert result == RunResult(StopReason.SHUTDOWN, result.steps, 500, "power off")
        assert after == [500]
        result = sim.run()
        assert result.reason is StopReason.IDLE
        assert result.shutdown_cause is None
        assert after == [500, 1000]


def test_shutdown_from_a_main_loop_callback() -> None:
    with Simulation() as sim:
        sim.main_loop.timer_new_ns(ClockType.VIRTUAL, lambda: sim.shutdown("timer")).mod_ns(30)
        sim.main_loop.timer_new_ns(ClockType.VIRTUAL, lambda: None).mod_ns(40)
        result = sim.run()
        assert (result.reason, result.time_ns, result.shutdown_cause) == (
            StopReason.SHUTDOWN,
            30,
            "timer",
        )


def test_shutdown_from_an_iothread_callback() -> None:
    with Simulation() as sim:
        io = sim.iothread("io0")
        io.ctx.timer_new_ns(ClockType.VIRTUAL, lambda: sim.shutdown("io says stop")).mod_ns(99)
        sim.main_loop.timer_new_ns(ClockType.VIRTUAL, lambda: None).mod_ns(1000)
        result = sim.run()
        assert (result.reason, result.time_ns, result.shutdown_cause) == (
            StopReason.SHUTDOWN,
            99,
            "io says stop",
        )


def test_shutdown_before_run_returns_at_once_and_the_first_cause_wins() -> None:
    with Simulation() as sim:
        sim.main_loop.timer_new_ns(ClockType.VIRTUAL, lambda: None).mod_ns(10)
        sim.shutdown("first")
        sim.shutdown("second")
        assert sim.run() == RunResult(StopReason.SHUTDOWN, 0, 0, "first")
        assert sim.run() == RunResult(StopReason.IDLE, 1, 10, None)


def test_shutdown_has_a_default_cause() -> None:
    with Simulation() as sim:
        sim.shutdown()
        assert sim.run().shutdown_cause == "shutdown"


def test_shutdown_while_idle_threads_wait_ends_the_run() -> None:
    with Simulation() as sim:
        ev = sim.event("never")

        def w() -> None:
            sim.sleep(10)
            sim.shutdown("done")
            ev.wait()

        sim.thread("w", w)
        sim.iothread("io0")
        result = sim.run()
        assert (result.reason, result.shutdown_cause) == (StopReason.SHUTDOWN, "done")


# -- who may call run ----------------------------------------------------------------------


def test_run_from_a_thread_of_control_is_refused() -> None:
    with Simulation() as sim:
        errors: list[str] = []

        def w() -> None:
            try:
                sim.run()
            except SimulationError as exc:
                errors.append(str(exc))

        sim.thread("w", w)
        sim.run()
    assert errors == [
        "Simulation.run() must be called from the thread that created the simulation, "
        "outside any callback"
    ]


def test_run_from_a_callback_is_refused() -> None:
    with Simulation() as sim:
        sim.main_loop.aio_context.bh_schedule_oneshot(sim.run, name="nested")
        with pytest.raises(
            SimulationError,
            match=r"^Simulation\.run\(\) is already running \(called from a callback\?\)$",
        ):
            sim.run()


def test_run_from_an_unknown_os_thread_is_refused() -> None:
    with Simulation() as sim:
        caught: list[BaseException] = []

        def body() -> None:
            try:
                sim.run()
            except BaseException as exc:
                caught.append(exc)

        t = threading.Thread(target=body)
        t.start()
        t.join()
    assert len(caught) == 1
    assert isinstance(caught[0], SimulationError)
    assert str(caught[0]).startswith("Simulation.run() must be called from the thread")


def test_a_closed_simulation_cannot_run() -> None:
    sim = Simulation()
    sim.close()
    with pytest.raises(SimulationError, match=r"^this simulation is closed$"):
        sim.run()


# -- failures ------------------------------------------------------------------------------


def test_a_main_loop_callback_that_raises_stops_the_run_with_that_exception() -> None:
    error = Boom("in a BH")

    def bad() -> None:
        raise error

    with Simulation() as sim:
        sim.main_loop.aio_context.bh_schedule_oneshot(bad, name="bad")
        sim.main_loop.timer_new_ns(ClockType.VIRTUAL, lambda: None).mod_ns(10)
        with pytest.raises(Boom) as info:
            sim.run()
        assert sim.now_ns == 0
        assert sim.run().time_ns == 10
    assert info.value is error


def test_a_thread_failure_reaches_run_while_the_main_loop_waits() -> None:
    error = Boom("vcpu fault")

    def vcpu() -> None:
        sim.sleep(40)
        raise error

    with Simulation() as sim:
        sim.thread("vcpu0", vcpu)
        sim.main_loop.timer_new_ns(ClockType.VIRTUAL, lambda: None).mod_ns(1000)
        with pytest.raises(Boom) as info:
            sim.run()
        assert sim.now_ns == 40
    assert info.value is error
    assert info.value.__notes__ == ["(raised in thread of control 'vcpu0')"]


# -- the log and the step counter ----------------------------------------------------------


def test_the_log_has_one_entry_per_step() -> None:
    with Simulation(log=True) as sim:
        r, w = sim.fds.pipe()

        def on_read() -> None:
            sim.fds.read(r, 100)

        sim.main_loop.set_fd_handler(r, on_read, None)
        sim.peer(w, "serial").send(b"abc", at_ns=5)
        sim.main_loop.timer_new_ns(ClockType.VIRTUAL, lambda: None, name="tick").mod_ns(20)
        sim.main_loop.aio_context.bh_schedule_oneshot(lambda: None, name="hello")

        def w_body() -> None:
            sim.sleep(10)

        sim.thread("vcpu0", w_body)
        sim.run()
        assert sim.log is not None
        log = [e.as_tuple() for e in sim.log]
    assert log == [
        (1, 0, "vcpu0", "-", "turn", "vcpu0"),
        (2, 0, "main", "-", "turn", "main"),
        (3, 0, "main", "aio-context", "bh", "hello"),
        (4, 5, "serial", "-", "input", "3 bytes"),
        (
            5,
            5,
            "main",
            "io-handler",
            "read",
            "fd 5: test_the_log_has_one_entry_per_step.<locals>.on_read",
        ),
        (6, 10, "vcpu0", "-", "turn", "vcpu0"),
        (7, 20, "main", "-", "turn", "main"),
        (8, 20, "main", "main-loop", "timer", "tick"),
    ]
    assert sim.steps == 8


def test_steps_are_counted_without_a_log() -> None:
    with Simulation() as sim:
        for at in (1, 2, 3):
            sim.main_loop.timer_new_ns(ClockType.VIRTUAL, lambda: None).mod_ns(at)
        result = sim.run()
        assert sim.log is None
        assert sim.steps == result.steps == 3


def test_callbacks_of_a_new_context_are_observed_with_their_thread() -> None:
    with Simulation(log=True) as sim:
        ctx = sim.new_aio_context("disk")
        assert ctx.clock is sim.clock and ctx.fds is sim.fds
        fired: list[int] = []
        ctx.timer_new_ns(ClockType.VIRTUAL, lambda: fired.append(1), name="disk-timer").mod_ns(60)

        def poller() -> None:
            # A blocking poll may return without progress (arming the timer
            # notified the context), as aio_poll does: loop on our own state.
            while not fired:
                ctx.poll(True)

        sim.thread("disk-thread", poller)
        sim.run()
        assert sim.log is not None
        timers = [e.as_tuple()[1:] for e in sim.log if e.kind == "timer"]
    assert timers == [(60, "disk-thread", "disk", "timer", "disk-timer")]


def test_unnamed_callbacks_are_logged_by_qualified_name() -> None:
    def tick() -> None:
        pass

    with Simulation(log=True) as sim:
        sim.main_loop.timer_new_ns(ClockType.VIRTUAL, tick).mod_ns(1)
        sim.run()
        assert sim.log is not None
        assert sim.log[0].name == (
            "test_unnamed_callbacks_are_logged_by_qualified_name.<locals>.tick"
        )


def test_the_digest_follows_the_steps() -> None:
    def run(at: int) -> int:
        with Simulation() as sim:
            sim.main_loop.timer_new_ns(ClockType.VIRTUAL, lambda: None).mod_ns(at)
            sim.run()
            return sim.digest

    assert run(10) == run(10)
    assert run(10) != run(11)
