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

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from evloop import Blocker, Chooser, DispatchEvent, Simulation
from evloop import __version__ as evloop_version

from .errors import ReplayError
from .scenario import (
    RECORDED_ONLY,
    Scenario,
    ScenarioError,
    chooser_from_spec,
    load_scenario,
    scenario_name,
)
from .session import Player, Recorder, describe_exception
from .trace.header import TraceHeader
from .trace.reader import TraceReader
from .trace.writer import TraceWriter

__all__ = ["PlayResult", "RecordResult", "play", "record"]

#: How many recent steps a divergence or failure report shows.
RECENT_STEPS = 32


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


def _run_options(
    until_ns: int | None,
    max_steps: int | None,
    checkpoint_interval: int,
    sanitize: bool | str = False,
) -> dict[str, Any]:
    options: dict[str, Any] = {
        "run.until_ns": until_ns,
        "run.max_steps": max_steps,
        "run.checkpoint_interval": checkpoint_interval,
    }
    if sanitize:  # only when set: traces without it stay byte-identical
        options["run.sanitize"] = sanitize
    return options


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
    checkpoint_interval: int = 1024,
    sanitize: bool | str = False,
) -> RecordResult:
    """Run ``scenario`` under a recorder and write its trace to ``output``.

    ``sanitize`` (True or ``"strict"``) routes or refuses real
    nondeterminism (``time.time``, ``random.*``, ...) while the scenario runs;
    it is stored in the header, so play runs under the same sanitizer.

    ``chooser`` is a spec (``fifo``, ``random:SEED``, ``pct:SEED[:DEPTH]``) or
    a :class:`~evloop.Chooser` with a ``spec`` attribute naming it for the
    header (its decisions are in the trace, so play never rebuilds it).
    """
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
    params = dict(params or {})
    header = TraceHeader(
        scenario=name,
        seed=seed,
        chooser=chooser,
        parameters=params,
        faults=tuple(faults),
        package_version=evloop_version,
        extensions=_run_options(until_ns, max_steps, checkpoint_interval, sanitize),
    )
    writer = TraceWriter(output, header)
    sim: Simulation | None = None
    try:
        rec = Recorder(writer)
        sim = Simulation(
            seed,
            chooser=inner,
            checkpoint_interval=checkpoint_interval,
            recent=RECENT_STEPS,
            faults=header.faults,
            sanitize=sanitize,
        )
        rec.attach(sim)
        rec.start()
        failure: Exception | None = None
        reason = "failure"
        try:
            # The values the header stores (lists as tuples, keys sorted), so
            # that record and play hand the scenario the very same parameters.
            fn(sim, **dict(header.parameters))
            reason = sim.run(until_ns=until_ns, max_steps=max_steps).reason.value
        except ReplayError:
            raise
        except Exception as exc:  # the scenario failed: that is a finding, keep the trace
            failure = exc
        rec.finish(failure)
    except BaseException:
        writer.abort()
        raise
    finally:
        if sim is not None:
            sim.close()
    return _record_result(output, sim, writer, rec, reason, failure)


def _record_result(
    output: object,
    sim: Simulation,
    writer: TraceWriter,
    rec: Recorder,
    reason: str,
    failure: Exception | None,
) -> RecordResult:
    """What a finished recording wrote, for simulation and host traces alike."""
    return RecordResult(
        path=None if not isinstance(output, str | Path) else str(output),
        steps=sim.steps,
        time_ns=sim.now_ns,
        reason=reason,
        failure=None if failure is None else describe_exception(failure),
        records=writer.records_written,
        bytes=writer.bytes_written,
        decisions=rec.decisions,
        digest=sim.digest,
        exception=failure,
    )


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


