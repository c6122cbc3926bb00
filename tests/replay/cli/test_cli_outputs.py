"""Outputs are checked before long work, and a found failure is never lost."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest

from replay.cli.main import main
from replay.explore.fuzz import fuzz

ROOT = Path(__file__).resolve().parents[3]
MACHINE = "examples.minimachine:scenario"
CLEAN = ROOT / "traces" / "minimachine-clean.evr"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", [
    ["fuzz", MACHINE, "--runs", "100000"],
    ["record", MACHINE],
    ["export", str(CLEAN)],
])
def test_an_output_in_a_missing_directory_is_refused_before_any_work(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "nowhere" / "x.out"
    code, stdout, err = run([*command, "-o", str(out)], capsys)
    assert (code, stdout) == (2, "")
    assert err == f"replay: error: -o {out}: no such directory: '{out.parent}'\n"
    assert not out.parent.exists()


def test_an_output_under_a_file_or_on_a_directory_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("")
    out = tmp_path / "file" / "x.evr"
    code, _, err = run(["fuzz", MACHINE, "-o", str(out)], capsys)
    assert code == 2
    assert err == f"replay: error: -o {out}: not a directory: '{out.parent}'\n"
    code, _, err = run(["record", MACHINE, "-o", str(tmp_path)], capsys)
    assert (code, err) == (2, f"replay: error: -o {tmp_path}: is a directory\n")


def test_a_failure_found_is_kept_in_a_temporary_file_when_its_output_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spare = tmp_path / "tmp"
    spare.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spare))
    (tmp_path / "file").write_text("")
    result = fuzz(MACHINE, runs=200, chooser="random", output=tmp_path / "file" / "bug.evr")
    assert result.found
    assert result.save_error == f"File exists: {tmp_path / 'file'}"
    assert result.trace_path is not None and result.trace_path.parent == spare
    assert result.trace_path.name.startswith("replay-failure-")
    assert main(["play", str(result.trace_path)]) == 1  # the kept failure, replayed


def test_export_writes_with_the_usual_mode_and_no_temporary_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "clean.json"
    old = os.umask(0o022)
    try:
        code, stdout, _ = run(["export", str(CLEAN), "-o", str(out)], capsys)
    finally:
        os.umask(old)
    assert code == 0, stdout
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean.json"]
