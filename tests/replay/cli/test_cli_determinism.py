"""``replay check-determinism``: failures by identity, honest lines, cleanup when killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from replay.cli.main import main
from replay.cli.run import _run_line
from replay.tools.determinism import DeterminismRun

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
def test_a_failure_whose_message_follows_the_hash_seed_is_deterministic(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # KeyError(frozenset({"a", "b", "c"})): its text differs between hash seeds.
    code = main(["check-determinism", "tests.scenarios.failing:message_varies", "--runs", "3",
                 "--keep", str(tmp_path)])
    stdout = capsys.readouterr().out
    assert code == 0, stdout
    assert stdout.splitlines()[-1].startswith("deterministic: 3 runs of ")


def test_a_run_whose_dump_failed_shows_no_steps_hash(tmp_path: Path) -> None:
    run = DeterminismRun(0, 1, tmp_path / "a.evr", tmp_path / "a.jsonl", 0, 2,
                         "ab" * 32, "cd" * 32, "", "its trace does not replay")
    assert _run_line(run) == (
        f"run 1 (PYTHONHASHSEED=1): trace {'ab' * 8}, no steps (its dump failed with exit 2)"
    )
    ok = DeterminismRun(0, 1, tmp_path / "a.evr", tmp_path / "a.jsonl", 0, 0,
                        "ab" * 32, "cd" * 32, "", None)
    assert _run_line(ok) == f"run 1 (PYTHONHASHSEED=1): trace {'ab' * 8}, steps {'cd' * 8}"


@pytest.mark.slow
def test_a_killed_check_leaves_no_temporary_directory_and_no_child(tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": str(ROOT)}
    check = subprocess.Popen(
        [sys.executable, "-m", "replay", "check-determinism", "examples.minimachine:scenario",
         "--runs", "20", "--jobs", "2"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 30
    while not any(tmp.glob("replay-determinism-*/*.evr")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert any(tmp.glob("replay-determinism-*")), "the check never started"
    check.send_signal(signal.SIGTERM)
    _, err = check.communicate(timeout=30)
    assert check.returncode == 130, err
    assert err.strip().splitlines()[-1] == "replay: error: interrupted"
    assert list(tmp.iterdir()) == []

