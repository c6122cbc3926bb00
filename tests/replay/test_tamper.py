"""Tampered traces: a value, a header field or a record changed, the framing made whole again.

Two kinds of forger. One patches bytes and makes each chunk's CRC right
again (:func:`tests.helpers.reframe`): the chain of a version 2 trace
stops the reader at the first chunk that no longer belongs, a clear error
(exit 2). The other writes the altered records with the format's own writer,
so every CRC and CHAIN is right (:func:`tamper`): then play itself must
catch the lie, at the record that tells it, as a divergence (exit 3). Never
is the result called bit-exact (docs/trace-format.md, section 9).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack  # type: ignore[import-untyped]
import pytest

from replay import (
    EventKind,
    ReplayDivergence,
    TraceFormatError,
    TraceReader,
    TraceWriter,
    play,
    record,
)
from replay.cli.main import main
from replay.host.mode import record_host
from replay.trace.choices import batch_decisions, encode_choices
from replay.trace.format import CHAIN_PREFIX, CHUNK_HEADER_SIZE
from tests.helpers import chunk_spans, reframe

ROOT = Path(__file__).resolve().parents[2]
RACE = ROOT / "traces" / "minimachine-blk-reset-race.evr"
RANDOM_7 = ROOT / "traces" / "minimachine-fixed-random-7.evr"
PCT_3 = ROOT / "traces" / "minimachine-fixed-pct-3.evr"
CLOCKS_AND_RANDOM = "tests.scenarios.workloads:clocks_and_random"

Record = tuple[Any, ...]


def tamper(
    path: Path,
    out: Path,
    change: Callable[[Record], Record | None] = lambda r: r,
    *,
    append: tuple[Record, ...] = (),
    **header_changes: Any,
) -> Path:
    """``path`` rewritten through TraceWriter: each record through ``change`` (None drops it).

    ``header_changes`` replace header fields; ``append`` adds records at the end.
    """
    with TraceReader(path) as reader:
        header = dataclasses.replace(reader.header, **header_changes)
        with TraceWriter(out, header) as writer:
            for rec in reader:
                changed = change(rec)
                if changed is not None:
                    writer.write(changed)
            for rec in append:
                writer.write(rec)
    return out


def events(path: Path) -> list[Record]:
    """A trace's events as play counts them: each decision of a batch is one CHOICE."""
    out: list[Record] = []
    with TraceReader(path) as reader:
        for rec in reader:
            if rec[0] == EventKind.CHOICES:
                out += [(EventKind.CHOICE, *d) for d in batch_decisions(rec[1], rec[2])]
            else:
                out.append(rec)
    return out


def decisions(path: Path) -> list[tuple[int, int, int, int]]:
    """Every decision of a trace as (event index, step, options, choice)."""
    return [(i, *e[1:]) for i, e in enumerate(events(path)) if e[0] == EventKind.CHOICE]


def first_of(path: Path, kind: EventKind) -> tuple[int, Record]:
    """The event index and record of the first ``kind`` record."""
    return next((i, e) for i, e in enumerate(events(path)) if e[0] == kind)


def assert_cli_diverges(path: Path, capsys: pytest.CaptureFixture[str], event: int) -> None:
    assert main(["play", str(path)]) == 3
    captured = capsys.readouterr()
    first = captured.out.splitlines()[0]
    assert first.startswith(f"{path}: replay diverged at event {event} (")
    assert "bit-exact" not in captured.out
    assert "Traceback" not in captured.out + captured.err


@pytest.fixture
def draws_and_clocks(tmp_path: Path) -> Path:
    path = tmp_path / "clocks.evr"
    record(CLOCKS_AND_RANDOM, path, seed=5)
    return path


# -- the chooser the header names --------------------------------------------------------


