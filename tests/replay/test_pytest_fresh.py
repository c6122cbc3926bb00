"""Where two runs of a ``@pytest.mark.deterministic`` test part (``replay/pytest_fresh.py``)."""

from __future__ import annotations

from replay.pytest_fresh import run_difference

SAME_END = ((0xABC, 5), (0xABC, 5))


def test_identical_runs_have_no_difference() -> None:
    assert run_difference(["a", "b"], ["a", "b"], SAME_END, 2) is None


def test_the_first_step_that_differs_is_named_with_both_descriptions() -> None:
    assert run_difference(["a", "b", "c"], ["a", "x", "c"], SAME_END, 3) == (
        "at step 2:\n  run 1: b\n  run 3: x"
    )


def test_a_run_that_ends_early_is_named_with_the_step_the_other_went_on_to() -> None:
    assert run_difference(["a"], ["a", "b"], SAME_END, 2) == (
        "at step 2: run 1 ended after 1 steps\n  run 2: b"
    )
    assert run_difference(["a", "b"], ["a"], SAME_END, 4) == (
        "at step 2: run 4 ended after 1 steps\n  run 1: b"
    )


def test_same_descriptions_but_another_digest_or_end_time_still_differ() -> None:
    digest = run_difference(["a"], ["a"], ((1, 5), (2, 5)), 2)
    assert digest is not None and digest.startswith(
        "although every step has the same description: digest 0x0000000000000001 != "
        "0x0000000000000002 after 1 steps"
    )
    assert run_difference(["a"], ["a"], ((1, 5), (1, 6)), 2) == (
        "at the end: virtual time 5 ns != 6 ns after 1 steps"
    )
