"""A campaign corpus: one trace per scenario and failure, kept across runs and commits.

A standing campaign runs again and again (per commit, nightly); its corpus
keeps exactly one trace per distinct failure, so that CI can replay what was
found (``replay verify DIR``) and check it stays fixed (``replay rerun DIR``).
The folder holds the traces (``<scenario>/<signature>-<hash>.evr``) and
``index.json``: for each trace its scenario, signature, the commit and seed
that found it, how it ends, its size, and how many failing seeds it stands
for.

Merging a campaign's finds into the corpus follows TigerBeetle's CFO (its
seed records: keep the failing seeds stable, prefer fresher commits, prefer
seeds that failed faster, prefer older seeds, and keep a count of the work
the dropped ones stood for), for one trace per failure:

1. A failure not in the corpus is added.
2. A failure already there, found again on **another commit**: the new trace
   replaces the old (the fresher commit's trace replays on the code as it is
   now; the old one may not).
3. Found again on **the same commit**: the new trace replaces the old only if
   it is strictly smaller (fewer non-FIFO decisions, then fewer decisions);
   on a tie the older one stays, so the corpus does not churn.
4. Either way the entry's count adds the new seeds; a failure this run did
   not meet is never dropped (a campaign is a sample, not a proof of a fix:
   ``replay rerun`` is).

The index is written whole to a temporary file and renamed over the old one,
and each trace is moved in by rename: an interrupted merge leaves the old
corpus or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import asdict, dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Final

from ..errors import ReplayError
from .campaign import CampaignResult
from .triage import trace_name

__all__ = ["INDEX_NAME", "CorpusEntry", "Merge", "current_commit", "load_index", "merge_campaign"]

INDEX_NAME: Final = "index.json"
_FORMAT: Final = "evreplay-campaign-corpus"
_VERSION: Final = 1
#: When the commit is not known (not a git checkout, no ``--commit``).
UNKNOWN_COMMIT: Final = "unknown"


@dataclass(frozen=True, slots=True)
class CorpusEntry:
    scenario: str
    signature: str
    commit: str
    chooser: str
    seed: int
    #: The trace, relative to the corpus folder.
    trace: str
    failure: str
    decisions: int
    non_default: int
    #: Failing seeds this failure stood for, over every merged campaign.
    count: int

    @property
    def key(self) -> tuple[str, str]:
        return self.scenario, self.signature


class Merge(Enum):
    NEW = "new"  #: not in the corpus before
    REPLACED = "replaced"  #: the new trace replaced the corpus's
    KEPT = "kept"  #: the corpus's trace stays


def current_commit(where: str | Path = ".") -> str:
    """The git commit checked out at ``where``, or ``"unknown"``."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True,
            timeout=10, check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN_COMMIT
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else UNKNOWN_COMMIT


def _bad(path: Path, why: str) -> ReplayError:
    return ReplayError(f"{path}: not a campaign corpus index: {why}")


def load_index(directory: str | Path) -> list[CorpusEntry]:
    """The entries of ``directory/index.json`` (none if the folder has no index yet)."""
    path = Path(directory) / INDEX_NAME
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _bad(path, str(exc)) from None
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        raise _bad(path, f"its format is not {_FORMAT!r}")
    if data.get("version") != _VERSION:
        raise _bad(path, f"version {data.get('version')!r}, this evreplay reads {_VERSION}")
    entries = data.get("entries")
    if not isinstance(entries, list):
        raise _bad(path, "'entries' is not a list")
    out = []
    for i, raw in enumerate(entries):
        try:
            entry = CorpusEntry(**raw)
        except TypeError as exc:
            raise _bad(path, f"entry {i}: {exc}") from None
        if Path(entry.trace).is_absolute() or ".." in Path(entry.trace).parts:
            raise _bad(path, f"entry {i}: trace {entry.trace!r} is outside the corpus")
        out.append(entry)
    return out


def _write_index(directory: Path, entries: list[CorpusEntry]) -> None:
    data = {
        "format": _FORMAT,
        "version": _VERSION,
        "entries": [asdict(e) for e in sorted(entries, key=lambda e: e.key)],
    }
    path = directory / INDEX_NAME
    partial = path.with_name(INDEX_NAME + ".partial")
    partial.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(partial, path)


def _replaces(old: CorpusEntry, new: CorpusEntry) -> bool:
    if new.commit != old.commit and new.commit != UNKNOWN_COMMIT:
        return True
    return (new.non_default, new.decisions) < (old.non_default, old.decisions)


def merge_campaign(
    directory: str | Path, result: CampaignResult, commit: str
) -> dict[str, tuple[Merge, Path]]:
    """Merge ``result``'s saved traces into the corpus; for each signature, what was done and
    where its corpus trace is.

    The campaign's traces must have been saved outside the corpus's trace
    paths (a staging folder); the ones kept are moved in, the others left.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    entries = {e.key: e for e in load_index(directory)}
    done: dict[str, tuple[Merge, Path]] = {}
    for group in result.groups:
        shrunk = group.shrunk
        if shrunk is None:
            continue
        new = CorpusEntry(
            result.scenario, group.signature, commit, result.chooser, shrunk.seed,
            trace_name(result.scenario, group.signature), shrunk.failure, shrunk.decisions,
            shrunk.non_default, group.count,
        )  # fmt: skip
        old = entries.get(new.key)
        if old is None or _replaces(old, new):
            target = directory / new.trace
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(shrunk.path, target)
            if old is not None and old.trace != new.trace:
                (directory / old.trace).unlink(missing_ok=True)
            count = new.count + (0 if old is None else old.count)
            entries[new.key] = replace(new, count=count)
            done[group.signature] = (Merge.NEW if old is None else Merge.REPLACED, target)
        else:
            entries[new.key] = replace(old, count=old.count + new.count)
            done[group.signature] = (Merge.KEPT, directory / old.trace)
    _write_index(directory, list(entries.values()))
    return done

