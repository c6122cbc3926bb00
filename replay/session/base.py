"""What recording and playing share: emitting records in step order, and the seams.

:class:`Session` plugs itself into every seam of the simulation through its
one door (:meth:`Session.attach`, ``evloop/seams.py``) and batches what it
logs: decisions into CHOICES records, timer checkpoints into
CLOCK_CHECKPOINTS records, at most one batch open at a time so that the
records keep the order of the events. :class:`~replay.session.Recorder` and
:class:`~replay.session.Player` fill in the doors.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from enum import Enum
from typing import TYPE_CHECKING, Any

from evloop import Blocker, ChoiceKind, Chooser, ClockType, Seams

from ..stackroom import DOOR_ROOM, restore, roomy
from ..trace.choices import encode_choice_into
from ..trace.clockpoints import encode_clock_checkpoint_into
from ..trace.format import TIMER_CHECKPOINTS_VERSION, CheckpointKind, EventKind
from ..trace.writer import TraceWriter

if TYPE_CHECKING:
    from evloop import Simulation

__all__ = ["CHOICES_BATCH_BYTES", "ReplayMode", "Session"]

#: A CHOICES batch is written once its packed stream reaches this many bytes.
CHOICES_BATCH_BYTES = 4096


class ReplayMode(Enum):
    """QEMU's ``replay_mode``."""

    NONE = "none"
    RECORD = "record"
    PLAY = "play"


class Session:
    """What recording and playing share: emitting records in step order."""

    mode: ReplayMode

    def __init__(self, writer: TraceWriter) -> None:
        self.writer = writer
        self.sim: Simulation | None = None
        self._batch = bytearray()
        self._batch_first = 0
        self._batch_last = 0
        # The open CLOCK_CHECKPOINTS batch: at most one of the two batches is
        # open at a time, so the records keep the order of the events.
        self._clocks = bytearray()
        self._clocks_first = 0
        self._clocks_last = 0
        #: Decisions logged so far (each element of a CHOICES batch counts).
        self.decisions = 0
        #: Told the step count at every periodic checkpoint (a progress display).
        self.progress: Callable[[int], object] | None = None

    def attach(
        self, sim: Simulation, blocker: Callable[[Blocker], Blocker] | None = None
    ) -> None:
        """Plug this session into every seam of the simulation, through its one door.

        ``blocker``, if given, wraps the simulation's scheduler as the blocker
        of every wait (host mode's monitor).
        """
        self.sim = sim
        # Timer checkpoints from format 3 on: an older trace plays (and is
        # re-recorded) without them, byte for byte.
        gated = self.writer.header.format_version >= TIMER_CHECKPOINTS_VERSION
        sim.plug(Seams(
            chooser=self.chooser,
            clock_read=roomy(self._clock_read),
            random_draw=roomy(self._random_draw),
            hooks=_RoomyHooks(self),
            timer_gate=self._timer_gate() if gated else None,
            blocker=blocker,
            async_event=roomy(self.async_event),
        ))

    def chooser(self, inner: Chooser | None = None) -> Chooser:
        """The chooser to build the simulation with (wraps ``inner`` when recording)."""
        return _SessionChooser(self, inner)

    @property
    def _step(self) -> int:
        sim = self.sim
        return 0 if sim is None else sim.steps

    # -- emitting -------------------------------------------------------------------

    def _emit(self, record: tuple[Any, ...]) -> None:
        if self._batch:
            self._flush_batch()
        elif self._clocks:
            self._flush_clocks()
        self.writer.write(record)

    def _emit_choice(self, step: int, n_options: int, choice: int) -> None:
        if self._clocks:
            self._flush_clocks()
        batch = self._batch
        if not batch:
            self._batch_first = self._batch_last = step
        encode_choice_into(batch, step - self._batch_last, n_options, choice)
        self._batch_last = step
        self.decisions += 1
        if len(batch) >= CHOICES_BATCH_BYTES:
            self._flush_batch()

    def _flush_batch(self) -> None:
        self.writer.write((EventKind.CHOICES, self._batch_first, bytes(self._batch)))
        self._batch.clear()

    def _emit_clock_checkpoint(self, step: int, clock_type: int) -> None:
        if self._batch:
            self._flush_batch()
        clocks = self._clocks
        if not clocks:
            self._clocks_first = self._clocks_last = step
        delta = step - self._clocks_last
        if delta < 0x80:  # the common case, encode_clock_checkpoint_into's first
            clocks.append(delta)
            clocks.append(clock_type)
        else:
            encode_clock_checkpoint_into(clocks, delta, clock_type)
        self._clocks_last = step
        if len(clocks) >= CHOICES_BATCH_BYTES:
            self._flush_clocks()

    def _flush_clocks(self) -> None:
        record = (EventKind.CLOCK_CHECKPOINTS, self._clocks_first, bytes(self._clocks))
        self.writer.write(record)
        self._clocks.clear()

    def flush(self) -> None:
        """Close the trace's current chunk: what is logged so far reaches the OS."""
        if self._batch:
            self._flush_batch()
        elif self._clocks:
            self._flush_clocks()
        self.writer.flush()

    def _checkpoint_record(self, kind: CheckpointKind) -> tuple[Any, ...]:
        sim = self.sim
        assert sim is not None
        return (EventKind.CHECKPOINT, sim.steps, int(kind), sim.digest)

    # -- the doors (overridden) -----------------------------------------------------

    def choose(self, kind: ChoiceKind, options: Sequence[str], inner: Chooser | None) -> int:
        raise NotImplementedError

    def _clock_read(self, clock_type: ClockType, value: int) -> int:
        raise NotImplementedError

    def _random_draw(self, value: int) -> int:
        raise NotImplementedError

    def checkpoint(self, step: int) -> None:
        raise NotImplementedError

    def timer_checkpoint(self, clock_type: ClockType) -> bool:
        """QEMU's ``replay_checkpoint(CHECKPOINT_CLOCK_<type>)``: may the timers run now?"""
        raise NotImplementedError

    def _timer_gate(self) -> Callable[[ClockType], bool]:
        """The simulation's timer gate: :meth:`timer_checkpoint`, with room on the stack."""
        return roomy(self.timer_checkpoint)

    def input(self, channel: str, data: bytes, close: bool) -> None:
        raise NotImplementedError

    def async_event(self, sequence: int, name: str) -> None:
        """A bottom half released by the async-event queue (``replay_save_events``)."""
        raise NotImplementedError

    def shutdown(self, cause: str) -> None:
        raise NotImplementedError


class _RoomyHooks:
    """The session's simulation hooks, each with room on the stack (replay/stackroom.py)."""

    __slots__ = ("checkpoint", "input", "shutdown")

    def __init__(self, session: Session) -> None:
        self.checkpoint = roomy(session.checkpoint)
        self.input = roomy(session.input)
        self.shutdown = roomy(session.shutdown)


_get_limit = sys.getrecursionlimit
_set_limit = sys.setrecursionlimit


class _SessionChooser:
    """The simulation's chooser: every decision goes through the session."""

    __slots__ = ("inner", "session")

    def __init__(self, session: Session, inner: Chooser | None) -> None:
        self.session = session
        self.inner = inner

    def choose(self, kind: ChoiceKind, options: Sequence[str]) -> int:
        limit = _get_limit()
        _set_limit(limit + DOOR_ROOM)  # replay/stackroom.py
        try:
            return self.session.choose(kind, options, self.inner)
        finally:
            restore(limit)

    def __repr__(self) -> str:
        return f"<{self.session.mode.value} chooser over {self.inner!r}>"
