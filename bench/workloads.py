"""The evreplay side of every workload, one *prepare* function per workload.

Each function builds a :class:`evloop.Simulation` untimed and returns a
``run()`` that drives it and returns how many operations it did (see
:mod:`bench.harness`). They mirror their peers in :mod:`bench.peers` line for
line: same delays, same per-dispatch work (count, take the next delay, re-arm
or retire).

``evloop`` and ``replay`` are imported lazily, through :func:`load_evloop`
and :func:`load_replay`, so that the peers and the harness run (and the suite
reports ``unavailable``) while either does not import.

The workloads that are recorded and played are also *scenarios*
(:func:`timer_scenario`, :func:`bh_scenario`, :func:`pingpong_scenario`,
:func:`sleep_scenario`, :func:`forever_scenario`, and the asyncio programs
:func:`asyncio_sleep_scenario` and :func:`asyncio_queue_scenario`, which
return the coroutine a ``SimEventLoop`` runs): module-level functions
that set the workload up on a simulation they are given, so that
``replay.record("bench.workloads:timer_scenario", ...)`` can run them and
``replay.play`` find them again from the trace header alone.
:class:`Recording` runs one scenario three ways, plain, recorded and played.
Workload 7 on real OS threads under ``replay.ReplayMutex`` is
:mod:`bench.mutex_grants`.
"""

from __future__ import annotations

import importlib
import itertools
import select
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from .asyncio_loops import queue_main, sleepers_main
from .delays import delay_streams
from .harness import BenchError, Run, Unavailable

__all__ = [
    "FAR_FUTURE_NS",
    "Recording",
    "asyncio_queue_scenario",
    "asyncio_sleep_scenario",
    "bh_scenario",
    "bottom_halves",
    "context_timers",
    "fd_bounce",
    "fd_ping_pong",
    "forever_scenario",
    "idle_fds",
    "load_evloop",
    "load_replay",
    "pending_timers",
    "pingpong_scenario",
    "sleep_scenario",
    "timer_scenario",
    "timers",
    "turn_handoffs",
]

#: Deadline of the timers that must stay pending for a whole run.
FAR_FUTURE_NS = 10**18


def load_evloop() -> ModuleType:
    """The ``evloop`` package, or :class:`Unavailable` if its API does not import yet."""
    try:
        evloop = importlib.import_module("evloop")
        for name in ("Simulation", "ClockType"):
            getattr(evloop, name)
    except (ImportError, AttributeError) as exc:
        raise Unavailable(f"evloop does not import yet ({exc})") from exc
    return evloop


def load_replay() -> ModuleType:
    """The ``replay`` package, or :class:`Unavailable` if its API does not import."""
    try:
        replay = importlib.import_module("replay")
        for name in ("record", "play", "chooser_from_spec", "ReplayMutex", "ReplayMode"):
            getattr(replay, name)
    except (ImportError, AttributeError) as exc:
        raise Unavailable(f"replay does not import ({exc})") from exc
    return replay


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


# -- the scenarios ------------------------------------------------------------
#
# ``replay.record`` and ``replay.play`` call a scenario themselves and drop what
# it returns, so each scenario also leaves its operation counter in _LAST:
# that is how a recorded or played run reports the work it did, and the
# harness checks that count as it checks every other.

_LAST: list[list[int]] = [[0]]


def _tally(done: list[int]) -> list[int]:
    _LAST[0] = done
    return done


def timer_scenario(sim: Any, *, n_timers: int, total: int) -> list[int]:
    """Workload 1: ``n_timers`` VIRTUAL timers re-arming themselves, ``total`` dispatches."""
    streams = (iter(stream) for stream in delay_streams(n_timers, total))
    return _tally(_arm_timers(sim, streams, lambda: None))


def bh_scenario(sim: Any, *, count: int) -> list[int]:
    """Workload 2: one bottom half that re-schedules itself until it has run ``count`` times."""
    done = [0]

    def step() -> None:
        done[0] += 1
        if done[0] < count:
            bh.schedule()

    bh = sim.main_loop.aio_context.bh_new(step, name="bench")
    bh.schedule()
    return _tally(done)


