"""SimEventLoop: asyncio's semantics on virtual time, virtual fds and observed steps."""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Iterator

import pytest

from evloop import DeadlockError, FencedError, Simulation
from evloop.asyncio import SimEventLoop, VirtualSelector, run


@pytest.fixture
def loop() -> Iterator[SimEventLoop]:
    loop = SimEventLoop(Simulation(log=True))
    yield loop
    loop.close()
    loop.sim.close()


def test_sleep_takes_virtual_time_only() -> None:
    async def main() -> tuple[float, int]:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, SimEventLoop)
        for _ in range(10):
            await asyncio.sleep(0.1)
        await asyncio.sleep(3600)
        return loop.time(), loop.time_ns()

    start = time.perf_counter()
    assert run(main()) == (3601.0, 3_601_000_000_000)
    assert time.perf_counter() - start < 5.0  # an hour of virtual time, no real waiting


def test_call_soon_is_fifo_and_a_batch_does_not_run_what_it_schedules(loop: SimEventLoop) -> None:
    order: list[str] = []

    def first() -> None:
        order.append("first")
        loop.call_soon(order.append, "scheduled by first")

    loop.call_soon(first)
    loop.call_soon(order.append, "second")
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert order == ["first", "second"]
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert order == ["first", "second", "scheduled by first"]


def test_timers_fire_in_deadline_order_then_arm_order(loop: SimEventLoop) -> None:
    fired: list[tuple[str, int]] = []

    def note(tag: str) -> None:
        fired.append((tag, loop.time_ns()))

    loop.call_later(0.3, note, "c")
    loop.call_later(0.1, note, "a1")
    loop.call_at(0.1, note, "a2")
    cancelled = loop.call_later(0.2, note, "cancelled")
    loop.call_later(0.2, note, "b")
    cancelled.cancel()
    loop.call_later(0.4, loop.stop)
    loop.run_forever()
    assert fired == [("a1", 100_000_000), ("a2", 100_000_000), ("b", 200_000_000),
                     ("c", 300_000_000)]


def test_due_timers_join_the_batch_behind_ready_callbacks(loop: SimEventLoop) -> None:
    order: list[str] = []

    def first() -> None:
        order.append("first")
        loop.call_later(0, order.append, "timer armed by first")
        loop.call_soon(order.append, "soon from first")

    loop.call_soon(first)
    loop.call_soon(lambda: loop.call_soon(loop.stop))
    loop.run_forever()
    # asyncio: the timer is due at the next iteration, behind what was ready.
    assert order == ["first", "soon from first", "timer armed by first"]


def test_time_has_no_float_drift(loop: SimEventLoop) -> None:
    async def main() -> int:
        for _ in range(1000):
            await asyncio.sleep(0.001)
        return loop.time_ns()

    assert loop.run_until_complete(main()) == 1_000_000_000
    assert loop.time() == 1.0


def test_call_at_reports_the_time_it_was_given(loop: SimEventLoop) -> None:
    handle = loop.call_at(12.345, lambda: None)
    assert handle.when() == 12.345
    assert isinstance(handle, asyncio.TimerHandle)
    later = loop.call_later(0.5, lambda: None)
    assert later.when() == 0.5
    handle.cancel()
    later.cancel()


def test_every_callback_is_a_step_of_the_simulation(loop: SimEventLoop) -> None:
    sim = loop.sim

    async def child() -> None:
        await asyncio.sleep(1)

    async def main() -> None:
        await asyncio.create_task(child())

    before, digest = sim.steps, sim.digest
    loop.run_until_complete(main())
    assert sim.steps > before
    assert sim.digest != digest
    assert sim.log is not None
    kinds = [(e.kind, e.name) for e in sim.log]
    assert ("bh", "Task-1 step") in kinds
    assert ("bh", "Task-2 step") in kinds
    timer_steps = [e for e in sim.log if e.kind == "timer"]
    assert [(e.time_ns, e.context) for e in timer_steps] == [(1_000_000_000, "asyncio")]


def test_same_seed_same_digest_different_program_different_digest() -> None:
    def digest(delays: tuple[float, ...]) -> tuple[int, int]:
        async def main() -> None:
            loop = asyncio.get_running_loop()
            await asyncio.gather(*(asyncio.sleep(d) for d in delays))
            sims.append(loop.sim)  # type: ignore[attr-defined]

        sims: list[Simulation] = []
        run(main())
        return sims[0].digest, sims[0].steps

    assert digest((0.1, 0.2)) == digest((0.1, 0.2))
    assert digest((0.1, 0.2)) != digest((0.2, 0.1))


