"""The commands that run scenarios: record, play, fuzz, minimize, check-determinism."""

from __future__ import annotations

import argparse
import shlex
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from ..api import PlayResult, play, record
from ..errors import InvalidRecordError, ReplayDivergence, ReplayError
from ..failures import same_failure
from ..tools.determinism import DeterminismReport, DeterminismRun, check_determinism
from ..tools.events import RecordStream, format_ns
from ..tools.rerun import RerunResult
from .options import (
    EXIT_DIVERGED,
    EXIT_FOUND,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    chooser_spec,
    default_trace_path,
    existing_file,
    fail,
    faults_of,
    load_scenario_arg,
    run_params,
    writable_output,
)
from .progress import Meter, StepMeter, trace_steps
from .tools import Progress, format_record_difference, format_step_difference

# -- record ------------------------------------------------------------------------------


def cmd_record(args: argparse.Namespace) -> int:
    chooser = chooser_spec(args)
    fn = load_scenario_arg(args.scenario)
    params = run_params(args, fn)
    out = writable_output(args.output, default_trace_path(args.scenario, args.seed, chooser))
    if args.async_events == "queue" and args.preemption == "fine":
        fail("--async-events queue does not combine with --preemption fine")
    meter = StepMeter(f"recording {args.scenario}", args.max_steps)
    try:
        result = record(
            args.scenario, out, seed=args.seed, params=params, chooser=chooser,
            until_ns=args.until_ns, max_steps=args.max_steps, faults=faults_of(args),
            watchdog=args.watchdog, sanitize=args.sanitize, progress=meter,
            preemption=args.preemption, async_events=args.async_events,
        )
    except InvalidRecordError as exc:
        fail(f"--param: a value the trace format cannot hold: {exc}")
    except KeyboardInterrupt:
        # A real Ctrl-C (a KeyboardInterrupt the program raises is its failure).
        meter.close()
        print(
            f"replay: interrupted; the partial trace is in {out} (its whole chunks: "
            "'replay play' replays them as a cut trace)",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    finally:
        meter.close()
    outcome = result.reason if result.failure is None else f"FAILED: {result.failure}"
    print(
        f"recorded {args.scenario} (seed {args.seed}, chooser {chooser}): {result.steps} steps, "
        f"{format_ns(result.time_ns)} virtual, {result.records} records, {result.bytes} bytes, "
        f"{result.decisions} decisions; {outcome} -> {out}"
    )
    if result.failure is not None:
        print(f"replay it with: replay play {shlex.quote(str(out))}")
        return EXIT_FOUND
    return EXIT_OK


# -- play --------------------------------------------------------------------------------


def _truncation_text(path: Path, result: PlayResult) -> str:
    with RecordStream(path) as stream:
        for _ in stream:
            pass
    error = stream.stop_error
    why = "" if error is None else f" (expected {error.expected}, found {error.found})"
    return (
        f"{path}: the trace is truncated: it ends at byte {result.truncated_at}{why}.\n"
        f"replayed its {stream.events} events (its whole chunks, up to step {stream.last_step}) "
        f"and stopped there, at step {result.steps}, {format_ns(result.time_ns)} virtual; "
        "what came after is not in the trace"
    )


def cmd_play(args: argparse.Namespace) -> int:
    path = existing_file(args.file)
    meter = StepMeter(f"replaying {path}", trace_steps(path, args.until_step))
    try:
        result = play(path, until_step=args.until_step, progress=meter)
    except ReplayDivergence as exc:
        meter.close()
        print(f"{path}: {exc}")
        return EXIT_DIVERGED
    finally:
        meter.close()
    run = f"{result.steps} steps, {format_ns(result.time_ns)} virtual, {result.events} events"
    if result.truncated_at is not None:
        print(_truncation_text(path, result))
        return EXIT_DIVERGED
    if args.until_step is not None and result.bit_exact is None:
        print(f"replayed {path} to step {result.steps}: {run}; stopped early, so bytes "
              "not compared (play it whole to check bit-exactness)")
        return EXIT_OK
    if not result.bit_exact:
        print(f"{path}: replays, but its re-recording differs from the trace's bytes "
              f"(not bit-exact): {run}")
        return EXIT_DIVERGED
    if result.failure is not None:
        print(f"replayed {path}: replays to the same failure: {result.failure} ({run}, bit-exact)")
        return EXIT_FOUND  # as its recording exited
    else:
        print(f"replayed {path}: {run}, bit-exact ({result.reason})")
    return EXIT_OK


# -- fuzz and minimize -------------------------------------------------------------------


class _RunProgress:
    """Runs done of a budget, with rate and time left (see ``progress.py``)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.meter: Meter | None = None

    def __call__(self, done: int, total: int) -> None:
        if self.meter is None:
            self.meter = Meter(self.what, total, "run")
        self.meter.to(done, total)

    def clear(self) -> None:
        if self.meter is not None:
            self.meter.close()


def cmd_fuzz(args: argparse.Namespace) -> int:
    from ..explore.fuzz import fuzz

    fn = load_scenario_arg(args.scenario)
    params = run_params(args, fn)
    faults = faults_of(args)
    out = writable_output(
        args.output, default_trace_path(args.scenario, args.seed, f"fuzz-{args.chooser}")
    )
    chooser = args.chooser
    pct_option = args.pct_depth is not None or args.pct_horizon is not None
    if pct_option and chooser != "pct":
        fail("--pct-depth and --pct-horizon set the pct chooser: use them with --chooser pct")
    if args.chooser == "systematic":
        return _fuzz_systematic(args, params, faults, out)
    if args.preemptions is not None:
        fail("--preemptions bounds the systematic explorer: use it with --chooser systematic")
    if pct_option:
        depth = 3 if args.pct_depth is None else args.pct_depth
        chooser = f"pct:{depth}" + ("" if args.pct_horizon is None else f":{args.pct_horizon}")
    progress = _RunProgress(f"fuzzing {args.scenario} ({chooser})")
    try:
        result = fuzz(
            args.scenario, runs=args.runs, chooser=chooser, workers=args.workers,
            seed=args.seed, params=params, faults=faults, until_ns=args.until_ns,
            max_steps=args.max_steps, output=out, progress=progress, sanitize=args.sanitize,
        )
    finally:
        progress.clear()
    if not result.found:
        print(f"no failure in {result.runs} runs of {args.scenario} ({args.chooser} chooser)")
        return EXIT_OK
    print(f"failure found after {result.runs} run(s): {result.failure}")
    saved = result.trace_path or out
    if result.save_error is not None:
        print(f"could not write {out} ({result.save_error}); the trace is saved in {saved}")
    print(
        f"shrunk to {result.non_default} non-FIFO decision(s) out of {result.decisions}; "
        f"trace saved -> {saved}"
    )
    print(f"replay it with: replay play {shlex.quote(str(saved))}")
    return EXIT_FOUND


def _fuzz_systematic(
    args: argparse.Namespace, params: dict[str, Any], faults: list[str], out: Path
) -> int:
    """``fuzz --chooser systematic``: every schedule up to K preemptions, ``--runs`` at most."""
    from ..explore.systematic import MAX_DECISIONS, explore_systematic

    if args.workers != 1:
        fail("--workers: the systematic explorer runs its schedules one after another")
    bound = 2 if args.preemptions is None else args.preemptions
    what = f"{bound} preemption{'' if bound == 1 else 's'}"
    progress = _RunProgress(f"exploring {args.scenario} (systematic, up to {what})")
    try:
        result = explore_systematic(
            args.scenario, preemptions=bound, budget=args.runs, seed=args.seed, params=params,
            faults=faults, until_ns=args.until_ns, max_steps=args.max_steps, output=out,
            progress=progress, sanitize=args.sanitize,
        )
    finally:
        progress.clear()
    if result.cut:
        print(
            f"note: {result.cut} schedule(s) reached {MAX_DECISIONS} decisions; past that "
            "they ran in FIFO order, unexplored"
        )
    if result.failure is None:
        if result.complete:
            print(f"all {result.schedules} schedules up to {what} explored, no failure")
        else:
            print(
                f"{result.schedules} schedules up to {what} explored, no failure; the budget "
                f"(--runs {args.runs}) ran out before the search was complete"
            )
        return EXIT_OK
    print(f"failure found in schedule {result.schedules}: {result.failure}")
    print(
        f"{result.preempted} preemption(s) in {result.decisions} decision(s); "
        f"trace saved -> {out}"
    )
    print(f"replay it with: replay play {shlex.quote(str(out))}")
    return EXIT_FOUND


def cmd_minimize(args: argparse.Namespace) -> int:
    from ..explore.fuzz import decisions_of, minimize

    writable_output(args.output, Path(args.output))
    before = sum(1 for c in decisions_of(args.file) if c)
    progress = _RunProgress(f"minimizing {args.file}")
    try:
        result = minimize(args.file, args.output, progress=lambda tries, left: progress(
            tries, tries + left
        ))
    except ValueError as exc:
        fail(str(exc))
    finally:
        progress.clear()
    print(f"{args.file}: {result.failure}")
    print(
        f"minimized from {before} to {result.non_default} non-FIFO decision(s) -> {args.output}"
    )
    print(f"replay it with: replay play {shlex.quote(str(args.output))}")
    return EXIT_FOUND


# -- rerun -------------------------------------------------------------------------------


def _rerun_line(result: RerunResult) -> str:
    if result.fixed:
        was = (
            f"the recorded failure does not recur ({result.recorded_failure})"
            if result.recorded_failure is not None
            else "the run does not fail"
        )
        verdict = f"fixed: {was}" if result.recorded_failure is not None else f"passes: {was}"
    else:
        same = result.recorded_failure is not None and same_failure(
            result.failure or "", result.recorded_failure
        )
        verdict = f"{'still fails' if same else 'fails differently'}: {result.failure}"
    return f"{result.path}: {verdict}; {result.schedule_text()} ({result.steps} steps)"


def cmd_rerun(args: argparse.Namespace) -> int:
    """``rerun FILE|DIR``: exit 0 no failure recurs, 1 one does, 2 bad input."""
    from ..tools.rerun import rerun
    from ..tools.verify import find_traces

    target = Path(args.target)
    if not target.is_dir():
        result = rerun(existing_file(args.target), scenario=args.scenario)
        print(_rerun_line(result))
        return EXIT_OK if result.fixed else EXIT_FOUND
    paths = find_traces(target)
    if not paths:
        fail(f"{target}: no *.evr trace under it")
    fixed = failing = bad = 0
    meter = Meter(f"rerunning {target}", len(paths), "trace")
    try:
        for i, path in enumerate(paths, 1):
            try:
                result = rerun(path, scenario=args.scenario)
            except (ReplayError, OSError) as exc:
                bad += 1
                meter.write(f"{path}: BAD: {exc}".splitlines()[0])
            else:
                meter.write(_rerun_line(result))
                if result.fixed:
                    fixed += 1
                else:
                    failing += 1
            meter.to(i)
    finally:
        meter.close()
    print(f"{len(paths)} traces: {fixed} fixed, {failing} fail, {bad} bad")
    if failing:
        return EXIT_FOUND
    return EXIT_USAGE if bad else EXIT_OK


# -- check-determinism -------------------------------------------------------------------


def _record_args(args: argparse.Namespace, chooser: str) -> list[str]:
    out = ["--chooser", chooser]
    for key, value in args.param:
        out += ["--param", f"{key}={value!r}"]
    if args.until_ns is not None:
        out += ["--until-ns", str(args.until_ns)]
    if args.max_steps is not None:
        out += ["--max-steps", str(args.max_steps)]
    for fault in faults_of(args):
        out += ["--faults", fault]
    out += ["--watchdog", "0" if args.watchdog is None else repr(args.watchdog)]
    if not args.sanitize:
        out.append("--no-sanitize")
    if args.preemption != "off":
        out += ["--preemption", args.preemption]
    if args.async_events != "off":
        out += ["--async-events", args.async_events]
    return out


def _run_line(run: DeterminismRun) -> str:
    steps = (
        f"steps {run.steps_sha256[:16]}" if run.dump_exit == 0
        else f"no steps (its dump failed with exit {run.dump_exit})"
    )
    text = (f"run {run.index + 1} (PYTHONHASHSEED={run.hash_seed}): trace "
            f"{run.trace_sha256[:16]}, {steps}")
    summary = run.summary.partition(": ")[2].rpartition(" -> ")[0]
    return f"{text}: {summary}" if summary else text


def _print_determinism(report: DeterminismReport, kept: Path | None) -> None:
    for run in report.runs:
        if run.problem is not None:
            print(f"run {run.index + 1} (PYTHONHASHSEED={run.hash_seed}): {run.problem}")
    if report.mismatch is not None:
        ra, rb = (report.runs[i] for i in report.mismatch)
        a, b = f"run {ra.index + 1}", f"run {rb.index + 1}"
        what = "traces" if ra.trace_sha256 != rb.trace_sha256 else "steps (traces identical)"
        print(f"NOT deterministic: {a} (PYTHONHASHSEED={ra.hash_seed}) and {b} "
              f"(PYTHONHASHSEED={rb.hash_seed}) differ in their {what}")
        if report.steps is not None:
            if ra.problem is not None or rb.problem is not None:
                print("(steps from a replay that left its trace: near, not exactly, the recording)")
            print("\n".join(format_step_difference(report.steps, a, b)))
        if report.records is not None:
            print("\n".join(format_record_difference(report.records, a, b)))
    elif not report.ok:
        print("NOT deterministic: a run does not replay in its own kind of process")
    else:
        print(f"deterministic: {len(report.runs)} runs of {report.scenario} (seed "
              f"{report.seed}) recorded identical traces and steps")
    if kept is not None and not report.ok:
        print(f"traces and step dumps kept in {kept}")


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM ends a check as Ctrl-C does: children killed, temporary files removed."""
    raise KeyboardInterrupt


def cmd_check_determinism(args: argparse.Namespace) -> int:
    chooser = chooser_spec(args)
    fn = load_scenario_arg(args.scenario)
    run_params(args, fn)
    if args.runs < 2:
        fail(f"--runs must be at least 2, not {args.runs}")
    keep = Path(args.keep) if args.keep else None
    workdir = keep if keep is not None else Path(tempfile.mkdtemp(prefix="replay-determinism-"))
    progress = Progress()
    done = [0]

    def on_run(run: DeterminismRun) -> None:
        done[0] += 1
        progress.clear()
        print(_run_line(run), flush=True)
        progress.update(f"{done[0]}/{args.runs} runs done")

    progress.update(f"recording {args.runs} runs of {args.scenario}")
    report: DeterminismReport | None = None
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        report = check_determinism(
            args.scenario, runs=args.runs, seed=args.seed, workdir=workdir,
            record_args=_record_args(args, chooser), jobs=args.jobs, on_run=on_run,
        )
    finally:
        signal.signal(signal.SIGTERM, previous)
        progress.clear()
        # A temporary directory outlives the check only to show a failure.
        if keep is None and (report is None or report.ok):
            shutil.rmtree(workdir, ignore_errors=True)
    _print_determinism(report, None if keep is None and report.ok else workdir)
    return EXIT_OK if report.ok else EXIT_FOUND
