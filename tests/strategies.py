"""Hypothesis strategies shared by the trace tests: valid records and headers."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from replay.trace.choices import encode_choices
from replay.trace.format import MAX_BATCHED_OPTIONS, EventKind
from replay.trace.header import TraceHeader

UINT64_MAX = 2**64 - 1

# Small values most of the time (one-byte encodings, the common case), any
# value of the range now and then (the widest encodings).
uints = st.integers(0, 200) | st.integers(0, UINT64_MAX)
int64s = st.integers(-300, 300) | st.integers(-(2**63), 2**63 - 1)
texts = st.text(max_size=20)
blobs = st.binary(max_size=64)


@st.composite
def decisions(draw: st.DrawFn, max_options: int = MAX_BATCHED_OPTIONS) -> tuple[int, int, int]:
    """One (step_delta, n_options, choice) that a CHOICES stream can hold."""
    n_options = draw(st.integers(1, 20) | st.integers(1, max_options))
    return draw(uints), n_options, draw(st.integers(0, n_options - 1))


@st.composite
def choice_records(draw: st.DrawFn) -> tuple[Any, ...]:
    n_options = draw(st.integers(1, 20) | st.integers(1, UINT64_MAX))
    return (EventKind.CHOICE, draw(uints), n_options, draw(st.integers(0, n_options - 1)))


def records() -> st.SearchStrategy[tuple[Any, ...]]:
    """Any valid record but HEADER and END (which only the writer writes)."""
    K = EventKind
    return st.one_of(
        st.tuples(st.just(K.CHECKPOINT), uints, uints, uints),
        choice_records(),
        st.tuples(st.just(K.CHOICES), uints, st.lists(decisions(), min_size=1).map(encode_choices)),
        st.tuples(st.just(K.INPUT), uints, texts, blobs),
        st.tuples(st.just(K.CLOCK), uints, uints, int64s),
        st.tuples(st.just(K.RANDOM), uints, uints),
        st.tuples(st.just(K.MUTEX), uints, uints),
        st.tuples(st.just(K.SHUTDOWN), uints, texts),
        st.tuples(st.just(K.FAULT), uints, uints, texts, int64s),
        st.tuples(st.just(K.ASYNC_EVENT), uints, uints, texts),
    )


param_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False),
    texts,
    blobs,
)
param_values = st.recursive(param_scalars, lambda inner: st.lists(inner, max_size=4), max_leaves=8)


def headers() -> st.SearchStrategy[TraceHeader]:
    return st.builds(
        TraceHeader,
        scenario=st.text(min_size=1, max_size=30),
        seed=st.integers(-(2**63), 2**64 - 1),
        chooser=st.sampled_from(["fifo", "random:7", "pct:3:42"]),
        parameters=st.dictionaries(texts, param_values, max_size=5),
        faults=st.lists(texts, max_size=3).map(tuple),
        package_version=st.sampled_from(["0.1.0", "1.2.3.dev4"]),
        python_version=st.sampled_from(["3.11", "3.12", "4.0"]),
        extensions=st.dictionaries(texts, param_values, max_size=2),
    )
