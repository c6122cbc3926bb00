"""Fixtures shared by the whole suite; plain helpers live in ``tests/helpers.py``."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def no_leaked_os_threads() -> Iterator[None]:
    """Every OS thread a test starts (threads of control, workers, peers) has ended by its end."""
    before = set(threading.enumerate())
    yield
    for t in threading.enumerate():
        if t not in before:
            t.join(timeout=5.0)
    assert [t.name for t in threading.enumerate() if t not in before] == []
