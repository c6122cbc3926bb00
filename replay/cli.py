"""The ``replay`` command line: a thin driver over ``replay.api`` and ``replay.tools``.

Rules kept here:

* **Exit codes say what happened**: 0 all is well; 1 a finding (a scenario
  failed while recording, a replay diverged, two traces or runs differ, a
  trace in a verified tree is bad); 2 the command could not do its job (a
  usage error, a missing file, a bad trace, an unknown scenario).
* **A user's mistake is one line on stderr**, ``replay: error: ...``, never
  a traceback: argparse's own errors go through :class:`UsageError` too.
  A traceback means a bug in evreplay or in the scenario's own code.
* **One function per command** (``cmd_<name>``), each taking the parsed
  arguments and returning the exit code; formatting lives here, the work in
  ``replay.tools``.
* **Findings go to stdout** (they are the output) except where stdout
  carries data (``dump``, ``export -o -``): there the finding goes to stderr.
  Progress lines for long operations go to stderr, and only to a terminal.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import os
import re
import shlex
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, NoReturn, TextIO

from .api import PlayResult, record
from .errors import InvalidRecordError, ReplayDivergence, ReplayError, TraceFormatError
from .scenario import Scenario, ScenarioError, chooser_from_spec, load_scenario
from .tools import (
    DeterminismReport,
    DeterminismRun,
    DiffResult,
    Outcome,
    RecordDifference,
    RecordStream,
    StepDifference,
    TraceStats,
    check_determinism,
    diff,
    dump,
    expand_kinds,
    find_traces,
    format_ns,
    format_step,
    replay_trace,
    stats,
    verify_trace,
)

__all__ = ["BUNDLED_SCENARIOS", "EXIT_FOUND", "EXIT_OK", "EXIT_USAGE", "UsageError", "main"]

EXIT_OK: Final = 0
EXIT_FOUND: Final = 1
EXIT_USAGE: Final = 2

#: The scenarios ``replay scenarios`` lists: ``module:function`` names.
BUNDLED_SCENARIOS: Final = ("examples.minimachine:scenario",)
#: Where ``record`` writes when given no ``-o`` (relative to the working directory).
DEFAULT_TRACE_DIR: Final = "traces"

_INT64_MIN: Final = -(1 << 63)
_UINT64_MAX: Final = (1 << 64) - 1


class UsageError(Exception):
    """A mistake in the command line or its inputs: one line, exit 2."""


def _fail(message: str) -> NoReturn:
    raise UsageError(message)


class _Parser(argparse.ArgumentParser):
    """argparse, but errors become :class:`UsageError` (one line, no usage dump)."""

    def error(self, message: str) -> NoReturn:
        _fail(f"{message} (see '{self.prog} --help')")


# -- option types ------------------------------------------------------------------------


def _int_in(lo: int | None, hi: int | None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text, 0)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, not {text!r}") from None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            bounds = f"in [{lo}, {hi}]" if hi is not None else f">= {lo}"
            raise argparse.ArgumentTypeError(f"expected an integer {bounds}, not {value}")
        return value

    return parse


_UNITS: Final = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
_DURATION: Final = re.compile(r"\s*(\d+)\s*(ns|us|µs|ms|s)?\s*")


def parse_duration_ns(text: str) -> int:
    """``T`` for ``--until-ns``: nanoseconds, or with a unit (``50ms``, ``2s``, ``10us``)."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise argparse.ArgumentTypeError(
            f"expected nanoseconds or a duration such as 50ms, not {text!r}"
        )
    return int(match[1]) * _UNITS[match[2] or "ns"]


