"""Fixtures shared by the whole suite; plain helpers live in ``tests/helpers.py``."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

# Speed lives in the benchmarks, not in tests: hypothesis's wall-clock checks
# (the per-example deadline, "input generation is slow") would make a test's
# verdict depend on how loaded the machine is.
settings.register_profile(
    "evreplay", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("evreplay")


@pytest.fixture(autouse=True)
def no_leaked_os_threads() -> Iterator[None]:
    """Every OS thread a test starts (threads of control, workers, peers) has ended by its end."""
    before = set(threading.enumerate())
    yield
    for t in threading.enumerate():
        if t not in before:
            t.join(timeout=5.0)
    assert [t.name for t in threading.enumerate() if t not in before] == []
