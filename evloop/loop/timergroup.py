"""Timer list groups: one timer list per clock type, for one context (``QEMUTimerListGroup``).

A group is what an :class:`~evloop.AioContext` or the main loop owns
(``util/qemu-timer.c``): four :class:`~evloop.loop.timer.TimerList` objects,
REALTIME, VIRTUAL, HOST and VIRTUAL_RT, run in that order. The group
registers itself on its clock (QEMU's ``clock->timerlists``), so
:func:`qemu_clock_deadline_ns_all` can ask every context's list of one
clock, and re-enabling a clock notifies the group's owner.

``timer.py`` keeps the timers and the lists, with the rules they follow;
this module only gathers lists and answers for all of them.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

from .clock import ClockType, VirtualClock, soonest_timeout
from .timer import QEMU_TIMER_ATTR_ALL, Timer, TimerList

if TYPE_CHECKING:
    from ..seams import CheckpointGate, DispatchObserver

__all__ = ["TimerListGroup", "qemu_clock_deadline_ns_all"]


class TimerListGroup:
    """One timer list per clock type (``QEMUTimerListGroup``)."""

    __slots__ = ("__weakref__", "_uids", "lists")

    def __init__(
        self,
        clock: VirtualClock,
        notify: Callable[[], None] | None = None,
        owner: object = None,
    ) -> None:
        self.lists: tuple[TimerList, ...] = tuple(
            TimerList(clock, t, notify, owner) for t in ClockType
        )
        self._uids = 0
        clock.timer_groups.append(weakref.ref(self))  # timerlist_new: on the clock's list
        if notify is not None:
            # qemu_clock_enable -> qemu_clock_notify -> timerlist_notify.
            clock.add_listener(self._clock_enabled)

    def _clock_enabled(self, clock_type: ClockType) -> None:
        self.lists[clock_type].dirty[0] = True
        notify = self.lists[clock_type].notify
        if notify is not None:
            notify()

    def new_timer(
        self,
        clock_type: ClockType,
        scale: int,
        cb: Callable[[], object],
        name: str | None,
        attributes: int = 0,
    ) -> Timer:
        self._uids += 1
        return Timer(self.lists[ClockType(clock_type)], scale, cb, name, self._uids, attributes)

    def deadline_ns(self) -> int:
        """The soonest deadline over every clock (``timerlistgroup_deadline_ns``)."""
        deadline = -1
        for tl in self.lists:
            if tl._heap:
                deadline = soonest_timeout(deadline, tl.deadline_ns())
        return deadline

    def run_timers(self) -> bool:
        """Run expired timers clock by clock: REALTIME, VIRTUAL, HOST, VIRTUAL_RT."""
        progress = False
        for tl in self.lists:
            if tl._heap and tl.run_timers():
                progress = True
        return progress

    def set_observer(self, observer: DispatchObserver | None) -> None:
        for tl in self.lists:
            tl.observer = observer

    def set_halt(self, halt: list[bool]) -> None:
        for tl in self.lists:
            tl.halt = halt

    def set_dirty(self, dirty: list[bool]) -> None:
        for tl in self.lists:
            tl.dirty = dirty

    def run_timers_after(self, tl: TimerList) -> bool:
        """Run the expired timers of the lists that come after ``tl`` in clock order."""
        progress = False
        for other in self.lists[tl._ct + 1 :]:
            if other._heap and other.run_timers():
                progress = True
        return progress

    def set_checkpoint(self, gate: CheckpointGate | None) -> None:
        """Ask ``gate(clock_type)`` before any list runs its timers (the replay seam)."""
        for tl in self.lists:
            tl.checkpoint = gate

    def pending_count(self) -> int:
        return sum(len(tl) for tl in self.lists)



def qemu_clock_deadline_ns_all(
    clock: VirtualClock, clock_type: ClockType, attr_mask: int = QEMU_TIMER_ATTR_ALL
) -> int:
    """ns until the soonest timer of ``clock_type`` on *any* timer list of ``clock``.

    ``qemu_clock_deadline_ns_all`` (``util/qemu-timer.c``): every context's
    and main loop's list of that clock counts, not one group's; a timer with
    an attribute outside ``attr_mask`` is skipped (icount passes
    ``~QEMU_TIMER_ATTR_EXTERNAL``). 0 if one is due, -1 if there is none or
    the clock is disabled. Reads no hooked clock.
    """
    ct = ClockType(clock_type)
    if not clock._enabled[ct]:
        return -1
    deadline = -1
    groups = clock.timer_groups
    live = []
    for ref in groups:
        group = ref()
        if group is None:
            continue  # its context is gone (timerlist_free)
        live.append(ref)
        tl = group.lists[ct]
        if tl._heap:
            deadline = soonest_timeout(deadline, tl.deadline_ns_masked(attr_mask))
    if len(live) != len(groups):
        groups[:] = live
    return deadline
