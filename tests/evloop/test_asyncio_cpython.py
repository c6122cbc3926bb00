"""CPython's own asyncio tests, unchanged, on simulated loops (trio-asyncio's pattern).

Every test case class of the listed ``test.test_asyncio`` modules is
collected here as is, with :class:`evloop.asyncio.EventLoopPolicy` installed
around each test: the tests that get their loop from the policy
(``IsolatedAsyncioTestCase``, ``asyncio.run``, ``asyncio.new_event_loop``)
run on a :class:`~evloop.asyncio.SimEventLoop`. Tests that build their own
loop class (``test_utils.TestLoop``) keep it.

``EXPECTED_FAILURES`` lists, per Python version, the tests known to fail on
a simulated loop and why; each is marked strict ``xfail``, so a fix shows up
as a failure until the entry is removed. The module is skipped where the
interpreter ships without its ``test`` package.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import sys
import unittest
from collections.abc import Iterator

import pytest

import evloop.asyncio

pytest.importorskip("test.test_asyncio", reason="this Python ships without its test package")

#: Modules whose tests must all pass (or be listed below).
MODULES = (
    "test_context",
    "test_futures2",
    "test_locks",
    "test_pep492",
    "test_queues",
    "test_taskgroups",
    "test_timeouts",
    "test_waitfor",
)

#: (major, minor) -> {test id suffix: reason}
EXPECTED_FAILURES: dict[tuple[int, int], dict[str, str]] = {}

_expected = EXPECTED_FAILURES.get(sys.version_info[:2], {})


def _collect() -> dict[str, type[unittest.TestCase]]:
    found: dict[str, type[unittest.TestCase]] = {}
    for name in MODULES:
        module = importlib.import_module(f"test.test_asyncio.{name}")
        for attr, value in sorted(vars(module).items()):
            if (
                inspect.isclass(value)
                and issubclass(value, unittest.TestCase)
                and value.__module__ == module.__name__
                and any(m.startswith("test") for m in dir(value))
            ):
                cls = value
                failing = [m for m in dir(value) if f"{name}.{attr}.{m}" in _expected]
                if failing:
                    marked = {m: unittest.expectedFailure(getattr(value, m)) for m in failing}
                    cls = type(attr, (value,), marked)
                found[f"{name}__{attr}"] = cls
    return found


globals().update(_collect())


@pytest.fixture(autouse=True)
def _simulated_loops() -> Iterator[evloop.asyncio.EventLoopPolicy]:
    policy = evloop.asyncio.EventLoopPolicy()
    asyncio.set_event_loop_policy(policy)
    try:
        yield policy
    finally:
        asyncio.set_event_loop_policy(None)


def test_the_policy_is_in_force_for_isolated_test_cases(
    _simulated_loops: evloop.asyncio.EventLoopPolicy,
) -> None:
    seen: list[object] = []

    class Probe(unittest.IsolatedAsyncioTestCase):
        async def test_probe(self) -> None:
            seen.append(asyncio.get_running_loop())
            await asyncio.sleep(60)

    result = unittest.TestResult()
    Probe("test_probe").run(result)
    assert result.wasSuccessful(), result.errors
    assert len(seen) == 1
    assert isinstance(seen[0], evloop.asyncio.SimEventLoop)
    assert _simulated_loops.loops == 1
