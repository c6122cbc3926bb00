"""Every seam the replay layer plugs into, on one page, and the one door it plugs them through.

``evloop`` never imports ``replay``. Wherever a run could take a value from
outside (a decision, a clock read, a random draw, input, a wait), the loop
asks one small interface defined here, as QEMU's ``util/`` calls ``replay_*``
functions that do nothing when replay is off. A replay session implements
them and hands them to :meth:`~evloop.Simulation.plug` as one :class:`Seams`
value, once, before the scenario runs. Nothing else in ``evloop`` is meant to
be set from outside.

The seams, and who asks them:

=====================  ===========================================  ===========================
seam                   asked by                                     without replay
=====================  ===========================================  ===========================
``chooser``            ``Scheduler.choose``: which thread takes     the simulation's chooser
                       the turn, which simultaneous input comes     (FIFO by default)
                       first, whether a fault fires, whether a
                       fine preemption point preempts
``clock_read``         ``VirtualClock.get_ns`` of HOST and          the virtual clock's value
                       VIRTUAL_RT (QEMU's ``REPLAY_CLOCK``)
``random_draw``        ``SimRandom._next64``: every 64-bit draw     the seeded splitmix64 value
``hooks``              the simulation: input delivered, every       nothing
                       ``checkpoint_interval`` steps, shutdown
``timer_gate``         ``TimerList.run_timers``, before a HOST or   every list runs
                       VIRTUAL_RT list runs due timers, before
                       each due VIRTUAL timer not EXTERNAL
                       (QEMU's ``replay_checkpoint``)
``blocker``            every blocking wait (``FdTable.blocker``)    the scheduler
``async_event``        ``AsyncEventQueue.release``, with            nothing
                       ``async_events="queue"``: each queued BH
                       as it is released (``replay_save_events``)
=====================  ===========================================  ===========================

Two seams are structural rather than plugged. The fd layer is one
:class:`FdMonitor` (an ``AioContext`` watches its fds through it and is told
each fd's readiness as a :class:`FdWatcher`), as QEMU's ``FDMonOps`` is one
vtable; host mode feeds the virtual one instead of replacing it. Observation
is a :class:`DispatchObserver` that every context tells about each callback
before it runs; the simulation turns those into steps, the rolling digest and
checkpoints (read through ``Simulation.steps`` and ``Simulation.digest``).

Every seam is called from the thread of control holding the turn, at a
deterministic point, so a session may read the simulation's step counter to
place what it logs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from functools import partial
from typing import Any, Protocol

from .loop.clock import ClockType

__all__ = [
    "Blocker",
    "CheckpointGate",
    "ChoiceKind",
    "Chooser",
    "ClockReadHook",
    "DispatchKind",
    "DispatchObserver",
    "FdMonitor",
    "FdWatcher",
    "RandomDrawHook",
    "Seams",
    "SimulationHooks",
    "WaitCondition",
    "bind_observer",
]


# -- decisions --------------------------------------------------------------------------


class ChoiceKind(IntEnum):
    """What a decision is about."""

    THREAD = 0  #: which runnable thread of control takes the next turn
    EXTERNAL = 1  #: which of several simultaneous external events comes first
    FAULT = 2  #: whether (and which) fault to inject
    READY_FD = 3  #: asyncio: which of several ready fds is handled first
    TIMER_TIE = 4  #: asyncio: the order of timers due at the same nanosecond
    READY_QUEUE = 5  #: asyncio, chaos mode only: the order of a batch of ready callbacks
    #: which coroutine, of those other threads scheduled on one context, is entered first
    COROUTINE = 6
    #: fine preemption only: at a preemption point inside a primitive, whether the
    #: running thread keeps the turn (option 0) or which other runnable thread takes it
    PREEMPT = 7


class Chooser(Protocol):
    """Answers every decision. One that needs to see the simulation (which thread
    of control is running) may also define ``attach(sim)``, which the
    simulation calls once, when it is built with that chooser."""

    def choose(self, kind: ChoiceKind, options: Sequence[str]) -> int:
        """Return an index into ``options`` (at least two of them)."""
        ...


# -- values read from outside -----------------------------------------------------------

#: ``hook(clock_type, value) -> value`` on every read of HOST or VIRTUAL_RT.
ClockReadHook = Callable[[ClockType, int], int]
#: ``hook(value) -> value`` on every 64-bit draw of the simulation's RNG.
RandomDrawHook = Callable[[int], int]
#: ``gate(clock_type) -> bool``, QEMU's ``replay_checkpoint(CHECKPOINT_CLOCK_<type>)``:
#: asked before a HOST or VIRTUAL_RT list runs its due timers, and before each due
#: VIRTUAL timer without ``QEMU_TIMER_ATTR_EXTERNAL`` (never for REALTIME); False
#: stops the list there (``TimerList._run_gated``).
CheckpointGate = Callable[[ClockType], bool]


# -- blocking ---------------------------------------------------------------------------


class WaitCondition(Protocol):
    """What a blocked thread of control waits for."""

    def ready(self) -> bool:
        """True when the wait can end now. Must be cheap and side-effect free."""
        ...

    def describe(self) -> str:
        """A short human description, used in deadlock reports."""
        ...


class Blocker(Protocol):
    def block(self, cond: WaitCondition, timeout_ns: int) -> None:
        """Return once ``cond.ready()`` or ``timeout_ns`` (-1: never) has elapsed."""
        ...


# -- the fd layer -----------------------------------------------------------------------


class FdWatcher(Protocol):
    """Told an fd number's readiness mask whenever it may have changed."""

    def fd_ready(self, fd: int, mask: int) -> None:
        """``mask`` is the fd's current mask (POLLNVAL once closed). Must be idempotent."""
        ...


