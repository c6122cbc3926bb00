"""Executors, to_thread and run_coroutine_threadsafe on threads of control."""

from __future__ import annotations

import asyncio
import concurrent.futures

import pytest

from evloop import DeadlockError, FencedError, RandomChooser, Simulation, StopReason
from evloop.asyncio import SimEventLoop, SimThreadPoolExecutor, run


def _jobs(order: list[int], n: int = 4) -> object:
    async def main() -> list[tuple[int, str]]:
        loop = asyncio.get_running_loop()
        sim = loop.sim  # type: ignore[attr-defined]
        seen: list[tuple[int, str]] = []

        def job(i: int) -> int:
            seen.append((i, sim.current_thread.name))
            sim.sleep(1_000)
            return i

        futures = [loop.run_in_executor(None, job, i) for i in range(n)]
        for next_done in asyncio.as_completed(futures):
            order.append(await next_done)
        return seen

    return main()


def test_executor_jobs_run_on_threads_of_control_in_fifo_order() -> None:
    order: list[int] = []
    seen = run(_jobs(order))  # type: ignore[arg-type]
    assert order == [0, 1, 2, 3]
    assert seen == [(i, f"asyncio:executor-1/worker-{i}") for i in range(4)]


def test_executor_completion_order_is_the_choosers() -> None:
    orders = set()
    for seed in range(1, 9):
        order: list[int] = []
        run(_jobs(order), chooser=RandomChooser(seed))  # type: ignore[arg-type]
        again: list[int] = []
        run(_jobs(again), chooser=RandomChooser(seed))  # type: ignore[arg-type]
        assert again == order  # the same decisions, the same order
        orders.add(tuple(order))
    assert len(orders) > 1


def test_to_thread_and_a_real_thread_pool_run_on_threads_of_control() -> None:
    async def main() -> tuple[str, list[str], float]:
        loop = asyncio.get_running_loop()
        sim = loop.sim  # type: ignore[attr-defined]
        name = await asyncio.to_thread(lambda: sim.current_thread.name)
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            names = await asyncio.gather(
                *(loop.run_in_executor(pool, lambda: sim.current_thread.name) for _ in range(3))
            )
        return name, list(names), loop.time()

    name, names, now = run(main())
    assert name == "asyncio:executor-1/worker-0"
    # Two workers at most, as the real pool would have.
    assert sorted(set(names)) == ["asyncio:thread-pool-2/worker-0",
                                  "asyncio:thread-pool-2/worker-1"]
    assert now == 0.0


def test_a_job_exception_is_its_futures() -> None:
    def fail() -> None:
        raise KeyError("in a job")

    async def main() -> None:
        await asyncio.to_thread(fail)

    with pytest.raises(KeyError, match="in a job"):
        run(main())


def test_process_pools_are_fenced() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        with concurrent.futures.ProcessPoolExecutor(max_workers=1) as pool:
            await loop.run_in_executor(pool, print)

    with pytest.raises(FencedError, match=r"^evloop.asyncio: run_in_executor\(\) with a "
                                          r"ProcessPoolExecutor is fenced off in a simulation: "
                                          r"its processes run outside virtual time"):
        run(main())


def test_run_coroutine_threadsafe_from_a_job_waits_in_virtual_time() -> None:
    async def double(x: int) -> int:
        await asyncio.sleep(1)
        return 2 * x

    def blocking(loop: asyncio.AbstractEventLoop) -> tuple[int, str, float]:
        answer = asyncio.run_coroutine_threadsafe(double(21), loop)
        late = asyncio.run_coroutine_threadsafe(asyncio.sleep(10), loop)
        try:
            late.result(timeout=0.5)
            outcome = "no timeout"
        except TimeoutError:
            outcome = "timeout"
        return answer.result(), outcome, loop.time()

    async def main() -> tuple[int, str, float]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, blocking, loop)

    assert run(main()) == (42, "timeout", 1.0)


def test_call_soon_threadsafe_wakes_a_waiting_loop() -> None:
    with Simulation() as sim:
        loop = SimEventLoop(sim)
        got: list[tuple[str, int]] = []

        def other() -> None:
            sim.sleep(5_000)
            loop.call_soon_threadsafe(lambda: got.append(("woken", sim.now_ns)))
            loop.call_soon_threadsafe(loop.stop)

        sim.thread("other", other)
        loop.run_forever()
        loop.close()
        assert got == [("woken", 5_000)]


def test_waiting_on_a_future_nobody_completes_names_every_thread() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        await asyncio.to_thread(lambda: None)  # an idle worker is no deadlock...
        await loop.create_future()  # ...but this wait is

    with pytest.raises(DeadlockError, match=r"main: blocked in asyncio loop 'asyncio'"):
        run(main())


def test_shutdown_waits_for_running_jobs_in_virtual_time() -> None:
    async def main() -> tuple[float, list[int]]:
        loop = asyncio.get_running_loop()
        sim = loop.sim  # type: ignore[attr-defined]
        finished: list[int] = []

        def job() -> None:
            sim.sleep(3_000_000_000)
            finished.append(sim.now_ns)

        loop.run_in_executor(None, job)
        await loop.shutdown_default_executor()
        with pytest.raises(RuntimeError, match=r"^Executor shutdown has been called$"):
            loop.run_in_executor(None, job)
        return loop.time(), finished

    assert run(main()) == (3.0, [3_000_000_000])


def test_the_executor_refuses_work_after_shutdown() -> None:
    with Simulation() as sim:
        pool = SimThreadPoolExecutor(sim, max_workers=1)
        pool.shutdown(wait=False)
        with pytest.raises(RuntimeError, match=r"^cannot schedule new futures after shutdown$"):
            pool.submit(print)


def test_a_run_cut_short_leaves_no_pending_task_or_unawaited_coroutine_behind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import gc
    import warnings

    unwound: list[str] = []

    async def worker(i: int) -> None:
        try:
            await asyncio.sleep(10 + i)
        finally:
            unwound.append(f"worker-{i}")

    async def main() -> None:
        tasks = [asyncio.create_task(worker(i)) for i in range(3)]
        await asyncio.gather(*tasks)

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        sim = Simulation()
        sim.thread("asyncio", lambda: run(main(), sim=sim))
        result = sim.run(until_ns=2_000_000_000)  # cut while every worker sleeps
        assert result.reason is StopReason.UNTIL
        assert unwound == []
        sim.close()
        gc.collect()
    assert unwound == ["worker-0", "worker-1", "worker-2"]
    assert [str(w.message) for w in seen] == []
    assert "destroyed but it is pending" not in caplog.text


def test_a_run_cut_short_closes_the_connections_it_left_open() -> None:
    import gc
    import warnings

    lost: list[str] = []

    async def main() -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1)  # never answered: the cut comes first

        server = await asyncio.start_server(handle, "127.0.0.1", 7001)
        _reader, writer = await asyncio.open_connection("127.0.0.1", 7001)
        transport = writer.transport
        protocol = transport.get_protocol()
        original = protocol.connection_lost

        def connection_lost(exc: BaseException | None) -> None:
            lost.append("client")
            original(exc)

        protocol.connection_lost = connection_lost  # type: ignore[method-assign]
        await asyncio.sleep(10)
        server.close()

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        sim = Simulation()
        sim.thread("asyncio", lambda: run(main(), sim=sim))
        assert sim.run(until_ns=1_000_000_000).reason is StopReason.UNTIL
        sim.close()
        gc.collect()
    assert lost == ["client"]
    assert [str(w.message) for w in seen] == []
