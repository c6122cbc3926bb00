"""QEMU's coroutines on greenlets (``util/qemu-coroutine.c``, the ``aio_co_*`` of ``util/async.c``).

A coroutine is a function with its own stack: :func:`qemu_coroutine_yield`
may be called from any depth inside it, and :func:`qemu_coroutine_enter`
resumes it there. Each is a greenlet, switched to on the stack of whatever
thread of control enters it, so a coroutine may also block in virtual time
(``sim.sleep``) exactly as QEMU code may block in a coroutine's thread.

The rules are QEMU's:

* ``enter`` runs the coroutine until it yields or returns, then the
  coroutines it woke meanwhile on its own context (``co_queue_wakeup``) run,
  depth-first, before ``enter`` returns. Entering a running coroutine, one
  scheduled to run elsewhere, or a finished one is an error, as is yielding
  outside a coroutine or returning while holding a ``CoMutex``/``CoRwlock``.
* :func:`aio_co_enter` enters at once when the coroutine belongs to the
  calling thread's context and the caller is not itself a coroutine; from a
  coroutine it queues the wake-up; for another context it schedules the
  coroutine there (:func:`aio_co_schedule`), whose ``co_schedule_bh`` enters
  every scheduled coroutine in turn, FIFO, in that context's thread.
* A coroutine that raises passes the exception to whoever entered it (QEMU's
  cannot raise): from a bottom half, that stops the run like any raising
  callback.

Only one place leaves QEMU's order open: coroutines that *different* threads
of control scheduled on one context since its last ``co_schedule_bh``. In
QEMU those threads push concurrently, so either order can reach the BH; here
the turns serialised them, more coarsely than real threads would. Which
thread's next coroutine is entered first is therefore a
:attr:`ChoiceKind.COROUTINE` decision (the first option is FIFO); one
thread's own coroutines keep their order. Everything else is a plain
function call that no scheduler could reorder.

Under ``threads="os"`` a coroutine stays on the OS thread that first entered
it (a greenlet cannot move between OS threads); with the default greenlet
backend it may hop between threads of control as QEMU's do.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from greenlet import error as greenlet_error
from greenlet import getcurrent, greenlet

from ..errors import SimulationError
from ..loop.bh import callback_name
from ..loop.clock import ClockType
from ..seams import ChoiceKind
from .scheduler import Scheduler
from .thread import _active, current_thread_of_control

if TYPE_CHECKING:
    from ..loop.aio import AioContext

__all__ = [
    "Coroutine",
    "aio_co_enter",
    "aio_co_reschedule_self",
    "aio_co_schedule",
    "aio_co_wake",
    "qemu_co_sleep_ns",
    "qemu_coroutine_create",
    "qemu_coroutine_enter",
    "qemu_coroutine_entered",
    "qemu_coroutine_self",
    "qemu_coroutine_yield",
    "qemu_get_current_aio_context",
    "qemu_in_coroutine",
]

_TERMINATE = object()  # a coroutine's greenlet returns it when its function has returned


class _CoGreenlet(greenlet):
    """A coroutine's stack; ``co`` leads back to the coroutine."""

    co: Coroutine


class Coroutine:
    """A coroutine (QEMU's ``Coroutine``); make one with :func:`qemu_coroutine_create`."""

    __slots__ = (
        "_glet",
        "caller",
        "co_queue_wakeup",
        "ctx",
        "done",
        "entry",
        "locks_held",
        "name",
        "result",
        "scheduled",
    )

    def __init__(self, entry: Callable[[], object], name: str | None = None) -> None:
        self.entry = entry
        self.name = name if name is not None else callback_name(entry)
        #: The greenlet that entered it and will resume when it yields (None: not running).
        self.caller: greenlet | None = None
        #: The context it was last entered in (QEMU's ``co->ctx``).
        self.ctx: AioContext | None = None
        #: Who scheduled it to be entered later (``"aio_co_schedule"``), or None.
        self.scheduled: str | None = None
        #: Coroutines it woke on its own context, entered once it yields.
        self.co_queue_wakeup: deque[Coroutine] = deque()
        #: CoMutex and CoRwlock locks it holds.
        self.locks_held = 0
        self.done = False
        #: What ``entry`` returned, once done.
        self.result: object = None
        glet = _CoGreenlet(self._body)
        glet.co = self
        self._glet = glet

    def _body(self, *_: object) -> object:
        self.result = self.entry()
        return _TERMINATE

    def __repr__(self) -> str:
        if self.done:
            state = "done"
        elif self.caller is not None:
            state = "running"
        elif self.scheduled is not None:
            state = f"scheduled by {self.scheduled}"
        else:
            state = "yielded" if self._glet else "new"
        return f"<Coroutine {self.name!r} {state}>"


