"""Quiet iterations of the main loop, run cheaply: what ``main_loop_wait`` does, without its glue.

A full :meth:`MainLoop.wait` prepares both contexts, computes a timeout in
ms, blocks, checks both contexts, dispatches, and runs the main-loop timers:
about 10 us of Python, whatever little there is to do. When the loop is
*quiet*, the outcome of an iteration is known in advance, and the functions
here produce exactly that outcome directly, iteration after iteration:

* **timers** (:func:`run_quiet_timers`): one timer list alone has timers (a
  main-loop list, or one of ``aio_context``'s or ``iohandler_context``'s);
  no bottom half, no ready fd handler. Each iteration's wait would warp the
  clocks by the time to the head (an ``AioContext``'s deadline rounded up to
  whole ms, as glib polls), both contexts' check would clear their notify
  flags, and the timers expired at the warped time would run:
  ``TimerList.run_warping`` does that, pass after pass.
* **bottom halves** (:func:`run_quiet_bh_batches`): ``aio_context`` alone has
  work, scheduled bottom halves. Each iteration runs one batch (one
  ``aio_bh_poll``) with no time passing, and the eventfd kick a bottom half
  scheduled from a bottom half writes is modelled instead of written.
* **ready fd handlers** (:func:`run_quiet_ready`): fd handlers of
  ``aio_context`` are ready and nothing else is due: the wait returns at
  once, the checks snapshot the ready handlers, and they run.

The invariants every function here keeps, and relies on:

1. **Only the iteration's own outcome.** Each produces the steps, the clock,
   the notify flags and the eventfds a full iteration would leave, so the
   full loop can take over at any iteration boundary. The equivalence
   property test (``tests/evloop/test_fastpath.py``) runs random scenarios
   both ways and compares step logs, digests and checkpoints.
2. **The caller vouches for the machine.** The main thread of control is
   alone (no other thread, no pending external input), no shutdown is asked,
   and the step and time limits are the caller's. These functions look at
   the main loop only.
3. **The dirty signal says when to look again.** ``MainLoop.dirty`` is raised
   by anything that could end quietness: an fd handler becoming ready or
   being registered, a timer becoming the head of its list, a poll, a
   thread or input appearing, a shutdown. Each function lowers it once it
   has checked the state in full, and stops at the next iteration boundary
   after it is raised, having finished that iteration. The work an
   iteration does to itself (a timer re-arming its own list, a bottom half
   scheduling one on its own context) is not news and is kept off the
   signal while it runs.
4. **Real callbacks, real dispatch code.** Callbacks run through the
   context's and the timer list's own code (``aio_bh_poll``,
   ``TimerList.run_warping``, ``_dispatch_handler``), observed as always.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from .bh import BH_DELETED, BH_IDLE, BH_SCHEDULED
from .clock import poll_wait_ns
from .timer import WARP_DIRTY, WARP_DUE, WARP_UNTIL, TimerList

if TYPE_CHECKING:
    from .aio import AioContext
    from .mainloop import MainLoop

__all__ = [
    "QUIET_AGAIN",
    "QUIET_NO",
    "QUIET_UNTIL",
    "run_quiet",
]

#: What :func:`run_quiet` did (plain ints: compared on hot paths).
QUIET_NO = 0  #: the loop is not quiet: run a full iteration
QUIET_AGAIN = 1  #: ran some iterations; check the limits and call again
QUIET_UNTIL = 2  #: the last iteration warped to ``until_ns``: the run stops there


class StepCounter(Protocol):
    steps: int


def run_quiet(ml: MainLoop, counter: StepCounter, step_limit: int, until_ns: int) -> int:
    """Run quiet iterations of ``ml`` while they stay quiet (invariant 2 is the caller's)."""
    aio = ml.aio_context
    ioh = ml.iohandler_context
    if aio._poll_started or ioh._poll_started or aio._on_poll is not None:
        return QUIET_NO
    if ioh._bh_list or ioh._bh_slices or ioh._ready or aio._bh_slices:
        return QUIET_NO
    if aio._bh_list:
        return run_quiet_bh_batches(ml, counter, step_limit, until_ns)
    if aio._ready:
        return run_quiet_ready(ml, counter, step_limit)
    return run_quiet_timers(ml, counter, step_limit, until_ns)


def _quiet_timer_list(ml: MainLoop) -> TimerList | None:
    """The one timer list with timers, if exactly one has (and its clock is running)."""
    found: TimerList | None = None
    for tlg in (ml.tlg, ml.aio_context.tlg, ml.iohandler_context.tlg):
        for tl in tlg.lists:
            if tl._heap and tl._head() is not None:
                if found is not None:
                    return None
                found = tl
    if found is None:
        return None
    if not ml.clock._enabled[found.clock_type]:
        return None
    return found


def run_quiet_timers(ml: MainLoop, counter: StepCounter, step_limit: int, until_ns: int) -> int:
    """Timer iterations while one timer list alone has timers (see the module docstring)."""
    tl = _quiet_timer_list(ml)
    if tl is None:
        return QUIET_NO
    aio = ml.aio_context
    ioh = ml.iohandler_context
    in_context = tl.owner is not ml
    if in_context and tl.deadline_ns() == 0:
        return QUIET_NO  # its context is ready at prepare: the full loop's case

    # Both contexts are prepared (not ready) and then checked, each
    # iteration. Only a timer of this list becoming its head, which notifies
    # its own context, can change their flags without raising the dirty signal.
    for ctx in (aio, ioh):
        ctx._notify_me &= ~1
        ctx._notified = False
    begin = None
    if in_context:
        checked = tl.owner

        def begin() -> None:
            checked._notified = False

    ml.dirty[0] = False
    # An AioContext's deadline is waited for in whole ms, rounded up, as glib polls.
    wait_for = poll_wait_ns if in_context else None
    why = tl.run_warping(wait_for, begin, until_ns, counter, step_limit)
    if why == WARP_DUE:
        return QUIET_NO
    if why in (WARP_DIRTY, WARP_UNTIL):
        # Finish the iteration: the lists after this one, then the main
        # loop's (the other context was checked with nothing to do).
        owner = ml if not in_context else tl.owner
        owner.tlg.run_timers_after(tl)
        if in_context:
            ml.tlg.run_timers()
        if why == WARP_UNTIL:
            return QUIET_UNTIL
    return QUIET_AGAIN


def run_quiet_ready(ml: MainLoop, counter: StepCounter, step_limit: int) -> int:
    """Iterations in which ``aio_context``'s ready fd handlers alone have work.

    Nothing is due (no bottom half, no expired timer anywhere), so each
    iteration's wait returns at once, both contexts are checked
    (``aio_context`` takes its readiness snapshot then), ``aio_context``
    dispatches its ready handlers and its timers, and the main-loop timers
    run. While the dirty signal stays down, no timer fell due (time stands
    still, and none became the head of its list), so the main-loop timers
    have nothing to run, and the next iteration is the same kind if a
    handler of ``aio_context`` is ready again.
    """
    aio = ml.aio_context
    ioh = ml.iohandler_context
    if aio.tlg.deadline_ns() == 0 or ioh.tlg.deadline_ns() == 0 or ml.tlg.deadline_ns() == 0:
        return QUIET_NO
    dirty = ml.dirty
    aio._ready_dirty = [False]  # its own handlers becoming ready: not news
    # ioh is prepared, then checked (nothing to do), each iteration: its flags
    # cleared. Only what raises the dirty signal sets them again.
    ioh._notify_me &= ~1
    ioh._notified = False
    try:
        while True:
            dirty[0] = False
            if aio.check():
                aio.dispatch()
            if dirty[0]:
                ml.tlg.run_timers()  # finish the iteration, and look again
                return QUIET_AGAIN
            if not aio._ready or 0 <= step_limit <= counter.steps:
                return QUIET_AGAIN
    finally:
        aio._ready_dirty = dirty


_DUE_MASK = BH_SCHEDULED | BH_DELETED | BH_IDLE


def _bh_due(aio: AioContext) -> bool:
    """``aio_compute_timeout`` is 0: a scheduled, non-idle bottom half is pending."""
    bhs = aio._bh_list
    if not bhs:
        return False
    # Usually the newest BH says so; otherwise ask the real thing.
    if bhs[-1]._flags & _DUE_MASK == BH_SCHEDULED:
        return True
    return aio._bh_timeout(bhs, -1) == 0


def run_quiet_bh_batches(
    ml: MainLoop, counter: StepCounter, step_limit: int, until_ns: int
) -> int:
    """Bottom-half iterations while ``aio_context``'s bottom halves alone are due.

    A full iteration then sees ``aio_context`` ready at prepare (a zero
    timeout), so glib skips its check: ``notify_me`` stays set while its
    bottom halves run, and a bottom half scheduled by one kicks the
    context's eventfd, whose notifier the next iteration dispatches from its
    readiness snapshot. ``iohandler_context`` is prepared and checked (a
    no-op but for its notify flags). Time does not move. After the batch,
    the timers the batch made due run, the context's, then the main loop's.
    This does exactly that, one batch per iteration, with the eventfd
    modelled: ``kicked`` is whether it is set at this iteration's snapshot.
    """
    aio = ml.aio_context
    ioh = ml.iohandler_context
    notifier = aio._handlers[aio.notifier.fd]
    ready = aio._ready
    if ready and (len(ready) > 1 or notifier.seq not in ready):
        return QUIET_NO
    if any(tl._heap for tl in aio.tlg.lists) or ioh.compute_timeout() == 0:
        return QUIET_NO
    if ml.tlg.deadline_ns() == 0 or not _bh_due(aio):
        return QUIET_NO
    if 0 <= until_ns <= ml.clock._now[0]:
        return QUIET_AGAIN
    dirty = ml.dirty
    dirty[0] = False
    aio._bh_dirty = [False]  # its own bottom halves scheduling more: not news
    kicked = notifier.seq in ready
    was_notified = False
    in_batch = False

    def materialize() -> None:
        # A callback polls aio_context itself (aio_poll from a BH or a
        # timer): make the modelled state real first, as the full loop
        # would have it. Then it is the full loop's again: poll() drops
        # this hook, which tells the loop below to hand back.
        if in_batch:
            # notify_me is set while the batch runs, so the eventfd is set
            # by a kick of the last batch or any notify() so far.
            called = aio._notified
            aio._notified = was_notified or called
            aio._notify_me |= 1
            pending = kicked or called
        else:
            pending = kicked  # the batch's kick, not read yet
        if pending and notifier.seq not in aio._ready:
            aio.notifier.set()

    # ioh is prepared, then checked, each iteration: its flags cleared. Only
    # what raises the dirty signal (a BH, a timer, a notify) sets them again.
    ioh._notify_me &= ~1
    ioh._notified = False
    aio._on_poll = materialize
    try:
        while True:
            # prepare sets notify_me and glib skips check (aio is ready at
            # prepare), so each notify() during the batch writes the eventfd:
            # modelled by watching the notified flag instead.
            aio._notify_me &= ~1
            was_notified = aio._notified
            aio._notified = False
            in_batch = True
            try:
                aio._bh_poll()
            finally:
                in_batch = False
                called = aio._notified
                if aio._on_poll is not None:  # still modelled
                    aio._notified = was_notified or called
                    aio._notify_me |= 1
            if aio._on_poll is None:
                # A nested poll made the flags real: the snapshot's notifier
                # runs for real, then the timers, and the full loop takes over.
                if kicked:
                    kicked = False
                    notifier.revents = notifier.mask & notifier.events
                    aio._dispatch_handler(notifier)
            elif kicked:
                # The snapshot's notifier runs after the batch and reads the
                # eventfd, consuming this batch's kick too. Run it for real
                # when the fd is really set or it must join the poll list (its
                # first dispatch); otherwise it is a no-op.
                if notifier.seq in aio._ready or not notifier.in_poll_list:
                    if notifier.seq not in aio._ready:
                        aio.notifier.set()
                    notifier.revents = notifier.mask & notifier.events
                    aio._dispatch_handler(notifier)
                kicked = False
            else:
                kicked = called
            if dirty[0] or aio._on_poll is None:
                # Finish the iteration (timers the batch made due) and look again.
                aio.tlg.run_timers()
                ml.tlg.run_timers()
                return QUIET_AGAIN
            if 0 <= step_limit <= counter.steps or aio._bh_slices:
                return QUIET_AGAIN
            bhs = aio._bh_list
            if not bhs or (
                bhs[-1]._flags & _DUE_MASK != BH_SCHEDULED and aio._bh_timeout(bhs, -1) != 0
            ):
                return QUIET_AGAIN
    finally:
        aio._bh_dirty = dirty
        if aio._on_poll is None:
            kicked = False  # made real by materialize, or read since
        else:
            aio._on_poll = None
        if kicked and notifier.seq not in aio._ready:
            aio.notifier.set()
