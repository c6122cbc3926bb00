"""Fine preemption: the loop's shared-state primitives as preemption points (opt-in).

By default a thread of control keeps the turn until it waits, so everything
a primitive does between two waits is atomic: a worker's
``qemu_bh_schedule`` sets the BH's flags and notifies the context in one
turn, and nothing runs between ``aio_poll``'s phases. That is QEMU under a
big lock, and it makes the classic wake-up races of QEMU's history
unreachable. ``Simulation(preemption="fine")`` (or ``set_preemption("fine")``
before the first step) turns each of these into a *preemption point*:

==========================================  ===========================================
primitive (QEMU)                            the point
==========================================  ===========================================
``qemu_bh_schedule`` / ``aio_bh_enqueue``   after the BH is on the list, before
                                            ``aio_notify`` (``ctx`` was read before,
                                            as QEMU reads it since 924fe1293c)
``aio_notify``                              after ``notified = true``, before
                                            ``notify_me`` is read
``notify_me`` updates (``aio_poll``,        after each write
``aio_ctx_prepare``/``check``)
``aio_notify_accept``                       after ``notified = false``
``event_notifier_set``,                     before the eventfd is written / read
``event_notifier_test_and_clear``           (any notifier of the simulation's fds)
``aio_poll`` phases                         on entry, before ``aio_bh_poll``, before
                                            the fd handlers run, before each timer list
``timer_mod`` (``timerlist_rearm``)         after the timer is on its list, before the
                                            list's notify
==========================================  ===========================================

At a point, if another thread of control is runnable, the scheduler asks the
chooser a :attr:`~evloop.ChoiceKind.PREEMPT` decision whose option 0 is the
running thread (no preemption) and whose other options are the runnable
threads, longest waiting first. It is recorded and replayed like every
decision. With nobody else runnable there is nothing to decide and nothing
is asked, so a run whose other threads are all blocked costs no decision.

Cost when off: none. The points are not tests in the hot paths: turning the
mode on swaps the simulation's contexts, timer list groups, bottom halves
and fd table to the subclasses below (the fd table's eventfd reads and
writes are the notifiers' points), so a simulation without it runs exactly
the code it ran before, and every existing trace plays byte for byte.

What a turn lock cannot model. A point makes the *order* of whole accesses
explorable: between two points a thread's accesses are atomic and every
other thread sees them at once (sequential consistency). Bugs that need a
store to become visible late, or two stores to be seen in different orders
by two CPUs (a missing ``smp_mb`` such as the one QEMU 5710a3e09f adds to
``aio_notify``/``aio_poll``), cannot happen here; finding them needs a
weak-memory model checker, not a scheduler.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..loop.aio import AioContext
from ..loop.bh import BH, BH_FREED, BH_PENDING, BH_SCHEDULED
from ..loop.fds import FdTable, _EventFd
from ..loop.timer import TimerList
from ..loop.timergroup import TimerListGroup

if TYPE_CHECKING:
    from ..loop.handlers import _Handler

__all__ = ["Point", "make_fds_preemptible", "make_preemptible", "make_timers_preemptible"]

#: A preemption point: may hand the turn to another runnable thread of control.
Point = Callable[[], None]


class _PreemptibleBH(BH):
    """A bottom half whose ``qemu_bh_schedule`` has a point between enqueue and notify."""

    __slots__ = ()

    def schedule(self) -> None:
        if self._flags & BH_FREED:
            self._use_after_free("schedule")
        # ctx is read before the BH becomes visible to the loop, which may run
        # and free it from then on (QEMU 924fe1293c).
        ctx = self.ctx
        ctx._bh_enqueue(self, BH_SCHEDULED)


class _PreemptibleContext(AioContext):
    """An AioContext whose primitives are preemption points (see the module docstring).

    ``_notified`` and ``_notify_me`` become properties so that every write of
    the two flags, wherever the loop makes it, is followed by a point.
    """

    _point: Point
    _fine_notified: bool
    _fine_notify_me: int

    @property
    def _notified(self) -> bool:
        return self._fine_notified

    @_notified.setter
    def _notified(self, value: bool) -> None:
        self._fine_notified = value
        self._point()

    @property
    def _notify_me(self) -> int:
        return self._fine_notify_me

    @_notify_me.setter
    def _notify_me(self, value: int) -> None:
        self._fine_notify_me = value
        self._point()

    def bh_new(self, cb: Callable[[], object], name: str | None = None) -> BH:
        bh = super().bh_new(cb, name)
        bh.__class__ = _PreemptibleBH
        return bh

    def _bh_enqueue(self, bh: BH, new_flags: int) -> None:
        # AioContext._bh_enqueue with a point between the enqueue and the
        # notify: keep the two in step.
        old = bh._flags
        bh._flags = old | BH_PENDING | new_flags
        if not old & BH_PENDING:
            self._bh_list.append(bh)
        self._bh_dirty[0] = True
        self._point()  # the BH is visible; aio_notify has not run yet
        self.notify()  # its write of notified is followed by a point too

    def poll(self, blocking: bool) -> bool:
        self._point()
        return super().poll(blocking)

    def _bh_poll(self) -> bool:
        self._point()
        return super()._bh_poll()

    def _dispatch_ready(self, nodes: list[_Handler], block_ns: int) -> bool:
        self._point()
        return super()._dispatch_ready(nodes, block_ns)


class _PreemptibleFds(FdTable):
    """An fd table whose eventfd writes and reads are points: ``event_notifier_set``
    and ``event_notifier_test_and_clear`` of every notifier on it."""

    __slots__ = ()

    def _write_eventfd(self, efd: _EventFd, data: bytes) -> int:
        point = self.preempt
        assert point is not None
        point()
        return super()._write_eventfd(efd, data)

    def _read_eventfd(self, efd: _EventFd, n: int) -> bytes:
        point = self.preempt
        assert point is not None
        point()
        return super()._read_eventfd(efd, n)


def make_fds_preemptible(fds: FdTable, point: Point) -> None:
    """Points before every eventfd write and read of ``fds``."""
    if type(fds) is FdTable:
        fds.preempt = point
        fds.__class__ = _PreemptibleFds


class _PreemptibleTimers(TimerListGroup):
    """A timer list group with a point before each list's timers run.

    The group has no room for the point (its slots are fixed, and a class
    swap needs the same layout): its lists' owner, the context or main loop,
    holds it as ``_point``.
    """

    __slots__ = ()

    def run_timers(self) -> bool:
        progress = False
        for tl in self.lists:
            if tl._heap:
                tl.owner._point()
                if tl.run_timers():
                    progress = True
        return progress


def make_timers_preemptible(tlg: TimerListGroup, owner: object, point: Point) -> None:
    """Points before each timer list of ``tlg`` runs and before each rearm notify.

    ``owner`` is the lists' owner (an AioContext or the MainLoop), which keeps ``point``.
    """
    if type(tlg) is not TimerListGroup:
        return
    owner._point = point  # type: ignore[attr-defined]
    tlg.__class__ = _PreemptibleTimers
    for tl in tlg.lists:
        _notify_after_point(tl, point)


def _notify_after_point(tl: TimerList, point: Point) -> None:
    notify = tl.notify
    if notify is None:
        return

    def rearm() -> None:
        point()  # the timer is on its list; the loop is not told yet
        notify()

    tl.notify = rearm


def make_preemptible(ctx: AioContext, point: Point) -> None:
    """Make ``ctx`` (and its timer lists and future BHs) preemptible at ``point``.

    Called on every context of a simulation when fine preemption is turned on,
    and on each context made afterwards. Bottom halves made before stay
    coarse: the mode is meant to be set before the scenario builds anything.
    """
    if type(ctx) is AioContext:
        notified, notify_me = ctx._notified, ctx._notify_me
        ctx.__dict__.pop("_notified", None)
        ctx.__dict__.pop("_notify_me", None)
        ctx.__class__ = _PreemptibleContext
        assert isinstance(ctx, _PreemptibleContext)
        ctx._point = point
        ctx._fine_notified = notified
        ctx._fine_notify_me = notify_me
    make_timers_preemptible(ctx.tlg, ctx, point)


