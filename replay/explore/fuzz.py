"""Fuzzing a scenario's schedules, and minimizing a failing trace.

:func:`fuzz` records runs with a random, PCT or hypothesis chooser until one
fails, then shrinks it: hypothesis shrinks its own draws; for random and PCT
the failing run's decisions are minimized with :func:`minimize_decisions`.
Either way the result is a trace whose decisions are mostly QEMU's own FIFO
order, which replays to the failure.

:func:`minimize` is delta debugging (Zeller's ddmin) over a failing trace's
non-default decisions: it tries setting subsets of them back to the default
(FIFO, no fault), re-running the scenario with a :class:`ScriptChooser`, and
keeps any smaller set that still fails the same way. Decisions are aligned by
their index in the run, as hypothesis aligns its choice sequences; a run
whose options differ at some index simply gets the default there.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from evloop import ChoiceKind

from ..api import RecordResult, record
from ..driver import header_option
from ..errors import ReplayError
from ..failures import same_failure
from ..trace.choices import decode_choices
from ..trace.format import EventKind
from ..trace.reader import TraceReader

__all__ = ["FuzzResult", "ScriptChooser", "decisions_of", "fuzz", "minimize", "minimize_decisions"]

Progress = Callable[[int, int], None]


class ScriptChooser:
    """Answers from a script of decisions by index; the default (0) past it or out of range."""

    spec = "script"

    def __init__(self, script: Sequence[int]) -> None:
        self.script = list(script)
        self.index = 0
        self.taken: list[int] = []

    def choose(self, kind: ChoiceKind, options: Sequence[str]) -> int:
        i = self.index
        self.index += 1
        choice = self.script[i] if i < len(self.script) else 0
        if not 0 <= choice < len(options):
            choice = 0
        self.taken.append(choice)
        return choice

    def __repr__(self) -> str:
        return f"ScriptChooser({len(self.script)} decisions)"


def decisions_of(source: str | Path | BinaryIO) -> list[int]:
    """Every decision a trace (a path or a binary file) holds, in order."""
    out: list[int] = []
    with TraceReader(source) as reader:
        for rec in reader:
            if rec[0] == EventKind.CHOICES:
                out.extend(choice for _, _, choice in decode_choices(rec[2]))
            elif rec[0] == EventKind.CHOICE:
                out.append(int(rec[3]))
    return out


@dataclass(frozen=True, slots=True)
class FuzzResult:
    runs: int
    found: bool
    failure: str | None
    #: The minimized failing trace (when found and saved).
    trace_path: Path | None
    decisions: int
    non_default: int
    chooser: str
    #: Why the trace could not be written where asked (it is then in ``trace_path``,
    #: a temporary file: a found failure is never lost).
    save_error: str | None = None


def _run_with(
    scenario: str, script: Sequence[int], common: dict[str, Any], output: Any
) -> tuple[RecordResult, list[int]]:
    chooser = ScriptChooser(script)
    result = record(scenario, output, chooser=chooser, **common)
    return result, chooser.taken


def minimize_decisions(
    scenario: str,
    decisions: Sequence[int],
    failure: str,
    common: dict[str, Any],
    progress: Progress | None = None,
    same: Callable[[RecordResult], bool] | None = None,
) -> list[int]:
    """ddmin over the non-default decisions: the smallest set that still fails as ``failure``.

    ``same`` decides whether a trial run failed the same way (default:
    :func:`~replay.failures.same_failure`, the same exception type and site).
    """
    script = list(decisions)

    def same_as_before(result: RecordResult) -> bool:
        return result.failure is not None and same_failure(result.failure, failure)

    still_fails = same if same is not None else same_as_before

    def fails(keep: set[int]) -> list[int] | None:
        trial = [c if i in keep else 0 for i, c in enumerate(script)]
        result, taken = _run_with(scenario, trial, common, io.BytesIO())
        return taken if still_fails(result) else None

    kept = {i for i, c in enumerate(script) if c}
    n = 2
    tries = 0
    while len(kept) >= 2:
        items = sorted(kept)
        size = max(1, len(items) // n)
        chunks = [set(items[i : i + size]) for i in range(0, len(items), size)]
        reduced = False
        for chunk in chunks:
            complement = kept - chunk
            tries += 1
            if progress is not None:
                progress(tries, len(kept))
            if fails(complement) is not None:
                kept = complement
                n = max(n - 1, 2)
                reduced = True
                break
        if not reduced:
            if n >= len(items):
                break
            n = min(len(items), n * 2)
    if kept and fails(set()) is not None:  # maybe FIFO alone fails (a bug without a race)
        kept = set()
    return [c if i in kept else 0 for i, c in enumerate(script)]


def _common(
    seed: int,
    params: dict[str, Any] | None,
    faults: Sequence[str],
    until_ns: int | None,
    max_steps: int | None,
    sanitize: bool | str = True,
) -> dict[str, Any]:
    return {
        "seed": seed,
        "params": params or {},
        "faults": tuple(faults),
        "until_ns": until_ns,
        "max_steps": max_steps,
        "sanitize": sanitize,
    }


def _probe(args: tuple[str, str, dict[str, Any]]) -> tuple[str, str | None]:
    scenario, chooser, common = args
    result = record(scenario, io.BytesIO(), chooser=chooser, **common)
    return chooser, result.failure


def fuzz(
    scenario: str,
    *,
    runs: int = 1000,
    chooser: str = "random",
    workers: int = 1,
    seed: int = 0,
    params: dict[str, Any] | None = None,
    faults: Sequence[str] = (),
    until_ns: int | None = None,
    max_steps: int | None = 100_000,
    output: str | Path | None = None,
    progress: Progress | None = None,
    sanitize: bool | str = True,
) -> FuzzResult:
    """Explore ``runs`` schedules until one fails; shrink it and save its trace to ``output``.

    ``sanitize`` is :func:`replay.record`'s: real time and randomness routed
    to the simulation (the default), refused (``"strict"``) or left (False).
    """
    common = _common(seed, params, faults, until_ns, max_steps, sanitize)
    if chooser == "hypothesis":
        return _fuzz_hypothesis(scenario, runs, common, output, progress)
    # "pct:DEPTH[:HORIZON]" passes PCT's parameters on to every run's spec.
    base, _, tail = chooser.partition(":")
    if base not in ("random", "pct") or (tail and base != "pct"):
        raise ValueError(
            f"fuzz chooser must be random, pct[:DEPTH[:HORIZON]] or hypothesis, not {chooser!r}"
        )
    specs = [f"{base}:{seed + i}" + (f":{tail}" if tail else "") for i in range(runs)]
    found: tuple[str, str] | None = None
    done = 0
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for spec, failure in pool.map(
                _probe, [(scenario, s, common) for s in specs], chunksize=8
            ):
                done += 1
                if progress is not None:
                    progress(done, runs)
                if failure is not None and found is None:
                    found = (spec, failure)
                    break
    else:
        for spec in specs:
            _, failure = _probe((scenario, spec, common))
            done += 1
            if progress is not None:
                progress(done, runs)
            if failure is not None:
                found = (spec, failure)
                break
    if found is None:
        return FuzzResult(done, False, None, None, 0, 0, chooser)
    spec, failure = found
    buffer = io.BytesIO()
    # Re-run the failing seed to capture its decisions by index.
    record(scenario, buffer, chooser=spec, **common)
    decisions = decisions_of(io.BytesIO(buffer.getvalue()))
    minimal = minimize_decisions(scenario, decisions, failure, common)
    return _save(scenario, minimal, failure, common, output, done, chooser)


def _save(
    scenario: str,
    script: list[int],
    failure: str,
    common: dict[str, Any],
    output: str | Path | None,
    runs: int,
    chooser: str,
) -> FuzzResult:
    target: Any = output if output is not None else io.BytesIO()
    save_error: str | None = None
    try:
        if output is not None:
            Path(output).parent.mkdir(parents=True, exist_ok=True)
        result, taken = _run_with(scenario, script, common, target)
    except OSError as exc:  # never lose a found failure: keep it in a temporary file
        where = f": {exc.filename}" if exc.filename else ""
        save_error = f"{exc.strerror or exc}{where}"
        fd, spare = tempfile.mkstemp(prefix="replay-failure-", suffix=".evr")
        os.close(fd)
        output = Path(spare)
        result, taken = _run_with(scenario, script, common, output)
    if result.failure is None or not same_failure(result.failure, failure):
        # The same decisions failed moments ago: the scenario is not deterministic.
        raise ReplayError(
            f"{scenario}: the minimized decisions no longer reproduce {failure!r} "
            f"(this run: {result.failure!r}); the scenario leaks nondeterminism "
            "(run `replay check-determinism` on it)"
        )
    return FuzzResult(
        runs,
        True,
        failure,
        None if output is None else Path(output),
        len(taken),
        sum(1 for c in taken if c),
        chooser,
        save_error,
    )


def _fuzz_hypothesis(
    scenario: str,
    runs: int,
    common: dict[str, Any],
    output: str | Path | None,
    progress: Progress | None,
) -> FuzzResult:
    from hypothesis import HealthCheck, find, settings
    from hypothesis.errors import NoSuchExample

    from .hypothesis import SimulationRun, simulations

    seen = [0]

    def failing(run: SimulationRun) -> bool:
        seen[0] += 1
        if progress is not None:
            progress(min(seen[0], runs), runs)
        return run.failure is not None

    strategy = simulations(
        scenario,
        params=common["params"],
        seed=common["seed"],
        faults=common["faults"],
        until_ns=common["until_ns"],
        max_steps=common["max_steps"],
        sanitize=common["sanitize"],
        failure_dir=None,
    )
    try:
        run = find(
            strategy,
            failing,
            settings=settings(
                max_examples=runs,
                database=None,
                deadline=None,
                suppress_health_check=list(HealthCheck),
            ),
        )
    except NoSuchExample:
        return FuzzResult(seen[0], False, None, None, 0, 0, "hypothesis")
    if output is not None:
        run.save(output)
    return FuzzResult(
        seen[0],
        True,
        run.failure,
        None if output is None else Path(output),
        run.decisions,
        run.non_default,
        "hypothesis",
    )


def minimize(path: str | Path, output: str | Path, progress: Progress | None = None) -> FuzzResult:
    """Delta-debug the failing trace at ``path`` down to its essential decisions."""
    with TraceReader(path) as reader:
        header = reader.header
    # Find the failure by replaying.
    from ..api import play

    played = play(path)
    if played.failure is None:
        raise ValueError(f"{path}: the trace does not end in a failure; nothing to minimize")
    ext = header.extensions
    common = _common(
        header.seed,
        dict(header.parameters),
        header.faults,
        ext.get("run.until_ns"),  # type: ignore[arg-type]
        ext.get("run.max_steps"),  # type: ignore[arg-type]
        header_option(header, "run.sanitize", False),  # absent: recorded without one
    )
    decisions = decisions_of(path)
    minimal = minimize_decisions(header.scenario, decisions, played.failure, common, progress)
    return _save(header.scenario, minimal, played.failure, common, output, 0, header.chooser)

