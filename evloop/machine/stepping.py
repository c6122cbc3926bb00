"""A simulation's steps: the position counter, the rolling digest, the watched steps.

Every step passes through :meth:`Stepping._step` (or the dispatch observer,
the same bookkeeping for a callback): it advances the position counter,
folds the step into the rolling digest, keeps the optional log and ring of
recent steps, and fires the periodic checkpoint hook. It is on the hot
path. The digest is a polynomial hash over integers only, so it is the
same in every process and on every Python::

    digest = ((digest ^ time) * _PRIME + key) mod 2**64

where key packs the step's kind, thread, owner and callback identity
(``evloop/asyncio/iteration.py`` inlines it; keep the two in step).

:class:`Stepping` is the part of :class:`~evloop.Simulation` that keeps
them; the simulation sets the fields it declares when it is built.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from ..loop.clock import VirtualClock
from ..seams import DispatchObserver, SimulationHooks
from .observation import DispatchEvent, RawStep, materialize_step
from .scheduler import Scheduler

__all__ = ["Stepping"]

_PRIME = 0x100000001B3  # FNV's 64-bit prime
_MASK64 = (1 << 64) - 1


class Stepping:
    """Steps, the digest and the watched steps (checkpoints, the exact step limit)."""

    clock: VirtualClock
    _sched: Scheduler
    #: Steps so far: every callback dispatched and every turn handed over.
    steps: int
    digest: int
    hooks: SimulationHooks | None
    checkpoint_interval: int
    _next_checkpoint: int
    _watch: int
    _step_limit: int
    _halt: list[bool]
    _sink: Callable[[DispatchEvent], object] | None
    _recent: deque[RawStep] | None

    def _observe(self, kind: int, ctx: Any, what: Any) -> None:
        # The dispatch observer of every context: _step for a callback (one
        # call less, as every dispatch pays it).
        self.steps = steps = self.steps + 1
        now = self.clock._now[0]
        thread = self._sched.current
        self.digest = (
            (self.digest ^ now) * _PRIME
            + ((kind << 56) | (thread.index << 48) | (ctx.uid << 32) | what.uid)
        ) & _MASK64
        if self._recent is not None:
            self._recent.append((steps, now, thread.name, kind, ctx, what))
        if self._sink is not None:
            self._sink(materialize_step((steps, now, thread.name, kind, ctx, what)))
        if steps == self._watch:
            self._at_watch(steps)

    def _lean_observer(self) -> DispatchObserver:
        """:meth:`_observe` without the log (the ring of recent steps kept if there is one).

        A closure, so that what never changes (the clock's times, the
        scheduler, the ring) is a cell, not an attribute looked up at every
        dispatch. The key's upper half (kind, thread, context) is the same
        from one dispatch to the next as long as those three are: it is
        kept, and built again (three shifts and ors of 64-bit ints, about a
        tenth of a dispatch) only when one of them changes. The digest is the
        same. A recorded or played run keeps the ring (its divergence and
        failure reports show it): that is the second closure, which also
        keeps the thread's name from one dispatch to the next.

        Each closure also offers ``bind(kind, ctx)`` (``seams.bind_observer``):
        the same bookkeeping for a run of dispatches of one kind and context
        in one thread of control, the key's upper half built once, with no
        check that it still holds. A timer list's quiet passes use it.
        """
        sim = self
        now = self.clock._now
        sched = self._sched
        last_kind = last_thread = last_ctx = -1
        upper = 0
        recent = self._recent
        if recent is None:

            def observe(kind: int, ctx: Any, what: Any) -> None:
                nonlocal last_kind, last_thread, last_ctx, upper
                sim.steps = steps = sim.steps + 1
                thread = sched.current.index
                owner = ctx.uid
                if owner != last_ctx or thread != last_thread or kind != last_kind:
                    last_kind, last_thread, last_ctx = kind, thread, owner
                    upper = (kind << 56) | (thread << 48) | (owner << 32)
                sim.digest = ((sim.digest ^ now[0]) * _PRIME + (upper | what.uid)) & _MASK64
                if steps == sim._watch:
                    sim._at_watch(steps)

            def bind(kind: int, ctx: Any) -> Callable[[Any], None]:
                # seams.bind_observer: one kind, context and thread throughout.
                upper = (kind << 56) | (sched.current.index << 48) | (ctx.uid << 32)

                def observe_bound(what: Any) -> None:
                    sim.steps = steps = sim.steps + 1
                    sim.digest = ((sim.digest ^ now[0]) * _PRIME + (upper | what.uid)) & _MASK64
                    if steps == sim._watch:
                        sim._at_watch(steps)

                return observe_bound

            observe.bind = bind  # type: ignore[attr-defined]
            return observe

        keep = recent.append
        name = ""

        def observe_recent(kind: int, ctx: Any, what: Any) -> None:
            nonlocal last_kind, last_thread, last_ctx, upper, name
            sim.steps = steps = sim.steps + 1
            current = sched.current
            thread = current.index
            owner = ctx.uid
            if owner != last_ctx or thread != last_thread or kind != last_kind:
                last_kind, last_thread, last_ctx = kind, thread, owner
                upper = (kind << 56) | (thread << 48) | (owner << 32)
                name = current.name
            time = now[0]
            sim.digest = ((sim.digest ^ time) * _PRIME + (upper | what.uid)) & _MASK64
            keep((steps, time, name, kind, ctx, what))
            if steps == sim._watch:
                sim._at_watch(steps)

        def bind_recent(kind: int, ctx: Any) -> Callable[[Any], None]:
            # seams.bind_observer: one kind, context and thread throughout.
            current = sched.current
            upper = (kind << 56) | (current.index << 48) | (ctx.uid << 32)
            name = current.name

            def observe_recent_bound(what: Any) -> None:
                sim.steps = steps = sim.steps + 1
                time = now[0]
                sim.digest = ((sim.digest ^ time) * _PRIME + (upper | what.uid)) & _MASK64
                keep((steps, time, name, kind, ctx, what))
                if steps == sim._watch:
                    sim._at_watch(steps)

            return observe_recent_bound

        observe_recent.bind = bind_recent  # type: ignore[attr-defined]
        return observe_recent

    def _at_watch(self, steps: int) -> None:
        """The step is a checkpoint's, or the exact step limit's (``_watch``)."""
        if steps == self._next_checkpoint:
            self._next_checkpoint += self.checkpoint_interval
            self._rewatch()
            assert self.hooks is not None
            self.hooks.checkpoint(steps)
        if steps == self._step_limit:
            self._halt[0] = True

    def _rewatch(self) -> None:
        """``_watch``: the next step at which a checkpoint or the exact step limit falls."""
        marks = [m for m in (self._next_checkpoint, self._step_limit) if m > self.steps]
        self._watch = min(marks) if marks else -1

    def _step(self, kind: int, owner_uid: int, what_uid: int, ctx: Any, what: Any) -> None:
        self.steps = steps = self.steps + 1
        now = self.clock._now[0]
        thread = self._sched.current
        self.digest = (
            (self.digest ^ now) * _PRIME
            + ((kind << 56) | (thread.index << 48) | (owner_uid << 32) | what_uid)
        ) & _MASK64
        recent = self._recent
        if recent is not None:
            recent.append((steps, now, thread.name, kind, ctx, what))
        if self._sink is not None:
            self._sink(materialize_step((steps, now, thread.name, kind, ctx, what)))
        if steps == self._watch:
            self._at_watch(steps)

    def recent_events(self) -> list[DispatchEvent]:
        """The last steps (kept when built with ``recent=N``), oldest first."""
        if self._recent is None:
            return []
        return [materialize_step(raw) for raw in self._recent]
