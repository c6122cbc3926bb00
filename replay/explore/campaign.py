"""Campaigns: every seed of a scenario run, failures grouped, one shrunk trace per failure.

``replay fuzz`` stops at its first failure; a campaign runs every seed it is
given and keeps every distinct failure. The rules it keeps:

* **Seeds travel in batches.** A seed is a few milliseconds and a task on a
  cluster costs about one; a task is a batch of ``batch`` seeds
  (:func:`~replay.explore.seeds.run_batch`), and a worker sends back only
  ``(seed, signature, steps)`` per seed.
* **The executor changes the speed, never the result.** Any
  :class:`concurrent.futures.Executor` runs the batches (a process pool, a
  Dask client's executor), or none (in this process). Outcomes are kept by
  seed and grouped in seed order; a group's representative is its first
  seed, shrunk and saved here on the client (:mod:`~replay.explore.triage`).
  So the same seeds give the same groups, the same representatives and the
  same trace bytes with one worker, a pool, or a cluster.
* **Stopping keeps what is done.** ``time_limit`` (seconds on the clock the
  caller passes in) and a KeyboardInterrupt stop the campaign between
  results: batches not started are cancelled, every finished seed is kept,
  and its failures are shrunk and saved as usual. A second interrupt while
  shrinking leaves the groups not yet shrunk without a trace, still counted.
* **Systematic enumeration is a chain**: schedule ``i + 1`` is derived from
  schedule ``i``'s run, so its batches run one after another (each on a
  worker), and the campaign ends early when the bounded tree is exhausted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from evloop import ChoicePoint

from .seeds import CHOOSERS, CampaignSpec, ScheduleStretch, SeedOutcome, run_batch, run_schedules
from .triage import ShrunkFailure, shrink_and_save

__all__ = ["CampaignProgress", "CampaignResult", "FailureGroup", "Stop", "run_campaign"]


class Stop(Enum):
    DONE = "done"  #: every seed ran
    EXHAUSTED = "exhausted"  #: systematic: every schedule within the bound ran
    TIME_LIMIT = "time-limit"  #: the time limit came first
    INTERRUPTED = "interrupted"  #: Ctrl-C


@dataclass(frozen=True, slots=True)
class CampaignProgress:
    done: int
    total: int
    failing: int
    groups: int
    elapsed: float


@dataclass(slots=True)
class FailureGroup:
    """Every failing seed of one signature, and its representative's saved trace."""

    signature: str
    seeds: list[int]
    #: The representative, shrunk and saved (None if the campaign was stopped first).
    shrunk: ShrunkFailure | None = None

    @property
    def count(self) -> int:
        return len(self.seeds)

    @property
    def first_seed(self) -> int:
        return self.seeds[0]


