"""The child process of the memory workload: ``python -m bench.rss STEPS``.

Peak RSS only ever grows within a process, so each measurement gets a fresh
interpreter: this one builds the same simulation whatever ``STEPS`` is
(1000 timers re-arming forever with the shared seeded delays), runs it for
``STEPS`` steps (none at all for 0, the baseline), and prints one JSON line:
``{"peak_kib": ..., "source": ..., "maxrss_kib": ..., "steps": ...}`` or
``{"unavailable": "why"}``.

Why ``peak_kib`` is not simply ``ru_maxrss`` on Linux: the kernel carries a
process's peak RSS across ``execve`` (``exec_mmap`` folds the old address
space's high-water mark into ``signal->maxrss``), and ``subprocess`` forks
from the benchmark process, which by then holds a million cached delays and
whatever the earlier workloads left behind. Measured here: a parent holding
300 MiB spawns a child whose ``ru_maxrss`` reads 311 MiB while its own
``VmHWM`` reads 11 MiB. So on Linux the peak is ``VmHWM`` from
``/proc/self/status`` (the high-water mark of this process's own address
space, the same quantity ``ru_maxrss`` reports when nothing is inherited);
elsewhere it is ``ru_maxrss``. Both are printed.
"""

from __future__ import annotations

import json
import resource
import sys

from .harness import Unavailable
from .workloads import steps_forever

__all__ = ["N_TIMERS", "main", "maxrss_kib", "peak_rss_kib"]

N_TIMERS = 1000
#: Each timer cycles through this many delays (1000 x 100 drawn, like workload 1's).
CYCLE = 100


def maxrss_kib() -> int:
    """This process's peak RSS in KiB (``ru_maxrss`` is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak


def _vm_hwm_kib() -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def peak_rss_kib() -> tuple[int, str]:
    """This process's own peak RSS in KiB, and where it was read."""
    hwm = _vm_hwm_kib()
    return (maxrss_kib(), "ru_maxrss") if hwm is None else (hwm, "VmHWM")


def main(argv: list[str]) -> int:
    steps = int(argv[0])
    try:
        sim = steps_forever(N_TIMERS, CYCLE)
    except Unavailable as exc:
        print(json.dumps({"unavailable": str(exc)}))
        return 0
    if steps:
        sim.run(max_steps=steps)
    peak, source = peak_rss_kib()
    report = {"peak_kib": peak, "source": source, "maxrss_kib": maxrss_kib(), "steps": steps}
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
