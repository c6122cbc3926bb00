"""Guards ``evloop.asyncio.__all__``, the asyncio package's public surface."""

from __future__ import annotations

import evloop.asyncio

EXPECTED = {"EventLoopPolicy", "SimEventLoop", "SimThreadPoolExecutor", "VirtualSelector", "run"}


def test_all_is_the_expected_set() -> None:
    assert set(evloop.asyncio.__all__) == EXPECTED


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from evloop.asyncio import *", namespace)
    namespace.pop("__builtins__")
    assert set(namespace) == EXPECTED
