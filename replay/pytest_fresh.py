"""``@pytest.mark.deterministic(runs=N, processes=True)``: every run in a fresh process.

Runs in one process share one ``PYTHONHASHSEED`` and one heap: a set of
strings iterates in the same order in all of them, so a test whose schedule
follows such an order passes ``@pytest.mark.deterministic`` and still differs
on the next machine. This mode does what ``replay check-determinism`` does
for a scenario: run ``i`` (0-based) is the test alone in a fresh
``python -m pytest NODEID`` child with ``PYTHONHASHSEED=i`` and its heap
shifted by ``i`` (``replay/tools/heapshift.py``). Rules it keeps:

* **The child runs the test once** with the step log on, and writes what the
  run did (each step's description, the digest, the virtual time, or the
  failure) to the JSON file ``$EVREPLAY_DETERMINISTIC_OUT`` names; the
  parent compares every run with the first, step by step, and fails at the
  first step that differs, naming both hash seeds.
* **The child is the parent's pytest, minus what would change the run**: the
  same rootdir and configuration file, no cache, no xdist, no other test.
* **A run that fails in its child fails the test** with the child's failure;
  a child that never got to run the test (a collection error, a crash) fails
  it with the child's last lines, never silently.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from evloop import Simulation

__all__ = ["CHILD_ENV", "run_difference", "run_in_processes", "write_child_result"]

#: Set in a child: where it writes its run (the parent reads it).
CHILD_ENV = "EVREPLAY_DETERMINISTIC_OUT"
#: How many of a child's last output lines a failure shows.
TAIL_LINES = 15


def _child_command(item: pytest.Item) -> list[str]:
    config = item.config
    command = [
        sys.executable, "-m", "pytest", item.nodeid, "-q", "-p", "no:cacheprovider",
        "-p", "no:xdist", "--rootdir", str(config.rootpath),
    ]
    if config.inipath is not None:
        command += ["-c", str(config.inipath)]
    return command


def _child_env(index: int, out: Path) -> dict[str, str]:
    from replay.tools.heapshift import HEAP_SHIFT_ENV

    env = {
        key: value for key, value in os.environ.items()
        if key not in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_TESTRUNUID", "PYTEST_CURRENT_TEST")
    }
    env.update({"PYTHONHASHSEED": str(index), HEAP_SHIFT_ENV: str(index), CHILD_ENV: str(out)})
    return env


def _run_child(item: pytest.Item, index: int, workdir: Path) -> dict[str, Any]:
    out = workdir / f"run{index}.json"
    done = subprocess.run(
        _child_command(item), cwd=item.config.rootpath, env=_child_env(index, out),
        capture_output=True, text=True, check=False,
    )
    label = f"run {index + 1} (PYTHONHASHSEED={index}, a fresh process)"
    if not out.is_file():
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-TAIL_LINES:])
        pytest.fail(f"{label} did not run the test (pytest exited {done.returncode}):\n{tail}",
                    pytrace=False)
    result: dict[str, Any] = json.loads(out.read_text())
    if result.get("failure") is not None:
        pytest.fail(f"{label} failed: {result['failure']}", pytrace=False)
    return result


def run_in_processes(item: pytest.Item, runs: int) -> None:
    """The parent: run ``item`` in ``runs`` fresh processes and compare them with the first."""
    with tempfile.TemporaryDirectory(prefix="evreplay-deterministic-") as tmp:
        first = _run_child(item, 0, Path(tmp))
        for index in range(1, runs):
            other = _run_child(item, index, Path(tmp))
            difference = run_difference(
                first["steps"], other["steps"],
                ((first["digest"], first["time_ns"]), (other["digest"], other["time_ns"])),
                index + 1,
            )
            if difference is not None:
                pytest.fail(
                    f"@pytest.mark.deterministic(runs={runs}, processes=True): run {index + 1} "
                    f"(PYTHONHASHSEED={index}) differs from run 1 (PYTHONHASHSEED=0) "
                    f"{difference}",
                    pytrace=False,
                )


def run_difference(
    a: Sequence[object], b: Sequence[object], ends: tuple[tuple[int, int], tuple[int, int]],
    k: int,
) -> str | None:
    """Where run ``k`` parts from run 1; None when they are the same.

    ``a`` and ``b`` are the runs' steps, one description each (the step log's
    events, in this process or as a child wrote them); ``ends`` their
    ``(digest, virtual time)`` at the end. Used by both forms of
    ``@pytest.mark.deterministic``.
    """
    for i, (sa, sb) in enumerate(zip(a, b, strict=False)):
        if sa != sb:
            return f"at step {i + 1}:\n  run 1: {sa}\n  run {k}: {sb}"
    if len(a) != len(b):
        n = min(len(a), len(b))
        ended, went_on, step = (1, k, b[n]) if len(a) < len(b) else (k, 1, a[n])
        return f"at step {n + 1}: run {ended} ended after {n} steps\n  run {went_on}: {step}"
    (digest_a, time_a), (digest_b, time_b) = ends
    if digest_a != digest_b:
        return (
            f"although every step has the same description: digest {digest_a:#018x} != "
            f"{digest_b:#018x} after {len(a)} steps (different callbacks or objects with the "
            "same names)"
        )
    if time_a != time_b:
        return f"at the end: virtual time {time_a} ns != {time_b} ns after {len(a)} steps"
    return None


def write_child_result(path: str, sim: Simulation, failure: BaseException | None) -> None:
    """The child: what its run did, for the parent."""
    described = None if failure is None else f"{type(failure).__name__}: {failure}"
    result = {
        "steps": [repr(event) for event in sim.log or []],
        "digest": sim.digest,
        "time_ns": sim.now_ns,
        "failure": described,
    }
    Path(path).write_text(json.dumps(result))
