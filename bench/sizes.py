"""The sizes of every workload: the full run's (``FULL``) and ``--quick``'s (``QUICK``).

Figure keys are named after the full sizes, also under ``--quick``, whose
smaller sizes are recorded in each figure's ``params``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FULL", "QUICK", "Sizes"]


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
