"""Timers and timer lists, kept as QEMU keeps them (``util/qemu-timer.c``).

Rules kept here:

* A timer list holds the pending timers of one clock, sorted by expiry; ties
  run first-in-first-out, in the order they were armed. The sort key is
  ``(expire_ns, arm_seq)``: a total order, nothing left to chance.
* ``mod`` of a negative time stores 0. Re-arming a pending timer moves it (it
  becomes the newest of its ties), as ``timer_del`` + insert does in QEMU.
* A timer is no longer pending inside its own callback: it is taken off the
  list (expire time -1) before the callback runs.
* ``run_timers`` samples the clock *once* and runs every timer whose expiry is
  at or before that sample, so a callback re-arming its timer at or before the
  sampled time runs again in the same pass.
* A list's deadline is -1 when it is empty or its clock is disabled.
* When a timer becomes the head of its list, the list's notify callback runs
  (``timerlist_rearm``): that is how a loop blocked with a longer timeout
  learns it must wake earlier.

Storage is a binary heap of ``(expire_ns, arm_seq, timer)`` tuples with lazy
deletion: an entry is live while its timer's ``_entry`` is that very tuple,
so cancelling or re-arming a timer just points ``_entry`` elsewhere instead
of searching the heap. Dead entries are dropped when they reach the top or
when they outnumber live ones. Every operation is O(log n) in the pending
timers.
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heapify, heappop, heappush
from typing import TYPE_CHECKING, Any, Protocol

from ..seams import bind_observer
from .clock import ClockType, VirtualClock

if TYPE_CHECKING:
    from ..seams import CheckpointGate, DispatchObserver

__all__ = [
    "QEMU_TIMER_ATTR_ALL",
    "QEMU_TIMER_ATTR_EXTERNAL",
    "Timer",
    "TimerList",
]

#: A timer attribute (``include/qemu/timer.h``): the timer drives something
#: outside the guest (a network backend's, say), so it changes no guest state
#: by itself. QEMU's record/replay takes no ``VIRTUAL`` checkpoint for it, and
#: icount's deadlines leave it out with the mask ``~QEMU_TIMER_ATTR_EXTERNAL``.
QEMU_TIMER_ATTR_EXTERNAL = 1 << 0
#: The attribute mask that includes every timer.
QEMU_TIMER_ATTR_ALL = 0xFFFFFFFF

#: Dispatch kind reported to observers for a timer callback.
DISPATCH_TIMER = 4

# A heap entry: (expire_ns, arm_seq, timer); live while ``timer._entry is entry``.
_Entry = tuple[int, int, "Timer"]

# The clock types as plain ints, for the checkpoint switch of the gated runs.
_VIRTUAL = int(ClockType.VIRTUAL)
_HOST = int(ClockType.HOST)
_VIRTUAL_RT = int(ClockType.VIRTUAL_RT)



class TimerList:
    """The pending timers of one clock, for one context (``QEMUTimerList``)."""

    __slots__ = (
        "_ct",
        "_dead",
        "_front_seq",
        "_heap",
        "_seq",
        "checkpoint",
        "clock",
        "clock_type",
        "dirty",
        "halt",
        "notify",
        "observer",
        "owner",
    )

    def __init__(
        self,
        clock: VirtualClock,
        clock_type: ClockType,
        notify: Callable[[], None] | None = None,
        owner: Any = None,
    ) -> None:
        self.clock = clock
        self.clock_type = ClockType(clock_type)
        #: The clock type as a plain int: IntEnum members index lists slowly.
        self._ct = int(clock_type)
        self.notify = notify
        self.owner = owner
        self.observer: DispatchObserver | None = None
        self.checkpoint: CheckpointGate | None = None
        #: Raised by a simulation's step limit: stop before the next timer.
        self.halt: list[bool] = [False]
        #: Raised whenever a timer becomes the head of this list (the loop's
        #: dirty signal, ``AioContext.dirty``); see :meth:`run_warping`.
        self.dirty: list[bool] = [False]
        self._heap: list[_Entry] = []
        self._seq = 0
        self._front_seq = -1
        self._dead = 0

    def __len__(self) -> int:
        """The number of pending timers."""
        return len(self._heap) - self._dead

    def _head(self) -> _Entry | None:
        heap = self._heap
        while heap:
            entry = heap[0]
            if entry[2]._entry is entry:
                return entry
            heappop(heap)
            self._dead -= 1
        return None

    def has_timers(self) -> bool:
        return self._head() is not None

    def deadline_ns(self) -> int:
        """ns until the soonest timer expires: 0 if expired, -1 if none or clock disabled."""
        head = self._head()
        if head is None or not self.clock._enabled[self._ct]:
            return -1
        delta: int = head[0] - self.clock._now[self._ct]
        return delta if delta > 0 else 0

    def deadline_ns_masked(self, attr_mask: int) -> int:
        """:meth:`deadline_ns` over the timers whose attributes are all in ``attr_mask``.

        As ``qemu_clock_deadline_ns_all`` walks one list: the soonest timer
        with no attribute outside the mask; -1 if there is none.
        """
        head = self._head()
        if head is None or not self.clock._enabled[self._ct]:
            return -1
        if head[2].attributes & ~attr_mask:
            live = sorted(e for e in self._heap if e[2]._entry is e)
            head = next((e for e in live if not e[2].attributes & ~attr_mask), None)
            if head is None:
                return -1
        delta: int = head[0] - self.clock._now[self._ct]
        return delta if delta > 0 else 0

    def expired(self) -> bool:
        head = self._head()
        return head is not None and head[0] <= self.clock._now[self._ct]

    def _arm(self, timer: Timer, expire_ns: int) -> None:
        # Timer.mod_ns inlines this (hot path): keep the two in step.
        if timer._entry is not None:
            self._dead += 1
        if expire_ns < 0:
            # QEMU walks the list with the raw negative time, so the timer goes
            # to the very head (ahead of every timer due at 0, newest first),
            # and only then stores 0.
            entry = (0, self._front_seq, timer)
            self._front_seq -= 1
        else:
            entry = (expire_ns, self._seq, timer)
            self._seq += 1
        timer._entry = entry
        heap = self._heap
        heappush(heap, entry)
        if self._dead > 64 and self._dead > len(heap) >> 1:
            self._compact()  # in place: heap stays the same list
        head = heap[0]
        if head is entry or (head[2]._entry is not head and self._head() is entry):
            self.dirty[0] = True
            notify = self.notify
            if notify is not None:
                notify()

    def _disarm(self, timer: Timer) -> None:
        if timer._entry is not None:
            timer._entry = None
            self._dead += 1

    def _compact(self) -> None:
        # In place: run_timers holds a reference to the list while callbacks
        # (which may arm timers, and so compact) run.
        heap = self._heap
        heap[:] = [e for e in heap if e[2]._entry is e]
        heapify(heap)
        self._dead = 0

    def run_timers(self) -> bool:
        """Run every timer expired at the current time; True if any ran (progress)."""
        heap = self._heap
        if not heap:
            return False
        clock = self.clock
        ct = self._ct
        if not clock._enabled[ct]:
            return False
        gate = self.checkpoint
        if gate is not None:
            return self._run_gated(gate)
        current = clock._now[ct]
        observer = self.observer
        halt = self.halt
        progress = False
        while heap:
            if halt[0]:
                break
            entry = heap[0]
            timer = entry[2]
            if timer._entry is not entry:
                heappop(heap)
                self._dead -= 1
                continue
            if entry[0] > current:
                break
            heappop(heap)
            timer._entry = None
            if observer is not None:
                observer(DISPATCH_TIMER, self.owner, timer)
            timer.cb()
            progress = True
        return progress

    def _run_gated(self, gate: CheckpointGate) -> bool:
        """:meth:`run_timers` asking the replay layer's checkpoints (``timerlist_run_timers``).

        As QEMU takes them (``util/qemu-timer.c``): none for REALTIME; one
        ``CHECKPOINT_CLOCK_HOST`` or ``_VIRTUAL_RT`` before the list runs;
        for VIRTUAL, one ``CHECKPOINT_CLOCK_VIRTUAL`` before each expired
        timer without ``QEMU_TIMER_ATTR_EXTERNAL``, which changes no guest
        state and takes none. Unlike QEMU, a checkpoint is asked only when a
        timer is due: QEMU's HOST and VIRTUAL_RT checkpoints come before the
        list samples its clock, a real read; ours is virtual, so a list with
        nothing due has nothing to order. A False answer stops the run there.

        Its loop is :meth:`run_timers`' with the checkpoint added, kept apart
        so that an unrecorded run (no gate) asks nothing per timer.
        """
        ct = self._ct
        current = self.clock._now[ct]
        head = self._head()
        if head is None or head[0] > current:
            return False
        if ct in (_HOST, _VIRTUAL_RT) and not gate(self.clock_type):
            return False
        each = ct == _VIRTUAL
        heap = self._heap
        observer = self.observer
        halt = self.halt
        progress = False
        while heap:
            if halt[0]:
                break
            entry = heap[0]
            timer = entry[2]
            if timer._entry is not entry:
                heappop(heap)
                self._dead -= 1
                continue
            if entry[0] > current:
                break
            if each and not timer.attributes & QEMU_TIMER_ATTR_EXTERNAL and not gate(
                ClockType.VIRTUAL
            ):
                break
            heappop(heap)
            timer._entry = None
            if observer is not None:
                observer(DISPATCH_TIMER, self.owner, timer)
            timer.cb()
            progress = True
        return progress

    def run_warping(
        self,
        wait_for: Callable[[int], int] | None,
        begin: Callable[[], None] | None,
        until_ns: int,
        counter: _Counter,
        step_limit: int,
    ) -> int:
        """Warp to the head's expiry and run the expired timers, pass after pass.

        Each pass is what one quiet main-loop iteration does when this list
        alone has timers: the blocking wait warps every clock by the time to
        the head, and then :meth:`run_timers` runs. ``wait_for(ns)``, when
        given, is how long the wait lasts for a deadline ``ns`` away (the
        main loop rounds an ``AioContext``'s deadline up to whole ms, as glib
        polls); ``begin()``, when given, runs before each pass's warp, for what the
        iteration does before its wait ends (the contexts' check).

        Preconditions, kept by the caller: every other timer list of the loop
        is empty; nothing else can be ready; ``self.dirty`` is the loop's
        dirty signal, lowered. A timer of this list that becomes its head
        does not raise the signal while the passes run (it is their own work).

        Stops before a pass when ``counter.steps`` reaches ``step_limit``
        (-1: none), the REALTIME clock reaches ``until_ns`` (-1: none), the
        head is already due, the list is empty or its clock is disabled; and
        after a pass that raised the dirty signal or the halt flag; and
        inside a pass whose replay checkpoint (``checkpoint``, asked as
        :meth:`_run_gated` asks it) answered False, as :data:`WARP_DIRTY`. Returns
        why, as one of the ``WARP_*`` constants; after :data:`WARP_DIRTY` and
        :data:`WARP_UNTIL` the caller finishes the iteration (the phases that
        come after this list's timers).
        """
        dirty = self.dirty
        self.dirty = [False]  # this list's own new heads: not news
        clock = self.clock
        now = clock._now
        enabled = clock._enabled
        ct = self._ct
        heap = self._heap
        halt = self.halt
        owner = self.owner
        # The observer bound to this list's timers: its thread of control
        # holds the turn throughout (a callback that blocks gets it back).
        observer = self.observer
        observe = None if observer is None else bind_observer(observer, DISPATCH_TIMER, owner)
        pop = heappop
        # The replay checkpoints, as _run_gated asks them: once a pass (HOST,
        # VIRTUAL_RT) or before each timer (VIRTUAL); None when unrecorded.
        gate = self.checkpoint
        gate_once = gate if ct in (_HOST, _VIRTUAL_RT) else None
        gate_each = gate if ct == _VIRTUAL else None
        clock_type = self.clock_type
        external = QEMU_TIMER_ATTR_EXTERNAL
        entry: Any = None  # the head, when the last pass left it checked
        try:
            if halt[0]:
                return WARP_DIRTY
            while True:
                if 0 <= step_limit <= counter.steps:
                    return WARP_LIMIT
                if 0 <= until_ns <= now[0]:
                    return WARP_UNTIL_REACHED
                if entry is None:
                    while heap and heap[0][2]._entry is not heap[0]:  # dead: drop it
                        pop(heap)
                        self._dead -= 1
                    if not heap:
                        return WARP_EMPTY
                    entry = heap[0]
                if not enabled[ct]:
                    return WARP_DISABLED
                delta = entry[0] - now[ct]
                if wait_for is not None:
                    if delta <= 0:
                        return WARP_DUE
                    delta = wait_for(delta)
                elif delta < 0:
                    delta = 0  # due already: the wait does not block
                if begin is not None:
                    begin()
                reached = 0 <= until_ns < now[0] + delta
                if reached:
                    clock.advance_to(until_ns)
                    if entry[0] > now[ct]:
                        return WARP_UNTIL  # the head is not due at the limit
                elif delta:
                    # VirtualClock.advance, inlined (keep in step): delta > 0.
                    now[0] += delta
                    if enabled[1]:
                        now[1] += delta
                    now[2] += delta
                    now[3] += delta
                # run_timers, without its setup: the clock sampled once, the
                # head live and due, the halt flag down (checked after each).
                current = now[ct]
                timer = entry[2]
                if gate_once is not None and not gate_once(clock_type):
                    return WARP_DIRTY  # the checkpoint is not next: the list waits
                while True:
                    if (
                        gate_each is not None
                        and not timer.attributes & external
                        and not gate_each(clock_type)
                    ):
                        return WARP_DIRTY
                    pop(heap)
                    timer._entry = None
                    if observe is not None:
                        observe(timer)
                    timer.cb()
                    if not heap or halt[0]:
                        entry = None
                        break
                    entry = heap[0]
                    timer = entry[2]
                    while timer._entry is not entry:  # dead: drop it, same pass
                        pop(heap)
                        self._dead -= 1
                        if not heap:
                            entry = None
                            break
                        entry = heap[0]
                        timer = entry[2]
                    if entry is None or entry[0] > current:
                        break  # the next pass starts from this head (if any)
                if reached:
                    return WARP_UNTIL
                if dirty[0] or halt[0]:
                    return WARP_DIRTY
        finally:
            self.dirty = dirty


class _Counter(Protocol):
    steps: int


#: Why :meth:`TimerList.run_warping` stopped (plain ints: compared on hot paths).
WARP_DIRTY = 0  #: something else changed during the last pass
WARP_EMPTY = 1  #: no timer left
WARP_DISABLED = 2  #: the list's clock is disabled
WARP_DUE = 3  #: the head is due before any wait (``wait_for`` given: a context ready at prepare)
WARP_LIMIT = 4  #: the step limit is reached
WARP_UNTIL = 5  #: the last pass warped to ``until_ns`` and ran there
WARP_UNTIL_REACHED = 6  #: the clock was at ``until_ns`` before the pass


class Timer:
    """A timer on one clock of one timer list group (``QEMUTimer``).

    Create it with ``timer_new_ns`` / ``timer_new`` on an
    :class:`~evloop.AioContext` or :class:`~evloop.MainLoop`.
    """

    __slots__ = ("_entry", "_list", "attributes", "cb", "name", "scale", "uid")

    def __init__(
        self,
        timer_list: TimerList,
        scale: int,
        cb: Callable[[], object],
        name: str | None = None,
        uid: int = 0,
        attributes: int = 0,
    ) -> None:
        if scale <= 0:
            raise ValueError(f"a timer's scale must be a positive number of ns, not {scale}")
        if not 0 <= attributes <= QEMU_TIMER_ATTR_ALL:
            raise ValueError(
                f"a timer's attributes must be a mask of QEMU_TIMER_ATTR_* bits, not {attributes}"
            )
        self._list = timer_list
        self.scale = scale
        #: ``QEMU_TIMER_ATTR_*`` bits (``timer_init_full``); fixed at creation.
        self.attributes = attributes
        self.cb = cb
        self.name = name
        #: Creation number within the timer list group: stable from run to run.
        self.uid = uid
        self._entry: _Entry | None = None

    @property
    def clock_type(self) -> ClockType:
        return self._list.clock_type

    def mod_ns(self, expire_ns: int) -> None:
        """Arm (or re-arm) to fire when the clock reaches ``expire_ns`` (``timer_mod_ns``)."""
        # TimerList._arm, inlined for its commonest case (the hot path of
        # every timer-driven simulation); anything unusual goes to _arm.
        tl = self._list
        if expire_ns < 0 or self._entry is not None or tl._dead:
            tl._arm(self, expire_ns)
            return
        self._entry = entry = (expire_ns, tl._seq, self)
        tl._seq += 1
        heap = tl._heap
        heappush(heap, entry)
        if heap[0] is entry:
            tl.dirty[0] = True
            notify = tl.notify
            if notify is not None:
                notify()

    def mod(self, expire: int) -> None:
        """Arm in the timer's own scale (``timer_mod``)."""
        self._list._arm(self, expire * self.scale)

    def mod_anticipate_ns(self, expire_ns: int) -> None:
        """Arm, but only ever move the expiry earlier (``timer_mod_anticipate_ns``)."""
        entry = self._entry
        if entry is None or entry[0] > expire_ns:
            self._list._arm(self, expire_ns)

    def mod_anticipate(self, expire: int) -> None:
        """:meth:`mod_anticipate_ns` in the timer's own scale."""
        self.mod_anticipate_ns(expire * self.scale)

    def cancel(self) -> None:
        """Stop the timer if pending (``timer_del``); it can be armed again later."""
        self._list._disarm(self)

    def pending(self) -> bool:
        return self._entry is not None

    def expire_time_ns(self) -> int:
        """When the timer fires, in ns, or -1 when it is not pending."""
        entry = self._entry
        return -1 if entry is None else int(entry[0])

    def expired(self, current_time: int) -> bool:
        """``timer_expired``: due at ``current_time`` (in the timer's scale).

        As in QEMU, a timer that is not pending has expire time -1 and so
        counts as expired.
        """
        entry = self._entry
        return entry is None or entry[0] <= current_time * self.scale

    def __repr__(self) -> str:
        from .bh import callback_name

        what = self.name if self.name is not None else callback_name(self.cb)
        return f"<Timer {what!r} {self.clock_type.name} expire_ns={self.expire_time_ns()}>"
