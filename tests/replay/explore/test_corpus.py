"""The campaign corpus: one trace per failure, merged across runs by the CFO's rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from replay.errors import ReplayError
from replay.explore.campaign import CampaignResult, FailureGroup, Stop
from replay.explore.corpus import INDEX_NAME, Merge, load_index, merge_campaign
from replay.explore.triage import ShrunkFailure, trace_name

SCENARIO = "tests.scenarios.campaign:two_bugs"


def found(staging: Path, signature: str, seeds: list[int], non_default: int, decisions: int,
          data: bytes) -> FailureGroup:  # fmt: skip
    """A group as a campaign leaves it: its trace saved in a staging folder."""
    path = staging / f"{len(list(staging.iterdir())) if staging.exists() else 0}.evr"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    shrunk = ShrunkFailure(signature, f"exception: {signature}", seeds[0], decisions,
                           non_default, path)
    return FailureGroup(signature, seeds, shrunk)


def result(*groups: FailureGroup) -> CampaignResult:
    return CampaignResult(SCENARIO, "random", 100, 100, Stop.DONE, list(groups))


def test_a_new_failure_is_added_with_its_trace_and_index_entry(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    merged = merge_campaign(corpus, result(found(tmp_path / "s", "A at x.py:1", [3, 9], 1, 5,
                                                 b"trace-a")), "c1")
    target = corpus / trace_name(SCENARIO, "A at x.py:1")
    assert merged == {"A at x.py:1": (Merge.NEW, target)}
    assert target.read_bytes() == b"trace-a"
    [entry] = load_index(corpus)
    assert (entry.commit, entry.seed, entry.count, entry.trace, entry.non_default) == (
        "c1", 3, 2, trace_name(SCENARIO, "A at x.py:1"), 1
    )


def test_the_same_commit_keeps_the_older_trace_unless_the_new_one_is_smaller(
    tmp_path: Path,
) -> None:
    corpus = tmp_path / "corpus"
    sig = "A at x.py:1"
    merge_campaign(corpus, result(found(tmp_path / "s1", sig, [3], 2, 5, b"first")), "c1")
    # As small (a tie): the older trace stays; the count grows.
    merged = merge_campaign(corpus, result(found(tmp_path / "s2", sig, [0, 1], 2, 5, b"tie")),
                            "c1")
    assert merged[sig][0] is Merge.KEPT and merged[sig][1].read_bytes() == b"first"
    # Smaller: replaces it.
    merged = merge_campaign(corpus, result(found(tmp_path / "s3", sig, [7], 1, 6, b"small")),
                            "c1")
    assert merged[sig][0] is Merge.REPLACED and merged[sig][1].read_bytes() == b"small"
    [entry] = load_index(corpus)
    assert (entry.seed, entry.count, entry.non_default) == (7, 4, 1)


def test_a_fresher_commit_replaces_the_trace_even_when_larger(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    sig = "A at x.py:1"
    merge_campaign(corpus, result(found(tmp_path / "s1", sig, [3], 1, 5, b"old")), "c1")
    merged = merge_campaign(corpus, result(found(tmp_path / "s2", sig, [4], 3, 9, b"new")), "c2")
    assert merged[sig][0] is Merge.REPLACED and merged[sig][1].read_bytes() == b"new"
    [entry] = load_index(corpus)
    assert (entry.commit, entry.count) == ("c2", 2)


def test_an_unknown_commit_does_not_count_as_fresher(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    sig = "A at x.py:1"
    merge_campaign(corpus, result(found(tmp_path / "s1", sig, [3], 1, 5, b"old")), "c1")
    merged = merge_campaign(corpus, result(found(tmp_path / "s2", sig, [4], 3, 9, b"new")),
                            "unknown")
    assert merged[sig][0] is Merge.KEPT


def test_failures_not_met_again_stay_and_the_index_is_sorted(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    merge_campaign(corpus, result(found(tmp_path / "s1", "B at y.py:2", [1], 1, 5, b"b")), "c1")
    merge_campaign(corpus, result(found(tmp_path / "s2", "A at x.py:1", [2], 1, 5, b"a")), "c1")
    assert [e.signature for e in load_index(corpus)] == ["A at x.py:1", "B at y.py:2"]
    assert sorted(p.name for p in corpus.rglob("*.evr")) == sorted(
        Path(trace_name(SCENARIO, s)).name for s in ("A at x.py:1", "B at y.py:2")
    )


def test_groups_stopped_before_shrinking_are_not_merged(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    assert merge_campaign(corpus, result(FailureGroup("A at x.py:1", [1])), "c1") == {}
    assert load_index(corpus) == []
    assert (corpus / INDEX_NAME).exists()


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("{", "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
        ('{"format": "x"}', "its format is not 'evreplay-campaign-corpus'"),
        ('{"format": "evreplay-campaign-corpus", "version": 9}',
         "version 9, this evreplay reads 1"),
        ('{"format": "evreplay-campaign-corpus", "version": 1, "entries": {}}',
         "'entries' is not a list"),
        ('{"format": "evreplay-campaign-corpus", "version": 1, "entries": [{"seed": 1}]}',
         "entry 0: CorpusEntry.__init__() missing 9 required positional arguments: 'scenario', "
         "'signature', 'commit', 'chooser', 'trace', 'failure', 'decisions', 'non_default', "
         "and 'count'"),
    ],
)
def test_a_bad_index_is_refused_naming_the_file(tmp_path: Path, text: str, why: str) -> None:
    (tmp_path / INDEX_NAME).write_text(text)
    with pytest.raises(ReplayError) as info:
        load_index(tmp_path)
    assert str(info.value) == f"{tmp_path / INDEX_NAME}: not a campaign corpus index: {why}"


def test_an_index_pointing_outside_the_corpus_is_refused(tmp_path: Path) -> None:
    entry = {"scenario": "s", "signature": "A", "commit": "c", "chooser": "random", "seed": 0,
             "trace": "../../etc/passwd", "failure": "f", "decisions": 1, "non_default": 1,
             "count": 1}
    (tmp_path / INDEX_NAME).write_text(json.dumps(
        {"format": "evreplay-campaign-corpus", "version": 1, "entries": [entry]}
    ))
    with pytest.raises(ReplayError, match=r"entry 0: trace '../../etc/passwd' is outside the "
                                          r"corpus$"):
        load_index(tmp_path)
