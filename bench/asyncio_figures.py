"""Workload 8 as figures: asyncio programs on SimEventLoop against stock and virtual loops.

* ``call_soon`` chains, ``asyncio.Event`` ping-pong and a ``Queue``
  pipeline: SimEventLoop against the stock loop (target >= 1.0x);
* ``asyncio.sleep`` in many tasks: SimEventLoop against the two virtual-time
  loops on PyPI, ``async_solipsism`` and ``looptime`` (target >= 2x the
  faster of the two, taken round by round).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from . import asyncio_loops as al
from .harness import Figure, Series, Settings, Status, Target, figure, rate, ratio, rounds

if TYPE_CHECKING:
    from .sizes import Sizes

__all__ = ["bench_asyncio"]


def _fastest(*sides: Series) -> Series:
    """Round by round, the best of several contenders (measured in the same rounds)."""
    usable = [s for s in sides if s.status is Status.OK and s.runs]
    if not usable:
        return sides[0]
    return Series(runs=[max(values) for values in zip(*(s.runs for s in usable), strict=True)])


def bench_asyncio(settings: Settings, z: Sizes) -> list[Figure]:
    programs = {
        "chain": (al.call_soon_chain, z.asyncio_chain, "call", "call_soon chain"),
        "event": (al.event_ping_pong, z.asyncio_round_trips, "round trip",
                  "asyncio.Event ping-pong"),
        "queue": (al.queue_pipeline, z.asyncio_items, "item", "Queue producer/consumer"),
    }
    figs: list[Figure] = []
    for key, (program, count, unit, label) in programs.items():
        s = rounds(
            {
                loop: rate(partial(program, loop, count), count)
                for loop in ("evreplay", "asyncio")
            },
            settings,
        )
        params = {"count": count}
        figs += [
            figure(f"asyncio_{key}_evreplay", f"asyncio {label}: SimEventLoop", f"{unit}/s",
                   s["evreplay"], params=params),
            figure(f"asyncio_{key}_stock", f"asyncio {label}: stock loop", f"{unit}/s",
                   s["asyncio"], params=params),
            ratio(f"asyncio_{key}_ratio_stock", f"asyncio {label}: SimEventLoop / stock",
                  s["evreplay"], s["asyncio"], target=Target(">=", 1.0)),
        ]
    tasks, total = z.asyncio_tasks, z.asyncio_sleeps
    s = rounds(
        {
            loop: rate(partial(al.sleepers, loop, tasks, total), total)
            for loop in ("evreplay", "solipsism", "looptime")
        },
        settings,
    )
    params = {"tasks": tasks, "sleeps": total}
    label = "asyncio.sleep in many tasks"
    figs += [
        figure("asyncio_sleep_evreplay", f"{label}: SimEventLoop", "sleep/s", s["evreplay"],
               params=params),
        figure("asyncio_sleep_solipsism", f"{label}: async-solipsism", "sleep/s",
               s["solipsism"], params=params),
        figure("asyncio_sleep_looptime", f"{label}: looptime", "sleep/s", s["looptime"],
               params=params),
        ratio("asyncio_sleep_ratio_virtual", f"{label}: SimEventLoop / fastest virtual peer",
              s["evreplay"], _fastest(s["solipsism"], s["looptime"]), target=Target(">=", 2.0),
              note="per round, the faster of async-solipsism and looptime"),
    ]
    return figs
