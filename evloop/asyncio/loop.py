"""``SimEventLoop``: asyncio's selector event loop, run by a simulation.

The loop is CPython's ``BaseSelectorEventLoop`` (so its transports, streams,
``sock_*`` calls, servers and every coroutine API run unchanged) with four
things replaced:

* **Time** is the simulation's clock. Deadlines are integer nanoseconds of
  the REALTIME clock; ``loop.time()`` is that count read as seconds (one
  correctly rounded division, so it never drifts). ``call_later(d)`` arms at
  ``now + round(d * 1e9)`` ns: ten ``sleep(0.1)`` are exactly one second.
* **Waiting** goes through the simulation's scheduler, never a system call:
  other threads of control (executor workers, ``sim.thread`` workers) run,
  and when nobody can, virtual time jumps to the next deadline. A loop alone
  in its simulation warps the clock itself. A wait that could never end
  raises :class:`~evloop.DeadlockError` instead of hanging.
* **fds** are the simulation's virtual fds, watched by a
  :class:`~evloop.asyncio.VirtualSelector` (tracked readiness, no scan).
  There is no self-pipe: ``call_soon_threadsafe`` appends to the ready queue
  and the loop's wait condition sees it.
* **Every callback is a step** of the simulation: the step counter and the
  rolling digest advance, the checkpoint hook fires, and the step log shows
  it (``bh`` for a ready callback, ``timer`` for a timer), so a recorder and
  a player see asyncio programs as they see QEMU-style ones.

One iteration (:meth:`SimEventLoop._run_once`) keeps asyncio's rules: the
ready queue is FIFO, callbacks scheduled while a batch runs wait for the
next iteration, timers due at the start of an iteration join the batch
behind the callbacks already ready, in deadline order.

**Decisions.** Option 0 of every decision is what asyncio itself would do,
and the loop asks the simulation's chooser only where real asyncio leaves
the order open: which of several ready fds is handled first
(``ChoiceKind.READY_FD``), the order of timers due at the very same
nanosecond (``ChoiceKind.TIMER_TIE``; asyncio's heap does not keep them in
any order), and which thread of control finishes first (the scheduler's
``THREAD`` decisions, where executor completions come from). With
``chaos=True`` the loop also permutes each batch of ready callbacks
(``ChoiceKind.READY_QUEUE``): it finds more, but may report schedules that
asyncio, whose ``call_soon`` is FIFO, can never produce. ``loop.mode`` says
which (``"asyncio"`` or ``"chaos"``).

**Owned nondeterminism.** Default task names come from the loop's own
counter (``Task-1``, ``Task-2``, ... per loop), not the process-wide one.
While the loop runs, the garbage collector runs only at controlled points
(every :data:`GC_INTERVAL_STEPS` steps and when ``run_forever`` returns), so
"exception was never retrieved" reports from orphaned tasks come at the same
place in every run. Subprocesses and signal handlers are refused with one
line naming the fence (:class:`~evloop.errors.FencedError`).

Executors (``run_in_executor``, ``asyncio.to_thread``) run on threads of
control: see ``executor.py``.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import contextvars
import functools
import gc
import sys
import weakref
from asyncio import format_helpers, futures
from collections.abc import Callable
from contextvars import Context
from heapq import heappush
from typing import TYPE_CHECKING, Any, TypeVar, TypeVarTuple, Unpack

from ..errors import FencedError
from ..machine.simulation import Simulation
from ..machine.thread import _Cancelled
from ..seams import ChoiceKind
from .executor import DEFAULT_EXECUTOR_WORKERS, SimThreadPoolExecutor
from .handles import SimHandle, SimTimerHandle
from .iteration import GC_INTERVAL_STEPS, NEVER_NS, iterate
from .network import NetworkSelectorLoop
from .selector import EVENT_READ, EVENT_WRITE, VirtualSelector
from .threadsafe import install_run_coroutine_threadsafe

__all__ = ["GC_INTERVAL_STEPS", "SimEventLoop"]

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")

_NS_PER_S = 1_000_000_000
_MASK32 = (1 << 32) - 1
_new_object = object.__new__
_copy_context = contextvars.copy_context


def _seconds_to_ns(seconds: float) -> int:
    try:
        return round(seconds * _NS_PER_S)
    except OverflowError:
        return NEVER_NS if seconds > 0 else -NEVER_NS


class _LoopWait:
    """What a waiting loop waits for: a ready callback, a ready fd, or stop()."""

    __slots__ = ("loop",)

    def __init__(self, loop: SimEventLoop) -> None:
        self.loop = loop

    def ready(self) -> bool:
        loop = self.loop
        return bool(loop._ready) or bool(loop._selector._ready) or loop._stopping

    def describe(self) -> str:
        loop = self.loop
        return f"asyncio loop {loop.name!r}: waiting on {loop._selector.describe()}"


class SimEventLoop(NetworkSelectorLoop):
    """An asyncio event loop on a simulation's clock, fds and threads of control.

    ``sim`` is the simulation to run on; without one the loop makes its own
    (``Simulation(seed, chooser=chooser, sanitize=sanitize)``) and closes it
    when the loop is closed.
    """

    _selector: VirtualSelector
    _scheduled: list[Any]  # heap of (when_ns, seq, handle)
    # BaseEventLoop's private state and helpers this loop uses (typeshed omits them).
    _ready: collections.deque[Any]
    _stopping: bool
    _closed: bool
    _debug: bool
    _timer_cancelled_count: int
    _default_executor: Any
    _executor_shutdown_called: bool
    _current_handle: Any
    if TYPE_CHECKING:

        def _check_closed(self) -> None: ...
        def _check_thread(self) -> None: ...
        def _check_callback(self, callback: object, method: str) -> None: ...
        def _check_default_executor(self) -> None: ...
        def _process_events(self, event_list: list[Any]) -> None: ...

    def __init__(
        self,
        sim: Simulation | None = None,
        *,
        seed: int = 0,
        chooser: Any = None,
        chaos: bool = False,
        sanitize: bool | str = False,
        name: str = "asyncio",
    ) -> None:
        owns = sim is None
        if sim is None:
            sim = Simulation(seed, chooser=chooser, sanitize=sanitize)
        elif chooser is not None:
            raise ValueError("pass the chooser to the Simulation, not to a loop built on it")
        self.sim = sim
        self._owns_sim = owns
        self.name = name
        #: The loop's identity in step digests (a context number of the simulation).
        self.uid = sim._next_context_uid()
        self.chaos = bool(chaos)
        self._sched = sim._sched
        self._clock_now = sim.clock._now
        self._uids = 0
        self._timer_seq = 0
        self._task_count = 0
        #: Tasks made by create_task, in creation order (for _abandon).
        self._created: weakref.WeakKeyDictionary[asyncio.Task[Any], int] = (
            weakref.WeakKeyDictionary()
        )
        self._tasks_made = 0
        self._executors = 0
        self._routed: dict[concurrent.futures.Executor, SimThreadPoolExecutor] = {}
        self._wait_cond = _LoopWait(self)
        self._next_gc = 0
        self._iterating = False
        #: The simulation's step bookkeeping can be inlined (iteration.py).
        observer = sim._dispatch_observer
        self._inline_steps = observer == sim._observe or observer is sim._lean_dispatch
        super().__init__(VirtualSelector(sim.fds))
        self._scheduled = []
        install_run_coroutine_threadsafe()
        # BaseEventLoop.create_future, as a C callable (a frame less per future).
        self.create_future = functools.partial(asyncio.Future, loop=self)  # type: ignore[method-assign]

    def __del__(self) -> None:
        if "_selector" in self.__dict__:  # a constructor that raised built nothing to close
            super().__del__()

    @property
    def mode(self) -> str:
        """``"asyncio"`` (asyncio's own orders only) or ``"chaos"`` (ready queue permuted)."""
        return "chaos" if self.chaos else "asyncio"

    def __repr__(self) -> str:
        return (
            f"<SimEventLoop {self.name!r} mode={self.mode} running={self.is_running()} "
            f"closed={self.is_closed()} t={self._clock_now[0]} steps={self.sim.steps}>"
        )

    # -- no self-pipe ---------------------------------------------------------------

    def _make_self_pipe(self) -> None:
        self._ssock = self._csock = None
        self._internal_fds = 0

    def _close_self_pipe(self) -> None:
        pass

    def _write_to_self(self) -> None:
        pass  # the loop's wait condition sees the ready queue itself

    # -- time -----------------------------------------------------------------------

    def time(self) -> float:
        """Virtual seconds: the simulation's REALTIME clock, integer ns read as seconds."""
        return self._clock_now[0] / _NS_PER_S

    def time_ns(self) -> int:
        """Virtual time in integer nanoseconds (what deadlines are kept in)."""
        return self._clock_now[0]

    # -- scheduling callbacks -------------------------------------------------------

    def _traceback(self) -> Any:
        # Frames: 0 here, 1 the handle's __init__, 2 the loop method, 3 its caller.
        return format_helpers.extract_stack(sys._getframe(3))

    def _next_uid(self) -> int:
        self._uids = uid = (self._uids + 1) & _MASK32
        return uid

    def call_soon(
        self, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts,
        context: Context | None = None,
    ) -> SimHandle:
        if self._closed:
            raise RuntimeError("Event loop is closed")
        self._uids = uid = (self._uids + 1) & _MASK32
        if self._debug:
            self._check_thread()
            self._check_callback(callback, "call_soon")
            handle = SimHandle(callback, args, self, context, uid)
        else:
            # SimHandle.__init__ without a debug traceback, inlined (hot path).
            handle = _new_object(SimHandle)
            handle._context = _copy_context() if context is None else context
            handle._loop = self
            handle._callback = callback
            handle._args = args
            handle._cancelled = False
            handle._repr = None
            handle._source_traceback = None
            handle.uid = uid
        self._ready.append(handle)
        return handle

    def _call_soon(self, callback: Callable[..., object], args: Any, context: Any) -> SimHandle:
        handle = SimHandle(callback, args, self, context, self._next_uid())
        self._ready.append(handle)
        return handle

    def call_soon_threadsafe(
        self, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts,
        context: Context | None = None,
    ) -> SimHandle:
        """``call_soon`` from another thread of control; the loop's wait sees it at once."""
        if self._closed:
            raise RuntimeError("Event loop is closed")
        if self._debug:
            self._check_callback(callback, "call_soon_threadsafe")
        handle = SimHandle(callback, args, self, context, self._next_uid())
        self._ready.append(handle)
        return handle

    def call_later(
        self, delay: float, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts,
        context: Context | None = None,
    ) -> SimTimerHandle:
        if delay is None:
            raise TypeError("delay must not be None")
        try:
            when_ns = self._clock_now[0] + round(delay * _NS_PER_S)
        except OverflowError:
            when_ns = NEVER_NS if delay > 0 else -NEVER_NS
        if self._closed or self._debug:
            return self._arm(when_ns / _NS_PER_S, when_ns, callback, args, context)
        # _arm and SimTimerHandle.__init__, inlined (every asyncio.sleep comes here).
        self._uids = uid = (self._uids + 1) & _MASK32
        handle = _new_object(SimTimerHandle)
        handle._context = _copy_context() if context is None else context
        handle._loop = self
        handle._callback = callback
        handle._args = args
        handle._cancelled = False
        handle._repr = None
        handle._source_traceback = None
        handle._when = when_ns / _NS_PER_S
        handle.when_ns = when_ns
        handle.uid = uid
        self._timer_seq = seq = self._timer_seq + 1
        heappush(self._scheduled, (when_ns, seq, handle))
        handle._scheduled = True
        return handle

    def call_at(
        self, when: float, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts,
        context: Context | None = None,
    ) -> SimTimerHandle:
        if when is None:
            raise TypeError("when cannot be None")
        return self._arm(when, _seconds_to_ns(when), callback, args, context)

    def _arm(
        self, when: float, when_ns: int, callback: Callable[..., object], args: Any, context: Any
    ) -> SimTimerHandle:
        if self._closed:
            raise RuntimeError("Event loop is closed")
        if self._debug:
            self._check_thread()
            self._check_callback(callback, "call_at")
        self._uids = uid = (self._uids + 1) & _MASK32
        handle = SimTimerHandle(when, when_ns, callback, args, self, context, uid)
        self._timer_seq = seq = self._timer_seq + 1
        heappush(self._scheduled, (when_ns, seq, handle))
        handle._scheduled = True
        return handle

    def _timer_handle_cancelled(self, handle: asyncio.TimerHandle) -> None:
        if handle._scheduled:  # type: ignore[attr-defined]
            self._timer_cancelled_count += 1

    # -- fd callbacks (the selector loop's, with the loop's handles) -----------------

    def _add_reader(self, fd: Any, callback: Callable[..., object], *args: Any) -> SimHandle:
        self._check_closed()
        handle = SimHandle(callback, args, self, None, self._next_uid())
        key = self._selector.get_map().get(fd)
        if key is None:
            self._selector.register(fd, EVENT_READ, (handle, None))
        else:
            reader, writer = key.data
            self._selector.modify(fd, key.events | EVENT_READ, (handle, writer))
            if reader is not None:
                reader.cancel()
        return handle

    def _add_writer(self, fd: Any, callback: Callable[..., object], *args: Any) -> SimHandle:
        self._check_closed()
        handle = SimHandle(callback, args, self, None, self._next_uid())
        key = self._selector.get_map().get(fd)
        if key is None:
            self._selector.register(fd, EVENT_WRITE, (None, handle))
        else:
            reader, writer = key.data
            self._selector.modify(fd, key.events | EVENT_WRITE, (reader, handle))
            if writer is not None:
                writer.cancel()
        return handle

    # -- tasks ----------------------------------------------------------------------

    def create_task(self, coro: Any, *, name: object = None, context: Any = None) -> Any:
        """As asyncio's, but a task without a name gets ``Task-N`` from the loop's counter."""
        if name is None:
            self._task_count += 1
            name = f"Task-{self._task_count}"
        task = super().create_task(coro, name=name, context=context)
        self._tasks_made += 1
        self._created[task] = self._tasks_made
        return task

    def _abandon(self) -> None:
        """The simulation closed under this loop: its tasks never run again.

        Each pending task's coroutine is closed (its ``finally`` blocks run, as
        the unwinding thread of control's do), oldest task first, and the task
        is not reported as "destroyed but pending": the run was cut, not the
        program wrong. Before that, its open transports are closed (their
        protocols are told the connection was lost). Ready callbacks are dropped.
        """
        # Transports first (a stream writer dropped with its coroutine warns
        # unless its transport is closing): the program never got to close
        # them, and asyncio would report each as unclosed whenever gc ran.
        transports: Any = self._transports  # type: ignore[attr-defined]
        for fd in sorted(transports):
            transport = transports.get(fd)
            if transport is None or transport._sock is None:  # gone, or its loss told
                continue
            with contextlib.suppress(BaseException):
                if not transport.is_closing():
                    transport._force_close(None)
                # A closing transport's last step is a ready callback: dropped
                # below, so it is taken here.
                transport._call_connection_lost(None)
        created = self._created
        pending = sorted(
            (t for t in asyncio.all_tasks(self) if not t.done()),
            key=lambda t: (created.get(t, self._tasks_made + 1), t.get_name()),
        )
        for task in pending:
            task._log_destroy_pending = False  # type: ignore[attr-defined]
            # A cut run's cleanup has no one to report to.
            with contextlib.suppress(BaseException):
                task.get_coro().close()
        for handle in self._ready:
            handle.cancel()
        self._ready.clear()

    # -- fences ---------------------------------------------------------------------

    def _fenced(self, what: str, why: str) -> FencedError:
        return FencedError(
            f"evloop.asyncio: {what} is fenced off in a simulation: {why} (see docs/asyncio.md)"
        )

    def add_signal_handler(
        self, sig: int, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts
    ) -> None:
        raise self._fenced(
            "loop.add_signal_handler()", "signals come from outside and cannot be replayed"
        )

    def remove_signal_handler(self, sig: int) -> bool:
        return False  # none can have been added

    async def subprocess_exec(self, *args: Any, **kwargs: Any) -> Any:
        raise self._fenced(
            "loop.subprocess_exec()", "a child process runs outside virtual time"
        )

    async def subprocess_shell(self, *args: Any, **kwargs: Any) -> Any:
        raise self._fenced(
            "loop.subprocess_shell()", "a child process runs outside virtual time"
        )

    async def _make_subprocess_transport(self, *args: Any, **kwargs: Any) -> Any:
        raise self._fenced("a subprocess transport", "a child process runs outside virtual time")

    # -- executors ------------------------------------------------------------------

    def _new_pool(self, label: str, max_workers: int) -> SimThreadPoolExecutor:
        self._executors += 1
        return SimThreadPoolExecutor(
            self.sim, max_workers=max_workers,
            thread_name_prefix=f"{self.name}:{label}-{self._executors}",
        )

    def _pool_for(self, executor: concurrent.futures.Executor | None) -> Any:
        if executor is None:
            self._check_default_executor()
            executor = self._default_executor
            if executor is None:
                executor = self._new_pool("executor", DEFAULT_EXECUTOR_WORKERS)
                self._default_executor = executor
        if isinstance(executor, SimThreadPoolExecutor):
            return executor
        if isinstance(executor, concurrent.futures.ThreadPoolExecutor):
            # A real thread pool's threads would run outside the turn lock:
            # its work runs on threads of control instead, as many as it has.
            pool = self._routed.get(executor)
            if pool is None:
                pool = self._new_pool("thread-pool", executor._max_workers)
                self._routed[executor] = pool
            return pool
        if isinstance(executor, concurrent.futures.ProcessPoolExecutor):
            raise self._fenced(
                "run_in_executor() with a ProcessPoolExecutor",
                "its processes run outside virtual time",
            )
        return executor  # some other Executor: asked to do the work itself

    def run_in_executor(
        self, executor: concurrent.futures.Executor | None, func: Callable[[Unpack[_Ts]], _T],
        *args: *_Ts,
    ) -> asyncio.Future[_T]:
        """``func(*args)`` on a thread of control; its completion order is the scheduler's."""
        self._check_closed()
        if self._debug:
            self._check_callback(func, "run_in_executor")
        pool = self._pool_for(executor)
        return futures.wrap_future(pool.submit(func, *args), loop=self)

    async def shutdown_default_executor(self, timeout: float | None = None) -> None:
        """Wait (in virtual time) for the default executor's work, then stop its workers."""
        self._executor_shutdown_called = True
        executor = self._default_executor
        if executor is None:
            return
        pool = self._pool_for(executor)
        await pool.drained(self)
        pool.shutdown(wait=False)
        if pool is not executor:
            executor.shutdown(wait=False)

    # -- running --------------------------------------------------------------------

    def run_forever(self) -> None:
        """Run until ``stop()``, with the sanitizer (if asked for) and controlled gc."""
        sanitizer = None
        if self.sim.sanitize:
            from ..machine.sanitizer import Sanitizer

            sanitizer = Sanitizer(self.sim, strict=self.sim.sanitize == "strict")
        gc_saved = gc.isenabled()
        gc.disable()
        # What exists already is not the run's garbage: freezing it keeps the
        # controlled collections down to what the run allocated.
        gc.freeze()
        self._next_gc = self.sim.steps + GC_INTERVAL_STEPS
        try:
            if sanitizer is not None:
                sanitizer.__enter__()
            self._iterating = True
            try:
                sched = self._sched
                if sched._closing and sched.current is not sched.main:
                    raise _Cancelled()  # the simulation closed: nothing here runs again
                if sched.aborted is not None:
                    # The run was ended from outside (asyncio.run's cleanup of
                    # the tasks comes here): no decision can be taken again.
                    raise sched.aborted
                super().run_forever()
            except _Cancelled:
                self._abandon()
                raise
            except BaseException:
                if sched.aborted is not None:
                    self._abandon()
                raise
            finally:
                self._iterating = False
                if sanitizer is not None:
                    sanitizer.__exit__(None, None, None)
        finally:
            try:
                gc.collect()  # a controlled point: orphaned tasks are reported here
            finally:
                gc.unfreeze()
                if gc_saved:
                    gc.enable()

    def close(self) -> None:
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        if self.is_closed():
            return
        routed = list(self._routed.values())
        self._routed.clear()
        super().close()
        for pool in routed:
            pool.shutdown(wait=False)
        if self._owns_sim:
            self.sim.close()

    def _choose_order(
        self, kind: ChoiceKind, items: list[_T], label: Callable[[_T], str]
    ) -> list[_T]:
        """``items`` in the order the chooser picks, one pick at a time; option 0 keeps it."""
        choose = self._sched.choose
        out: list[_T] = []
        rest = list(items)
        while len(rest) > 1:
            out.append(rest.pop(choose(kind, [label(x) for x in rest])))
        out.extend(rest)
        return out

    def _wait(self, timeout_ns: int) -> None:
        """Block until a callback or fd is ready, or ``timeout_ns`` (-1: forever) passed."""
        sched = self._sched
        if (
            not sched._waiting and not sched._external and not sched.stalled
            and sched.until_ns is None and timeout_ns >= 0
        ):
            # Alone: nothing else can make anything ready; a timeout is a warp.
            if timeout_ns:
                self.sim.clock.advance(timeout_ns)
            return
        sched.block(self._wait_cond, timeout_ns)

    def _run_once(self) -> None:
        """One iteration (``iteration.py``); under ``run_forever``, every one until stop()."""
        iterate(self, self._iterating)

    def _callback_failed(self, handle: asyncio.Handle, exc: BaseException) -> None:
        """What ``Handle._run`` does with a callback's exception: the exception handler."""
        source = format_helpers._format_callback_source(
            handle._callback, handle._args  # type: ignore[attr-defined]
        )
        context: dict[str, Any] = {
            "message": f"Exception in callback {source}",
            "exception": exc,
            "handle": handle,
        }
        if handle._source_traceback:  # type: ignore[attr-defined]
            context["source_traceback"] = handle._source_traceback  # type: ignore[attr-defined]
        self.call_exception_handler(context)
