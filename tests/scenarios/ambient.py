"""Scenarios that read the host's time and randomness directly, as careless code does.

``global_random`` calls the ``random`` module's hidden global instance;
``bound_time`` reads ``time`` and ``random`` through names bound at import
(``from time import time``), which patching the modules' attributes alone
does not reach. Both decide their schedules from what they read, so a run
that reads the host cannot replay; a run that reads the simulation can.
"""

from __future__ import annotations

import random
from random import random as bound_random
from time import monotonic as bound_monotonic
from time import time

from evloop import SCALE_MS, Simulation

#: What the last run read, as the scenario saw it (the tests compare record and play).
SEEN: list[tuple[str, float]] = []


def global_random(
    sim: Simulation, *, workers: int = 3, rounds: int = 4, limit: int | None = None
) -> None:
    """Workers sleep ``random.randint`` ms between rounds: the schedule follows the draws.

    With ``limit``, a worker whose sleeps add up to more than ``limit`` ms fails.
    """
    SEEN.clear()

    def body(w: int) -> None:
        total = 0
        for _ in range(rounds):
            delay = random.randint(1, 9)
            SEEN.append((f"w{w}", float(delay)))
            sim.sleep(delay * SCALE_MS)
            total += delay
            assert limit is None or total <= limit, f"w{w} slept {total} ms"

    for w in range(workers):
        sim.thread(f"w{w}", lambda w=w: body(w))


def bound_time(sim: Simulation, *, workers: int = 2, rounds: int = 3) -> None:
    """Workers stamp their rounds with a bound ``time()`` and sleep a bound ``random()``."""
    SEEN.clear()

    def body(w: int) -> None:
        for _ in range(rounds):
            SEEN.append((f"w{w} time", time()))
            SEEN.append((f"w{w} monotonic", bound_monotonic()))
            sim.sleep(1 + int(bound_random() * 5 * SCALE_MS))

    for w in range(workers):
        sim.thread(f"w{w}", lambda w=w: body(w))