def parse_param(text: str) -> tuple[str, Any]:
    """``KEY=VALUE``; VALUE is a Python literal (``3``, ``True``, ``b'hi'``, ``[1, 2]``) or text."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(
            f"expected KEY=VALUE with KEY a parameter name, not {text!r}"
        )
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        value = raw  # plain text: --param label=hello
    return key, value


def _existing_file(text: str) -> Path:
    path = Path(text)
    if not path.exists():
        _fail(f"{text}: no such file")
    if path.is_dir():
        _fail(f"{text}: is a directory, not a trace file")
    return path


# -- shared run options (record, check-determinism) ------------------------------------


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """The options that shape a recorded run. New run options (faults...) go here."""
    p.add_argument("--seed", type=_int_in(_INT64_MIN, _UINT64_MAX), default=0,
                   help="the simulation's seed (default 0)")
    p.add_argument("--chooser", default="fifo", metavar="SPEC",
                   help="who makes scheduling decisions: fifo (QEMU's order, the default), "
                        "random:SEED, or any other spec replay.chooser_from_spec accepts")
    p.add_argument("--chooser-seed", type=_int_in(0, None), metavar="S",
                   help="the seed of a chooser given without one (--chooser random)")
    p.add_argument("--param", type=parse_param, action="append", default=[],
                   metavar="KEY=VALUE",
                   help="a scenario parameter (repeatable); VALUE is a Python literal "
                        "(3, True, b'hi', [1, 2]) or else plain text")
    p.add_argument("--until-ns", type=parse_duration_ns, metavar="T",
                   help="stop at virtual time T (ns, or with a unit: 50ms, 2s)")
    p.add_argument("--max-steps", type=_int_in(0, None), metavar="N",
                   help="stop after N steps")
    p.add_argument("--faults", action="append", default=[], metavar="KIND[,KIND...]",
                   help="faults the simulation may inject, each a recorded decision: delay, "
                        "reorder, loss, duplicate, partition, short-read, short-write, eagain, "
                        "eintr, host-jump, host-skew, preempt (optionally KIND:fd=N)")


def _faults(args: argparse.Namespace) -> list[str]:
    faults = [f.strip() for arg in args.faults for f in arg.split(",") if f.strip()]
    if faults:
        from evloop.machine.faults import parse_faults

        try:
            parse_faults(faults)
        except ValueError as exc:
            _fail(f"--faults: {exc}")
    return faults


def _chooser_spec(args: argparse.Namespace) -> str:
    spec: str = args.chooser
    if args.chooser_seed is not None:
        if ":" in spec:
            _fail(f"--chooser {spec!r} has its seed already; drop --chooser-seed")
        spec = f"{spec}:{args.chooser_seed}"
    try:
        chooser_from_spec(spec)
    except ScenarioError as exc:
        _fail(f"--chooser: {exc}")
    return spec


def _load(spec: str) -> Scenario:
    try:
        return load_scenario(spec)
    except ScenarioError as exc:
        _fail(f"{exc} (see 'replay scenarios')")
    except Exception as exc:  # the scenario's module itself failed to import
        _fail(f"scenario {spec!r}: importing it failed: {type(exc).__name__}: {exc}")


def _check_params(spec: str, fn: Scenario, params: dict[str, Any]) -> None:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(None, **params)
    except TypeError as exc:
        names = list(signature.parameters)[1:]
        takes = ", ".join(names) if names else "no parameters"
        _fail(f"--param: scenario {spec!r} does not accept these ({exc}); it takes: {takes}")


def _run_params(args: argparse.Namespace, fn: Scenario) -> dict[str, Any]:
    params = dict(args.param)
    _check_params(args.scenario, fn, params)
    return params


def default_trace_path(scenario: str, seed: int, chooser: str) -> Path:
    """``traces/<module>-<function>-seed<N>[-<chooser>].evr``."""
    where, _, func = scenario.rpartition(":")
    module = Path(where).stem if where.endswith(".py") else where.rpartition(".")[2]
    name = f"{module}-{func}-seed{seed}"
    if chooser != "fifo":
        name += "-" + chooser
    return Path(DEFAULT_TRACE_DIR) / (re.sub(r"[^A-Za-z0-9_.-]+", "-", name) + ".evr")


# -- record ------------------------------------------------------------------------------


def cmd_record(args: argparse.Namespace) -> int:
    chooser = _chooser_spec(args)
    fn = _load(args.scenario)
    params = _run_params(args, fn)
    out = Path(args.output) if args.output else default_trace_path(
        args.scenario, args.seed, chooser
    )
    if out.is_dir():
        _fail(f"-o {out}: is a directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        result = record(
            args.scenario, out, seed=args.seed, params=params, chooser=chooser,
            until_ns=args.until_ns, max_steps=args.max_steps, faults=_faults(args),
        )
    except InvalidRecordError as exc:
        _fail(f"--param: a value the trace format cannot hold: {exc}")
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
        f"replayed its {stream.events} events (its whole chunks, up to step {stream.last_step}); "
        f"the run then went on without it to step {result.steps}, "
        f"{format_ns(result.time_ns)} virtual ({result.reason})"
    )


def cmd_play(args: argparse.Namespace) -> int:
    path = _existing_file(args.file)
    try:
        result, _ = replay_trace(path, until_step=args.until_step)
    except ReplayDivergence as exc:
        print(f"{path}: {exc}")
        return EXIT_FOUND
    run = f"{result.steps} steps, {format_ns(result.time_ns)} virtual, {result.events} events"
    if result.truncated_at is not None:
        print(_truncation_text(path, result))
        return EXIT_OK
    if args.until_step is not None and result.bit_exact is None:
        print(f"replayed {path} to step {result.steps}: {run}; stopped early, so bytes "
              "not compared (play it whole to check bit-exactness)")
        return EXIT_OK
    if not result.bit_exact:
        print(f"{path}: replays, but its re-recording differs from the trace's bytes "
              f"(not bit-exact): {run}")
        return EXIT_FOUND
    if result.failure is not None:
        print(f"replayed {path}: replays to the same failure: {result.failure} ({run}, bit-exact)")
    else:
        print(f"replayed {path}: {run}, bit-exact ({result.reason})")
    return EXIT_OK


# -- dump --------------------------------------------------------------------------------


def cmd_dump(args: argparse.Namespace) -> int:
    path = _existing_file(args.file)
    kinds = None
    if args.kinds:
        names = [name for group in args.kinds for name in group.split(",")]
        try:
            expand_kinds(names)
        except ValueError as exc:
            _fail(f"--kinds: {exc}")
        kinds = names
    if args.from_step is not None and args.to_step is not None and args.from_step > args.to_step:
        _fail(f"--from {args.from_step} is after --to {args.to_step}")
    try:
        dump(path, sys.stdout, kinds=kinds, from_step=args.from_step, to_step=args.to_step,
             as_json=args.json, replay=not args.records_only)
    except ReplayDivergence as exc:
        sys.stdout.flush()
        print(f"{path}: {exc}", file=sys.stderr)
        return EXIT_FOUND
    return EXIT_OK


# -- diff --------------------------------------------------------------------------------


def format_step_difference(d: StepDifference, a: str = "A", b: str = "B") -> list[str]:
    """The first divergent step, with identical steps before it and each side's after it."""
    pad = " " * (max(len(a), len(b)) + 4)
    lines = [f"first divergent step: {d.position}"]
    if d.before:
        lines.append(f"  identical before it (last {len(d.before)}):")
        lines += [f"{pad}{format_step(ev)}" for ev in d.before]
    for side, ev, after in ((a, d.a, d.after_a), (b, d.b, d.after_b)):
        head = f"  {side}:".ljust(len(pad))
        lines.append(head + ("(the run has ended)" if ev is None else format_step(ev)))
        lines += [f"{pad}{format_step(x)}" for x in after]
    return lines


