"""Every example in every command's ``--help`` runs as written, in an empty directory.

The examples build on each other as a reader would type them: ``record``'s
make ``traces/minimachine-scenario-seed0.evr`` and ``bug.evr``, which the
other commands' examples read. Each must do its job: exit 0 or 1 (a finding),
never a usage error, a bad input or a divergence, and no traceback.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from replay.cli.main import build_parser, main

#: The order a reader follows: what records comes before what reads.
ORDER = ("record", "play", "dump", "diff", "stats", "export", "verify", "rerun", "scenarios",
         "minimize", "fuzz", "campaign", "check-determinism")


def examples(command: str) -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    epilog = sub.choices[command].epilog  # type: ignore[union-attr]
    return [line.strip() for line in epilog.splitlines() if line.startswith("  replay ")]


def test_every_command_has_examples_and_all_are_run_here() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == set(ORDER)  # type: ignore[arg-type]
    assert all(examples(command) for command in ORDER)


@pytest.mark.slow
def test_every_help_example_works_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    for command in ORDER:
        for line in examples(command):
            argv = shlex.split(line)[1:]
            code = main(argv)
            err = capsys.readouterr().err
            assert code in (0, 1), (line, code, err)
            assert "error:" not in err and "Traceback" not in err, (line, err)
    for made in ("traces/minimachine-scenario-seed0.evr", "bug.evr", "five.evr", "short.evr",
                 "plain.evr", "bug.json", "bug.min.evr", "found.evr", "corpus/index.json"):
        assert (tmp_path / made).is_file(), made
    assert (tmp_path / "out").is_dir()  # check-determinism --keep out/
