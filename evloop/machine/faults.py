"""Fault injection: the faults a scenario accepts, each one a decision of the chooser.

A :class:`~evloop.Simulation` built with ``faults=[...]`` may inject the
faults a real kernel, network or host could give the program: on pipes and
socket pairs delay, reordering, loss, duplication, partition and heal, short
reads and writes, EAGAIN and EINTR; on the HOST clock jumps and skew; on
threads of control extra preemption points. None is on by default. These are
the rules this module keeps, and why:

Rule 1: every fault is a decision. Wherever an enabled fault could apply, the
injector asks the simulation's chooser *one* ``ChoiceKind.FAULT`` decision,
through the scheduler's single door (``Scheduler.choose``), whose options
list "none" first and then every fault that applies there, in the fixed order
of :data:`FAULT_KINDS`. So the FIFO chooser never injects anything, a random
chooser sometimes does, a trace records each answer as a CHOICE and a play
gives it back, and shrinking (towards option 0) converges on "no fault".
Where no enabled fault applies, nothing is asked and nothing is logged.

Rule 2: faults touch only what the program itself does with pipes and
sockets. Eventfds (every ``AioContext`` notifier is one) are never faulted,
nor are the fds of scripted peers: a peer is the world outside the system,
and its writes and reads are the test's own (only a partition, which cuts
the link itself, holds a peer's writes too). The spec ``kind:fd=N`` narrows a
data fault to calls made on fd *number* ``N`` (the write end for write
faults, the read end for read faults); a spec without a filter means every
pipe and socket fd.

Rule 3: a stream stays a stream unless a fault says otherwise. Bytes that a
fault holds back (``delay``, ``partition``) wait in the direction's in-order
queue, and every later write of that direction lines up behind them, so
delay models a link's latency and never reorders by itself. Only
``reorder`` holds a chunk *off* that queue, so later writes overtake it.
Held bytes do not count against the receiver's buffer (the link holds
them), and the writer's close reaches the reader behind them: EOF (and
POLLHUP) shows only once every held byte has arrived. A chunk that arrives
when the buffer is full lands as far as it fits and the rest waits for
room, retried at every scheduling point, as a scripted peer's input is.

Rule 4: arrival is an external event. Held bytes arrive through the
scheduler's external-event queue at their virtual time, like a scripted
peer's input: a blocked system wakes (the clock warps) to receive them, and
simultaneous arrivals of different directions are ordered by the chooser's
EXTERNAL decision. One direction has at most one arrival queued, so its
chunks can never be reordered by a tie.

Rule 5: everything injected is a step. Each injected fault, and each arrival
of held bytes, is one step of kind ``fault`` (:data:`~evloop.DispatchKind.FAULT`),
folded into the digest and shown in the dispatch log, so dumps and timelines
see what was done to the run.

The faults, and where they apply:

* ``delay``: a write's bytes arrive 1 ms or 10 ms later (in order).
* ``reorder``: a write's bytes arrive 1 ms later, overtaken by later writes.
* ``loss``: a write reports success but its bytes vanish (the whole write's
  bytes: a lossy link under a stream socket).
* ``duplicate``: a write's bytes arrive twice.
* ``partition``: from this write on, for 10 ms, every write of the pipe or of
  either direction of the socket pair is held; all of it arrives, in order,
  when the partition heals. A write during a partition is not asked again.
* ``short-read``: a read returns 1 byte, or half of what it would have.
* ``short-write``: a write takes 1 byte, or half of what it would have
  (pipes: only writes of more than ``PIPE_BUF`` bytes, smaller ones are
  atomic in Linux).
* ``eagain`` / ``eintr``: a read with data there, or a write with room
  there, raises ``BlockingIOError`` / ``InterruptedError`` and does nothing.
* datagrams (``sendto`` on a UDP or AF_UNIX datagram socket of the network)
  meet ``delay`` (1 ms or 10 ms later: datagrams may then arrive out of
  order, as UDP allows), ``loss`` and ``duplicate``.
* ``reset``: a write on a TCP connection of the network (``net.py``) meets an
  RST from the link: the write fails with ``ConnectionResetError``, the peer
  reads what had arrived and then ECONNRESET, bytes still in flight either way
  are lost, and both ends are shut (EPIPE on later writes, EOF on reads).
* ``host-jump``: a read of the HOST clock steps it by +1 s or -1 s, from then
  on (an NTP step).
* ``host-skew``: a read of the HOST clock sets the rate HOST runs at to
  +1000 or -1000 ppm of real time, from then on; the offset grows with time.
  Only reads through ``get_ns`` see jumps and skew: HOST timers keep
  unfaulted time.
* ``preempt``: before each callback a loop dispatches while another thread of
  control could run, the dispatching thread may yield its turn (a preemption
  point; who runs next is then a THREAD decision).
"""

