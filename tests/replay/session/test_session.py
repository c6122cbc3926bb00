"""Tests for replay.session: the Recorder and the Player, driven by hand.

``record``/``play`` (tests/test_api.py) build these around a named scenario;
here a test builds the simulation itself, so it can look at what each door
logs, forge what the trace says and watch the player obey it, and poke a
player after it has diverged.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from evloop import SCALE_MS, ChoiceKind, ClockType, FifoChooser, RandomChooser, Simulation
from replay import (
    CheckpointKind,
    EventKind,
    Player,
    Recorder,
    ReplayDivergence,
    ReplayError,
    ReplayMode,
    TraceHeader,
    TraceReader,
    TraceWriter,
)
from replay.failures import describe_exception
from replay.session.base import CHOICES_BATCH_BYTES
from replay.trace.choices import decode_choices

Scenario = Callable[[Simulation], None]
HEADER = TraceHeader(scenario="tests.scenarios.none:by_hand", seed=0, package_version="0.1.0")


def record_by_hand(
    scenario: Scenario,
    *,
    chooser: Any = None,
    seed: int = 0,
    checkpoint_interval: int = 1024,
) -> bytes:
    """Record ``scenario`` as ``replay.record`` does, into bytes."""
    buffer = io.BytesIO()
    writer = TraceWriter(buffer, HEADER)
    recorder = Recorder(writer)
    with Simulation(
        seed,
        chooser=chooser,
        checkpoint_interval=checkpoint_interval,
        recent=8,
    ) as sim:
        recorder.attach(sim)
        recorder.start()
        failure: Exception | None = None
        try:
            scenario(sim)
            sim.run()
        except ReplayError:
            raise
        except Exception as exc:
            failure = exc
        recorder.finish(failure)
    return buffer.getvalue()


class Played:
    """What a play by hand left behind: the re-recording, the player, the simulation."""

    def __init__(self, data: bytes, player: Player, sim: Simulation) -> None:
        self.data = data
        self.player = player
        self.sim = sim


def play_by_hand(
    trace: bytes, scenario: Scenario, *, seed: int = 0, checkpoint_interval: int = 1024
) -> Played:
    """Play ``trace`` against ``scenario`` as ``replay.play`` does; keep the pieces."""
    reader = TraceReader(io.BytesIO(trace), strict=False)
    out = io.BytesIO()
    player = Player(reader, TraceWriter(out, reader.header))
    sim = Simulation(
        seed,
        checkpoint_interval=checkpoint_interval,
        recent=8,
    )
    played = Played(b"", player, sim)
    try:
        player.attach(sim)
        player.start()
        failure: Exception | None = None
        try:
            scenario(sim)
            sim.run()
        except ReplayError:
            raise
        except Exception as exc:
            failure = exc
        player.finish(failure)
    finally:
        sim.close()
    played.data = out.getvalue()
    return played


def records_in(trace: bytes) -> list[tuple[Any, ...]]:
    with TraceReader(io.BytesIO(trace)) as reader:
        return list(reader)


def rewrite(trace: bytes, change: Callable[[tuple[Any, ...]], tuple[Any, ...]]) -> bytes:
    """The trace with every record passed through ``change``."""
    out = io.BytesIO()
    with TraceReader(io.BytesIO(trace)) as reader, TraceWriter(out, reader.header) as writer:
        for record in reader:
            writer.write(change(record))
    return out.getvalue()


# -- small scenarios --------------------------------------------------------------------


def reads_every_clock(seen: list[int]) -> Scenario:
    def scenario(sim: Simulation) -> None:
        def tick() -> None:
            for clock in ClockType:
                seen.append(sim.clock.get_ns(clock))

        sim.main_loop.timer_new_ns(ClockType.REALTIME, tick, name="tick").mod_ns(SCALE_MS)

    return scenario


def draws(seen: list[int], n: int = 3) -> Scenario:
    def scenario(sim: Simulation) -> None:
        def tick() -> None:
            seen.extend(sim.random.getrandbits(64) for _ in range(n))

        sim.main_loop.timer_new_ns(ClockType.REALTIME, tick, name="tick").mod_ns(SCALE_MS)

    return scenario


def yielding(threads: int, rounds: int, order: list[str] | None = None) -> Scenario:
    def scenario(sim: Simulation) -> None:
        def body(name: str) -> None:
            for _ in range(rounds):
                if order is not None:
                    order.append(name)
                sim.yield_now()

        for i in range(threads):
            sim.thread(f"t{i}", lambda i=i: body(f"t{i}"))

    return scenario


def quiet(sim: Simulation) -> None:
    ctx = sim.main_loop.aio_context
    for i in range(5):
        sim.main_loop.timer_new_ns(
            ClockType.REALTIME, lambda: ctx.bh_schedule_oneshot(lambda: None), name=f"t{i}"
        ).mod_ns((i + 1) * SCALE_MS)


# -- enums and helpers ------------------------------------------------------------------


def test_replay_modes_are_qemus() -> None:
    assert [m.value for m in ReplayMode] == ["none", "record", "play"]
    assert Recorder.mode is ReplayMode.RECORD
    assert Player.mode is ReplayMode.PLAY


def test_checkpoint_kinds_are_stable_numbers() -> None:
    assert [(k.name, int(k)) for k in CheckpointKind] == [
        ("INIT", 0),
        ("PERIODIC", 1),
        ("FINAL", 2),
    ]


def test_describe_exception_names_the_type_and_masks_addresses() -> None:
    class Local(Exception):
        pass

    text = describe_exception(ValueError("at <object at 0x7f3a1b2c3d4e> and 0x12"))
    assert text == "exception: ValueError: at <object at 0x…> and 0x12"
    nested = describe_exception(Local("x"))
    assert nested == (
        "exception: test_describe_exception_names_the_type_and_masks_addresses.<locals>.Local: x"
    )


def test_describe_exception_is_bounded() -> None:
    assert len(describe_exception(RuntimeError("y" * 10_000))) == 2000


# -- what the recorder logs -------------------------------------------------------------


def test_a_quiet_run_logs_only_its_checkpoints() -> None:
    trace = record_by_hand(quiet, checkpoint_interval=4)
    records = records_in(trace)
    assert [(EventKind(r[0]), r[1], r[2]) for r in records] == [
        (EventKind.CHECKPOINT, 0, CheckpointKind.INIT),
        (EventKind.CHECKPOINT, 4, CheckpointKind.PERIODIC),
        (EventKind.CHECKPOINT, 8, CheckpointKind.PERIODIC),
        (EventKind.CHECKPOINT, 10, CheckpointKind.FINAL),
    ]


def test_only_host_and_virtual_rt_reads_are_logged() -> None:
    seen: list[int] = []
    trace = record_by_hand(reads_every_clock(seen))
    clock_records = [r for r in records_in(trace) if r[0] == EventKind.CLOCK]
    # Each read is logged as its offset from the virtual clock: 0 unless a fault moved it.
    assert clock_records == [
        (EventKind.CLOCK, 1, ClockType.HOST, 0),
        (EventKind.CLOCK, 1, ClockType.VIRTUAL_RT, 0),
    ]
    assert len(seen) == 4


def test_every_draw_is_logged_with_its_value() -> None:
    seen: list[int] = []
    trace = record_by_hand(draws(seen), seed=5)
    assert [r[2] for r in records_in(trace) if r[0] == EventKind.RANDOM] == seen
    assert len(seen) == 3


def test_decisions_are_batched_and_counted() -> None:
    trace = record_by_hand(yielding(3, 2000), chooser=RandomChooser(9))
    records = records_in(trace)
    batches = [r for r in records if r[0] == EventKind.CHOICES]
    assert len(batches) > 1  # a batch is written once it reaches CHOICES_BATCH_BYTES
    assert all(len(b[2]) < CHOICES_BATCH_BYTES + 32 for b in batches)
    # Decisions come out in step order; each batch starts at its first decision.
    steps = []
    for batch in batches:
        step = batch[1]
        for delta, n_options, choice in decode_choices(batch[2]):
            step += delta
            steps.append(step)
            assert 0 <= choice < n_options <= 3
    assert steps == sorted(steps)


def test_the_recorder_counts_its_decisions() -> None:
    buffer = io.BytesIO()
    recorder = Recorder(TraceWriter(buffer, HEADER))
    with Simulation(chooser=FifoChooser()) as sim:
        recorder.attach(sim)
        recorder.start()
        yielding(2, 10)(sim)
        sim.run()
        recorder.finish(None)
    decided = sum(
        len(list(decode_choices(r[2])))
        for r in records_in(buffer.getvalue())
        if r[0] == EventKind.CHOICES
    )
    assert recorder.decisions == decided > 0


class _BadChooser:
    def choose(self, kind: ChoiceKind, options: Sequence[str]) -> int:
        return len(options)

    def __repr__(self) -> str:
        return "<bad chooser>"


def test_the_recorder_refuses_an_answer_out_of_range() -> None:
    recorder = Recorder(TraceWriter(io.BytesIO(), HEADER))
    chooser = recorder.chooser(_BadChooser())
    with pytest.raises(ReplayError) as info:
        chooser.choose(ChoiceKind.THREAD, ["a", "b"])
    assert str(info.value) == "chooser <bad chooser> answered 2 for 2 options"


def test_a_recording_chooser_without_an_inner_one_answers_fifo() -> None:
    recorder = Recorder(TraceWriter(io.BytesIO(), HEADER))
    assert recorder.chooser().choose(ChoiceKind.THREAD, ["a", "b", "c"]) == 0
    assert repr(recorder.chooser(FifoChooser())) == "<record chooser over FifoChooser()>"


# -- play: same code path, values from the trace ---------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: yielding(3, 300),
        lambda: draws([], 10),
        lambda: reads_every_clock([]),
        lambda: quiet,
    ],
)
def test_a_play_rerecords_the_trace_byte_for_byte(make: Callable[[], Scenario]) -> None:
    trace = record_by_hand(make(), chooser=RandomChooser(4), checkpoint_interval=16)
    played = play_by_hand(trace, make(), checkpoint_interval=16)
    assert played.data == trace
    assert played.player.divergence is None
    assert played.player.exhausted is False


def test_play_takes_thread_decisions_from_the_trace() -> None:
    recorded_order: list[str] = []
    trace = record_by_hand(yielding(4, 200, recorded_order), chooser=RandomChooser(77))
    played_order: list[str] = []
    play_by_hand(trace, yielding(4, 200, played_order))
    assert played_order == recorded_order
    fifo_order: list[str] = []
    record_by_hand(yielding(4, 200, fifo_order))
    assert fifo_order != recorded_order


def test_a_random_value_that_is_not_the_seeds_is_a_divergence() -> None:
    # Every draw comes from the seeded generator: a value in the trace that the
    # seed does not give (a tampered trace, its CRCs recomputed) is caught at
    # its record, and the program never sees it.
    recorded: list[int] = []
    trace = record_by_hand(draws(recorded), seed=1)
    forged = rewrite(
        trace,
        lambda r: (r[0], r[1], 12345) if r[0] == EventKind.RANDOM and r[2] == recorded[1] else r,
    )
    seen: list[int] = []
    with pytest.raises(ReplayDivergence) as info:
        play_by_hand(forged, draws(seen), seed=1)
    div = info.value
    assert div.event_index == 2  # INIT, the first draw
    assert div.expected == "RANDOM(step=1, value=0x3039)"
    assert div.actual == f"a random draw at step 1 of {recorded[1]:#018x} (from the seed)"
    assert seen == [recorded[0]]
    assert play_by_hand(trace, draws([]), seed=1).data == trace


def test_a_clock_offset_in_a_simulation_trace_is_a_divergence() -> None:
    # A simulation's clocks are virtual: its recordings log offset 0, and
    # play refuses any other rather than hand the program a moved clock.
    recorded: list[int] = []
    trace = record_by_hand(reads_every_clock(recorded))
    assert {r[3] for r in records_in(trace) if r[0] == EventKind.CLOCK} == {0}
    forged = rewrite(
        trace, lambda r: (r[0], r[1], r[2], 777) if r[0] == EventKind.CLOCK and r[2] == 2 else r
    )
    seen: list[int] = []
    with pytest.raises(ReplayDivergence) as info:
        play_by_hand(forged, reads_every_clock(seen))
    div = info.value
    assert div.expected == "CLOCK(step=1, HOST, offset=777)"
    assert div.actual == "a read of the HOST clock at step 1"
    assert seen == recorded[:2]


# -- divergence -------------------------------------------------------------------------


def test_a_draw_the_trace_does_not_hold_is_a_divergence() -> None:
    trace = record_by_hand(draws([], 2))
    with pytest.raises(ReplayDivergence) as info:
        play_by_hand(trace, draws([], 3))
    div = info.value
    assert div.step == 1
    assert div.event_index == 3  # INIT, two draws
    final = records_in(trace)[-1]
    assert div.expected == f"CHECKPOINT FINAL(step=1, digest={final[3]:#018x})"
    assert div.actual.startswith("a random draw at step 1 of 0x")
    assert div.thread == "main"
    assert div.time_ns == SCALE_MS


def test_a_decision_among_another_number_of_options_is_a_divergence() -> None:
    trace = record_by_hand(yielding(3, 5), chooser=RandomChooser(1))
    with pytest.raises(ReplayDivergence) as info:
        play_by_hand(trace, yielding(4, 5))
    div = info.value
    assert div.event_index == 1
    assert isinstance(div.expected, str) and div.expected.startswith("CHOICE(step=0, options=3, ")
    assert div.actual == ("a THREAD decision at step 0 among 4 options ['t0', 't1', 't2', 't3']")


def test_a_player_refuses_further_work_after_a_divergence() -> None:
    trace = record_by_hand(draws([], 2))
    reader = TraceReader(io.BytesIO(trace), strict=False)
    player = Player(reader, TraceWriter(io.BytesIO(), reader.header))
    with Simulation(recent=8) as sim:
        player.attach(sim)
        player.start()
        draws([], 3)(sim)
        with pytest.raises(ReplayDivergence) as info:
            sim.run()
        divergence = info.value
        assert player.divergence is divergence
        attempts: list[Callable[[], object]] = [
            lambda: player.choose(ChoiceKind.THREAD, ["a", "b"], None),
            lambda: player.checkpoint(sim.steps),
            lambda: player.input("x", b"y", False),
            lambda: player.shutdown("again"),
            lambda: player.finish(None),
            lambda: sim.random.getrandbits(64),
            lambda: sim.clock.get_ns(ClockType.HOST),
        ]
        for attempt in attempts:
            with pytest.raises(ReplayError) as refused:
                attempt()
            assert str(refused.value) == (
                "this player stopped at a divergence and refuses further work; start a new play"
            )
            assert refused.value.__cause__ is divergence
        assert player.divergence is divergence


def test_a_divergence_pickles_intact() -> None:
    trace = record_by_hand(draws([], 1))
    with pytest.raises(ReplayDivergence) as info:
        play_by_hand(trace, reads_every_clock([]))
    div = info.value
    again = pickle.loads(pickle.dumps(div))
    assert str(again) == str(div)
    assert (again.step, again.event_index, again.thread, again.recent) == (
        div.step,
        div.event_index,
        div.thread,
        div.recent,
    )


def test_a_divergence_message_without_recent_events_says_so() -> None:
    div = ReplayDivergence(3, 7, "CHOICE(x)", "a read", time_ns=None, thread=None)
    assert str(div) == "\n".join(
        [
            "replay diverged at event 7 (step 3)",
            "  expected: 'CHOICE(x)'",
            "  actual:   'a read'",
            "  no earlier events",
        ]
    )


# -- a trace that runs out --------------------------------------------------------------


def test_a_truncated_trace_runs_out_and_the_run_goes_on_in_fifo_order() -> None:
    order: list[str] = []
    trace = record_by_hand(yielding(3, 50, order), chooser=RandomChooser(5))
    # Keep the header and the INIT checkpoint only, as a crash right after start would.
    cut = io.BytesIO()
    with TraceReader(io.BytesIO(trace)) as reader:
        writer = TraceWriter(cut, reader.header)
        writer.write(next(iter(reader)))
        writer.abort()
    played_order: list[str] = []
    played = play_by_hand(cut.getvalue(), yielding(3, 50, played_order))
    assert played.player.exhausted is True
    assert played.player.divergence is None
    fifo_order: list[str] = []
    record_by_hand(yielding(3, 50, fifo_order))
    assert played_order == fifo_order


def test_a_run_that_ends_before_the_trace_does_is_a_divergence() -> None:
    trace = record_by_hand(draws([], 3))
    with pytest.raises(ReplayDivergence) as info:
        play_by_hand(trace, draws([], 2))
    div = info.value
    third = [r for r in records_in(trace) if r[0] == EventKind.RANDOM][2]
    assert div.expected == f"RANDOM(step=1, value={third[2]:#x})"
    assert isinstance(div.actual, str)
    assert div.actual.startswith("the run ended: CHECKPOINT FINAL(step=1, digest=0x")


def test_events_after_the_final_checkpoint_are_a_divergence() -> None:
    trace = record_by_hand(draws([], 1))
    out = io.BytesIO()
    with TraceReader(io.BytesIO(trace)) as reader, TraceWriter(out, reader.header) as writer:
        for record in reader:
            writer.write(record)
        writer.write((EventKind.SHUTDOWN, 1, "left over"))
    with pytest.raises(ReplayDivergence) as info:
        play_by_hand(out.getvalue(), draws([], 1))
    div = info.value
    assert div.event_index == 3  # after INIT (0), the draw (1) and FINAL (2)
    assert div.expected == "SHUTDOWN(step=1, cause='left over')"
    assert div.actual == "the end of the run"


def test_a_choice_record_is_one_decision_at_its_absolute_step() -> None:
    recorded_order: list[str] = []
    trace = record_by_hand(yielding(3, 20, recorded_order), chooser=RandomChooser(11))

    def unbatched() -> bytes:
        out = io.BytesIO()
        with TraceReader(io.BytesIO(trace)) as reader, TraceWriter(out, reader.header) as writer:
            for record in reader:
                if record[0] != EventKind.CHOICES:
                    writer.write(record)
                    continue
                step = record[1]
                for delta, n_options, choice in decode_choices(record[2]):
                    step += delta
                    writer.write((EventKind.CHOICE, step, n_options, choice))
        return out.getvalue()

    single = unbatched()
    steps = [r[1] for r in records_in(single) if r[0] == EventKind.CHOICE]
    assert len(steps) > 2 and steps == sorted(steps) and steps[-1] > steps[0]
    played_order: list[str] = []
    played = play_by_hand(single, yielding(3, 20, played_order))
    assert played.player.divergence is None
    assert played_order == recorded_order
    assert played.data == trace  # the re-recording batches the same decisions again
