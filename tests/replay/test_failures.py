"""A failure is identified by its exception type and where it was raised, not its message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from replay import ReplayDivergence, play, record
from replay.failures import describe_exception, failure_identity, raise_site, same_failure
from tests.scenarios import failing

SCENARIO = "tests.scenarios.failing:message_varies"


def _raised(exc: Exception) -> Exception:
    try:
        raise exc
    except Exception as caught:
        return caught


def test_a_description_names_the_type_and_where_it_was_raised() -> None:
    exc = _raised(KeyError("k"))
    site = raise_site(exc)
    assert site is not None and site.startswith("test_failures.py:")
    assert describe_exception(exc) == "exception: KeyError: 'k'"
    assert describe_exception(exc, site=True) == f"exception: KeyError at {site}: 'k'"
    assert failure_identity(describe_exception(exc, site=True)) == ("KeyError", site)
    assert failure_identity("exception: KeyError: 'k'") == ("KeyError", None)
    assert failure_identity("deadlock") is None


def test_failures_are_the_same_by_type_and_site_whatever_their_messages() -> None:
    assert same_failure("exception: KeyError: frozenset({'a', 'b'})",
                        "exception: KeyError: frozenset({'b', 'a'})")
    assert same_failure("exception: KeyError at m.py:3: x", "exception: KeyError at m.py:3: y")
    assert same_failure("exception: KeyError: x", "exception: KeyError at m.py:3: y")
    assert not same_failure("exception: KeyError: x", "exception: ValueError: x")
    assert not same_failure("exception: KeyError at m.py:3: x", "exception: KeyError at m.py:4: x")
    assert not same_failure("deadlock", "deadlock!")
    assert same_failure("deadlock", "deadlock")


@pytest.fixture
def restore_failing() -> object:
    yield None
    failing.MESSAGE[0] = "first"
    failing.ERROR[0] = KeyError


def test_a_failure_whose_message_changed_replays_bit_exactly(
    tmp_path: Path, restore_failing: object
) -> None:
    path = tmp_path / "t.evr"
    recorded = record(SCENARIO, path)
    assert recorded.failure is not None and "first" in recorded.failure
    failing.MESSAGE[0] = "second"
    played = play(path)
    assert played.bit_exact is True
    assert played.failure is not None and "second" in played.failure


def test_a_failure_of_another_type_is_a_divergence(
    tmp_path: Path, restore_failing: object
) -> None:
    path = tmp_path / "t.evr"
    recorded = record(SCENARIO, path)
    failing.ERROR[0] = LookupError
    with pytest.raises(ReplayDivergence) as info:
        play(path)
    assert info.value.expected == f"SHUTDOWN(step=1, cause={recorded.failure!r})"
    assert str(info.value.actual).startswith("the run ended at step 1: exception: LookupError: ")


@pytest.mark.slow
def test_a_set_in_the_message_replays_under_every_hash_seed(tmp_path: Path) -> None:
    path = tmp_path / "t.evr"
    record(SCENARIO, path)
    for seed in ("1", "2", "3", "4"):
        done = subprocess.run(
            [sys.executable, "-m", "replay", "play", str(path),
             "--scenario", SCENARIO],
            capture_output=True, text=True, check=False,
            env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"}, cwd=Path.cwd(),
        )
        assert done.returncode == 1, done.stdout + done.stderr  # the recorded failure, again
        assert "replays to the same failure: exception: KeyError: " in done.stdout