from __future__ import annotations

import errno
import os
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from ..loop.clock import SCALE_MS, ClockType, VirtualClock
from ..loop.fds import PIPE_BUF, FdTable, _Pipe
from ..loop.stream import TCP, _error, _SocketEnd
from ..seams import ChoiceKind, DispatchKind

if TYPE_CHECKING:
    from ..seams import DispatchObserver
    from .external import ExternalEvent
    from .scheduler import Scheduler

__all__ = ["DATA_FAULTS", "FAULT_KINDS", "FaultInjector", "InjectedFault", "parse_faults"]

#: Every fault kind, in the order a decision lists its options.
FAULT_KINDS: Final = (
    "delay",
    "reorder",
    "loss",
    "duplicate",
    "partition",
    "short-read",
    "short-write",
    "eagain",
    "eintr",
    "host-jump",
    "host-skew",
    "preempt",
    "reset",
)
#: The fault kinds that act on pipe and socket reads and writes (and take ``:fd=N``).
DATA_FAULTS: Final = frozenset((*FAULT_KINDS[:9], "reset"))
_DATA_ORDER: Final = ", ".join(kind for kind in FAULT_KINDS if kind in DATA_FAULTS)

#: How long ``delay`` holds a write's bytes.
DELAYS_NS: Final = (1 * SCALE_MS, 10 * SCALE_MS)
#: How long ``reorder`` holds a write's bytes.
REORDER_NS: Final = 1 * SCALE_MS
#: How long a ``partition`` lasts before it heals.
PARTITION_NS: Final = 10 * SCALE_MS
#: The steps ``host-jump`` moves the HOST clock by.
HOST_JUMPS_NS: Final = (1_000_000_000, -1_000_000_000)
#: The rates (parts per million of real time) ``host-skew`` sets the HOST clock to.
HOST_SKEWS_PPM: Final = (1000, -1000)

#: Digest code of a fault step: the kind's index in FAULT_KINDS + 1, arrivals 13 (they
#: were the code after the twelve first kinds, and digests must not change), reset 14.
_ARRIVE_CODE: Final = 13
_CODES: Final = {kind: i + 1 if i < 12 else i + 2 for i, kind in enumerate(FAULT_KINDS)}

_EINTR_TEXT: Final = os.strerror(errno.EINTR)

StepFn = Callable[[int, int, int, Any, Any], None]
_Writer = _Pipe | _SocketEnd


@dataclass(frozen=True, slots=True)
class InjectedFault:
    """One fault step: what was done (``kind``: a fault kind, or ``"arrive"``), and where."""

    kind: str
    #: The fd the call was made on (for ``"arrive"``: the fd the bytes arrived at); -1: none.
    fd: int
    #: The option the chooser picked (``"delay 1ms"``), or what arrived.
    detail: str

    def __str__(self) -> str:
        return self.detail if self.fd < 0 else f"fd {self.fd}: {self.detail}"