def pingpong_scenario(sim: Any, *, round_trips: int) -> list[int]:
    """Workload 3: two threads of control bouncing one byte each way over a socket pair."""
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
    return _tally(done)


def sleep_scenario(sim: Any, *, n_threads: int, total: int) -> list[int]:
    """Workload 7: ``n_threads`` threads of control, each calling ``sim.sleep(1)`` in a loop.

    Every sleep gives up the turn. All threads wake at the same virtual
    instants, so the scheduler asks the chooser which goes next at nearly
    every handoff: the decision-heavy workload.
    """
    per_thread = total // n_threads
    done = [0]

    def body() -> None:
        sleep = sim.sleep
        for _ in range(per_thread):
            sleep(1)
            done[0] += 1

    for i in range(n_threads):
        sim.thread(f"t{i}", body)
    return _tally(done)


def asyncio_sleep_scenario(sim: Any, *, tasks: int, total: int) -> Any:
    """Workload 8's sleepers as a scenario: ``tasks`` tasks, ``total`` ``asyncio.sleep``\\s."""
    done = _tally([0])
    return sleepers_main(tasks, total, done)


def asyncio_queue_scenario(sim: Any, *, items: int) -> Any:
    """Workload 8's queue pipeline as a scenario: ``items`` through a one-slot queue."""
    done = _tally([0])
    return queue_main(items, 1, done)


def forever_scenario(sim: Any, *, n_timers: int, cycle: int) -> list[int]:
    """Workload 5: ``n_timers`` timers re-arming forever (each cycles through ``cycle`` delays)."""
    streams = (itertools.cycle(stream) for stream in delay_streams(n_timers, n_timers * cycle))
    return _tally(_arm_timers(sim, streams, lambda: None))


# -- workloads 1-3 and 7, plain --------------------------------------------------


def timers(n_timers: int, total: int) -> Run:
    """``n_timers`` main-loop VIRTUAL timers re-arming themselves, ``total`` dispatches."""
    sim = _simulation()
    return _run(sim, timer_scenario(sim, n_timers=n_timers, total=total))


def bottom_halves(count: int) -> Run:
    """One bottom half that re-schedules itself until it has run ``count`` times."""
    sim = _simulation()
    return _run(sim, bh_scenario(sim, count=count))


def fd_ping_pong(round_trips: int) -> Run:
    """Two threads of control bouncing one byte each way over a virtual socket pair."""
    sim = _simulation()
    return _run(sim, pingpong_scenario(sim, round_trips=round_trips))


# -- workload 8: the general path of the loop -------------------------------------------


def context_timers(n_timers: int, total: int) -> Run:
    """``n_timers`` VIRTUAL timers of ``aio_context`` re-arming themselves, ``total`` dispatches.

    The same streams as :func:`timers`, on a context's timer lists instead of
    the main loop's: glib rounds each wait for them up to whole ms.
    """
    evloop = load_evloop()
    sim = _simulation()
    virtual = evloop.ClockType.VIRTUAL
    get_ns = sim.clock.get_ns
    timer_new_ns = sim.main_loop.aio_context.timer_new_ns
    done = [0]

    def arm(stream: tuple[int, ...]) -> None:
        delays = iter(stream)

        def fire() -> None:
            done[0] += 1
            delay = next(delays, None)
            if delay is not None:
                timer.mod_ns(get_ns(virtual) + delay)

        timer = timer_new_ns(virtual, fire)
        timer.mod_ns(get_ns(virtual) + next(delays))

    for stream in delay_streams(n_timers, total):
        arm(stream)
    return _run(sim, done)


def fd_bounce(bounces: int) -> Run:
    """A byte bounced between two fd read handlers of ``aio_context`` over two virtual pipes.

    Each handler reads the byte and writes it into the other's pipe: one
    dispatch per hop, two per bounce, no thread of control but the main one.
    """
    sim = _simulation()
    fds = sim.fds
    ctx = sim.main_loop.aio_context
    r1, w1 = fds.pipe()
    r2, w2 = fds.pipe()
    done = [0]

    def there() -> None:
        fds.read(r1, 1)
        fds.write(w2, b"y")

    def back() -> None:
        fds.read(r2, 1)
        done[0] += 1
        if done[0] < bounces:
            fds.write(w1, b"x")

    ctx.set_fd_handler(r1, there, None)
    ctx.set_fd_handler(r2, back, None)
    fds.write(w1, b"x")
    return _run(sim, done)


