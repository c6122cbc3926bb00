"""The host simulation and its sessions: one code path, two sources."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NoReturn

from evloop import (
    Chooser,
    ClockType,
    DispatchEvent,
    RunResult,
    Simulation,
    SimulationError,
)

from ..errors import ReplayError
from ..session import Player, Recorder
from ..trace.describe import show_record
from ..trace.format import EventKind
from ..trace.reader import TraceReader
from ..trace.writer import TraceWriter
from .channels import Channel, ChannelKind
from .clock import HostClock

if TYPE_CHECKING:
    from .monitors import HostMonitor

__all__ = ["HostPlayer", "HostRecorder", "HostSimulation"]

# -- the simulation -------------------------------------------------------------------------


class HostSimulation(Simulation):
    """A :class:`~evloop.Simulation` with named external channels and no other threads.

    The scenario finds each channel's fd in :attr:`inputs`. The same class runs
    both modes; :func:`record_host` and :func:`play_host` plug in the monitor.
    """

    def __init__(
        self,
        channels: Sequence[tuple[str, ChannelKind]] = (),
        seed: int = 0,
        *,
        chooser: Chooser | None = None,
        log: bool | Callable[[DispatchEvent], object] = False,
        recent: int = 0,
        checkpoint_interval: int = 1024,
    ) -> None:
        # No fast path: it warps past waits, and every wait here is a sample point.
        # Real OS threads and no watchdog: here the main thread's waits are real
        # (the monitor blocks in select for real input, for as long as it takes).
        super().__init__(
            seed, chooser=chooser, log=log, recent=recent,
            checkpoint_interval=checkpoint_interval, fast_path=False,
            threads="os", watchdog=None,
        )
        names = [name for name, _ in channels]
        if len(set(names)) != len(names):
            raise ValueError(f"channel names must be unique, not {names}")
        self._channels = {
            name: Channel(self.fds, name, kind)
            for name, kind in sorted(channels, key=lambda spec: spec[0])
        }
        #: Channel name -> the fd the program reads (and writes) it through.
        self.inputs: Mapping[str, int] = MappingProxyType(
            {name: ch.fd for name, ch in self._channels.items()}
        )
        self.monitor: HostMonitor | None = None
        self._until_ns: int | None = None

    def channel(self, name: str) -> Channel:
        return self._channels[name]

    @property
    def channels(self) -> tuple[Channel, ...]:
        """The channels, in name order."""
        return tuple(self._channels.values())

    def start_host_clock(self, host_start_ns: int) -> None:
        """Move HOST by ``host_start_ns`` (rule 4); once, before the clock has moved.

        VirtualClock has no public way to set one clock alone; this is the only
        place host mode writes its private state.
        """
        if self.now_ns != 0:
            raise SimulationError("the HOST clock can only be started before time moves")
        self.clock._now[ClockType.HOST] += host_start_ns

    def run(
        self,
        until_ns: int | None = None,
        max_steps: int | None = None,
        *,
        exact_steps: bool = False,
    ) -> RunResult:
        self._until_ns = until_ns
        try:
            return super().run(until_ns, max_steps, exact_steps=exact_steps)
        finally:
            self._until_ns = None

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self.monitor is not None:
                self.monitor.close()

    def __enter__(self) -> HostSimulation:
        return self

    # Host mode runs one thread of control: the waits of these would need a scheduler.
    def thread(self, name: str, fn: Callable[[], object]) -> NoReturn:
        _no_threads("thread")

    def iothread(
        self, name: str, *, poll_max_ns: int = 0, poll_grow: int = 0, poll_shrink: int = 0
    ) -> NoReturn:
        _no_threads("iothread")

    def sleep(self, ns: int) -> NoReturn:
        _no_threads("sleep")

    def yield_now(self) -> NoReturn:
        _no_threads("yield_now")

    def event(self, name: str) -> NoReturn:
        _no_threads("event")

    def peer(self, fd: int, name: str | None = None) -> NoReturn:
        raise SimulationError(
            "a HostSimulation has no scripted peers: its input comes from real fds "
            "(record_host(..., inputs=...)) or from a host trace"
        )


def _no_threads(what: str) -> NoReturn:
    raise SimulationError(
        f"host mode runs one thread of control: HostSimulation.{what}() is not available; "
        "use timers and bottom halves instead (thread_pool_submit runs its work inline)"
    )


# -- the sessions: one code path, two sources ------------------------------------------------


class HostRecorder(Recorder):
    """A recorder that also logs the host clock: its start, each sample, live reads."""

    def __init__(self, writer: TraceWriter, host_clock: HostClock) -> None:
        super().__init__(writer)
        self.host_clock = host_clock

    def host_start(self, measured: int) -> int:
        self._emit((EventKind.CLOCK, self._step, int(ClockType.HOST), measured))
        return measured

    def clock_advance(self, measured: int, wait_ns: int) -> int | None:
        self._emit((EventKind.CLOCK, self._step, int(ClockType.REALTIME), measured))
        return measured

    def _clock_read(self, clock_type: ClockType, value: int) -> int:
        live = self.host_clock.live_ns(clock_type, value)
        self._emit((EventKind.CLOCK, self._step, int(clock_type), live - value))
        return live


class HostPlayer(Player):
    """A player that takes the host clock and each wait's input from the trace."""

    def __init__(
        self, reader: TraceReader, writer: TraceWriter, chooser: Chooser | None = None
    ) -> None:
        super().__init__(reader, writer, chooser)
        self._lookahead: tuple[Any, ...] | None = None
        self._has_lookahead = False

    def _next(self) -> tuple[Any, ...] | None:
        if self._has_lookahead:
            self._has_lookahead = False
            return self._lookahead
        return super()._next()

    def _peek(self) -> tuple[Any, ...] | None:
        if not self._has_lookahead:
            self._lookahead = super()._next()
            self._has_lookahead = True
        return self._lookahead

    def host_start(self, measured: int) -> int:
        actual = f"the start of a host-mode run at step {self._step}"
        record = self._expect(EventKind.CLOCK, actual, int(ClockType.HOST))
        if record is None:
            return 0
        self._emit(record)
        return int(record[3])

    def _clock_read(self, clock_type: ClockType, value: int) -> int:
        # A live read of a real clock: its offset is real input, taken as recorded.
        actual = f"a read of the {clock_type.name} clock at step {self._step}"
        record = self._expect(EventKind.CLOCK, actual, int(clock_type))
        if record is None:
            return value
        self._emit(record)
        return value + int(record[3])

    def clock_advance(self, measured: int, wait_ns: int) -> int | None:
        """The recorded length of this wait; None once a truncated trace has run out."""
        if wait_ns == 0:
            actual = f"a non-blocking wait at step {self._step}"
        else:
            limit = "no timeout" if wait_ns < 0 else f"a timeout of {wait_ns} ns"
            actual = f"a blocking wait at step {self._step} with {limit}"
        record = self._expect(EventKind.CLOCK, actual, int(ClockType.REALTIME))
        if record is None:
            return None
        if record[3] < 0:
            raise ReplayError(
                f"{self.reader.path}: event {self.event_index - 1}: a REALTIME CLOCK record "
                f"of {record[3]} ns; the real time a wait took cannot be negative"
            )
        self._emit(record)
        return int(record[3])

    def peek_input(self) -> tuple[str, bytes] | None:
        """The next input of the current wait, not yet taken; None when it has no more."""
        self._check_open()
        if self.exhausted:
            return None
        record = self._peek()
        if record is None or record[0] != EventKind.INPUT or record[1] != self._step:
            return None
        return str(record[2]), bytes(record[3])

    def refuse_input(self, actual: str) -> NoReturn:
        """The input :meth:`peek_input` gave cannot be delivered: a divergence."""
        self._diverge(self.event_index, show_record(self._peek()), actual)
        raise AssertionError("unreachable")  # _diverge raises
