"""``replay campaign``: every seed of a scenario, on a pool or a Dask cluster; one trace per bug."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Final

from ..explore.campaign import CampaignProgress, CampaignResult, FailureGroup, Stop
from .options import (
    EXIT_FOUND,
    EXIT_OK,
    fail,
    faults_of,
    int_in,
    load_scenario_arg,
    parse_param,
    run_params,
)
from .tools import Progress

__all__ = ["EPILOG", "add_campaign_options", "cmd_campaign"]

#: Where traces go without ``--corpus`` or ``-o``.
DEFAULT_CAMPAIGN_DIR: Final = "traces/campaign"
EXIT_INTERRUPTED: Final = 130

EPILOG: Final = """\
examples:
  replay campaign replay.examples.minimachine:scenario --seeds 500
  replay campaign replay.examples.minimachine:scenario --seeds 2000 --workers 2 --batch 64
  replay campaign replay.examples.minimachine:scenario --seeds 1000 --corpus corpus/
  replay campaign replay.examples.minimachine:scenario --seeds 50 --chooser systematic

On a Dask cluster: --executor dask-local (a local cluster of processes) or
--executor tcp://HOST:PORT (a running cluster, by its scheduler's address).

Every seed runs (a failure does not stop the campaign), in batches of --batch
seeds on the executor's workers; workers send back only each seed's failure
signature (exception type and where it was raised). Failing seeds are grouped
by signature; each group's first seed is run again here, shrunk towards QEMU's
own order and saved, one trace per failure. Seed i means: random:i / pct:i
with simulation seed i; a hypothesis search seeded with i; or schedule i of
the systematic enumeration.

--corpus DIR keeps one trace per scenario and failure across runs, with an
index (DIR/index.json: commit, scenario, seed, signature, trace); CI replays
it with 'replay verify DIR'. --time-limit and Ctrl-C stop the campaign and keep
every finished seed. Exit 1 if any failure was found, 0 if none, 130 if
interrupted before finding one; 2 on bad input."""


def _seconds(text: str) -> float:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*", text)
    if match is None:
        raise argparse.ArgumentTypeError(
            f"expected seconds or a duration such as 90s, 30m or 2h, not {text!r}"
        )
    return float(match[1]) * {"s": 1, "m": 60, "h": 3600}[match[2] or "s"]


def _executor(text: str) -> str:
    if text in ("process", "dask-local") or re.fullmatch(r"tcp://[^\s/:]+:\d+", text):
        return text
    raise argparse.ArgumentTypeError(
        f"expected process, dask-local or tcp://HOST:PORT, not {text!r}"
    )


def add_campaign_options(p: argparse.ArgumentParser) -> None:
    from ..explore.seeds import CHOOSERS

    p.add_argument("scenario", metavar="SCENARIO")
    p.add_argument("--seeds", type=int_in(1, None), required=True, metavar="N",
                   help="run seeds 0 to N-1")
    p.add_argument("--chooser", choices=CHOOSERS, default="random",
                   help="what a seed explores (default random)")
    p.add_argument("--executor", type=_executor, default="process",
                   metavar="process|dask-local|tcp://HOST:PORT",
                   help="where batches run: a local process pool (default), a local Dask "
                        "cluster, or the Dask scheduler at HOST:PORT")
    p.add_argument("--workers", type=int_in(1, 4096), metavar="W",
                   help="processes of the process pool or the local Dask cluster "
                        "(default: one per CPU; 1 runs in this process)")
    p.add_argument("--batch", type=int_in(1, 1_000_000), default=32, metavar="B",
                   help="seeds per task (default 32)")
    p.add_argument("--corpus", metavar="DIR",
                   help="merge the traces found into the corpus DIR (one per failure)")
    p.add_argument("-o", "--output", metavar="DIR",
                   help=f"where traces go without --corpus (default {DEFAULT_CAMPAIGN_DIR})")
    p.add_argument("--time-limit", type=_seconds, metavar="T",
                   help="stop after T (seconds, or 90s, 30m, 2h) and keep what was found")
    p.add_argument("--json", action="store_true",
                   help="print a JSON summary on stdout instead of the table")
    p.add_argument("--commit", metavar="SHA",
                   help="the commit the corpus records (default: git rev-parse HEAD)")
    p.add_argument("--preemptions", type=int_in(0, 1000), default=2, metavar="K",
                   help="systematic: at most K preemptions per schedule (default 2)")
    p.add_argument("--param", type=parse_param, action="append", default=[], metavar="KEY=VALUE",
                   help="a scenario parameter (repeatable)")
    p.add_argument("--max-steps", type=int_in(0, None), default=100_000, metavar="N",
                   help="stop each run after N steps (default 100000)")
    p.add_argument("--faults", action="append", default=[], metavar="KIND[,KIND...]",
                   help="faults the runs may inject (see record --help)")


#: Off a terminal, the longest stretch without a progress line.
LINE_EVERY_S = 10.0


class _CampaignProgress:
    """Seeds done, failures, rate and time left: one line on a terminal, else a line at
    every tenth of the seeds and at least every :data:`LINE_EVERY_S` seconds."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.bar = Progress()
        self.last_tenth = 0
        self.next_line_s = LINE_EVERY_S

    def __call__(self, p: CampaignProgress) -> None:
        rate = p.done / p.elapsed if p.elapsed > 0 else 0.0
        left = (p.total - p.done) / rate if rate > 0 else 0.0
        text = (
            f"{self.what}: {p.done}/{p.total} seeds, {p.failing} failing "
            f"({p.groups} distinct), {rate:.0f} seeds/s, {_duration(left)} left"
        )
        if self.bar.active:
            self.bar.update(text)
            return
        tenth = 10 * p.done // max(p.total, 1)
        if tenth != self.last_tenth or p.elapsed >= self.next_line_s:
            self.last_tenth = tenth
            self.next_line_s = p.elapsed + LINE_EVERY_S
            print(text, file=sys.stderr, flush=True)

    def shrinking(self, group: FailureGroup) -> None:
        self.bar.update(f"{self.what}: shrinking {group.signature} (seed {group.first_seed})")

    def clear(self) -> None:
        self.bar.clear()


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def _table(result: CampaignResult, paths: dict[str, Path]) -> list[str]:
    rows = [("signature", "count", "first seed", "shrunk", "trace")]
    for g in result.groups:
        shrunk = "-" if g.shrunk is None else f"{g.shrunk.non_default}/{g.shrunk.decisions}"
        trace = str(paths[g.signature]) if g.signature in paths else "(not saved: stopped)"
        rows.append((g.signature, str(g.count), str(g.first_seed), shrunk, trace))
    w = [max(len(r[i]) for r in rows) for i in range(4)]
    return [
        f"{r[0]:<{w[0]}}  {r[1]:>{w[1]}}  {r[2]:>{w[2]}}  {r[3]:>{w[3]}}  {r[4]}" for r in rows
    ]


