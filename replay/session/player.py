"""The :class:`Player`: every value from the trace, the run checked against it.

The player takes each event the run asks for from the trace, checks that it
is asked at the same step and with the same shape, and logs it again into
the re-recording; the first event that differs is a
:class:`~replay.ReplayDivergence`, after which the player refuses further
work (``replay/session/__init__.py`` has the rules).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from itertools import accumulate
from operator import itemgetter
from typing import Any

from evloop import ChoiceKind, Chooser, ClockType

from ..errors import ReplayDivergence, ReplayError
from ..failures import describe_exception, same_failure
from ..stackroom import roomy
from ..trace.choices import batch_decision_list
from ..trace.clockpoints import next_clock_checkpoint
from ..trace.describe import show_record
from ..trace.format import CheckpointKind, EventKind
from ..trace.reader import TraceReader
from ..trace.writer import TraceWriter
from .base import CHOICES_BATCH_BYTES, ReplayMode, Session

__all__ = ["Player"]


def _nothing() -> None:
    """What a player without a timer gate settles and arms."""


_options_of = itemgetter(1)
_choice_of = itemgetter(2)


class Player(Session):
    """Takes every value from a trace and checks the run against it (``REPLAY_MODE_PLAY``).

    ``writer`` receives the re-recording (the same records again), so the
    caller can check that play reproduces the trace byte for byte.
    """

    mode = ReplayMode.PLAY

    def __init__(
        self, reader: TraceReader, writer: TraceWriter, chooser: Chooser | None = None
    ) -> None:
        super().__init__(writer)
        self.reader = reader
        #: The header's chooser, rebuilt from its spec, asked every decision
        #: again so that the trace's choices are the ones it claims to have
        #: made; None for choosers whose decisions exist only in the trace.
        self.derived = chooser
        #: ``derived.answers``, for a chooser whose decisions depend only on
        #: their number of options (evloop/machine/chooser.py): then it
        #: answers each batch of recorded decisions at once, when the batch is
        #: read (the run makes those decisions among as many options, or
        #: diverges first), instead of being asked each decision again.
        self._answers: Callable[[Sequence[int]], list[int]] | None = getattr(
            chooser, "answers", None
        )
        #: Ask ``derived`` at every decision (a chooser without ``answers``).
        self._ask_each = chooser is not None and self._answers is None
        #: The event index of the first recorded decision ``answers`` does not
        #: make, and what it makes there (-1: none found in what was read).
        self._miss = -1
        self._miss_made = 0
        self._records = iter(reader)
        self._choices: deque[tuple[int, int, int]] = deque()
        #: The current CLOCK_CHECKPOINTS batch, where its next checkpoint starts,
        #: and the step of the last one taken (its first_step before the first).
        #: While the timer gate runs in step with the batch, the gate holds how
        #: far it has gone (:meth:`_timer_gate`); ``_settle_clocks`` writes it back.
        self._clock_batch = b""
        self._clock_pos = 0
        self._clock_step = 0
        self._settle_clocks: Callable[[], None] = _nothing
        self._arm_clocks: Callable[[], None] = _nothing
        #: Index of the next trace event (each batched decision is one event);
        #: :attr:`event_index`, with what the timer gate took settled.
        self._event_index = 0
        self.divergence: ReplayDivergence | None = None
        #: True once a truncated trace has run out: the run then goes on freely.
        self.exhausted = False
        #: The step of the last checkpoint whose digest matched.
        self._good_step = 0

    @property
    def event_index(self) -> int:
        """Index of the next trace event (each batched decision and checkpoint is one)."""
        self._settle_clocks()
        return self._event_index

    # -- reading ----------------------------------------------------------------------

    def _next(self) -> tuple[Any, ...] | None:
        """The next event as a record; batched decisions come out as CHOICE records."""
        self._settle_clocks()
        if self._choices:
            step, n, c = self._choices.popleft()
            return (EventKind.CHOICE, step, n, c)
        if self._clock_pos < len(self._clock_batch):
            return self._next_clock_checkpoint()
        for record in self._records:
            if record[0] == EventKind.CHOICES:
                decisions = batch_decision_list(record[1], record[2])
                self._answer_ahead(decisions)
                self._choices.extend(decisions)
                first_step, n, c = self._choices.popleft()
                return (EventKind.CHOICE, first_step, n, c)
            if record[0] == EventKind.CLOCK_CHECKPOINTS:
                self._clock_batch = bytes(record[2])
                self._clock_pos = 0
                self._clock_step = record[1]
                return self._next_clock_checkpoint()
            if record[0] == EventKind.CHOICE:
                self._answer_ahead([(record[1], record[2], record[3])])
                return (EventKind.CHOICE, record[1], record[2], record[3])
            return tuple(record)
        if not self.reader.complete:
            self.exhausted = True
        return None

    def _answer_ahead(self, decisions: list[tuple[Any, ...]]) -> None:
        """Have ``answers`` make the decisions just read (the next events, in order).

        Called before they are played, the first of them being event
        ``event_index``. Play reaches decision ``i`` of them only if the run
        made every one before it among the recorded number of options, so
        the chooser, asked those decisions one by one, would have answered
        exactly these; the first answer that differs from the recorded choice
        is kept (:attr:`_miss`), and play diverges when it gets there, as if
        it had asked then.
        """
        answers = self._answers
        if answers is None or self._miss >= 0:
            return
        made = answers(list(map(_options_of, decisions)))
        if made == list(map(_choice_of, decisions)):
            return
        k = next(i for i, (d, m) in enumerate(zip(decisions, made, strict=True)) if d[2] != m)
        self._miss = self._event_index + k
        self._miss_made = made[k]

    def _next_clock_checkpoint(self) -> tuple[Any, ...]:
        """The next checkpoint of the current batch (the reader has checked the batch)."""
        delta, clock, self._clock_pos = next_clock_checkpoint(self._clock_batch, self._clock_pos)
        self._clock_step += delta
        return (EventKind.CLOCK_CHECKPOINTS, self._clock_step, clock)

    def _check_open(self) -> None:
        if self.divergence is not None:
            raise ReplayError(
                "this player stopped at a divergence and refuses further work; "
                "start a new play"
            ) from self.divergence

    def _expect(
        self, kind: EventKind, actual: str | Callable[[], str], *match: object
    ) -> tuple[Any, ...] | None:
        """Take the next event; it must be ``kind`` at this step with fields ``match``.

        ``actual`` says what happened, for the divergence report; a callable
        builds it only then (a decision's text is costly and almost never read).
        """
        self._check_open()
        if self.exhausted:
            return None
        record = self._next()
        if record is None and self.exhausted:
            return None
        index = self._event_index
        self._event_index += 1
        step = self._step
        if (
            record is None
            or record[0] != kind
            or record[1] != step
            or tuple(record[2 : 2 + len(match)]) != match
        ):
            due = record[1] if record is not None and type(record[1]) is int else None
            digest = (
                record is not None and record[0] == kind == EventKind.CHECKPOINT
                and due == step
            )
            self._diverge(
                index, show_record(record), actual if isinstance(actual, str) else actual(),
                due=due, last_good=self._good_step if digest else None,
            )
        assert record is not None
        return record

    def _diverge(
        self,
        index: int,
        expected: str,
        actual: str,
        *,
        due: int | None = None,
        last_good: int | None = None,
    ) -> None:
        """Raise the divergence; ``due`` is the step the trace's event was due at.

        A recorded event due at an earlier step than this one means the run
        passed that step without doing what the trace did there: it departed
        there (``noticed_step`` is where it was caught); :func:`replay.play`
        then replays up to that step again to show the steps before it.
        """
        self._settle_clocks()
        sim = self.sim
        recent: tuple[object, ...] = ()
        time_ns = thread = None
        if sim is not None:
            recent = tuple(sim.recent_events())
            time_ns = sim.now_ns
            thread = sim.current_thread.name
        step = self._step
        departed = due is not None and due < step
        self.divergence = ReplayDivergence(
            step=due if departed and due is not None else step,
            time_ns=time_ns,
            event_index=index,
            expected=expected,
            actual=actual,
            thread=thread,
            recent=recent,
            noticed_step=step if departed else None,
            last_good_step=last_good,
        )
        if sim is not None and sim._sched.failure is None:
            sim._sched.failure = self.divergence
        raise self.divergence

    # -- the doors ----------------------------------------------------------------------

    def choose(self, kind: ChoiceKind, options: Sequence[str], inner: Chooser | None) -> int:
        n = len(options)
        sim = self.sim
        step = 0 if sim is None else sim.steps  # _step, without a property call per decision
        choices = self._choices
        if choices and self.divergence is None:
            # The common case, without building records: the next decision of
            # the current CHOICES batch is due now, among as many options.
            first = choices[0]
            if first[0] == step and first[1] == n:
                choice = first[2]
                # _check_derived, inlined: this runs once per decision played.
                index = self._event_index
                if index == self._miss:
                    self._derived_differs(
                        index, kind, options, (EventKind.CHOICE, *first), self._miss_made
                    )
                if self._ask_each:
                    made = self.derived.choose(kind, options)  # type: ignore[union-attr]
                    if made != choice:
                        self._derived_differs(
                            index, kind, options, (EventKind.CHOICE, *first), made
                        )
                choices.popleft()
                self._event_index += 1
                self._emit_choice(step, n, choice)
                return choice

        def actual() -> str:
            return f"a {kind.name} decision at step {step} among {n} options {list(options)!r}"

        record = self._expect(EventKind.CHOICE, actual, n)
        if record is None:  # a truncated trace ran out: finish in FIFO order
            return 0
        self._check_derived(self._event_index - 1, kind, options, record)
        choice = int(record[3])
        self._emit_choice(step, n, choice)
        return choice

    def _check_derived(
        self, index: int, kind: ChoiceKind, options: Sequence[str], record: tuple[Any, ...]
    ) -> None:
        """The header's chooser, asked decision ``index``, must make its recorded choice."""
        if index == self._miss:
            self._derived_differs(index, kind, options, record, self._miss_made)
        derived = self.derived
        if not self._ask_each or derived is None:
            return
        made = derived.choose(kind, options)
        if made != record[3]:
            self._derived_differs(index, kind, options, record, made)

    def _derived_differs(
        self, index: int, kind: ChoiceKind, options: Sequence[str], record: tuple[Any, ...],
        made: int,
    ) -> None:
        spec = self.reader.header.chooser
        self._diverge(
            index, show_record(record),
            f"the header's chooser {spec!r} chooses {made} of {len(options)} options "
            f"{list(options)!r} ({kind.name}) at step {self._step}",
        )

    def _clock_read(self, clock_type: ClockType, value: int) -> int:
        # A simulation's clocks are virtual: a read is its virtual value, and
        # the recording logs offset 0. Any other offset is not this run's.
        actual = f"a read of the {clock_type.name} clock at step {self._step}"
        record = self._expect(EventKind.CLOCK, actual, int(clock_type), 0)
        if record is not None:
            self._emit(record)
        return value

    def _random_draw(self, value: int) -> int:
        # Every draw is the seeded generator's: the recorded value must be it.
        actual = f"a random draw at step {self._step} of {value:#018x} (from the seed)"
        record = self._expect(EventKind.RANDOM, actual, value)
        if record is not None:
            self._emit(record)
        return value

    def checkpoint(self, step: int) -> None:
        sim = self.sim
        assert sim is not None
        actual = f"CHECKPOINT PERIODIC(step={step}, digest={sim.digest:#018x})"
        kind = int(CheckpointKind.PERIODIC)
        record = self._expect(EventKind.CHECKPOINT, actual, kind, sim.digest)
        if record is not None:
            self._good_step = step
            self._emit(record)
        if self.progress is not None:
            self.progress(step)

    def timer_checkpoint(self, clock_type: ClockType) -> bool:
        # replay/replay.c replay_checkpoint, play mode: the timers run only when
        # the log's next event is this clock's checkpoint. QEMU then waits for
        # the vCPU to reach it; here every thread's position is a step, so a
        # checkpoint not next is one the recording never took: a divergence.
        sim = self.sim
        step = 0 if sim is None else sim.steps

        def actual() -> str:
            return f"CHECKPOINT CLOCK_{clock_type.name}(step={step}): due timers about to run"

        if self._expect(EventKind.CLOCK_CHECKPOINTS, actual, int(clock_type)) is not None:
            self._emit_clock_checkpoint(step, clock_type)
            self._arm_clocks()
        return True

    def flush(self) -> None:
        self._settle_clocks()
        super().flush()

    def _timer_gate(self) -> Callable[[ClockType], bool]:
        """:meth:`timer_checkpoint`, its commonest case inlined.

        Play is in step with the trace's batch when the re-recording's open
        CLOCK_CHECKPOINTS batch holds this batch's checkpoints up to the last
        one taken (the two batches' last steps are the same). Then each next
        checkpoint of the batch with one byte of step delta, if the run asks
        it at its step for its clock, would be re-recorded as the very two
        bytes the trace holds (the recorder writes a delta below 128 as one
        byte), as long as the re-recorded batch stays short of
        CHOICES_BATCH_BYTES (the recorder would close it). So in that case the
        gate only compares the step and the clock with the next checkpoint's,
        worked out ahead for the batch's run of such checkpoints, and counts;
        the checkpoints taken so are re-recorded, as a slice of the trace's
        batch, and counted as events when anything else reads the trace, the
        re-recording or the event index (``settle``). Anything else (the first
        checkpoint of a batch, a longer delta, a batch about to fill, a
        checkpoint that is not the next) is the method, which compares as
        every event is compared and then arms the gate again (``arm``); its
        calls need room on the stack, the gate's own case none.

        Nothing else moves on in the trace while the gate runs ahead: a
        decision, like any other event, comes after the batch's last
        checkpoint, and every other door reads the trace through
        :meth:`_next`, which settles first. So a decision played from its
        batch finds nothing to settle.
        """
        sim = self.sim
        assert sim is not None
        slow = roomy(self.timer_checkpoint)
        room = CHOICES_BATCH_BYTES - 2
        batch = b""
        # Armed, the gate takes the checkpoints of batch[mark:stop] with one
        # byte of delta (the first ``len(dues) - 1``): the i-th is due at step
        # dues[i] on clock kinds[i]; ``taken`` are taken since the last
        # settle. ``due`` is dues[taken] (-1: not armed; the method decides).
        mark = 0
        dues: list[int] = [-1]
        kinds: list[int] = [-1]
        taken = 0
        due = -1

        def gate(clock_type: ClockType) -> bool:
            nonlocal taken, due
            if sim.steps == due and clock_type == kinds[taken]:
                taken += 1
                due = dues[taken]
                return True
            return slow(clock_type)

        def settle() -> None:
            nonlocal mark, taken, due
            due = -1
            if taken:
                end = mark + 2 * taken
                step = dues[taken - 1]
                self._clocks += batch[mark:end]
                self._clocks_last = self._clock_step = step
                self._clock_pos = mark = end
                self._event_index += taken
                taken = 0

        def arm() -> None:
            nonlocal batch, mark, dues, kinds, due
            clocks = self._clocks
            if self._clocks_last != self._clock_step or not clocks or self.divergence:
                return
            batch = self._clock_batch
            mark = self._clock_pos
            stop = min(len(batch), mark + room - len(clocks))
            deltas = batch[mark:stop:2]
            if deltas.isascii():
                end = len(deltas)
            else:  # up to the first delta of two bytes or more
                end = next(i for i, d in enumerate(deltas) if d >= 0x80)
            if end:
                dues = list(accumulate(deltas[:end], initial=self._clock_step))
                del dues[0]
                dues.append(-1)
                kinds = list(batch[mark + 1 : mark + 2 * end : 2])
                kinds.append(-1)
                due = dues[0]

        self._settle_clocks = settle
        self._arm_clocks = arm
        return gate

    def input(self, channel: str, data: bytes, close: bool) -> None:
        payload = b"" if close else bytes(data)
        what = "close" if close else f"{len(payload)} bytes {payload[:16]!r}"
        actual = f"INPUT(step={self._step}, channel={channel!r}, {what})"
        record = self._expect(EventKind.INPUT, actual, channel, payload)
        if record is not None:
            self._emit(record)

    def async_event(self, sequence: int, name: str) -> None:
        # replay/replay-events.c replay_read_events: the queue releases an event
        # only when the log's next one is it. QEMU searches its queue for the
        # logged id, as its threads add events outside the log; here the queue's
        # order follows from the recorded decisions, so it must be the log's.
        actual = f"ASYNC_EVENT(step={self._step}, sequence={sequence}, name={name!r}) released"
        record = self._expect(EventKind.ASYNC_EVENT, actual, sequence, name)
        if record is not None:
            self._emit(record)

    def shutdown(self, cause: str) -> None:
        actual = f"SHUTDOWN(step={self._step}, cause={cause!r})"
        record = self._expect(EventKind.SHUTDOWN, actual, cause)
        if record is not None:
            self._emit(record)

    def start(self) -> None:
        sim = self.sim
        assert sim is not None
        actual = f"CHECKPOINT INIT(step=0, digest={sim.digest:#018x})"
        record = self._expect(EventKind.CHECKPOINT, actual, int(CheckpointKind.INIT), sim.digest)
        if record is not None:
            self._emit(record)

    def finish(self, failure: BaseException | None) -> None:
        """Check that the run ended as the recording did, then close the re-recording."""
        sim = self.sim
        assert sim is not None
        if failure is not None:
            cause = describe_exception(failure)
            actual = f"the run ended at step {self._step}: {cause}"
            record = self._expect(EventKind.SHUTDOWN, actual)
            if record is not None:
                if not same_failure(str(record[2]), cause):
                    self._diverge(self._event_index - 1, show_record(record), actual)
                self._emit(record)  # the recorded text: a message that differs is no divergence
        actual = f"the run ended: CHECKPOINT FINAL(step={sim.steps}, digest={sim.digest:#018x})"
        record = self._expect(EventKind.CHECKPOINT, actual, int(CheckpointKind.FINAL), sim.digest)
        if record is not None:
            self._emit(record)
            trailing = self._next()
            if trailing is not None:
                self._diverge(self._event_index, show_record(trailing), "the end of the run")
        self.writer.close()
