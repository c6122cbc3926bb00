"""The one seam through which anything in evloop blocks, and its standalone blocker.

A blocking wait never sleeps. It hands a ``WaitCondition`` and a timeout to a
``Blocker`` (both in ``evloop/seams.py``):

* standalone (an ``AioContext`` or ``MainLoop`` used on its own), the blocker
  is :class:`WarpBlocker`: if the condition is not ready it advances the clock
  by the timeout, as if the wait had timed out, and raises
  :class:`~evloop.errors.DeadlockError` when the timeout is infinite, since
  nothing else exists that could ever make the condition true;
* under a :class:`~evloop.Simulation`, the blocker is the simulation's
  scheduler: the calling thread of control gives up its turn, other threads
  run, and the clock warps to the soonest deadline only when every thread is
  blocked (as icount's warp does).

Whoever blocks must re-check its own state after ``block`` returns: a blocker
returns when the condition became ready *or* the timeout elapsed, and does not
say which (like poll(2) returning 0 or more).
"""

from __future__ import annotations

from ..errors import DeadlockError
from ..seams import WaitCondition
from .clock import VirtualClock

__all__ = ["WarpBlocker"]


class WarpBlocker:
    """The blocker of a loop that runs alone: time jumps, nothing sleeps."""

    __slots__ = ("clock",)

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock

    def block(self, cond: WaitCondition, timeout_ns: int) -> None:
        if timeout_ns == 0 or cond.ready():
            return
        if timeout_ns < 0:
            what = cond.describe()
            raise DeadlockError(
                f"a blocking wait on {what} with an infinite timeout would never return: "
                "nothing is ready, no timer is pending, and nothing else runs",
                blocked=(("main", what),),
            )
        self.clock.advance(timeout_ns)
