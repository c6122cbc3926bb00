"""``make docs``: the API reference builds from the docstrings and covers what users call."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _modules() -> list[str]:
    makefile = (ROOT / "Makefile").read_text()
    match = re.search(r"^API_MODULES := (.*?)(?<!\\)\n", makefile, re.M | re.S)
    assert match is not None
    return match.group(1).replace("\\\n", " ").split()


@pytest.mark.slow
def test_the_api_reference_builds_and_names_the_public_calls(tmp_path: Path) -> None:
    pytest.importorskip("pdoc", reason="pdoc comes with the docs extra (make installs it)")
    done = subprocess.run(
        [sys.executable, "-m", "pdoc", "--docformat", "restructuredtext", "-o", str(tmp_path),
         *_modules()],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    evloop = (tmp_path / "evloop.html").read_text()
    for name in ("Simulation.fds", "Simulation.peer", "Simulation.event", "Simulation.thread",
                 "Simulation.iothread", "Simulation.sleep", "FdTable.pipe", "FdTable.read",
                 "FdTable.mask", "FifoChooser", "RandomChooser", "PCTChooser",
                 "SystematicChooser"):
        assert f'id="{name}"' in evloop, name
    replay = (tmp_path / "replay.html").read_text()
    for name in ("record", "play", "ReplayDivergence"):
        assert f'id="{name}"' in replay, name
    assert 'id="sim"' in (tmp_path / "replay" / "pytest_plugin.html").read_text()
    assert 'id="simulations"' in (tmp_path / "replay" / "hypothesis.html").read_text()
    assert 'id="RerunResult"' in (tmp_path / "replay" / "tools" / "rerun.html").read_text()