def test_task_names_come_from_the_loop(loop: SimEventLoop) -> None:
    async def main() -> list[str]:
        tasks = [asyncio.create_task(asyncio.sleep(0)) for _ in range(2)]
        named = asyncio.create_task(asyncio.sleep(0), name="mine")
        await asyncio.gather(*tasks, named)
        return [t.get_name() for t in (*tasks, named)]

    asyncio.run(asyncio.sleep(0))  # a stock loop's tasks do not shift our names
    assert loop.run_until_complete(main()) == ["Task-2", "Task-3", "mine"]
    other = SimEventLoop()
    try:
        assert other.run_until_complete(main()) == ["Task-2", "Task-3", "mine"]
    finally:
        other.close()


def test_reader_and_writer_on_virtual_fds(loop: SimEventLoop) -> None:
    fds = loop.sim.fds
    a, b = fds.socketpair()
    got: list[bytes] = []

    def on_readable() -> None:
        got.append(fds.read(a, 100))
        if got[-1] == b"stop":
            loop.remove_reader(a)
            loop.stop()

    loop.add_reader(a, on_readable)
    loop.call_later(1, fds.write, b, b"hello")
    loop.call_later(2, fds.write, b, b"stop")
    loop.run_forever()
    assert got == [b"hello", b"stop"]
    assert loop.time_ns() == 2_000_000_000
    wrote: list[int] = []
    loop.add_writer(b, lambda: (wrote.append(fds.write(b, b"x")), loop.remove_writer(b)))
    loop.call_soon(loop.call_soon, loop.stop)
    loop.run_forever()
    assert wrote == [1]
    assert fds.read(a, 10) == b"x"


def test_sock_recv_and_sendall_on_a_virtual_socket(loop: SimEventLoop) -> None:
    class Sock:
        """The socket.socket subset sock_recv/sock_sendall need, on a virtual fd."""

        def __init__(self, fd: int) -> None:
            self.fd = fd

        def fileno(self) -> int:
            return self.fd

        def gettimeout(self) -> float:
            return 0.0

        def recv(self, n: int) -> bytes:
            return loop.sim.fds.read(self.fd, n)

        def send(self, data: bytes) -> int:
            return loop.sim.fds.write(self.fd, bytes(data))

    a, b = loop.sim.fds.socketpair()

    async def main() -> bytes:
        reader = asyncio.create_task(loop.sock_recv(Sock(a), 10))  # type: ignore[arg-type]
        await asyncio.sleep(5)
        await loop.sock_sendall(Sock(b), b"ping")  # type: ignore[arg-type]
        return await reader

    assert loop.run_until_complete(main()) == b"ping"


def test_registering_an_fd_the_simulation_does_not_have_is_ebadf(loop: SimEventLoop) -> None:
    with pytest.raises(OSError, match=r"^\[Errno 9\] Bad file descriptor \(register on virtual "
                                      r"fd 42\)$"):
        loop.add_reader(42, lambda: None)
    selector = VirtualSelector(loop.sim.fds)
    with pytest.raises(ValueError, match=r"^Invalid file descriptor: -1$"):
        selector.register(-1, 1)


def test_waiting_forever_is_a_deadlock_not_a_hang(loop: SimEventLoop) -> None:
    with pytest.raises(DeadlockError, match=r"asyncio loop 'asyncio': waiting on fds \[\]"):
        loop.run_until_complete(loop.create_future())


def test_signals_and_subprocesses_are_fenced(loop: SimEventLoop) -> None:
    with pytest.raises(NotImplementedError) as info:
        loop.add_signal_handler(2, lambda: None)
    assert isinstance(info.value, FencedError)
    assert str(info.value) == (
        "evloop.asyncio: loop.add_signal_handler() is fenced off in a simulation: signals "
        "come from outside and cannot be replayed (see docs/asyncio.md)"
    )
    assert loop.remove_signal_handler(2) is False

    async def spawn() -> None:
        await asyncio.create_subprocess_exec("true")

    with pytest.raises(FencedError, match=r"^evloop.asyncio: loop.subprocess_exec\(\) is fenced "
                                          r"off in a simulation: a child process runs outside "
                                          r"virtual time \(see docs/asyncio.md\)$"):
        loop.run_until_complete(spawn())


def test_an_exception_in_a_callback_goes_to_the_exception_handler(loop: SimEventLoop) -> None:
    seen: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: seen.append(context))

    def boom() -> None:
        raise ValueError("boom")

    loop.call_soon(boom)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert len(seen) == 1
    assert str(seen[0]["message"]).startswith("Exception in callback ")
    assert isinstance(seen[0]["exception"], ValueError)


def test_debug_mode_runs_the_same_program() -> None:
    async def main() -> float:
        loop = asyncio.get_running_loop()
        assert loop.get_debug()
        await asyncio.sleep(1.5)
        return loop.time()

    assert run(main(), debug=True) == 1.5


def test_closing_closes_the_simulation_it_made() -> None:
    loop = SimEventLoop(seed=3)
    assert loop.sim.seed == 3
    loop.close()
    assert loop.is_closed()
    with pytest.raises(RuntimeError, match=r"^Event loop is closed$"):
        loop.call_soon(lambda: None)
    sim = Simulation()
    shared = SimEventLoop(sim)
    shared.close()
    sim.thread("still-usable", lambda: None)  # the loop did not close a simulation it was given
    sim.close()


