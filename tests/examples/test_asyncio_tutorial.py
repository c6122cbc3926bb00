"""The README's asyncio tutorial, run as written: every command and its output, and its tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def _section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Tutorial: an asyncio service")
    return text[start : text.index("\n## ", start + 1)]


def _sessions() -> list[tuple[str, list[str]]]:
    """Every ``$ command`` of the section's console blocks, with the lines it prints."""
    sessions: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```console\n(.*?)```", _section(), re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                sessions.append((line[2:], []))
            else:
                sessions[-1][1].append(line)
    return sessions


def _matches(expected: list[str], actual: list[str]) -> bool:
    """``expected`` equals ``actual``, a ``...`` line standing for any lines."""
    if not expected:
        return not actual
    if expected[0] == "...":
        return any(_matches(expected[1:], actual[i:]) for i in range(len(actual) + 1))
    return (
        bool(actual) and _same(expected[0], actual[0]) and _matches(expected[1:], actual[1:])
    )


def _same(expected: str, actual: str) -> bool:
    """One line as the README shows it: a dump header names the Python that recorded the
    trace, which is the reader's own (the README shows 3.11)."""
    return _PYTHON.sub("python 3.x", expected) == _PYTHON.sub("python 3.x", actual)


_PYTHON = re.compile(r"\bpython 3\.\d+$")


def _env() -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PYTHONPATH": str(ROOT),
            "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}


def test_the_tutorial_has_its_commands() -> None:
    commands = [command for command, _ in _sessions()]
    assert commands[:3] == [
        "replay record replay.examples.cache_service:main -o cache.evr",
        "replay play cache.evr",
        "replay fuzz replay.examples.cache_service:main --runs 100 -o stale-set.evr",
    ]
    assert "replay rerun stale-set.evr" in commands
    assert _matches(["a", "...", "d"], ["a", "b", "c", "d"])
    assert not _matches(["a", "...", "d"], ["a", "b", "c"])
    assert _matches(["# t.evr: ...; format 3, evreplay 0.1.0, python 3.11"],
                    ["# t.evr: ...; format 3, evreplay 0.1.0, python 3.13"])
    assert not _matches(["# t.evr: ...; format 3, evreplay 0.1.0, python 3.11"],
                        ["# t.evr: ...; format 2, evreplay 0.1.0, python 3.13"])


@pytest.mark.slow
def test_every_tutorial_command_prints_what_the_readme_shows(tmp_path: Path) -> None:
    if not (Path(sys.executable).parent / "replay").exists():
        pytest.skip("the replay console script is not installed beside this interpreter")
    for command, expected in _sessions():
        done = subprocess.run(command.split(), cwd=tmp_path, env=_env(), capture_output=True,
                              text=True, timeout=300, check=False)
        assert done.returncode in (0, 1), f"{command}: {done.stderr}"
        assert "Traceback" not in done.stderr, f"{command}: {done.stderr}"
        assert _matches(expected, done.stdout.splitlines()), (
            f"{command} printed:\n{done.stdout}\nthe README shows:\n" + "\n".join(expected)
        )
    # A fuzz that finds the bug exits 1, and so does a rerun where it recurs.
    assert (tmp_path / "stale-set.evr").is_file()


@pytest.mark.slow
def test_the_tutorials_tests_pass_with_pytest_asyncio_beside(tmp_path: Path) -> None:
    code = re.search(r"```python\n(# test_cache_service.py\n.*?)```", _section(), re.S)
    assert code is not None
    (tmp_path / "test_cache_service.py").write_text(code.group(1), encoding="utf-8")
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\nfilterwarnings =\n    error\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=tmp_path,
        env=_env(), capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout
