"""A divergence is reported at the first step that departed, not where it was noticed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import tests.scenarios.divergent as divergent
from replay import ReplayDivergence, play, record
from replay.errors import ReplayDivergence as Divergence

SKIPPING = "tests.scenarios.divergent:skipping"


@pytest.fixture
def restore() -> Iterator[None]:
    yield
    divergent.SKIP_AT = None


def test_a_skipped_event_is_reported_at_the_step_it_was_due(
    tmp_path: Path, restore: None
) -> None:
    path = tmp_path / "t.evr"
    record(SKIPPING, path)
    recorded_steps = list(divergent.TICK_STEPS)
    divergent.SKIP_AT = 3
    with pytest.raises(ReplayDivergence) as info:
        play(path)
    div = info.value
    due = recorded_steps[3]
    # The draw of tick 3 was due after its step; the run went on to tick 4's draw.
    assert div.step == due
    assert div.noticed_step == recorded_steps[4]
    assert str(div.expected).startswith(f"RANDOM(step={due}, value=0x")
    assert div.actual.startswith(f"a random draw at step {recorded_steps[4]} of 0x")
    # The steps shown are those before the departure, from a replay stopped there.
    assert div.recent and div.recent[-1].step == due  # type: ignore[attr-defined]
    assert div.recent[-1].name == "tick"  # type: ignore[attr-defined]
    assert (
        f"  departed: at step {due}, where the trace's event was due; the run went on "
        f"without it and was stopped at step {recorded_steps[4]}"
    ) in str(div)


def test_a_digest_that_differs_names_the_last_checkpoint_that_matched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "t.evr"
    record("tests.scenarios.divergent:scenario", path, checkpoint_interval=4)
    monkeypatch.setattr(divergent, "scenario", divergent.changed)
    with pytest.raises(ReplayDivergence) as info:
        play(path)
    div = info.value
    assert div.noticed_step is None
    assert div.last_good_step is not None and div.last_good_step < div.step
    assert div.step - div.last_good_step <= 4
    assert (
        f"  departed: at a step after {div.last_good_step} (the last checkpoint that matched) "
        f"and up to {div.step}"
    ) in str(div)


def test_the_divergence_pickles_with_its_departure() -> None:
    import pickle

    div = Divergence(7, 2, "a", "b", 5, "main", (), noticed_step=9, last_good_step=None)
    again = pickle.loads(pickle.dumps(div))
    assert (again.step, again.noticed_step, again.last_good_step) == (7, 9, None)
    assert str(again) == str(div)