def qemu_coroutine_create(entry: Callable[[], object], name: str | None = None) -> Coroutine:
    """A new coroutine that will run ``entry()`` when first entered."""
    return Coroutine(entry, name)


def qemu_coroutine_self() -> Coroutine | None:
    """The coroutine running the caller, or None outside coroutines."""
    glet = getcurrent()
    return glet.co if isinstance(glet, _CoGreenlet) else None


def qemu_in_coroutine() -> bool:
    glet = getcurrent()
    return isinstance(glet, _CoGreenlet) and glet.co.caller is not None


def qemu_coroutine_entered(co: Coroutine) -> bool:
    """``co`` is running: entered and not yet yielded (maybe entering another one)."""
    return co.caller is not None


def qemu_get_current_aio_context() -> AioContext | None:
    """The AioContext of the calling thread of control (the main loop's, an IOThread's)."""
    thread = current_thread_of_control()
    return None if thread is None else thread.aio_context


def qemu_coroutine_enter(co: Coroutine) -> None:
    """Run ``co`` until it yields or returns, in the calling thread's context."""
    stack = _active.stack  # qemu_get_current_aio_context(), inlined
    qemu_aio_coroutine_enter(stack[-1].current.aio_context if stack else None, co)


def qemu_aio_coroutine_enter(ctx: AioContext | None, co: Coroutine) -> None:
    """Run ``co`` in ``ctx`` until it yields or returns; then the ones it woke, depth-first."""
    here = getcurrent()
    stack = _active.stack
    # The thread of control runs on the coroutine's stack while it runs: a
    # turn handed back to the thread while the coroutine waits must resume
    # the coroutine, so the thread's greenlet is swapped (greenlet backend).
    thread = stack[-1].current if stack else None
    if thread is not None and thread._glet is not here:
        thread = None
    pending: deque[Coroutine] | None = None
    to = co
    while True:
        if to.scheduled is not None or to.caller is not None or to.done:
            _refuse_enter(to)
        to.caller = here
        to.ctx = ctx
        glet = to._glet
        if glet.parent is not here:
            _reparent(to, here)
        if thread is not None:
            thread._glet = glet
        try:
            ret = glet.switch()
        except BaseException:
            to.done = True
            to.caller = None
            raise
        finally:
            if thread is not None:
                thread._glet = here
        if ret is _TERMINATE:
            to.done = True
            to.caller = None
            if to.locks_held:
                raise SimulationError(
                    f"coroutine {to.name!r} returned holding {to.locks_held} lock(s) "
                    "(CoMutex or CoRwlock): unlock them before it returns"
                )
        woken = to.co_queue_wakeup
        if woken:
            # QSIMPLEQ_PREPEND: what it woke runs before what was pending.
            to.co_queue_wakeup = deque()
            if pending:
                woken.extend(pending)
            pending = woken
        if not pending:
            return
        to = pending.popleft()


def _refuse_enter(to: Coroutine) -> None:
    if to.scheduled is not None:
        raise SimulationError(
            f"coroutine {to.name!r} entered while scheduled by {to.scheduled}: it would run twice"
        )
    if to.caller is not None:
        raise SimulationError(f"coroutine {to.name!r} re-entered recursively")
    raise SimulationError(f"coroutine {to.name!r} entered after it returned")


def _reparent(to: Coroutine, here: greenlet) -> None:
    """Make ``here`` the greenlet ``to`` returns or raises to."""
    try:
        to._glet.parent = here
    except (ValueError, greenlet_error) as exc:  # "parent cannot be on a different thread"
        to.caller = None
        raise SimulationError(
            f"coroutine {to.name!r} cannot be entered from this OS thread: under "
            "threads='os' a coroutine stays on the thread of control that first entered it"
        ) from exc


def qemu_coroutine_yield() -> None:
    """Give control back to whoever entered the running coroutine."""
    glet = getcurrent()
    if not isinstance(glet, _CoGreenlet):
        raise SimulationError("qemu_coroutine_yield() called outside a coroutine")
    co = glet.co
    caller = co.caller
    if caller is None:
        raise SimulationError(f"coroutine {co.name!r} is yielding to no one")
    co.caller = None
    caller.switch()


# -- util/async.c ------------------------------------------------------------------------


def aio_co_schedule(ctx: AioContext, co: Coroutine) -> None:
    """Enter ``co`` later, from ``ctx``'s ``co_schedule_bh``, in ``ctx``'s thread."""
    if co.scheduled is not None:
        raise SimulationError(
            f"aio_co_schedule: coroutine {co.name!r} was already scheduled by {co.scheduled}"
        )
    if co.done:
        raise SimulationError(f"aio_co_schedule: coroutine {co.name!r} has returned")
    co.scheduled = "aio_co_schedule"
    ctx.scheduled_coroutines.append((co, current_thread_of_control()))
    bh = ctx.co_schedule_bh
    if bh is None:
        bh = ctx.co_schedule_bh = ctx.bh_new(
            lambda: _co_schedule_bh_cb(ctx), name=f"{ctx.name}:co_schedule_bh"
        )
    bh.schedule()


