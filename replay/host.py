"""Host mode: record a program against real peers, replay it anywhere with no peer at all.

In a simulation every input is scripted. In host mode the world outside the
program is real: a subprocess writing into a pipe, a client on a TCP socket,
and the real clock. RECORD runs the program against them and logs what came
in and when; PLAY runs the same program on the virtual layer, with the logged
input and clock values and no peer (so a bug seen on a real machine becomes a
file that reproduces it anywhere). These are the rules that make that exact:

Rule 1: the program runs on the virtual layer in both modes. Its own pipes,
socket pairs and eventfds (the loops' notifiers included) are
:class:`~evloop.FdTable` objects when recording too, so they behave the same
when played, down to buffer sizes, fd numbers and error messages. Only the
*outside* of each external channel is real.

Rule 2: a channel is a virtual object with a relay at its outside end. Each
real fd handed to :func:`record_host` becomes a named channel: a virtual pipe
(real pipes, FIFOs and character devices: input only) or socket pair (real
sockets: both ways). The program holds one end, ``sim.inputs[name]``; the host
layer holds the other. RECORD relays bytes from the real fd into that end and
drains what the program writes out of it to the real fd; PLAY feeds the same
end from the log and keeps what the program writes in ``Channel.output``. The
program sees one code path: only the source of the bytes changes.

Rule 3: time and input enter only at a *wait*. Every blocking wait of the
loops goes to the :class:`HostMonitor` (the fd table's blocker). One round of
a wait is: RECORD ``select()``\\s on the real fds for as long as the loop asked
(level-triggered: each wait asks again), measures the real time that passed
and logs it as ``CLOCK(step, REALTIME, ns)``, then, channel by channel in name
order, reads what the real fd has, writes into the channel what fits and logs
that as ``INPUT(step, channel, bytes)`` (EOF: empty bytes). PLAY takes the next
CLOCK record and the INPUT records after it. Nothing is dispatched inside a
wait, so every record of a wait has the step count of the moment it ended.
A wait rounds again (and logs again) until its condition is ready, its
timeout has passed, or the run's ``until_ns`` is reached; each of those is
decided from virtual state alone, so play rounds as often as record did.

Rule 4: the virtual clock moves only at those sample points, by the measured
real time, so timers and the step digest see the same values in both modes.
HOST starts at the real wall time (logged once, as ``CLOCK(0, HOST, ns)``
after the INIT checkpoint, relative to :data:`~evloop.HOST_EPOCH_NS`), so a
HOST timer armed from a HOST read fires when it should. Reads of HOST and
VIRTUAL_RT are live (``time.time_ns()``, real time since the start) and logged
as their offset from the sampled clock, as every read is.

Rule 5: a wait that nothing could ever end is not a real wait. When its
timeout is infinite and no channel can deliver anything any more (each has
delivered EOF or been closed by the program), the wait goes to the
simulation's scheduler, which decides as it does in a simulation: the run is
idle, reaches ``until_ns``, or is a :class:`~evloop.DeadlockError`.

What host mode does not do, on purpose:

* threads of control (``sim.thread``, ``sim.iothread``, ``sim.sleep`` ...):
  one thread runs the program; a thread pool runs work inline;
* record what the program writes to a peer: it is a consequence, not an input.
  Writes to a socket channel take what the virtual socket takes, exactly as
  when played; the relay forwards them as the real peer accepts them;
* half-close: the virtual layer has no ``shutdown()``, so EOF on a socket
  channel closes its whole outside end, as a peer's ``close()`` would, and
  later writes by the program fail with EPIPE. RECORD delivers that EOF only
  once the program has read everything before it, so "read, reply, read EOF"
  works; a program that replies only *after* reading EOF does not.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import selectors
import stat
import time
from collections.abc import Callable, Mapping, Sequence
from enum import Enum
from pathlib import Path
from types import MappingProxyType
from typing import Any, BinaryIO, Final, NoReturn

from evloop import (
    HOST_EPOCH_NS,
    Blocker,
    Chooser,
    ClockType,
    DispatchEvent,
    FdTable,
    RunResult,
    Simulation,
    SimulationError,
    WaitCondition,
)
from evloop import __version__ as evloop_version
from evloop.loop.fds import SOCKET_CAPACITY

from .api import (
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
from .errors import ReplayError
from .format import EventKind, TraceHeader
from .scenario import Scenario, chooser_from_spec, load_scenario, scenario_name
from .session import Player, Recorder, _show
from .trace import TraceReader, TraceWriter

__all__ = [
    "Channel",
    "ChannelKind",
    "HostClock",
    "HostMonitor",
    "HostPlayer",
    "HostRecorder",
    "HostSimulation",
    "LiveMonitor",
    "TraceMonitor",
    "is_host_trace",
    "play_host",
    "record_host",
]

#: ``extensions["mode"]`` of a host-mode trace.
HOST_MODE: Final = "host"
#: ``extensions[CHANNELS_KEY]``: ``[[name, kind], ...]`` in name order.
CHANNELS_KEY: Final = "host.channels"
#: The most bytes the relay reads from one real fd in one wait.
RELAY_READ_MAX: Final = 65536
#: How long closing a live monitor waits for a slow peer to take pending output.
FLUSH_TIMEOUT_S: Final = 1.0
#: The shutdown cause of a play whose truncated trace ran out.
TRACE_ENDED: Final = "end of a truncated host trace"

_POLLIN: Final = select.POLLIN
_POLLOUT: Final = select.POLLOUT
_CLOSED_BY_PROGRAM: Final = select.POLLERR | select.POLLHUP
_READ: Final = selectors.EVENT_READ
_WRITE: Final = selectors.EVENT_WRITE


class ChannelKind(Enum):
    PIPE = "pipe"  #: input only: the program holds the read end of a virtual pipe
    SOCKET = "socket"  #: both ways: the program holds one end of a virtual socket pair


# -- the clock ----------------------------------------------------------------------------


class HostClock:
    """The real clock of a recording, sampled only where the loop waits (RECORD only).

    It holds no time itself: the simulation's :class:`~evloop.VirtualClock`
    does, and moves by what :meth:`elapsed` measured (rule 4).
    """

    __slots__ = ("_last", "_start")

    def __init__(self) -> None:
        self._start = -1
        self._last = -1

    def start(self) -> int:
        """The first sample; returns the wall time now, relative to HOST_EPOCH_NS."""
        wall = time.time_ns()
        self._start = self._last = time.monotonic_ns()
        return wall - HOST_EPOCH_NS

    def elapsed(self) -> int:
        """Real ns since the previous sample (the clock layer's one monotonic read)."""
        now = time.monotonic_ns()
        delta = now - self._last
        self._last = now
        return delta

    def live_ns(self, clock_type: ClockType, sampled: int) -> int:
        """What a read of ``clock_type`` gives now: HOST is wall time, VIRTUAL_RT real time."""
        if self._start < 0:
            return sampled
        if clock_type is ClockType.HOST:
            return time.time_ns()
        if clock_type is ClockType.VIRTUAL_RT:
            return time.monotonic_ns() - self._start
        return sampled


# -- channels: the program's side, shared by both modes -------------------------------------


class Channel:
    """One external channel as the program sees it (rule 2); watches its outside end."""

    __slots__ = ("closed_by_program", "eof_delivered", "fd", "fds", "feeder", "kind", "name",
                 "output")

    def __init__(self, fds: FdTable, name: str, kind: ChannelKind) -> None:
        self.fds = fds
        self.name = name
        self.kind = kind
        if kind is ChannelKind.PIPE:
            self.fd, self.feeder = fds.pipe()
        else:
            self.fd, self.feeder = fds.socketpair()
        #: Everything the program wrote to the channel (socket channels).
        self.output = bytearray()
        self.eof_delivered = False
        self.closed_by_program = False
        fds.watch(self.feeder, self)

    @property
    def live(self) -> bool:
        """Input can still reach the program: no EOF yet, and its end is open."""
        return not (self.eof_delivered or self.closed_by_program)

    def fd_ready(self, fd: int, mask: int) -> None:
        """Drain what the program wrote; notice that it closed its end (FdWatcher)."""
        if mask & _POLLIN and self.kind is ChannelKind.SOCKET:
            self.output += self.fds.read(self.feeder, SOCKET_CAPACITY)
        if mask & _CLOSED_BY_PROGRAM:
            self.closed_by_program = True

    @property
    def drained(self) -> bool:
        """The program has read all input delivered so far (always, for a pipe).

        EOF on a socket closes its outside end, and with it the program's way
        to reply; so RECORD delivers it only once the program has read what
        came before it, which keeps "read, reply, read EOF" working.
        """
        return self.kind is ChannelKind.PIPE or not self.fds.mask(self.fd) & _POLLIN

    @property
    def has_room(self) -> bool:
        return bool(self.fds.mask(self.feeder) & _POLLOUT)

    def deliver(self, data: bytes) -> int:
        """Write input into the program's end; returns how many bytes fitted."""
        try:
            return self.fds.write(self.feeder, data)
        except BlockingIOError:
            return 0
        except BrokenPipeError:
            self.closed_by_program = True
            return 0

    def deliver_eof(self) -> None:
        """Close the outside end: the program reads EOF (and a socket's writes get EPIPE)."""
        self.eof_delivered = True
        self.fds.unwatch(self.feeder, self)
        self.fds.close(self.feeder)

    def __repr__(self) -> str:
        state = "eof" if self.eof_delivered else "closed" if self.closed_by_program else "live"
        return f"<Channel {self.name!r} {self.kind.value} fd={self.fd} {state}>"


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
        super().__init__(
            seed, chooser=chooser, log=log, recent=recent,
            checkpoint_interval=checkpoint_interval, fast_path=False,
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

    def iothread(self, name: str) -> NoReturn:
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


def _main_loop_condition(sim: Simulation) -> object:
    """The condition of the main loop's own wait, the one ``until_ns`` bounds (private)."""
    return sim.main_loop._cond


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

    def __init__(self, reader: TraceReader, writer: TraceWriter) -> None:
        super().__init__(reader, writer)
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
        self._diverge(self.event_index, _show(self._peek()), actual)
        raise AssertionError("unreachable")  # _diverge raises


# -- the monitors: the blocker of a host simulation ------------------------------------------


class HostMonitor:
    """Ends every blocking wait of a :class:`HostSimulation` at sample points (rules 3, 5).

    Subclasses say what one round of a wait is (:meth:`_wait_once`); the rest,
    when to round again and when to hand the wait to the scheduler, is decided
    here from virtual state only, so both modes decide alike.
    """

    def __init__(self, sim: HostSimulation) -> None:
        if sim.monitor is not None:
            raise SimulationError("a HostSimulation takes one monitor, installed once")
        self.sim = sim
        #: The simulation's scheduler: decides idle, until and deadlock (rule 5).
        self._fallback: Blocker | None = None
        self._main_cond = _main_loop_condition(sim)
        self._free = False
        sim.monitor = self

    def over(self, scheduler: Blocker) -> Blocker:
        """Become the blocker of every wait, over the simulation's scheduler (a seam)."""
        self._fallback = scheduler
        return self

    def block(self, cond: WaitCondition, timeout_ns: int) -> None:
        sim = self.sim
        fallback = self._fallback
        if fallback is None:
            raise SimulationError("a host monitor blocks only once plugged in as a seam")
        if self._free:
            fallback.block(cond, timeout_ns)
            return
        deadline = -1 if timeout_ns < 0 else sim.now_ns + timeout_ns
        until = sim._until_ns if cond is self._main_cond else None
        while True:
            now = sim.now_ns
            if timeout_ns == 0 or cond.ready():
                wait = 0
            elif deadline < 0:
                if not any(ch.live for ch in sim.channels):
                    fallback.block(cond, timeout_ns)  # nothing can end it (rule 5)
                    return
                wait = -1
            else:
                wait = max(deadline - now, 0)
            if until is not None and wait != 0:
                left = max(until - now, 0)
                wait = left if wait < 0 else min(wait, left)
            if not self._wait_once(wait):
                # A truncated trace ran out: the recording ends here, so the run does.
                self._free = True
                sim.shutdown(TRACE_ENDED)
                fallback.block(cond, -1 if deadline < 0 else max(deadline - now, 0))
                return
            now = sim.now_ns
            if (
                wait == 0
                or cond.ready()
                or 0 <= deadline <= now
                or (until is not None and now >= until)
            ):
                return

    def _wait_once(self, wait_ns: int) -> bool:
        """One round of a wait (``wait_ns`` -1: until something happens); False: no more."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the monitor holds outside the simulation (idempotent)."""


class TraceMonitor(HostMonitor):
    """PLAY: each round's length and input come from the trace; nothing real is touched."""

    def __init__(self, sim: HostSimulation, player: HostPlayer) -> None:
        super().__init__(sim)
        self.player = player

    def _wait_once(self, wait_ns: int) -> bool:
        player = self.player
        delta = player.clock_advance(0, wait_ns)
        if delta is None:
            return False
        self.sim.clock.advance(delta)
        while (item := player.peek_input()) is not None:
            name, data = item
            self._deliver(name, data)
            player.input(name, data, not data)
        return True

    def _deliver(self, name: str, data: bytes) -> None:
        try:
            channel = self.sim.channel(name)
        except KeyError:
            names = [ch.name for ch in self.sim.channels]
            self.player.refuse_input(f"no channel named {name!r} in this run (it has {names})")
        if not channel.live:
            self.player.refuse_input(f"channel {name!r} cannot take input any more: {channel!r}")
        if not data:
            channel.deliver_eof()
            return
        taken = channel.deliver(data)
        if taken != len(data):
            self.player.refuse_input(
                f"channel {name!r} took {taken} of the {len(data)} recorded bytes"
            )


class _Relay:
    """RECORD: the real fd behind one channel, and the bytes in flight through it."""

    __slots__ = ("channel", "closed", "eof", "fd", "flushed", "lost", "pending", "registered")

    def __init__(self, channel: Channel, fd: int) -> None:
        self.channel = channel
        self.fd = fd
        #: Read from the real fd, not yet taken by the channel.
        self.pending = bytearray()
        self.eof = False
        #: How much of ``channel.output`` the real fd has taken.
        self.flushed = 0
        #: The peer is gone: output is dropped.
        self.lost = False
        self.closed = False
        self.registered = 0

    def events(self) -> int:
        if self.closed:
            return 0
        events = 0
        if self.channel.live and not self.eof and not self.pending:
            events |= _READ
        if not self.lost and self.flushed < len(self.channel.output):
            events |= _WRITE
        return events

    def deliverable(self) -> bool:
        """Something can reach the program now, so the next wait must not block."""
        channel = self.channel
        if self.closed or not channel.live:
            return False
        if self.pending:
            return channel.has_room
        return self.eof and channel.drained

    def read(self) -> None:
        """Read what the real fd has (up to RELAY_READ_MAX); a reset peer is EOF."""
        while len(self.pending) < RELAY_READ_MAX:
            try:
                data = os.read(self.fd, RELAY_READ_MAX - len(self.pending))
            except BlockingIOError:
                return
            except ConnectionResetError:
                data = b""
            except OSError as exc:
                raise ReplayError(
                    f"host mode: reading channel {self.channel.name!r} (fd {self.fd}) failed: {exc}"
                ) from exc
            if not data:
                self.eof = True
                return
            self.pending += data

    def flush(self) -> None:
        """Write what the program wrote, as far as the real fd takes it now."""
        output = self.channel.output
        while not self.lost and not self.closed and self.flushed < len(output):
            try:
                self.flushed += os.write(self.fd, output[self.flushed : self.flushed + 65536])
            except BlockingIOError:
                return
            except (BrokenPipeError, ConnectionResetError):
                self.lost = True
            except OSError as exc:
                raise ReplayError(
                    f"host mode: writing channel {self.channel.name!r} (fd {self.fd}) failed: {exc}"
                ) from exc

    def pump(self, events: int, session: HostRecorder) -> None:
        """After a wait: real bytes into the channel (logged), program bytes out."""
        channel = self.channel
        if events & _READ:
            self.read()
        if channel.live and self.pending:
            taken = channel.deliver(bytes(self.pending))
            if taken:
                chunk = bytes(self.pending[:taken])
                del self.pending[:taken]
                session.input(channel.name, chunk, False)
        if channel.live and self.eof and not self.pending and channel.drained:
            session.input(channel.name, b"", True)
            channel.deliver_eof()
        if not channel.live:
            self.pending.clear()
        self.flush()

    @property
    def done(self) -> bool:
        """Nothing more can pass: the channel is dead and its output is out (or lost)."""
        channel = self.channel
        return not channel.live and (self.lost or self.flushed == len(channel.output))


class LiveMonitor(HostMonitor):
    """RECORD: waits in ``select()`` on the real fds and samples the real clock.

    Takes ownership of the real fds: each is closed once its channel is done
    (EOF delivered or closed by the program, and its output flushed), and the
    rest when the monitor closes.
    """

    def __init__(
        self,
        sim: HostSimulation,
        session: HostRecorder,
        real_fds: Mapping[str, int],
    ) -> None:
        self._relays = [_Relay(ch, real_fds[ch.name]) for ch in sim.channels]
        for relay in self._relays:
            os.set_blocking(relay.fd, False)
        self._selector = selectors.DefaultSelector()
        self.session = session
        super().__init__(sim)

    def _wait_once(self, wait_ns: int) -> bool:
        relays = self._relays
        for relay in relays:
            relay.flush()
            self._register(relay)
        timeout = None if wait_ns < 0 else wait_ns / 1e9
        if any(relay.deliverable() for relay in relays):
            timeout = 0  # only the real wait is shortened; the round is the same
        ready: dict[int, int] = {}
        for key, events in self._selector.select(timeout):
            ready[key.fd] = events
        session = self.session
        delta = session.clock_advance(session.host_clock.elapsed(), wait_ns)
        assert delta is not None
        self.sim.clock.advance(delta)
        for relay in relays:
            if not relay.closed:
                relay.pump(ready.get(relay.fd, 0), session)
                if relay.done:
                    self._retire(relay)
        return True

    def _register(self, relay: _Relay) -> None:
        events = relay.events()
        if events == relay.registered:
            return
        if relay.registered == 0:
            self._selector.register(relay.fd, events)
        elif events == 0:
            self._selector.unregister(relay.fd)
        else:
            self._selector.modify(relay.fd, events)
        relay.registered = events

    def _retire(self, relay: _Relay) -> None:
        if relay.registered:
            self._selector.unregister(relay.fd)
            relay.registered = 0
        relay.closed = True
        with contextlib.suppress(OSError):
            os.close(relay.fd)

    def close(self) -> None:
        """Give a slow peer up to FLUSH_TIMEOUT_S for pending output, then close every fd."""
        give_up = time.monotonic() + FLUSH_TIMEOUT_S
        for relay in self._relays:
            if relay.closed:
                continue
            relay.flush()
            writable = select.poll()
            writable.register(relay.fd, _POLLOUT)
            while not relay.lost and relay.flushed < len(relay.channel.output):
                left = give_up - time.monotonic()
                if left <= 0:
                    break
                writable.poll(left * 1000)
                relay.flush()
            self._retire(relay)
        self._selector.close()


# -- record_host and play_host -----------------------------------------------------------------


def _channel_kind(name: object, fd: object) -> ChannelKind:
    if not isinstance(name, str) or not name:
        raise ValueError(f"a channel name must be a non-empty str, not {name!r}")
    if not isinstance(fd, int) or isinstance(fd, bool) or fd < 0:
        raise ValueError(f"input {name!r}: expected a real fd (an int >= 0), not {fd!r}")
    try:
        mode = os.fstat(fd).st_mode
        access = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE
    except OSError as exc:
        raise ValueError(f"input {name!r}: fd {fd} is not an open fd ({exc.strerror})") from None
    if access == os.O_WRONLY:
        raise ValueError(
            f"input {name!r}: fd {fd} is write-only; a channel takes input from its peer "
            "(pass a pipe's read end or a socket)"
        )
    if stat.S_ISSOCK(mode):
        return ChannelKind.SOCKET
    if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode):
        return ChannelKind.PIPE
    raise ValueError(
        f"input {name!r}: fd {fd} is not a pipe, FIFO, character device or socket "
        "(a regular file cannot be waited on; read it in the scenario instead)"
    )


def _channel_specs(inputs: Mapping[str, int]) -> list[tuple[str, ChannelKind]]:
    """Each input's channel kind, in name order; refuses what host mode cannot wait on."""
    specs = {name: _channel_kind(name, fd) for name, fd in inputs.items()}
    fds: dict[int, str] = {}
    with selectors.DefaultSelector() as probe:
        for name, fd in inputs.items():
            if fd in fds:
                raise ValueError(f"inputs {fds[fd]!r} and {name!r} are both fd {fd}")
            fds[fd] = name
            try:
                probe.register(fd, _READ)
            except OSError as exc:
                raise ValueError(
                    f"input {name!r}: fd {fd} cannot be waited on ({exc.strerror})"
                ) from None
    return sorted(specs.items())


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


def is_host_trace(header: TraceHeader) -> bool:
    """Whether a trace was recorded in host mode (and so plays with :func:`play_host`)."""
    return header.extensions.get("mode") == HOST_MODE


def _channels_from_header(header: TraceHeader, path: str | Path) -> list[tuple[str, ChannelKind]]:
    if not is_host_trace(header):
        raise ReplayError(f"{path}: not a host-mode trace (play it with replay.play)")
    value = header.extensions.get(CHANNELS_KEY, ())
    kinds = {kind.value: kind for kind in ChannelKind}
    out: list[tuple[str, ChannelKind]] = []
    if isinstance(value, tuple):
        for item in value:
            if not (
                isinstance(item, tuple) and len(item) == 2
                and isinstance(item[0], str) and item[0] and item[1] in kinds
            ):
                break
            out.append((item[0], kinds[str(item[1])]))
        else:
            names = [n for n, _ in out]
            if names == sorted(set(names)):
                return out
    raise ReplayError(
        f"{path}: header extension {CHANNELS_KEY!r} must list [name, 'pipe' | 'socket'] "
        f"pairs with unique names in name order, not {value!r}"
    )


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

