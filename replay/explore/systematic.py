"""Systematic exploration: every schedule of a small model, up to K preemptions.

Random and PCT choosers *sample* schedules; :func:`explore_systematic`
*enumerates* them, as CHESS and Coyote's or shuttle's DFS schedulers do, so
that "no failure" means no failure in any schedule within the bound.

How it works (stateless model checking): a schedule is the list of answers
to a run's decisions. Each run re-executes the scenario from scratch with a
:class:`~evloop.SystematicChooser` that answers a *prefix* and then never
preempts, and logs every decision (its kind, its number of options, where
the running thread is among them). The next prefix is the current run's
decisions up to the deepest decision that still has an untried option within
the preemption bound, with that option taken. Options are tried default
first (:meth:`~evloop.ChoicePoint.order`), so the first schedule is the
non-preemptive one and each later one differs from it as deep as possible.
Every schedule in the bounded tree is run exactly once; the search is
complete when no decision of the last run has an untried option left.

The preemption bound (Musuvathi and Qadeer, PLDI 2007). A *preemption* is a
THREAD decision that hands the turn to another thread while the running
thread could continue: it reached a preemption point (a zero-timeout wait,
``yield_now``, a non-blocking ``aio_poll``) or a wait that is already over;
or, in a simulation with fine preemption, a PREEMPT decision answered with
anything but option 0 (the running thread).
A switch when the running thread blocks or finishes is free. EXTERNAL
decisions (the order of simultaneous input) and FAULT decisions (with
``faults``) cost nothing and are explored exhaustively; K bounds only the
thread switches.

Partial-order reduction: none, on purpose. POR skips a schedule when it
differs from an explored one only in the order of two *independent* steps,
steps that touch disjoint state. What a thread of control does between two
scheduling points is arbitrary Python on shared objects the framework never
sees (its turn is not instrumented), so no independence relation between two
threads' turns can be derived soundly from what evloop observes: declaring
two turns independent because they touch different fds or contexts would
miss races on plain Python objects, which is exactly what the bundled
machine's bug is (a dict shared by the vCPU and the main loop). Every
schedule within the bound is therefore run; the count reported is the
number of distinct decision sequences, not of equivalence classes.

Two guards keep a run finite: the run limits (``max_steps``, ``until_ns``)
and ``max_decisions`` per run, past which a run is finished in FIFO order
and not branched (a thread spinning on ``yield_now`` is never preempted at
bound 0, and a continuing thread is not a step). Runs cut that way are
counted in :attr:`SystematicResult.cut`, so a report can say so.

The search needs a deterministic scenario: a re-run of a prefix must meet
the same decisions. One that does not is reported (:class:`ReplayError`)
with the schedule and decision where it departed.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evloop import ChoicePoint, SystematicChooser

from ..api import record
from ..errors import ReplayError

__all__ = [
    "MAX_DECISIONS", "SystematicResult", "check_repeated", "explore_systematic", "next_prefix",
]

#: Decisions per run past which a run is finished in FIFO order, not branched.
MAX_DECISIONS = 10_000

#: ``progress(schedules_done, budget)``.
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class SystematicResult:
    """What a systematic exploration did and found."""

    #: Schedules run (each a full run of the scenario).
    schedules: int
    #: The preemption bound K.
    preemptions: int
    #: Every schedule within the bound was run (the budget did not run out first).
    complete: bool
    #: The first failing schedule's failure (``"exception: Type: message"``), or None.
    failure: str | None
    #: Where its trace was saved (None when nothing failed or no output was given).
    trace_path: Path | None
    #: The failing run's trace, byte for byte as recorded (None when nothing failed).
    trace: bytes | None
    #: Decisions, and preemptions among them, of the failing schedule.
    decisions: int
    preempted: int
    #: The most decisions one schedule had.
    max_depth: int
    #: Schedules that reached ``max_decisions`` (finished in FIFO order, not branched).
    cut: int

    @property
    def found(self) -> bool:
        return self.failure is not None


def explore_systematic(
    scenario: str,
    *,
    preemptions: int = 2,
    budget: int = 1000,
    seed: int = 0,
    params: Mapping[str, Any] | None = None,
    faults: Sequence[str] = (),
    until_ns: int | None = None,
    max_steps: int | None = 100_000,
    max_decisions: int = MAX_DECISIONS,
    output: str | Path | None = None,
    progress: Progress | None = None,
    sanitize: bool | str = True,
) -> SystematicResult:
    """Run every schedule of ``scenario`` with at most ``preemptions`` preemptions.

    Stops at the first failing schedule, whose trace is saved to ``output``
    (when given) exactly as it was recorded, or when ``budget`` schedules have
    run, or when the bounded tree is exhausted (``complete``).
    """
    if preemptions < 0:
        raise ValueError(f"the preemption bound must be 0 or more, not {preemptions}")
    if budget < 1:
        raise ValueError(f"the schedule budget must be at least 1, not {budget}")
    common: dict[str, Any] = {
        "seed": seed,
        "params": dict(params or {}),
        "faults": tuple(faults),
        "until_ns": until_ns,
        "max_steps": max_steps,
        "sanitize": sanitize,
    }
    prefix: list[int] = []
    previous: list[ChoicePoint] = []
    schedules = max_depth = cut = 0
    while True:
        chooser = SystematicChooser(prefix, max_decisions=max_decisions)
        buffer = io.BytesIO()
        result = record(scenario, buffer, chooser=chooser, **common)
        schedules += 1
        check_repeated(scenario, schedules, prefix, previous, chooser)
        log = chooser.log
        max_depth = max(max_depth, len(log))
        cut += chooser.beyond > 0
        if progress is not None:
            progress(schedules, budget)
        if result.failure is not None:
            trace = buffer.getvalue()
            if output is not None:
                Path(output).parent.mkdir(parents=True, exist_ok=True)
                Path(output).write_bytes(trace)
            return SystematicResult(
                schedules, preemptions, False, result.failure,
                None if output is None else Path(output), trace,
                len(log) + chooser.beyond, chooser.preemptions, max_depth, cut,
            )  # fmt: skip
        following = next_prefix(log, preemptions)
        if following is None or schedules >= budget:
            return SystematicResult(
                schedules, preemptions, following is None, None, None, None, 0, 0, max_depth, cut
            )
        prefix, previous = following, log


def next_prefix(log: Sequence[ChoicePoint], bound: int) -> list[int] | None:
    """The depth-first successor of the schedule ``log`` within ``bound`` preemptions.

    The deepest decision with an option after the one taken (in
    :meth:`~evloop.ChoicePoint.order`) that keeps the schedule within the
    bound is switched to that option; everything before it is kept. None
    when no decision has one left: the bounded tree is exhausted.
    """
    before = [0] * len(log)
    spent = 0
    for i, point in enumerate(log):
        before[i] = spent
        spent += point.costs(point.choice)
    for d in range(len(log) - 1, -1, -1):
        point = log[d]
        order = point.order()
        for option in order[order.index(point.choice) + 1 :]:
            if before[d] + point.costs(option) <= bound:
                return [p.choice for p in log[:d]] + [option]
    return None


def check_repeated(
    scenario: str,
    schedule: int,
    prefix: Sequence[int],
    previous: Sequence[ChoicePoint],
    chooser: SystematicChooser,
) -> None:
    """A re-run of a prefix meets the decisions the prefix was taken from, or the scenario
    leaks nondeterminism and the search means nothing."""
    log = chooser.log
    for i, choice in enumerate(prefix):
        was = previous[i]
        now = log[i] if i < len(log) else None
        if (
            now is None
            or chooser.diverged_at == i
            or (now.kind, now.options, now.running) != (was.kind, was.options, was.running)
            or now.choice != choice
        ):
            got = "no decision" if now is None else (
                f"a {now.kind.name} decision among {now.options} options"
            )
            raise ReplayError(
                f"{scenario}: schedule {schedule} did not repeat the run it was derived from: "
                f"decision {i} was a {was.kind.name} decision among {was.options} options, "
                f"now {got}; the scenario leaks nondeterminism (run `replay check-determinism` "
                "on it)"
            )
