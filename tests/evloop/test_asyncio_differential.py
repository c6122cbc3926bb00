"""The same asyncio programs on the stock loop and on SimEventLoop: what they observe must agree.

uvloop's pattern: every case runs on both loops and the observations are
compared. A case only observes what asyncio defines (orders it documents,
deadline order of distinct deadlines, results, exceptions), never real
elapsed time, so the stock run is not flaky on a loaded machine; the short
real sleeps it takes are the price of comparing against the real thing.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

import pytest

import evloop.asyncio

Case = Callable[[], Awaitable[Any]]
CASES: dict[str, Case] = {}


def case(fn: Case) -> Case:
    CASES[fn.__name__] = fn
    return fn


@case
async def call_soon_order_and_cancel() -> list[str]:
    loop = asyncio.get_running_loop()
    seen: list[str] = []
    done = loop.create_future()
    handles = [loop.call_soon(seen.append, tag) for tag in "abcde"]
    handles[2].cancel()
    loop.call_soon(lambda: loop.call_soon(seen.append, "later"))
    loop.call_soon(lambda: loop.call_soon(lambda: done.set_result(None)))
    await done
    return seen


@case
async def timers_in_deadline_order() -> list[str]:
    loop = asyncio.get_running_loop()
    seen: list[str] = []
    done = loop.create_future()
    loop.call_later(0.03, seen.append, "c")
    loop.call_later(0.01, seen.append, "a")
    cancelled = loop.call_later(0.015, seen.append, "cancelled")
    loop.call_later(0.02, seen.append, "b")
    loop.call_later(0.04, done.set_result, None)
    cancelled.cancel()
    await done
    return seen


@case
async def gather_results_and_exceptions() -> list[object]:
    async def value(x: int, delay: float) -> int:
        await asyncio.sleep(delay)
        return x

    async def boom() -> None:
        await asyncio.sleep(0)
        raise ValueError("boom")

    results = await asyncio.gather(value(1, 0.02), value(2, 0.01), boom(),
                                   return_exceptions=True)
    return [r if not isinstance(r, BaseException) else repr(r) for r in results]


@case
async def as_completed_order() -> list[int]:
    async def value(x: int, delay: float) -> int:
        await asyncio.sleep(delay)
        return x

    out = []
    for next_done in asyncio.as_completed([value(1, 0.03), value(2, 0.01), value(3, 0.02)]):
        out.append(await next_done)
    return out


@case
async def wait_for_and_timeout() -> list[str]:
    seen = []
    try:
        await asyncio.wait_for(asyncio.sleep(1), 0.01)
    except TimeoutError:
        seen.append("wait_for timed out")
    try:
        async with asyncio.timeout(0.01):
            await asyncio.sleep(1)
    except TimeoutError:
        seen.append("timeout() timed out")
    seen.append(str(await asyncio.wait_for(asyncio.sleep(0.001, "in time"), 1)))
    return seen


@case
async def taskgroup_errors() -> list[str]:
    seen: list[str] = []

    async def fail(tag: str, delay: float) -> None:
        await asyncio.sleep(delay)
        raise RuntimeError(tag)

    async def slow() -> None:
        try:
            await asyncio.sleep(1)
        except asyncio.CancelledError:
            seen.append("slow cancelled")
            raise

    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(fail("first", 0.01))
            tg.create_task(slow())
    except* RuntimeError as group:
        seen.extend(str(e) for e in group.exceptions)
    return seen


@case
async def lock_is_fifo() -> list[int]:
    lock = asyncio.Lock()
    order: list[int] = []

    async def worker(i: int) -> None:
        async with lock:
            order.append(i)
            await asyncio.sleep(0)

    await asyncio.gather(*(worker(i) for i in range(5)))
    return order


@case
async def queue_order_and_priority() -> list[object]:
    q: asyncio.Queue[int] = asyncio.Queue(maxsize=2)
    pq: asyncio.PriorityQueue[tuple[int, str]] = asyncio.PriorityQueue()
    got: list[object] = []

    async def producer() -> None:
        for i in range(6):
            await q.put(i)

    async def consumer() -> None:
        for _ in range(6):
            got.append(await q.get())

    await asyncio.gather(producer(), consumer())
    for item in [(3, "c"), (1, "a"), (2, "b")]:
        pq.put_nowait(item)
    got.extend([pq.get_nowait() for _ in range(3)])
    return got


@case
async def event_and_condition() -> list[str]:
    event = asyncio.Event()
    cond = asyncio.Condition()
    seen: list[str] = []

    async def waiter(tag: str) -> None:
        await event.wait()
        seen.append(f"event {tag}")
        async with cond:
            await cond.wait()
            seen.append(f"cond {tag}")

    tasks = [asyncio.create_task(waiter(t)) for t in "xy"]
    await asyncio.sleep(0.01)
    event.set()
    await asyncio.sleep(0.01)
    async with cond:
        cond.notify(1)
    await asyncio.sleep(0.01)
    async with cond:
        cond.notify_all()
    await asyncio.gather(*tasks)
    return seen


@case
async def cancellation_and_shield() -> list[str]:
    seen: list[str] = []

    async def inner() -> str:
        await asyncio.sleep(0.02)
        return "inner done"

    inner_task = asyncio.create_task(inner())
    outer = asyncio.shield(inner_task)
    await asyncio.sleep(0.01)
    outer.cancel()
    try:
        await outer
    except asyncio.CancelledError:
        seen.append("outer cancelled")
    seen.append(await inner_task)
    return seen


@case
async def context_variables() -> list[str]:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    seen: list[str] = []

    async def child(tag: str) -> None:
        var.set(tag)
        await asyncio.sleep(0)
        seen.append(f"{tag}: {var.get()}")

    var.set("parent")
    await asyncio.gather(child("a"), child("b"))
    seen.append(f"parent: {var.get()}")
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.call_soon(lambda: done.set_result(var.get()))
    seen.append(f"callback: {await done}")
    return seen


@case
async def exception_handler_sees_callback_errors() -> list[str]:
    loop = asyncio.get_running_loop()
    seen: list[str] = []
    loop.set_exception_handler(lambda _l, ctx: seen.append(str(ctx["exception"])))

    def bad() -> None:
        raise KeyError("in a callback")

    loop.call_soon(bad)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    loop.set_exception_handler(None)
    return seen


@case
async def async_generators_and_executor() -> list[object]:
    seen: list[object] = []

    async def numbers() -> AsyncGenerator[int, None]:
        try:
            for i in range(10):
                yield i
                await asyncio.sleep(0)
        finally:
            seen.append("generator closed")

    async for n in numbers():
        if n == 2:
            break
        seen.append(n)
    seen.append(await asyncio.to_thread(sum, [1, 2, 3]))
    loop = asyncio.get_running_loop()
    seen.append(await loop.run_in_executor(None, max, 4, 9))
    return seen


def _on_stock(fn: Case) -> object:
    return asyncio.run(fn())  # type: ignore[arg-type]


def _on_sim(fn: Case) -> object:
    return evloop.asyncio.run(fn())  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(CASES))
def test_stock_and_simulated_loops_agree(name: str) -> None:
    stock = _on_stock(CASES[name])
    simulated = _on_sim(CASES[name])
    assert simulated == stock
    assert simulated  # every case observes something


def test_the_cases_cover_what_the_issue_names() -> None:
    assert len(CASES) >= 12
