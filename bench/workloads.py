"""The evreplay side of every workload, one *prepare* function per workload.

Each function builds a :class:`evloop.Simulation` untimed and returns a
``run()`` that drives it and returns how many operations it did (see
:mod:`bench.harness`). They mirror their peers in :mod:`bench.peers` line for
line: same delays, same per-dispatch work (count, take the next delay, re-arm
or retire).

``evloop`` is imported lazily, through :func:`load_evloop`, so that the peers
and the harness run (and the suite reports ``unavailable``) while the loop
does not import yet. The record and play workloads are placeholders until
the replay layer exists: :func:`replay_unavailable` says why.
"""

from __future__ import annotations

import importlib
import itertools
import select
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

from .delays import delay_streams
from .harness import BenchError, Run, Unavailable

__all__ = [
    "FAR_FUTURE_NS",
    "bottom_halves",
    "fd_ping_pong",
    "idle_fds",
    "load_evloop",
    "pending_timers",
    "replay_unavailable",
    "steps_forever",
    "timers",
    "turn_handoffs",
]

#: Deadline of the timers that must stay pending for a whole run.
FAR_FUTURE_NS = 10**18

#: What the placeholders say while ``replay`` has no recorder.
NO_REPLAY = "(replay layer not available yet)"


def load_evloop() -> ModuleType:
    """The ``evloop`` package, or :class:`Unavailable` if its API does not import yet."""
    try:
        evloop = importlib.import_module("evloop")
        for name in ("Simulation", "ClockType"):
            getattr(evloop, name)
    except (ImportError, AttributeError) as exc:
        raise Unavailable(f"evloop does not import yet ({exc})") from exc
    return evloop


def replay_unavailable() -> str:
    """Why the record/play figures are placeholders (the lead wires them)."""
    try:
        importlib.import_module("replay.recorder")
    except ImportError:
        return NO_REPLAY
    return "(replay layer present; its benchmark is not wired yet: see bench/workloads.py)"


def _simulation() -> Any:
    return load_evloop().Simulation(seed=0)


def _arm_timers(
    sim: Any, streams: Iterator[Iterator[int]], on_idle: Callable[[], None]
) -> list[int]:
    """Arm one self-re-arming VIRTUAL timer per stream; return the dispatch counter.

    When the last stream runs out, ``on_idle()`` is called (from that timer's callback).
    """
    evloop = load_evloop()
    virtual = evloop.ClockType.VIRTUAL
    get_ns = sim.clock.get_ns
    timer_new_ns = sim.main_loop.timer_new_ns
    done = [0]
    live = [0]

    def arm(delays: Iterator[int]) -> None:
        def fire() -> None:
            done[0] += 1
            delay = next(delays, None)
            if delay is not None:
                timer.mod_ns(get_ns(virtual) + delay)
                return
            live[0] -= 1
            if not live[0]:
                on_idle()

        timer = timer_new_ns(virtual, fire)
        timer.mod_ns(get_ns(virtual) + next(delays))
        live[0] += 1

    for delays in streams:
        arm(delays)
    return done


def _run(sim: Any, done: list[int]) -> Run:
    def run() -> int:
        sim.run()
        sim.close()
        return done[0]

    return run


def _run_steps(sim: Any, done: list[int], total: int) -> Run:
    """Like :func:`_run`, but return evloop's own count of steps (every callback
    dispatched, every turn handed over), once the ``total`` dispatches are checked."""
    before: int = sim.steps

    def run() -> int:
        steps = int(sim.run().steps) - before
        sim.close()
        if done[0] != total:
            raise BenchError(f"the active timers fired {done[0]} times, expected {total}")
        return steps

    return run


def _shutdown(sim: Any) -> Callable[[], None]:
    return lambda: sim.shutdown(cause="done")


# -- workload 1: timers -------------------------------------------------------


def timers(n_timers: int, total: int) -> Run:
    """``n_timers`` main-loop VIRTUAL timers re-arming themselves, ``total`` dispatches."""
    sim = _simulation()
    streams = (iter(stream) for stream in delay_streams(n_timers, total))
    done = _arm_timers(sim, streams, lambda: None)
    return _run(sim, done)


# -- workload 2: bottom halves --------------------------------------------------