def _co_schedule_bh_cb(ctx: AioContext) -> None:
    batch: list[tuple[Coroutine, Any]] = ctx.scheduled_coroutines
    ctx.scheduled_coroutines = []
    blocker = ctx.blocker
    sched = blocker if isinstance(blocker, Scheduler) else None
    while batch:
        index = 0
        if sched is not None and len(batch) > 1:
            index = _pick(sched, batch)
        co, _ = batch.pop(index)
        co.scheduled = None
        qemu_aio_coroutine_enter(ctx, co)


def _pick(sched: Scheduler, batch: list[tuple[Coroutine, Any]]) -> int:
    """The index in ``batch`` to enter next: among each scheduling thread's first, a decision."""
    firsts: list[int] = []
    sources: list[Any] = []
    for i, (_, source) in enumerate(batch):
        if source not in sources:
            sources.append(source)
            firsts.append(i)
    if len(firsts) == 1:
        return 0
    options = [
        f"{batch[i][0].name} (from {'outside' if s is None else s.name})"
        for i, s in zip(firsts, sources, strict=True)
    ]
    return firsts[sched.choose(ChoiceKind.COROUTINE, options)]


def aio_co_enter(ctx: AioContext | None, co: Coroutine) -> None:
    """Enter ``co`` in ``ctx``: now, once the running coroutine yields, or from ``ctx``'s thread."""
    if ctx is not qemu_get_current_aio_context():
        if ctx is None:
            raise SimulationError(
                f"aio_co_enter: coroutine {co.name!r} has no AioContext to be scheduled on"
            )
        aio_co_schedule(ctx, co)
        return
    me = qemu_coroutine_self()
    if me is not None and me.caller is not None:
        if me is co:
            raise SimulationError(f"coroutine {co.name!r} cannot wake itself")
        me.co_queue_wakeup.append(co)
    else:
        qemu_aio_coroutine_enter(ctx, co)


def aio_co_wake(co: Coroutine) -> None:
    """Enter ``co`` in the context it last ran in (see :func:`aio_co_enter`)."""
    if not co._glet:
        raise SimulationError(f"aio_co_wake: coroutine {co.name!r} is not waiting")
    aio_co_enter(co.ctx, co)  # ctx None: outside every simulation


def aio_co_reschedule_self(new_ctx: AioContext) -> None:
    """Move the running coroutine to ``new_ctx``'s thread (it resumes there)."""
    co = qemu_coroutine_self()
    if co is None or co.caller is None:
        raise SimulationError("aio_co_reschedule_self() called outside a coroutine")
    old_ctx = qemu_get_current_aio_context()
    if old_ctx is new_ctx:
        return
    if old_ctx is None:
        raise SimulationError(
            "aio_co_reschedule_self() from a thread of control without an AioContext"
        )
    # Scheduling it on new_ctx right away would race with this yield: the
    # other thread could enter it first. A BH here schedules it once it yielded.
    old_ctx.bh_schedule_oneshot(
        lambda: aio_co_schedule(new_ctx, co), name="aio_co_reschedule_self_bh"
    )
    qemu_coroutine_yield()


# -- util/qemu-coroutine-sleep.c -----------------------------------------------------------


def qemu_co_sleep_ns(clock_type: ClockType, ns: int) -> None:
    """Yield the running coroutine for ``ns`` of ``clock_type``; a timer of its context wakes it."""
    co = qemu_coroutine_self()
    if co is None or co.caller is None:
        raise SimulationError("qemu_co_sleep_ns() called outside a coroutine")
    ctx = qemu_get_current_aio_context() or co.ctx
    if ctx is None:
        raise SimulationError("qemu_co_sleep_ns() needs an AioContext to arm its timer on")
    if co.scheduled is not None:
        raise SimulationError(
            f"qemu_co_sleep_ns: coroutine {co.name!r} was already scheduled by {co.scheduled}"
        )

    def wake() -> None:
        co.scheduled = None
        aio_co_wake(co)

    timer = ctx.timer_new_ns(clock_type, wake, name=f"qemu_co_sleep_ns:{co.name}")
    timer.mod_ns(ctx.clock.get_ns(clock_type) + ns)
    co.scheduled = "qemu_co_sleep_ns"
    try:
        qemu_coroutine_yield()
    finally:
        timer.cancel()
