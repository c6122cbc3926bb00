"""The timer checkpoints of format 3: QEMU's ``CHECKPOINT_CLOCK_*``, recorded and obeyed.

Each test names the QEMU file and function whose behaviour it checks.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from evloop import SCALE_MS, ClockType, Seams, Simulation, Timer, VirtualClock
from evloop.loop.timer import WARP_DIRTY, TimerList
from replay import EventKind, ReplayDivergence, TraceReader, play, record
from replay.session.base import CHOICES_BATCH_BYTES
from replay.trace.choices import batch_decisions
from replay.trace.clockpoints import batch_clock_checkpoints, encode_clock_checkpoint_into
from replay.trace.describe import show_record
from replay.trace.format import FORMAT_VERSION, TIMER_CHECKPOINTS_VERSION
from replay.trace.writer import TraceWriter
from tests.helpers import assert_same_run, records_of
from tests.scenarios import clock_timers

SCENARIO = "tests.scenarios.clock_timers:scenario"
CLOCK_NAMES = {1: "virtual", 2: "host", 3: "virtual-rt"}
Record = tuple[Any, ...]
CLOCKS = EventKind.CLOCK_CHECKPOINTS


def events(path: Path) -> list[Record]:
    """A trace's events as play reads them: each decision and each timer checkpoint one."""
    out: list[Record] = []
    for rec in records_of(path):
        if rec[0] == EventKind.CHOICES:
            out += [(EventKind.CHOICE, *d) for d in batch_decisions(rec[1], rec[2])]
        elif rec[0] == CLOCKS:
            out += [(CLOCKS, step, clock) for step, clock in batch_clock_checkpoints(*rec[1:])]
        else:
            out.append(rec)
    return out


def clock_checkpoints(path: Path) -> list[Record]:
    return [e for e in events(path) if e[0] == CLOCKS]


def rewrite(path: Path, out: Path, evs: list[Record]) -> Path:
    """``evs`` written one record each under ``path``'s header, by the format's own writer."""
    with TraceReader(path) as reader:
        header = reader.header
    with TraceWriter(out, header) as writer:
        for ev in evs:
            if ev[0] == CLOCKS:
                ev = (CLOCKS, ev[1], bytes([0, ev[2]]))
            writer.write(ev)
    return out


@pytest.fixture
def recorded(tmp_path: Path) -> Path:
    path = tmp_path / "clocks.evr"
    result = record(SCENARIO, path)
    assert result.failure is None
    return path


def test_the_new_format_is_the_one_with_timer_checkpoints() -> None:
    assert FORMAT_VERSION == TIMER_CHECKPOINTS_VERSION == 3


def test_checkpoints_are_taken_for_virtual_host_and_virtual_rt_but_not_realtime_or_external(
    recorded: Path,
) -> None:
    """Follows util/qemu-timer.c timerlist_run_timers: its switch on the clock type.

    REALTIME takes no checkpoint; HOST and VIRTUAL_RT one before the list
    runs; VIRTUAL one before each expired timer without
    QEMU_TIMER_ATTR_EXTERNAL (two due at once: two checkpoints), the
    IOThread context's list as well.
    """
    fired = list(clock_timers.FIRED)
    taken = [CLOCK_NAMES[r[2]] for r in clock_checkpoints(recorded)]
    virtual = [f for f in fired if f in ("virtual-a", "virtual-b", "io-virtual")]
    assert taken.count("virtual") == len(virtual) == 7
    assert taken.count("host") == fired.count("host") == 3
    assert taken.count("virtual-rt") == fired.count("virtual-rt") == 3
    assert fired.count("external") == 3 and fired.count("realtime") == 3  # they ran, unchecked
    assert len(taken) == 13


def gated_run(fast_path: bool, scenario: Any, **params: Any) -> tuple[list[Any], list[Any]]:
    """``scenario`` on a simulation whose gate logs (step, clock); and its step log."""
    asked: list[tuple[int, ClockType]] = []
    with Simulation(fast_path=fast_path, log=True) as sim:

        def gate(clock_type: ClockType) -> bool:
            asked.append((sim.steps, clock_type))
            return True

        sim.plug(Seams(timer_gate=gate))
        scenario(sim, **params)
        sim.run()
        assert sim.log is not None
        return asked, [(e.step, e.kind, e.name) for e in sim.log]


