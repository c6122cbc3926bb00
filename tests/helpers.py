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


# -- trace bytes -------------------------------------------------------------------------


def chunk_spans(data: bytes) -> list[tuple[int, int, int]]:
    """(offset, payload length, record count) of every chunk of a trace's bytes."""
    from replay.trace.format import CHUNK_HEADER, CHUNK_HEADER_SIZE, MAGIC

    spans, offset = [], len(MAGIC)
    while offset + CHUNK_HEADER_SIZE <= len(data):
        length, count, _ = CHUNK_HEADER.unpack_from(data, offset)
        spans.append((offset, length, count))
        offset += CHUNK_HEADER_SIZE + length
    return spans


def reframe(data: bytes, *, rechain: bool = False) -> bytes:
    """``data`` with every chunk's CRC made right again, and its CHAIN too if ``rechain``.

    What a forger who patched bytes would do: the CRC alone (``rechain=False``)
    is what a generic tool recomputes; ``rechain=True`` is someone who also
    follows this format's chain rule (docs/trace-format.md, section 1).
    """
    import hashlib
    import zlib

    from replay.trace.format import (
        CHAIN_PREFIX,
        CHAIN_RECORD_SIZE,
        CHUNK_HEADER_SIZE,
        LENGTH_AND_COUNT,
        MAGIC,
    )

    out = bytearray(MAGIC)
    chain: Any = None
    for index, (offset, length, count) in enumerate(chunk_spans(data)):
        payload = bytearray(data[offset + CHUNK_HEADER_SIZE : offset + CHUNK_HEADER_SIZE + length])
        if index == 0:
            chain = hashlib.sha256(bytes(payload))
        elif rechain and payload[-CHAIN_RECORD_SIZE:].startswith(CHAIN_PREFIX):
            body = payload[:-CHAIN_RECORD_SIZE]
            chain.update(bytes(body))
            payload = body + CHAIN_PREFIX + chain.digest()
        lengths = LENGTH_AND_COUNT.pack(len(payload), count)
        crc = zlib.crc32(bytes(payload), zlib.crc32(lengths))
        out += lengths + crc.to_bytes(4, "little") + payload
    return bytes(out)
