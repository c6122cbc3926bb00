"""``Simulation``: a whole simulated machine, run deterministically.

A simulation bundles one :class:`~evloop.VirtualClock`, one
:class:`~evloop.FdTable`, one :class:`~evloop.MainLoop` and the threads of
control (the main thread, IOThreads, thread-pool workers, user threads such
as vCPU-like workers), and runs them one at a time, holding the turn (see
``scheduler.py``: greenlets on this OS thread by default, ``threads="os"``
for real OS threads; ``watchdog.py`` for the wall-clock watchdog). Its event
order is a pure function of the scenario, the seed and the chooser's answers.

The main thread is the OS thread that built the simulation; :meth:`run`
drives the main loop from it (``while not stop: main_loop_wait()``) until
nothing can ever happen again, a limit is reached, or :meth:`shutdown` is
requested. The simulation starts with the VM running: the VIRTUAL clock is
enabled, as ``vm_start`` does; simulation time is the REALTIME clock, which
reads the same as VIRTUAL while the VM runs.

Every callback the loops dispatch and every turn handed to another thread is
one *step*; :attr:`Simulation.steps` is the position counter the replay layer
aligns recorded input with. With ``log=True`` each step is also kept as a
:class:`DispatchEvent` in :attr:`Simulation.log`. The step bookkeeping (the
counter, the rolling digest, the watched steps) is ``stepping.py``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Literal

from ..errors import SimulationError
from ..loop.aio import AioContext
from ..loop.clock import ClockType, VirtualClock
from ..loop.fds import FdTable
from ..loop.mainloop import MainLoop
from ..loop.net import Network
from ..loop.quiet import QUIET_AGAIN, QUIET_UNTIL, run_quiet
from ..seams import CheckpointGate, Chooser, DispatchKind, DispatchObserver, Seams, SimulationHooks
from .asyncevents import ASYNC_EVENT_MODES, AsyncEventQueue, AsyncEvents, make_queued
from .chooser import FifoChooser
from .external import ExternalEvent, ScriptedPeer
from .faults import FaultInjector, parse_faults
from .iothread import IOTHREAD_POLL_MAX_NS_DEFAULT, IOThread, check_poll_params
from .observation import DispatchEvent, RawStep
from .preemption import make_fds_preemptible, make_preemptible, make_timers_preemptible
from .rng import SimRandom
from .scheduler import Backend, Scheduler, ThreadOfControl
from .simevent import SimEvent
from .stepping import Stepping
from .watchdog import DEFAULT_TIMEOUT_S, Watchdog

__all__ = ["PREEMPTION_MODES", "Preemption", "RunResult", "Simulation", "StopReason"]

Preemption = Literal["off", "fine"]
#: The preemption modes (``Simulation(preemption=...)``, ``preemption.py``).
PREEMPTION_MODES: tuple[Preemption, ...] = ("off", "fine")


class StopReason(Enum):
    IDLE = "idle"  #: nothing can ever happen again
    UNTIL = "until"  #: the time limit was reached
    MAX_STEPS = "max_steps"  #: the step limit was reached
    SHUTDOWN = "shutdown"  #: :meth:`Simulation.shutdown` was called


@dataclass(frozen=True, slots=True)
class RunResult:
    reason: StopReason
    steps: int
    time_ns: int
    shutdown_cause: str | None = None


class Simulation(Stepping):
    """A deterministic simulated machine: clock, fds, main loop, threads of control.

    ``threads`` picks how threads of control are carried: ``"greenlet"`` (one
    OS thread, cheap handovers) or ``"os"`` (real OS threads, for threads that
    must block in real C calls). ``watchdog`` is the wall-clock timeout, in
    seconds, after which a greenlet thread of control that never waits is
    stopped with :class:`~evloop.WatchdogError` (None: off). ``preemption``
    is ``"off"`` (threads of control switch only where they wait) or
    ``"fine"``: every loop primitive that touches shared state is also a
    preemption point (``preemption.py``). ``async_events="queue"`` queues the
    bottom halves other threads schedule and releases them at each main-loop
    iteration boundary, as QEMU's replay does (``asyncevents.py``; default
    ``"off"``).
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        chooser: Chooser | None = None,
        log: bool | Callable[[DispatchEvent], object] = False,
        recent: int = 0,
        checkpoint_interval: int = 1024,
        fast_path: bool = True,
        sanitize: bool | str = False,
        faults: Iterable[str] = (),
        threads: Backend = "greenlet",
        watchdog: float | None = DEFAULT_TIMEOUT_S,
        preemption: Preemption = "off",
        async_events: AsyncEvents = "off",
    ) -> None:
        if not isinstance(seed, int):
            raise TypeError(f"seed must be an int, not {type(seed).__name__}")
        if checkpoint_interval <= 0:
            raise ValueError(f"checkpoint_interval must be positive, not {checkpoint_interval}")
        self.seed = seed
        self.clock = VirtualClock()
        self.clock.enable(ClockType.VIRTUAL, True)
        self.random = SimRandom(seed)
        self.chooser: Chooser = chooser if chooser is not None else FifoChooser()
        self._sched = Scheduler(self.clock, self.chooser, threads)
        if watchdog is not None and (
            isinstance(watchdog, bool)
            or not isinstance(watchdog, int | float)
            or not watchdog > 0
        ):
            raise ValueError(
                f"watchdog must be a positive number of seconds or None, not {watchdog!r}"
            )
        #: The wall-clock watchdog of the greenlet backend (None: off, or threads="os").
        self.watchdog: Watchdog | None = None
        if watchdog is not None and threads == "greenlet":
            self.watchdog = Watchdog(self._sched, self._sign_of_life, float(watchdog))
            self._sched.watchdog = self.watchdog
        attach = getattr(self.chooser, "attach", None)
        if attach is not None:  # a chooser that watches the run (chooser.py)
            attach(self)
        self._sched.on_turn = self._on_turn
        self._sched.deliver = self._deliver
        self.fds = FdTable(blocker=self._sched)
        # Fault injection (faults.py): none unless the scenario accepts some.
        specs = faults if isinstance(faults, str) else tuple(faults)
        plan = parse_faults(specs)
        #: The fault specs this simulation accepts (empty: no fault is ever injected).
        self.faults: frozenset[str] = frozenset(specs)
        self._faults: FaultInjector | None = None
        # Without a log, each step is only counted, folded into the digest and
        # kept in the ring of recent steps (if any): the lean observer (every
        # dispatch pays it).
        self._recent: deque[RawStep] | None = deque(maxlen=recent) if recent else None
        lean = log is False or log is None
        observer: DispatchObserver = self._lean_observer() if lean else self._observe
        #: The observer that only counts steps, folds them into the digest and
        #: keeps the ring (``None`` with a log): a loop may inline it
        #: (asyncio/iteration.py).
        self._lean_dispatch: DispatchObserver | None = observer if lean else None
        if plan:
            self._faults = FaultInjector(
                plan, sched=self._sched, fds=self.fds, clock=self.clock, step=self._step,
                outside=lambda fd: any(p.fd == fd and not p.closed for p in self._peers),
            )
            if self._faults.preempts:
                observer = self._faults.preempting(observer)
        self._dispatch_observer = observer
        self.steps = 0
        #: Rolling 64-bit digest of every step so far (kind, thread, what, time).
        self.digest = 0
        #: The replay layer's hooks (input, checkpoints, shutdown), once plugged.
        self.hooks: SimulationHooks | None = None
        self.checkpoint_interval = checkpoint_interval
        self._next_checkpoint = -1
        #: The next step at which _at_watch must run (a checkpoint or the exact
        #: step limit), -1 for none: one comparison per step.
        self._watch = -1
        self._plugged = False
        self._timer_gate: CheckpointGate | None = None
        #: Every step as a DispatchEvent, when built with ``log=True``.
        self.log: list[DispatchEvent] | None = [] if log is True else None
        self._sink: Callable[[DispatchEvent], object] | None = (
            self.log.append if self.log is not None else (log if callable(log) else None)
        )
        self._contexts = 0
        self.main_loop = MainLoop(self.clock, self.fds, observer=self._dispatch_observer)
        self.main_loop.aio_context.uid = self._next_context_uid()
        self.main_loop.iohandler_context.uid = self._next_context_uid()
        #: Every AioContext of this simulation, in creation order.
        self._aio_contexts = [self.main_loop.aio_context, self.main_loop.iohandler_context]
        #: Raised when the step limit of run() is reached; shared by every context.
        self._halt = self.main_loop.halt
        self._sched.halt = self._halt
        self._sched.dirty = self.main_loop.dirty
        self._step_limit = -1
        self._sched.idle_cond = self.main_loop._cond
        self._sched.main.aio_context = self.main_loop.aio_context
        self.iothreads: list[IOThread] = []
        self._peers: list[ScriptedPeer] = []
        self._net: Network | None = None
        self._shutdown: str | None = None
        self._closed = False
        #: Run main-loop timers qtest-style when the full loop would do the same.
        self.fast_path = fast_path
        if sanitize not in (False, True, "strict"):
            raise ValueError(f"sanitize must be False, True or 'strict', not {sanitize!r}")
        #: Route (or, "strict", refuse) real nondeterminism while the simulation runs.
        self.sanitize = sanitize
        #: The async-event queue (``asyncevents.py``), None when off.
        self._async: AsyncEventQueue | None = None
        self._preemption: Preemption = "off"
        self.set_preemption(preemption)
        if async_events not in ASYNC_EVENT_MODES:
            raise ValueError(f"async_events must be 'off' or 'queue', not {async_events!r}")
        if async_events == "queue" and preemption == "fine":
            raise ValueError("async_events='queue' does not combine with preemption='fine'")
        if async_events == "queue":
            self._async = AsyncEventQueue(self._sched, self.main_loop.aio_context)
            main_ctx = self.main_loop.aio_context
            for ctx in self._aio_contexts:
                make_queued(ctx, self._async, main_ctx)

    # -- the replay door -----------------------------------------------------------

    def plug(self, seams: Seams) -> None:
        """Plug the replay layer's seams in (``evloop/seams.py``): once, before any step."""
        self._check_open()
        if self._plugged:
            raise SimulationError("a simulation's seams are plugged once; this one already is")
        if self.steps:
            raise SimulationError(
                f"plug the seams before the simulation runs (it has run {self.steps} steps)"
            )
        self._plugged = True
        if seams.chooser is not None:
            self.chooser = self._sched.chooser = seams.chooser(self.chooser)
        self.clock.read_hook = seams.clock_read
        self.random.draw_hook = seams.random_draw
        if seams.hooks is not None:
            self.hooks = seams.hooks
            self._next_checkpoint = self.checkpoint_interval
            self._rewatch()
        if seams.timer_gate is not None:
            self._timer_gate = seams.timer_gate
            for tlg in [self.main_loop.tlg, *(ctx.tlg for ctx in self._aio_contexts)]:
                tlg.set_checkpoint(seams.timer_gate)
        if seams.blocker is not None:
            self.fds.blocker = seams.blocker(self._sched)
        if seams.async_event is not None and self._async is not None:
            self._async.hook = seams.async_event

    def _sign_of_life(self) -> int:
        """Grows whenever the simulation moves: a step, a turn handed over, virtual time."""
        sched = self._sched
        return self.steps + sched.switches + self.clock._now[0]

    def _on_turn(self, t: ThreadOfControl) -> None:
        self._step(DispatchKind.TURN, 0, t.index, None, t)

    def _deliver(self, event: ExternalEvent) -> None:
        if not isinstance(event, ExternalEvent):  # bytes a fault held back (faults.py)
            assert self._faults is not None
            self._faults.deliver(event)
            return
        peer = event.peer
        before = event.sent
        if not peer.deliver(event):
            self._sched.stalled.append(event)
        if event.close or event.sent > before:
            chunk = b"" if event.close else event.data[before : event.sent]
            if self.hooks is not None:
                self.hooks.input(peer.name, chunk, event.close)
            self._step(DispatchKind.INPUT, peer.uid, len(chunk), None, (peer, chunk, event.close))

    # -- the public surface ---------------------------------------------------------

    @property
    def now_ns(self) -> int:
        """Simulation time: the REALTIME clock."""
        return self.clock._now[0]

    @property
    def threads(self) -> tuple[ThreadOfControl, ...]:
        return tuple(self._sched.threads)

    @property
    def current_thread(self) -> ThreadOfControl:
        return self._sched.current

    def thread(self, name: str, fn: Callable[[], object]) -> ThreadOfControl:
        """Start a thread of control (a vCPU-like worker) running ``fn()``."""
        self._check_open()
        return self._sched.spawn(name, fn)

    def iothread(
        self,
        name: str,
        *,
        poll_max_ns: int = IOTHREAD_POLL_MAX_NS_DEFAULT,
        poll_grow: int = 0,
        poll_shrink: int = 0,
    ) -> IOThread:
        """Start an IOThread: a thread of control polling its own AioContext.

        Its context polls adaptively up to ``poll_max_ns`` (32768 ns unless
        told otherwise, as QEMU's IOThreads do; 0 turns polling off), growing
        and shrinking its windows by ``poll_grow`` and ``poll_shrink``.
        """
        self._check_open()
        self._sched.check_name(name)  # before the context allocates its eventfd
        check_poll_params(poll_max_ns, poll_grow, poll_shrink)
        io = IOThread(
            name,
            self.new_aio_context(name),
            poll_max_ns=poll_max_ns,
            poll_grow=poll_grow,
            poll_shrink=poll_shrink,
        )
        io.thread = self._sched.spawn(name, io.run, idle_ok=True)
        io.thread.aio_context = io.ctx
        self.iothreads.append(io)
        return io

    def new_aio_context(self, name: str) -> AioContext:
        """An AioContext on this simulation's clock and fds, with its steps observed."""
        ctx = AioContext(self.clock, self.fds, name=name, observer=self._dispatch_observer)
        ctx.uid = self._next_context_uid()
        ctx.halt = self._halt
        ctx.tlg.set_halt(self._halt)
        ctx.set_dirty(self.main_loop.dirty)
        if self._timer_gate is not None:
            ctx.tlg.set_checkpoint(self._timer_gate)
        if self._preemption == "fine":
            make_preemptible(ctx, self._sched.preempt)
        if self._async is not None:
            make_queued(ctx, self._async, ctx)
        self._aio_contexts.append(ctx)
        return ctx

    def _next_context_uid(self) -> int:
        self._contexts += 1
        return self._contexts

    def sleep(self, ns: int) -> None:
        """Block the calling thread of control for ``ns`` of virtual time."""
        self._sched.sleep(ns)

    def yield_now(self) -> None:
        """A preemption point: any other runnable thread of control may go first."""
        self._sched.yield_now()

    @property
    def preemption(self) -> Preemption:
        """``"off"`` (threads switch only where they wait) or ``"fine"`` (``preemption.py``)."""
        return self._preemption

    def set_preemption(self, mode: Preemption) -> None:
        """Turn fine preemption on (``"fine"``) or leave it off, before the first step.

        In fine mode every loop primitive that touches shared state is a
        preemption point (``evloop/machine/preemption.py``): another runnable
        thread of control may take the turn there, a PREEMPT decision. A
        scenario that needs it calls this first, before it makes bottom halves.
        """
        self._check_open()
        if mode not in PREEMPTION_MODES:
            raise ValueError(f"preemption must be 'off' or 'fine', not {mode!r}")
        if mode == self._preemption:
            return
        if self.steps or self._sched.switches:
            raise SimulationError(
                f"set the preemption mode before the simulation runs (it has run {self.steps} "
                "steps)"
            )
        if mode == "off":
            raise SimulationError("fine preemption cannot be turned off once on")
        if self._async is not None:
            raise SimulationError("fine preemption does not combine with async_events='queue'")
        self._preemption = mode
        point = self._sched.preempt
        for ctx in self._aio_contexts:
            make_preemptible(ctx, point)
        make_timers_preemptible(self.main_loop.tlg, self.main_loop, point)
        make_fds_preemptible(self.fds, point)

    @property
    def async_events(self) -> AsyncEvents:
        """``"off"``, or ``"queue"``: other threads' BHs wait for the next iteration boundary."""
        return "off" if self._async is None else "queue"

    def preemption_point(self) -> None:
        """A preemption point in fine mode (another runnable thread may go first); else nothing.

        For code that models a shared-state access the loop does not make
        itself (an older QEMU protocol, a device's lock-free flag).
        """
        if self._preemption == "fine":
            self._sched.preempt()

    def event(self, name: str) -> SimEvent:
        return SimEvent(self._sched, name)

    @property
    def net(self) -> Network:
        """The machine's virtual network (sockets, ports, host table), made on first use."""
        if self._net is None:
            self._net = Network(self.fds)
        return self._net

    def peer(self, fd: int, name: str | None = None) -> ScriptedPeer:
        """A scripted peer writing into (and reading from) ``fd``, from outside the system."""
        self._check_open()
        if not self.fds.is_open(fd):
            raise ValueError(f"peer on fd {fd}: the fd is not open")
        peer = ScriptedPeer(
            self.fds, fd, name if name is not None else f"peer-fd{fd}",
            self._sched.add_external, lambda: self.clock._now[0],
        )
        peer.uid = len(self._peers) + 1
        self._peers.append(peer)
        return peer

    def shutdown(self, cause: str = "shutdown") -> None:
        """Ask :meth:`run` to return after the current main-loop iteration."""
        if self._shutdown is None:
            self._shutdown = cause
            if self.hooks is not None:
                self.hooks.shutdown(cause)
        self.main_loop.dirty[0] = True
        self.main_loop.notify_event()

    def run(
        self,
        until_ns: int | None = None,
        max_steps: int | None = None,
        *,
        exact_steps: bool = False,
    ) -> RunResult:
        """Run the main loop until idle, ``until_ns``, ``max_steps`` more steps, or shutdown.

        ``max_steps`` stops at the first main-loop iteration boundary at or
        after that many steps, where every other thread of control is waiting:
        calling ``run`` again then goes on exactly as if it had never stopped.
        With ``exact_steps=True`` it stops right after the step itself, even
        inside an iteration or a thread's turn (to inspect the state at that
        step, as ``replay play --until-step`` does); such a run is not meant
        to be resumed.
        """
        self._check_open()
        sched = self._sched
        if sched.current is not sched.main or sched.main._ident != _get_ident():
            raise SimulationError(
                "Simulation.run() must be called from the thread that created the simulation, "
                "outside any callback"
            )
        if sched.in_run:
            raise SimulationError("Simulation.run() is already running (called from a callback?)")
        if until_ns is not None and until_ns < self.now_ns:
            raise ValueError(f"until_ns={until_ns} is in the past (now is t={self.now_ns} ns)")
        if max_steps is not None and max_steps < 0:
            raise ValueError(f"max_steps must be non-negative, not {max_steps}")
        step_limit = None if max_steps is None else self.steps + max_steps
        self._step_limit = -1 if step_limit is None or not exact_steps else step_limit
        self._rewatch()
        self._halt[0] = exact_steps and step_limit is not None and self.steps >= step_limit
        sched.until_ns = until_ns
        sched.stop_reason = None
        sched.enter_run()
        wait = self.main_loop.wait
        reason: StopReason
        # The watchdog first: off the main thread it starts an OS thread,
        # which the sanitizer would refuse.
        watchdog = self.watchdog
        if watchdog is not None:
            watchdog.__enter__()
        sanitizer = None
        if self.sanitize:
            from .sanitizer import Sanitizer

            sanitizer = Sanitizer(self, strict=self.sanitize == "strict")
            try:
                sanitizer.__enter__()
            except BaseException:
                if watchdog is not None:
                    watchdog.__exit__(None, None, None)
                raise
        ml = self.main_loop
        fast = self.fast_path
        queue = self._async
        limit = -1 if step_limit is None else step_limit
        until = -1 if until_ns is None else until_ns
        try:
            while True:
                if self._shutdown is not None:
                    reason = StopReason.SHUTDOWN
                    break
                if step_limit is not None and self.steps >= step_limit:
                    reason = StopReason.MAX_STEPS
                    break
                if sched.stop_reason is not None:
                    reason = StopReason(sched.stop_reason)
                    break
                if until_ns is not None and self.now_ns >= until_ns:
                    reason = StopReason.UNTIL
                    break
                if queue is not None and len(queue):
                    queue.release()  # the async events' checkpoint (asyncevents.py)
                if fast and sched.alone():
                    # The main thread is alone: quiet iterations, run cheaply
                    # (loop/quiet.py); they stop at the next iteration boundary
                    # after anything else happens, for the checks above.
                    quiet = run_quiet(ml, self, limit, until)
                    if quiet == QUIET_AGAIN:
                        continue
                    if quiet == QUIET_UNTIL:
                        # The wait ran into until_ns, as the scheduler would
                        # have decided it: the checks above stop the run.
                        sched.stop_reason = StopReason.UNTIL.value
                        continue
                wait()
        finally:
            sched.leave_run()
            sched.until_ns = None
            sched.stop_reason = None
            self._step_limit = -1
            self._rewatch()
            self._halt[0] = False
            if watchdog is not None:
                watchdog.__exit__(None, None, None)
            if sanitizer is not None:
                sanitizer.__exit__(None, None, None)
        cause = self._shutdown
        self._shutdown = None
        return RunResult(reason, self.steps, self.now_ns, cause)

    def close(self) -> None:
        """Unwind every thread of control; the simulation cannot run afterwards."""
        if not self._closed:
            self._closed = True
            self._sched.close()

    def _check_open(self) -> None:
        if self._closed:
            raise SimulationError("this simulation is closed")

    def __enter__(self) -> Simulation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<Simulation seed={self.seed} t={self.now_ns} steps={self.steps} "
            f"threads={[t.name for t in self._sched.threads]}>"
        )


def _get_ident() -> int:
    import threading

    return threading.get_ident()
