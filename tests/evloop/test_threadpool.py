"""Tests for evloop.threadpool: ``AioContext.thread_pool_submit``.

A request's function runs on a worker thread of control; ``done_cb(result)``
runs back in the submitting context's thread, through the pool's completion
bottom half, which completes the done requests newest submitted first. An
exception in the function is raised again from the completion, in the
context's thread, and stops the run. Each behaviour cites the function of
QEMU's ``util/thread-pool.c`` (QEMU 10.2) it follows.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from evloop import (
    REQUEST_CANCELLED,
    AioContext,
    FdTable,
    RequestState,
    Simulation,
    ThreadPoolRequest,
    VirtualClock,
)
from evloop.machine.threadpool import MAX_WORKERS, THREAD_POOL_MAX_THREADS_DEFAULT
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
    # At t=1000 worker-0 finishes first, and the main thread, which has waited
    # longest, completes request 0 alone; the 63 others finish meanwhile and
    # complete in one run of the bottom half, newest submitted first
    # (thread_pool_completion_bh walks pool->head).
    assert done[:MAX_WORKERS] == [0, *range(MAX_WORKERS - 1, 0, -1)]
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


# -- the completion bottom half (thread_pool_completion_bh) ---------------------------------


def standalone() -> AioContext:
    return AioContext(VirtualClock(), FdTable(), name="solo")


def test_done_requests_complete_newest_submitted_first_in_one_bh_run() -> None:
    # thread_pool_submit_aio inserts each request at the head of pool->head;
    # thread_pool_completion_bh walks it from the head.
    ctx = standalone()
    done: list[object] = []
    for name in ("a", "b", "c"):
        ctx.thread_pool_submit(lambda name=name: name, done.append)  # type: ignore[misc]
    assert ctx.poll(False) is True  # the three functions run
    assert done == []
    assert ctx.poll(False) is True  # one run of the completion bottom half
    assert done == ["c", "b", "a"]


def test_the_completion_bh_leaves_nothing_scheduled_so_the_next_poll_makes_no_progress() -> None:
    # thread_pool_completion_bh: qemu_bh_schedule before each callback,
    # qemu_bh_cancel after it; the cancelled BH is dequeued without running.
    ctx = standalone()
    done: list[object] = []
    for i in range(3):
        ctx.thread_pool_submit(lambda i=i: i, done.append)  # type: ignore[misc]
    ctx.poll(False)
    ctx.poll(False)
    assert done == [2, 1, 0]
    assert ctx.poll(False) is False
    assert ctx._bh_scheduled() is False


def test_a_callback_that_polls_completes_the_other_done_requests_from_its_nested_poll() -> None:
    # thread_pool_completion_bh: "Schedule ourselves in case elem->common.cb()
    # calls aio_poll() to wait for another request that completed at the same time."
    ctx = standalone()
    log: list[str] = []

    def first_done(result: object) -> None:
        log.append(f"{result} begins")
        assert ctx.poll(False) is True
        log.append(f"{result} ends")

    ctx.thread_pool_submit(lambda: "a", lambda r: log.append(str(r)))
    ctx.thread_pool_submit(lambda: "b", lambda r: log.append(str(r)))
    ctx.thread_pool_submit(lambda: "c", first_done)
    ctx.poll(False)
    assert ctx.poll(False) is True
    assert log == ["c begins", "b", "a", "c ends"]
    assert ctx.poll(False) is False


def test_thread_pool_submit_returns_the_request_and_its_state() -> None:
    with Simulation() as sim:
        ctx = sim.main_loop.aio_context
        seen: list[RequestState] = []
        req: ThreadPoolRequest

        def fn() -> str:
            seen.append(req.state)
            sim.sleep(5)
            return "r"

        req = ctx.thread_pool_submit(fn, lambda _: seen.append(req.state))
        assert isinstance(req, ThreadPoolRequest)
        assert req.state is RequestState.QUEUED
        assert repr(req) == "<ThreadPoolRequest #1 queued>"
        sim.run()
    assert seen == [RequestState.ACTIVE, RequestState.DONE]
    assert req.completed and req.result == "r" and not req.cancelled


# -- cancellation (thread_pool_cancel) ---------------------------------------------------------


def test_cancelling_a_queued_request_completes_it_as_cancelled_without_running_it() -> None:
    # thread_pool_cancel: a THREAD_QUEUED request leaves request_list, becomes
    # THREAD_DONE with -ECANCELED, and the completion BH is scheduled.
    with Simulation() as sim:
        ctx = sim.main_loop.aio_context
        ctx.set_thread_pool_params(0, 1)  # one worker: the second request waits
        ran: list[str] = []
        done: list[tuple[object, int]] = []

        def fn(name: str) -> str:
            ran.append(name)
            sim.sleep(100)
            return name

        ctx.thread_pool_submit(lambda: fn("first"), lambda r: done.append((r, sim.now_ns)))
        second = ctx.thread_pool_submit(
            lambda: fn("second"), lambda r: done.append((r, sim.now_ns))
        )
        sim.sleep(10)  # the worker has taken the first request
        assert second.state is RequestState.QUEUED
        assert second.cancel() is True
        assert second.state is RequestState.DONE and second.cancelled
        assert second.cancel() is False  # done already
        sim.run()
    assert ran == ["first"]
    assert done == [(REQUEST_CANCELLED, 10), ("first", 100)]
    assert repr(REQUEST_CANCELLED) == "REQUEST_CANCELLED"


def test_cancelling_a_running_request_leaves_it_to_complete_with_its_result() -> None:
    # thread_pool_cancel does nothing once a worker took the request (THREAD_ACTIVE).
    with Simulation() as sim:
        ctx = sim.main_loop.aio_context
        done: list[tuple[object, int]] = []
        req = ctx.thread_pool_submit(
            sleeping_fn(sim, 100, "r"), lambda r: done.append((r, sim.now_ns))
        )
        sim.sleep(10)
        assert req.state is RequestState.ACTIVE
        assert req.cancel() is False
        sim.run()
    assert done == [("r", 100)]


def test_standalone_a_request_cancelled_before_its_bh_ran_never_runs() -> None:
    ctx = standalone()
    ran: list[str] = []
    done: list[object] = []
    req = ctx.thread_pool_submit(lambda: ran.append("fn"), done.append)
    assert req.cancel() is True
    assert ctx.poll(False) is True  # the completion (scheduled by cancel) runs
    assert ctx.poll(False) is False  # the work BH runs and does nothing
    assert ran == []
    assert done == [REQUEST_CANCELLED]


# -- worker limits (aio_context_set_thread_pool_params, thread_pool_update_params) --------


def test_the_pool_limits_default_to_qemus() -> None:
    ctx = standalone()
    assert (ctx.thread_pool_min, ctx.thread_pool_max) == (0, THREAD_POOL_MAX_THREADS_DEFAULT)
    assert THREAD_POOL_MAX_THREADS_DEFAULT == 64


@pytest.mark.parametrize(("lo", "hi"), [(2, 1), (0, 0), (-1, 4), (0, 2**31)])
def test_bad_pool_limits_are_refused_and_change_nothing(lo: int, hi: int) -> None:
    # util/async.c, aio_context_set_thread_pool_params:
    # min > max || max <= 0 || min < 0 || min > INT_MAX || max > INT_MAX.
    ctx = standalone()
    message = (
        f"bad thread-pool-min/thread-pool-max values (min={lo}, max={hi}): "
        "want 0 <= min <= max, 0 < max <= 2147483647"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        ctx.set_thread_pool_params(lo, hi)
    assert (ctx.thread_pool_min, ctx.thread_pool_max) == (0, 64)


def test_max_caps_the_workers() -> None:
    with Simulation() as sim:
        ctx = sim.main_loop.aio_context
        ctx.set_thread_pool_params(0, 2)
        done: list[tuple[object, int]] = []
        for i in range(5):
            ctx.thread_pool_submit(sleeping_fn(sim, 100, i), lambda r: done.append((r, sim.now_ns)))
        result = sim.run()
        assert ctx._thread_pool.workers == 2
    assert sorted(t for _, t in done) == [100, 100, 200, 200, 300]
    assert result.time_ns == 300


def test_min_starts_workers_before_any_request_needs_them() -> None:
    # thread_pool_init_one -> thread_pool_update_params spawns up to min_threads.
    with Simulation() as sim:
        ctx = sim.main_loop.aio_context
        ctx.set_thread_pool_params(3, 8)
        ctx.thread_pool_submit(lambda: None, lambda _: None)
        # The three min workers have not run yet when the request comes, so
        # none is idle (idle_threads == 0) and thread_pool_submit_aio starts a
        # fourth, as QEMU's does.
        sim.run()
        assert ctx._thread_pool.workers == 4
        names = [t.name for t in sim.threads if "worker" in t.name]
        assert names == [f"aio-context/worker-{i}" for i in range(4)]
        ctx.set_thread_pool_params(6, 8)  # an existing pool takes the new limits at once
        sim.run()
        assert ctx._thread_pool.workers == 6


def test_lowering_max_makes_the_surplus_workers_exit() -> None:
    # thread_pool_update_params signals request_cond; worker_thread leaves its
    # loop while cur_threads > max_threads.
    with Simulation() as sim:
        ctx = sim.main_loop.aio_context
        for i in range(4):
            ctx.thread_pool_submit(sleeping_fn(sim, 10, i), lambda _: None)
        sim.run()
        pool = ctx._thread_pool
        assert pool.workers == 4
        ctx.set_thread_pool_params(0, 1)
        result = sim.run()
        assert result.reason.value == "idle"
        assert pool.workers == 1
        workers = [t for t in sim.threads if "worker" in t.name]
        assert sum(t.done for t in workers) == 3
        assert repr(pool) == (
            "<ThreadPool of 'aio-context' workers=1 idle=1 queued=0 min=0 max=1>"
        )
        done: list[object] = []
        ctx.thread_pool_submit(lambda: "again", done.append)  # the one left takes it
        sim.run()
        assert pool.workers == 1
    assert done == ["again"]
