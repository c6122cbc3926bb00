"""The child process of the memory workload: ``python -m bench.rss STEPS``.

Peak RSS only ever grows within a process, so each measurement gets a fresh
interpreter: this one builds the same simulation whatever ``STEPS`` is
(1000 timers re-arming forever with the shared seeded delays), runs it for
``STEPS`` steps (none at all for 0, the baseline), and prints one JSON line:
``{"maxrss_kib": ..., "steps": ...}`` or ``{"unavailable": "why"}``.
"""

from __future__ import annotations

import json
import resource
import sys

from .harness import Unavailable
from .workloads import steps_forever

__all__ = ["N_TIMERS", "main", "maxrss_kib"]

N_TIMERS = 1000
#: Each timer cycles through this many delays (1000 x 100 drawn, like workload 1's).
CYCLE = 100


def maxrss_kib() -> int:
    """This process's peak RSS in KiB (``ru_maxrss`` is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak


def main(argv: list[str]) -> int:
    steps = int(argv[0])
    try:
        sim = steps_forever(N_TIMERS, CYCLE)
    except Unavailable as exc:
        print(json.dumps({"unavailable": str(exc)}))
        return 0
    if steps:
        sim.run(max_steps=steps)
    print(json.dumps({"maxrss_kib": maxrss_kib(), "steps": steps}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