class FdMonitor(Protocol):
    """What an ``AioContext`` needs of the fd layer (``FdTable`` is the virtual one)."""

    blocker: Blocker | None

    def watch(self, fd: int, watcher: FdWatcher) -> None: ...

    def unwatch(self, fd: int, watcher: FdWatcher) -> None: ...

    def mask(self, fd: int) -> int: ...


# -- observation ------------------------------------------------------------------------


class DispatchKind:
    """What kind of callback an observer is told about (plain ints: hot path)."""

    BH = 0
    READ = 1
    WRITE = 2
    POLL_READY = 3
    TIMER = 4
    TURN = 5
    INPUT = 6
    FAULT = 7  #: a fault injected, or held bytes arriving (``faults.py``)
    NAMES = ("bh", "read", "write", "poll_ready", "timer", "turn", "input", "fault")


class DispatchObserver(Protocol):
    """Told ``(kind, context, callback owner)`` before each callback runs (kinds: DispatchKind)."""

    def __call__(self, kind: int, ctx: Any, what: Any) -> None: ...


def bind_observer(observer: DispatchObserver, kind: int, ctx: Any) -> Callable[[Any], None]:
    """``observer`` for a run of dispatches of one kind, from one context: ``bound(what)``.

    Each call tells the observer what ``observer(kind, ctx, what)`` would.
    The caller promises that the same thread of control holds the turn at
    every call (a timer list running its due timers, say). An observer that
    can do it more cheaply offers ``bind(kind, ctx)`` returning the bound
    form (the simulation's lean observers build the step key's upper half
    once); any other is bound with :func:`functools.partial`.
    """
    bind = getattr(observer, "bind", None)
    if bind is not None:
        bound: Callable[[Any], None] = bind(kind, ctx)
        return bound
    return partial(observer, kind, ctx)


class SimulationHooks(Protocol):
    """What a simulation tells the replay layer, beyond the chooser, clock and RNG seams."""

    def checkpoint(self, step: int) -> None:
        """Every ``checkpoint_interval`` steps, after the step has been counted."""
        ...

    def input(self, channel: str, data: bytes, close: bool) -> None:
        """External input was delivered (bytes, or the peer closed), before its step."""
        ...

    def shutdown(self, cause: str) -> None:
        """A shutdown was requested (the first request of a run only)."""
        ...


# -- the door ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Seams:
    """Everything a replay session plugs into a simulation, given once to ``Simulation.plug``.

    A field left None keeps the simulation's own behaviour. ``chooser`` and
    ``blocker`` wrap what the simulation already has: each is called once
    with the simulation's own (its chooser; its scheduler) and returns the one
    every decision (every wait) goes to from then on.
    """

    chooser: Callable[[Chooser], Chooser] | None = None
    clock_read: ClockReadHook | None = None
    random_draw: RandomDrawHook | None = None
    hooks: SimulationHooks | None = None
    timer_gate: CheckpointGate | None = None
    blocker: Callable[[Blocker], Blocker] | None = None
    #: ``hook(sequence, name)``, told each event the async-event queue releases.
    async_event: Callable[[int, str], None] | None = None
