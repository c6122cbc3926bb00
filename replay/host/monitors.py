"""The monitors: the blocker of a host simulation, live (real fds) or from the trace."""

from __future__ import annotations

import contextlib
import os
import select
import selectors
from collections.abc import Mapping
from typing import Final

from evloop import (
    Blocker,
    Simulation,
    SimulationError,
    WaitCondition,
)

from ..errors import ReplayError
from .channels import Channel
from .clock import countdown
from .simulation import HostPlayer, HostRecorder, HostSimulation

__all__ = ["HostMonitor", "LiveMonitor", "TraceMonitor"]

#: The most bytes the relay reads from one real fd in one wait.
RELAY_READ_MAX: Final = 65536
#: How long closing a live monitor waits for a slow peer to take pending output.
FLUSH_TIMEOUT_S: Final = 1.0
#: The shutdown cause of a play whose truncated trace ran out.
TRACE_ENDED: Final = "end of a truncated host trace"

_POLLOUT: Final = select.POLLOUT
_READ: Final = selectors.EVENT_READ
_WRITE: Final = selectors.EVENT_WRITE


# -- the monitors: the blocker of a host simulation ------------------------------------------


def _main_loop_condition(sim: Simulation) -> object:
    """The condition of the main loop's own wait, the one ``until_ns`` bounds (private)."""
    return sim.main_loop._cond



class HostMonitor:
    """Ends every blocking wait of a :class:`HostSimulation` at sample points (rules 3, 5).

    Subclasses say what one round of a wait is (:meth:`_wait_once`); the rest,
    when to round again and when to hand the wait to the scheduler, is decided
    here from virtual state only, so both modes decide alike.
    """

    def __init__(
        self, sim: HostSimulation, session: HostRecorder | HostPlayer, flush_ns: int | None
    ) -> None:
        if sim.monitor is not None:
            raise SimulationError("a HostSimulation takes one monitor, installed once")
        self.sim = sim
        self._session = session
        #: The recorded real time after which a wait closes the trace's chunk (rule 6).
        self._flush_ns = flush_ns
        self._flushed_ns = 0
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
            if not self._round(wait):
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

    def _round(self, wait_ns: int) -> bool:
        """One round of a wait, the trace's chunk closed where rule 6 says; False: no more.

        Rule 6: a host recording cannot be made again, so what it logged must
        not wait in memory for a chunk to fill. The chunk is closed before a
        round that may block past ``flush_ns`` of real time since the last
        close, and after a round that brought input or ended past it. Both are
        decided from the round's length and the virtual clock, which the
        trace holds, so a play closes its re-recording's chunks at the same
        records and stays bit-exact.
        """
        flush_ns = self._flush_ns
        if flush_ns is not None and wait_ns != 0 and (
            wait_ns < 0 or self.sim.now_ns + wait_ns - self._flushed_ns >= flush_ns
        ):
            self._flush()
        inputs = self._wait_once(wait_ns)
        if inputs is None:
            return False
        if flush_ns is not None and (inputs or self.sim.now_ns - self._flushed_ns >= flush_ns):
            self._flush()
        return True

    def _flush(self) -> None:
        self._session.flush()
        self._flushed_ns = self.sim.now_ns

    def _wait_once(self, wait_ns: int) -> int | None:
        """One round of a wait (``wait_ns`` -1: until something happens).

        Returns how many INPUT records it logged (or took), None when a
        truncated trace has no more rounds.
        """
        raise NotImplementedError

    def close(self) -> None:
        """Release what the monitor holds outside the simulation (idempotent)."""


class TraceMonitor(HostMonitor):
    """PLAY: each round's length and input come from the trace; nothing real is touched."""

    def __init__(self, sim: HostSimulation, player: HostPlayer, flush_ns: int | None) -> None:
        super().__init__(sim, player, flush_ns)
        self.player = player

    def _wait_once(self, wait_ns: int) -> int | None:
        player = self.player
        delta = player.clock_advance(0, wait_ns)
        if delta is None:
            return None
        self.sim.clock.advance(delta)
        inputs = 0
        while (item := player.peek_input()) is not None:
            name, data = item
            self._deliver(name, data)
            player.input(name, data, not data)
            inputs += 1
        return inputs

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

    def pump(self, events: int, session: HostRecorder) -> int:
        """After a wait: real bytes into the channel (logged), program bytes out.

        Returns how many INPUT records it logged.
        """
        channel = self.channel
        inputs = 0
        if events & _READ:
            self.read()
        if channel.live and self.pending:
            taken = channel.deliver(bytes(self.pending))
            if taken:
                chunk = bytes(self.pending[:taken])
                del self.pending[:taken]
                session.input(channel.name, chunk, False)
                inputs += 1
        if channel.live and self.eof and not self.pending and channel.drained:
            session.input(channel.name, b"", True)
            channel.deliver_eof()
            inputs += 1
        if not channel.live:
            self.pending.clear()
        self.flush()
        return inputs

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
        flush_ns: int | None,
    ) -> None:
        self._relays = [_Relay(ch, real_fds[ch.name]) for ch in sim.channels]
        for relay in self._relays:
            os.set_blocking(relay.fd, False)
        self._selector = selectors.DefaultSelector()
        self.session = session
        super().__init__(sim, session, flush_ns)

    def _wait_once(self, wait_ns: int) -> int | None:
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
        inputs = 0
        for relay in relays:
            if not relay.closed:
                inputs += relay.pump(ready.get(relay.fd, 0), session)
                if relay.done:
                    self._retire(relay)
        return inputs

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
        left = countdown(FLUSH_TIMEOUT_S)
        for relay in self._relays:
            if relay.closed:
                continue
            relay.flush()
            writable = select.poll()
            writable.register(relay.fd, _POLLOUT)
            while not relay.lost and relay.flushed < len(relay.channel.output):
                seconds = left()
                if seconds <= 0:
                    break
                writable.poll(seconds * 1000)
                relay.flush()
            self._retire(relay)
        self._selector.close()
