"""Tests for replay.trace: format, records, choices, header; and replay.errors."""

from __future__ import annotations

import pickle
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replay.errors import InvalidRecordError, ReplayDivergence, ReplayError, TraceFormatError
from replay.trace.choices import (
    batch_decision_list,
    batch_decisions,
    batch_last_step,
    choices_problem,
    decode_choices,
    encode_choice_into,
    encode_choices,
)
from replay.trace.format import (
    CHAIN_RECORD_SIZE,
    FORMAT_NAME,
    FORMAT_VERSION,
    MAX_BATCHED_OPTIONS,
    MAX_CHUNK_PAYLOAD,
    MAX_CHUNK_THRESHOLD,
    MAX_RECORD_SIZE,
    EventKind,
)
from replay.trace.header import TraceHeader, current_python_version, header_from_fields
from replay.trace.records import RECORD_LAYOUTS, MapPairs, _explain, _valid_choices, check_record
from tests.strategies import UINT64_MAX, decisions, headers, records

# --- the bump rule ---------------------------------------------------------


def test_event_kinds_are_frozen_for_this_format_version() -> None:
    # If this fails, you changed the order or number of kinds: bump
    # FORMAT_VERSION (see EventKind) and then update this table.
    # 2: CHAIN ends every data chunk; 3: CLOCK_CHECKPOINTS (QEMU's timer checkpoints).
    # ASYNC_EVENT was appended in 3 without a bump: only a trace whose header has
    # run.async_events (opt-in) holds one (docs/trace-format.md, "ASYNC_EVENT").
    assert FORMAT_VERSION == 3
    assert {k.name: k.value for k in EventKind} == {
        "HEADER": 0,
        "END": 1,
        "CHECKPOINT": 2,
        "CHOICE": 3,
        "CHOICES": 4,
        "INPUT": 5,
        "CLOCK": 6,
        "RANDOM": 7,
        "MUTEX": 8,
        "SHUTDOWN": 9,
        "FAULT": 10,
        "CHAIN": 11,
        "CLOCK_CHECKPOINTS": 12,
        "ASYNC_EVENT": 13,
    }


def test_record_layouts_are_frozen_for_this_format_version() -> None:
    # Same rule for fields: a change here bumps FORMAT_VERSION.
    assert {k.name: layout.describe() for k, layout in RECORD_LAYOUTS.items()} == {
        "END": "END [kind, total_records: uint]",
        "CHECKPOINT": "CHECKPOINT [kind, step: uint, checkpoint_kind: uint, digest: uint]",
        "CHOICE": "CHOICE [kind, step: uint, n_options: uint, choice: uint]",
        "CHOICES": "CHOICES [kind, first_step: uint, packed: bin]",
        "INPUT": "INPUT [kind, step: uint, channel: str, data: bin]",
        "CLOCK": "CLOCK [kind, step: uint, clock_type: uint, value_ns: int]",
        "RANDOM": "RANDOM [kind, step: uint, value: uint]",
        "MUTEX": "MUTEX [kind, step_delta: uint, thread_index: uint]",
        "SHUTDOWN": "SHUTDOWN [kind, step: uint, cause: str]",
        "FAULT": "FAULT [kind, step: uint, fault_kind: uint, target: str, arg: int]",
        "CLOCK_CHECKPOINTS": "CLOCK_CHECKPOINTS [kind, first_step: uint, packed: bin]",
        "ASYNC_EVENT": "ASYNC_EVENT [kind, step: uint, sequence: uint, name: str]",
    }
    assert FORMAT_NAME == "evreplay-trace"


def test_limits_leave_room_for_the_largest_record_in_a_chunk() -> None:
    assert MAX_CHUNK_THRESHOLD + MAX_RECORD_SIZE + CHAIN_RECORD_SIZE <= MAX_CHUNK_PAYLOAD


# --- check_record ----------------------------------------------------------


@pytest.mark.slow
@given(records())
def test_every_generated_record_is_valid(record: tuple[Any, ...]) -> None:
    assert check_record(record) is None
    assert check_record(list(record)) is None


def test_int_subclasses_bytearray_and_lists_are_accepted() -> None:
    assert check_record([EventKind.CLOCK, 1, EventKind.END, -5]) is None
    assert check_record((EventKind.INPUT, 0, "serial0", bytearray(b"x"))) is None


