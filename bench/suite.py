"""The workloads as figures: who runs against whom, and the issue's targets.

Each ``bench_*`` function runs its contenders in shared rounds (see
:mod:`bench.harness`) and returns its figures. Figure keys are fixed: they
are named after the full sizes, also under ``--quick``, whose smaller sizes
are recorded in each figure's ``params``.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from . import mutex_grants, peers, workloads
from .asyncio_figures import bench_asyncio
from .campaign import bench_campaign
from .harness import (
    BenchError,
    Figure,
    Run,
    Sampler,
    Series,
    Settings,
    Status,
    Target,
    Unavailable,
    cost_ns,
    figure,
    rate,
    ratio,
    rounds,
)

__all__ = ["FULL", "QUICK", "WORKLOADS", "Sizes"]

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class Sizes:
    timers: int = 1000
    timer_dispatches: int = 1_000_000
    trio_dispatches: int = 50_000
    #: asyncio's virtual-clock loop is the slowest peer but trio: its rate is
    #: per dispatch, so 200k of them compare (and keep a full run short).
    asyncio_dispatches: int = 200_000
    #: Timers and BHs recorded and played (workload 4): their overheads are
    #: per step, and three runs a round of 1M each were most of the run.
    recorded_dispatches: int = 300_000
    bh_runs: int = 1_000_000
    round_trips: int = 200_000
    #: Ping-pong recorded and played (workload 4): its threads hand the turn over
    #: through the OS, so it is the slowest scenario per step; the overhead
    #: ratios are per step, and 20k round trips (40k handoffs) measure them well.
    recorded_round_trips: int = 20_000
    #: asyncio programs recorded and played (workload 4): workload 8's sleepers
    #: (100 tasks) and queue pipeline, at sizes that take about a second plain.
    recorded_asyncio_tasks: int = 100
    recorded_asyncio_sleeps: int = 50_000
    recorded_asyncio_items: int = 50_000
    rss_steps: tuple[int, int] = (1_000_000, 10_000_000)
    #: One round: a fresh process's peak RSS hardly varies from run to run, and
    #: one round (0, 1M and 10M steps; plain, recorded, played) is 33M steps.
    rss_repeat: int = 1
    idle_fds: tuple[int, ...] = (10, 1000, 10_000, 100_000)
    pending_timers: tuple[int, ...] = (100, 10_000, 1_000_000)
    active_timers: int = 10
    active_dispatches: int = 100_000
    threads: tuple[int, ...] = (2, 4, 8)
    handoffs: int = 40_000
    bounces: int = 100_000
    coroutine_trips: int = 1_000_000
    asyncio_chain: int = 200_000
    asyncio_round_trips: int = 50_000
    asyncio_items: int = 100_000
    asyncio_tasks: int = 1000
    asyncio_sleeps: int = 100_000
    #: Workload 10: one context timer re-armed; a byte bounced between fd handlers.
    context_rearms: int = 500_000
    fd_bounces: int = 100_000
    #: Seeds of one campaign round (workload 11): a few seconds serially.
    campaign_seeds: int = 2048


FULL = Sizes()
QUICK = Sizes(
    timers=10,
    timer_dispatches=1000,
    trio_dispatches=100,
    asyncio_dispatches=1000,
    recorded_dispatches=1000,
    bh_runs=1000,
    round_trips=100,
    recorded_round_trips=100,
    recorded_asyncio_tasks=10,
    recorded_asyncio_sleeps=200,
    recorded_asyncio_items=200,
    rss_steps=(1000, 10_000),
    rss_repeat=1,
    idle_fds=(10, 20, 50, 100),
    pending_timers=(100, 1000, 10_000),
    active_dispatches=1000,
    handoffs=240,
    bounces=100,
    coroutine_trips=1000,
    asyncio_chain=1000,
    asyncio_round_trips=100,
    asyncio_items=200,
    asyncio_tasks=10,
    asyncio_sleeps=200,
    context_rearms=1000,
    fd_bounces=100,
    campaign_seeds=64,
)

Workload = Callable[[Settings, Sizes], list[Figure]]


# -- 1. timers ------------------------------------------------------------------


def bench_timers(settings: Settings, z: Sizes) -> list[Figure]:
    n, total, trio_total = z.timers, z.timer_dispatches, z.trio_dispatches
    aio_total = z.asyncio_dispatches
    s = rounds(
        {
            "evreplay": rate(partial(workloads.timers, n, total), total),
            "simpy": rate(partial(peers.simpy_timers, n, total), total),
            "asyncio": rate(partial(peers.asyncio_timers, n, aio_total), aio_total),
            "trio": rate(partial(peers.trio_timers, n, trio_total), trio_total),
            "heapq": rate(partial(peers.heapq_timers, n, total), total),
        },
        settings,
    )
    unit, params = "dispatch/s", {"timers": n, "dispatches": total}
    trio_note = f"{trio_total:,} dispatches only (trio is slow): compare rates"
    return [
        figure("timers_evreplay", "timers: evreplay", unit, s["evreplay"], params=params),
        figure("timers_simpy", "timers: simpy", unit, s["simpy"], params=params),
        figure(
            "timers_asyncio_virtual",
            "timers: asyncio, virtual clock",
            unit,
            s["asyncio"],
            note=f"{aio_total:,} dispatches only: compare rates",
            params={"timers": n, "dispatches": aio_total},
        ),
        figure(
            "timers_trio",
            "timers: trio, MockClock",
            unit,
            s["trio"],
            note=trio_note,
            params={"timers": n, "dispatches": trio_total},
        ),
        figure("timers_heapq", "timers: bare heapq floor", unit, s["heapq"], params=params),
        ratio(
            "timers_ratio_simpy",
            "timers: evreplay / simpy",
            s["evreplay"],
            s["simpy"],
            target=Target(">=", 1.0),
        ),
        ratio(
            "timers_ratio_heapq",
            "timers: evreplay / heapq",
            s["evreplay"],
            s["heapq"],
            target=Target(">=", 0.4),
        ),
        ratio("timers_ratio_asyncio", "timers: evreplay / asyncio", s["evreplay"], s["asyncio"]),
        ratio("timers_ratio_trio", "timers: evreplay / trio", s["evreplay"], s["trio"]),
    ]


# -- 2. bottom halves -------------------------------------------------------------


def bench_bh(settings: Settings, z: Sizes) -> list[Figure]:
    count = z.bh_runs
    s = rounds(
        {
            "evreplay": rate(partial(workloads.bottom_halves, count), count),
            "asyncio": rate(partial(peers.asyncio_call_soon, count), count),
            "virtual": rate(partial(peers.asyncio_call_soon, count, virtual=True), count),
        },
        settings,
    )
    unit, params = "run/s", {"runs": count}
    return [
        figure(
            "bh_evreplay", "bh: evreplay, self-rescheduling", unit, s["evreplay"], params=params
        ),
        figure(
            "bh_asyncio_call_soon",
            "bh: asyncio call_soon chain",
            unit,
            s["asyncio"],
            note="stock loop: selects (a syscall) every turn",
            params=params,
        ),
        figure(
            "bh_asyncio_virtual_call_soon",
            "bh: asyncio call_soon, virtual loop",
            unit,
            s["virtual"],
            note="no syscall: the stricter peer",
            params=params,
        ),
        ratio(
            "bh_ratio_asyncio",
            "bh: evreplay / asyncio call_soon",
            s["evreplay"],
            s["asyncio"],
            target=Target(">=", 1.5),
        ),
        ratio(
            "bh_ratio_asyncio_virtual",
            "bh: evreplay / asyncio virtual",
            s["evreplay"],
            s["virtual"],
        ),
    ]


# -- 3. fd ping-pong ---------------------------------------------------------------


def bench_pingpong(settings: Settings, z: Sizes) -> list[Figure]:
    trips = z.round_trips
    warm = max(1, trips // 10)
    s = rounds(
        {
            "evreplay": rate(partial(workloads.fd_ping_pong, trips), trips),
            "asyncio": rate(partial(peers.asyncio_ping_pong, trips), trips),
        },
        settings,
        # 200k round trips through the OS take many seconds: warm up on a tenth.
        warmup={
            "evreplay": rate(partial(workloads.fd_ping_pong, warm), warm),
            "asyncio": rate(partial(peers.asyncio_ping_pong, warm), warm),
        },
    )
    unit, params = "round trip/s", {"round_trips": trips}
    return [
        figure(
            "pingpong_evreplay",
            "ping-pong: evreplay, 2 threads, socketpair",
            unit,
            s["evreplay"],
            params=params,
        ),
        figure(
            "pingpong_asyncio",
            "ping-pong: asyncio, 2 coroutines, in-memory",
            unit,
            s["asyncio"],
            note="StreamReader pair, no socket",
            params=params,
        ),
        ratio(
            "pingpong_ratio_asyncio", "ping-pong: evreplay / asyncio", s["evreplay"], s["asyncio"]
        ),
    ]


# -- 4. record and play --------------------------------------------------------------
#
# Each recorded scenario runs three ways in the same rounds: plain (no
# recorder, the same chooser), recorded to a trace file, and played from one.
# All three are timed whole, from building the simulation to closing it, since
# record() and play() build their own; the overheads are per-round ratios of
# ns per operation. The trace sizes are deterministic (every round's recording
# is byte for byte the same), but are kept per round all the same.

#: The chooser of every recording (and of the plain runs they are compared with).
RECORD_CHOOSER = "random:1"
#: Threads of control in the decision-heavy scenario (workload 7's largest).
DECISION_THREADS = 8


@dataclass(frozen=True, slots=True)
class _Recorded:
    key: str
    label: str
    scenario: str
    params: dict[str, int]
    ops: int


def _recorded(z: Sizes) -> list[_Recorded]:
    return [
        _Recorded(
            "timers",
            f"timers ({_count(z.recorded_dispatches)} dispatches)",
            "timer",
            {"n_timers": z.timers, "total": z.recorded_dispatches},
            z.recorded_dispatches,
        ),
        _Recorded(
            "bh",
            f"bh ({_count(z.recorded_dispatches)} runs)",
            "bh",
            {"count": z.recorded_dispatches},
            z.recorded_dispatches,
        ),
        _Recorded(
            "pingpong",
            f"ping-pong ({_count(z.recorded_round_trips)} round trips)",
            "pingpong",
            {"round_trips": z.recorded_round_trips},
            z.recorded_round_trips,
        ),
        _Recorded(
            "threads",
            f"{DECISION_THREADS} threads, sim.sleep(1) ({_count(z.handoffs)} sleeps)",
            "sleep",
            {"n_threads": DECISION_THREADS, "total": z.handoffs},
            z.handoffs - z.handoffs % DECISION_THREADS,
        ),
        _Recorded(
            "asyncio_sleep",
            f"asyncio.sleep in {z.recorded_asyncio_tasks} tasks "
            f"({_count(z.recorded_asyncio_sleeps)} sleeps)",
            "asyncio_sleep",
            {"tasks": z.recorded_asyncio_tasks, "total": z.recorded_asyncio_sleeps},
            z.recorded_asyncio_sleeps,
        ),
        _Recorded(
            "asyncio_queue",
            f"asyncio Queue producer/consumer ({_count(z.recorded_asyncio_items)} items)",
            "asyncio_queue",
            {"items": z.recorded_asyncio_items},
            z.recorded_asyncio_items,
        ),
    ]


def bench_record(settings: Settings, z: Sizes) -> list[Figure]:
    figs: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="evreplay-bench-") as tmp:
        for case in _recorded(z):
            figs += _record_case(settings, case, Path(tmp))
    return figs


def _record_case(settings: Settings, case: _Recorded, directory: Path) -> list[Figure]:
    rec = workloads.Recording(case.scenario, case.params, directory, RECORD_CHOOSER)
    s = rounds(
        {
            "plain": cost_ns(rec.plain, case.ops),
            "record": cost_ns(rec.record, case.ops),
            "play": cost_ns(rec.play, case.ops),
        },
        settings,
    )
    return [
        ratio(
            f"record_overhead_{case.key}",
            f"record: {case.label}, record / plain",
            s["record"],
            s["plain"],
            target=Target("<=", 1.5),
            note=f"chooser {RECORD_CHOOSER} in both",
        ),
        ratio(
            f"play_overhead_{case.key}",
            f"play: {case.label}, play / plain",
            s["play"],
            s["plain"],
            target=Target("<=", 1.3),
            note="includes checking the re-recording is bit-exact",
        ),
        *_trace_figures(case, rec, s["record"]),
    ]


def _trace_figures(case: _Recorded, rec: workloads.Recording, record: Series) -> list[Figure]:
    """Trace bytes per step, and per decision or what a decision-free trace holds."""
    measured = rec.results[len(rec.results) - len(record.runs) :]
    params = dict(case.params)
    note = ""
    if measured:
        last = measured[-1]
        params |= {"steps": last.steps, "decisions": last.decisions, "trace_bytes": last.bytes}
        note = f"{_plural(last.decisions, 'decision')}, {last.bytes:,} B in all"
        if case.key == "pingpong":
            note += " (the two threads alternate: the scheduler never has a choice)"
    figs = [
        figure(
            f"bytes_per_event_{case.key}",
            f"record: {case.label}, trace bytes per step",
            "B",
            _derived(record, [r.bytes / r.steps for r in measured]),
            note=note,
            params=params,
        )
    ]
    if case.key == "threads":
        figs.append(
            figure(
                "bytes_per_decision",
                f"record: {case.label}, trace bytes per decision",
                "B",
                _derived(record, [r.bytes / r.decisions for r in measured if r.decisions]),
                target=Target("<=", 3.0),
                note="every trace byte (header, checkpoints too) / decisions",
                params=params,
            )
        )
    if case.key in ("timers", "bh"):
        figs.append(_other_records(case, rec.trace, record, params))
    return figs


def _plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _derived(source: Series, values: list[float]) -> Series:
    """One value per measured round of ``source`` (or ``source``'s status if it failed)."""
    if source.status is not Status.OK:
        return Series(status=source.status, note=source.note)
    if len(values) != len(source.runs):
        return Series(status=Status.ERROR, note="a recording had nothing to divide by")
    return Series(runs=values)


def _other_records(case: _Recorded, trace: Path, record: Series, params: dict[str, int]) -> Figure:
    """How many records of the last trace are not its header, checkpoints or END."""
    key = f"trace_other_records_{case.key}"
    label = f"record: {case.label}, records besides header/checkpoints"
    if record.status is not Status.OK:
        return figure(key, label, "record", record)
    replay = workloads.load_replay()
    kinds: Counter[str] = Counter()
    with replay.TraceReader(trace) as reader:
        for entry in reader:
            kinds[replay.EventKind(entry[0]).name] += 1
    other = sum(n for kind, n in kinds.items() if kind not in ("CHECKPOINT", "END"))
    if other:
        note = f"the trace: header, {dict(kinds)}"
    else:
        note = f"the trace: header, {_plural(kinds['CHECKPOINT'], 'checkpoint')}, END"
    series = Series(runs=[float(other)])
    return figure(key, label, "record", series, note=f"{note} (last round's)", params=params)


# -- 5. memory -------------------------------------------------------------------------


RSS_NOTE = "own peak of a fresh process (VmHWM on Linux: see bench/rss.py)"


def _rss_sampler(mode: str, steps: int, trace: Path | None = None) -> Sampler:
    def child() -> dict[str, Any]:
        cmd = [sys.executable, "-m", "bench.rss", mode, str(steps)]
        cmd += [] if trace is None else [str(trace)]
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
        if done.returncode:
            raise BenchError(f"{' '.join(cmd[1:])} exited {done.returncode}: {done.stderr}")
        result: dict[str, Any] = json.loads(done.stdout)
        if "unavailable" in result:
            raise Unavailable(result["unavailable"])
        return result

    def sample() -> float:
        if mode == "play" and trace is not None and not trace.exists():
            _rss_sampler("record", steps, trace)()  # the trace to play; its peak is not kept
        return float(child()["peak_kib"])

    return sample


def bench_memory(settings: Settings, z: Sizes) -> list[Figure]:
    small, large = z.rss_steps
    # A fresh process per value: no warm-up (there is nothing to warm), fewer rounds.
    once = replace(settings, warmup=0, repeat=min(settings.repeat, z.rss_repeat))
    with tempfile.TemporaryDirectory(prefix="evreplay-bench-") as tmp:
        # Play children play what the record children of the same size wrote.
        traces = {steps: Path(tmp) / f"rss-{steps}.trace" for steps in (small, large)}
        runs = {
            "baseline": ("plain", 0),
            "1m_steps": ("plain", small),
            "10m_steps": ("plain", large),
            "record_1m_steps": ("record", small),
            "record_10m_steps": ("record", large),
            "play_1m_steps": ("play", small),
            "play_10m_steps": ("play", large),
        }
        samplers = {
            name: _rss_sampler(mode, steps, traces.get(steps) if mode != "plain" else None)
            for name, (mode, steps) in runs.items()
        }
        s = rounds(samplers, once)
    figs = [
        figure(
            f"rss_{name}",
            f"rss: {mode} run, {_count(steps)} steps",
            "KiB",
            s[name],
            note=RSS_NOTE,
            params={"steps": steps},
        )
        for name, (mode, steps) in runs.items()
    ]
    label = f"{_count(large)} / {_count(small)} steps"
    pairs = (
        ("rss_ratio_10m_1m", "plain", "10m_steps", "1m_steps"),
        ("rss_ratio_record_10m_1m", "record", "record_10m_steps", "record_1m_steps"),
        ("rss_ratio_play_10m_1m", "play", "play_10m_steps", "play_1m_steps"),
    )
    return figs + [
        ratio(key, f"rss: {mode} run, {label}", s[hi], s[lo], target=Target("<=", 1.2))
        for key, mode, hi, lo in pairs
    ]


def _count(n: int) -> str:
    """``10M``, ``100k`` or ``1,234``: a size as the issue writes it."""
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 100_000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return f"{n:,}"


# -- 6. scaling --------------------------------------------------------------------------


def bench_scaling(settings: Settings, z: Sizes) -> list[Figure]:
    active, total = z.active_timers, z.active_dispatches
    fds = partial(workloads.idle_fds, n_active=active, total=total)
    tms = partial(workloads.pending_timers, n_active=active, total=total)
    return [
        *_scaling(settings, "fds", "idle fds", FULL.idle_fds, z.idle_fds, fds, total),
        *_scaling(
            settings, "timers", "pending timers", FULL.pending_timers, z.pending_timers, tms, total
        ),
    ]


_SCALING_TARGETS = {
    "fds": ("scaling_fds_ratio_100k_10", Target("<=", 1.2)),
    "timers": ("scaling_timers_ratio_1m_100", Target("<=", 2.0)),
}


def _scaling(
    settings: Settings,
    what: str,
    label: str,
    full_sizes: tuple[int, ...],
    sizes: tuple[int, ...],
    prepare: Callable[[int], Run],
    total: int,
) -> list[Figure]:
    """ns per step of the same active workload beside each count of idle things."""
    s = rounds({str(n): cost_ns(partial(prepare, n)) for n in sizes}, settings)
    figs = [
        figure(
            f"scaling_{what}_{full}",
            f"scaling: {_count(n)} {label}",
            "ns/step",
            s[str(n)],
            params={what: n, "active_dispatches": total},
        )
        for full, n in zip(full_sizes, sizes, strict=True)
    ]
    lo, hi = sizes[0], sizes[-1]
    key, target = _SCALING_TARGETS[what]
    text = f"scaling: {_count(hi)} / {_count(lo)} {label}"
    return [*figs, ratio(key, text, s[str(hi)], s[str(lo)], target=target)]


# -- 7. threads of control ----------------------------------------------------------------


def bench_threads(settings: Settings, z: Sizes) -> list[Figure]:
    """Turn handoffs of simulated threads; replay-mutex grants of real ones.

    The two are different things: a ``sim.thread`` gives the simulation's turn
    away at each ``sim.sleep(1)`` (the scheduler picks who is next and that
    decision is what a recording logs); a real ``threading.Thread`` under
    ``replay.ReplayMutex`` takes the mutex, drops it and lets the OS choose
    (RECORD logs each grant, PLAY makes the OS follow the log).
    """
    total = z.handoffs
    mutexes = {n: mutex_grants.MutexGrants(n, total) for n in z.threads}
    samplers: dict[str, Sampler] = {}
    for n, mutex in mutexes.items():
        samplers[f"sim_{n}"] = rate(partial(workloads.turn_handoffs, n, total), total)
        samplers[f"record_{n}"] = rate(mutex.record, mutex.per_thread * n)
        samplers[f"play_{n}"] = rate(mutex.play, mutex.per_thread * n)
    s = rounds(samplers, settings)
    figs: list[Figure] = []
    for full, n in zip(FULL.threads, z.threads, strict=True):
        params = {"threads": n, "handoffs": total}
        figs.append(
            figure(
                f"threads_{full}",
                f"threads: {n} sim threads, sim.sleep(1)",
                "handoff/s",
                s[f"sim_{n}"],
                params=params,
            )
        )
    for mode, doing in (("record", "recording"), ("play", "playing")):
        for full, n in zip(FULL.threads, z.threads, strict=True):
            shares = mutexes[n].handoffs.get(mode, [])
            changed = statistics.median(shares) if shares else 0.0
            figs.append(
                figure(
                    f"threads_{mode}_{full}",
                    f"threads: {n} real threads, ReplayMutex {doing}",
                    "grant/s",
                    s[f"{mode}_{n}"],
                    note=f"{changed:.0%} of grants changed hands",
                    params={"threads": n, "grants": mutexes[n].per_thread * n},
                )
            )
    big = z.threads[-1]
    figs.append(
        ratio(
            f"threads_ratio_play_record_{FULL.threads[-1]}",
            f"threads: {big} real threads, ReplayMutex play / record",
            s[f"play_{big}"],
            s[f"record_{big}"],
            note="grant rates: below 1 is playing costing more",
        )
    )
    return figs


# -- 8. switches between flows of control ---------------------------------------------


def bench_switches(settings: Settings, z: Sizes) -> list[Figure]:
    """Threads of control bouncing through SimEvents; coroutine round trips.

    The bounce is the turn handover itself: each round trip hands the turn
    over twice, and asyncio's peer wakes a task through an Event twice.
    The OS-thread backend runs in the same rounds, for the record.
    """
    trips, co_trips = z.bounces, z.coroutine_trips
    s = rounds(
        {
            "greenlet": rate(partial(workloads.event_bounce, trips), trips),
            "os": rate(partial(workloads.event_bounce, trips, "os"), trips),
            "asyncio": rate(partial(peers.asyncio_event_bounce, trips), trips),
            "coroutine": rate(partial(workloads.coroutine_round_trips, co_trips), co_trips),
            "generator": rate(partial(peers.generator_round_trips, co_trips), co_trips),
        },
        settings,
    )
    unit, params = "round trip/s", {"round_trips": trips}
    co_params = {"round_trips": co_trips}
    return [
        figure(
            "bounce_greenlet",
            "bounce: 2 threads of control, 2 SimEvents (greenlets)",
            unit,
            s["greenlet"],
            params=params,
        ),
        figure(
            "bounce_os",
            "bounce: 2 threads of control, 2 SimEvents (threads='os')",
            unit,
            s["os"],
            params=params,
        ),
        figure(
            "bounce_asyncio",
            "bounce: 2 asyncio tasks, 2 asyncio.Events",
            unit,
            s["asyncio"],
            params=params,
        ),
        ratio(
            "bounce_ratio_asyncio",
            "bounce: greenlet threads of control / asyncio tasks",
            s["greenlet"],
            s["asyncio"],
            target=Target(">=", 1.0),
        ),
        ratio(
            "bounce_ratio_os",
            "bounce: greenlet / OS-thread threads of control",
            s["greenlet"],
            s["os"],
        ),
        figure(
            "coroutine_round_trip",
            "coroutine: qemu_coroutine_enter + yield",
            unit,
            s["coroutine"],
            params=co_params,
        ),
        figure(
            "generator_round_trip",
            "coroutine peer: generator send + yield",
            unit,
            s["generator"],
            params=co_params,
        ),
        ratio(
            "coroutine_ratio_generator",
            "coroutine: enter/yield / generator send/yield",
            s["coroutine"],
            s["generator"],
            note="a stackful switch against Python's cheapest one",
        ),
    ]


# -- 10. the general path of the loop ---------------------------------------------------


def bench_loop(settings: Settings, z: Sizes) -> list[Figure]:
    """What is not a main-loop timer or a BH chain: contexts' timers, ready fd handlers."""
    one, many, total, bounces = z.context_rearms, z.timers, z.timer_dispatches, z.fd_bounces
    s = rounds(
        {
            "one": rate(partial(workloads.context_timers, 1, one), one),
            "one_simpy": rate(partial(peers.simpy_timers, 1, one), one),
            "many": rate(partial(workloads.context_timers, many, total), total),
            "many_simpy": rate(partial(peers.simpy_timers, many, total), total),
            "bounce": rate(partial(workloads.fd_bounce, bounces), bounces),
            "bounce_asyncio": rate(partial(peers.asyncio_reader_bounce, bounces), bounces),
        },
        settings,
    )
    one_params = {"timers": 1, "dispatches": one}
    many_params = {"timers": many, "dispatches": total}
    bounce_params = {"bounces": bounces}
    return [
        figure("ctx_timer_evreplay", "context timer re-armed: evreplay", "dispatch/s",
               s["one"], params=one_params),
        figure("ctx_timer_simpy", "context timer re-armed: simpy, one process", "dispatch/s",
               s["one_simpy"], params=one_params),
        ratio("ctx_timer_ratio_simpy", "context timer re-armed: evreplay / simpy", s["one"],
              s["one_simpy"], target=Target(">=", 0.5)),
        figure("ctx_timers_evreplay", "context timers: evreplay", "dispatch/s", s["many"],
               params=many_params),
        figure("ctx_timers_simpy", "context timers: simpy", "dispatch/s", s["many_simpy"],
               params=many_params),
        ratio("ctx_timers_ratio_simpy", "context timers: evreplay / simpy", s["many"],
              s["many_simpy"], target=Target(">=", 1.0)),
        figure("fd_bounce_evreplay", "fd bounce: evreplay, 2 handlers, virtual pipes",
               "bounce/s", s["bounce"], params=bounce_params),
        figure("fd_bounce_asyncio", "fd bounce: asyncio add_reader, real socketpair",
               "bounce/s", s["bounce_asyncio"], note="stock loop: send, epoll_wait, recv",
               params=bounce_params),
        ratio("fd_bounce_ratio_asyncio", "fd bounce: evreplay / asyncio add_reader",
              s["bounce"], s["bounce_asyncio"], target=Target(">=", 1.0)),
    ]


WORKLOADS: dict[str, Workload] = {
    "timers": bench_timers,
    "bh": bench_bh,
    "pingpong": bench_pingpong,
    "record": bench_record,
    "memory": bench_memory,
    "scaling": bench_scaling,
    "threads": bench_threads,
    "switches": bench_switches,
    "asyncio": bench_asyncio,
    "loop": bench_loop,
    "campaign": lambda settings, z: bench_campaign(settings, z.campaign_seeds),
}