def test_each_checkpoint_comes_right_before_its_timer_runs() -> None:
    """Follows util/qemu-timer.c timerlist_run_timers: the checkpoint, then the callback."""
    asked, log = gated_run(False, clock_timers.scenario)
    kinds = {step: kind for step, kind, _ in log}
    assert asked and all(kinds[step + 1] == "timer" for step, _ in asked)
    assert {c for _, c in asked} == {ClockType.VIRTUAL, ClockType.HOST, ClockType.VIRTUAL_RT}


def test_the_quiet_fast_path_asks_the_same_checkpoints_as_the_full_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A lone timer list runs through TimerList.run_warping, which asks as run_timers does."""
    warps = [0]
    original = TimerList.run_warping

    def counted(self: TimerList, *args: Any) -> int:
        warps[0] += 1
        return original(self, *args)

    monkeypatch.setattr(TimerList, "run_warping", counted)
    fast = gated_run(True, clock_timers.virtual_ticks, ticks=30)
    assert warps[0] > 0  # the fast path ran
    warps[0] = 0
    full = gated_run(False, clock_timers.virtual_ticks, ticks=30)
    assert warps[0] == 0
    assert fast == full
    assert [c for _, c in fast[0]] == [ClockType.VIRTUAL] * 30


def test_a_gate_that_says_no_stops_a_warping_pass_before_its_timer() -> None:
    """QEMU's play leaves the list for a later iteration when the checkpoint is not next."""
    clock = VirtualClock()
    clock.enable(ClockType.VIRTUAL, True)
    tl = TimerList(clock, ClockType.VIRTUAL)
    ran: list[int] = []
    timer = Timer(tl, 1, lambda: ran.append(clock.get_ns(ClockType.VIRTUAL)))
    timer.mod_ns(5 * SCALE_MS)
    tl.checkpoint = lambda clock_type: False

    class Counter:
        steps = 0

    assert tl.run_warping(None, None, -1, Counter(), -1) == WARP_DIRTY
    assert ran == [] and timer.pending()
    tl.checkpoint = lambda clock_type: True
    tl.run_warping(None, None, -1, Counter(), -1)
    assert ran == [5 * SCALE_MS]


def test_a_trace_with_timer_checkpoints_replays_bit_exactly(tmp_path: Path) -> None:
    path = tmp_path / "clocks.evr"
    assert_same_run(record(SCENARIO, path), play(path))


def test_a_missing_checkpoint_is_a_divergence_naming_the_clock(
    recorded: Path, tmp_path: Path
) -> None:
    """Follows replay/replay.c replay_checkpoint (play): the timers wait for their checkpoint.

    QEMU's play runs a list only when the log's next event is its
    checkpoint; here the run cannot wait for it, so it diverges there.
    """
    evs = events(recorded)
    index = next(i for i, e in enumerate(evs) if e[0] == CLOCKS and e[2] == ClockType.HOST)
    dropped = evs[index]
    forged = rewrite(recorded, tmp_path / "missing.evr", evs[:index] + evs[index + 1 :])
    with pytest.raises(ReplayDivergence) as info:
        play(forged)
    div = info.value
    assert (div.step, div.event_index) == (dropped[1], index)
    assert div.actual == f"CHECKPOINT CLOCK_HOST(step={dropped[1]}): due timers about to run"
    assert div.expected == show_record(evs[index + 1])


def test_an_extra_checkpoint_is_a_divergence_naming_the_clock(
    recorded: Path, tmp_path: Path
) -> None:
    """Follows replay/replay.c replay_checkpoint: a checkpoint never taken is not skipped."""
    evs = events(recorded)
    index = next(i for i, e in enumerate(evs) if e[0] == CLOCKS and e[2] == ClockType.VIRTUAL_RT)
    at = evs[index - 1][1]
    extra = (CLOCKS, at, int(ClockType.VIRTUAL_RT))
    evs = [*evs[: index - 1], extra, *evs[index - 1 :]]
    forged = rewrite(recorded, tmp_path / "extra.evr", evs)
    with pytest.raises(ReplayDivergence) as info:
        play(forged)
    div = info.value
    assert div.expected == f"CHECKPOINT CLOCK_VIRTUAL_RT(step={at})"
    assert div.event_index == index - 1