_A_RECORD = "a record (an array [kind, *fields])"
_KNOWN_KIND = (
    "a known event kind (END=1, CHECKPOINT=2, CHOICE=3, CHOICES=4, INPUT=5, "
    "CLOCK=6, RANDOM=7, MUTEX=8, SHUTDOWN=9, FAULT=10, "
    "CLOCK_CHECKPOINTS=12, ASYNC_EVENT=13)"
)
_CLOCK = "CLOCK [kind, step: uint, clock_type: uint, value_ns: int]"


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        (5, (_A_RECORD, "int 5")),
        ({"k": 1}, (_A_RECORD, "a map of 1 entries")),
        ((), (_A_RECORD, "an empty array")),
        ((99, 1), (_KNOWN_KIND, "kind int 99")),
        ((True, 1), (_KNOWN_KIND, "kind bool True")),
        # HEADER is only ever the first record, read by its own rules.
        ((EventKind.HEADER, "x"), (_KNOWN_KIND, "kind int 0")),
        ((6, 1, 1), (_CLOCK, "2 fields")),
        ((6, -1, 1, 1), ("CLOCK.step: int in [0, 2**64)", "int -1")),
        ((6, 1, 1, 2**63), ("CLOCK.value_ns: int in [-2**63, 2**63)", "int 9223372036854775808")),
        ((6, True, 1, 1), ("CLOCK.step: int in [0, 2**64)", "bool True")),
        ((6, 1.0, 1, 1), ("CLOCK.step: int in [0, 2**64)", "float 1.0")),
        ((5, 1, b"serial0", b""), ("INPUT.channel: str", "bin of 7 bytes")),
        ((5, 1, "serial0", "text"), ("INPUT.data: bin", "str 'text'")),
        ((9, 1, "x" * 50), None),
        ((3, 0, 0, 0), ("CHOICE.n_options >= 1", "0")),
        ((3, 0, 3, 3), ("CHOICE.choice < n_options (3)", "3")),
        ((4, 0, b""), ("CHOICES.packed holding at least one decision", "an empty stream")),
        (
            (4, 0, b"\x01"),
            (
                "CHOICES.packed byte 1: decision 0's option/choice varint",
                "end of stream (it ends mid-decision)",
            ),
        ),
        ((1, 2**64), ("END.total_records: int in [0, 2**64)", "int 18446744073709551616")),
    ],
)
def test_check_record_says_what_is_wrong(record: object, problem: object) -> None:
    assert check_record(record) == problem


def _mutations() -> st.SearchStrategy[object]:
    anything = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**65), 2**65),
        st.floats(),
        st.text(max_size=3),
        st.binary(max_size=3),
        st.binary(max_size=12).map(bytearray),
    )

    @st.composite
    def mutate(draw: st.DrawFn) -> object:
        record = list(draw(records()))
        action = draw(st.sampled_from(["set", "drop", "add", "kind", "list"]))
        if action == "set":
            record[draw(st.integers(0, len(record) - 1))] = draw(anything)
        elif action == "drop":
            del record[draw(st.integers(0, len(record) - 1))]
        elif action == "add":
            record.append(draw(anything))
        elif action == "kind":
            record[0] = draw(st.integers(-2, 12))
        return record if action == "list" or draw(st.booleans()) else tuple(record)

    return mutate()


@given(_mutations())
def test_the_fast_checks_accept_nothing_the_thorough_check_rejects(record: object) -> None:
    assert (check_record(record) is None) == (_explain(record) is None)


# --- CHOICES ---------------------------------------------------------------


@given(st.lists(decisions()))
def test_choices_round_trip(items: list[tuple[int, int, int]]) -> None:
    packed = encode_choices(items)
    assert list(decode_choices(packed)) == items
    assert _valid_choices(packed)



@given(
    st.integers(0, UINT64_MAX),
    st.one_of(
        st.lists(st.tuples(st.integers(0, 127), st.integers(1, 15)).flatmap(
            lambda t: st.tuples(st.just(t[0]), st.just(t[1]), st.integers(0, t[1] - 1))
        ), min_size=1),
        st.lists(decisions(), min_size=1),
    ),
)
def test_a_batch_decoded_as_a_list_and_its_last_step_agree_with_the_decoder(
    first_step: int, items: list[tuple[int, int, int]]
) -> None:
    # One-byte varints (the first strategy) take the C-speed path; any
    # other stream (the second, almost always) the decoder's own.
    packed = encode_choices(items)
    expected = list(batch_decisions(first_step, packed))
    assert batch_decision_list(first_step, packed) == expected
    assert batch_last_step(first_step, packed) == expected[-1][0]


def test_a_damaged_batch_decoded_as_a_list_is_a_trace_format_error() -> None:
    with pytest.raises(TraceFormatError):
        batch_decision_list(0, b"\x00\x80")  # ends mid-varint
    with pytest.raises(TraceFormatError):
        batch_decision_list(0, b"\x00")  # ends mid-decision
    assert batch_decision_list(5, b"\x01\x02\x00\x00") == [(6, 2, 1), (6, 1, 0)]

@given(st.binary(max_size=40))
def test_the_choices_validator_and_decoder_agree_on_any_bytes(data: bytes) -> None:
    assert _valid_choices(data) == (choices_problem(data) is None)


