"""Recording and playing a simulation: one code path, two sources.

Every source of nondeterminism reaches the replay layer through one seam of
the simulation (the chooser, the clock-read hook, the RNG draw hook, the
simulation hooks for input, checkpoints and shutdown; ``evloop/seams.py``),
all plugged at once by :meth:`_Session.attach`. At each door the
:class:`Recorder` takes the live value and logs it; the :class:`Player` takes
the value from the trace, checks that it is asked at the same step and with
the same shape, and logs it again. So a play *re-records* the run, and a run
that replays faithfully re-records exactly the bytes it read.

What is logged, in step order (the position counter precedes every event):

* decisions of the chooser (CHOICES batches of (step delta, options, choice));
* external input deliveries, with their data (INPUT; empty data is the peer
  closing) -- in a simulation the scenario's scripted peers regenerate them,
  so play checks them against the log;
* reads of the HOST and VIRTUAL_RT clocks, as their offset from the virtual
  clock (CLOCK; the offset is 0 unless a fault moved the clock);
* 64-bit draws of the simulation's RNG (RANDOM);
* shutdown requests and their cause, and the exception that ended a failing
  run (SHUTDOWN, cause ``"exception: Type: message"``);
* checkpoints: INIT at step 0, PERIODIC every ``checkpoint_interval`` steps,
  FINAL at the end, each with the rolling digest of every step so far;
* (format 3 on) QEMU's timer checkpoints (CLOCK_CHECKPOINTS batches):
  VIRTUAL before each due VIRTUAL timer that is not EXTERNAL, HOST and
  VIRTUAL_RT before those lists run their due timers (``util/qemu-timer.c``
  ``timerlist_run_timers``). In play a timer list runs only when its
  checkpoint is the log's next event; a checkpoint missing or extra is a
  divergence naming the clock;
* (``run.async_events`` on) each bottom half the async-event queue releases,
  by sequence number and name (ASYNC_EVENT, QEMU's ``replay_save_events``;
  ``evloop/machine/asyncevents.py``). In play the log's next event must be the
  one released; one missing, extra or in another order is a divergence naming it.

What the seed and the header determine is never taken on trust: a played
RANDOM value must be the seeded generator's own draw, a simulation's CLOCK
offset must be 0 (its clocks are virtual), and the header's chooser, rebuilt
from its spec, makes every decision again and must make the recorded one
(recorded-only choosers, whose decisions exist only in the trace, excepted).
A chooser whose decisions depend only on their number of options (FIFO, a
random walk) answers a batch of recorded decisions when it is read, in one
call; play diverges at the first it answers otherwise, when it gets there,
exactly as if it had asked then. Any other chooser is asked each decision.
So a trace whose values or header were edited diverges at the record that
lies, however well its framing was made whole again. Host mode's real inputs
(its clock samples and input bytes) cannot be checked this way; the trace's
own integrity chain covers them (docs/trace-format.md).

A play that departs from the log raises :class:`ReplayDivergence` at the first
event that differs (a decision asked at another step or with another number
of options, a digest that differs at a checkpoint, input that differs), with
the step, the virtual time, the event index, what the trace expected, what
the run did, the thread and the last steps before it. After a divergence the
player refuses further work.
"""

from __future__ import annotations

import re
import sys
from collections import deque
from collections.abc import Callable, Sequence
from enum import Enum
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from evloop import Blocker, ChoiceKind, Chooser, ClockType, Seams

from .errors import ReplayDivergence, ReplayError
from .stackroom import DOOR_ROOM, restore, roomy
from .trace.choices import batch_decision_list, encode_choice_into
from .trace.clockpoints import encode_clock_checkpoint_into, next_clock_checkpoint
from .trace.describe import show_record
from .trace.format import TIMER_CHECKPOINTS_VERSION, CheckpointKind, EventKind
from .trace.reader import TraceReader
from .trace.writer import TraceWriter

if TYPE_CHECKING:
    from evloop import Simulation

__all__ = [
    "Player",
    "Recorder",
    "ReplayMode",
    "describe_exception",
    "failure_identity",
    "raise_site",
    "same_failure",
]

#: A CHOICES batch is written once its packed stream reaches this many bytes.
CHOICES_BATCH_BYTES = 4096


class ReplayMode(Enum):
    """QEMU's ``replay_mode``."""

    NONE = "none"
    RECORD = "record"
    PLAY = "play"


_ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")
#: ``exception: Type[ at file.py:LINE]: message`` (a trace records no site).
_FAILURE = re.compile(r"exception: (?P<type>[^\s:]+)(?: at (?P<site>[^\s:]+:[0-9]+))?: ")


def raise_site(exc: BaseException) -> str | None:
    """Where ``exc`` was raised: ``file.py:LINE`` of the innermost frame of its traceback."""
    tb = exc.__traceback__
    if tb is None:
        return None
    while tb.tb_next is not None:
        tb = tb.tb_next
    name = tb.tb_frame.f_code.co_filename.replace("\\", "/").rpartition("/")[2]
    if not name or any(c.isspace() or c == ":" for c in name):
        return None
    return f"{name}:{tb.tb_lineno}"


