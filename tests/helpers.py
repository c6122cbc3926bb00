"""Helpers shared by the test suite: small fakes and drivers, never mocks.

In the spirit of h11's ``ConnectionPair``, which pushes events through two real
peers over a fake link, these drive the real objects end to end and hand back
what happened: :func:`record_and_play` records a scenario and plays the trace
back, :func:`assert_same_run` says the two ends agree, :func:`json_from_child`
runs code in a fresh interpreter under a chosen ``PYTHONHASHSEED``.

Fixtures shared by every test (the OS-thread leak guard) live in
``tests/conftest.py``; hypothesis strategies in ``tests/strategies.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evloop import AioContext, FdTable, VirtualClock
from replay import PlayResult, RecordResult, TraceReader, play, record

#: The repository's root: the working directory of child interpreters.
ROOT = Path(__file__).resolve().parents[1]


class Boom(Exception):
    """The error a test's callback, thread or scenario raises on purpose."""


# -- evloop ------------------------------------------------------------------------------


def new_ctx(clock: VirtualClock | None = None) -> AioContext:
    """A bare ``AioContext`` on its own virtual clock and fd table."""
    return AioContext(clock if clock is not None else VirtualClock(), FdTable())


def appender(log: list[str], what: str) -> Callable[[], None]:
    """A callback that appends ``what`` to ``log``."""
    return lambda: log.append(what)


# -- replay ------------------------------------------------------------------------------


def records_of(path: Path) -> list[tuple[Any, ...]]:
    """Every record after the header of a complete trace (END not included)."""
    with TraceReader(path) as reader:
        out = list(reader)
        assert reader.complete
    return out


def record_and_play(spec: str, path: Path, **kwargs: Any) -> tuple[RecordResult, PlayResult]:
    """Record ``spec`` into ``path`` with ``kwargs``, then play that trace."""
    recorded = record(spec, path, **kwargs)
    played = play(path)
    return recorded, played


def assert_same_run(recorded: RecordResult, played: PlayResult) -> None:
    """The play was bit-exact, read the whole trace and ended as the recording did."""
    assert played.bit_exact is True
    assert played.complete is True
    assert played.truncated_at is None
    assert (played.steps, played.time_ns, played.reason, played.failure, played.digest) == (
        recorded.steps,
        recorded.time_ns,
        recorded.reason,
        recorded.failure,
        recorded.digest,
    )


# -- child interpreters ------------------------------------------------------------------


def json_from_child(code: str, *args: str, hash_seed: int, timeout: float = 120) -> Any:
    """Run ``python -c code args`` from the root under ``PYTHONHASHSEED=hash_seed``;
    it must exit 0, and what it prints is read as one JSON document."""
    env = dict(os.environ, PYTHONHASHSEED=str(hash_seed))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
