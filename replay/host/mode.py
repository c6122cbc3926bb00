"""record_host and play_host: a host-mode run from start to end (rules: ``replay.host``).

Both go through the one record/play driver (``replay.driver``); what is host
mode's own is the session kinds, the simulation with its channels, the monitor
plugged over the scheduler as the blocker seam, and starting the host clock.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from evloop import DispatchEvent

from ..driver import (
    DEFAULT_CHECKPOINT_INTERVAL,
    BlockerPlug,
    PlayResult,
    RecordResult,
    begin_recording,
    finish_recording,
    new_header,
    play_run,
    simulation_options,
)
from ..scenario import Scenario, chooser_from_spec, load_scenario, scenario_name
from ..trace.reader import TraceReader
from ..trace.writer import TraceWriter
from .channels import (
    CHANNELS_KEY,
    FLUSH_INTERVAL_NS,
    FLUSH_KEY,
    HOST_MODE,
    channel_specs,
    channels_from_header,
    flush_interval,
)
from .clock import HostClock
from .monitors import LiveMonitor, TraceMonitor
from .simulation import HostPlayer, HostRecorder, HostSimulation

__all__ = ["play_host", "play_host_trace", "record_host"]


def record_host(
    scenario: str | Scenario,
    output: str | Path | BinaryIO,
    *,
    inputs: Mapping[str, int],
    params: Mapping[str, Any] | None = None,
    until_ns: int | None = None,
    max_steps: int | None = None,
    seed: int = 0,
    checkpoint_interval: int = DEFAULT_CHECKPOINT_INTERVAL,
    flush_ns: int = FLUSH_INTERVAL_NS,
) -> RecordResult:
    """Run ``scenario`` in host mode against real peers; write its trace to ``output``.

    ``inputs`` maps channel names to real fds connected to a peer (a pipe's
    read end, a socket); the scenario finds each as ``sim.inputs[name]``.
    record_host owns those fds from the call on and closes each of them,
    whatever happens (pass ``sock.detach()``, not ``sock.fileno()``).

    What is logged reaches the OS at least every ``flush_ns`` of real time
    and after every burst of input (rule 6), so a recording killed outright
    keeps all but its last moments (docs/trace-format.md, section 8).
    """
    real_fds = dict(inputs)
    monitor: LiveMonitor | None = None
    try:
        if type(flush_ns) is not int or not 1 <= flush_ns < 1 << 63:
            raise ValueError(f"flush_ns must be a positive number of ns, not {flush_ns!r}")
        channels = channel_specs(real_fds)
        name = scenario_name(scenario)
        fn = load_scenario(name) if isinstance(scenario, str) else scenario
        header = new_header(
            name, seed=seed, params=params, until_ns=until_ns, max_steps=max_steps,
            checkpoint_interval=checkpoint_interval,
            extensions={
                "mode": HOST_MODE,
                CHANNELS_KEY: [[n, kind.value] for n, kind in channels],
                FLUSH_KEY: flush_ns,
            },
        )
        host_clock = HostClock()

        def build(
            writer: TraceWriter,
        ) -> tuple[HostRecorder, HostSimulation, BlockerPlug | None]:
            nonlocal monitor
            rec = HostRecorder(writer, host_clock)
            sim = HostSimulation(
                channels, seed, chooser=chooser_from_spec("fifo"), **simulation_options(header)
            )
            monitor = LiveMonitor(sim, rec, real_fds, flush_ns)
            return rec, sim, monitor.over

        recording = begin_recording(output, header, build)

        def started() -> None:
            recording.sim.start_host_clock(recording.recorder.host_start(host_clock.start()))

        return finish_recording(recording, fn, started)
    finally:
        if monitor is None:  # else the monitor closed them
            for fd in sorted({fd for fd in real_fds.values() if type(fd) is int and fd >= 0}):
                with contextlib.suppress(OSError):
                    os.close(fd)


def play_host(
    path: str | Path,
    *,
    until_step: int | None = None,
    on_step: Callable[[DispatchEvent], object] | None = None,
) -> PlayResult:
    """Replay the host-mode trace at ``path`` with no peer; as :func:`replay.play`."""
    with TraceReader(path, strict=False) as reader:
        return play_host_trace(reader, path, until_step=until_step, on_step=on_step)


def play_host_trace(
    reader: TraceReader,
    path: str | Path,
    *,
    until_step: int | None = None,
    on_step: Callable[[DispatchEvent], object] | None = None,
) -> PlayResult:
    """Replay the host-mode trace ``reader`` holds (opened from ``path``) with no peer."""
    header = reader.header
    channels = channels_from_header(header, path)
    flush_ns = flush_interval(header, path)

    def build(writer: TraceWriter) -> tuple[HostPlayer, HostSimulation, BlockerPlug | None]:
        # Host mode records with FIFO; the header's chooser is asked every decision again.
        player = HostPlayer(reader, writer, chooser_from_spec(header.chooser))
        sim = HostSimulation(channels, header.seed, **simulation_options(header, on_step))
        return player, sim, TraceMonitor(sim, player, flush_ns).over

    def started(player: HostPlayer, sim: HostSimulation) -> None:
        sim.start_host_clock(player.host_start(0))

    return play_run(path, reader, build, until_step=until_step, started=started)