def turn_handoffs(n_threads: int, total: int) -> Run:
    """``n_threads`` threads of control, each calling ``sim.sleep(1)`` in a loop.

    Every sleep gives up the turn, so the count of sleeps (``total``) is the
    count of turn handoffs.
    """
    sim = _simulation()
    return _run(sim, sleep_scenario(sim, n_threads=n_threads, total=total))


# -- workload 4: record and play ------------------------------------------------------


@dataclass
class Recording:
    """One scenario, run three ways in the same rounds: plain, recorded, played.

    All three are timed whole, from building the simulation to closing it,
    because ``replay.record`` and ``replay.play`` build and set up their own:
    so the plain run is ``Simulation`` + scenario + ``run()`` + ``close()``,
    with the very chooser the recording uses (the runs are then the same run,
    step for step, and only the recording differs). Traces go to
    ``directory``; every recording made is kept in ``results``.
    """

    name: str
    params: Mapping[str, int]
    directory: Path
    chooser: str = "random:1"
    results: list[Any] = field(default_factory=list)

    @property
    def scenario(self) -> str:
        return f"{__name__}:{self.name}_scenario"

    @property
    def trace(self) -> Path:
        """Where each recording is written (again, every round)."""
        return self.directory / f"{self.name}.trace"

    def plain(self) -> Run:
        evloop = load_evloop()
        replay = load_replay()
        chooser = replay.chooser_from_spec(self.chooser)
        fn = globals()[f"{self.name}_scenario"]
        start = importlib.import_module("replay.scenario").start_scenario

        def run() -> int:
            sim = evloop.Simulation(0, chooser=chooser)
            start(fn, sim, self.params)  # as record and play call it (a coroutine runs too)
            sim.run()
            sim.close()
            return _LAST[0][0]

        return run

    def record(self) -> Run:
        replay = load_replay()

        def run() -> int:
            result = replay.record(
                self.scenario, self.trace, chooser=self.chooser, params=self.params
            )
            if result.failure is not None:
                raise BenchError(f"recording {self.scenario} failed: {result.failure}")
            self.results.append(result)
            return _LAST[0][0]

        return run

    def play(self) -> Run:
        """Play the last recording's trace (made here, untimed, if there is none yet)."""
        replay = load_replay()
        if not self.trace.exists():
            replay.record(self.scenario, self.trace, chooser=self.chooser, params=self.params)

        def run() -> int:
            result = replay.play(self.trace)
            if result.failure is not None or result.bit_exact is not True:
                raise BenchError(
                    f"playing {self.trace.name}: failure={result.failure}, "
                    f"bit_exact={result.bit_exact}"
                )
            return _LAST[0][0]

        return run


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


# -- workload 8: switches between flows of control ----------------------------------


def event_bounce(round_trips: int, threads: str = "greenlet") -> Run:
    """Two threads of control bouncing through two ``SimEvent``\\ s, inside ``run()``."""
    sim = load_evloop().Simulation(seed=0, threads=threads)
    ping_ev, pong_ev = sim.event("ping"), sim.event("pong")
    done = [0]

    def ping() -> None:
        for _ in range(round_trips):
            pong_ev.set()
            ping_ev.wait()
            ping_ev.clear()
            done[0] += 1

    def pong() -> None:
        for _ in range(round_trips):
            pong_ev.wait()
            pong_ev.clear()
            ping_ev.set()

    sim.thread("ping", ping)
    sim.thread("pong", pong)
    return _run(sim, done)


def coroutine_round_trips(round_trips: int) -> Run:
    """``qemu_coroutine_enter`` then ``qemu_coroutine_yield``, ``round_trips`` times."""
    evloop = load_evloop()
    enter, yield_ = evloop.qemu_coroutine_enter, evloop.qemu_coroutine_yield
    done = [0]

    def body() -> None:
        for _ in range(round_trips):
            done[0] += 1
            yield_()

    def run() -> int:
        co = evloop.qemu_coroutine_create(body)
        for _ in range(round_trips + 1):
            enter(co)
        return done[0]

    return run
