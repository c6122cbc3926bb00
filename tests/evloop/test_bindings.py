"""evloop/machine/bindings.py: references bound by ``from time import time`` are sanitized too."""

from __future__ import annotations

import queue
import random
import sys
import time
import types

from evloop import SCALE_MS, Simulation
from evloop.loop.clock import HOST_EPOCH_NS
from tests.scenarios import ambient

ORIGINAL_TIME = time.time
ORIGINAL_MONOTONIC = time.monotonic
ORIGINAL_RANDOM = random.random


def run_reading(sim: Simulation, read: object) -> list[object]:
    """Run ``sim`` with one thread of control that calls ``read()`` once, 1 ms in."""
    seen: list[object] = []

    def body() -> None:
        sim.sleep(SCALE_MS)
        seen.append(read() if callable(read) else None)

    sim.thread("reader", body)
    sim.run()
    return seen


def test_a_name_bound_by_from_import_is_answered_by_the_simulation() -> None:
    sim = Simulation(3, sanitize=True)
    seen = run_reading(sim, lambda: (ambient.time(), ambient.bound_monotonic()))
    assert seen == [((HOST_EPOCH_NS + SCALE_MS) / 1_000_000_000, SCALE_MS / 1_000_000_000)]


def test_a_bound_random_draws_from_the_simulations_rng() -> None:
    draws = [run_reading(Simulation(seed, sanitize=True), lambda: ambient.bound_random())
             for seed in (4, 4, 5)]
    assert draws[0] == draws[1] != draws[2]
    expected = Simulation(4).random.random()
    assert draws[0] == [expected]


def test_bound_names_are_replaced_only_during_the_run_and_put_back() -> None:
    during: list[object] = []
    sim = Simulation(sanitize=True)
    run_reading(sim, lambda: during.extend([ambient.time, ambient.bound_random]))
    assert during[0] is not ORIGINAL_TIME and during[1] is not ORIGINAL_RANDOM
    assert getattr(during[0], "__wrapped__", None) is ORIGINAL_TIME
    assert ambient.time is ORIGINAL_TIME and ambient.bound_random is ORIGINAL_RANDOM
    assert ambient.bound_monotonic is ORIGINAL_MONOTONIC


def test_an_unsanitized_run_leaves_bound_names_alone() -> None:
    during: list[object] = []
    run_reading(Simulation(), lambda: during.append(ambient.time))
    assert during == [ORIGINAL_TIME]


def test_the_standard_librarys_bindings_keep_the_real_clock() -> None:
    # queue binds time.monotonic for its timeouts, which wait on real locks.
    assert queue.time is ORIGINAL_MONOTONIC  # type: ignore[attr-defined]
    during: list[object] = []
    run_reading(Simulation(sanitize=True), lambda: during.append(queue.time))  # type: ignore[attr-defined]
    assert during == [ORIGINAL_MONOTONIC]


def test_a_module_loaded_after_a_run_is_found_by_the_next() -> None:
    module = types.ModuleType("newcomer_late_module")
    sys.modules[module.__name__] = module
    try:
        run_reading(Simulation(sanitize=True), lambda: None)
        module.now = time.time  # type: ignore[attr-defined]
        seen = run_reading(Simulation(sanitize=True), lambda: module.now())  # type: ignore[attr-defined]
        assert seen == [(HOST_EPOCH_NS + SCALE_MS) / 1_000_000_000]
        assert module.now is ORIGINAL_TIME  # type: ignore[attr-defined]
    finally:
        del sys.modules[module.__name__]


def test_a_name_rebound_during_the_run_keeps_its_new_value() -> None:
    module = types.ModuleType("newcomer_rebinding_module")
    module.now = time.time  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module

    def mine() -> float:
        return 1.0

    try:
        run_reading(Simulation(sanitize=True), lambda: setattr(module, "now", mine))
        assert module.now is mine  # type: ignore[attr-defined]
    finally:
        del sys.modules[module.__name__]


def test_other_os_threads_calling_a_bound_name_get_the_real_function() -> None:
    import threading

    seen: list[float] = []
    reader = threading.Thread(target=lambda: seen.append(ambient.time()))
    sim = Simulation(sanitize=True)

    def body() -> None:
        # The thread was created before the run, so the sanitizer lets it be
        # joined; it reads the host clock, not the simulation's.
        sim.sleep(SCALE_MS)

    sim.thread("idle", body)
    before = ORIGINAL_TIME()
    reader.start()
    sim.run()
    reader.join()
    assert seen and seen[0] >= before


def test_a_module_replaced_under_its_name_is_walked_afresh() -> None:
    # What pytester does between tests: the same name, another module, same sys.modules size.
    name = "newcomer_replaced_module"
    first = types.ModuleType(name)
    sys.modules[name] = first
    try:
        run_reading(Simulation(sanitize=True), lambda: None)
        second = types.ModuleType(name)
        second.now = time.time  # type: ignore[attr-defined]
        sys.modules[name] = second
        seen = run_reading(Simulation(sanitize=True), lambda: second.now())  # type: ignore[attr-defined]
        assert seen == [(HOST_EPOCH_NS + SCALE_MS) / 1_000_000_000]
    finally:
        del sys.modules[name]
