"""The seven workloads as figures: who runs against whom, and the issue's targets.

Each ``bench_*`` function runs its contenders in shared rounds (see
:mod:`bench.harness`) and returns its figures. Figure keys are fixed: they
are named after the full sizes, also under ``--quick``, whose smaller sizes
are recorded in each figure's ``params``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from . import peers, workloads
from .harness import (
    BenchError,
    Figure,
    Run,
    Sampler,
    Settings,
    Target,
    Unavailable,
    cost_ns,
    figure,
    placeholder,
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
    trio_dispatches: int = 100_000
    bh_runs: int = 1_000_000
    round_trips: int = 200_000
    rss_steps: tuple[int, int] = (1_000_000, 10_000_000)
    rss_repeat: int = 3
    idle_fds: tuple[int, ...] = (10, 1000, 10_000, 100_000)
    pending_timers: tuple[int, ...] = (100, 10_000, 1_000_000)
    active_timers: int = 10
    active_dispatches: int = 100_000
    threads: tuple[int, ...] = (2, 4, 8)
    handoffs: int = 40_000


FULL = Sizes()
QUICK = Sizes(
    timers=10,
    timer_dispatches=1000,
    trio_dispatches=100,
    bh_runs=1000,
    round_trips=100,
    rss_steps=(1000, 10_000),
    rss_repeat=1,
    idle_fds=(10, 20, 50, 100),
    pending_timers=(100, 1000, 10_000),
    active_dispatches=1000,
    handoffs=240,
)

Workload = Callable[[Settings, Sizes], list[Figure]]


# -- 1. timers ------------------------------------------------------------------


def bench_timers(settings: Settings, z: Sizes) -> list[Figure]:
    n, total, trio_total = z.timers, z.timer_dispatches, z.trio_dispatches
    s = rounds(
        {
            "evreplay": rate(partial(workloads.timers, n, total), total),
            "simpy": rate(partial(peers.simpy_timers, n, total), total),
            "asyncio": rate(partial(peers.asyncio_timers, n, total), total),
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
            params=params,
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
    s = rounds(
        {
            "evreplay": rate(partial(workloads.fd_ping_pong, trips), trips),
            "asyncio": rate(partial(peers.asyncio_ping_pong, trips), trips),
        },
        settings,
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


def bench_record(settings: Settings, z: Sizes) -> list[Figure]:
    why = workloads.replay_unavailable()
    return [
        placeholder(
            "record_overhead_timers", "record: timers, record / plain", "x", why, Target("<=", 1.5)
        ),
        placeholder(
            "play_overhead_timers", "play: timers, play / plain", "x", why, Target("<=", 1.3)
        ),
        placeholder(
            "bytes_per_decision", "record: trace bytes per decision", "B", why, Target("<=", 3.0)
        ),
        placeholder("bytes_per_event", "record: trace bytes per event", "B", why),
    ]


# -- 5. memory -------------------------------------------------------------------------


RSS_NOTE = "own peak of a fresh process (VmHWM on Linux: see bench/rss.py)"


def _rss_sampler(steps: int) -> Sampler:
    def sample() -> float:
        cmd = [sys.executable, "-m", "bench.rss", str(steps)]
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
        if done.returncode:
            raise BenchError(f"{' '.join(cmd[1:])} exited {done.returncode}: {done.stderr}")
        result = json.loads(done.stdout)
        if "unavailable" in result:
            raise Unavailable(result["unavailable"])
        return float(result["peak_kib"])

    return sample


def bench_memory(settings: Settings, z: Sizes) -> list[Figure]:
    small, large = z.rss_steps
    # A fresh process per value: no warm-up (there is nothing to warm), fewer rounds.
    once = replace(settings, warmup=0, repeat=min(settings.repeat, z.rss_repeat))
    runs = {"baseline": 0, "1m_steps": small, "10m_steps": large}
    s = rounds({name: _rss_sampler(steps) for name, steps in runs.items()}, once)
    figs = [
        figure(
            f"rss_{name}",
            f"rss: plain run, {_count(steps)} steps",
            "KiB",
            s[name],
            note=RSS_NOTE,
            params={"steps": steps},
        )
        for name, steps in runs.items()
    ]
    label = f"{_count(large)} / {_count(small)} steps"
    why = workloads.replay_unavailable()
    return [
        *figs,
        ratio(
            "rss_ratio_10m_1m",
            f"rss: plain run, {label}",
            s["10m_steps"],
            s["1m_steps"],
            target=Target("<=", 1.2),
        ),
        placeholder(
            "rss_ratio_record_10m_1m", f"rss: record, {label}", "x", why, Target("<=", 1.2)
        ),
        placeholder("rss_ratio_play_10m_1m", f"rss: play, {label}", "x", why, Target("<=", 1.2)),
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
    total = z.handoffs
    s = rounds(
        {str(n): rate(partial(workloads.turn_handoffs, n, total), total) for n in z.threads},
        settings,
    )
    why = workloads.replay_unavailable()
    figs = [
        figure(
            f"threads_{full}",
            f"threads: {n} threads, sim.sleep(1)",
            "handoff/s",
            s[str(n)],
            params={"threads": n, "handoffs": total},
        )
        for full, n in zip(FULL.threads, z.threads, strict=True)
    ]
    figs.append(placeholder("threads_record_8", "threads: 8, recording", "handoff/s", why))
    figs.append(placeholder("threads_play_8", "threads: 8, playing", "handoff/s", why))
    return figs


WORKLOADS: dict[str, Workload] = {
    "timers": bench_timers,
    "bh": bench_bh,
    "pingpong": bench_pingpong,
    "record": bench_record,
    "memory": bench_memory,
    "scaling": bench_scaling,
    "threads": bench_threads,
}