@dataclass(slots=True)
class CampaignResult:
    scenario: str
    chooser: str
    seeds: int
    #: Seeds that finished (all of them unless stopped early).
    ran: int
    stop: Stop
    groups: list[FailureGroup] = field(default_factory=list)
    steps: int = 0
    elapsed: float = 0.0

    @property
    def failing(self) -> int:
        return sum(g.count for g in self.groups)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary (``replay campaign --json``)."""
        return {
            "scenario": self.scenario,
            "chooser": self.chooser,
            "seeds": self.seeds,
            "ran": self.ran,
            "stop": self.stop.value,
            "failing_seeds": self.failing,
            "steps": self.steps,
            "elapsed_s": round(self.elapsed, 3),
            "failures": [
                {
                    "signature": g.signature,
                    "count": g.count,
                    "first_seed": g.first_seed,
                    "failure": None if g.shrunk is None else g.shrunk.failure,
                    "decisions": None if g.shrunk is None else g.shrunk.decisions,
                    "non_default": None if g.shrunk is None else g.shrunk.non_default,
                    "trace": None if g.shrunk is None else str(g.shrunk.path),
                }
                for g in self.groups
            ],
        }


Clock = Callable[[], float]
OnProgress = Callable[[CampaignProgress], object]


class _Tally:
    """Failing outcomes by seed, and the running counts progress shows.

    A passing seed is only counted: a campaign of a billion seeds keeps its
    failures, not a billion outcomes.
    """

    def __init__(self, total: int, clock: Clock, on_progress: OnProgress | None) -> None:
        self.total = total
        self.clock = clock
        self.start = clock()
        self.on_progress = on_progress
        self.failures: dict[int, SeedOutcome] = {}
        self.signatures: set[str] = set()
        self.done = 0
        self.steps = 0

    def add(self, outcomes: Sequence[SeedOutcome]) -> None:
        for outcome in outcomes:
            self.done += 1
            self.steps += outcome.steps
            if outcome.signature is not None:
                self.failures[outcome.seed] = outcome
                self.signatures.add(outcome.signature)
        if self.on_progress is not None:
            self.on_progress(CampaignProgress(
                self.done, self.total, len(self.failures), len(self.signatures), self.elapsed()
            ))  # fmt: skip

    def elapsed(self) -> float:
        return self.clock() - self.start

    def out_of_time(self, limit: float | None) -> bool:
        return limit is not None and self.elapsed() >= limit


def _batches(seeds: int, batch: int) -> Iterator[tuple[int, int]]:
    return ((first, min(batch, seeds - first)) for first in range(0, seeds, batch))


def _run_pool(
    spec: CampaignSpec, executor: Executor, batches: Iterator[tuple[int, int]], window: int,
    tally: _Tally, time_limit: float | None,
) -> Stop:  # fmt: skip
    todo = batches
    running: set[Future[list[SeedOutcome]]] = set()
    stop = Stop.DONE
    try:
        for first, count in todo:
            running.add(executor.submit(run_batch, spec, first, count))
            if len(running) >= window:
                break
        while running:
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                tally.add(future.result())
            if tally.out_of_time(time_limit):
                stop = Stop.TIME_LIMIT
                break
            for first, count in todo:
                running.add(executor.submit(run_batch, spec, first, count))
                if len(running) >= window:
                    break
    except KeyboardInterrupt:
        stop = Stop.INTERRUPTED
    for future in running:
        future.cancel()
    return stop


def _run_serial(
    spec: CampaignSpec, batches: Iterator[tuple[int, int]], tally: _Tally, time_limit: float | None
) -> Stop:
    try:
        for first, count in batches:
            for seed in range(first, first + count):
                tally.add(run_batch(spec, seed, 1))
                if tally.out_of_time(time_limit):
                    return Stop.TIME_LIMIT
    except KeyboardInterrupt:
        return Stop.INTERRUPTED
    return Stop.DONE


def _run_chain(
    spec: CampaignSpec, executor: Executor | None, batches: Iterator[tuple[int, int]],
    tally: _Tally, time_limit: float | None,
) -> Stop:  # fmt: skip
    prefix: list[int] | None = []
    log: list[ChoicePoint] = []
    try:
        for first, count in batches:
            if prefix is None:
                return Stop.EXHAUSTED
            if executor is None:
                stretch = run_schedules(spec, first, count, prefix, log)
            else:
                future: Future[ScheduleStretch] = executor.submit(
                    run_schedules, spec, first, count, prefix, log
                )
                stretch = future.result()
            tally.add(stretch.outcomes)
            prefix, log = stretch.prefix, stretch.log
            if tally.out_of_time(time_limit):
                return Stop.TIME_LIMIT
    except KeyboardInterrupt:
        return Stop.INTERRUPTED
    return Stop.EXHAUSTED if prefix is None else Stop.DONE


def group_failures(outcomes: Sequence[SeedOutcome]) -> list[FailureGroup]:
    """Failing seeds grouped by signature, groups in the order of their first seed."""
    groups: dict[str, FailureGroup] = {}
    for outcome in sorted(outcomes, key=lambda o: o.seed):
        if outcome.signature is not None:
            group = groups.setdefault(outcome.signature, FailureGroup(outcome.signature, []))
            group.seeds.append(outcome.seed)
    return list(groups.values())


def run_campaign(
    spec: CampaignSpec,
    *,
    seeds: int,
    output: str | Path,
    clock: Clock,
    executor: Executor | None = None,
    workers: int = 1,
    batch: int = 32,
    time_limit: float | None = None,
    on_progress: OnProgress | None = None,
    on_shrink: Callable[[FailureGroup], object] | None = None,
) -> CampaignResult:
    """Run seeds ``0 .. seeds - 1`` of ``spec``; group, shrink and save every failure.

    ``executor`` runs the batches (None: this process, one seed at a time);
    ``workers`` is how many it runs at once (batches in flight: twice that).
    Traces go under ``output`` (:func:`~replay.explore.triage.trace_name`).
    ``on_shrink`` is called before each group is shrunk.
    """
    if spec.chooser not in CHOOSERS:
        raise ValueError(f"campaign chooser must be one of {', '.join(CHOOSERS)}, not "
                         f"{spec.chooser!r}")
    if seeds < 1 or batch < 1 or workers < 1:
        raise ValueError(f"seeds, batch and workers must be at least 1 (got {seeds}, {batch}, "
                         f"{workers})")
    tally = _Tally(seeds, clock, on_progress)
    batches = _batches(seeds, batch)
    if spec.chooser == "systematic":
        stop = _run_chain(spec, executor, batches, tally, time_limit)
    elif executor is None:
        stop = _run_serial(spec, batches, tally, time_limit)
    else:
        stop = _run_pool(spec, executor, batches, 2 * workers, tally, time_limit)
    result = CampaignResult(
        spec.scenario, spec.chooser, seeds, tally.done, stop,
        group_failures(list(tally.failures.values())), tally.steps,
    )  # fmt: skip
    directory = Path(output)
    try:
        for group in result.groups:
            if on_shrink is not None:
                on_shrink(group)
            first = tally.failures[group.first_seed]
            group.shrunk = shrink_and_save(spec, first, directory)
    except KeyboardInterrupt:
        result.stop = Stop.INTERRUPTED
    result.elapsed = tally.elapsed()
    return result
