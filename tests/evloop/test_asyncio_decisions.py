"""Where SimEventLoop asks the chooser, and what it asks: only where asyncio leaves it open."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from evloop import ChoiceKind, RandomChooser, Simulation
from evloop.asyncio import SimEventLoop, run


class ScriptedChooser:
    """Answers from a script (then 0), keeping every question it was asked."""

    def __init__(self, answers: Sequence[int] = ()) -> None:
        self.answers = list(answers)
        self.asked: list[tuple[ChoiceKind, list[str]]] = []

    def choose(self, kind: ChoiceKind, options: Sequence[str]) -> int:
        self.asked.append((kind, list(options)))
        return self.answers.pop(0) if self.answers else 0


def _two_ready_fds(chooser: ScriptedChooser) -> list[str]:
    loop = SimEventLoop(chooser=chooser)
    fds = loop.sim.fds
    got: list[str] = []
    pairs = [fds.socketpair() for _ in range(2)]
    for tag, (a, b) in zip("xy", pairs, strict=True):
        loop.add_reader(a, lambda a=a, tag=tag: (got.append(tag), fds.read(a, 10)))
        fds.write(b, b"!")
    loop.call_soon(loop.call_soon, loop.stop)
    loop.run_forever()
    loop.close()
    return got


def test_which_ready_fd_goes_first_is_a_decision_whose_first_option_is_asyncios() -> None:
    fifo = ScriptedChooser()
    assert _two_ready_fds(fifo) == ["x", "y"]
    assert fifo.asked == [(ChoiceKind.READY_FD, ["fd 5", "fd 7"])]
    assert _two_ready_fds(ScriptedChooser([1])) == ["y", "x"]


def _ties(chooser: ScriptedChooser) -> list[str]:
    loop = SimEventLoop(chooser=chooser)
    got: list[str] = []
    loop.call_later(1, got.append, "a")
    loop.call_later(1, got.append, "b")
    loop.call_later(2, got.append, "c")
    loop.call_later(3, loop.stop)
    loop.run_forever()
    loop.close()
    return got


def test_timers_due_at_the_same_nanosecond_are_a_decision() -> None:
    fifo = ScriptedChooser()
    assert _ties(fifo) == ["a", "b", "c"]
    assert [(kind, len(options)) for kind, options in fifo.asked] == [(ChoiceKind.TIMER_TIE, 2)]
    assert fifo.asked[0][1][0].startswith("list.append #")
    assert _ties(ScriptedChooser([1])) == ["b", "a", "c"]


def _batch(chooser: ScriptedChooser, chaos: bool) -> tuple[list[str], str]:
    loop = SimEventLoop(chooser=chooser, chaos=chaos)
    got: list[str] = []
    for tag in "abc":
        loop.call_soon(got.append, tag)
    loop.call_soon(loop.stop)
    loop.run_forever()
    mode = loop.mode
    loop.close()
    return got, mode


def test_the_ready_queue_is_fifo_unless_chaos_is_asked_for() -> None:
    asyncio_order = ScriptedChooser([3, 2, 1])
    assert _batch(asyncio_order, chaos=False) == (["a", "b", "c"], "asyncio")
    assert asyncio_order.asked == []  # call_soon is FIFO: nothing to decide
    chaos = ScriptedChooser([3, 2, 1])
    got, mode = _batch(chaos, chaos=True)
    assert mode == "chaos"
    assert [kind for kind, _ in chaos.asked] == [ChoiceKind.READY_QUEUE] * 3
    # stop() is picked first, but the batch still runs to its end.
    assert got == ["c", "b", "a"]


def test_a_seeded_chooser_gives_the_same_run_every_time() -> None:
    def once(seed: int) -> tuple[list[str], int, int]:
        async def main() -> tuple[list[str], int, int]:
            loop = asyncio.get_running_loop()
            seen: list[str] = []

            async def worker(tag: str) -> None:
                for _ in range(3):
                    await asyncio.sleep(0.25)
                    seen.append(tag)

            await asyncio.gather(*(worker(t) for t in "pqrs"))
            sim = loop.sim  # type: ignore[attr-defined]
            return seen, sim.steps, sim.digest

        return run(main(), chooser=RandomChooser(seed))

    assert once(5) == once(5)
    assert len({tuple(once(seed)[0]) for seed in range(6)}) > 1


def test_an_orphaned_tasks_exception_is_reported_at_a_controlled_point() -> None:
    with Simulation() as sim:
        loop = SimEventLoop(sim)
        reports: list[tuple[str, int]] = []
        loop.set_exception_handler(lambda _l, ctx: reports.append((ctx["message"], sim.steps)))

        async def fail() -> None:
            raise ValueError("nobody awaits me")

        async def main() -> None:
            task = asyncio.create_task(fail())
            cycle: list[object] = [task]
            cycle.append(cycle)
            task.add_done_callback(lambda _t, keep=cycle: keep)  # task <-> cycle
            del task, cycle
            for _ in range(20):
                await asyncio.sleep(0)
            assert reports == []  # no collection in the middle of the run

        loop.run_until_complete(main())
        # Reported when run_forever returned, after the run's last step.
        assert reports == [("Task exception was never retrieved", sim.steps)]
        loop.close()
