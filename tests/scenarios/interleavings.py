"""Tiny models whose schedules can be counted by hand, for the systematic explorer.

* :func:`steps` starts ``threads`` threads of control; each takes ``steps``
  steps (appending ``"<name><i>"`` to the run's log) with a ``yield_now``
  (a preemption point) between two steps. Each run's log is appended to
  :data:`RUNS`, so a test can see which interleavings were run.
* :func:`lost_update`: two threads increment a shared counter with a
  preemption point between the read and the write; a third joins them and
  checks the count. It fails only if a thread is preempted at that point.
* :func:`spin`: one thread spins on ``yield_now`` until another sets a flag.
* :func:`unstable` starts a different number of threads on every other run:
  a scenario that leaks state between runs.
"""

from __future__ import annotations

from evloop import Simulation

#: The interleaving (list of steps taken) of every run of :func:`steps`, oldest first.
RUNS: list[list[str]] = []

#: How many times :func:`unstable` has run (a test resets it).
RESTARTS = [0]


def steps(sim: Simulation, *, threads: int = 2, steps: int = 2) -> None:
    log: list[str] = []
    RUNS.append(log)

    def worker(name: str) -> None:
        for i in range(1, steps + 1):
            if i > 1:
                sim.yield_now()
            log.append(f"{name}{i}")

    for t in range(threads):
        name = "ab"[t] if threads <= 2 else f"t{t}"
        sim.thread(name, lambda name=name: worker(name))


def lost_update(sim: Simulation) -> None:
    counter = [0]

    def increment() -> None:
        seen = counter[0]
        sim.yield_now()  # another thread may run between the read and the write
        counter[0] = seen + 1

    a = sim.thread("a", increment)
    b = sim.thread("b", increment)

    def check() -> None:
        a.join()
        b.join()
        assert counter[0] == 2, f"lost update: counter is {counter[0]}, not 2"

    sim.thread("check", check)


def unstable(sim: Simulation) -> None:
    RESTARTS[0] += 1
    for t in range(2 + RESTARTS[0] % 2):
        sim.thread(f"t{t}", sim.yield_now)


def spin(sim: Simulation) -> None:
    flag = [False]

    def spinner() -> None:
        while not flag[0]:
            sim.yield_now()

    def setter() -> None:
        flag[0] = True

    sim.thread("spinner", spinner)
    sim.thread("setter", setter)