def parse_faults(specs: Iterable[str]) -> dict[str, frozenset[int] | None]:
    """The fault plan of ``specs``: kind -> the fds it is narrowed to (None: every fd).

    A spec is a fault kind (``"loss"``), or a data fault narrowed to one fd
    number (``"loss:fd=5"``); specs of one kind add up, and a kind given
    without a filter applies to every fd.
    """
    if isinstance(specs, str):
        raise TypeError(f"faults must be a list of fault specs, not the string {specs!r}")
    plan: dict[str, frozenset[int] | None] = {}
    for spec in specs:
        if not isinstance(spec, str):
            raise TypeError(f"a fault spec is a str, not {type(spec).__name__}")
        kind, colon, rest = spec.partition(":")
        if kind not in _CODES:
            raise ValueError(
                f"unknown fault {spec!r}: the known faults are {', '.join(FAULT_KINDS)} "
                "(data faults may be narrowed to one fd as 'kind:fd=N')"
            )
        if not colon:
            plan[kind] = None
            continue
        if kind not in DATA_FAULTS:
            raise ValueError(
                f"fault {spec!r}: only the data faults ({_DATA_ORDER}) "
                "take an fd filter"
            )
        name, _, number = rest.partition("=")
        if name != "fd" or not number.isdigit():
            raise ValueError(
                f"fault {spec!r}: a filter is written 'kind:fd=N', N a non-negative fd number"
            )
        if kind in plan and plan[kind] is None:
            continue
        plan[kind] = (plan.get(kind) or frozenset()) | {int(number)}
    return plan


class _Direction:
    """The in-order queue of held bytes of one direction (keyed by its writer)."""

    __slots__ = ("chunks", "queued", "writer")

    def __init__(self, writer: _Writer) -> None:
        self.writer = writer
        #: (arrival time, bytes), in stream order; arrival times never decrease.
        self.chunks: deque[tuple[int, bytes]] = deque()
        #: An arrival for the head is in the scheduler's external queue (or stalled).
        self.queued = False


class _Arrival:
    """An external event that lands held bytes: a direction's head, or one reordered chunk."""

    __slots__ = ("data", "direction", "fd", "writer")

    def __init__(
        self, writer: _Writer, direction: _Direction | None, data: bytes, fd: int
    ) -> None:
        self.writer = writer
        self.direction = direction
        self.data = data
        self.fd = fd  # the receiving fd when scheduled (for describe only)

    def describe(self) -> str:
        if self.direction is not None:
            size = sum(len(chunk) for _, chunk in self.direction.chunks)
            return f"fault: {size} held bytes to fd {self.fd}"
        return f"fault: {len(self.data)} reordered bytes to fd {self.fd}"


class _DatagramArrival:
    """An external event that lands one delayed datagram."""

    __slots__ = ("data", "fd", "land")

    def __init__(self, data: bytes, land: Callable[[bytes], None], fd: int) -> None:
        self.data = data
        self.land = land
        self.fd = fd  # the sending fd (for describe only)

    def describe(self) -> str:
        return f"fault: a delayed {len(self.data)}-byte datagram from fd {self.fd}"


def _receiving_fd(writer: _Writer) -> int:
    return writer.read_fd if isinstance(writer, _Pipe) else writer.peer.fd


