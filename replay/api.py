"""``record`` and ``play``: a scenario to a trace file, and a trace file back to a run.

``record`` runs a scenario under a :class:`Recorder` and writes the trace.
A scenario that fails (raises, or a callback or thread of control raises) is
a *found bug*, not an error of the recorder: the trace is complete, ends with
the failure, and ``RecordResult.failure`` describes it.

``play`` needs nothing but the trace: the header names the scenario, its
parameters, the seed, the chooser and the run limits. It replays the run,
checks every event against the trace (raising :class:`ReplayDivergence` at
the first difference), re-records it on the way, and compares the re-recorded
bytes with the file's: ``PlayResult.bit_exact``. A trace cut short by a crash
replays up to its last whole chunk; ``PlayResult.truncated_at`` says where it
ends.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from evloop import Chooser, DispatchEvent, Simulation
from evloop.machine.asyncevents import ASYNC_EVENT_MODES
from evloop.machine.simulation import PREEMPTION_MODES

from .driver import (
    DEFAULT_CHECKPOINT_INTERVAL,
    DEFAULT_WATCHDOG_S,
    RECENT_STEPS,
    BlockerPlug,
    PlayResult,
    RecordResult,
    begin_recording,
    check_header,
    finish_recording,
    header_option,
    header_watchdog,
    new_header,
    play_run,
    simulation_options,
)
from .errors import ReplayDivergence, ReplayError
from .host.channels import is_host_trace
from .host.mode import play_host_trace
from .scenario import (
    RECORDED_ONLY,
    Scenario,
    ScenarioError,
    chooser_from_spec,
    load_scenario,
    scenario_name,
    source_hash,
)
from .session import Player, Recorder
from .trace.header import TraceHeader
from .trace.reader import TraceReader
from .trace.writer import TraceWriter

__all__ = ["PlayResult", "RecordResult", "play", "record"]


def record(
    scenario: str | Scenario,
    output: str | Path | BinaryIO,
    *,
    seed: int = 0,
    params: Mapping[str, Any] | None = None,
    chooser: str | Chooser = "fifo",
    faults: Sequence[str] = (),
    until_ns: int | None = None,
    max_steps: int | None = None,
    checkpoint_interval: int = DEFAULT_CHECKPOINT_INTERVAL,
    sanitize: bool | str = True,
    watchdog: float | None = DEFAULT_WATCHDOG_S,
    progress: Callable[[int], object] | None = None,
    preemption: str = "off",
    async_events: str = "off",
) -> RecordResult:
    """Run ``scenario`` under a recorder and write its trace to ``output``.

    ``sanitize`` routes (True, the default) or refuses (``"strict"``) real
    nondeterminism (``time.time``, ``random.*``, ``os.urandom``, ... and the
    references ``from time import time`` bound) while the scenario runs, so a
    scenario that reads them still replays; False leaves them alone. It is
    stored in the header, so play runs under the same sanitizer (a trace
    without it, from before it was the default, plays without one).
    ``watchdog`` is the wall-clock timeout (seconds) of a thread of control
    that never gives the turn back, or None for off; a value other than the
    default is stored in the header, so play runs with the same one.

    ``chooser`` is a spec (``fifo``, ``random:SEED``, ``pct:SEED[:DEPTH[:HORIZON]]``) or
    a :class:`~evloop.Chooser` with a ``spec`` attribute naming it for the
    header (its decisions are in the trace, so play never rebuilds it).
    ``progress`` is told the step count at every periodic checkpoint.
    ``preemption="fine"`` runs the simulation with fine preemption
    (``Simulation(preemption="fine")``); the header says so (``run.preemption``),
    and play runs it the same way. ``async_events="queue"`` queues the bottom
    halves other threads schedule and releases them at each main-loop iteration
    boundary, logging each (``Simulation(async_events="queue")``, QEMU's
    ``replay_bh_schedule_event``); the header says so (``run.async_events``).
    """
    if preemption not in PREEMPTION_MODES:
        raise ValueError(f"preemption must be 'off' or 'fine', not {preemption!r}")
    if async_events not in ASYNC_EVENT_MODES:
        raise ValueError(f"async_events must be 'off' or 'queue', not {async_events!r}")
    if async_events == "queue" and preemption == "fine":
        raise ValueError("async_events='queue' does not combine with preemption='fine'")
    name = scenario_name(scenario)
    fn = load_scenario(name) if isinstance(scenario, str) else scenario
    if isinstance(chooser, str):
        inner = chooser_from_spec(chooser)
    else:
        inner = chooser
        spec = getattr(chooser, "spec", None)
        if not isinstance(spec, str) or not spec:
            raise ScenarioError(
                f"chooser {chooser!r} needs a 'spec' attribute naming it in the trace header"
            )
        chooser = spec
    header = new_header(
        name, seed=seed, chooser=chooser, params=params, faults=faults, until_ns=until_ns,
        max_steps=max_steps, checkpoint_interval=checkpoint_interval, sanitize=sanitize,
        watchdog=watchdog, source=source_hash(fn, params or {}), preemption=preemption,
        async_events=async_events,
    )

    def build(writer: TraceWriter) -> tuple[Recorder, Simulation, BlockerPlug | None]:
        recorder = Recorder(writer)
        recorder.progress = progress
        return recorder, simulation(header, inner), None

    return finish_recording(begin_recording(output, header, build), fn)


def simulation(
    header: TraceHeader,
    chooser: Chooser | None = None,
    log: bool | Callable[[DispatchEvent], object] | None = False,
) -> Simulation:
    """The simulation a simulation-mode trace runs on, built from its header."""
    return Simulation(
        header.seed,
        chooser=chooser,
        faults=header.faults,
        sanitize=header_option(header, "run.sanitize", False),
        watchdog=header_watchdog(header),
        preemption="fine" if header.extensions.get("run.preemption") == "fine" else "off",
        async_events="queue" if header.extensions.get("run.async_events") == "queue" else "off",
        **simulation_options(header, log),
    )


def play(
    path: str | Path,
    *,
    until_step: int | None = None,
    on_step: Callable[[DispatchEvent], object] | None = None,
    progress: Callable[[int], object] | None = None,
) -> PlayResult:
    """Replay the trace at ``path``; raise :class:`ReplayDivergence` at the first difference.

    ``on_step`` is called with every step as a :class:`~evloop.DispatchEvent`
    (virtual time, thread, context, kind, callback name): what the trace's
    decisions regenerate, for dumps and timelines. This is the one place that
    opens a trace to play it and decides its mode (simulation or host). ``progress``
    is told the step count at every periodic checkpoint (simulation mode).
    """
    try:
        return _play(path, until_step=until_step, on_step=on_step, progress=progress)
    except ReplayDivergence as divergence:
        if divergence.noticed_step is None or until_step is not None:
            raise
        raise _at_departure(path, divergence) from None


def _at_departure(path: str | Path, divergence: ReplayDivergence) -> ReplayDivergence:
    """The divergence with the steps before its departure, from a replay that stops there."""
    recent: deque[DispatchEvent] = deque(maxlen=RECENT_STEPS)
    try:
        _play(path, until_step=divergence.step, on_step=recent.append, progress=None)
    except ReplayError:
        return divergence
    last = recent[-1] if recent else None
    departed = ReplayDivergence(
        step=divergence.step,
        event_index=divergence.event_index,
        expected=divergence.expected,
        actual=divergence.actual,
        time_ns=divergence.time_ns if last is None else last.time_ns,
        thread=divergence.thread if last is None else last.thread,
        recent=tuple(recent),
        noticed_step=divergence.noticed_step,
    )
    departed.scenario_changed = divergence.scenario_changed
    return departed


def _play(
    path: str | Path,
    *,
    until_step: int | None,
    on_step: Callable[[DispatchEvent], object] | None,
    progress: Callable[[int], object] | None,
) -> PlayResult:
    with TraceReader(path, strict=False) as reader:
        check_header(reader.header, path)  # an unknown mode is refused, not played
        if is_host_trace(reader.header):
            return play_host_trace(reader, path, until_step=until_step, on_step=on_step)
        header = reader.header

        def build(writer: TraceWriter) -> tuple[Player, Simulation, BlockerPlug | None]:
            # The header's chooser, rebuilt, makes every decision again: a trace
            # whose choices are not its chooser's diverges (a bad spec is a bad
            # trace, said now). Recorded-only choosers exist only in their traces.
            derived = None
            if header.chooser not in RECORDED_ONLY:
                derived = chooser_from_spec(header.chooser)
            player = Player(reader, writer, derived)
            player.progress = progress
            return player, simulation(header, log=on_step), None

        return play_run(path, reader, build, until_step=until_step)
