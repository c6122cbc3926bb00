"""Tests for the bundled machine's coroutine block path (``scenario(coroutines=True)``).

The default path is pinned by the trace corpus (``traces/``); these check that
with ``coroutines=True`` each block request really is a coroutine on the
IOThread, that the machine still runs clean in QEMU's own order, and that the
reset race is still there to be found.
"""

from __future__ import annotations

from evloop import Simulation
from examples.minimachine import scenario
from replay.explore.fuzz import fuzz


def _run(**params: object) -> tuple[list[int], list[tuple[str, str, str]]]:
    with Simulation(log=True) as sim:
        m = scenario(sim, **params)  # type: ignore[arg-type]
        sim.run()
        assert sim.log is not None
        bhs = [(e.thread, e.context, e.name) for e in sim.log if e.kind == "bh"]
        return m.blk.completed, bhs


def test_with_coroutines_every_request_is_a_coroutine_on_the_iothread() -> None:
    completed, bhs = _run(coroutines=True)
    assert completed == [0, 1, 2]
    entering = [b for b in bhs if b[2] == "iothread0:co_schedule_bh"]
    assert entering == [("iothread0", "iothread0", "iothread0:co_schedule_bh")] * 3
    assert not any(name == "blk-submit" for _, _, name in bhs)


def test_without_coroutines_no_coroutine_is_involved() -> None:
    completed, bhs = _run()
    assert completed == [0, 1, 2]
    assert not any(name.endswith("co_schedule_bh") for _, _, name in bhs)
    assert ("iothread0", "iothread0", "blk-submit") in bhs


def test_the_reset_race_is_still_found_with_coroutines() -> None:
    found = fuzz("examples.minimachine:scenario", runs=200, params={"coroutines": True})
    assert found.found
    assert found.failure is not None and "after a device reset freed its buffers" in found.failure
    fixed = fuzz(
        "examples.minimachine:scenario", runs=30, params={"coroutines": True, "fixed": True}
    )
    assert not fixed.found
