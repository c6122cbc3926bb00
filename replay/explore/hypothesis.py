"""Fuzzing with hypothesis: every decision is a draw, so hypothesis shrinks the schedule.

Two forms. In the test body, with ``st.data()`` (the run is part of the
test, so a long scenario trips no "input generation is slow" health check)::

    from hypothesis import given, settings, strategies as st
    from replay.hypothesis import run_with

    @settings(deadline=None)
    @given(st.data())
    def test_block_device_never_completes_freed_requests(data):
        run = run_with(data, "replay.examples.minimachine:scenario")
        assert run.failure is None, run.failure

or as a strategy, the whole run drawn as the test's argument::

    @given(simulations("replay.examples.minimachine:scenario"))
    def test_block_device_never_completes_freed_requests(run):
        assert run.failure is None, run.failure

Each run records the scenario under a recorder whose chooser draws every
decision (which runnable thread goes next, which simultaneous input comes
first, whether to inject a fault) as an integer from hypothesis. Option 0 is
QEMU's own FIFO order and "no fault", and hypothesis shrinks integers towards
0, so a failing run shrinks towards the FIFO order with no faults: what is
left are the few decisions the bug needs.

The simulation's seed is drawn too (unless given), so hypothesis controls the
simulation's RNG: its example database replays a failure exactly, and the
seed shrinks like any other value.

When hypothesis reports the minimal failing example, that run's trace is
saved where the pytest plugin saves failing ``sim`` tests' traces, by the
same naming rule (``replay/saving.py``: ``--evreplay-save-traces`` or
``traces/failures/``; ``[WORKER-]NODEID-DIGEST.evr``), and the failure report
says the exact command that replays it: ``python -m replay play PATH``.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Final

from hypothesis import note
from hypothesis import strategies as st
from hypothesis.control import current_build_context
from hypothesis.errors import InvalidArgument

from evloop import ChoiceKind

from ..api import RecordResult, record
from ..saving import current_test_id, save_dir, save_trace
from ..scenario import Scenario, scenario_name

__all__ = ["DEFAULT", "HypothesisChooser", "SimulationRun", "run_with", "simulations"]


class Default(Enum):
    """The type of :data:`DEFAULT`."""

    DEFAULT = "the pytest session's save directory, else traces/failures"


#: ``failure_dir``'s default: the one save directory (``replay/saving.py``).
DEFAULT: Final = Default.DEFAULT


class HypothesisChooser:
    """A chooser whose every answer is a hypothesis draw (shrinking to 0, FIFO)."""

    spec = "hypothesis"

    def __init__(self, draw: Callable[[st.SearchStrategy[Any]], Any]) -> None:
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


def simulations(
    scenario: str | Scenario,
    *,
    params: Mapping[str, Any] | None = None,
    seed: int | None = None,
    faults: Sequence[str] = (),
    until_ns: int | None = None,
    max_steps: int | None = 100_000,
    failure_dir: str | Path | Default | None = DEFAULT,
    sanitize: bool | str = True,
) -> st.SearchStrategy[SimulationRun]:
    """A strategy of runs of ``scenario`` whose every decision hypothesis draws.

    The whole run happens while the strategy draws; :func:`run_with` runs it
    in the test body instead. ``failure_dir`` is where the final failing
    example's trace is saved (default: the pytest session's save directory,
    see ``replay/saving.py``); None keeps traces in memory only
    (``run.trace``). ``sanitize`` is :func:`replay.record`'s (real time and
    randomness routed to the simulation unless False).
    """
    name = scenario_name(scenario)
    options = _Options(
        dict(params or {}), seed, tuple(faults), until_ns, max_steps, failure_dir, sanitize
    )

    @st.composite
    def _runs(draw: st.DrawFn) -> SimulationRun:
        return _run(draw, name, options)

    return _runs()


def run_with(
    data: st.DataObject,
    scenario: str | Scenario,
    *,
    params: Mapping[str, Any] | None = None,
    seed: int | None = None,
    faults: Sequence[str] = (),
    until_ns: int | None = None,
    max_steps: int | None = 100_000,
    failure_dir: str | Path | Default | None = DEFAULT,
    sanitize: bool | str = True,
) -> SimulationRun:
    """Run ``scenario`` now, in the test body, every decision drawn from ``data``.

    For ``@given(st.data())`` tests: the run is part of the test, not of
    input generation, so a long scenario trips no "input generation is slow"
    health check and its draws are shrunk all the same. The seed (unless
    given) and every decision are draws of ``data``; the final failing
    example's trace is saved as :func:`simulations` saves it. Arguments are
    those of :func:`simulations`.
    """
    name = scenario_name(scenario)
    options = _Options(
        dict(params or {}), seed, tuple(faults), until_ns, max_steps, failure_dir, sanitize
    )
    return _run(data.draw, name, options)


@dataclass(frozen=True, slots=True)
class _Options:
    params: dict[str, Any]
    seed: int | None
    faults: tuple[str, ...]
    until_ns: int | None
    max_steps: int | None
    failure_dir: str | Path | Default | None
    sanitize: bool | str


def _run(draw: Callable[[st.SearchStrategy[Any]], Any], name: str, o: _Options) -> SimulationRun:
    """One recorded run whose seed (unless fixed) and decisions ``draw`` gives."""
    run_seed = o.seed if o.seed is not None else draw(st.integers(0, 2**32 - 1))
    chooser = HypothesisChooser(draw)
    buffer = io.BytesIO()
    result = record(
        name, buffer, seed=run_seed, params=o.params, chooser=chooser, faults=o.faults,
        until_ns=o.until_ns, max_steps=o.max_steps, sanitize=o.sanitize,
    )
    run = SimulationRun(
        name, run_seed, result, buffer.getvalue(), chooser.decisions, chooser.non_default
    )
    if o.failure_dir is not None and _is_final():
        directory = save_dir() if isinstance(o.failure_dir, Default) else Path(o.failure_dir)
        run.trace_path = save_trace(run.trace, directory, current_test_id(), result.digest)
        note(
            f"evreplay: this run's trace is saved at {run.trace_path} "
            f"({run.decisions} decisions, {run.non_default} not in FIFO order)\n"
            f"evreplay: replay it with: {run.replay_command()}"
        )
    return run


def _is_final() -> bool:
    """Whether hypothesis is running its final (minimal, reported) example."""
    try:
        return current_build_context().is_final
    except InvalidArgument:  # called outside a hypothesis test: nothing to report to
        return False
