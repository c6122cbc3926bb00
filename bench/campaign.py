"""Workload 11: campaign throughput, seeds per second with 2 workers, three ways.

The same campaign (the bundled machine with its bug fixed, so that every
seed runs whole as in a healthy standing campaign; random seeds; the whole
of :func:`replay.explore.campaign.run_campaign`) runs in this process (serial), on a forked
process pool of 2, and on a local Dask cluster of 2 single-threaded worker
processes, at batch sizes 32 and 128. The pool and the cluster are started
once, untimed, and warmed up; each round times one whole campaign on each.

The issue's target: Dask within 1.5x of the process pool at batch 32 or
more, that is ``process / dask <= 1.5``.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import Executor
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path

from .harness import Figure, Run, Settings, Target, Unavailable, figure, rate, ratio, rounds

__all__ = ["bench_campaign"]

SCENARIO = "examples.minimachine:scenario"
WORKERS = 2
#: The suite's rule: medians of at least 5 interleaved rounds.
MIN_ROUNDS = 5


def _campaign(
    executor: Executor | None, workers: int, seeds: int, batch: int, directory: Path
) -> Run:
    from replay.explore.campaign import run_campaign
    from replay.explore.seeds import CampaignSpec

    spec = CampaignSpec(SCENARIO, "random", params={"fixed": True}, sys_path=(os.getcwd(),))

    def run() -> int:
        with tempfile.TemporaryDirectory(dir=directory) as out:
            result = run_campaign(
                spec, seeds=seeds, output=out, clock=time.monotonic, executor=executor,
                workers=workers, batch=batch,
            )  # fmt: skip
        if result.groups:
            raise RuntimeError(f"the fixed machine failed: {result.groups}")
        return result.ran

    return run


def _unavailable(why: str) -> Run:
    raise Unavailable(why)


@contextmanager
def _executors() -> Iterator[tuple[Executor, Executor | None, str]]:
    """The process pool, and the Dask cluster's executor (None and why, without Dask)."""
    from replay.explore.executors import process_executor

    with ExitStack() as stack:
        pool = process_executor(WORKERS)
        stack.callback(pool.shutdown)
        dask: Executor | None = None
        why = ""
        try:
            from replay.explore.executors import dask_executor

            dask, _ = stack.enter_context(dask_executor(None, WORKERS))
        except ImportError as exc:
            why = f"Dask is not installed ({exc.name}): pip install 'evreplay[dask]'"
        except Exception as exc:  # the replay layer says Dask is missing as a ReplayError
            why = str(exc)
        yield pool, dask, why


def bench_campaign(settings: Settings, seeds: int) -> list[Figure]:
    if not settings.quick:
        settings = replace(settings, repeat=max(settings.repeat, MIN_ROUNDS))
    with tempfile.TemporaryDirectory() as tmp, _executors() as (pool, dask, why):
        directory = Path(tmp)

        def on(executor: Executor | None, workers: int, batch: int) -> partial[Run]:
            if executor is None and workers > 1:
                return partial(_unavailable, why)
            return partial(_campaign, executor, workers, seeds, batch, directory)

        s = rounds(
            {
                "serial": rate(on(None, 1, 32), seeds),
                "process32": rate(on(pool, WORKERS, 32), seeds),
                "dask32": rate(on(dask, WORKERS, 32), seeds),
                "process128": rate(on(pool, WORKERS, 128), seeds),
                "dask128": rate(on(dask, WORKERS, 128), seeds),
            },
            settings,
        )
    unit = "seed/s"
    label = "campaign (bundled machine, fixed)"
    params = {"seeds": seeds, "workers": WORKERS}
    return [
        figure("campaign_serial", f"{label}: serial, this process", unit, s["serial"],
               params={"seeds": seeds, "workers": 1}),
        figure("campaign_process_b32", f"{label}: process pool (fork), batch 32", unit,
               s["process32"], params={**params, "batch": 32}),
        figure("campaign_dask_b32", f"{label}: local Dask cluster, batch 32", unit,
               s["dask32"], params={**params, "batch": 32}),
        figure("campaign_process_b128", f"{label}: process pool (fork), batch 128", unit,
               s["process128"], params={**params, "batch": 128}),
        figure("campaign_dask_b128", f"{label}: local Dask cluster, batch 128", unit,
               s["dask128"], params={**params, "batch": 128}),
        ratio("campaign_ratio_process_dask_b32", "campaign: process pool / Dask, batch 32",
              s["process32"], s["dask32"], target=Target("<=", 1.5)),
        ratio("campaign_ratio_process_dask_b128", "campaign: process pool / Dask, batch 128",
              s["process128"], s["dask128"], target=Target("<=", 1.5)),
        ratio("campaign_ratio_process_serial", "campaign: process pool (2) / serial, batch 32",
              s["process32"], s["serial"]),
    ]  # fmt: skip
