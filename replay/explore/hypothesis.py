"""Fuzzing with hypothesis: every decision is a draw, so hypothesis shrinks the schedule.

A normal ``@given`` test over a scenario and an invariant::

    from hypothesis import given
    from replay.hypothesis import simulations

    @given(simulations("replay.examples.minimachine:scenario"))
    def test_block_device_never_completes_freed_requests(run):
        assert run.failure is None, run.failure

Each example runs the scenario under a recorder whose chooser draws every
decision (which runnable thread goes next, which simultaneous input comes
first, whether to inject a fault) as an integer from hypothesis. Option 0 is
QEMU's own FIFO order and "no fault", and hypothesis shrinks integers towards
0, so a failing run shrinks towards the FIFO order with no faults: what is
left are the few decisions the bug needs.

The simulation's seed is drawn too (unless given), so hypothesis controls the
simulation's RNG: its example database replays a failure exactly, and the
seed shrinks like any other value.

When hypothesis reports the minimal failing example, that run's trace is
saved (default ``traces/failures/``, name from the test id and the run's
digest, unique per pytest-xdist worker) and the failure report says the exact
command that replays it: ``python -m replay play PATH``.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import note
from hypothesis import strategies as st
from hypothesis.control import current_build_context

from evloop import ChoiceKind

from ..api import RecordResult, record
from ..scenario import Scenario, scenario_name

__all__ = ["HypothesisChooser", "SimulationRun", "simulations"]

DEFAULT_FAILURE_DIR = "traces/failures"


class HypothesisChooser:
    """A chooser whose every answer is a hypothesis draw (shrinking to 0, FIFO)."""

    spec = "hypothesis"

    def __init__(self, draw: st.DrawFn) -> None:
        self._draw = draw
        self.decisions = 0
        self.non_default = 0

    def choose(self, kind: ChoiceKind, options: Sequence[str]) -> int:
        choice: int = self._draw(st.integers(0, len(options) - 1))
        self.decisions += 1
        if choice:
            self.non_default += 1
        return choice

    def __repr__(self) -> str:
        return "HypothesisChooser()"


@dataclass
class SimulationRun:
    """One simulated run drawn by :func:`simulations`: its outcome and its trace."""

    scenario: str
    seed: int
    result: RecordResult
    trace: bytes = field(repr=False)
    #: Decisions taken, and how many of them were not QEMU's own order.
    decisions: int = 0
    non_default: int = 0
    #: Where the trace was saved (the final, minimal failing example only).
    trace_path: Path | None = None

    @property
    def failure(self) -> str | None:
        """How the run failed (``"exception: Type: message"``), or None."""
        return self.result.failure

    @property
    def exception(self) -> BaseException | None:
        return self.result.exception

    def save(self, path: str | Path) -> Path:
        """Write the run's trace to ``path`` (parents created)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(self.trace)
        os.replace(tmp, path)
        return path

    def __repr__(self) -> str:
        where = f", trace={str(self.trace_path)!r}" if self.trace_path is not None else ""
        return (
            f"SimulationRun({self.scenario!r}, seed={self.seed}, steps={self.result.steps}, "
            f"decisions={self.decisions}, non_default={self.non_default}, "
            f"failure={self.failure!r}{where})"
        )

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))  # hypothesis's pretty printer: no trace bytes

    def replay_command(self) -> str:
        where = self.trace_path if self.trace_path is not None else "TRACE"
        return f"python -m replay play {where}"


def _test_id() -> str:
    current = os.environ.get("PYTEST_CURRENT_TEST", "")
    test_id = current.rsplit(" ", 1)[0] if current else "hypothesis"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", test_id).strip("_")[:120] or "hypothesis"


def simulations(
    scenario: str | Scenario,
    *,
    params: Mapping[str, Any] | None = None,
    seed: int | None = None,
    faults: Sequence[str] = (),
    until_ns: int | None = None,
    max_steps: int | None = 100_000,
    failure_dir: str | Path | None = DEFAULT_FAILURE_DIR,
) -> st.SearchStrategy[SimulationRun]:
    """A strategy of runs of ``scenario`` whose every decision hypothesis draws.

    ``failure_dir=None`` keeps failing traces in memory only (``run.trace``).
    """
    name = scenario_name(scenario)
    params = dict(params or {})
    faults = tuple(faults)

    @st.composite
    def _runs(draw: st.DrawFn) -> SimulationRun:
        run_seed = seed if seed is not None else draw(st.integers(0, 2**32 - 1))
        chooser = HypothesisChooser(draw)
        buffer = io.BytesIO()
        result = record(
            name,
            buffer,
            seed=run_seed,
            params=params,
            chooser=chooser,
            faults=faults,
            until_ns=until_ns,
            max_steps=max_steps,
        )
        run = SimulationRun(
            name, run_seed, result, buffer.getvalue(), chooser.decisions, chooser.non_default
        )
        if failure_dir is not None and current_build_context().is_final:
            # From the environment: one name component, never a path out of failure_dir.
            worker = re.sub(r"[^A-Za-z0-9_.-]+", "_", os.environ.get("PYTEST_XDIST_WORKER", ""))
            worker = worker.strip("_.")
            stem = f"{_test_id()}-{result.digest:016x}" + (f"-{worker}" if worker else "")
            run.trace_path = run.save(Path(failure_dir) / f"{stem}.evr")
            note(
                f"evreplay: this run's trace is saved at {run.trace_path} "
                f"({run.decisions} decisions, {run.non_default} not in FIFO order)\n"
                f"evreplay: replay it with: {run.replay_command()}"
            )
        return run

    return _runs()
