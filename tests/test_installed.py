"""The README's examples, verbatim, from a fresh install run in an empty directory.

The project is built into a wheel (``pip wheel --no-deps
--no-build-isolation``) and installed into a new virtual environment with
no access to the clone; its runtime dependencies are linked in from this
environment, so nothing is downloaded. Then, from an empty directory, the
README's command-line block runs line by line, the first simulation and the
tutorial's scenario run as written, and the clone's corpus verifies.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")

#: The exit code each README command line ends with, by its first words.
EXPECTED_EXIT = {
    "replay scenarios": 0,
    "replay record replay.examples.minimachine:scenario": 0,
    "replay record replay.examples.minimachine:scenario --chooser": 1,  # the bug, found
    "replay play": 0,
    "replay play bug.evr": 1,  # the recorded failure again, as its recording exited
    "replay dump": 0,
    "replay diff": 1,  # the two runs differ
    "replay stats": 0,
    "replay export": 0,
    "replay verify": 0,
    "replay rerun": 0,  # the clean run does not fail
    "replay check-determinism": 0,
    "replay fuzz": 1,  # a failure found
    "replay minimize": 1,  # the result still fails
}


def _block_after(heading: str, fence: str) -> str:
    """The first fenced block of kind ``fence`` after ``heading`` in the README."""
    start = README.index(heading)
    match = re.compile(rf"```{fence}\n(.*?)```", re.S).search(README, start)
    assert match is not None, heading
    return match.group(1)


def _expected_exit(line: str) -> int:
    best = max((k for k in EXPECTED_EXIT if line.startswith(k)), key=len)
    return EXPECTED_EXIT[best]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the project's wheel installed; returns its bin directory."""
    base = tmp_path_factory.mktemp("installed")
    py = sys.executable
    subprocess.run(
        [py, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(base / "wheel"), str(ROOT)],
        check=True, capture_output=True, cwd=base,
    )
    subprocess.run([py, "-m", "venv", "--without-pip", str(base / "venv")], check=True)
    venv_py = base / "venv" / "bin" / "python"
    wheels = list((base / "wheel").glob("evreplay-*.whl"))
    assert len(wheels) == 1, wheels
    subprocess.run(
        [py, "-m", "pip", "--python", str(venv_py), "install", "--no-deps", "-q", str(wheels[0])],
        check=True, capture_output=True, cwd=base,
    )
    # The runtime dependencies, linked from this environment (no download).
    deps = base / "deps"
    deps.mkdir()
    import greenlet
    import msgpack
    import tqdm

    for module in (msgpack, greenlet, tqdm):
        source = Path(module.__file__ or "").parent
        (deps / source.name).symlink_to(source)
    purelib = subprocess.run(
        [str(venv_py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    (Path(purelib) / "evreplay-test-deps.pth").write_text(f"{deps}\n")
    assert sysconfig.get_paths()["purelib"] != purelib
    return base / "venv" / "bin"


def _run(bin_dir: Path, cwd: Path, argv: list[str]) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{bin_dir}{os.pathsep}/usr/bin:/bin", "HOME": str(cwd), "LANG": "C.UTF-8"}
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_the_package_is_the_installed_one_not_the_clone(installed: Path, tmp_path: Path) -> None:
    done = _run(installed, tmp_path, ["python", "-c", "import replay; print(replay.__file__)"])
    assert done.returncode == 0, done.stderr
    assert not done.stdout.strip().startswith(str(ROOT))
    assert _run(installed, tmp_path, ["replay", "--version"]).stdout.startswith("replay (evreplay)")


@pytest.mark.slow
def test_the_readme_command_line_runs_verbatim_in_an_empty_directory(
    installed: Path, tmp_path: Path
) -> None:
    block = _block_after("## Command line", "sh")
    lines = [line.split("#")[0].strip() for line in block.splitlines()]
    commands = [line for line in lines if line]
    assert len(commands) >= 14
    for line in commands:
        done = _run(installed, tmp_path, shlex.split(line))
        assert done.returncode == _expected_exit(line), (line, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, (line, done.stderr)
    assert (tmp_path / "traces" / "minimachine-scenario-seed0.evr").is_file()
    assert (tmp_path / "bug.json").is_file() and (tmp_path / "bug.min.evr").is_file()


@pytest.mark.slow
def test_the_first_simulation_prints_what_the_readme_says(installed: Path, tmp_path: Path) -> None:
    code = _block_after("## A first simulation", "python")
    expected = re.search(r"# (StopReason\.IDLE \[.*\])", code)
    assert expected is not None
    done = _run(installed, tmp_path, ["python", "-c", code])
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == expected.group(1)
    assert "hello from io0" in done.stdout


@pytest.mark.slow
def test_the_tutorial_scenario_records_and_replays(installed: Path, tmp_path: Path) -> None:
    scenario = _block_after("**1. Write a scenario.**", "python")
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    (tmp_path / "mypkg" / "counter.py").write_text(scenario)
    snippet = _block_after("**2. Record it, and replay it.**", "python")
    program = "import sys; sys.path.insert(0, '.')\n" + "\n".join(
        f"print({line.split('#')[0].strip()})" if not line.startswith("from ") else line
        for line in snippet.splitlines() if line.strip()
    )
    done = _run(installed, tmp_path, ["python", "-c", program])
    assert done.returncode == 0, done.stderr
    recorded, played = done.stdout.splitlines()
    assert recorded.startswith("RecordResult(") and "failure=None" in recorded
    assert played == "True"


@pytest.mark.slow
def test_the_clones_corpus_verifies_and_reruns_with_the_installed_package(
    installed: Path, tmp_path: Path
) -> None:
    done = _run(installed, tmp_path, ["replay", "verify", str(ROOT / "traces")])
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1].endswith(" ok, 0 diverged, 0 bad")
    done = _run(installed, tmp_path, ["replay", "rerun", str(ROOT / "traces")])
    assert done.returncode == 1  # the corpus keeps the unfixed bug's trace
    assert done.stdout.splitlines()[-1].endswith(" fail, 0 bad")
