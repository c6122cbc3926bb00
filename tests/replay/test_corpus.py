"""CI's determinism gate: every trace under traces/ replays bit-exactly, in every format version.

A clean trace replays without failure; a bug trace replays to the very
failure it recorded. A change to evloop, replay or the bundled examples that
alters any recorded run shows up here (regenerate with ``make traces`` when
the change is intended).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from replay import FORMAT_VERSION, TraceReader, play
from replay.trace.format import READABLE_VERSIONS

CORPUS = Path(__file__).resolve().parents[2] / "traces"
TRACES = sorted(p for p in CORPUS.rglob("*.evr") if "failures" not in p.parts)


def test_the_corpus_holds_clean_traces_and_the_bug_trace() -> None:
    names = {p.name for p in TRACES}
    assert "minimachine-clean.evr" in names
    assert "minimachine-blk-reset-race.evr" in names
    assert len(names) >= 3


def test_the_corpus_holds_the_same_runs_in_every_version_the_reader_reads() -> None:
    # traces/*.evr are version 1, kept byte for byte; traces/v2/ is what
    # `make traces` writes now. Both must keep playing.
    names: dict[int, set[str]] = {}
    for path in TRACES:
        with TraceReader(path) as reader:
            version = reader.header.format_version
        assert path.parent.name == ("traces" if version == 1 else f"v{version}")
        names.setdefault(version, set()).add(path.name)
    assert set(names) == set(READABLE_VERSIONS)
    assert names[1] == names[FORMAT_VERSION]


@pytest.mark.parametrize("path", TRACES, ids=[str(p.relative_to(CORPUS)) for p in TRACES])
def test_trace_replays_bit_exactly(path: Path) -> None:
    with TraceReader(path) as reader:
        assert reader.header.scenario
    result = play(path)
    assert result.complete
    assert result.bit_exact is True
    if "race" in path.name:
        assert result.failure is not None and "after a device reset" in result.failure
    else:
        assert result.failure is None
