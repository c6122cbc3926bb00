"""``replay verify``: replay every trace under a folder and say which still play."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from ..api import PlayResult, play
from ..errors import ReplayDivergence, ReplayError
from ..trace.reader import TraceReader
from .events import format_ns

__all__ = ["Outcome", "VerifyResult", "find_traces", "verify_trace"]

# -- verify ------------------------------------------------------------------------------


class Outcome(Enum):
    OK = "ok"  #: reads strictly and replays bit-exactly
    DIVERGED = "diverged"  #: the replay departs from the trace
    BAD = "bad"  #: not a whole, valid trace, or its scenario cannot be loaded


@dataclass(frozen=True, slots=True)
class VerifyResult:
    path: Path
    outcome: Outcome
    message: str
    play: PlayResult | None = None


def find_traces(root: str | Path) -> list[Path]:
    """Every ``*.evr`` file under ``root`` (or ``root`` itself), sorted."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(2, "No such file or directory", str(root))
    return sorted(p for p in root.rglob("*.evr") if p.is_file())


def verify_trace(path: str | Path) -> VerifyResult:
    """Read ``path`` strictly (a truncated trace is bad), replay it, check bit-exactness."""
    path = Path(path)
    try:
        with TraceReader(path) as reader:
            for _ in reader:
                pass
        result = play(path)
    except ReplayDivergence as exc:
        return VerifyResult(path, Outcome.DIVERGED, str(exc).splitlines()[0])
    except (ReplayError, OSError) as exc:
        return VerifyResult(path, Outcome.BAD, _one_line(exc))
    except Exception as exc:  # a scenario that cannot even be set up is this trace's problem
        return VerifyResult(path, Outcome.BAD, f"{type(exc).__name__}: {_one_line(exc)}")
    if not result.bit_exact:
        return VerifyResult(
            path, Outcome.DIVERGED, "replays, but re-records different bytes (not bit-exact)",
            result,
        )
    text = f"{result.steps} steps, {format_ns(result.time_ns)} virtual, bit-exact"
    if result.failure is not None:
        text += f", replays to the same failure: {result.failure}"
    return VerifyResult(path, Outcome.OK, text, result)


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror}"
    lines = str(exc).splitlines()
    return lines[0] if lines else type(exc).__name__