def test_a_checkpoint_of_another_clock_is_a_divergence(recorded: Path, tmp_path: Path) -> None:
    """Follows replay/replay.c replay_checkpoint: only this checkpoint's event will do."""
    evs = events(recorded)
    index = next(i for i, e in enumerate(evs) if e[0] == CLOCKS and e[2] == ClockType.VIRTUAL)
    step = evs[index][1]
    evs[index] = (CLOCKS, step, int(ClockType.HOST))
    forged = rewrite(recorded, tmp_path / "other.evr", evs)
    with pytest.raises(ReplayDivergence) as info:
        play(forged)
    assert info.value.expected == f"CHECKPOINT CLOCK_HOST(step={step})"
    assert info.value.actual == f"CHECKPOINT CLOCK_VIRTUAL(step={step}): due timers about to run"


def test_a_checkpoint_at_another_step_is_a_divergence(recorded: Path, tmp_path: Path) -> None:
    evs = events(recorded)
    index = [i for i, e in enumerate(evs) if e[0] == CLOCKS][3]
    step = evs[index][1]
    evs[index] = (CLOCKS, step + 1, evs[index][2])
    forged = rewrite(recorded, tmp_path / "later.evr", evs)
    with pytest.raises(ReplayDivergence) as info:
        play(forged)
    assert info.value.event_index == index
    assert info.value.actual.startswith(f"CHECKPOINT CLOCK_VIRTUAL(step={step}):")


def test_a_played_batch_re_records_the_same_batch(recorded: Path, tmp_path: Path) -> None:
    """Play's inlined common case and its slow path log the checkpoints as record did."""
    result = play(recorded)
    assert result.bit_exact is True
    batches = [r for r in records_of(recorded) if r[0] == CLOCKS]
    assert batches and all(len(r[2]) % 2 == 0 for r in batches)


def test_long_runs_of_checkpoints_and_long_gaps_replay_bit_exactly(tmp_path: Path) -> None:
    """Batches that fill up, and step deltas of two bytes: play's inlined case and its slow path."""
    path = tmp_path / "long.evr"
    recorded = record(
        "tests.scenarios.clock_timers:virtual_ticks", path,
        params={"ticks": 5000, "noise_every": 700},
    )
    batches = [r for r in records_of(path) if r[0] == CLOCKS]
    assert len(batches) >= 3  # 5000 checkpoints of 2 bytes: batches close at 4 KiB
    assert any(not r[2].isascii() for r in batches)  # a delta of 128 steps or more
    assert len(clock_checkpoints(path)) == 5000
    assert_same_run(recorded, play(path))


def test_an_older_version_takes_no_timer_checkpoint_and_replays_as_it_was(
    recorded: Path, tmp_path: Path
) -> None:
    """A version 2 header: the run is not gated, so its trace (no CLOCK_*) plays bit-exact."""
    records = [r for r in records_of(recorded) if r[0] != CLOCKS]
    with TraceReader(recorded) as reader:
        header = dataclasses.replace(reader.header, format_version=2)
    old = tmp_path / "v2.evr"
    with TraceWriter(old, header) as writer:
        for rec in records:
            writer.write(rec)
    result = play(old)
    assert result.bit_exact is True and result.failure is None


def test_an_unrecorded_simulation_has_no_gate_and_a_recorded_one_has() -> None:
    """QEMU's replay_checkpoint is a no-op when replay is off; ours is not even called."""
    with Simulation() as sim:
        groups = [sim.main_loop.tlg, sim.main_loop.aio_context.tlg]
        assert all(tl.checkpoint is None for g in groups for tl in g.lists)


# -- play in step with a batch: the gate's own case, and where it hands over -----------


