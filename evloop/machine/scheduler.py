"""Threads of control and the turn that serialises them.

Only one thread of control runs simulation code at a time: the one holding
the *turn*. A thread holds its turn while it runs and gives it up only inside
a blocking wait (a blocking ``AioContext.poll``, ``MainLoop.wait``, a virtual
sleep, a wait on an fd, event or join), exactly where QEMU's
``os_host_main_loop_wait`` drops the BQL and the replay mutex around ``ppoll``.

Two backends carry the turn, and they decide nothing: the same rules below,
the same chooser questions, the same steps and digests.

* ``"greenlet"`` (the default): every thread of control is a greenlet on the
  OS thread that built the simulation. Handing over the turn is one
  ``greenlet.switch``, about twenty times cheaper than waking an OS thread, and
  parked threads survive ``os.fork()``. A thread of control must then never
  block in a real call or spin without waiting: nothing else can run until it
  gives the turn back (the watchdog, ``watchdog.py``, names such a thread).
* ``"os"``: every thread of control is a real OS thread and the turn is one
  ``threading.Lock`` per thread, used as a binary semaphore: giving the turn
  releases the next thread's lock and then blocks on one's own. Use it for
  threads that must block in real C calls.

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

External input (peers' bytes, faults' arrivals) waits in the heap that
:class:`~evloop.machine.delivery.Delivery` keeps (``delivery.py``; the
scheduler inherits it) and is delivered each time the turn is rescheduled.

Only the threads that wait are looked at when the turn moves: they sit in
one list in the order they began to wait (their sequence numbers increase),
so the FIFO order needs no sort and finished threads are never scanned. The
hot path compares states against module constants, not enum attributes.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from greenlet import GreenletExit, getcurrent, greenlet

from ..errors import DeadlockError, SimulationError
from ..loop.clock import ClockType, VirtualClock
from ..seams import ChoiceKind, Chooser, WaitCondition
from .delivery import Delivery, ExternalDelivery
from .thread import (
    _ALWAYS,
    _BLOCKED,
    _DONE,
    _RUNNABLE,
    _RUNNING,
    ThreadOfControl,
    ThreadState,
    _active,
    _Cancelled,
    _JoinCondition,
    _Never,
    current_thread_of_control,
)

if TYPE_CHECKING:
    from .external import ExternalEvent
    from .watchdog import Watchdog

__all__ = [
    "BACKENDS",
    "Backend",
    "Scheduler",
    "ThreadOfControl",
    "ThreadState",
    "current_thread_of_control",
]

Backend = Literal["greenlet", "os"]
#: The ways threads of control can be carried (see the module docstring).
BACKENDS: tuple[Backend, ...] = ("greenlet", "os")


TurnObserver = Callable[[ThreadOfControl], None]


class Scheduler(Delivery):
    """Grants turns, warps the clock, detects deadlock. The simulation's blocker."""

    def __init__(
        self, clock: VirtualClock, chooser: Chooser, threads: Backend = "greenlet"
    ) -> None:
        if threads not in BACKENDS:
            raise ValueError(f"threads must be 'greenlet' or 'os', not {threads!r}")
        self.clock = clock
        self.chooser = chooser
        #: How threads of control are carried: ``"greenlet"`` or ``"os"``.
        self.backend: Backend = threads
        self._green = threads == "greenlet"
        #: The main loop's dirty signal: raised when a thread of control or
        #: external input appears (the main thread is no longer alone).
        self.dirty: list[bool] = [False]
        self.threads: list[ThreadOfControl] = []
        #: The threads that wait for a turn (runnable or blocked), by sequence number.
        self._waiting: list[ThreadOfControl] = []
        self._names: set[str] = set()
        self._seq = 0
        self.main = self._register("main", None, idle_ok=False)
        self._waiting.remove(self.main)
        self.main.state = _RUNNING
        self.main._ident = threading.get_ident()
        if self._green:
            self.main._glet = getcurrent()
        else:
            self.main._turn = _taken_lock()
        self.current = self.main
        #: Turns handed to another thread so far (the watchdog's sign of life).
        self.switches = 0
        self.failure: BaseException | None = None
        self.stop_reason: str | None = None
        self.until_ns: int | None = None
        self.in_run = False
        self.idle_cond: WaitCondition | None = None
        self.on_turn: TurnObserver | None = None
        self.deliver: ExternalDelivery | None = None
        #: Armed around the main thread's waits (greenlet backend only).
        self.watchdog: Watchdog | None = None
        self._external: list[tuple[int, int, ExternalEvent]] = []
        self._external_seq = 0
        self.stalled: list[ExternalEvent] = []
        self._closing = False
        #: What the chooser raised, if it did: whoever drives the run (a play
        #: that diverged, a fuzzer out of input) ended it, so nothing may ask again.
        self.aborted: BaseException | None = None
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
        self.check_name(name)
        self._names.add(name)
        self.dirty[0] = True
        t = ThreadOfControl(self, name, len(self.threads), fn, idle_ok)
        t.seq = self._next_seq()
        self.threads.append(t)
        self._waiting.append(t)
        return t

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def spawn(self, name: str, fn: Callable[[], object], idle_ok: bool = False) -> ThreadOfControl:
        """Register and start a thread of control; it runs when first granted a turn."""
        if self._closing:
            raise SimulationError("cannot start a thread of control: the simulation is closed")
        t = self._register(name, fn, idle_ok)
        if self._green:
            t._ident = self.main._ident
            t._glet = greenlet(self._greenlet_main, self.main._glet)
            return t
        t._turn = _taken_lock()
        os_thread = threading.Thread(
            target=self._thread_main, args=(t,), name=f"evloop:{name}", daemon=True
        )
        t._os_thread = os_thread
        os_thread.start()
        return t

    def _greenlet_main(self, *_: object) -> None:
        # Entered by the first switch to a thread's greenlet (or by the end
        # of another one, which passes its result): the thread is the current
        # one. When it ends, the next thread already holds the turn;
        # returning resumes (or starts) it, by making it this greenlet's parent.
        t = self.current
        self._run_thread(t)
        if not self._closing:
            here = getcurrent()
            next_glet = self.current._glet
            if next_glet is not here and next_glet is not None:
                here.parent = next_glet

    def _thread_main(self, t: ThreadOfControl) -> None:
        turn = t._turn
        assert turn is not None
        turn.acquire()
        t._ident = threading.get_ident()
        _active.stack.append(self)
        self._run_thread(t)

    def _run_thread(self, t: ThreadOfControl) -> None:
        if self._closing:
            t.state = _DONE
            return
        fn = t._fn
        assert fn is not None
        try:
            fn()
        except (_Cancelled, GreenletExit):
            t.state = _DONE
            return
        except BaseException as exc:  # every failure stops the run, in the main thread
            exc.add_note(f"(raised in thread of control {t.name!r})")
            if self.failure is None:
                self.failure = exc
        t.state = _DONE
        t.cond = None
        if self._closing:
            return
        try:
            self._reschedule(t)
        except BaseException as exc:
            # Handing over the turn failed (a chooser raised, say): the run
            # stops with that error in the main thread; it must not vanish
            # with this thread.
            if self.failure is None:
                self.failure = exc
            main = self.main
            self.current = main
            if main.state is not _RUNNING:
                self._waiting.remove(main)
            main.state = _RUNNING
            if main._turn is not None:
                _give_turn(main._turn)

    # -- the blocker --------------------------------------------------------------

    def _check_caller(self) -> ThreadOfControl:
        me = self.current
        if (getcurrent() is not me._glet) if self._green else (threading.get_ident() != me._ident):
            if threading.get_ident() != me._ident:
                where = f"OS thread {threading.current_thread().name!r}"
            else:
                where = "a greenlet the simulation did not start"
            raise SimulationError(
                f"a blocking evloop call came from {where}, "
                f"but the turn belongs to thread of control {me.name!r}: start threads with "
                "sim.thread() so the simulation knows who can run"
            )
        return me

    def block(self, cond: WaitCondition, timeout_ns: int) -> None:
        """Give up the turn until ``cond`` is ready or ``timeout_ns`` has passed."""
        me = self._check_caller()
        main = self.main
        if self._closing and me is not main:
            raise _Cancelled()
        alone = len(self._waiting) == 0 and not self._external and not self.stalled
        if timeout_ns == 0:
            if alone:
                return
            me.state = _RUNNABLE
            me.cond = _ALWAYS
            me.wake_at = None
        else:
            if alone and cond.ready():
                return
            me.state = _BLOCKED
            me.cond = cond
            me.wake_at = None if timeout_ns < 0 else self.clock._now[0] + timeout_ns
        self._seq = seq = self._seq + 1
        me.seq = seq
        self._waiting.append(me)
        if me is main and not self.in_run:
            self._main_wait()
        else:
            self._reschedule(me)
        me.cond = None
        me.wake_at = None
        if me is main and self.failure is not None:
            failure, self.failure = self.failure, None
            raise failure

    def _main_wait(self) -> None:
        """The main thread waits outside ``run``: other threads run meanwhile (and are watched)."""
        stack = _active.stack
        stack.append(self)
        try:
            watchdog = self.watchdog
            if watchdog is not None and not watchdog.armed:
                with watchdog:
                    self._reschedule(self.main)
            else:
                self._reschedule(self.main)
        finally:
            stack.pop()

    def enter_run(self) -> None:
        """``Simulation.run`` starts: its threads of control run on this OS thread."""
        self.in_run = True
        _active.stack.append(self)

    def leave_run(self) -> None:
        self.in_run = False
        stack = _active.stack
        if stack and stack[-1] is self:
            stack.pop()

    def alone(self) -> bool:
        """The running thread is the only one that can run: no other waits, no input is due.

        While this holds, a blocking wait only warps the clock (or ends the
        run); ``Simulation.run`` then runs quiet main-loop iterations.
        """
        return not self._waiting and not self._external and not self.stalled

    def sleep(self, ns: int) -> None:
        if ns < 0:
            raise ValueError(f"cannot sleep for a negative time ({ns} ns)")
        self.block(_Never(f"sleep({ns})"), ns)

    def yield_now(self) -> None:
        """A preemption point: let any other runnable thread of control go first."""
        self.block(_ALWAYS, 0)

    def preempt(self) -> None:
        """A fine preemption point (``preemption.py``): another runnable thread may take the turn.

        Option 0 of the PREEMPT decision is the running thread, which keeps the
        turn; the others are the runnable threads, longest waiting first. Only
        asked from the thread of control holding the turn, inside ``run`` or a
        wait of the main thread's; elsewhere (the scenario being built, a
        greenlet or OS thread the simulation did not start, a run that is
        stopping) it does nothing.
        """
        me = self.current
        if self._green:
            if getcurrent() is not me._glet:
                return
        elif threading.get_ident() != me._ident:
            return
        if (me is self.main and not self.in_run) or self._closing or self.halt[0]:
            return
        if self.failure is not None or self.stop_reason is not None or not self._waiting:
            return
        others = self._runnable()
        if not others:
            return
        index = self.choose(ChoiceKind.PREEMPT, [me.name, *(t.name for t in others)])
        if index == 0:
            return
        me.state = _RUNNABLE
        me.cond = _ALWAYS
        me.wake_at = None
        self._seq = seq = self._seq + 1
        me.seq = seq
        self._waiting.append(me)
        self._grant(me, others[index - 1])
        me.cond = None
        if me is self.main and self.failure is not None:
            failure, self.failure = self.failure, None
            raise failure

    def join(self, target: ThreadOfControl, timeout_ns: int = -1) -> bool:
        if target is self.current:
            raise SimulationError(f"thread of control {target.name!r} cannot join itself")
        if target.state is not _DONE:
            self.block(_JoinCondition(target), timeout_ns)
        return target.state is _DONE

    # -- scheduling ---------------------------------------------------------------

    def _runnable(self) -> list[ThreadOfControl]:
        now = self.clock._now[0]
        out = []
        for t in self._waiting:  # already in FIFO order
            if t.state is _RUNNABLE:
                out.append(t)
                continue
            at = t.wake_at  # the cheap test first: a timeout that is over
            if at is not None and at <= now:
                out.append(t)
                continue
            cond = t.cond
            if cond is not None and cond.ready():
                out.append(t)
        return out

    def hands_back(self, me: ThreadOfControl) -> bool:
        """Whether a preemption point of ``me`` now (``block`` with timeout 0) would
        give the turn straight back to ``me``: no other thread can run, nothing
        is to be delivered, the run is not ending. Such a point changes nothing
        (one candidate is no decision, and no turn passes), so a caller may skip
        it; the test is :meth:`_runnable`'s over the waiting threads (keep the
        two in step).
        """
        if (
            self._external or self.stalled or self._closing or self.failure is not None
            or self.stop_reason is not None or self.halt[0]
            or (me is self.main and not self.in_run)
        ):
            return False
        now = self.clock._now[0]
        for t in self._waiting:
            if t.state is _RUNNABLE:
                return False
            at = t.wake_at
            if at is not None and at <= now:
                return False
            cond = t.cond
            if cond is not None and cond.ready():
                return False
        return True

    def _next_wake(self) -> int | None:
        wake: int | None = None
        for t in self._waiting:
            at = t.wake_at
            if t.state is _BLOCKED and at is not None and (wake is None or at < wake):
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
            ) and self.main.state is not _DONE:
                self._grant(me, self.main)
                return
            candidates = self._runnable()
            if candidates:
                if len(candidates) == 1:
                    pick = candidates[0]
                else:
                    pick = candidates[self.choose(ChoiceKind.THREAD, [t.name for t in candidates])]
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
        return self.in_run and main.state is _BLOCKED and main.cond is self.idle_cond

    def choose(self, kind: ChoiceKind, options: list[str]) -> int:
        """The one door of every decision: ask the chooser, and check its answer."""
        try:
            index = self.chooser.choose(kind, options)
        except BaseException as exc:
            self.aborted = exc
            raise
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
        for t in self._waiting:
            if t is not main and t.state is _BLOCKED and not t.idle_ok:
                return False
        return True

    def _deadlock(self) -> DeadlockError:
        blocked = tuple((t.name, t.waiting_for()) for t in self.threads if t.state is _BLOCKED)
        lines = "\n".join(f"  {name}: blocked in {what}" for name, what in blocked)
        return DeadlockError(
            f"deadlock at t={self.clock.get_ns(ClockType.REALTIME)} ns: every thread of control "
            f"is blocked, and no timer, timeout or external input is pending:\n{lines}",
            blocked,
        )

    def _grant(self, me: ThreadOfControl, pick: ThreadOfControl) -> None:
        self._waiting.remove(pick)
        pick.state = _RUNNING
        self.current = pick
        if pick is me:
            return
        self.switches += 1
        if self.on_turn is not None and not self.halt[0]:
            # A handover forced by the step limit is not a step of the run.
            self.on_turn(pick)
        if self._green:
            if me.state is _DONE:
                return  # _greenlet_main returns into pick
            glet = pick._glet
            assert glet is not None
            glet.switch()
        else:
            assert pick._turn is not None and me._turn is not None
            pick._turn.release()
            if me.state is _DONE:
                return
            me._turn.acquire()
        if self._closing and me is not self.main:
            raise _Cancelled()

    # -- shutdown -----------------------------------------------------------------

    def close(self) -> None:
        """Unwind every thread of control still waiting for a turn (idempotent)."""
        if self._closing:
            return
        self._closing = True
        me = threading.get_ident()
        here = getcurrent()
        for t in self.threads:
            if t is self.main or t.state is _DONE or t is self.current:
                continue
            glet = t._glet
            if glet is not None:
                if glet and glet is not here:  # started and not finished: unwind it
                    glet.parent = here
                    glet.throw(_Cancelled())
            elif t._turn is not None:
                # Closing after a Ctrl-C reached the main thread while another
                # OS thread held the turn, which may hand it on meanwhile: a
                # lock already released is a thread just handed the turn, and
                # it unwinds on its own as it finds the scheduler closing.
                _give_turn(t._turn)
                os_thread = t._os_thread
                if os_thread is not None and os_thread.ident != me:
                    os_thread.join(timeout=5.0)
            t.state = _DONE
        self._waiting.clear()


def _taken_lock() -> threading.Lock:
    """A turn lock, taken: its thread waits on it until the turn is handed over."""
    lock = threading.Lock()
    lock.acquire()
    return lock


def _give_turn(turn: threading.Lock) -> None:
    """Release a turn lock that a concurrent handover may have released already."""
    with contextlib.suppress(RuntimeError):  # "release unlocked lock": it has the turn
        turn.release()

