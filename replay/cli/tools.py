"""The commands over trace files: dump, diff, stats, export, verify, and scenarios."""

from __future__ import annotations

import argparse
import inspect
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from ..errors import ReplayDivergence
from ..scenario import load_scenario, takes_simulation
from ..tools.diff import DiffResult, RecordDifference, StepDifference, diff
from ..tools.dump import dump
from ..tools.events import RecordStream, expand_kinds, format_ns, format_step
from ..tools.stats import TraceStats, stats
from ..tools.verify import Outcome, find_traces, verify_trace
from .options import (
    BUNDLED_SCENARIOS,
    EXIT_DIVERGED,
    EXIT_FOUND,
    EXIT_OK,
    existing_file,
    fail,
    writable_output,
)

# -- dump --------------------------------------------------------------------------------


def cmd_dump(args: argparse.Namespace) -> int:
    path = existing_file(args.file)
    kinds = None
    if args.kinds:
        names = [name for group in args.kinds for name in group.split(",")]
        try:
            expand_kinds(names)
        except ValueError as exc:
            fail(f"--kinds: {exc}")
        kinds = names
    if args.from_step is not None and args.to_step is not None and args.from_step > args.to_step:
        fail(f"--from {args.from_step} is after --to {args.to_step}")
    from .progress import StepMeter, trace_steps

    meter = StepMeter(
        f"dumping {path}", None if args.records_only else trace_steps(path, args.to_step)
    )
    try:
        dump(path, sys.stdout, kinds=kinds, from_step=args.from_step, to_step=args.to_step,
             as_json=args.json, replay=not args.records_only, progress=meter)
    except ReplayDivergence as exc:
        meter.close()
        sys.stdout.flush()
        print(f"{path}: {exc}", file=sys.stderr)
        return EXIT_DIVERGED
    finally:
        meter.close()
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
    a, b = existing_file(args.a), existing_file(args.b)
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
        print(f"steps by kind:    {_counts(s.steps_by_kind)}")
        print(f"steps by thread:  {_counts(s.steps_by_thread)}")
    print(f"records:          {s.records} ({_counts(s.records_by_kind)})")
    print(f"events:           {s.events}, of which {s.decisions} decisions")
    print(f"bytes per step:   {_ratio(s.bytes_per_step)}")
    per = s.choices_bytes / s.decisions if s.decisions else None
    print(f"bytes/decision:   {_ratio(s.bytes_per_decision)} "
          f"(packed in CHOICES: {_ratio(per)})")


def cmd_stats(args: argparse.Namespace) -> int:
    import json

    path = existing_file(args.file)
    s = stats(path, replay=not args.records_only)
    if args.json:
        print(json.dumps(s.to_json(), separators=(",", ":")))
    else:
        _print_stats(s)
    if s.divergence is not None:
        print(f"{path}: {s.divergence}", file=sys.stderr)
        return EXIT_DIVERGED
    return EXIT_OK


# -- export ------------------------------------------------------------------------------


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def cmd_export(args: argparse.Namespace) -> int:
    from ..tools.perfetto import export_perfetto

    path = existing_file(args.file)
    with RecordStream(path):  # a bad trace fails here, before an output file exists
        pass
    from .progress import StepMeter, trace_steps

    meter = StepMeter(f"exporting {path}", trace_steps(path))
    if args.output == "-":
        try:
            export_perfetto(path, sys.stdout, timeline=args.timeline, progress=meter)
        except ReplayDivergence as exc:
            meter.close()
            print(f"{path}: {exc}", file=sys.stderr)
            return EXIT_DIVERGED
        finally:
            meter.close()
        return EXIT_OK
    out = writable_output(args.output, path.with_suffix(".perfetto.json"))
    # Written beside the target, then renamed: a reader never sees half a file.
    # mkstemp makes it private (0600); a finished export gets the usual mode.
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            summary = export_perfetto(path, f, timeline=args.timeline, progress=meter)
            os.fchmod(f.fileno(), 0o666 & ~_umask())
        os.replace(tmp, out)
    except ReplayDivergence as exc:
        meter.close()
        print(f"{path}: {exc}", file=sys.stderr)
        return EXIT_DIVERGED
    finally:
        meter.close()
        if os.path.exists(tmp):
            os.unlink(tmp)
    print(
        f"wrote {out}: {summary.events} events ({summary.slices} slices, {summary.instants} "
        f"instants, {summary.counters} counters) on {len(summary.threads)} thread tracks "
        f"({', '.join(summary.threads)}); open it in https://ui.perfetto.dev"
    )
    return EXIT_OK


# -- verify ------------------------------------------------------------------------------


class Progress:
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
        fail(f"{args.dir}: no such directory")
    traces = find_traces(root)
    from .progress import Meter

    meter = Meter(f"verifying {root}", len(traces), "trace")
    tally = dict.fromkeys(Outcome, 0)
    try:
        for i, path in enumerate(traces, 1):
            result = verify_trace(path)
            tally[result.outcome] += 1
            message = result.message.removeprefix(f"{path}: ")
            meter.write(f"{result.outcome.value:<8} {path}: {message}")
            meter.to(i)
    finally:
        meter.close()
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
        first = 1 if takes_simulation(fn) else 0
        params = [p for p in list(inspect.signature(fn).parameters.values())[first:]
                  if p.default is not inspect.Parameter.empty]
        print(f"{spec}\n    {_first_line(doc)}")
        if params:
            print("    params: " + ", ".join(f"{p.name}={p.default!r}" for p in params))
    return EXIT_OK
