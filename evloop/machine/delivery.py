"""External input on its way in: queued by due time, delivered at scheduling points.

Peers outside the simulated system (``external.py``) and the fault injector
(``faults.py``) hand the scheduler events to happen at a virtual time
(:meth:`Delivery.add_external`). They wait in one heap keyed
``(at_ns, seq)``, so events due at the same instant keep the order they
were scheduled in, and nothing is delivered in the middle of a callback:
the scheduler calls :meth:`Delivery._deliver_due` each time it picks who
runs next, before it lists the runnable threads, and warps the clock to
the head of the heap when no thread can run (``scheduler.py``).

Rules kept here:

* A *source* is the stream an event belongs to: its peer, or the event
  itself when it has none. A source's events are delivered in the order
  they were scheduled.
* An event that does not fit (its fd is full) is *stalled*: whoever
  delivers it puts it on ``stalled``, and it holds back every later event
  of its source until room appears; stalled events are retried each time
  the scheduler picks who runs next, before anything newly due.
* Among events due at the same instant, which source goes first is a
  decision (``ChoiceKind.EXTERNAL``, asked through ``Scheduler.choose``);
  one source is no decision. Within a source there is nothing to decide.

:class:`Delivery` is the part of :class:`~evloop.machine.scheduler.Scheduler`
that keeps them; the scheduler sets the fields it declares when it is built.
Only a run with external input pays for it: the hot paths test the heap and
the stalled list for emptiness and call in only when either holds something.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import EvloopInternalError
from ..seams import ChoiceKind

if TYPE_CHECKING:
    from ..loop.clock import VirtualClock
    from .external import ExternalEvent

__all__ = ["Delivery", "ExternalDelivery"]

ExternalDelivery = Callable[["ExternalEvent"], None]


class Delivery:
    """The scheduler's external input: the heap of due events, the stalled ones."""

    clock: VirtualClock
    #: The main loop's dirty signal (raised when input is scheduled).
    dirty: list[bool]
    #: What delivers one event (the simulation's), None until it is plugged.
    deliver: ExternalDelivery | None
    #: Events that are due, by ``(at_ns, seq, event)``.
    _external: list[tuple[int, int, ExternalEvent]]
    _external_seq: int
    #: Events held back because their fd is full, in their sources' order.
    stalled: list[ExternalEvent]
    choose: Callable[[ChoiceKind, list[str]], int]

    def add_external(self, at_ns: int, event: ExternalEvent) -> None:
        self._external_seq += 1
        self.dirty[0] = True
        heapq.heappush(self._external, (at_ns, self._external_seq, event))

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
                    index = self.choose(ChoiceKind.EXTERNAL, [e.describe() for e in firsts])
                event = firsts[index]
                ties.remove(event)
                if _source(event) in {_source(e) for e in self.stalled}:
                    self.stalled.append(event)
                else:
                    deliver(event)


def _source(event: object) -> object:
    """The stream an external event belongs to (its peer, or itself)."""
    return getattr(event, "peer", event)