def format_record_difference(d: RecordDifference, a: str = "A", b: str = "B") -> list[str]:
    lines = [f"first differing trace event: {d.index}"]
    for side, rec in ((a, d.a), (b, d.b)):
        what = "(the trace has ended)" if rec is None else (
            f"step {rec.step}: {rec.kind} {rec.describe()}"
        )
        lines.append(f"  {side}: {what}")
    return lines


def _print_diff(result: DiffResult, a: Path, b: Path) -> None:
    print(f"A: {a}\nB: {b}")
    if result.headers:
        print("headers differ:")
        for line in result.headers:
            print(f"  {line}")
    for note in result.notes:
        print(f"note: {note}")
    if result.steps is not None:
        print("\n".join(format_step_difference(result.steps)))
    elif result.steps_a is not None:
        print(f"steps: identical ({result.steps_a} steps)")
    if result.records is not None:
        print("\n".join(format_record_difference(result.records)))
    else:
        print("trace events: identical")


def cmd_diff(args: argparse.Namespace) -> int:
    a, b = _existing_file(args.a), _existing_file(args.b)
    result = diff(a, b, context=args.context)
    if result.identical_bytes:
        print(f"identical: {a} and {b} are the same bytes")
        return EXIT_OK
    _print_diff(result, a, b)
    if result.identical:
        print("the traces replay identically (but their bytes differ)")
        return EXIT_OK
    return EXIT_FOUND