def describe_exception(exc: BaseException, *, site: bool = False) -> str:
    """A run-independent description of an exception (addresses masked).

    ``exception: Type at file.py:LINE: message``; the type and the site
    identify the failure (:func:`same_failure`), the message is only text.
    ``site=True`` adds the site; traces record it without (format versions 1 and 2).
    """
    text = _ADDRESS.sub("0x…", str(exc))
    where = raise_site(exc) if site else None
    at = "" if where is None else f" at {where}"
    return f"exception: {type(exc).__qualname__}{at}: {text}"[:2000]


def failure_identity(cause: str) -> tuple[str, str | None] | None:
    """``(type, site)`` of a failure described by :func:`describe_exception`, else None."""
    match = _FAILURE.match(cause)
    return None if match is None else (match["type"], match["site"])


def same_failure(a: str, b: str) -> bool:
    """Whether two failure descriptions name the same failure.

    A failure is identified by its exception type and where it was raised,
    never by its message, which may hold run-dependent text (the order of a
    set, an address). A description without a site (as traces hold it)
    matches on the type alone. Anything else compares as text.
    """
    ida, idb = failure_identity(a), failure_identity(b)
    if ida is None or idb is None:
        return a == b
    if ida[0] != idb[0]:
        return False
    return ida[1] is None or idb[1] is None or ida[1] == idb[1]


class _Session:
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

    def __init__(self, session: _Session) -> None:
        self.checkpoint = roomy(session.checkpoint)
        self.input = roomy(session.input)
        self.shutdown = roomy(session.shutdown)


_options_of = itemgetter(1)
_choice_of = itemgetter(2)

_get_limit = sys.getrecursionlimit
_set_limit = sys.setrecursionlimit


class _SessionChooser:
    """The simulation's chooser: every decision goes through the session."""

    __slots__ = ("inner", "session")

    def __init__(self, session: _Session, inner: Chooser | None) -> None:
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


class Recorder(_Session):
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


class Player(_Session):
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
        self._clock_batch = b""
        self._clock_pos = 0
        self._clock_step = 0
        #: Index of the next trace event (each batched decision is one event).
        self.event_index = 0
        self.divergence: ReplayDivergence | None = None
        #: True once a truncated trace has run out: the run then goes on freely.
        self.exhausted = False
        #: The step of the last checkpoint whose digest matched.
        self._good_step = 0

    # -- reading ----------------------------------------------------------------------

    def _next(self) -> tuple[Any, ...] | None:
        """The next event as a record; batched decisions come out as CHOICE records."""
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
        self._miss = self.event_index + k
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
        index = self.event_index
        self.event_index += 1
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
                index = self.event_index
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
                self.event_index += 1
                self._emit_choice(step, n, choice)
                return choice

        def actual() -> str:
            return f"a {kind.name} decision at step {step} among {n} options {list(options)!r}"

        record = self._expect(EventKind.CHOICE, actual, n)
        if record is None:  # a truncated trace ran out: finish in FIFO order
            return 0
        self._check_derived(self.event_index - 1, kind, options, record)
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
        return True

    def _timer_gate(self) -> Callable[[ClockType], bool]:
        """:meth:`timer_checkpoint`, its commonest case inlined: the next checkpoint of
        the trace's current batch is this one, one byte of step delta after the last,
        and it goes on the re-recording's open batch as the recorder's gate puts it.
        That case calls nothing (no room needed); anything else is the method."""
        sim = self.sim
        assert sim is not None
        clocks = self._clocks
        slow = roomy(self.timer_checkpoint)
        room = CHOICES_BATCH_BYTES - 2

        def gate(clock_type: ClockType) -> bool:
            step = sim.steps
            batch = self._clock_batch
            pos = self._clock_pos
            delta = step - self._clocks_last
            if (
                pos < len(batch)
                and clocks
                and delta < 0x80
                and len(clocks) < room
                and self.divergence is None
            ):
                recorded = batch[pos]  # a one-byte varint below 0x80
                if (
                    recorded < 0x80
                    and recorded == step - self._clock_step
                    and batch[pos + 1] == clock_type
                ):
                    self._clock_pos = pos + 2
                    self._clock_step = step
                    self.event_index += 1
                    clocks.append(delta)
                    clocks.append(clock_type)
                    self._clocks_last = step
                    return True
            return slow(clock_type)

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
                    self._diverge(self.event_index - 1, show_record(record), actual)
                self._emit(record)  # the recorded text: a message that differs is no divergence
        actual = f"the run ended: CHECKPOINT FINAL(step={sim.steps}, digest={sim.digest:#018x})"
        record = self._expect(EventKind.CHECKPOINT, actual, int(CheckpointKind.FINAL), sim.digest)
        if record is not None:
            self._emit(record)
            trailing = self._next()
            if trailing is not None:
                self._diverge(self.event_index, show_record(trailing), "the end of the run")
        self.writer.close()
