"""``replay check-determinism``: record one scenario in several fresh processes and compare."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack  # type: ignore[import-untyped]

from ..errors import ReplayError
from ..failures import failure_identity
from ..trace.format import EventKind
from ..trace.reader import TraceReader
from .diff import (
    RecordDifference,
    StepDifference,
    _file_sha256,
    first_record_difference,
    first_step_difference,
)
from .events import RecordStream, read_steps
from .heapshift import HEAP_SHIFT_ENV

__all__ = ["DeterminismReport", "DeterminismRun", "check_determinism"]

# -- check-determinism -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeterminismRun:
    """One run in its own process: a recording, then a dump of it in the same process."""

    index: int
    hash_seed: int
    trace: Path
    dump: Path
    #: Exit codes of ``replay record`` (0, or 1: the scenario failed) and ``replay dump``.
    record_exit: int
    dump_exit: int
    #: The trace's records, failures reduced to their type and site (see _trace_sha256).
    trace_sha256: str
    steps_sha256: str
    #: The recording's summary line, and why the dump failed (if it did).
    summary: str
    problem: str | None


@dataclass(frozen=True, slots=True)
class DeterminismReport:
    scenario: str
    seed: int
    runs: tuple[DeterminismRun, ...]
    #: Indices (into runs) of the first pair that differ.
    mismatch: tuple[int, int] | None
    steps: StepDifference | None
    records: RecordDifference | None

    @property
    def ok(self) -> bool:
        return self.mismatch is None and all(r.problem is None for r in self.runs)


def _child_env(hash_seed: int, index: int = 0) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONHASHSEED"] = str(hash_seed)
    env[HEAP_SHIFT_ENV] = str(index)  # objects at other addresses in each run (heapshift.py)
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    extra = [os.getcwd()]
    for entry in sys.path:
        real = os.path.realpath(entry or ".")
        if os.path.isdir(real) and not any(real.startswith(p + os.sep) for p in prefixes):
            extra.append(real)
    if env.get("PYTHONPATH"):
        extra.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(extra))
    return env


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _steps_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith('{"type":"step"'):
                h.update(line.encode())
    return h.hexdigest()


def _trace_sha256(path: Path) -> str:
    """The trace's records hashed with every failure reduced to its identity.

    A failure is its exception type and where it was raised; its message
    may hold run-dependent text (a set's order under another hash seed),
    so two runs whose traces differ only there agree. A trace that does
    not read is hashed as its bytes (the dump then reports the problem).
    """
    h = hashlib.sha256()
    try:
        with TraceReader(path, strict=False) as reader:
            h.update(msgpack.packb(reader.header.to_record()))
            for rec in reader:
                if rec[0] == EventKind.SHUTDOWN:
                    identity = failure_identity(str(rec[2]))
                    if identity is not None:
                        rec = (rec[0], rec[1], f"exception: {identity[0]} at {identity[1]}")
                h.update(msgpack.packb(list(rec)))
    except ReplayError:
        return _file_sha256(path)
    return h.hexdigest()


class _Children:
    """The child processes of one check, so that an interrupted check ends them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: set[subprocess.Popen[str]] = set()
        self._stopped = False

    def run(self, argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        with self._lock:
            if self._stopped:
                raise ReplayError("the determinism check was stopped")
            child = subprocess.Popen(argv, text=True, **kwargs)
            self._live.add(child)
        try:
            out, err = child.communicate()
        finally:
            with self._lock:
                self._live.discard(child)
        return subprocess.CompletedProcess(argv, child.returncode, out, err)

    def stop(self) -> None:
        """Kill every child still running and start no more."""
        with self._lock:
            self._stopped = True
            live = list(self._live)
        for child in live:
            child.kill()


def _one_run(
    index: int, hash_seed: int, record_args: Sequence[str], workdir: Path, children: _Children
) -> DeterminismRun:
    trace = workdir / f"run{index + 1}.evr"
    dump_path = workdir / f"run{index + 1}.jsonl"
    env = _child_env(hash_seed, index)
    base = [sys.executable, "-m", "replay"]
    rec = children.run(
        [*base, "record", *record_args, "-o", str(trace)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    if rec.returncode not in (0, 1) or not trace.is_file():
        raise ReplayError(
            f"run {index + 1} (PYTHONHASHSEED={hash_seed}): 'replay record' failed with exit "
            f"{rec.returncode}: {_last_line(rec.stderr) or _last_line(rec.stdout)}"
        )
    with open(dump_path, "w", encoding="utf-8") as out:
        dumped = children.run(
            # record_args[0] is the scenario this check was given: declared by the user.
            [*base, "dump", "--json", "--scenario", record_args[0], str(trace)],
            env=env, stdout=out, stderr=subprocess.PIPE,
        )
    problem = None
    if dumped.returncode != 0:
        lines = [line.strip() for line in dumped.stderr.splitlines() if line.strip()]
        why = next((line for line in lines if "replay diverged" in line), _last_line(dumped.stderr))
        problem = f"its trace does not replay in a process like the one that recorded it: {why}"
    return DeterminismRun(
        index, hash_seed, trace, dump_path, rec.returncode, dumped.returncode,
        _trace_sha256(trace), _steps_sha256(dump_path), _last_line(rec.stdout), problem,
    )


def check_determinism(
    scenario: str,
    *,
    runs: int,
    workdir: str | Path,
    seed: int = 0,
    record_args: Sequence[str] = (),
    hash_seeds: Sequence[int] | None = None,
    jobs: int | None = None,
    context: int = 5,
    on_run: Callable[[DeterminismRun], object] | None = None,
) -> DeterminismReport:
    """Record ``scenario`` ``runs`` times in separate processes and compare the runs.

    Run ``i`` (0-based) uses ``PYTHONHASHSEED = hash_seeds[i]`` (default
    ``i + 1``): ``replay record SCENARIO --seed SEED *record_args``, then
    ``replay dump --json`` of that trace in the same kind of process, which
    regenerates its steps (callback names included, which the trace's
    digests do not cover). The runs agree when their trace bytes and their
    steps are identical and each trace replays where it was recorded.
    """
    if runs < 2:
        raise ValueError(f"--runs must be at least 2, not {runs}")
    seeds = list(hash_seeds) if hash_seeds is not None else [i + 1 for i in range(runs)]
    if len(seeds) != runs:
        raise ValueError(f"{runs} runs need {runs} hash seeds, not {len(seeds)}")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    args = [scenario, "--seed", str(seed), *record_args]
    workers = max(1, min(runs, jobs or os.cpu_count() or 1))
    children = _Children()
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        futures = [
            pool.submit(_one_run, i, seeds[i], args, workdir, children) for i in range(runs)
        ]
        results = []
        for future in futures:
            run = future.result()
            if on_run is not None:
                on_run(run)
            results.append(run)
    except BaseException:  # interrupted, or a run failed: end the others now
        children.stop()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    first = results[0]
    mismatch = None
    for other in results[1:]:
        if (other.trace_sha256, other.steps_sha256) != (first.trace_sha256, first.steps_sha256):
            mismatch = (0, other.index)
            break
    steps = records = None
    if mismatch is not None:
        other = results[mismatch[1]]
        with open(first.dump, encoding="utf-8") as fa, open(other.dump, encoding="utf-8") as fb:
            steps = first_step_difference(read_steps(fa), read_steps(fb), context=context)
        with RecordStream(first.trace) as ea, RecordStream(other.trace) as eb:
            records = first_record_difference(ea, eb)
    return DeterminismReport(scenario, seed, tuple(results), mismatch, steps, records)