# -- stats -------------------------------------------------------------------------------


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _counts(mapping: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in mapping.items()) or "none"


def _print_stats(s: TraceStats) -> None:
    h = s.header
    state = "complete" if s.complete else f"truncated at byte {s.truncated_at}"
    print(f"trace:            {s.path}: {s.bytes} bytes, {s.chunks} chunks, {state}")
    print(f"scenario:         {h.scenario}, seed {h.seed}, chooser {h.chooser}")
    if s.steps is not None:
        assert s.time_ns is not None
        end = s.reason if s.failure is None else f"{s.reason}: {s.failure}"
        print(f"run:              {s.steps} steps, {format_ns(s.time_ns)} virtual ({end})")
        if s.steps_regenerated:
            print(f"steps by kind:    {_counts(s.steps_by_kind)}")
            print(f"steps by thread:  {_counts(s.steps_by_thread)}")
        else:
            print("steps by kind:    (not regenerated: host-mode traces replay without on_step)")
    print(f"records:          {s.records} ({_counts(s.records_by_kind)})")
    print(f"events:           {s.events}, of which {s.decisions} decisions")
    print(f"bytes per step:   {_ratio(s.bytes_per_step)}")
    per = s.choices_bytes / s.decisions if s.decisions else None
    print(f"bytes/decision:   {_ratio(s.bytes_per_decision)} "
          f"(packed in CHOICES: {_ratio(per)})")


def cmd_stats(args: argparse.Namespace) -> int:
    import json

    path = _existing_file(args.file)
    s = stats(path, replay=not args.records_only)
    if args.json:
        print(json.dumps(s.to_json(), separators=(",", ":")))
    else:
        _print_stats(s)
    if s.divergence is not None:
        print(f"{path}: {s.divergence}", file=sys.stderr)
        return EXIT_FOUND
    return EXIT_OK


# -- export ------------------------------------------------------------------------------


