"""``make traces``: regenerate the trace corpus under ``traces/`` that CI replays.

Clean runs of the bundled machine under several schedules (the fixed device
survives them all), the minimized trace of its ordering bug, and clean runs
of the asyncio service of the README's tutorial. Recording
is deterministic, so running this twice writes byte-identical files.

They are written in the current format version, under ``traces/vN/``. The
traces directly under ``traces/`` are format version 1, recorded before the
chain (format version 2), and ``traces/v2/`` are format version 2, recorded
before the timer checkpoints (format version 3); both are kept byte for byte:
they show that old traces still play. Never regenerate those.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from replay import FORMAT_VERSION, record  # noqa: E402
from replay.explore.fuzz import fuzz  # noqa: E402

SCENARIO = "examples.minimachine:scenario"
CLEAN = [
    ("minimachine-clean.evr", "fifo", {}),
    ("minimachine-fixed-random-7.evr", "random:7", {"fixed": True}),
    ("minimachine-fixed-pct-3.evr", "pct:3", {"fixed": True}),
    # The block device's requests handled by coroutines on the IOThread.
    ("minimachine-coroutines-random-7.evr", "random:7", {"fixed": True, "coroutines": True}),
]
#: The asyncio service of the README's tutorial: asyncio's own order, and the fixed
#: server under a random schedule.
ASYNC_SCENARIO = "replay.examples.cache_service:main"
ASYNC_CLEAN = [
    ("cache_service-clean.evr", "fifo", {}),
    ("cache_service-fixed-random-7.evr", "random:7", {"fixed": True}),
]


def main() -> int:
    traces = ROOT / "traces" / f"v{FORMAT_VERSION}"
    traces.mkdir(parents=True, exist_ok=True)
    runs = [(SCENARIO, *run) for run in CLEAN] + [(ASYNC_SCENARIO, *run) for run in ASYNC_CLEAN]
    for scenario, name, chooser, params in runs:
        result = record(scenario, traces / name, chooser=chooser, params=params)
        if result.failure is not None:
            print(f"{name}: unexpected failure: {result.failure}")
            return 1
        print(f"{name}: {result.steps} steps, {result.bytes} bytes")
    bug_trace = traces / "minimachine-blk-reset-race.evr"
    bug = fuzz(SCENARIO, runs=200, chooser="random", output=bug_trace)
    if not bug.found:
        print("the ordering bug was not found")
        return 1
    print(f"minimachine-blk-reset-race.evr: {bug.failure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