def test_a_chooser_goes_to_the_simulation_not_to_a_loop_on_it() -> None:
    from evloop import RandomChooser

    with Simulation() as sim, pytest.raises(
        ValueError, match=r"^pass the chooser to the Simulation, not to a loop built on it$"
    ):
        SimEventLoop(sim, chooser=RandomChooser(1))


@pytest.mark.parametrize("host", ["alone", "thread of control"])
def test_the_steps_are_the_same_whatever_watches_them(host: str) -> None:
    """The loop folds steps into the digest itself when the simulation only
    counts them (no log, no ring) and hands them to the simulation's observer
    otherwise; and a loop hosted in a thread of control skips its preemption
    points when no other thread could take the turn. Steps and digest are
    the same either way."""

    async def main() -> None:
        queue: asyncio.Queue[int] = asyncio.Queue(1)

        async def producer() -> None:
            for i in range(50):
                await queue.put(i)
                await asyncio.sleep(0.001 * (i % 3))

        async def consumer() -> None:
            for _ in range(50):
                await queue.get()

        await asyncio.gather(producer(), consumer())

    def steps(**watch: object) -> tuple[int, int]:
        sim = Simulation(**watch)  # type: ignore[arg-type]
        if host == "alone":
            run(main(), sim=sim)
        else:
            sim.thread("asyncio", lambda: run(main(), sim=sim))
            sim.run()
        sim.close()
        return sim.steps, sim.digest

    lean = steps()
    assert lean[0] > 100
    assert steps(log=True) == lean
    assert steps(recent=8) == lean


def _settle_cases(loop: asyncio.AbstractEventLoop) -> list[object]:
    """The timer ``asyncio.sleep`` arms (``_set_result_unless_cancelled``) on
    every kind of future; what the program and the exception handler see."""
    from asyncio.futures import _set_result_unless_cancelled

    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="none")
    seen: list[object] = []
    loop.set_exception_handler(
        lambda _loop, context: seen.append(
            ("handler", type(context["exception"]).__name__, context["handle"].cancelled())
        )
    )

    class Subclass(asyncio.Future[object]):
        def set_result(self, result: object) -> None:
            seen.append(("subclass set_result", result))
            super().set_result(result)

    pending = loop.create_future()
    cancelled = loop.create_future()
    done = loop.create_future()
    subclass = Subclass(loop=loop)
    cancelled.cancel()
    done.set_result("first")
    # A done callback runs in the context it was added in, not the timer's.
    token = var.set("added")
    pending.add_done_callback(lambda f: seen.append(("callback", f.result(), var.get())))
    var.reset(token)
    var.set("timer")
    for delay, fut, value in [
        (0.02, pending, "pending"), (0.001, cancelled, "cancelled"),
        (0.06, done, "second"), (0.001, subclass, "subclass"),
    ]:  # far apart, so that the stock loop's real clock keeps them in order too
        loop.call_later(delay, _set_result_unless_cancelled, fut, value)
    loop.call_later(0.1, loop.stop)
    loop.run_forever()
    seen += [
        ("pending", pending.result()), ("cancelled", cancelled.cancelled()),
        ("done", done.result()), ("subclass", subclass.result()),
    ]
    return seen


def test_a_sleeps_timer_settles_its_future_as_on_the_stock_loop() -> None:
    """The batch settles a sleep's future itself when it is a pending
    ``asyncio.Future`` of the loop (iteration.py); every other case takes
    asyncio's own callback. Both give what the stock loop gives."""
    stock = asyncio.new_event_loop()
    try:
        expected = _settle_cases(stock)
    finally:
        stock.close()
    assert expected == [
        ("subclass set_result", "subclass"),
        ("callback", "pending", "added"),
        ("handler", "InvalidStateError", False),
        ("pending", "pending"), ("cancelled", True), ("done", "first"),
        ("subclass", "subclass"),
    ]
    sim_loop = SimEventLoop()
    try:
        assert _settle_cases(sim_loop) == expected
    finally:
        sim_loop.close()


def test_a_sleep_is_the_same_steps_in_debug_mode() -> None:
    """Debug mode runs every callback through ``Handle._run``, never the
    batch's own settling of a sleep's future: the steps and digest agree."""

    async def main() -> None:
        async def sleeper(i: int) -> None:
            for k in range(20):
                await asyncio.sleep(0.001 * ((i * 7 + k) % 5), result=k)

        await asyncio.gather(*(sleeper(i) for i in range(5)))

    def steps(debug: bool) -> tuple[int, int]:
        sim = Simulation()
        run(main(), sim=sim, debug=debug)
        sim.close()
        return sim.steps, sim.digest

    plain = steps(False)
    assert plain[0] > 150
    assert steps(True) == plain