@given(st.binary(max_size=40))
def test_decoding_any_bytes_gives_decisions_or_trace_format_error(data: bytes) -> None:
    try:
        for step_delta, n_options, choice in decode_choices(data):
            assert 0 <= step_delta <= UINT64_MAX
            assert 0 <= choice < n_options
    except TraceFormatError:
        pass


def test_small_decisions_take_two_bytes_each() -> None:
    rng = random.Random(20240501)
    items = []
    for _ in range(100_000):
        n_options = rng.randint(2, 8)
        items.append((rng.randint(0, 5), n_options, rng.randrange(n_options)))
    assert len(encode_choices(items)) == 200_000


def test_the_pair_varint_folds_options_and_choice() -> None:
    assert encode_choices([(0, 1, 0), (0, 2, 0), (0, 2, 1), (0, 3, 0), (1, 15, 14)]) == bytes(
        [0, 0, 0, 1, 0, 2, 0, 3, 1, 119]
    )
    assert encode_choices([(128, 16, 15)]) == b"\x80\x01\x87\x01"
    assert encode_choices([(UINT64_MAX, 1, 0)]) == b"\xff" * 9 + b"\x01\x00"


def test_a_batch_gives_its_decisions_at_absolute_steps() -> None:
    packed = encode_choices([(0, 3, 1), (2, 2, 0), (1, 5, 4)])
    assert packed == bytes.fromhex("00 04 02 01 01 0e")
    assert list(batch_decisions(10, packed)) == [(10, 3, 1), (12, 2, 0), (13, 5, 4)]


def test_the_widest_batched_decision_round_trips() -> None:
    n = MAX_BATCHED_OPTIONS
    assert list(decode_choices(encode_choices([(0, n, n - 1)]))) == [(0, n, n - 1)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, 3, 3), r"^expected choice in \[0, 3\), found 3$"),
        ((0, 0, 0), r"^expected n_options >= 1, found 0$"),
        ((-1, 2, 0), r"^expected step_delta in \[0, 2\*\*64\), found -1$"),
        (
            (0, MAX_BATCHED_OPTIONS + 1, MAX_BATCHED_OPTIONS),
            r"^expected n_options <= 6074000999 \(use a CHOICE record for more\), "
            r"found 6074001000$",
        ),
    ],
)
def test_encoding_an_impossible_decision_is_refused(
    args: tuple[int, int, int], message: str
) -> None:
    with pytest.raises(InvalidRecordError, match=message):
        encode_choice_into(bytearray(), *args)


@pytest.mark.parametrize(
    ("packed", "message"),
    [
        (
            b"\x00\x00" + b"\x80" * 11,
            r"^t\.evr: byte 102: expected a varint of at most 10 bytes for decision 1's "
            r"step_delta, found a longer one$",
        ),
        (
            b"\x00\x00\x05",
            r"^t\.evr: byte 103: expected decision 1's option/choice varint, "
            r"found end of stream \(it ends mid-decision\)$",
        ),
        (
            b"\x05\x85",
            r"^t\.evr: byte 101: expected a whole varint for decision 0's option/choice, "
            r"found end of stream \(truncated\)$",
        ),
        (
            b"\x85\x00\x01",
            r"^t\.evr: byte 100: expected a minimal varint for decision 0's step_delta, "
            r"found a redundant trailing zero byte$",
        ),
        (
            b"\xff" * 9 + b"\x02\x00",
            r"^t\.evr: byte 100: expected a varint below 2\*\*64 for decision 0's step_delta, "
            r"found 27670116110564327423$",
        ),
    ],
)
def test_hostile_choices_streams_are_trace_format_errors(packed: bytes, message: str) -> None:
    with pytest.raises(TraceFormatError, match=message):
        list(decode_choices(packed, offset=100, path="t.evr"))


# --- the header ------------------------------------------------------------


def test_a_header_is_normalized_to_sorted_read_only_maps_and_tuples() -> None:
    header = TraceHeader(
        scenario="examples.echo:Echo",
        seed=7,
        package_version="0.1.0",
        parameters={"b": [1, [2, 3]], "a": b"x", "é": None},
        faults=["drop:1"],  # type: ignore[arg-type]
    )
    assert list(header.parameters) == ["a", "b", "é"]
    assert header.parameters["b"] == (1, (2, 3))
    assert header.faults == ("drop:1",)
    assert header.python_version == current_python_version()
    assert header.chooser == "fifo"
    assert (header.format_name, header.format_version) == (FORMAT_NAME, FORMAT_VERSION)
    with pytest.raises(TypeError):
        header.parameters["c"] = 1  # type: ignore[index]


def test_headers_are_hashable_values() -> None:
    def make() -> TraceHeader:
        return TraceHeader(scenario="s:S", seed=1, package_version="0", parameters={"a": [1]})

    assert make() == make()
    assert len({make(), make()}) == 1