def bottom_halves(count: int) -> Run:
    """One bottom half that re-schedules itself until it has run ``count`` times."""
    sim = _simulation()
    done = [0]

    def step() -> None:
        done[0] += 1
        if done[0] < count:
            bh.schedule()

    bh = sim.main_loop.aio_context.bh_new(step, name="bench")
    bh.schedule()
    return _run(sim, done)


# -- workload 3: fd ping-pong -----------------------------------------------------


def fd_ping_pong(round_trips: int) -> Run:
    """Two threads of control bouncing one byte each way over a virtual socket pair."""
    sim = _simulation()
    fds = sim.fds
    a, b = fds.socketpair()
    done = [0]

    def ping() -> None:
        for _ in range(round_trips):
            fds.write(a, b"x")
            fds.poll([(a, select.POLLIN)], -1)
            fds.read(a, 1)
            done[0] += 1

    def pong() -> None:
        for _ in range(round_trips):
            fds.poll([(b, select.POLLIN)], -1)
            fds.read(b, 1)
            fds.write(b, b"y")

    sim.thread("ping", ping)
    sim.thread("pong", pong)
    return _run(sim, done)


# -- workload 6: scaling ----------------------------------------------------------


def idle_fds(n_idle: int, n_active: int, total: int) -> Run:
    """The active workload with ``n_idle`` idle pipes registered on the main AioContext.

    Active: ``n_active`` timers, ``total`` dispatches; each dispatch also writes a
    byte into one active pipe, whose read handler drains it, so every step also
    takes the fd-readiness path that the idle fds could slow down. The idle
    pipes keep both ends open (a closed write end would make the read end
    readable) and never see a byte.
    """
    sim = _simulation()
    fds, ctx = sim.fds, sim.main_loop.aio_context
    idle = [fds.pipe() for _ in range(n_idle)]
    for read_end, _ in idle:
        ctx.set_fd_handler(read_end, _never_called(read_end), None)
    active_r, active_w = fds.pipe()
    ctx.set_fd_handler(active_r, lambda: fds.read(active_r, 4096), None)

    def streams() -> Iterator[Iterator[int]]:
        for stream in delay_streams(n_active, total):
            yield _writing(iter(stream), lambda: fds.write(active_w, b"."))

    done = _arm_timers(sim, streams(), _shutdown(sim))
    return _run_steps(sim, done, total)


def _never_called(fd: int) -> Callable[[], None]:
    def io_read() -> None:
        raise AssertionError(f"idle fd {fd} became readable")

    return io_read


def _writing(delays: Iterator[int], write: Callable[[], object]) -> Iterator[int]:
    """The delays of ``delays``, performing ``write()`` as each one is taken."""
    for delay in delays:
        write()
        yield delay
    write()


def pending_timers(n_pending: int, n_active: int, total: int) -> Run:
    """The active workload with ``n_pending`` far-future timers that never fire."""
    sim = _simulation()
    evloop = load_evloop()
    virtual = evloop.ClockType.VIRTUAL
    timer_new_ns = sim.main_loop.timer_new_ns

    def never() -> None:
        raise AssertionError("a far-future timer fired")

    for i in range(n_pending):
        timer_new_ns(virtual, never).mod_ns(FAR_FUTURE_NS + i)
    streams = (iter(stream) for stream in delay_streams(n_active, total))
    done = _arm_timers(sim, streams, _shutdown(sim))
    return _run_steps(sim, done, total)


# -- workload 5: memory (run in a fresh process by bench.rss) ----------------------


def steps_forever(n_timers: int, cycle: int) -> Any:
    """A simulation whose ``n_timers`` timers re-arm forever (their delays cycle)."""
    sim = _simulation()
    streams = (itertools.cycle(stream) for stream in delay_streams(n_timers, n_timers * cycle))
    _arm_timers(sim, streams, lambda: None)
    return sim


# -- workload 7: threads of control -------------------------------------------------


def turn_handoffs(n_threads: int, total: int) -> Run:
    """``n_threads`` threads of control, each calling ``sim.sleep(1)`` in a loop.

    Every sleep gives up the turn, so the count of sleeps (``total``) is the
    count of turn handoffs.
    """
    sim = _simulation()
    per_thread = total // n_threads
    done = [0]

    def body() -> None:
        sleep = sim.sleep
        for _ in range(per_thread):
            sleep(1)
            done[0] += 1

    for i in range(n_threads):
        sim.thread(f"t{i}", body)
    return _run(sim, done)
