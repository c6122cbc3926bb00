"""The child process of the memory workload: ``python -m bench.rss MODE STEPS [TRACE]``.

Peak RSS only ever grows within a process, so each measurement gets a fresh
interpreter: this one sets up the same scenario whatever ``STEPS`` is
(:func:`bench.workloads.forever_scenario`: 1000 timers re-arming forever
with the shared seeded delays) and, by ``MODE``:

* ``plain``: runs it for ``STEPS`` steps (none at all for 0, the baseline);
* ``record``: records ``STEPS`` steps of it to ``TRACE`` (``replay.record``,
  ``max_steps=STEPS``);
* ``play``: plays ``TRACE`` (which must hold such a recording) to its end.

It prints one JSON line: ``{"peak_kib": ..., "source": ..., "maxrss_kib":
..., "steps": ..., "mode": ...}`` (``"trace_bytes"`` too when recording) or
``{"unavailable": "why"}``. A trace of a run like this one holds no decision
and grows only by a checkpoint every 1024 steps: a growing peak would be the
recorder or the player keeping something per step.

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
from typing import Any

from .harness import Unavailable
from .workloads import forever_scenario, load_evloop, load_replay

__all__ = ["MODES", "N_TIMERS", "main", "maxrss_kib", "peak_rss_kib"]

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


MODES = ("plain", "record", "play")


def _params() -> dict[str, int]:
    return {"n_timers": N_TIMERS, "cycle": CYCLE}


def _run(mode: str, steps: int, trace: str | None) -> dict[str, Any]:
    """Run ``mode`` for ``steps`` steps; what to report besides the peak."""
    if mode == "plain":
        sim = load_evloop().Simulation(0)
        forever_scenario(sim, **_params())
        if steps:
            sim.run(max_steps=steps)
        sim.close()
        return {}
    replay = load_replay()
    if trace is None:
        raise SystemExit(f"bench.rss {mode} needs a TRACE path")
    scenario = f"{forever_scenario.__module__}:{forever_scenario.__name__}"
    if mode == "record":
        rec = replay.record(scenario, trace, params=_params(), max_steps=steps)
        return {"trace_bytes": rec.bytes, "decisions": rec.decisions}
    replay.declare_scenario(scenario)  # the trace this benchmark wrote names it
    result = replay.play(trace)
    if result.steps != steps or result.bit_exact is not True:
        raise SystemExit(
            f"bench.rss play {trace}: {result.steps} steps (expected {steps}), "
            f"bit_exact={result.bit_exact}"
        )
    return {}


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3) or argv[0] not in MODES:
        print(f"usage: python -m bench.rss {{{','.join(MODES)}}} STEPS [TRACE]", file=sys.stderr)
        return 2
    mode, steps = argv[0], int(argv[1])
    trace = argv[2] if len(argv) == 3 else None
    try:
        extra = _run(mode, steps, trace)
    except Unavailable as exc:
        print(json.dumps({"unavailable": str(exc)}))
        return 0
    peak, source = peak_rss_kib()
    report = {
        "peak_kib": peak,
        "source": source,
        "maxrss_kib": maxrss_kib(),
        "steps": steps,
        "mode": mode,
        **extra,
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