@pytest.fixture(scope="module")
def ticks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """5000 VIRTUAL checkpoints a step apart: two full batches and a third (no
    periodic checkpoint comes between them)."""
    path = tmp_path_factory.mktemp("ticks") / "ticks.evr"
    spec = "tests.scenarios.clock_timers:virtual_ticks"
    recorded = record(spec, path, params={"ticks": 5000}, checkpoint_interval=10**6)
    assert recorded.failure is None
    return path


def forge_batch(path: Path, out: Path, batch: int, edit: Any, chunk: int | None = None) -> Path:
    """``path`` with the checkpoints of its ``batch``-th CLOCK_CHECKPOINTS record
    edited by ``edit`` (a list of [step_delta, clock] in, the new list out), the
    record kept whole, each other record as it was; ``chunk``: the writer's
    chunk threshold."""
    records = records_of(path)
    at = [i for i, r in enumerate(records) if r[0] == CLOCKS][batch]
    _, first, packed = records[at]
    pairs: list[list[int]] = []
    last = first
    for step, clock in batch_clock_checkpoints(first, packed):
        pairs.append([step - last, clock])
        last = step
    stream = bytearray()
    for delta, clock in edit(pairs):
        encode_clock_checkpoint_into(stream, delta, clock)
    records[at] = (CLOCKS, first, bytes(stream))
    with TraceReader(path) as reader:
        header = reader.header
    options = {} if chunk is None else {"chunk_threshold": chunk}
    with TraceWriter(out, header, **options) as writer:
        for rec in records:
            writer.write(rec)
    return out


def index_in_batch(path: Path, batch: int, k: int) -> int:
    """The event index of checkpoint ``k`` of the ``batch``-th batch, as play counts events."""
    index = 0
    for rec in records_of(path):
        if rec[0] == CLOCKS:
            if batch == 0:
                return index + k
            batch -= 1
            index += len(list(batch_clock_checkpoints(rec[1], rec[2])))
        elif rec[0] == EventKind.CHOICES:
            index += len(list(batch_decisions(rec[1], rec[2])))
        else:
            index += 1
    raise AssertionError("no such batch")


def test_full_batches_replay_bit_exactly_event_for_event(ticks: Path) -> None:
    """The recorder closes a batch at CHOICES_BATCH_BYTES; the re-recording closes
    the same batches, though play takes their checkpoints without re-encoding them."""
    batches = [r for r in records_of(ticks) if r[0] == CLOCKS]
    full = CHOICES_BATCH_BYTES
    assert [len(r[2]) for r in batches] == [full, full, 2 * 5000 - 2 * full]
    played = play(ticks)
    assert played.bit_exact is True
    assert played.events == len(events(ticks))


@pytest.mark.parametrize("k", [0, 1, 2, 700, 2045, 2046, 2047])
def test_a_checkpoint_of_another_clock_inside_a_full_batch_is_a_divergence_there(
    ticks: Path, tmp_path: Path, k: int
) -> None:
    """The first checkpoint of a batch, its middle, the last the gate takes in step
    and the batch's last (which the recorder's closing rule leaves to the method)."""

    def other_clock(pairs: list[list[int]]) -> list[list[int]]:
        pairs[k][1] = int(ClockType.HOST)
        return pairs

    forged = forge_batch(ticks, tmp_path / "other.evr", 1, other_clock)
    index = index_in_batch(ticks, 1, k)
    step = events(ticks)[index][1]
    with pytest.raises(ReplayDivergence) as info:
        play(forged)
    div = info.value
    assert (div.event_index, div.step) == (index, step)
    assert div.expected == f"CHECKPOINT CLOCK_HOST(step={step})"
    assert div.actual == f"CHECKPOINT CLOCK_VIRTUAL(step={step}): due timers about to run"


