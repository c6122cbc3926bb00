"""The :class:`Recorder`: every live value, logged (QEMU's ``REPLAY_MODE_RECORD``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from evloop import ChoiceKind, Chooser, ClockType

from ..errors import ReplayError
from ..failures import describe_exception
from ..stackroom import roomy
from ..trace.format import CheckpointKind, EventKind
from .base import CHOICES_BATCH_BYTES, ReplayMode, Session

__all__ = ["Recorder"]


class Recorder(Session):
    """Logs every live value to a trace (QEMU's ``REPLAY_MODE_RECORD``)."""

    mode = ReplayMode.RECORD

    def start(self) -> None:
        """The INIT checkpoint; call once the simulation is built and attached."""
        self._emit(self._checkpoint_record(CheckpointKind.INIT))

    def choose(self, kind: ChoiceKind, options: Sequence[str], inner: Chooser | None) -> int:
        choice = 0 if inner is None else inner.choose(kind, options)
        n = len(options)
        if not 0 <= choice < n:
            raise ReplayError(f"chooser {inner!r} answered {choice} for {n} options")
        self._emit_choice(self._step, n, choice)
        return choice

    def _clock_read(self, clock_type: ClockType, value: int) -> int:
        self._emit((EventKind.CLOCK, self._step, int(clock_type), 0))
        return value

    def _random_draw(self, value: int) -> int:
        self._emit((EventKind.RANDOM, self._step, value))
        return value

    # SimulationHooks
    def checkpoint(self, step: int) -> None:
        self._emit(self._checkpoint_record(CheckpointKind.PERIODIC))
        if self.progress is not None:
            self.progress(step)

    def timer_checkpoint(self, clock_type: ClockType) -> bool:
        # replay/replay.c replay_checkpoint, record mode: log it, and go on.
        sim = self.sim
        self._emit_clock_checkpoint(0 if sim is None else sim.steps, clock_type)
        return True

    def _timer_gate(self) -> Callable[[ClockType], bool]:
        """:meth:`timer_checkpoint`, its commonest case inlined (a run with timers asks
        it before nearly every timer): the checkpoint goes on the open batch, under
        128 steps after the last, the batch not full. That case calls nothing, so it
        needs no room on the stack; anything else is the method, with room."""
        sim = self.sim
        assert sim is not None
        clocks = self._clocks
        slow = roomy(self.timer_checkpoint)
        room = CHOICES_BATCH_BYTES - 2

        def gate(clock_type: ClockType) -> bool:
            step = sim.steps
            delta = step - self._clocks_last
            if clocks and delta < 0x80 and len(clocks) < room:
                clocks.append(delta)
                clocks.append(clock_type)
                self._clocks_last = step
                return True
            return slow(clock_type)

        return gate

    def input(self, channel: str, data: bytes, close: bool) -> None:
        self._emit((EventKind.INPUT, self._step, channel, b"" if close else bytes(data)))

    def async_event(self, sequence: int, name: str) -> None:
        # replay/replay-events.c replay_save_event: the event's identity, in queue order.
        self._emit((EventKind.ASYNC_EVENT, self._step, sequence, name))

    def shutdown(self, cause: str) -> None:
        self._emit((EventKind.SHUTDOWN, self._step, cause))

    def finish(self, failure: BaseException | None) -> None:
        """Log how the run ended and close the trace (END)."""
        if failure is not None:
            cause = describe_exception(failure)
            self._emit((EventKind.SHUTDOWN, self._step, cause))
        self._emit(self._checkpoint_record(CheckpointKind.FINAL))
        self.writer.close()