def test_the_python_version_is_major_minor_only() -> None:
    assert current_python_version().count(".") == 1


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"scenario": ""}, r"^expected header\.scenario: a non-empty str, found str ''$"),
        ({"seed": 2**64}, r"^expected header\.seed: int in \[-2\*\*63, 2\*\*64\), found int"),
        ({"seed": True}, r"^expected header\.seed: int in \[-2\*\*63, 2\*\*64\), found bool True$"),
        ({"python_version": "3.11.4"}, r'^expected header\.python_version: "major\.minor", found'),
        ({"faults": ("a", 1)}, r"^expected header\.faults: str items, found int 1$"),
        (
            {"parameters": {"k": {"nested": 1}}},
            r"^expected header\.parameters\['k'\]: nil, bool, int, float, str, bin or a list "
            r"of them, found a map of 1 entries$",
        ),
        (
            {"parameters": {"k": [[[[[[[[[1]]]]]]]]]}},
            r"^expected header\.parameters\['k'\]\[0\]\[0\]\[0\]\[0\]\[0\]\[0\]\[0\]\[0\]: "
            r"lists nested at most 8 deep, found deeper$",
        ),
        ({"parameters": {1: 2}}, r"^expected header\.parameters: str keys, found int 1$"),
        ({"extensions": [1]}, r"^expected header\.extensions: a map, found an array of 1 items$"),
    ],
)
def test_an_invalid_header_is_refused_with_what_to_fix(
    changes: dict[str, Any], message: str
) -> None:
    fields: dict[str, Any] = {"scenario": "s:S", "seed": 1, "package_version": "0.1.0"}
    with pytest.raises(InvalidRecordError, match=message):
        TraceHeader(**(fields | changes))


@given(headers())
def test_headers_survive_their_record_form(header: TraceHeader) -> None:
    record = header.to_record()
    pairs = [
        MapPairs(sorted(m.items(), key=lambda kv: kv[0].encode())) for m in (record[4], record[10])
    ]
    fields = (record[3], pairs[0], record[5], record[6], tuple(record[7]), *record[8:10], pairs[1])
    assert header_from_fields(fields) == header


def test_decoded_header_maps_must_be_sorted_and_unique() -> None:
    fields = ("s:S", MapPairs((("b", 1), ("a", 2))), 1, "fifo", (), "0.1.0", "3.11", MapPairs())
    with pytest.raises(
        InvalidRecordError,
        match=r"^expected header\.parameters: keys unique and sorted, found \['b', 'a'\]$",
    ):
        header_from_fields(fields)


# --- errors ----------------------------------------------------------------


def test_trace_format_error_names_file_offset_and_record() -> None:
    error = TraceFormatError(1234, "a chunk header (12 bytes)", "3 bytes (truncated)", "trace.evr")
    assert (
        str(error)
        == "trace.evr: byte 1234: expected a chunk header (12 bytes), found 3 bytes (truncated)"
    )
    assert isinstance(error, ReplayError)
    in_chunk = TraceFormatError(20, "CLOCK.step: uint", "str 'x'", None, 17)
    assert str(in_chunk) == "chunk at byte 20: record 17: expected CLOCK.step: uint, found str 'x'"
    again = pickle.loads(pickle.dumps(in_chunk))
    assert (str(again), again.record_index, again.offset) == (str(in_chunk), 17, 20)


def test_replay_divergence_reads_well_and_pickles() -> None:
    error = ReplayDivergence(
        step=567,
        event_index=1234,
        expected=(3, 1, 3, 2),
        actual=(3, 1, 3, 1),
        time_ns=1_000_000_123,
        thread="worker-1",
        recent=((6, 560, 1, 999), (8, 2, 0)),
    )
    assert str(error) == (
        "replay diverged at event 1234 (step 567, time 1000000123 ns, thread 'worker-1')\n"
        "  expected: (3, 1, 3, 2)\n"
        "  actual:   (3, 1, 3, 1)\n"
        "  recent events, oldest first:\n"
        "    (6, 560, 1, 999)\n"
        "    (8, 2, 0)"
    )
    again = pickle.loads(pickle.dumps(error))
    assert str(again) == str(error)
    assert (again.step, again.thread, again.recent) == (567, "worker-1", error.recent)
    bare = ReplayDivergence(0, 0, "CLOCK", "CHOICE")
    assert str(bare) == (
        "replay diverged at event 0 (step 0)\n"
        "  expected: 'CLOCK'\n"
        "  actual:   'CHOICE'\n"
        "  no earlier events"
    )


def test_invalid_record_error_is_a_value_error() -> None:
    error = InvalidRecordError("CLOCK.step: uint", "int -1", 3)
    assert isinstance(error, ValueError)
    assert str(error) == "record 3: expected CLOCK.step: uint, found int -1"
