"""What a step looks like from outside: :class:`DispatchEvent`, built from a raw step.

A simulation keeps its steps raw (a tuple, cheap on the hot path) in its ring
of recent steps, and turns one into a :class:`DispatchEvent` only when
someone reads it: the log, ``recent_events()``, a divergence report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..loop.bh import callback_name
from ..seams import DispatchKind

__all__ = ["DispatchEvent", "RawStep", "materialize_step"]


@dataclass(frozen=True, slots=True)
class DispatchEvent:
    """One step: a callback dispatched, input delivered, or a turn handed over."""

    step: int
    time_ns: int
    thread: str
    context: str
    kind: str
    name: str

    def as_tuple(self) -> tuple[int, int, str, str, str, str]:
        return (self.step, self.time_ns, self.thread, self.context, self.kind, self.name)


#: A step as the simulation keeps it: (step, time, thread name, kind, context, what).
RawStep = tuple[int, int, str, int, Any, Any]


def materialize_step(raw: RawStep) -> DispatchEvent:
    steps, now, thread, kind, ctx, what = raw
    if kind == DispatchKind.TURN:
        return DispatchEvent(steps, now, what.name, "-", "turn", what.name)
    if kind == DispatchKind.FAULT:
        return DispatchEvent(steps, now, thread, "-", "fault", str(what))
    if kind == DispatchKind.INPUT:
        peer, chunk, closed = what
        return DispatchEvent(
            steps, now, peer.name, "-", "input", "close" if closed else f"{len(chunk)} bytes"
        )
    return DispatchEvent(steps, now, thread, ctx.name, DispatchKind.NAMES[kind],
                         _describe_owner(kind, what))


def _describe_owner(kind: int, what: Any) -> str:
    if kind == DispatchKind.BH:
        return str(what.name) if what.name is not None else callback_name(what.cb)
    if kind == DispatchKind.TIMER:
        return str(what.name) if what.name is not None else callback_name(what.cb)
    if kind == DispatchKind.READ:
        return f"fd {what.fd}: {callback_name(what.io_read)}"
    if kind == DispatchKind.WRITE:
        return f"fd {what.fd}: {callback_name(what.io_write)}"
    if kind == DispatchKind.POLL_READY:
        return f"fd {what.fd}: {callback_name(what.io_poll_ready)}"
    return str(what)
