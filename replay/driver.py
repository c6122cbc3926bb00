"""The one record/play driver: every run that records or plays a trace goes through here.

``replay.record`` and ``replay.play`` (simulation mode), ``replay.host`` (host
mode), the pytest plugin's recorded ``sim`` fixture and the command line all
build and run their runs with these functions; each says only what differs
(which session, which simulation, which blocker). The rules they keep:

* **The header is the run's whole description.** Record writes the run's
  limits and checkpoint interval as ``run.*`` extensions (:func:`run_options`);
  play reads them back (:func:`run_limits`); both build the simulation from
  the header (:func:`simulation_options`) and call the scenario with the
  header's parameters, the normalized values the trace stores, so a play is
  the recorded run by construction.
* **One door.** A session is plugged into its simulation once, through
  ``Session.attach`` (``Simulation.plug``), before the first step, and logs
  or checks the INIT checkpoint at once.
* **A finding is not an error.** A scenario that raises is a found bug: the
  recording ends with it and the trace stays whole. That includes
  ``SystemExit`` and ``KeyboardInterrupt`` raised by the program; a real
  Ctrl-C is not a finding, and propagates with the trace cut at its whole
  chunks (``replay/interrupt.py``). A :class:`ReplayError` is the replay
  layer's own and propagates.
* **Nothing is left half done.** The simulation is closed whatever happens;
  a recording that fails is aborted (never left looking complete); a play
  that diverged raises its divergence and says nothing else.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Generic, TypeVar

from evloop import Blocker, Simulation
from evloop import __version__ as evloop_version
from evloop.machine.watchdog import DEFAULT_TIMEOUT_S as DEFAULT_WATCHDOG_S

from .declared import check_parameters, declare_scenario, load_trace_scenario
from .errors import ReplayDivergence, ReplayError
from .failures import describe_exception
from .interrupt import InterruptWatch, run_failure
from .scenario import SOURCE_KEY, Scenario, source_hash, start_scenario
from .session import Player, Recorder
from .stackroom import run_stack
from .trace.choices import batch_last_step
from .trace.clockpoints import batch_last_clock_step
from .trace.format import EventKind
from .trace.header import TraceHeader
from .trace.reader import TraceReader
from .trace.writer import TraceWriter

__all__ = [
    "DEFAULT_CHECKPOINT_INTERVAL",
    "DEFAULT_WATCHDOG_S",
    "RECENT_STEPS",
    "PlayResult",
    "RecordResult",
    "Recording",
    "begin_recording",
    "check_header",
    "finish_recording",
    "header_option",
    "header_watchdog",
    "new_header",
    "play_run",
    "run_limits",
    "run_options",
    "simulation_options",
]

#: How many recent steps a divergence or failure report shows.
RECENT_STEPS = 32
#: Steps between two periodic checkpoints, unless a recording says otherwise.
DEFAULT_CHECKPOINT_INTERVAL = 1024

#: Plugs a blocker over the simulation's scheduler (host mode's monitor).
BlockerPlug = Callable[[Blocker], Blocker]

R = TypeVar("R", bound=Recorder)
P = TypeVar("P", bound=Player)
S = TypeVar("S", bound=Simulation)


@dataclass(frozen=True, slots=True)
class RecordResult:
    path: str | None
    steps: int
    time_ns: int
    #: How the run ended: a StopReason value, or "failure".
    reason: str
    #: The failure that ended the run (``"exception: Type: message"``), if any.
    failure: str | None
    records: int
    bytes: int
    decisions: int
    digest: int
    exception: BaseException | None = None


@dataclass(frozen=True, slots=True)
class PlayResult:
    path: str | None
    steps: int
    time_ns: int
    reason: str
    failure: str | None
    #: The re-recording equals the trace byte for byte (None when not comparable:
    #: a truncated trace, or a play stopped early with ``until_step``).
    bit_exact: bool | None
    complete: bool
    truncated_at: int | None
    events: int
    digest: int


# -- the header: what a run is ---------------------------------------------------------


def run_options(
    until_ns: int | None,
    max_steps: int | None,
    checkpoint_interval: int,
    sanitize: bool | str = False,
    watchdog: float | None = DEFAULT_WATCHDOG_S,
    preemption: str = "off",
    async_events: str = "off",
) -> dict[str, Any]:
    """The ``run.*`` header extensions of a recording: limits, interval, sanitizer, watchdog,
    preemption."""
    options: dict[str, Any] = {
        "run.until_ns": until_ns,
        "run.max_steps": max_steps,
        "run.checkpoint_interval": checkpoint_interval,
    }
    if sanitize:  # only when set: traces without it stay byte-identical
        options["run.sanitize"] = sanitize
    if watchdog != DEFAULT_WATCHDOG_S:  # likewise: seconds, 0 for off
        options["run.watchdog"] = 0.0 if watchdog is None else float(watchdog)
    if preemption == "fine":  # only when on (format 3): traces without it stay as they were
        options["run.preemption"] = "fine"
    if async_events == "queue":  # likewise, only when on
        options["run.async_events"] = "queue"
    return options


def new_header(
    scenario: str,
    *,
    seed: int = 0,
    chooser: str = "fifo",
    params: Mapping[str, Any] | None = None,
    faults: Sequence[str] = (),
    until_ns: int | None = None,
    max_steps: int | None = None,
    checkpoint_interval: int = DEFAULT_CHECKPOINT_INTERVAL,
    sanitize: bool | str = False,
    watchdog: float | None = DEFAULT_WATCHDOG_S,
    extensions: Mapping[str, Any] | None = None,
    source: str | None = None,
    preemption: str = "off",
    async_events: str = "off",
) -> TraceHeader:
    """The header of a new recording of ``scenario`` (a ``module:function`` name).

    ``source`` is :func:`~replay.scenario.source_hash` of the scenario, kept
    so that a divergence can say the scenario changed since the recording.
    """
    if source is not None:
        extensions = {**(extensions or {}), SOURCE_KEY: source}
    return TraceHeader(
        scenario=scenario,
        seed=seed,
        chooser=chooser,
        parameters=dict(params or {}),
        faults=tuple(faults),
        package_version=evloop_version,
        extensions={
            **run_options(
                until_ns, max_steps, checkpoint_interval, sanitize, watchdog, preemption,
                async_events,
            ),
            **(extensions or {}),
        },
    )


def header_option(header: TraceHeader, key: str, default: Any) -> Any:
    """Header extension ``key``; ``default`` when absent or nil."""
    value = header.extensions.get(key, default)
    return default if value is None else value


def header_watchdog(header: TraceHeader) -> float | None:
    """The wall-clock watchdog a run of this header has: seconds, or None (off)."""
    value = header.extensions.get("run.watchdog", DEFAULT_WATCHDOG_S)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ReplayError(f"header run.watchdog: seconds (0 for off), not {value!r}")
    return None if value == 0 else float(value)


def run_limits(
    header: TraceHeader, until_step: int | None = None
) -> tuple[int | None, int | None, int]:
    """``until_ns``, ``max_steps`` and the checkpoint interval of a run, from its header.

    ``until_step`` (play only) stops the run earlier than the recording did.
    """
    until_ns = header_option(header, "run.until_ns", None)
    max_steps = header_option(header, "run.max_steps", None)
    interval = int(header_option(header, "run.checkpoint_interval", DEFAULT_CHECKPOINT_INTERVAL))
    if until_step is not None:
        max_steps = until_step if max_steps is None else min(max_steps, until_step)
    return until_ns, max_steps, interval


#: The modes a trace may declare (``extensions["mode"]``): absent is a simulation.
KNOWN_MODES = ("host",)


def check_header(header: TraceHeader, path: str | Path) -> None:
    """Refuse header fields that shape the run but have the wrong type or value, in one line.

    A trace is untrusted input: ``run.*`` limits, the sanitizer, the faults and
    the mode are checked here, before anything is built, so that a bad value
    is a clear error (naming the field, what it must be and what it is), not
    a traceback deep in the simulation, and an unknown ``mode`` is refused
    rather than played as a simulation (docs/trace-format.md, section 3).
    """

    def bad(key: str, must: str) -> ReplayError:
        return ReplayError(
            f"{path}: header field {key} must be {must}, not {header.extensions.get(key)!r}"
        )

    ext = header.extensions
    for key, low in (("run.until_ns", 0), ("run.max_steps", 0)):
        value = ext.get(key)
        if value is not None and (type(value) is not int or value < low):
            raise bad(key, f"nil or an integer >= {low}")
    interval = ext.get("run.checkpoint_interval")
    if interval is not None and (type(interval) is not int or not 1 <= interval < 1 << 63):
        raise bad("run.checkpoint_interval", "an integer in [1, 2**63)")
    if ext.get("run.sanitize") not in (None, False, True, "strict"):
        raise bad("run.sanitize", "true or \"strict\" (absent when off)")
    if ext.get("run.preemption") not in (None, "fine"):
        raise bad("run.preemption", "\"fine\" (absent when off)")
    if ext.get("run.async_events") not in (None, "queue"):
        raise bad("run.async_events", "\"queue\" (absent when off)")
    if ext.get("run.async_events") is not None and ext.get("run.preemption") is not None:
        raise bad("run.async_events", "absent when run.preemption is on")
    mode = ext.get("mode")
    if mode is not None and mode not in KNOWN_MODES:
        raise ReplayError(
            f"{path}: header field mode is {mode!r}, which this version does not know "
            f"(known: {', '.join(KNOWN_MODES)}; absent for a simulation); refusing to play it"
        )
    from evloop.machine.faults import parse_faults

    try:
        parse_faults(header.faults)
    except (ValueError, TypeError) as exc:
        raise ReplayError(f"{path}: header field faults: {exc}") from None


def trace_end_step(path: str | Path) -> int:
    """The step of the last event a trace holds (its FINAL checkpoint when complete).

    Play runs no further than this: a trace bounds its own replay, whatever
    its header's limits say, and a cut trace stops at its last whole chunk.
    """
    last = 0
    with TraceReader(path, strict=False) as reader:
        for record in reader:
            kind = record[0]
            if kind == EventKind.CHOICES:
                if record[2]:
                    last = batch_last_step(record[1], record[2])
            elif kind == EventKind.CLOCK_CHECKPOINTS:
                if record[2]:
                    last = batch_last_clock_step(record[1], record[2])
            elif kind not in (EventKind.MUTEX, EventKind.END):
                last = max(last, int(record[1]))
    return last


def simulation_options(header: TraceHeader, log: object = False) -> dict[str, Any]:
    """What every simulation of this header is built with, in both modes and directions.

    ``log`` is ``Simulation``'s: False, True, or a callback for every step.
    """
    _, _, interval = run_limits(header)
    return {
        "checkpoint_interval": interval,
        "recent": RECENT_STEPS,
        "log": False if log is None else log,
    }


def source_change(fn: Scenario, header: TraceHeader) -> str | None:
    """What a divergence adds when the scenario's source changed since the recording.

    None when the trace holds no source hash (recorded before there was one),
    or the source is unchanged or unreadable now.
    """
    recorded = header.extensions.get(SOURCE_KEY)
    if not isinstance(recorded, str):
        return None
    now = source_hash(fn, header.parameters)
    if now is None or now == recorded:
        return None
    return (
        f"the scenario {header.scenario} changed since this trace was recorded (source "
        f"{recorded}, now {now}): the changed code need not follow the trace; "
        "'replay rerun' says whether its failure still happens"
    )


def scenario_of(header: TraceHeader, path: str | Path) -> Scenario:
    """The trace's scenario function, if declared, with the trace's parameters checked.

    A ScenarioError names the trace; an undeclared scenario is refused before
    anything is imported (``replay/declared.py``).
    """
    fn = load_trace_scenario(header.scenario, path)
    check_parameters(fn, header.scenario, header.parameters, path)
    return fn


# -- recording -------------------------------------------------------------------------


@dataclass(slots=True)
class Recording(Generic[R, S]):
    """A recording under way: the trace being written, its recorder, its simulation."""

    output: str | Path | BinaryIO
    writer: TraceWriter
    recorder: R
    sim: S


def begin_recording(
    output: str | Path | BinaryIO,
    header: TraceHeader,
    build: Callable[[TraceWriter], tuple[R, S, BlockerPlug | None]],
) -> Recording[R, S]:
    """Open the trace, build the recorder and simulation, plug them together, log INIT.

    ``build`` makes the recorder (over the writer it is given), the simulation
    and, in host mode, the blocker to plug over the scheduler. Whatever fails
    here aborts the trace and closes the simulation.
    """
    # Named by this process's user: the traces this process records may name it.
    declare_scenario(header.scenario)
    writer = TraceWriter(output, header)
    sim: S | None = None
    try:
        recorder, sim, blocker = build(writer)
        recorder.attach(sim, blocker)
        recorder.start()
    except BaseException:
        writer.abort()
        if sim is not None:
            sim.close()
        raise
    return Recording(output, writer, recorder, sim)


def finish_recording(
    recording: Recording[R, S],
    fn: Scenario,
    started: Callable[[], object] | None = None,
) -> RecordResult:
    """Run the scenario and the simulation to the header's limits; log the end; close.

    ``started`` runs first (host mode starts its clock there).
    """
    sim, recorder, writer = recording.sim, recording.recorder, recording.writer
    until_ns, max_steps, _ = run_limits(writer.header)
    failure: BaseException | None = None
    reason = "failure"
    watch = InterruptWatch()
    try:
        with watch:
            if started is not None:
                started()
            try:
                # The values the header stores (lists as tuples, keys sorted), so
                # that record and play hand the scenario the very same parameters.
                with run_stack():
                    start_scenario(fn, sim, writer.header.parameters)
                    reason = sim.run(until_ns=until_ns, max_steps=max_steps).reason.value
            except ReplayError:
                raise
            except BaseException as exc:
                # The scenario failed (sys.exit and a raised KeyboardInterrupt
                # included): that is a finding, keep the trace. A real Ctrl-C
                # is not (replay/interrupt.py): the trace is cut where it is.
                if not run_failure(exc, watch):
                    raise
                failure = exc
            recorder.finish(failure)
    except BaseException:
        writer.abort()
        raise
    finally:
        sim.close()
    output = recording.output
    return RecordResult(
        path=str(output) if isinstance(output, str | Path) else None,
        steps=sim.steps,
        time_ns=sim.now_ns,
        reason=reason,
        failure=None if failure is None else describe_exception(failure),
        records=writer.records_written,
        bytes=writer.bytes_written,
        decisions=recorder.decisions,
        digest=sim.digest,
        exception=failure,
    )


# -- playing ---------------------------------------------------------------------------


class _HashSink:
    """A write-only binary sink that keeps only a hash and a length."""

    def __init__(self) -> None:
        self.hash = hashlib.sha256()
        self.length = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.length += len(data)
        return len(data)

    def flush(self) -> None:
        pass


def _file_digest(path: str | Path) -> tuple[bytes, int]:
    h = hashlib.sha256()
    length = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
            length += len(block)
    return h.digest(), length


def play_run(
    path: str | Path,
    reader: TraceReader,
    build: Callable[[TraceWriter], tuple[P, S, BlockerPlug | None]],
    *,
    until_step: int | None = None,
    started: Callable[[P, S], object] | None = None,
) -> PlayResult:
    """Replay the trace ``reader`` holds (either mode) to its end, check it, say what it found.

    ``build`` makes the player (re-recording into the writer it is given, a
    hash-only sink), the simulation and, in host mode, the blocker;
    ``started`` runs once the player is plugged in and has checked INIT. A
    divergence says when the scenario's source changed since the recording.
    """
    try:
        return _play_run(path, reader, build, until_step=until_step, started=started)
    except ReplayDivergence as divergence:
        divergence.scenario_changed = source_change(scenario_of(reader.header, path), reader.header)
        raise


def _play_run(
    path: str | Path,
    reader: TraceReader,
    build: Callable[[TraceWriter], tuple[P, S, BlockerPlug | None]],
    *,
    until_step: int | None,
    started: Callable[[P, S], object] | None,
) -> PlayResult:
    header = reader.header
    check_header(header, path)
    fn = scenario_of(header, path)
    until_ns, max_steps, _ = run_limits(header, until_step)
    # Bounded by the trace itself: one step past its last event at most, so a
    # header whose limits were taken out, or a cut trace of a program that
    # never ends, cannot make play run on unbounded.
    bound = trace_end_step(path) + 1
    if until_step is None or until_step > bound:
        max_steps = bound if max_steps is None else min(max_steps, bound)
    sink = _HashSink()
    player, sim, blocker = build(TraceWriter(sink, header))  # type: ignore[arg-type]
    try:
        player.attach(sim, blocker)
        player.start()
        if started is not None:
            started(player, sim)
        failure: BaseException | None = None
        reason = "failure"
        watch = InterruptWatch()
        with watch:
            try:
                exact = until_step is not None and max_steps == until_step
                with run_stack():
                    start_scenario(fn, sim, header.parameters)
                    result = sim.run(until_ns=until_ns, max_steps=max_steps, exact_steps=exact)
                reason = result.reason.value
            except ReplayError:
                raise
            except BaseException as exc:  # as finish_recording decides
                if not run_failure(exc, watch):
                    raise
                failure = exc
        if player.divergence is not None:
            raise player.divergence
        stopped_early = until_step is not None and reason == "max_steps"
        if not stopped_early and not player.exhausted:
            player.finish(failure)
    finally:
        sim.close()
    bit_exact: bool | None = None
    if reader.complete and not stopped_early:
        original, length = _file_digest(path)
        bit_exact = original == sink.hash.digest() and length == sink.length
    return PlayResult(
        path=str(path),
        steps=sim.steps,
        time_ns=sim.now_ns,
        reason=reason,
        failure=None if failure is None else describe_exception(failure),
        bit_exact=bit_exact,
        complete=reader.complete,
        truncated_at=reader.truncated_at,
        events=player.event_index,
        digest=sim.digest,
    )
