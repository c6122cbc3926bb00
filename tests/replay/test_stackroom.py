"""A RecursionError is the program's, at the same step in record and play (replay/stackroom.py)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from replay import play, record
from replay.cli.main import main
from replay.stackroom import DOOR_ROOM, depth, restore, roomy, run_stack

NESTED = "tests.scenarios.failing:nested_polls"
FAILURE = "exception: RecursionError: maximum recursion depth exceeded"  # then where: varies
T = TypeVar("T")


def _at_depth(extra: int, fn: Callable[[], T]) -> T:
    """``fn()`` called ``extra`` frames deeper than here."""
    return fn() if extra == 0 else _at_depth(extra - 1, fn)


def test_nested_polls_fail_at_the_same_step_whatever_the_callers_depth(tmp_path: Path) -> None:
    shallow = record(NESTED, tmp_path / "a.evr")
    deep = _at_depth(150, lambda: record(NESTED, tmp_path / "b.evr"))
    assert shallow.failure is not None and shallow.failure.startswith(FAILURE)
    assert deep.failure == shallow.failure
    assert shallow.steps == deep.steps
    assert (tmp_path / "a.evr").read_bytes() == (tmp_path / "b.evr").read_bytes()
    for played in (play(tmp_path / "a.evr"), _at_depth(90, lambda: play(tmp_path / "a.evr"))):
        assert (played.failure, played.steps, played.bit_exact) == (
            shallow.failure, shallow.steps, True
        )


def test_the_command_line_replays_the_recursion_error_bit_exactly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "t.evr"
    assert main(["record", NESTED, "-o", str(path)]) == 1
    assert f"FAILED: {FAILURE}" in capsys.readouterr().out
    assert main(["play", str(path), "--scenario", NESTED]) == 1
    out = capsys.readouterr().out
    assert f"replays to the same failure: {FAILURE}" in out and "bit-exact" in out


def test_depth_counts_the_frames_of_this_thread() -> None:
    here = depth()
    assert _at_depth(5, depth) == here + 6  # five more calls, and _at_depth's last


def _recurse(n: int) -> int:
    return 0 if n == 0 else 1 + _recurse(n - 1)


def _true_depth() -> int:
    """The caller's recursion depth, as the interpreter counts it (one thread only: a test)."""
    limit = sys.getrecursionlimit()
    n = depth()
    while True:
        try:
            sys.setrecursionlimit(n)
        except RecursionError:
            n += 1
        else:
            sys.setrecursionlimit(limit)
            return n - 2  # this frame is at n - 1


def test_a_run_has_as_much_stack_as_a_fresh_program_wherever_it_starts() -> None:
    limit = sys.getrecursionlimit()
    fresh = limit - 60  # what a program started anew could recurse, give or take its frames

    def run() -> int:
        with run_stack():
            return _recurse(fresh)

    with pytest.raises(RecursionError):
        _at_depth(200, lambda: _recurse(fresh))
    assert _at_depth(200, run) == fresh
    assert sys.getrecursionlimit() == limit


def test_a_door_has_room_beyond_the_limit() -> None:
    left = sys.getrecursionlimit() - _true_depth()
    with pytest.raises(RecursionError):
        _recurse(left + DOOR_ROOM // 2)
    assert roomy(_recurse)(left + DOOR_ROOM // 2) == left + DOOR_ROOM // 2


def _restore_from_here(limit: int) -> str | None:
    try:
        restore(limit)
    except RecursionError as exc:
        return str(exc)
    return None


def test_a_door_entered_at_the_limit_raises_the_recursion_error_the_next_call_would() -> None:
    limit = sys.getrecursionlimit()
    here = _true_depth()
    try:
        sys.setrecursionlimit(here + 10)
        # _restore_from_here runs at here + 1, restore at here + 2.
        fine = _restore_from_here(here + 3)
        fine_limit = sys.getrecursionlimit()
        sys.setrecursionlimit(here + 10)
        at_limit = _restore_from_here(here + 2)
    finally:
        sys.setrecursionlimit(limit)
    assert (fine, fine_limit) == (None, here + 3)
    assert at_limit == "maximum recursion depth exceeded"