def test_a_race_relabelled_fifo_diverges_where_fifo_would_choose_otherwise(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The use-after-free trace was found by a fuzzer's script; a real FIFO run
    # is clean. Relabelled "fifo", it must not play to the failure as FIFO's.
    assert play(RACE).bit_exact is True
    forged = tamper(RACE, tmp_path / "fifo.evr", chooser="fifo")
    index, step, n, choice = next(d for d in decisions(forged) if d[3] != 0)
    with pytest.raises(ReplayDivergence) as info:
        play(forged)
    div = info.value
    assert div.event_index == index
    assert div.step == step
    assert div.expected == f"CHOICE(step={step}, options={n}, choice={choice})"
    assert div.actual.startswith(f"the header's chooser 'fifo' chooses 0 of {n} options [")
    assert_cli_diverges(forged, capsys, index)


def test_a_random_chooser_relabelled_with_another_seed_diverges(tmp_path: Path) -> None:
    forged = tamper(RANDOM_7, tmp_path / "random-8.evr", chooser="random:8")
    with pytest.raises(ReplayDivergence) as info:
        play(forged)
    assert info.value.actual.startswith("the header's chooser 'random:8' chooses ")
    assert str(info.value.expected).startswith("CHOICE(")


def flip(path: Path, out: Path, index: int, choice: int, *, lone: bool = False) -> Path:
    """``path`` with decision ``index`` (an event index) answered ``choice``.

    ``lone`` writes every decision as a CHOICE record of its own instead of
    in CHOICES batches (a player reads both).
    """
    seen = 0
    with TraceReader(path) as reader, TraceWriter(out, reader.header) as writer:
        for rec in reader:
            if rec[0] != EventKind.CHOICES:
                seen += 1
                writer.write(rec)
                continue
            items, last = [], rec[1]
            for at, k, c in batch_decisions(rec[1], rec[2]):  # back to step deltas
                c = choice if seen == index else c
                items.append((at - last, k, c))
                if lone:
                    writer.write((EventKind.CHOICE, at, k, c))
                last = at
                seen += 1
            if not lone:
                writer.write((rec[0], rec[1], encode_choices(items)))
    return out


@pytest.mark.parametrize(
    ("trace", "spec", "which"),
    [
        (RANDOM_7, "random:7", 0),  # the first decision with a choice to make
        (RANDOM_7, "random:7", -1),  # the last: in the trace's last batch
        (PCT_3, "pct:3", 0),  # a chooser asked at each decision
        (PCT_3, "pct:3", -1),
    ],
)
@pytest.mark.parametrize("lone", [False, True], ids=["batched", "lone"])
def test_a_changed_choice_under_a_seeded_chooser_diverges_at_that_decision(
    tmp_path: Path, trace: Path, spec: str, which: int, lone: bool
) -> None:
    # Flip one decision: the run could follow it (same number of options),
    # but the header's chooser does not make it.
    with TraceReader(trace) as reader:
        assert reader.header.chooser == spec
    index, step, n, choice = [d for d in decisions(trace) if d[2] >= 2][which]
    flipped = (choice + 1) % n
    forged = flip(trace, tmp_path / "flipped.evr", index, flipped, lone=lone)
    assert [d for d in decisions(forged) if d[0] == index] == [(index, step, n, flipped)]
    with pytest.raises(ReplayDivergence) as info:
        play(forged)
    assert info.value.event_index == index
    assert info.value.step == step
    assert info.value.expected == f"CHOICE(step={step}, options={n}, choice={flipped})"
    assert info.value.actual.startswith(f"the header's chooser '{spec}' chooses {choice} of")


def test_a_trace_of_lone_choice_records_plays_where_its_chooser_agrees(tmp_path: Path) -> None:
    # Unchanged decisions, written one record each: play follows them (the
    # re-recording batches them, so it is not the same bytes).
    relaid = flip(RANDOM_7, tmp_path / "lone.evr", -1, 0, lone=True)
    assert [e for e in events(relaid) if e[0] == EventKind.CHOICE] == [
        e for e in events(RANDOM_7) if e[0] == EventKind.CHOICE
    ]
    result = play(relaid)
    assert result.events == len(events(RANDOM_7))
    assert result.bit_exact is False


# -- values the seed determines ----------------------------------------------------------


def test_an_altered_random_value_diverges_at_its_record(
    draws_and_clocks: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    index, rec = first_of(draws_and_clocks, EventKind.RANDOM)
    value = rec[2] ^ 1
    forged = tamper(
        draws_and_clocks, tmp_path / "random.evr",
        lambda r: (r[0], r[1], value) if r == rec else r,
    )
    with pytest.raises(ReplayDivergence) as info:
        play(forged)
    div = info.value
    assert div.event_index == index
    assert div.expected == f"RANDOM(step={rec[1]}, value={value:#x})"
    assert div.actual == f"a random draw at step {rec[1]} of {rec[2]:#018x} (from the seed)"
    assert_cli_diverges(forged, capsys, index)


def test_an_altered_clock_offset_diverges_at_its_record(
    draws_and_clocks: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    index, rec = first_of(draws_and_clocks, EventKind.CLOCK)
    assert rec[3] == 0
    forged = tamper(
        draws_and_clocks, tmp_path / "clock.evr",
        lambda r: (*r[:3], 1_000_000) if r == rec else r,
    )
    with pytest.raises(ReplayDivergence) as info:
        play(forged)
    assert info.value.event_index == index
    assert str(info.value.expected).endswith("offset=1000000)")
    assert_cli_diverges(forged, capsys, index)


def test_a_relabelled_seed_diverges_at_the_first_draw(
    draws_and_clocks: Path, tmp_path: Path
) -> None:
    index, rec = first_of(draws_and_clocks, EventKind.RANDOM)
    forged = tamper(draws_and_clocks, tmp_path / "seed.evr", seed=6)
    with pytest.raises(ReplayDivergence) as info:
        play(forged)
    assert info.value.event_index == index
    assert info.value.expected == f"RANDOM(step={rec[1]}, value={rec[2]:#x})"


def test_the_untampered_trace_plays_bit_exact(draws_and_clocks: Path, tmp_path: Path) -> None:
    # The control: the same rewriting with no change leaves a trace that plays.
    same = tamper(draws_and_clocks, tmp_path / "same.evr")
    assert same.read_bytes() == draws_and_clocks.read_bytes()
    assert play(same).bit_exact is True


# -- records nobody consumes -------------------------------------------------------------


@pytest.mark.parametrize("extra", [
    (EventKind.RANDOM, 10_000, 7),
    (EventKind.MUTEX, 0, 0),
    (EventKind.CLOCK, 10_000, 2, 0),
])
def test_a_record_left_after_the_run_ended_is_a_divergence(
    draws_and_clocks: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: Record
) -> None:
    forged = tamper(draws_and_clocks, tmp_path / "extra.evr", append=(extra,))
    total = len(events(forged))
    with pytest.raises(ReplayDivergence) as info:
        play(forged)
    assert info.value.event_index == total - 1
    assert info.value.actual == "the end of the run"
    assert_cli_diverges(forged, capsys, total - 1)


def test_a_record_dropped_from_the_middle_is_a_divergence(
    draws_and_clocks: Path, tmp_path: Path
) -> None:
    index, rec = first_of(draws_and_clocks, EventKind.RANDOM)
    forged = tamper(draws_and_clocks, tmp_path / "dropped.evr", lambda r: None if r == rec else r)
    with pytest.raises(ReplayDivergence) as info:
        play(forged)
    assert info.value.event_index == index


# -- patched bytes, CRCs made right: the chain ---------------------------------------------


def patch(data: bytes, old: bytes, new: bytes) -> bytes:
    """``data`` with the one occurrence of ``old`` (in a data chunk) replaced, CRCs redone."""
    assert len(old) == len(new) and data.count(old) == 1
    return reframe(data.replace(old, new))


def assert_cli_refuses(path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["play", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith(f"replay: error: {path}: byte ")
    assert "Traceback" not in captured.err
    return line


def test_a_relabelled_header_of_a_version_2_trace_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clean = tmp_path / "clean.evr"
    record("replay.examples.minimachine:scenario", clean, chooser="random:7")
    data = clean.read_bytes()
    header_end = chunk_spans(data)[1][0]
    relabelled = patch(data, b"\xa8random:7", b"\xa8random:8")
    forged = tmp_path / "relabelled.evr"
    forged.write_bytes(relabelled)
    with TraceReader(forged) as reader:
        assert reader.header.chooser == "random:8"  # the header alone reads fine
    line = assert_cli_refuses(forged, capsys)
    assert line.startswith(
        f"replay: error: {forged}: byte {header_end}: expected a CHAIN digest of the header "
        "and records before it ("
    )
    assert line.endswith("(the header or a record before it was altered after it was written)")
    # A forger who also redoes the chain meets the chooser check instead.
    forged.write_bytes(reframe(relabelled, rechain=True))
    with pytest.raises(ReplayDivergence) as info:
        play(forged)
    assert info.value.actual.startswith("the header's chooser 'random:8' chooses ")


def host_trace(path: Path, text: bytes) -> Path:
    r, w = os.pipe()
    os.write(w, text)
    os.close(w)
    record_host("tests.scenarios.host:echo", path, inputs={"p": r})
    assert play(path).bit_exact is True
    return path


def test_an_altered_host_input_byte_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Real input cannot be checked against anything but the trace's own chain.
    path = host_trace(tmp_path / "host.evr", b"transfer 100 to alice\n")
    data = path.read_bytes()
    forged = tmp_path / "forged.evr"
    forged.write_bytes(patch(data, b"100 to alice", b"900 to mally"))
    offset = next(o for o, n, _ in chunk_spans(data) if b"alice" in data[o : o + 12 + n])
    with pytest.raises(TraceFormatError) as info:
        play(forged)
    assert info.value.offset == offset
    assert str(info.value.expected).startswith("a CHAIN digest")
    assert_cli_refuses(forged, capsys)


def test_an_altered_host_clock_sample_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = host_trace(tmp_path / "host.evr", b"x\n")
    _, rec = first_of(path, EventKind.CLOCK)  # the HOST clock's start: wall time
    assert rec[2] == 2
    old = msgpack.packb(list(rec))
    new = msgpack.packb([*rec[:3], rec[3] ^ 0xFF])
    forged = tmp_path / "forged.evr"
    forged.write_bytes(patch(path.read_bytes(), old, new))
    with pytest.raises(TraceFormatError, match="expected a CHAIN digest"):
        play(forged)
    assert_cli_refuses(forged, capsys)


def test_a_version_1_trace_without_a_chain_still_plays() -> None:
    # The corpus is version 1: old traces keep playing, bit-exact, in their version.
    with TraceReader(RACE) as reader:
        assert reader.header.format_version == 1
    assert play(RACE).bit_exact is True
    data = RACE.read_bytes()
    for offset, length, _ in chunk_spans(data)[1:]:
        start = offset + CHUNK_HEADER_SIZE
        assert CHAIN_PREFIX not in data[start : start + length]
