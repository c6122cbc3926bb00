"""``@pytest.mark.evreplay_asyncio``: async tests on the simulated loop, beside pytest-asyncio."""

from __future__ import annotations

import re

import pytest

import replay

pytest_plugins = ["pytester"]

#: Warnings are errors in the inner runs too; pytest-asyncio is active in them.
INI = (
    "[pytest]\n"
    "addopts = --strict-markers -p no:cacheprovider\n"
    "asyncio_default_fixture_loop_scope = function\n"
    "filterwarnings =\n"
    "    error\n"
)


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    pytester.makeini(INI)
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    return pytester


BOTH = """
import asyncio

import pytest

from evloop.asyncio import SimEventLoop


@pytest.mark.evreplay_asyncio
async def test_on_the_simulated_loop():
    loop = asyncio.get_running_loop()
    assert isinstance(loop, SimEventLoop)
    await asyncio.sleep(3600)  # an hour of virtual time, no real waiting
    assert loop.time() == 3600.0


@pytest.mark.evreplay_asyncio
async def test_with_the_simulation(sim, tmp_path):
    await asyncio.sleep(0.5)
    assert sim.now_ns == 500_000_000 and tmp_path.is_dir()


@pytest.mark.asyncio
async def test_on_pytest_asyncios_loop():
    loop = asyncio.get_running_loop()
    assert not isinstance(loop, SimEventLoop)
    await asyncio.sleep(0)
"""


def test_evreplay_and_pytest_asyncio_tests_run_in_one_session(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_both=BOTH)
    result = suite.runpytest("-v")  # pytest-asyncio loads through its entry point
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*test_on_pytest_asyncios_loop PASSED*"])


def test_the_marker_is_registered(suite: pytest.Pytester) -> None:
    result = suite.runpytest("--markers")
    result.stdout.fnmatch_lines(
        ["@pytest.mark.evreplay_asyncio: run an `async def` test on evreplay's simulated "
         "event loop *"]
    )


FAILING = """
import asyncio

import pytest


@pytest.mark.evreplay_asyncio
async def test_stale_read():
    await asyncio.sleep(2)
    assert asyncio.get_running_loop().time() < 1


@pytest.mark.evreplay_asyncio
async def test_with_sim_fails(sim):
    await asyncio.sleep(1)
    raise ValueError(sim.now_ns)


@pytest.mark.evreplay_asyncio
def test_not_async():
    pass
"""


def test_failing_async_tests_save_traces_that_replay_their_failure(
    suite: pytest.Pytester,
) -> None:
    suite.makepyfile(test_failing=FAILING)
    result = suite.runpytest("--evreplay-save-traces=traces")
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(
        ["*@pytest.mark.evreplay_asyncio runs an `async def` test on the simulated loop: "
         "test_not_async is not a coroutine function*"]
    )
    saved = sorted(p.name for p in (suite.path / "traces").glob("*.evr"))
    assert [re.sub("-[0-9a-f]{16}.evr$", "", name) for name in saved] == [
        "test_failing.py_test_stale_read",
        "test_failing.py_test_with_sim_fails",
    ]
    result.stdout.fnmatch_lines(["simulation: t=2000000000 ns, *", "trace: *test_stale_read*"])
    stale = replay.play(suite.path / "traces" / saved[0])
    assert (stale.bit_exact, stale.time_ns, stale.failure) == (
        True, 2_000_000_000, "exception: RecordedTestFailure: AssertionError at test_failing.py:9"
    )
    with_sim = replay.play(suite.path / "traces" / saved[1])
    assert (with_sim.bit_exact, with_sim.failure) == (
        True, "exception: RecordedTestFailure: ValueError at test_failing.py:15"
    )
