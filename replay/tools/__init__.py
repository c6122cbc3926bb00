"""The trace tools as a library: dump, diff, stats, export, verify, rerun, check-determinism.

The command line (``replay.cli``) is a thin driver over these functions;
tests and other code call them directly. The rules they keep:

* **Stream; never hold a whole trace.** Records come one at a time from a
  :class:`~replay.trace.reader.TraceReader`; steps come one at a time from
  :func:`~replay.play`'s ``on_step``. What a tool needs to hold is bounded:
  a counter per kind and thread, a few steps of context, one pending record.
  ``diff`` spools each run's steps to a temporary file, not to a list.
* **A trace holds decisions; steps are regenerated.** A trace records only
  the answers to nondeterministic questions. Every step (virtual time,
  thread, context, kind, callback name) is what replaying those answers
  regenerates, so the step-level tools (dump, diff, stats, export) replay.
* **Records sit between steps.** A record logged at step ``N`` happened
  after step ``N`` was dispatched and before step ``N + 1``
  (``replay/session/``): :class:`Interleaver` hands each record out just before
  the first step after it. Each decision of a CHOICES batch is one record
  event, numbered as the player numbers events (``ReplayDivergence.event_index``).
* **Nothing raises inside a run.** ``on_step`` runs inside the simulation,
  where an exception would pass for the scenario's own failure. Sinks
  (:class:`SafeSink`) keep the first exception and re-raise it after play returns.
"""


from __future__ import annotations

from .determinism import DeterminismReport, DeterminismRun, check_determinism
from .diff import (
    DiffResult,
    RecordDifference,
    StepDifference,
    diff,
    first_record_difference,
    first_step_difference,
    header_differences,
)
from .dump import dump
from .events import (
    RECORD_KINDS,
    STEP_KINDS,
    Interleaver,
    RecordEvent,
    RecordStream,
    SafeSink,
    expand_kinds,
    format_ns,
    format_step,
    header_to_json,
    jsonable,
    read_steps,
    step_from_json,
    step_to_json,
)
from .export import export
from .rerun import RerunResult, TraceScheduleChooser, rerun
from .stats import TraceStats, count_chunks, stats
from .verify import Outcome, VerifyResult, find_traces, verify_trace

__all__ = [
    "RECORD_KINDS",
    "STEP_KINDS",
    "DeterminismReport",
    "DeterminismRun",
    "DiffResult",
    "Interleaver",
    "Outcome",
    "RecordDifference",
    "RecordEvent",
    "RecordStream",
    "RerunResult",
    "SafeSink",
    "StepDifference",
    "TraceScheduleChooser",
    "TraceStats",
    "VerifyResult",
    "check_determinism",
    "count_chunks",
    "diff",
    "dump",
    "export",
    "expand_kinds",
    "find_traces",
    "first_record_difference",
    "first_step_difference",
    "format_ns",
    "format_step",
    "header_differences",
    "header_to_json",
    "jsonable",
    "read_steps",
    "rerun",
    "stats",
    "step_from_json",
    "step_to_json",
    "verify_trace",
]