def cmd_export(args: argparse.Namespace) -> int:
    from .perfetto import export_perfetto

    path = _existing_file(args.file)
    with RecordStream(path):  # a bad trace fails here, before an output file exists
        pass
    if args.output == "-":
        try:
            export_perfetto(path, sys.stdout, timeline=args.timeline)
        except ReplayDivergence as exc:
            print(f"{path}: {exc}", file=sys.stderr)
            return EXIT_FOUND
        return EXIT_OK
    out = Path(args.output) if args.output else path.with_suffix(".perfetto.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            summary = export_perfetto(path, f, timeline=args.timeline)
        os.replace(tmp, out)
    except ReplayDivergence as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return EXIT_FOUND
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    print(
        f"wrote {out}: {summary.events} events ({summary.slices} slices, {summary.instants} "
        f"instants, {summary.counters} counters) on {len(summary.threads)} thread tracks "
        f"({', '.join(summary.threads)}); open it in https://ui.perfetto.dev"
    )
    return EXIT_OK


# -- fuzz and minimize -------------------------------------------------------------------


class _RunProgress:
    """A progress bar on a terminal; on anything else (CI), a plain line every 10%."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.bar = _Progress()
        self.last_tenth = -1

    def __call__(self, done: int, total: int) -> None:
        if self.bar.active:
            width = 30
            filled = width * done // max(total, 1)
            self.bar.update(f"{self.what} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
            return
        tenth = 10 * done // max(total, 1)
        if tenth != self.last_tenth:
            self.last_tenth = tenth
            print(f"{self.what}: {done}/{total}", file=sys.stderr, flush=True)

    def clear(self) -> None:
        self.bar.clear()


def cmd_fuzz(args: argparse.Namespace) -> int:
    from .fuzz import fuzz

    fn = _load(args.scenario)
    params = _run_params(args, fn)
    faults = _faults(args)
    out = Path(args.output) if args.output else default_trace_path(
        args.scenario, args.seed, f"fuzz-{args.chooser}"
    )
    if out.is_dir():
        _fail(f"-o {out}: is a directory")
    progress = _RunProgress(f"fuzzing {args.scenario} ({args.chooser})")
    try:
        result = fuzz(
            args.scenario, runs=args.runs, chooser=args.chooser, workers=args.workers,
            seed=args.seed, params=params, faults=faults, until_ns=args.until_ns,
            max_steps=args.max_steps, output=out, progress=progress,
        )
    finally:
        progress.clear()
    if not result.found:
        print(f"no failure in {result.runs} runs of {args.scenario} ({args.chooser} chooser)")
        return EXIT_OK
    print(f"failure found after {result.runs} run(s): {result.failure}")
    print(
        f"shrunk to {result.non_default} non-FIFO decision(s) out of {result.decisions}; "
        f"trace saved -> {out}"
    )
    print(f"replay it with: replay play {shlex.quote(str(out))}")
    return EXIT_FOUND


def cmd_minimize(args: argparse.Namespace) -> int:
    from .fuzz import decisions_of, minimize

    before = sum(1 for c in decisions_of(args.file) if c)
    progress = _RunProgress(f"minimizing {args.file}")
    try:
        result = minimize(args.file, args.output, progress=lambda tries, left: progress.bar.update(
            f"minimizing {args.file}: try {tries}, {left} decisions left"
        ))
    except ValueError as exc:
        _fail(str(exc))
    finally:
        progress.clear()
    print(f"{args.file}: {result.failure}")
    print(
        f"minimized from {before} to {result.non_default} non-FIFO decision(s) -> {args.output}"
    )
    print(f"replay it with: replay play {shlex.quote(str(args.output))}")
    return EXIT_FOUND


# -- verify ------------------------------------------------------------------------------


class _Progress:
    """One self-rewriting status line on stderr, only when stderr is a terminal."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        self.active = bool(isatty and isatty())

    def update(self, text: str) -> None:
        if self.active:
            width = shutil.get_terminal_size().columns - 1
            self.stream.write("\r\x1b[K" + text[:width])
            self.stream.flush()

    def clear(self) -> None:
        if self.active:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def cmd_verify(args: argparse.Namespace) -> int:
    root = Path(args.dir)
    if not root.exists():
        _fail(f"{args.dir}: no such directory")
    traces = find_traces(root)
    progress = _Progress()
    tally = dict.fromkeys(Outcome, 0)
    for i, path in enumerate(traces, 1):
        progress.update(f"[{i}/{len(traces)}] {path}")
        result = verify_trace(path)
        progress.clear()
        tally[result.outcome] += 1
        message = result.message.removeprefix(f"{path}: ")
        print(f"{result.outcome.value:<8} {path}: {message}", flush=True)
    print(
        f"{len(traces)} traces: {tally[Outcome.OK]} ok, {tally[Outcome.DIVERGED]} diverged, "
        f"{tally[Outcome.BAD]} bad"
    )
    return EXIT_OK if tally[Outcome.OK] == len(traces) else EXIT_FOUND


# -- scenarios ---------------------------------------------------------------------------


def _first_line(doc: str | None) -> str:
    lines = (doc or "").strip().splitlines()
    return lines[0].strip() if lines else "(no description)"


def cmd_scenarios(args: argparse.Namespace) -> int:
    for spec in BUNDLED_SCENARIOS:
        try:
            fn = load_scenario(spec)
        except Exception as exc:
            print(f"{spec}\n    (cannot be loaded here: {type(exc).__name__}: {exc})")
            continue
        doc = inspect.getdoc(fn) or inspect.getdoc(inspect.getmodule(fn))
        params = [p for p in list(inspect.signature(fn).parameters.values())[1:]
                  if p.default is not inspect.Parameter.empty]
        print(f"{spec}\n    {_first_line(doc)}")
        if params:
            print("    params: " + ", ".join(f"{p.name}={p.default!r}" for p in params))
    return EXIT_OK


# -- check-determinism -------------------------------------------------------------------


def _record_args(args: argparse.Namespace, chooser: str) -> list[str]:
    out = ["--chooser", chooser]
    for key, value in args.param:
        out += ["--param", f"{key}={value!r}"]
    if args.until_ns is not None:
        out += ["--until-ns", str(args.until_ns)]
    if args.max_steps is not None:
        out += ["--max-steps", str(args.max_steps)]
    for fault in _faults(args):
        out += ["--faults", fault]
    return out


def _run_line(run: DeterminismRun) -> str:
    text = (f"run {run.index + 1} (PYTHONHASHSEED={run.hash_seed}): trace "
            f"{run.trace_sha256[:16]}, steps {run.steps_sha256[:16]}")
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


def cmd_check_determinism(args: argparse.Namespace) -> int:
    chooser = _chooser_spec(args)
    fn = _load(args.scenario)
    _run_params(args, fn)
    if args.runs < 2:
        _fail(f"--runs must be at least 2, not {args.runs}")
    keep = Path(args.keep) if args.keep else None
    workdir = keep if keep is not None else Path(tempfile.mkdtemp(prefix="replay-determinism-"))
    progress = _Progress()
    done = [0]

    def on_run(run: DeterminismRun) -> None:
        done[0] += 1
        progress.clear()
        print(_run_line(run), flush=True)
        progress.update(f"{done[0]}/{args.runs} runs done")

    progress.update(f"recording {args.runs} runs of {args.scenario}")
    try:
        report = check_determinism(
            args.scenario, runs=args.runs, seed=args.seed, workdir=workdir,
            record_args=_record_args(args, chooser), jobs=args.jobs, on_run=on_run,
        )
    finally:
        progress.clear()
    if report.ok and keep is None:
        shutil.rmtree(workdir, ignore_errors=True)
    _print_determinism(report, workdir)
    return EXIT_OK if report.ok else EXIT_FOUND


# -- the parser --------------------------------------------------------------------------

_EPILOGS: Final = {
    "record": """\
examples:
  replay record examples.minimachine:scenario
  replay record examples.minimachine:scenario --seed 3 --chooser random:7 -o bug.evr
  replay record examples.minimachine:scenario --param requests=5 --param text=b'hi'
  replay record path/to/my_scenarios.py:boot --until-ns 50ms --max-steps 10000

Without -o the trace goes to traces/<module>-<function>-seed<N>[-<chooser>].evr.
A scenario that fails while recording is a bug found: the trace is kept, the
command to replay it is printed, and the exit code is 1.""",
    "play": """\
examples:
  replay play traces/minimachine-scenario-seed0.evr
  replay play bug.evr --until-step 120

Exit 0: the trace replays (bit-exact; or to the same failure it recorded; or,
for a truncated trace, as far as its whole chunks go). Exit 1: the replay
diverged. Exit 2: not a valid trace, or its scenario cannot be loaded.""",
    "dump": """\
examples:
  replay dump bug.evr
  replay dump bug.evr --kinds timer,bh,choice --from 100 --to 200
  replay dump bug.evr --json | jq 'select(.type == "step") | .name'

Step kinds: bh, read, write, poll_ready, timer, turn, input (fd = read,write,poll_ready).
Record kinds: checkpoint, choice, input, clock, random, mutex, shutdown, fault.
Steps are regenerated by replaying the trace; records come from the trace and
are shown after the step they follow ('[trace]').""",
    "diff": """\
examples:
  replay diff good.evr bad.evr
  replay diff run1.evr run2.evr --context 10

Compares the headers, the steps both traces regenerate (first divergent step,
with context on both sides) and the trace events. Exit 1 if they differ.""",
    "stats": """\
examples:
  replay stats bug.evr
  replay stats bug.evr --json
  replay stats huge.evr --records-only     # no replay: records and sizes only""",
    "export": """\
examples:
  replay export bug.evr --format perfetto -o bug.json    # open in ui.perfetto.dev
  replay export bug.evr -o - --timeline steps > bug.json

One track per thread of control; each step is a 1 µs slice (callbacks take no
virtual time; steps at one virtual instant are laid out one after another).
--timeline steps puts step N at N µs instead.""",
    "verify": """\
examples:
  replay verify traces/
  replay verify tests/corpus

Replays every *.evr under DIR (strictly: a truncated trace is bad) and checks
bit-exactness. Exit 1 if any trace diverged or is bad.""",
    "scenarios": """\
examples:
  replay scenarios""",
    "fuzz": """\
examples:
  replay fuzz examples.minimachine:scenario
  replay fuzz examples.minimachine:scenario --chooser pct --runs 500 --workers 2
  replay fuzz examples.minimachine:scenario --chooser hypothesis -o bug.evr
  replay fuzz my.py:link --faults loss,delay --runs 1000

Each run records the scenario under the chooser (random:SEED+i, pct:SEED+i,
or hypothesis drawing every decision). It stops at the first failure, shrinks
it towards QEMU's own FIFO order (hypothesis shrinks its draws; random and
PCT runs are delta-debugged), saves the trace and prints how to replay it.
Exit 1 when a failure was found, 0 when every run passed.""",
    "minimize": """\
examples:
  replay minimize bug.evr -o bug.min.evr

Delta debugging (ddmin) over the trace's non-default decisions and faults:
keeps the smallest set that still fails the same way. Exit 1 (the trace
still holds a failure), 2 if the trace does not end in a failure.""",
    "check-determinism": """\
examples:
  replay check-determinism examples.minimachine:scenario --runs 5 --seed 0
  replay check-determinism my.py:boot --runs 3 --chooser random:1 --keep out/

Run i records in its own process with PYTHONHASHSEED=i, then dumps its trace
in another such process. The runs agree when the traces are the same bytes,
the steps (callback names included) are the same, and every trace replays.
Otherwise the first divergent step of the first pair that differs is shown.""",
}


def _command(
    sub: Any, name: str, handler: Callable[[argparse.Namespace], int], help_text: str
) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        name, help=help_text, description=help_text, epilog=_EPILOGS[name],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(handler=handler)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="replay",
        description="Record, replay and inspect evreplay traces.",
        epilog="Run 'replay COMMAND --help' for a command's options and examples.\n"
               "Exit codes: 0 ok, 1 a failure or divergence found, 2 usage error or bad input.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = _command(sub, "record", cmd_record, "run a scenario and record its trace")
    p.add_argument("scenario", metavar="SCENARIO",
                   help="module:function or path/to/file.py:function")
    p.add_argument("-o", "--output", metavar="FILE", help="where to write the trace")
    _add_run_options(p)

    p = _command(sub, "play", cmd_play, "replay a trace and check it is bit-exact")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--until-step", type=_int_in(0, None), metavar="N",
                   help="stop after step N")

    p = _command(sub, "dump", cmd_dump, "print a trace's steps and records")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--kinds", action="append", metavar="K,K...",
                   help="only these step or record kinds")
    p.add_argument("--from", dest="from_step", type=_int_in(0, None), metavar="N",
                   help="from step N")
    p.add_argument("--to", dest="to_step", type=_int_in(0, None), metavar="N",
                   help="up to step N (the replay stops there)")
    p.add_argument("--json", action="store_true", help="JSON Lines: one object per line")
    p.add_argument("--records-only", action="store_true",
                   help="do not replay: the trace's records only")

    p = _command(sub, "diff", cmd_diff, "show where two traces' runs part")
    p.add_argument("a", metavar="A")
    p.add_argument("b", metavar="B")
    p.add_argument("--context", type=_int_in(0, 1000), default=5, metavar="N",
                   help="steps of context on each side (default 5)")

    p = _command(sub, "stats", cmd_stats, "counts, sizes and durations of a trace")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.add_argument("--records-only", action="store_true", help="do not replay")

    p = _command(sub, "export", cmd_export, "export a trace's run for a timeline viewer")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--format", choices=["perfetto"], default="perfetto",
                   help="perfetto: Chrome trace-event JSON (ui.perfetto.dev, chrome://tracing)")
    p.add_argument("-o", "--output", metavar="OUT",
                   help="output file, '-' for stdout (default: FILE with .perfetto.json)")
    p.add_argument("--timeline", choices=["virtual", "steps"], default="virtual",
                   help="time axis: virtual time (default) or step numbers")

    p = _command(sub, "fuzz", cmd_fuzz, "explore a scenario's schedules until one fails")
    p.add_argument("scenario", metavar="SCENARIO")
    p.add_argument("--runs", type=_int_in(1, None), default=1000, metavar="N",
                   help="how many runs at most (default 1000)")
    p.add_argument("--chooser", choices=["random", "pct", "hypothesis"], default="random",
                   help="how decisions are explored (default random)")
    p.add_argument("--workers", type=_int_in(1, 256), default=1, metavar="W",
                   help="processes running random/pct runs in parallel (default 1)")
    p.add_argument("-o", "--output", metavar="FILE", help="where to save the failing trace")
    p.add_argument("--seed", type=_int_in(_INT64_MIN, _UINT64_MAX), default=0,
                   help="the simulation's seed, and the first chooser seed (default 0)")
    p.add_argument("--param", type=parse_param, action="append", default=[],
                   metavar="KEY=VALUE", help="a scenario parameter (repeatable)")
    p.add_argument("--until-ns", type=parse_duration_ns, metavar="T",
                   help="stop each run at virtual time T")
    p.add_argument("--max-steps", type=_int_in(0, None), default=100_000, metavar="N",
                   help="stop each run after N steps (default 100000)")
    p.add_argument("--faults", action="append", default=[], metavar="KIND[,KIND...]",
                   help="faults the runs may inject (see record --help)")

    p = _command(sub, "minimize", cmd_minimize, "shrink a failing trace to its essential decisions")
    p.add_argument("file", metavar="FILE", type=_existing_file)
    p.add_argument("-o", "--output", metavar="OUT", required=True,
                   help="where to write the minimized trace")

    p = _command(sub, "verify", cmd_verify, "replay every trace under a directory")
    p.add_argument("dir", metavar="DIR")

    _command(sub, "scenarios", cmd_scenarios, "list the bundled scenarios")

    p = _command(sub, "check-determinism", cmd_check_determinism,
                 "record a scenario in several processes and compare the runs")
    p.add_argument("scenario", metavar="SCENARIO")
    p.add_argument("--runs", type=_int_in(2, 1000), default=3, metavar="N",
                   help="how many runs (default 3)")
    p.add_argument("--jobs", type=_int_in(1, 256), metavar="J",
                   help="runs at a time (default: one per CPU)")
    p.add_argument("--keep", metavar="DIR",
                   help="keep the traces and dumps here (default: a temporary directory, "
                        "kept only when the check fails)")
    _add_run_options(p)
    return parser


def _error_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _error(message: str) -> None:
    print(f"replay: error: {message}", file=sys.stderr)


def _silence_stdout() -> None:
    """After a broken pipe (``replay dump x | head``): no more complaints at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line on ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        # Scenarios are named module:function, found from the working directory
        # as `python -m` would, also when run through the console script.
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        handler: Callable[[argparse.Namespace], int] = args.handler
        return handler(args)
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except UsageError as exc:
        _error(str(exc))
    except ReplayDivergence as exc:
        print(exc)
        return EXIT_FOUND
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_OK
    except (TraceFormatError, ScenarioError, ReplayError, OSError) as exc:
        _error(_error_line(exc))
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    return EXIT_USAGE