class FaultInjector:
    """Injects the faults of one simulation (see the module docstring for its rules).

    Built by :class:`~evloop.Simulation`; it plugs itself into the fd table
    (``FdTable.faults``), the clock (``VirtualClock.fault_hook``) and the
    dispatch observer (:meth:`preempting`), each only when a fault needs it.
    """

    def __init__(
        self,
        plan: dict[str, frozenset[int] | None],
        *,
        sched: Scheduler,
        fds: FdTable,
        clock: VirtualClock,
        step: StepFn,
        outside: Callable[[int], bool],
    ) -> None:
        self._plan = plan
        self._sched = sched
        self._fds = fds
        self._step = step
        self._outside = outside
        self._now = clock._now
        self._directions: dict[_Writer, _Direction] = {}
        #: Writer -> how many of its reordered chunks are still held.
        self._reordered: dict[_Writer, int] = {}
        #: Writer -> the time its partition heals (both ends of a socket pair).
        self._heal: dict[_Writer, int] = {}
        self._host_offset = 0
        self._skew_ppm = 0
        self._skew_since = 0
        if not DATA_FAULTS.isdisjoint(plan):
            fds.faults = self
        if "host-jump" in plan or "host-skew" in plan:
            clock.fault_hook = self.host_read

    @property
    def preempts(self) -> bool:
        return "preempt" in self._plan

    # -- asking -------------------------------------------------------------------------

    def _on(self, kind: str, fd: int) -> bool:
        plan = self._plan
        if kind not in plan:
            return False
        fds = plan[kind]
        return fds is None or fd in fds

    def _decide(self, options: list[tuple[str, str, int]]) -> tuple[str, str, int]:
        """Ask one FAULT decision over ``none`` + ``options``; the pick as (kind, label, arg)."""
        labels = ["none"]
        labels.extend(label for _, label, _ in options)
        index = self._sched.choose(ChoiceKind.FAULT, labels)
        return ("none", "none", 0) if index == 0 else options[index - 1]

    def _injected(self, kind: str, fd: int, detail: str) -> None:
        self._step(DispatchKind.FAULT, _CODES[kind], max(fd, 0), None,
                   InjectedFault(kind, fd, detail))

    # -- reads (called by FdTable._read_buffer) -----------------------------------------

    def read(self, fd: int, available: int, n: int) -> int:
        """How many of ``available`` bytes a read of ``n`` on ``fd`` takes; may raise.

        Called only with ``n > 0`` and data there.
        """
        if self._outside(fd):
            return n
        options: list[tuple[str, str, int]] = []
        k = n if n < available else available
        if k > 1 and self._on("short-read", fd):
            for short in sorted({1, k // 2}):
                options.append(("short-read", f"short-read {short}", short))
        self._errno_options(options, fd)
        if not options:
            return n
        kind, label, arg = self._decide(options)
        if kind == "none":
            return n
        self._injected(kind, fd, label)
        if kind == "short-read":
            return arg
        raise self._errno_error(kind, "read", fd)

    def _errno_options(self, options: list[tuple[str, str, int]], fd: int) -> None:
        if self._on("eagain", fd):
            options.append(("eagain", "eagain", 0))
        if self._on("eintr", fd):
            options.append(("eintr", "eintr", 0))

    @staticmethod
    def _errno_error(kind: str, op: str, fd: int) -> OSError:
        if kind == "eagain":
            return _error(errno.EAGAIN, op, fd)
        return OSError(errno.EINTR, f"{_EINTR_TEXT} ({op} on fd {fd})")

    # -- writes (called by FdTable._write_pipe / _write_socket) -----------------------

    def write(self, fd: int, writer: _Writer, data: bytes) -> int:
        """Write ``data`` (non-empty, checked and cut to the room there) from ``writer``."""
        now = self._now[0]
        n = len(data)
        if self._outside(fd):
            self._send(writer, data, now)
            return n
        partitioned = self._heal_at(writer, now) > now
        options: list[tuple[str, str, int]] = []
        on = self._on
        if on("delay", fd) and not partitioned:
            options.extend(("delay", f"delay {d // SCALE_MS}ms", d) for d in DELAYS_NS)
        if on("reorder", fd) and not partitioned:
            options.append(("reorder", f"reorder {REORDER_NS // SCALE_MS}ms", REORDER_NS))
        if on("loss", fd):
            options.append(("loss", "loss", 0))
        if on("duplicate", fd):
            options.append(("duplicate", "duplicate", 0))
        if on("partition", fd) and not partitioned:
            options.append(
                ("partition", f"partition {PARTITION_NS // SCALE_MS}ms", PARTITION_NS)
            )
        if on("short-write", fd) and n > 1 and (isinstance(writer, _SocketEnd) or n > PIPE_BUF):
            for short in sorted({1, n // 2}):
                options.append(("short-write", f"short-write {short}", short))
        self._errno_options(options, fd)
        if on("reset", fd) and isinstance(writer, _SocketEnd) and writer.flavor == TCP:
            options.append(("reset", "reset", 0))
        if not options:
            self._send(writer, data, now)
            return n
        kind, label, arg = self._decide(options)
        if kind == "none":
            self._send(writer, data, now)
            return n
        self._injected(kind, fd, label)
        if kind == "eagain" or kind == "eintr":
            raise self._errno_error(kind, "write", fd)
        if kind == "reset":
            assert isinstance(writer, _SocketEnd)
            self._fds.reset_connection(writer)
            raise _error(errno.ECONNRESET, "write", fd)
        if kind == "short-write":
            self._send(writer, data[:arg], now)
            return arg
        if kind == "delay":
            self._send(writer, data, now + arg)
        elif kind == "reorder":
            self._reorder(writer, data, now + arg)
        elif kind == "duplicate":
            self._send(writer, data, now)
            self._send(writer, data, now)
        elif kind == "partition":
            self._heal[writer] = now + arg
            if isinstance(writer, _SocketEnd):
                self._heal[writer.peer] = now + arg
            self._send(writer, data, now)
        # loss: nothing arrives
        return n

    def _heal_at(self, writer: _Writer, now: int) -> int:
        """When ``writer``'s partition heals; 0 if it is not partitioned."""
        heal = self._heal.get(writer)
        if heal is None:
            return 0
        if heal <= now:
            del self._heal[writer]
            return 0
        return heal

    # -- holding and landing bytes --------------------------------------------------------

    def _send(self, writer: _Writer, data: bytes, at: int) -> None:
        """Land ``data`` at time ``at`` (or later: behind held bytes, after a partition)."""
        now = self._now[0]
        heal = self._heal_at(writer, now)
        if heal > at:
            at = heal
        direction = self._directions.get(writer)
        if direction is None:
            if at <= now:
                landed = self._fds._land(writer, data)
                if landed == len(data):
                    return
                data = data[landed:]  # the rest waits for room
            direction = self._directions[writer] = _Direction(writer)
        chunks = direction.chunks
        if chunks and chunks[-1][0] > at:
            at = chunks[-1][0]
        chunks.append((at, data))
        if not direction.queued:
            self._queue(direction, at, now)

    def _queue(self, direction: _Direction, at: int, now: int, retry: bool = False) -> None:
        """Queue the arrival of ``direction``'s head: at ``at``, or (``retry``, the
        receiver being full) at every scheduling point until it fits."""
        direction.queued = True
        event = _Arrival(direction.writer, direction, b"", _receiving_fd(direction.writer))
        if retry and at <= now:
            self._sched.stalled.append(_as_external(event))
            self._sched.dirty[0] = True
        else:
            self._sched.add_external(max(at, now), _as_external(event))

    def _reorder(self, writer: _Writer, data: bytes, at: int) -> None:
        event = _Arrival(writer, None, data, _receiving_fd(writer))
        self._reordered[writer] = self._reordered.get(writer, 0) + 1
        self._sched.add_external(at, _as_external(event))

    def holds(self, writer: _Writer) -> bool:
        """Bytes ``writer`` wrote are still held: its close is not visible to the reader yet."""
        return writer in self._directions or writer in self._reordered

    def datagram(self, fd: int, data: bytes, land: Callable[[bytes], None]) -> None:
        """Send one datagram from ``fd``: ``land`` it now, after a delay, twice, or never."""
        options: list[tuple[str, str, int]] = []
        if not self._outside(fd):
            if self._on("delay", fd):
                options.extend(("delay", f"delay {d // SCALE_MS}ms", d) for d in DELAYS_NS)
            if self._on("loss", fd):
                options.append(("loss", "loss", 0))
            if self._on("duplicate", fd):
                options.append(("duplicate", "duplicate", 0))
        kind, label, arg = self._decide(options) if options else ("none", "none", 0)
        if kind == "none":
            land(data)
            return
        self._injected(kind, fd, f"datagram {label}")
        if kind == "delay":
            arrival = _DatagramArrival(data, land, fd)
            self._sched.add_external(self._now[0] + arg, _as_external(arrival))
        elif kind == "duplicate":
            land(data)
            land(data)

    def deliver(self, event: object) -> None:
        """Land the bytes of an arrival (called by the simulation's external delivery)."""
        if isinstance(event, _DatagramArrival):
            event.land(event.data)
            self._step(DispatchKind.FAULT, _ARRIVE_CODE, max(event.fd, 0), None,
                       InjectedFault("arrive", event.fd, "a delayed datagram arrives"))
            return
        if not isinstance(event, _Arrival):
            raise TypeError(f"not a fault arrival: {event!r}")
        now = self._now[0]
        writer = event.writer
        heal = self._heal_at(writer, now)
        direction = event.direction
        if direction is None:  # a reordered chunk: lands on its own, unless partitioned
            if heal > now:
                self._sched.add_external(heal, _as_external(event))
                return
            landed = self._land(writer, event.data)
            left = self._reordered[writer] - 1
            if left:
                self._reordered[writer] = left
            else:
                del self._reordered[writer]
            if landed < len(event.data):
                self._send(writer, event.data[landed:], now)
        else:
            direction.queued = False
            if heal > now:
                self._queue(direction, heal, now)
                return
            chunks = direction.chunks
            while chunks and chunks[0][0] <= now:
                at, data = chunks[0]
                landed = self._land(writer, data)
                if landed < len(data):
                    chunks[0] = (at, data[landed:])
                    self._queue(direction, at, now, retry=True)  # no room yet
                    return
                chunks.popleft()
            if chunks:
                self._queue(direction, chunks[0][0], now)
                return
            del self._directions[writer]
        if not self.holds(writer):
            # The last held byte is in: a close of the writer becomes visible (EOF, HUP).
            fd = _receiving_fd(writer)
            if fd >= 0:
                self._fds._notify(fd)

    def _land(self, writer: _Writer, data: bytes) -> int:
        landed = self._fds._land(writer, data)
        fd = _receiving_fd(writer)
        if landed and fd >= 0:  # (bytes for a closed reader are dropped silently)
            self._step(DispatchKind.FAULT, _ARRIVE_CODE, fd, None,
                       InjectedFault("arrive", fd, f"{landed} held bytes arrive"))
        return landed

    # -- the HOST clock (VirtualClock.fault_hook) -----------------------------------------

    def host_read(self, clock_type: ClockType, value: int) -> int:
        """What a read of ``clock_type`` gives: HOST with its jumps and skew so far."""
        if clock_type != ClockType.HOST:
            return value
        options: list[tuple[str, str, int]] = []
        if "host-jump" in self._plan:
            for jump in HOST_JUMPS_NS:
                options.append(("host-jump", f"jump {jump / 1e9:+g}s", jump))
        if "host-skew" in self._plan:
            for ppm in HOST_SKEWS_PPM:
                if ppm != self._skew_ppm:
                    options.append(("host-skew", f"skew {ppm:+d}ppm", ppm))
        now = self._now[0]
        kind, label, arg = self._decide(options) if options else ("none", "none", 0)
        if kind != "none":
            self._injected(kind, -1, label)
            if kind == "host-jump":
                self._host_offset += arg
            else:
                self._host_offset += self._skew(now)
                self._skew_ppm = arg
                self._skew_since = now
        return value + self._host_offset + self._skew(now)

    def _skew(self, now: int) -> int:
        return (now - self._skew_since) * self._skew_ppm // 1_000_000

    # -- preemption ---------------------------------------------------------------------

    def preempting(self, observer: DispatchObserver) -> DispatchObserver:
        """``observer``, preceded by a preemption point (the contexts' dispatch observer)."""
        sched = self._sched

        def observe(kind: int, ctx: Any, what: Any) -> None:
            if sched._runnable() and self._decide([("preempt", "preempt", 0)])[0] != "none":
                self._injected("preempt", -1, "preempt")
                sched.yield_now()
            observer(kind, ctx, what)

        return observe


def _as_external(event: _Arrival | _DatagramArrival) -> ExternalEvent:
    """An arrival rides the scheduler's external-event queue, which only calls ``describe``
    and hands the event back to the simulation's delivery function."""
    return event  # type: ignore[return-value]
