"""Threads of control and the turn lock that serialises them.

Threads of control are real OS threads, as in QEMU, but only one of them runs
simulation code at a time: the one holding the *turn*. A thread holds its
turn while it runs and gives it up only inside a blocking wait (a blocking
``AioContext.poll``, ``MainLoop.wait``, a virtual sleep, a wait on an fd,
event or join), exactly where QEMU's ``os_host_main_loop_wait`` drops the BQL
and the replay mutex around ``ppoll``.

Rules kept here:

* A wait with a zero timeout is a *preemption point*: the thread stays
  runnable, but another runnable thread may take the turn first.
* At every scheduling point the runnable threads are listed longest-waiting
  first (by the sequence number of their last wait) and the chooser picks
  one; the first option is the FIFO order. One option is no decision.
* Only when no thread can run does time move: the clock warps to the soonest
  deadline of any blocked thread or pending external event (icount's warp).
* When nothing can ever happen again, a run stops quietly if every blocked
  thread is an idle event loop (the main loop, IOThreads, pool workers);
  otherwise the wait that can never return raises
  :class:`~evloop.errors.DeadlockError`, naming every blocked thread.
* A thread of control whose function raises stops the run: the exception is
  re-raised in the main thread, noted with the thread's name.
* Each turn handed to a different thread is a step, as is each callback the
  loops dispatch: the step count is the run's position counter.

The turn itself is one ``threading.Lock`` per thread, used as a binary
semaphore: giving the turn releases the next thread's lock and then blocks
on one's own. No other lock is needed, because no two threads ever run
simulation code at once.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING

from ..errors import DeadlockError, EvloopInternalError, SimulationError
from ..loop.clock import ClockType, VirtualClock
from ..loop.waiting import WaitCondition
from .chooser import ChoiceKind, Chooser

if TYPE_CHECKING:
    from .external import ExternalEvent

__all__ = ["Scheduler", "ThreadOfControl", "ThreadState"]


class ThreadState(Enum):
    RUNNING = "running"
    RUNNABLE = "runnable"
    BLOCKED = "blocked"
    DONE = "done"


class _Cancelled(BaseException):
    """Unwinds a thread of control whose simulation was closed while it waited."""


class _Never:
    """A condition that only a timeout ends (virtual sleep)."""

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what

    def ready(self) -> bool:
        return False

    def describe(self) -> str:
        return self.what


class _Always:
    __slots__ = ()

    def ready(self) -> bool:
        return True

    def describe(self) -> str:
        return "a preemption point"


_ALWAYS = _Always()


class ThreadOfControl:
    """A thread of control of a simulation: the main thread, an IOThread, a worker."""

    __slots__ = (
        "_fn",
        "_ident",
        "_os_thread",
        "_sched",
        "_turn",
        "cond",
        "idle_ok",
        "index",
        "name",
        "seq",
        "state",
        "wake_at",
    )

    def __init__(
        self,
        sched: Scheduler,
        name: str,
        index: int,
        fn: Callable[[], object] | None,
        idle_ok: bool,
    ) -> None:
        self._sched = sched
        self.name = name
        self.index = index
        self._fn = fn
        self.idle_ok = idle_ok
        self.state = ThreadState.RUNNABLE
        self.cond: WaitCondition | None = None
        self.wake_at: int | None = None
        self.seq = 0
        self._turn = threading.Lock()
        self._turn.acquire()
        self._ident: int | None = None
        self._os_thread: threading.Thread | None = None

    @property
    def done(self) -> bool:
        return self.state is ThreadState.DONE

    def is_alive(self) -> bool:
        return self.state is not ThreadState.DONE

    def join(self, timeout_ns: int = -1) -> bool:
        """Block the calling thread of control until this one has finished."""
        return self._sched.join(self, timeout_ns)

    def waiting_for(self) -> str:
        if self.state is not ThreadState.BLOCKED or self.cond is None:
            return self.state.value
        what = self.cond.describe()
        if self.wake_at is not None:
            what += f" (until t={self.wake_at})"
        return what

    def __repr__(self) -> str:
        return f"<ThreadOfControl {self.name!r} #{self.index} {self.waiting_for()}>"


class _JoinCondition:
    __slots__ = ("target",)

    def __init__(self, target: ThreadOfControl) -> None:
        self.target = target

    def ready(self) -> bool:
        return self.target.state is ThreadState.DONE

    def describe(self) -> str:
        return f"join({self.target.name!r})"


TurnObserver = Callable[[ThreadOfControl], None]
ExternalDelivery = Callable[["ExternalEvent"], None]


class Scheduler:
    """Grants turns, warps the clock, detects deadlock. The simulation's blocker."""

    def __init__(self, clock: VirtualClock, chooser: Chooser) -> None:
        self.clock = clock
        self.chooser = chooser
        self.threads: list[ThreadOfControl] = []
        self._names: set[str] = set()
        self._seq = 0
        self.main = self._register("main", None, idle_ok=False)
        self.main.state = ThreadState.RUNNING
        self.main._ident = threading.get_ident()
        self.current = self.main
        self.failure: BaseException | None = None
        self.stop_reason: str | None = None
        self.until_ns: int | None = None
        self.in_run = False
        self.idle_cond: WaitCondition | None = None
        self.on_turn: TurnObserver | None = None
        self.deliver: ExternalDelivery | None = None
        self._external: list[tuple[int, int, ExternalEvent]] = []
        self._external_seq = 0
        self.stalled: list[ExternalEvent] = []
        self._closing = False
        #: The simulation's step-limit flag: once raised, the turn goes to main.
        self.halt: list[bool] = [False]

    # -- registration -------------------------------------------------------------

    def check_name(self, name: str) -> None:
        """Raise ValueError if ``name`` cannot name a new thread of control."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a thread of control needs a non-empty name, not {name!r}")
        if name in self._names:
            raise ValueError(
                f"a thread of control named {name!r} already exists: names identify threads "
                "in traces, so they must be unique"
            )

    def _register(
        self, name: str, fn: Callable[[], object] | None, idle_ok: bool
    ) -> ThreadOfControl:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a thread of control needs a non-empty name, not {name!r}")
        if name in self._names:
            raise ValueError(
                f"a thread of control named {name!r} already exists: names identify threads "
                "in traces, so they must be unique"
            )
        self._names.add(name)
        t = ThreadOfControl(self, name, len(self.threads), fn, idle_ok)
        t.seq = self._next_seq()
        self.threads.append(t)
        return t

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def spawn(self, name: str, fn: Callable[[], object], idle_ok: bool = False) -> ThreadOfControl:
        """Register and start a thread of control; it runs when first granted a turn."""
        if self._closing:
            raise SimulationError("cannot start a thread of control: the simulation is closed")
        t = self._register(name, fn, idle_ok)
        os_thread = threading.Thread(
            target=self._thread_main, args=(t,), name=f"evloop:{name}", daemon=True
        )
        t._os_thread = os_thread
        os_thread.start()
        return t

    def _thread_main(self, t: ThreadOfControl) -> None:
        t._turn.acquire()
        if self._closing:
            t.state = ThreadState.DONE
            return
        t._ident = threading.get_ident()
        fn = t._fn
        assert fn is not None
        try:
            fn()
        except _Cancelled:
            t.state = ThreadState.DONE
            return
        except BaseException as exc:  # every failure stops the run, in the main thread
            exc.add_note(f"(raised in thread of control {t.name!r})")
            if self.failure is None:
                self.failure = exc
        t.state = ThreadState.DONE
        t.cond = None
        if self._closing:
            return
        try:
            self._reschedule(t)
        except BaseException as exc:
            # Handing over the turn failed (a chooser raised, say): the run
            # stops with that error in the main thread; it must not vanish
            # with this OS thread.
            if self.failure is None:
                self.failure = exc
            self.current = self.main
            self.main.state = ThreadState.RUNNING
            self.main._turn.release()

    # -- the blocker --------------------------------------------------------------

    def _check_caller(self) -> ThreadOfControl:
        me = self.current
        if threading.get_ident() != me._ident:
            raise SimulationError(
                f"a blocking evloop call came from OS thread {threading.current_thread().name!r}, "
                f"but the turn belongs to thread of control {me.name!r}: start threads with "
                "sim.thread() so the simulation knows who can run"
            )
        return me

    def block(self, cond: WaitCondition, timeout_ns: int) -> None:
        """Give up the turn until ``cond`` is ready or ``timeout_ns`` has passed."""
        me = self._check_caller()
        alone = len(self.threads) == 1 and not self._external and not self.stalled
        if timeout_ns == 0:
            if alone:
                return
            me.state = ThreadState.RUNNABLE
            me.cond = _ALWAYS
            me.wake_at = None
        else:
            if alone and cond.ready():
                return
            me.state = ThreadState.BLOCKED
            me.cond = cond
            me.wake_at = None if timeout_ns < 0 else self.clock._now[0] + timeout_ns
        me.seq = self._next_seq()
        self._reschedule(me)
        me.cond = None
        me.wake_at = None
        if me is self.main and self.failure is not None:
            failure, self.failure = self.failure, None
            raise failure

    def sleep(self, ns: int) -> None:
        if ns < 0:
            raise ValueError(f"cannot sleep for a negative time ({ns} ns)")
        self.block(_Never(f"sleep({ns})"), ns)

    def yield_now(self) -> None:
        """A preemption point: let any other runnable thread of control go first."""
        self.block(_ALWAYS, 0)

    def join(self, target: ThreadOfControl, timeout_ns: int = -1) -> bool:
        if target is self.current:
            raise SimulationError(f"thread of control {target.name!r} cannot join itself")
        if target.state is not ThreadState.DONE:
            self.block(_JoinCondition(target), timeout_ns)
        return target.state is ThreadState.DONE

    # -- scheduling ---------------------------------------------------------------

    def _runnable(self) -> list[ThreadOfControl]:
        now = self.clock._now[0]
        out = []
        for t in self.threads:
            state = t.state
            if state is ThreadState.RUNNABLE:
                out.append(t)
            elif state is ThreadState.BLOCKED:
                cond = t.cond
                if (cond is not None and cond.ready()) or (
                    t.wake_at is not None and t.wake_at <= now
                ):
                    out.append(t)
        if len(out) > 1:
            out.sort(key=_by_seq)
        return out

    def _next_wake(self) -> int | None:
        wake: int | None = None
        for t in self.threads:
            at = t.wake_at
            if t.state is ThreadState.BLOCKED and at is not None and (wake is None or at < wake):
                wake = at
        if self._external:
            at = self._external[0][0]
            if wake is None or at < wake:
                wake = at
        return wake

    def _reschedule(self, me: ThreadOfControl) -> None:
        """Pick who runs next (maybe ``me``), warping time if nobody can; hand over the turn."""
        while True:
            if self._external or self.stalled:
                self._deliver_due()
            if (
                self.failure is not None or self.stop_reason is not None or self.halt[0]
            ) and self.main.state is not ThreadState.DONE:
                self._grant(me, self.main)
                return
            candidates = self._runnable()
            if candidates:
                if len(candidates) == 1:
                    pick = candidates[0]
                else:
                    pick = candidates[self._choose(ChoiceKind.THREAD, [t.name for t in candidates])]
                self._grant(me, pick)
                return
            wake = self._next_wake()
            until = self.until_ns
            if until is not None and (wake is None or wake > until) and self._main_idle():
                self.clock.advance_to(until)
                self.stop_reason = "until"
                continue
            if wake is None:
                if self._quiescent():
                    self.stop_reason = "idle"
                else:
                    self.failure = self._deadlock()
                continue
            self.clock.advance_to(wake)

    def _main_idle(self) -> bool:
        """The main thread waits in the main loop of ``Simulation.run`` (nothing else)."""
        main = self.main
        return self.in_run and main.state is ThreadState.BLOCKED and main.cond is self.idle_cond

    def _choose(self, kind: ChoiceKind, options: list[str]) -> int:
        index = self.chooser.choose(kind, options)
        if not isinstance(index, int) or not 0 <= index < len(options):
            raise SimulationError(
                f"chooser {self.chooser!r} answered {index!r} to "
                f"{'an' if kind.name[0] in 'AEIOU' else 'a'} {kind.name} decision "
                f"among {len(options)} options"
            )
        return index

    def _quiescent(self) -> bool:
        """Nothing can happen again, and that is a normal end (all loops idle)."""
        main = self.main
        if not self._main_idle():
            return False
        for t in self.threads:
            if t is not main and t.state is ThreadState.BLOCKED and not t.idle_ok:
                return False
        return True

    def _deadlock(self) -> DeadlockError:
        blocked = tuple(
            (t.name, t.waiting_for()) for t in self.threads if t.state is ThreadState.BLOCKED
        )
        lines = "\n".join(f"  {name}: blocked in {what}" for name, what in blocked)
        return DeadlockError(
            f"deadlock at t={self.clock.get_ns(ClockType.REALTIME)} ns: every thread of control "
            f"is blocked, and no timer, timeout or external input is pending:\n{lines}",
            blocked,
        )

    def _grant(self, me: ThreadOfControl, pick: ThreadOfControl) -> None:
        pick.state = ThreadState.RUNNING
        self.current = pick
        if pick is me:
            return
        if self.on_turn is not None and not self.halt[0]:
            # A handover forced by the step limit is not a step of the run.
            self.on_turn(pick)
        pick._turn.release()
        if me.state is ThreadState.DONE:
            return
        me._turn.acquire()
        if self._closing:
            raise _Cancelled()

    # -- external events ----------------------------------------------------------

    def add_external(self, at_ns: int, event: ExternalEvent) -> None:
        self._external_seq += 1
        heapq.heappush(self._external, (at_ns, self._external_seq, event))

    def pending_external(self) -> int:
        return len(self._external) + len(self.stalled)

    def _deliver_due(self) -> None:
        deliver = self.deliver
        if deliver is None:
            raise EvloopInternalError("external events scheduled without a delivery function")
        # A source's events form one stream: they are delivered in the order
        # they were scheduled, and one that is stalled (its fd is full) holds
        # back every later event of the same source. Only which *source* goes
        # first among simultaneous events is a decision.
        if self.stalled:
            stalled, self.stalled = self.stalled, []
            for event in stalled:
                if _source(event) in {_source(e) for e in self.stalled}:
                    self.stalled.append(event)  # still behind a stalled one
                else:
                    deliver(event)
        queue = self._external
        now = self.clock._now[0]
        while queue and queue[0][0] <= now:
            at = queue[0][0]
            ties = []
            while queue and queue[0][0] == at:
                ties.append(heapq.heappop(queue)[2])
            while ties:
                firsts: list[ExternalEvent] = []
                sources: list[object] = []
                for event in ties:
                    source = _source(event)
                    if source not in sources:
                        sources.append(source)
                        firsts.append(event)
                index = 0
                if len(firsts) > 1:
                    index = self._choose(ChoiceKind.EXTERNAL, [e.describe() for e in firsts])
                event = firsts[index]
                ties.remove(event)
                if _source(event) in {_source(e) for e in self.stalled}:
                    self.stalled.append(event)
                else:
                    deliver(event)

    # -- shutdown -----------------------------------------------------------------

    def close(self) -> None:
        """Unwind every thread of control still waiting for a turn (idempotent)."""
        if self._closing:
            return
        self._closing = True
        me = threading.get_ident()
        for t in self.threads:
            if t is self.main or t.state is ThreadState.DONE:
                continue
            t._turn.release()
            os_thread = t._os_thread
            if os_thread is not None and os_thread.ident != me:
                os_thread.join(timeout=5.0)
            t.state = ThreadState.DONE


def _by_seq(t: ThreadOfControl) -> int:
    return t.seq


def _source(event: object) -> object:
    """The stream an external event belongs to (its peer, or itself)."""
    return getattr(event, "peer", event)
