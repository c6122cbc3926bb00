"""One failure of a campaign, on the client: run it again, shrink it, save its trace.

The representative of a group (its first seed) failed in a worker, perhaps
on another machine. Running it again here and meeting the same signature is
the proof that the seed reproduces across processes; a different outcome is
a scenario that leaks nondeterminism, said as such. The run's decisions are
then delta-debugged (:func:`~replay.explore.fuzz.minimize_decisions`, the
same signature as the test), the minimal run is recorded to its trace file,
and the saved trace is played back bit-exactly before it is reported.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

from evloop import SystematicChooser

from ..api import RecordResult, play, record
from ..errors import ReplayError
from .fuzz import ScriptChooser, decisions_of, minimize_decisions
from .seeds import CampaignSpec, SeedOutcome, run_hypothesis_seed
from .signature import failure_signature

__all__ = ["ShrunkFailure", "shrink_and_save", "trace_name"]


@dataclass(frozen=True, slots=True)
class ShrunkFailure:
    """A group's representative, shrunk and saved."""

    signature: str
    #: The failure as the saved trace ends (``"exception: Type: message"``).
    failure: str
    seed: int
    #: Decisions in the saved trace, and how many are not QEMU's own order.
    decisions: int
    non_default: int
    path: Path


def trace_name(scenario: str, signature: str) -> str:
    """``<scenario>/<signature>-<hash>.evr``: one file per scenario and signature."""
    def slug(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:80]

    digest = hashlib.sha256(f"{scenario}\0{signature}".encode()).hexdigest()[:10]
    return f"{slug(scenario)}/{slug(signature)}-{digest}.evr"


def _sim_seed(spec: CampaignSpec, seed: int) -> int:
    return 0 if spec.chooser == "systematic" else seed


def reproduce(spec: CampaignSpec, outcome: SeedOutcome) -> tuple[RecordResult, bytes]:
    """Run ``outcome``'s seed again, here; its result and trace."""
    if spec.chooser == "hypothesis":
        return run_hypothesis_seed(spec, outcome.seed)
    buffer = io.BytesIO()
    chooser: str | SystematicChooser
    if spec.chooser == "systematic":
        chooser = SystematicChooser(list(outcome.script or ()))
    else:
        chooser = f"{spec.chooser}:{outcome.seed}"
    result = record(
        spec.scenario, buffer, chooser=chooser, **spec.common(_sim_seed(spec, outcome.seed))
    )
    return result, buffer.getvalue()


def _signature_of(result: RecordResult) -> str | None:
    return None if result.exception is None else failure_signature(result.exception)


def shrink_and_save(spec: CampaignSpec, outcome: SeedOutcome, directory: Path) -> ShrunkFailure:
    """Reproduce ``outcome`` (a failing seed), shrink it, save and check its trace."""
    signature = outcome.signature
    assert signature is not None
    result, trace = reproduce(spec, outcome)
    here = _signature_of(result)
    if here != signature:
        raise ReplayError(
            f"{spec.scenario}: seed {outcome.seed} failed with {signature} in a worker, but "
            f"{here or 'passed'} when run again here; the scenario leaks nondeterminism "
            "(run `replay check-determinism` on it)"
        )
    common = spec.common(_sim_seed(spec, outcome.seed))
    minimal = minimize_decisions(
        spec.scenario, decisions_of(io.BytesIO(trace)), result.failure or "", common,
        same=lambda trial: _signature_of(trial) == signature,
    )  # fmt: skip
    path = directory / trace_name(spec.scenario, signature)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    chooser = ScriptChooser(minimal)
    with open(partial, "wb") as out:
        saved = record(spec.scenario, out, chooser=chooser, **common)
    if _signature_of(saved) != signature:
        partial.unlink()
        raise ReplayError(
            f"{spec.scenario}: seed {outcome.seed}'s shrunk schedule no longer fails with "
            f"{signature} (this run: {_signature_of(saved) or 'passed'}); the scenario leaks "
            "nondeterminism (run `replay check-determinism` on it)"
        )
    os.replace(partial, path)
    played = play(path)
    if played.bit_exact is not True or played.failure != saved.failure:
        raise ReplayError(f"{path}: the saved trace does not replay to its failure")
    return ShrunkFailure(
        signature, saved.failure or "", outcome.seed, len(chooser.taken),
        sum(1 for c in chooser.taken if c), path,
    )  # fmt: skip
