"""``make demo``: the three uses of evreplay on the bundled machine, end to end.

1. record a clean run of the machine (QEMU's own FIFO order) and replay it
   bit-exactly;
2. fuzz its schedules until the ordering bug appears, shrink the failing run
   to the few decisions that matter, and save the trace under ``out/``;
3. replay that trace to the same failure, write a Perfetto timeline of it;
4. explore every schedule of the fixed machine up to 3 preemptions;
5. the same story for an asyncio program (``replay/examples/cache_service.py``, a
   cache server over the virtual network whose two clients race): record it,
   fuzz until the stale-cache bug appears, shrink it, replay it, check the
   fix; then print the commands a user would type next.

Everything it writes goes under ``out/`` (ignored by git): a trace's header
records the Python version, so traces written here on another Python than
the corpus's would otherwise rewrite the tracked ones under ``traces/``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from replay import play, record  # noqa: E402
from replay.explore import explore_systematic  # noqa: E402
from replay.explore.fuzz import fuzz  # noqa: E402
from replay.failures import same_failure  # noqa: E402

SCENARIO = "examples.minimachine:scenario"
ASYNC_SCENARIO = "replay.examples.cache_service:main"


def say(text: str) -> None:
    print(text, flush=True)


def main() -> int:
    started = time.monotonic()
    out = ROOT / "out"
    traces = out / "traces"
    traces.mkdir(parents=True, exist_ok=True)

    say(f"== 1. record a clean run of {SCENARIO} (FIFO order) and replay it")
    clean = traces / "minimachine-clean.evr"
    rec = record(SCENARIO, clean)
    say(
        f"   recorded {rec.steps} steps, {rec.time_ns / 1e6:.1f} ms of virtual time, "
        f"{rec.decisions} decisions, {rec.bytes} bytes -> {clean.relative_to(ROOT)}"
    )
    if rec.failure is not None:
        say(f"   unexpected: the FIFO run failed: {rec.failure}")
        return 1
    played = play(clean)
    say(f"   replayed: {played.steps} steps, bit-exact: {played.bit_exact}")

    say("== 2. fuzz the schedules until the ordering bug appears")

    def progress(done: int, total: int) -> None:
        if done in (1, total) or done % 25 == 0:
            say(f"   run {done}/{total}")

    found = fuzz(
        SCENARIO, runs=200, chooser="random", output=traces / "minimachine-blk-reset-race.evr",
        progress=progress,
    )
    if not found.found or found.trace_path is None:
        say("   no failure found in 200 runs")
        return 1
    say(f"   found after {found.runs} run(s): {found.failure}")
    say(
        f"   shrunk to {found.non_default} non-FIFO decision(s) out of {found.decisions}; "
        f"saved -> {found.trace_path.relative_to(ROOT)}"
    )

    say("== 3. replay the saved trace to the same failure, and draw its timeline")
    again = play(found.trace_path)
    same = again.failure is not None and same_failure(again.failure, found.failure or "")
    say(f"   replayed: same failure: {same}, bit-exact: {again.bit_exact}")
    timeline = out / "minimachine-blk-reset-race.perfetto.json"
    exported = _export(found.trace_path, timeline)
    if exported:
        say(f"   Perfetto timeline -> {timeline.relative_to(ROOT)} (open it in ui.perfetto.dev)")

    say("== 4. the fix, checked in every schedule up to 3 preemptions")
    proof = explore_systematic(SCENARIO, preemptions=3, budget=10_000, params={"fixed": True})
    if proof.failure is not None or not proof.complete:
        say(f"   unexpected: {proof.failure or 'the search did not complete'}")
        return 1
    say(f"   all {proof.schedules} schedules up to 3 preemptions explored, no failure")

    if not _asyncio_story(traces):
        return 1

    elapsed = time.monotonic() - started
    took = f"{elapsed * 1000:.0f} ms" if elapsed < 1 else f"{elapsed:.1f} s"
    say(f"\ndone in {took}. Next:")
    rel = found.trace_path.relative_to(ROOT)
    out = rel.parent  # not traces/: that is the corpus CI replays
    say(f"   .venv/bin/replay play {rel}            # reproduce the bug anywhere")
    say(f"   .venv/bin/replay dump {rel} --kinds turn,bh,timer   # what happened, step by step")
    say(f"   .venv/bin/replay diff {clean.relative_to(ROOT)} {rel}   # where the runs part")
    say(f"   .venv/bin/replay fuzz {SCENARIO} --chooser pct --runs 200 -o {out}/pct.evr")
    say(f"   .venv/bin/replay fuzz {SCENARIO} --chooser systematic --preemptions 0"
        f" -o {out}/dfs.evr")
    say(f"   .venv/bin/replay record {SCENARIO} --param fixed=True -o {out}/fixed.evr"
        "   # the fix holds")
    say("   .venv/bin/replay verify traces/             # CI's determinism gate")
    say(f"   .venv/bin/replay rerun {rel}   # CI's regression gate: does the bug come back?")
    say(f"   .venv/bin/replay fuzz {ASYNC_SCENARIO} --runs 100 -o {out}/cache.evr"
        "   # the asyncio program (README)")
    return 0 if same and again.bit_exact and played.bit_exact else 1


def _asyncio_story(traces: Path) -> bool:
    """Step 5: an unmodified asyncio program, recorded, fuzzed, shrunk and replayed."""
    say(f"== 5. asyncio: {ASYNC_SCENARIO}, two clients racing a GET and a SET of one key")
    clean = record(ASYNC_SCENARIO, traces / "cache_service-clean.evr")
    if clean.failure is not None:
        say(f"   unexpected: asyncio's own order failed: {clean.failure}")
        return False
    say(
        f"   recorded in asyncio's own order: {clean.steps} steps, {clean.decisions} decisions, "
        f"clean; replayed bit-exact: {play(traces / 'cache_service-clean.evr').bit_exact}"
    )
    found = fuzz(ASYNC_SCENARIO, runs=100, output=traces / "cache_service-stale-set.evr")
    if not found.found or found.trace_path is None:
        say("   no failure found in 100 runs")
        return False
    say(f"   fuzz found after {found.runs} run(s): {found.failure}")
    say(
        f"   shrunk to {found.non_default} non-FIFO decision(s) out of {found.decisions} "
        f"-> {found.trace_path.relative_to(ROOT)}"
    )
    again = play(found.trace_path)
    same = again.failure is not None and same_failure(again.failure, found.failure or "")
    say(f"   replayed: same failure: {same}, bit-exact: {again.bit_exact}")
    proof = explore_systematic(ASYNC_SCENARIO, preemptions=2, budget=10_000,
                               params={"fixed": True})
    if proof.failure is not None or not proof.complete:
        say(f"   unexpected: {proof.failure or 'the search did not complete'}")
        return False
    say(f"   the fix: all {proof.schedules} schedules up to 2 preemptions explored, no failure")
    return same and bool(again.bit_exact)


def _export(trace: Path, target: Path) -> bool:
    from replay.tools.export import export

    with open(target, "w", encoding="utf-8") as out:
        export(trace, out, fmt="perfetto")
    return True


if __name__ == "__main__":
    sys.exit(main())
