"""Tests for evloop.threadpool: ``AioContext.thread_pool_submit``.

A request's function runs on a worker thread of control; ``done_cb(result)``
runs back in the submitting context's thread, through the pool's completion
bottom half, in completion order. An exception in the function is raised
again from the completion, in the context's thread, and stops the run.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from evloop import AioContext, FdTable, Simulation, VirtualClock
from evloop.machine.threadpool import MAX_WORKERS
from tests.helpers import Boom


def sleeping_fn(sim: Simulation, ns: int, result: object) -> Callable[[], object]:
    def fn() -> object:
        sim.sleep(ns)
        return result

    return fn


# -- where things run ----------------------------------------------------------------------


def test_fn_runs_on_a_worker_and_done_cb_in_the_main_loop() -> None:
    with Simulation() as sim:
        seen: list[tuple[str, object]] = []

        def fn() -> int:
            seen.append(("fn", sim.current_thread.name))
            return 42

        def done(result: object) -> None:
            seen.append(("done", (sim.current_thread.name, result)))

        sim.main_loop.aio_context.thread_pool_submit(fn, done)
        assert seen == []
        sim.run()
    assert seen == [("fn", "aio-context/worker-0"), ("done", ("main", 42))]


def test_fn_runs_on_a_worker_and_done_cb_in_the_iothread() -> None:
    with Simulation() as sim:
        io = sim.iothread("io0")
        seen: list[tuple[str, object]] = []

        def fn() -> str:
            seen.append(("fn", sim.current_thread.name))
            return "r"

        def done(result: object) -> None:
            seen.append(("done", (sim.current_thread.name, result)))

        io.ctx.bh_schedule_oneshot(lambda: io.ctx.thread_pool_submit(fn, done), name="submit")
        sim.run()
    assert seen == [("fn", "io0/worker-0"), ("done", ("io0", "r"))]


def test_the_completion_is_a_logged_bh_of_the_context() -> None:
    with Simulation(log=True) as sim:
        sim.main_loop.aio_context.thread_pool_submit(lambda: None, lambda _: None)
        sim.run()
        assert sim.log is not None
        entries = [(e.thread, e.context, e.kind, e.name) for e in sim.log]
    assert entries == [
        ("aio-context/worker-0", "-", "turn", "aio-context/worker-0"),
        ("main", "-", "turn", "main"),
        ("main", "aio-context", "bh", "aio-context:thread-pool-completion"),
    ]


def test_a_worker_may_block_and_virtual_time_passes_for_it() -> None:
    with Simulation() as sim:
        done: list[tuple[object, int]] = []
        sim.main_loop.aio_context.thread_pool_submit(
            sleeping_fn(sim, 1234, "slow"), lambda r: done.append((r, sim.now_ns))
        )
        sim.run()
    assert done == [("slow", 1234)]


# -- ordering and workers ------------------------------------------------------------------


def test_callbacks_run_in_completion_order() -> None:
    with Simulation() as sim:
        ctx = sim.main_loop.aio_context
        done: list[tuple[object, int]] = []
        for name, ns in (("a", 300), ("b", 100), ("c", 200)):
            ctx.thread_pool_submit(
                sleeping_fn(sim, ns, name), lambda r: done.append((r, sim.now_ns))
            )
        sim.run()
        assert ctx._thread_pool.workers == 3
    assert done == [("b", 100), ("c", 200), ("a", 300)]


def test_requests_finishing_together_complete_in_one_bh_in_order() -> None:
    with Simulation(log=True) as sim:
        ctx = sim.main_loop.aio_context
        done: list[object] = []
        for name in ("a", "b", "c"):
            ctx.thread_pool_submit(sleeping_fn(sim, 50, name), done.append)
        sim.run()
        assert sim.log is not None
        completions = [e for e in sim.log if e.kind == "bh"]
    assert done == ["a", "b", "c"]
    assert completions[0].time_ns == 50


def test_an_idle_worker_is_reused() -> None:
    with Simulation() as sim:
        ctx = sim.main_loop.aio_context
        names: list[str] = []

        def fn() -> None:
            names.append(sim.current_thread.name)

        ctx.thread_pool_submit(fn, lambda _: None)
        sim.run()
        ctx.thread_pool_submit(fn, lambda _: None)
        sim.run()
        assert ctx._thread_pool.workers == 1
    assert names == ["aio-context/worker-0", "aio-context/worker-0"]


def test_workers_are_capped_and_every_request_completes() -> None:
    n = MAX_WORKERS + 6
    with Simulation() as sim:
        ctx = sim.main_loop.aio_context
        done: list[object] = []
        for i in range(n):
            ctx.thread_pool_submit(sleeping_fn(sim, 1000, i), done.append)
        result = sim.run()
        assert ctx._thread_pool.workers == MAX_WORKERS
    assert sorted(done) == list(range(n))  # type: ignore[type-var]
    assert done[:MAX_WORKERS] == list(range(MAX_WORKERS))
    assert result.time_ns == 2000


def test_idle_workers_are_a_normal_end_of_the_run() -> None:
    with Simulation() as sim:
        sim.main_loop.aio_context.thread_pool_submit(lambda: None, lambda _: None)
        result = sim.run()
        assert result.reason.value == "idle"
        worker = sim.threads[-1]
        assert worker.name == "aio-context/worker-0"
        assert worker.waiting_for() == "thread pool of 'aio-context': waiting for work"


def test_a_submit_from_a_thread_of_control() -> None:
    with Simulation() as sim:
        ctx = sim.main_loop.aio_context
        done: list[tuple[object, str, int]] = []

        def vcpu() -> None:
            sim.sleep(10)
            ctx.thread_pool_submit(
                sleeping_fn(sim, 5, "io"),
                lambda r: done.append((r, sim.current_thread.name, sim.now_ns)),
            )

        sim.thread("vcpu", vcpu)
        sim.run()
    assert done == [("io", "main", 15)]


# -- failures ------------------------------------------------------------------------------


def test_an_exception_in_fn_is_raised_from_the_completion_in_the_main_thread() -> None:
    error = Boom("fn failed")

    def fn() -> None:
        sim.sleep(7)
        raise error

    called: list[object] = []
    with Simulation() as sim:
        sim.main_loop.aio_context.thread_pool_submit(fn, called.append)
        with pytest.raises(Boom) as info:
            sim.run()
        assert sim.now_ns == 7
        assert sim.current_thread.name == "main"
    assert info.value is error
    assert called == []


def test_an_exception_in_fn_is_raised_in_the_iothread_and_stops_the_run() -> None:
    error = Boom("fn failed")

    def fn() -> None:
        raise error

    with Simulation() as sim:
        io = sim.iothread("io0")
        io.ctx.bh_schedule_oneshot(lambda: io.ctx.thread_pool_submit(fn, lambda _: None))
        with pytest.raises(Boom) as info:
            sim.run()
    assert info.value is error
    assert info.value.__notes__ == ["(raised in thread of control 'io0')"]


def test_completions_after_a_failed_one_are_not_lost() -> None:
    error = Boom("first")

    def bad() -> None:
        sim.sleep(1)
        raise error

    with Simulation() as sim:
        ctx = sim.main_loop.aio_context
        done: list[object] = []
        ctx.thread_pool_submit(bad, done.append)
        ctx.thread_pool_submit(sleeping_fn(sim, 2, "ok"), done.append)
        with pytest.raises(Boom):
            sim.run()
        sim.run()
    assert done == ["ok"]


def test_a_failure_in_done_cb_stops_the_run() -> None:
    error = Boom("callback failed")

    def done(_: object) -> None:
        raise error

    with Simulation() as sim:
        sim.main_loop.aio_context.thread_pool_submit(lambda: 1, done)
        with pytest.raises(Boom) as info:
            sim.run()
    assert info.value is error


# -- outside a simulation ------------------------------------------------------------------


def test_standalone_the_function_runs_from_a_bh_and_completes_in_the_next_poll() -> None:
    ctx = AioContext(VirtualClock(), FdTable(), name="solo")
    seen: list[object] = []
    ctx.thread_pool_submit(lambda: seen.append("fn") or 7, lambda r: seen.append(("done", r)))
    assert seen == []
    assert ctx.poll(False) is True
    assert seen == ["fn"]
    assert ctx.poll(False) is True
    assert seen == ["fn", ("done", 7)]
    assert ctx.poll(False) is False


def test_standalone_an_exception_in_fn_is_raised_from_the_completion() -> None:
    ctx = AioContext(VirtualClock(), FdTable(), name="solo")
    error = Boom("solo")

    def fn() -> None:
        raise error

    ctx.thread_pool_submit(fn, lambda _: None)
    assert ctx.poll(False) is True  # fn ran; its failure waits for the completion
    with pytest.raises(Boom) as info:
        ctx.poll(False)
    assert info.value is error
