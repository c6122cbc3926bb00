"""A model with two distinct bugs, for campaigns: each found, grouped and shrunk on its own.

Four threads of control wake at the same virtual instants; who runs first
is the scheduler's choice, and QEMU's own order (FIFO: the order they were
started in) is the one the code silently assumes:

* **requests out of order**: two clients wake at t = 5 ms and queue their
  request; ``serve`` asserts the queue is in client order
  (an ``AssertionError`` in ``serve``);
* **a stale read**: ``reader`` and ``writer`` wake at t = 7 ms; the reader
  caches the value and raises ``RuntimeError`` if the writer got there
  first.

In FIFO order the run is clean; each bug needs one decision of its own
taken the other way.
"""

from __future__ import annotations

from evloop import SCALE_MS, Simulation


def two_bugs(sim: Simulation) -> None:
    ctx = sim.main_loop.aio_context
    queue: list[int] = []
    value = {"written": False}

    def client(i: int) -> None:
        sim.sleep(5 * SCALE_MS)
        queue.append(i)
        ctx.bh_schedule_oneshot(serve, name=f"serve-{i}")

    def serve() -> None:
        assert queue == sorted(queue), f"requests out of order: {queue}"

    def reader() -> None:
        sim.sleep(7 * SCALE_MS)
        if value["written"]:
            raise RuntimeError("stale read: the writer ran before the reader cached the value")

    def writer() -> None:
        sim.sleep(7 * SCALE_MS)
        value["written"] = True

    for i in range(2):
        sim.thread(f"client{i}", lambda i=i: client(i))
    sim.thread("reader", reader)
    sim.thread("writer", writer)
