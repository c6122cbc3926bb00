"""record_host and play_host: a host-mode run from start to end (rules: ``replay.host``)."""
from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from evloop import (
    DispatchEvent,
)
from evloop import __version__ as evloop_version

from ..api import (
    RECENT_STEPS,
    PlayResult,
    RecordResult,
    _drive_play,
    _HashSink,
    _play_limits,
    _record_result,
    _run_options,
    _scenario_of,
)
from ..errors import ReplayError
from ..scenario import Scenario, chooser_from_spec, load_scenario, scenario_name
from ..trace.header import TraceHeader
from ..trace.reader import TraceReader
from ..trace.writer import TraceWriter
from .channels import CHANNELS_KEY, HOST_MODE, _channel_specs, _channels_from_header
from .clock import HostClock
from .monitors import LiveMonitor, TraceMonitor
from .simulation import HostPlayer, HostRecorder, HostSimulation

__all__ = ["play_host", "record_host"]

# -- record_host and play_host -----------------------------------------------------------------


def record_host(
    scenario: str | Scenario,
    output: str | Path | BinaryIO,
    *,
    inputs: Mapping[str, int],
    params: Mapping[str, Any] | None = None,
    until_ns: int | None = None,
    max_steps: int | None = None,
    seed: int = 0,
    checkpoint_interval: int = 1024,
) -> RecordResult:
    """Run ``scenario`` in host mode against real peers; write its trace to ``output``.

    ``inputs`` maps channel names to real fds connected to a peer (a pipe's
    read end, a socket); the scenario finds each as ``sim.inputs[name]``.
    record_host owns those fds from the call on and closes each of them,
    whatever happens (pass ``sock.detach()``, not ``sock.fileno()``).
    """
    real_fds = dict(inputs)
    monitor: LiveMonitor | None = None
    try:
        channels = _channel_specs(real_fds)
        name = scenario_name(scenario)
        fn = load_scenario(name) if isinstance(scenario, str) else scenario
        params = dict(params or {})
        extensions: dict[str, Any] = _run_options(until_ns, max_steps, checkpoint_interval)
        extensions["mode"] = HOST_MODE
        extensions[CHANNELS_KEY] = [[n, kind.value] for n, kind in channels]
        header = TraceHeader(
            scenario=name, seed=seed, chooser="fifo", parameters=params,
            package_version=evloop_version, extensions=extensions,
        )
        writer = TraceWriter(output, header)
        sim: HostSimulation | None = None
        try:
            host_clock = HostClock()
            rec = HostRecorder(writer, host_clock)
            sim = HostSimulation(
                channels, seed, chooser=chooser_from_spec("fifo"),
                checkpoint_interval=checkpoint_interval, recent=RECENT_STEPS,
            )
            monitor = LiveMonitor(sim, rec, real_fds)
            rec.attach(sim, monitor.over)
            rec.start()
            sim.start_host_clock(rec.host_start(host_clock.start()))
            failure: Exception | None = None
            reason = "failure"
            try:
                fn(sim, **params)
                reason = sim.run(until_ns=until_ns, max_steps=max_steps).reason.value
            except ReplayError:
                raise
            except Exception as exc:  # the program failed: a finding, keep the trace
                failure = exc
            rec.finish(failure)
        except BaseException:
            writer.abort()
            raise
        finally:
            if sim is not None:
                sim.close()
    finally:
        if monitor is None:  # else the monitor closed them
            for fd in sorted({fd for fd in real_fds.values() if type(fd) is int and fd >= 0}):
                with contextlib.suppress(OSError):
                    os.close(fd)
    return _record_result(output, sim, writer, rec, reason, failure)


def play_host(
    path: str | Path,
    *,
    until_step: int | None = None,
    on_step: Callable[[DispatchEvent], object] | None = None,
) -> PlayResult:
    """Replay the host-mode trace at ``path`` with no peer; as :func:`replay.play`."""
    reader = TraceReader(path, strict=False)
    try:
        return _play_host(reader, path, until_step, on_step)
    finally:
        reader.close()


def _play_host(
    reader: TraceReader,
    path: str | Path,
    until_step: int | None,
    on_step: Callable[[DispatchEvent], object] | None,
) -> PlayResult:
    header = reader.header
    channels = _channels_from_header(header, path)
    fn = _scenario_of(header, path)
    chooser_from_spec(header.chooser)  # validate
    until_ns, max_steps, interval = _play_limits(header, until_step)
    sink = _HashSink()
    player = HostPlayer(reader, TraceWriter(sink, header))  # type: ignore[arg-type]
    sim = HostSimulation(
        channels, header.seed,
        checkpoint_interval=interval, recent=RECENT_STEPS,
        log=on_step if on_step is not None else False,
    )

    monitor = TraceMonitor(sim, player)

    def started() -> None:
        sim.start_host_clock(player.host_start(0))

    return _drive_play(
        path, reader, sink, sim, player, fn, until_ns, max_steps, until_step, started,
        monitor.over,
    )
