"""The workloads as figures: who runs against whom, and the issue's targets.

Each ``bench_*`` function runs its contenders in shared rounds (see
:mod:`bench.harness`) and returns its figures. Figure keys are fixed: they
are named after the full sizes, also under ``--quick``, whose smaller sizes
are recorded in each figure's ``params`` (:mod:`bench.sizes`).

The functions live with their family: ``loop_figures`` (timers, bottom
halves, fd ping-pong, the loop's general path), ``record_figures`` (record
and play), ``scaling_figures`` (memory, idle fds and pending timers),
``thread_figures`` (threads of control, switches), ``asyncio_figures`` and
``campaign``; this module names them.
"""

from __future__ import annotations

from collections.abc import Callable

from .asyncio_figures import bench_asyncio
from .campaign import bench_campaign
from .harness import Figure, Settings
from .loop_figures import bench_bh, bench_loop, bench_pingpong, bench_timers
from .record_figures import bench_record
from .scaling_figures import bench_memory, bench_scaling
from .sizes import Sizes
from .thread_figures import bench_switches, bench_threads

__all__ = ["WORKLOADS", "Workload"]

Workload = Callable[[Settings, Sizes], list[Figure]]


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
