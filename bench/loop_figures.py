"""Workloads 1-3 and 10 as figures: the loop's timers, bottom halves, fd ping-pong,
and its general path (contexts' timers, ready fd handlers)."""

from __future__ import annotations

from functools import partial

from . import peers, workloads
from .harness import Figure, Settings, Target, figure, rate, ratio, rounds
from .sizes import Sizes

__all__ = ["bench_bh", "bench_loop", "bench_pingpong", "bench_timers"]


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
