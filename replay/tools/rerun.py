"""``replay rerun``: does a saved failure come back under the current code?

A play checks that a trace replays as recorded (determinism); once the bug
is fixed the code differs, so the trace diverges, and a play of a fixed
bug's trace fails. A rerun asks the question a regression test asks instead:
it records the trace's scenario afresh (the header's seed, parameters,
faults and limits) with a chooser that answers the trace's decisions while
they still apply, and QEMU's own order (FIFO, no fault) from the first one
that does not, then says whether the run fails and with what.

A recorded decision *applies* while the run asks it at the same step among
the same number of options. From the first one that does not, the trace no
longer describes this run, so :class:`TraceScheduleChooser` answers the default
for every later decision too: answers aligned by index past a departure
would steer an unrelated schedule. The result says how far the schedule
applied (decisions followed, of how many, and the step where it departed),
so a "fixed" verdict that came from a schedule that stopped applying early
can be told from one that followed it to the end.

Host-mode traces hold real input rather than decisions, so they cannot be
rerun: :class:`~replay.errors.ReplayError`.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from evloop import ChoiceKind

from ..api import record
from ..declared import SCENARIO_ALIASES, check_parameters, load_trace_scenario
from ..driver import header_option, run_limits
from ..errors import ReplayError
from ..failures import failure_identity
from ..host.channels import is_host_trace
from ..trace.choices import batch_decisions
from ..trace.format import EventKind
from ..trace.header import TraceHeader
from ..trace.reader import TraceReader

if TYPE_CHECKING:
    from evloop import Simulation

__all__ = ["RerunResult", "TraceScheduleChooser", "read_schedule", "rerun"]

#: A recorded decision: (step, number of options, choice).
Decision = tuple[int, int, int]


class TraceScheduleChooser:
    """Answers a trace's decisions while each is asked at its step among as many options."""

    spec = "rerun"

    def __init__(self, decisions: Sequence[Decision]) -> None:
        self.decisions = list(decisions)
        self.sim: Simulation | None = None
        #: Decisions answered from the trace.
        self.followed = 0
        #: The step of the first decision that no longer applied, if one did not.
        self.departed_step: int | None = None
        self._index = 0

    def attach(self, sim: Simulation) -> None:
        self.sim = sim

    def choose(self, kind: ChoiceKind, options: Sequence[str]) -> int:
        i = self._index
        self._index += 1
        step = 0 if self.sim is None else self.sim.steps
        if self.departed_step is not None:
            return 0
        if i < len(self.decisions):
            at, n, choice = self.decisions[i]
            if at == step and n == len(options) and choice < n:
                self.followed += 1
                return choice
        self.departed_step = step
        return 0

    def __repr__(self) -> str:
        return f"TraceScheduleChooser({len(self.decisions)} decisions)"


def read_schedule(path: str | Path) -> tuple[TraceHeader, list[Decision], str | None]:
    """The trace's header, its decisions in order and the failure it ended with (if any)."""
    decisions: list[Decision] = []
    failure: str | None = None
    with TraceReader(path) as reader:
        header = reader.header
        for rec in reader:
            if rec[0] == EventKind.CHOICES:
                decisions.extend(batch_decisions(rec[1], rec[2]))
            elif rec[0] == EventKind.CHOICE:
                decisions.append((int(rec[1]), int(rec[2]), int(rec[3])))
            elif rec[0] == EventKind.SHUTDOWN and failure_identity(str(rec[2])) is not None:
                failure = str(rec[2])
    return header, decisions, failure


@dataclass(frozen=True, slots=True)
class RerunResult:
    path: Path
    #: The failure the trace recorded (None for a trace of a clean run).
    recorded_failure: str | None
    #: How this run failed, or None: the failure does not recur.
    failure: str | None
    #: Decisions answered from the trace, of ``decisions`` it holds.
    followed: int
    decisions: int
    #: The step where the trace's schedule stopped applying (None: it applied throughout).
    departed_step: int | None
    steps: int
    reason: str

    @property
    def fixed(self) -> bool:
        return self.failure is None

    def schedule_text(self) -> str:
        """How far the trace's schedule applied, in words."""
        if self.decisions == 0:
            return "the trace holds no decision"
        if self.departed_step is None:
            if self.followed == self.decisions:
                return f"the trace's schedule applied throughout ({self.decisions} decisions)"
            return (
                f"the run ended after {self.followed} of the trace's {self.decisions} "
                "decisions, each as recorded"
            )
        return (
            f"the trace's schedule applied for {self.followed} of {self.decisions} decisions, "
            f"up to step {self.departed_step}; FIFO order after that"
        )


def rerun(path: str | Path, *, scenario: str | None = None) -> RerunResult:
    """Run the trace's scenario under the current code and the trace's schedule.

    ``scenario`` names the scenario to run instead of the header's (a
    ``module:function`` spec, for a scenario that moved).
    """
    path = Path(path)
    header, decisions, recorded = read_schedule(path)
    if is_host_trace(header):
        raise ReplayError(
            f"{path}: a host-mode trace holds real input, not a schedule; it cannot be rerun "
            "(replay play checks it)"
        )
    if scenario is None:  # the trace's: declared, and its parameters fit (replay/declared.py)
        fn = load_trace_scenario(header.scenario, path)
        check_parameters(fn, header.scenario, header.parameters, path)
    chooser = TraceScheduleChooser(decisions)
    until_ns, max_steps, interval = run_limits(header)
    result = record(
        scenario or SCENARIO_ALIASES.get(header.scenario, header.scenario),
        io.BytesIO(),
        seed=header.seed,
        params=dict(header.parameters),
        chooser=chooser,
        faults=header.faults,
        until_ns=until_ns,
        max_steps=max_steps,
        checkpoint_interval=interval,
        sanitize=header_option(header, "run.sanitize", False),
    )
    return RerunResult(
        path=path,
        recorded_failure=recorded,
        failure=result.failure,
        followed=chooser.followed,
        decisions=len(decisions),
        departed_step=chooser.departed_step,
        steps=result.steps,
        reason=result.reason,
    )
