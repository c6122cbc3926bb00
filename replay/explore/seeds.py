"""What one campaign seed is, and running a batch of them where a worker is.

This module is what a campaign sends to its workers: :class:`CampaignSpec`
(everything a run needs, picklable), :func:`run_batch` and
:func:`run_schedules`, and what they send back, :class:`SeedOutcome`: the
seed, its failure's signature (None when it passed) and its steps. Nothing
else crosses the wire; traces are made on the client, for one representative
per failure (:mod:`replay.explore.triage`).

What seed ``i`` means, per chooser:

* ``random`` and ``pct``: the simulation seed ``i`` and the chooser
  ``random:i`` (``pct:i``), so one number reproduces the whole run.
* ``hypothesis``: a hypothesis search seeded with ``i`` over
  :data:`HYPOTHESIS_EXAMPLES` generated examples (no shrinking in the
  worker), the simulation seed ``i``; the seed fails with the first failing
  example.
* ``systematic``: schedule ``i`` of the depth-first enumeration of every
  schedule within the preemption bound (simulation seed 0). A schedule's
  successor is derived from its own run, so the enumeration is one chain:
  :func:`run_schedules` runs a stretch of it and hands back where to go on.
"""

from __future__ import annotations

import io
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from random import Random
from typing import Any

from evloop import ChoicePoint, SystematicChooser

from ..api import RecordResult, record
from .signature import failure_signature

__all__ = [
    "CHOOSERS",
    "HYPOTHESIS_EXAMPLES",
    "CampaignSpec",
    "SeedOutcome",
    "run_batch",
    "run_hypothesis_seed",
    "run_schedules",
    "run_seed",
]

CHOOSERS = ("random", "pct", "hypothesis", "systematic")

#: Generated examples per seed under the hypothesis chooser.
HYPOTHESIS_EXAMPLES = 8


@dataclass(frozen=True, slots=True)
class CampaignSpec:
    """Everything a worker needs to run a campaign's seeds (picklable)."""

    scenario: str
    chooser: str
    params: dict[str, Any] = field(default_factory=dict)
    faults: tuple[str, ...] = ()
    until_ns: int | None = None
    max_steps: int | None = 100_000
    #: The systematic explorer's preemption bound.
    preemptions: int = 2
    #: Put at the front of a worker's ``sys.path``, so that it finds the
    #: scenario's module as the client did (a local cluster's workers).
    sys_path: tuple[str, ...] = ()

    def common(self, seed: int) -> dict[str, Any]:
        """The keyword arguments of :func:`replay.record` for a run at simulation ``seed``."""
        return {
            "seed": seed,
            "params": dict(self.params),
            "faults": self.faults,
            "until_ns": self.until_ns,
            "max_steps": self.max_steps,
        }


@dataclass(frozen=True, slots=True)
class SeedOutcome:
    """What a worker reports for one seed."""

    seed: int
    #: The failure's signature (:func:`failure_signature`), None when the run passed.
    signature: str | None
    steps: int
    #: Systematic failures only: the schedule's decisions, to run it again.
    script: tuple[int, ...] | None = None


def _prepare(spec: CampaignSpec) -> None:
    for entry in reversed(spec.sys_path):
        if entry not in sys.path:
            sys.path.insert(0, entry)


def _signature(result: RecordResult) -> str | None:
    if result.exception is None:
        return None
    return failure_signature(result.exception)


def run_seed(spec: CampaignSpec, seed: int) -> SeedOutcome:
    """Run one random, PCT or hypothesis seed."""
    if spec.chooser == "hypothesis":
        result, _ = run_hypothesis_seed(spec, seed)
    else:
        result = record(
            spec.scenario, io.BytesIO(), chooser=f"{spec.chooser}:{seed}", **spec.common(seed)
        )
    return SeedOutcome(seed, _signature(result), result.steps)


def run_batch(spec: CampaignSpec, first: int, count: int) -> list[SeedOutcome]:
    """Seeds ``first`` to ``first + count - 1`` (a worker's task)."""
    _prepare(spec)
    return [run_seed(spec, seed) for seed in range(first, first + count)]


def run_hypothesis_seed(spec: CampaignSpec, seed: int) -> tuple[RecordResult, bytes]:
    """The hypothesis search of ``seed``: its first failing example, else its last example."""
    from hypothesis import HealthCheck, Phase, find, settings
    from hypothesis.errors import NoSuchExample

    from .hypothesis import SimulationRun, simulations

    last: list[SimulationRun] = []

    def failing(run: SimulationRun) -> bool:
        last[:] = [run]
        return run.failure is not None

    strategy = simulations(
        spec.scenario, params=spec.params, seed=seed, faults=spec.faults,
        until_ns=spec.until_ns, max_steps=spec.max_steps, failure_dir=None,
    )  # fmt: skip
    with warnings.catch_warnings():
        # Hypothesis warns when the global ``random`` state moves while a
        # strategy draws. On a Dask worker thread, the worker's own threads
        # move it; the simulation never reads it (its RNG is its own).
        warnings.filterwarnings(
            "ignore", message="Do not use the `random` module inside strategies"
        )
        try:
            run = find(
                strategy,
                failing,
                settings=settings(
                    max_examples=HYPOTHESIS_EXAMPLES, database=None, deadline=None,
                    phases=[Phase.generate], suppress_health_check=list(HealthCheck),
                ),
                random=Random(seed),
            )
        except NoSuchExample:
            run = last[0]
    return run.result, run.trace


@dataclass(frozen=True, slots=True)
class ScheduleStretch:
    """What :func:`run_schedules` did: its outcomes, and where the enumeration goes on."""

    outcomes: list[SeedOutcome]
    #: The next schedule's prefix, None when the bounded tree is exhausted.
    prefix: list[int] | None
    #: The decisions of the stretch's last schedule (the next one is derived from it).
    log: list[ChoicePoint]


def run_schedules(
    spec: CampaignSpec,
    first: int,
    count: int,
    prefix: Sequence[int],
    previous: Sequence[ChoicePoint],
) -> ScheduleStretch:
    """Schedules ``first`` to ``first + count - 1`` of the systematic enumeration.

    ``prefix`` is schedule ``first``'s prefix and ``previous`` the decisions
    of the schedule it was derived from (empty for schedule 0).
    """
    from .systematic import check_repeated, next_prefix

    _prepare(spec)
    outcomes: list[SeedOutcome] = []
    current: list[int] | None = list(prefix)
    log = list(previous)
    for schedule in range(first, first + count):
        assert current is not None
        chooser = SystematicChooser(current)
        result = record(spec.scenario, io.BytesIO(), chooser=chooser, **spec.common(0))
        check_repeated(spec.scenario, schedule + 1, current, log, chooser)
        signature = _signature(result)
        script = None if signature is None else tuple(p.choice for p in chooser.log)
        outcomes.append(SeedOutcome(schedule, signature, result.steps, script))
        log = list(chooser.log)
        current = next_prefix(log, spec.preemptions)
        if current is None:
            break
    return ScheduleStretch(outcomes, current, log)