def _headline(result: CampaignResult) -> str:
    rate = result.ran / result.elapsed if result.elapsed > 0 else 0.0
    stopped = {
        Stop.DONE: "",
        Stop.EXHAUSTED: " (every schedule within the bound explored)",
        Stop.TIME_LIMIT: f" (time limit: {result.ran} of {result.seeds} seeds ran)",
        Stop.INTERRUPTED: f" (interrupted: {result.ran} of {result.seeds} seeds ran)",
    }[result.stop]
    distinct = len(result.groups)
    return (
        f"campaign {result.scenario} ({result.chooser}): {result.ran} seeds in "
        f"{_duration(result.elapsed)} ({rate:.0f} seeds/s){stopped}; {result.failing} failing, "
        f"{distinct} distinct failure{'' if distinct == 1 else 's'}"
    )


def cmd_campaign(args: argparse.Namespace) -> int:
    from ..explore.campaign import run_campaign
    from ..explore.corpus import current_commit, load_index, merge_campaign
    from ..explore.executors import campaign_executor
    from ..explore.seeds import CampaignSpec

    fn = load_scenario_arg(args.scenario)
    params = run_params(args, fn)
    faults = faults_of(args)
    if args.corpus and args.output:
        fail("--corpus and -o: the corpus is where the traces go; give one of them")
    if args.corpus:
        load_index(args.corpus)  # a bad index is said before the campaign, not after
    workers = args.workers or os.cpu_count() or 1
    spec = CampaignSpec(
        args.scenario, args.chooser, params, tuple(faults), None, args.max_steps,
        args.preemptions, (os.getcwd(),),
    )  # fmt: skip
    if args.corpus:
        Path(args.corpus).mkdir(parents=True, exist_ok=True)
        output = Path(tempfile.mkdtemp(prefix=".campaign-", dir=args.corpus))
    else:
        output = Path(args.output or DEFAULT_CAMPAIGN_DIR)
    progress = _CampaignProgress(f"campaign {args.scenario}")
    try:
        with campaign_executor(args.executor, workers) as (executor, running):
            result = run_campaign(
                spec, seeds=args.seeds, output=output, clock=time.monotonic,
                executor=executor, workers=running, batch=args.batch,
                time_limit=args.time_limit, on_progress=progress,
                on_shrink=progress.shrinking,
            )  # fmt: skip
        progress.clear()
        paths = {g.signature: g.shrunk.path for g in result.groups if g.shrunk is not None}
        merged = {}
        if args.corpus:
            commit = args.commit or current_commit()
            merged = merge_campaign(args.corpus, result, commit)
            paths = {sig: path for sig, (_, path) in merged.items()}
    finally:
        progress.clear()
        if args.corpus:
            shutil.rmtree(output, ignore_errors=True)
    if args.json:
        summary = result.summary()
        for failure in summary["failures"]:
            failure["trace"] = str(paths[failure["signature"]]) if failure["signature"] in paths \
                else None
            if failure["signature"] in merged:
                failure["corpus"] = merged[failure["signature"]][0].value
        print(json.dumps(summary, indent=1))
    else:
        print(_headline(result))
        if result.groups:
            print("\n".join(_table(result, paths)))
            first = next(iter(paths.values()), None)
            if first is not None:
                print(f"replay a trace with: replay play {first}")
        if merged:
            kinds = [m.value for m, _ in merged.values()]
            print(f"corpus {args.corpus}: " + ", ".join(
                f"{kinds.count(k)} {k}" for k in ("new", "replaced", "kept")
            ))
    if result.groups:
        return EXIT_FOUND
    return EXIT_INTERRUPTED if result.stop is Stop.INTERRUPTED else EXIT_OK
