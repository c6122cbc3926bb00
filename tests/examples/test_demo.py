"""``make demo`` runs end to end and leaves the tracked tree as it found it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_demo_succeeds_and_writes_only_under_out() -> None:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    before = {p: p.read_bytes() for p in (ROOT / "traces").glob("*.evr")}
    done = subprocess.run([sys.executable, "examples/demo.py"], cwd=ROOT, capture_output=True,
                          text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "saved -> out/traces/minimachine-blk-reset-race.evr" in done.stdout
    assert "shrunk to 1 non-FIFO decision(s) out of 9 -> out/traces/cache_service-stale-set.evr" \
        in done.stdout  # the asyncio story: the stale-cache race found and shrunk
    assert "the fix: all 768 schedules up to 2 preemptions explored, no failure" in done.stdout
    assert {p: p.read_bytes() for p in (ROOT / "traces").glob("*.evr")} == before
    assert (ROOT / "out" / "traces" / "minimachine-clean.evr").is_file()
    # The commands it suggests next write under out/ too: traces/ is the corpus CI replays.
    suggested = done.stdout.split("Next:\n", 1)[1].splitlines()
    writing = [line for line in suggested if " fuzz " in line or " record " in line]
    assert len(writing) == 4
    assert all(" -o out/traces/" in line for line in writing), writing
