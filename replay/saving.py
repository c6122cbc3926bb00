"""Where saved failure traces go and what they are called: one place for every saver.

The pytest ``sim`` fixture (``--evreplay-save-traces``) and the hypothesis
integration (:func:`replay.hypothesis.simulations` and
:func:`replay.hypothesis.run_with`) both save the trace of a failing test, and
both use what this module says:

* **One directory.** The directory pytest was given (``--evreplay-save-traces``
  or the ini key ``evreplay_save_traces``; the plugin records it here when the
  session starts), else :data:`DEFAULT_SAVE_DIR`, relative to the working
  directory. A hypothesis saver given its own ``failure_dir`` uses that.
* **One name.** ``[WORKER-]NODEID-DIGEST.evr``: the pytest-xdist worker id
  (``gw0``...) first, so workers never collide; the test's node id sanitised
  to ``[A-Za-z0-9_.-]`` and shortened with a hash of the whole id when long;
  the run's digest. Both come from the environment or the test, never from a
  trace, and are one path component each.
* **Never overwritten.** A file is created exclusively; a name taken already
  gets a numbered suffix (``-2``, ``-3``...).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

__all__ = [
    "DEFAULT_SAVE_DIR",
    "current_test_id",
    "save_dir",
    "save_trace",
    "set_session_dir",
    "trace_stem",
]

#: Where failing traces go when pytest was given no directory.
DEFAULT_SAVE_DIR = "traces/failures"
#: The longest node id kept whole in a trace's file name.
MAX_NAME = 120

_session_dir: Path | None = None


def set_session_dir(directory: Path | None) -> None:
    """The pytest session's save directory (the plugin calls this; None: not configured)."""
    global _session_dir
    _session_dir = directory


def save_dir() -> Path:
    """The directory failing traces are saved in (see the module's rules)."""
    return _session_dir if _session_dir is not None else Path(DEFAULT_SAVE_DIR)


def current_test_id() -> str:
    """The running pytest test's node id (``PYTEST_CURRENT_TEST``), or ``hypothesis``."""
    current = os.environ.get("PYTEST_CURRENT_TEST", "")
    return current.rsplit(" ", 1)[0] if current else "hypothesis"


def trace_stem(nodeid: str, digest: int, worker: str | None) -> str:
    """The file name (without ``.evr``) of a trace saved from test ``nodeid``."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_.") or "test"
    if len(name) > MAX_NAME:
        tag = hashlib.sha256(nodeid.encode()).hexdigest()[:8]
        name = f"{name[: MAX_NAME - 9]}_{tag}"
    # The worker id comes from the environment: one name component, never a path.
    worker = re.sub(r"[^A-Za-z0-9_.-]+", "_", worker or "").strip("_.")
    prefix = f"{worker}-" if worker else ""
    return f"{prefix}{name}-{digest:016x}"


def save_trace(data: bytes, directory: Path, nodeid: str, digest: int) -> Path:
    """Write ``data`` under ``directory`` by the naming rule, never over a file; the path."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = trace_stem(nodeid, digest, os.environ.get("PYTEST_XDIST_WORKER"))
    for n in range(1, 1000):
        path = directory / (f"{stem}.evr" if n == 1 else f"{stem}-{n}.evr")
        try:
            with open(path, "xb") as f:
                f.write(data)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"{directory / stem}.evr and 998 numbered variants exist")
