"""Workloads 7 and 8 as figures: threads of control handing the turn over, real
threads under ``ReplayMutex``, and switches between flows of control."""

from __future__ import annotations

import statistics
from functools import partial

from . import mutex_grants, peers, workloads
from .harness import Figure, Sampler, Settings, Target, figure, rate, ratio, rounds
from .sizes import FULL, Sizes

__all__ = ["bench_switches", "bench_threads"]


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