def play(
    path: str | Path,
    *,
    until_step: int | None = None,
    on_step: Callable[[DispatchEvent], object] | None = None,
) -> PlayResult:
    """Replay the trace at ``path``; raise :class:`ReplayDivergence` at the first difference.

    ``on_step`` is called with every step as a :class:`~evloop.DispatchEvent`
    (virtual time, thread, context, kind, callback name): what the trace's
    decisions regenerate, for dumps and timelines.
    """
    reader = TraceReader(path, strict=False)
    try:
        if reader.header.extensions.get("mode") == "host":  # recorded by replay.host
            from .host.mode import play_host

            return play_host(path, until_step=until_step, on_step=on_step)
        return _play(reader, path, until_step, on_step)
    finally:
        reader.close()


def _play_result(
    path: str | Path,
    reader: TraceReader,
    sink: _HashSink,
    sim: Simulation,
    player: Player,
    reason: str,
    failure: BaseException | None,
    *,
    stopped_early: bool,
) -> PlayResult:
    """What a finished play found; ``bit_exact`` compares the re-recording with the file."""
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


def _option(header: TraceHeader, key: str, default: Any) -> Any:
    value = header.extensions.get(key, default)
    return default if value is None else value


def _play(
    reader: TraceReader,
    path: str | Path,
    until_step: int | None,
    on_step: Callable[[DispatchEvent], object] | None,
) -> PlayResult:
    header = reader.header
    fn = _scenario_of(header, path)
    if header.chooser not in RECORDED_ONLY:
        chooser_from_spec(header.chooser)  # a bad header is a bad trace, said now
    until_ns, max_steps, interval = _play_limits(header, until_step)
    sink = _HashSink()
    writer = TraceWriter(sink, header)  # type: ignore[arg-type]
    player = Player(reader, writer)
    sim = Simulation(
        header.seed,
        checkpoint_interval=interval,
        recent=RECENT_STEPS,
        log=on_step if on_step is not None else False,
        faults=header.faults,
        sanitize=_option(header, "run.sanitize", False),
    )
    return _drive_play(path, reader, sink, sim, player, fn, until_ns, max_steps, until_step)


def _scenario_of(header: TraceHeader, path: str | Path) -> Scenario:
    """The trace's scenario function; a ScenarioError names the trace."""
    try:
        return load_scenario(header.scenario)
    except ScenarioError as exc:
        raise ScenarioError(f"{path}: {exc}") from None


def _play_limits(
    header: TraceHeader, until_step: int | None
) -> tuple[int | None, int | None, int]:
    """``until_ns``, ``max_steps`` and the checkpoint interval of a play, from its header."""
    until_ns = _option(header, "run.until_ns", None)
    max_steps = _option(header, "run.max_steps", None)
    interval = int(_option(header, "run.checkpoint_interval", 1024))
    if until_step is not None:
        max_steps = until_step if max_steps is None else min(max_steps, until_step)
    return until_ns, max_steps, interval


def _drive_play(
    path: str | Path,
    reader: TraceReader,
    sink: _HashSink,
    sim: Simulation,
    player: Player,
    fn: Scenario,
    until_ns: int | None,
    max_steps: int | None,
    until_step: int | None,
    started: Callable[[], object] | None = None,
    blocker: Callable[[Blocker], Blocker] | None = None,
) -> PlayResult:
    """Run a built play (either mode) to its end, check it, and say what it found.

    ``blocker`` is plugged in with the player's seams (host mode's monitor);
    ``started`` runs once the player is attached and has checked INIT.
    """
    try:
        player.attach(sim, blocker)
        player.start()
        if started is not None:
            started()
        failure: Exception | None = None
        reason = "failure"
        try:
            fn(sim, **dict(reader.header.parameters))
            exact = until_step is not None and max_steps == until_step
            result = sim.run(until_ns=until_ns, max_steps=max_steps, exact_steps=exact)
            reason = result.reason.value
        except ReplayError:
            raise
        except Exception as exc:
            failure = exc
        if player.divergence is not None:
            raise player.divergence
        stopped_early = until_step is not None and reason == "max_steps"
        if not stopped_early and not player.exhausted:
            player.finish(failure)
    finally:
        sim.close()
    return _play_result(
        path, reader, sink, sim, player, reason, failure, stopped_early=stopped_early
    )