@pytest.mark.parametrize("k", [1, 700, 2046])
def test_a_checkpoint_missing_inside_a_batch_is_a_divergence_there(
    ticks: Path, tmp_path: Path, k: int
) -> None:
    def drop(pairs: list[list[int]]) -> list[list[int]]:
        pairs[k + 1][0] += pairs[k][0]
        return pairs[:k] + pairs[k + 1 :]

    forged = forge_batch(ticks, tmp_path / "missing.evr", 0, drop)
    index = index_in_batch(ticks, 0, k)
    evs = events(ticks)
    with pytest.raises(ReplayDivergence) as info:
        play(forged)
    div = info.value
    assert (div.event_index, div.step) == (index, evs[index][1])
    assert div.expected == show_record(evs[index + 1])
    assert div.actual == f"CHECKPOINT CLOCK_VIRTUAL(step={evs[index][1]}): due timers about to run"


@pytest.mark.parametrize("k", [1, 700, 2046])
def test_an_extra_checkpoint_inside_a_batch_is_a_divergence_there(
    ticks: Path, tmp_path: Path, k: int
) -> None:
    """An extra VIRTUAL_RT checkpoint right after checkpoint k-1, at its step: the
    run passed that step without taking it."""

    def insert(pairs: list[list[int]]) -> list[list[int]]:
        return [*pairs[:k], [0, int(ClockType.VIRTUAL_RT)], *pairs[k:]]

    forged = forge_batch(ticks, tmp_path / "extra.evr", 0, insert)
    index = index_in_batch(ticks, 0, k)
    at = events(ticks)[index - 1][1]
    with pytest.raises(ReplayDivergence) as info:
        play(forged)
    div = info.value
    assert (div.event_index, div.step) == (index, at)
    assert div.expected == f"CHECKPOINT CLOCK_VIRTUAL_RT(step={at})"


@pytest.mark.parametrize("k", [1, 700, 2045])
def test_a_checkpoint_at_a_later_step_inside_a_batch_is_a_divergence_there(
    ticks: Path, tmp_path: Path, k: int
) -> None:
    def later(pairs: list[list[int]]) -> list[list[int]]:
        pairs[k][0] += 1
        pairs[k + 1][0] -= 1
        return pairs

    forged = forge_batch(ticks, tmp_path / "later.evr", 1, later)
    index = index_in_batch(ticks, 1, k)
    step = events(ticks)[index][1]
    with pytest.raises(ReplayDivergence) as info:
        play(forged)
    div = info.value
    assert (div.event_index, div.step) == (index, step)
    assert div.expected == f"CHECKPOINT CLOCK_VIRTUAL(step={step + 1})"
    assert div.actual == f"CHECKPOINT CLOCK_VIRTUAL(step={step}): due timers about to run"


@pytest.mark.parametrize("into", [1, 2000, -1])
def test_a_trace_cut_inside_a_batch_plays_the_batches_before_it_and_runs_on(
    ticks: Path, tmp_path: Path, into: int
) -> None:
    """Each record its own chunk, cut inside the second batch's: play takes the
    first batch's checkpoints, runs out and goes on to one step past them."""
    chunked = forge_batch(ticks, tmp_path / "chunked.evr", 0, lambda pairs: pairs, chunk=1)
    whole = play(chunked)
    assert (whole.complete, whole.failure, whole.events) == (True, None, len(events(ticks)))
    data = chunked.read_bytes()
    batches = [r[2] for r in records_of(ticks) if r[0] == CLOCKS]
    second = batches[1]
    begin = data.index(second, data.index(batches[0]) + len(batches[0]))
    cut = tmp_path / "cut.evr"
    cut.write_bytes(data[: begin + into if into > 0 else begin + len(second) + into])
    played = play(cut)
    first = index_in_batch(ticks, 1, 0)  # the events before the second batch
    assert (played.complete, played.bit_exact, played.failure) == (False, None, None)
    assert played.events == first
    assert played.steps == events(ticks)[first - 1][1] + 1


@pytest.mark.parametrize("until", [1, 2, 500, 2049, 3000])
def test_a_play_stopped_inside_a_batch_counts_the_checkpoints_taken(
    ticks: Path, until: int
) -> None:
    played = play(ticks, until_step=until)
    assert played.steps == until
    taken = [e for e in events(ticks) if e[1] < until or (e[0] != CLOCKS and e[1] <= until)]
    assert played.events == len(taken)
