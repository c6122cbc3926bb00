"""Workload 4 as figures: each recorded scenario plain, recorded and played.

The overheads are per-round ratios of ns per operation; the trace bytes per
step and per decision, and what a decision-free trace holds besides its
header and checkpoints.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from . import workloads
from .harness import (
    Figure,
    Series,
    Settings,
    Status,
    Target,
    cost_ns,
    figure,
    ratio,
    rounds,
    size_text,
)
from .sizes import Sizes

__all__ = ["DECISION_THREADS", "RECORD_CHOOSER", "bench_record"]


# -- 4. record and play --------------------------------------------------------------
#
# Each recorded scenario runs three ways in the same rounds: plain (no
# recorder, the same chooser), recorded to a trace file, and played from one.
# All three are timed whole, from building the simulation to closing it, since
# record() and play() build their own; the overheads are per-round ratios of
# ns per operation. The trace sizes are deterministic (every round's recording
# is byte for byte the same), but are kept per round all the same.

#: The chooser of every recording (and of the plain runs they are compared with).
RECORD_CHOOSER = "random:1"
#: Threads of control in the decision-heavy scenario (workload 7's largest).
DECISION_THREADS = 8


@dataclass(frozen=True, slots=True)
class _Recorded:
    key: str
    label: str
    scenario: str
    params: dict[str, int]
    ops: int


def _recorded(z: Sizes) -> list[_Recorded]:
    return [
        _Recorded(
            "timers",
            f"timers ({size_text(z.recorded_dispatches)} dispatches)",
            "timer",
            {"n_timers": z.timers, "total": z.recorded_dispatches},
            z.recorded_dispatches,
        ),
        _Recorded(
            "bh",
            f"bh ({size_text(z.recorded_dispatches)} runs)",
            "bh",
            {"count": z.recorded_dispatches},
            z.recorded_dispatches,
        ),
        _Recorded(
            "pingpong",
            f"ping-pong ({size_text(z.recorded_round_trips)} round trips)",
            "pingpong",
            {"round_trips": z.recorded_round_trips},
            z.recorded_round_trips,
        ),
        _Recorded(
            "threads",
            f"{DECISION_THREADS} threads, sim.sleep(1) ({size_text(z.handoffs)} sleeps)",
            "sleep",
            {"n_threads": DECISION_THREADS, "total": z.handoffs},
            z.handoffs - z.handoffs % DECISION_THREADS,
        ),
        _Recorded(
            "asyncio_sleep",
            f"asyncio.sleep in {z.recorded_asyncio_tasks} tasks "
            f"({size_text(z.recorded_asyncio_sleeps)} sleeps)",
            "asyncio_sleep",
            {"tasks": z.recorded_asyncio_tasks, "total": z.recorded_asyncio_sleeps},
            z.recorded_asyncio_sleeps,
        ),
        _Recorded(
            "asyncio_queue",
            f"asyncio Queue producer/consumer ({size_text(z.recorded_asyncio_items)} items)",
            "asyncio_queue",
            {"items": z.recorded_asyncio_items},
            z.recorded_asyncio_items,
        ),
    ]


def bench_record(settings: Settings, z: Sizes) -> list[Figure]:
    figs: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="evreplay-bench-") as tmp:
        for case in _recorded(z):
            figs += _record_case(settings, case, Path(tmp))
    return figs


def _record_case(settings: Settings, case: _Recorded, directory: Path) -> list[Figure]:
    rec = workloads.Recording(case.scenario, case.params, directory, RECORD_CHOOSER)
    s = rounds(
        {
            "plain": cost_ns(rec.plain, case.ops),
            "record": cost_ns(rec.record, case.ops),
            "play": cost_ns(rec.play, case.ops),
        },
        settings,
    )
    return [
        ratio(
            f"record_overhead_{case.key}",
            f"record: {case.label}, record / plain",
            s["record"],
            s["plain"],
            target=Target("<=", 1.5),
            note=f"chooser {RECORD_CHOOSER} in both",
        ),
        ratio(
            f"play_overhead_{case.key}",
            f"play: {case.label}, play / plain",
            s["play"],
            s["plain"],
            target=Target("<=", 1.3),
            note="includes checking the re-recording is bit-exact",
        ),
        *_trace_figures(case, rec, s["record"]),
    ]


def _trace_figures(case: _Recorded, rec: workloads.Recording, record: Series) -> list[Figure]:
    """Trace bytes per step, and per decision or what a decision-free trace holds."""
    measured = rec.results[len(rec.results) - len(record.runs) :]
    params = dict(case.params)
    note = ""
    if measured:
        last = measured[-1]
        params |= {"steps": last.steps, "decisions": last.decisions, "trace_bytes": last.bytes}
        note = f"{_plural(last.decisions, 'decision')}, {last.bytes:,} B in all"
        if case.key == "pingpong":
            note += " (the two threads alternate: the scheduler never has a choice)"
    figs = [
        figure(
            f"bytes_per_event_{case.key}",
            f"record: {case.label}, trace bytes per step",
            "B",
            _derived(record, [r.bytes / r.steps for r in measured]),
            note=note,
            params=params,
        )
    ]
    if case.key == "threads":
        figs.append(
            figure(
                "bytes_per_decision",
                f"record: {case.label}, trace bytes per decision",
                "B",
                _derived(record, [r.bytes / r.decisions for r in measured if r.decisions]),
                target=Target("<=", 3.0),
                note="every trace byte (header, checkpoints too) / decisions",
                params=params,
            )
        )
    if case.key in ("timers", "bh"):
        figs.append(_other_records(case, rec.trace, record, params))
    return figs


def _plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _derived(source: Series, values: list[float]) -> Series:
    """One value per measured round of ``source`` (or ``source``'s status if it failed)."""
    if source.status is not Status.OK:
        return Series(status=source.status, note=source.note)
    if len(values) != len(source.runs):
        return Series(status=Status.ERROR, note="a recording had nothing to divide by")
    return Series(runs=values)


def _other_records(case: _Recorded, trace: Path, record: Series, params: dict[str, int]) -> Figure:
    """How many records of the last trace are not its header, checkpoints or END."""
    key = f"trace_other_records_{case.key}"
    label = f"record: {case.label}, records besides header/checkpoints"
    if record.status is not Status.OK:
        return figure(key, label, "record", record)
    replay = workloads.load_replay()
    kinds: Counter[str] = Counter()
    with replay.TraceReader(trace) as reader:
        for entry in reader:
            kinds[replay.EventKind(entry[0]).name] += 1
    other = sum(n for kind, n in kinds.items() if kind not in ("CHECKPOINT", "END"))
    if other:
        note = f"the trace: header, {dict(kinds)}"
    else:
        note = f"the trace: header, {_plural(kinds['CHECKPOINT'], 'checkpoint')}, END"
    series = Series(runs=[float(other)])
    return figure(key, label, "record", series, note=f"{note} (last round's)", params=params)
