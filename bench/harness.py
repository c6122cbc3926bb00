"""Timing, ratios, the table and the JSON file: everything but the workloads.

Rules this module keeps, because the machines it runs on are shared and noisy:

* **A figure is a median.** Every contender runs once per round; a run of
  warm-up rounds comes first and is thrown away; the figure is the median of
  the remaining rounds, and every round's value is kept in the JSON.
* **A comparison is a ratio measured in the same run.** Contenders that are
  compared run in the same rounds, interleaved, in an order that rotates from
  round to round (so no contender always runs first, or always right after
  the costly one). A ratio figure is the median of the per-round ratios, not
  the ratio of two medians: a noisy minute slows both sides of one round.
* **Only the work is timed.** A workload is a *prepare* function that builds
  its world untimed and returns a *run* function; the harness collects
  garbage, then times ``run()`` alone with :func:`time.perf_counter_ns`.
  ``run()`` returns how many operations it did, and the harness checks that
  count, so a contender that quietly did less work can never look fast.
* **A contender that cannot run says so.** Its prepare raises
  :class:`Unavailable` (evloop not importable yet, replay layer missing) and
  its figures read ``unavailable``; any other exception is an ``error``
  figure, its traceback goes to stderr, and ``python -m bench`` exits 1.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "JSON_FORMAT",
    "BenchError",
    "Figure",
    "Prepare",
    "Run",
    "Sampler",
    "Series",
    "Settings",
    "Status",
    "Target",
    "Unavailable",
    "cost_ns",
    "figure",
    "machine",
    "placeholder",
    "print_table",
    "rate",
    "ratio",
    "rounds",
    "size_text",
    "write_json",
]

#: Bumped whenever the shape of ``results.json`` changes.
JSON_FORMAT = 1

#: Runs a workload once and returns how many operations it did.
Run = Callable[[], int]
#: Builds a workload's world (untimed) and returns the function that runs it.
Prepare = Callable[[], Run]
#: Produces one value (a rate, a cost, a peak RSS) per call.
Sampler = Callable[[], float]


class BenchError(Exception):
    """The benchmark itself went wrong (a contender did the wrong amount of work)."""


class Unavailable(Exception):
    """A contender cannot run in this checkout; the message says why."""


class Status(StrEnum):
    OK = "ok"
    #: The code under test is missing (``evloop`` does not import yet).
    UNAVAILABLE = "unavailable"
    #: The figure is defined but not measured yet (the replay layer).
    PLACEHOLDER = "placeholder"
    #: The benchmark raised: see stderr. ``python -m bench`` exits 1.
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Settings:
    quick: bool
    repeat: int
    warmup: int


@dataclass(frozen=True, slots=True)
class Target:
    """A bound a figure should keep, e.g. ``Target(">=", 1.0)``."""

    op: Literal[">=", "<="]
    bound: float

    def met(self, value: float) -> bool:
        return value >= self.bound if self.op == ">=" else value <= self.bound

    def __str__(self) -> str:
        return f"{self.op} {self.bound:.1f}"


@dataclass(slots=True)
class Series:
    """Every round's value of one contender, or why it has none."""

    runs: list[float] = field(default_factory=list)
    status: Status = Status.OK
    note: str = ""


@dataclass(frozen=True, slots=True)
class Figure:
    """One row of the table and one entry of ``results.json``."""

    key: str
    label: str
    unit: str
    runs: tuple[float, ...] = ()
    status: Status = Status.OK
    note: str = ""
    target: Target | None = None
    params: Mapping[str, int] = field(default_factory=dict)

    @property
    def median(self) -> float | None:
        if self.status is not Status.OK or not self.runs:
            return None
        return statistics.median(self.runs)

    @property
    def met(self) -> bool | None:
        median = self.median
        if self.target is None or median is None:
            return None
        return self.target.met(median)

    def as_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "unit": self.unit,
            "median": self.median,
            "runs": list(self.runs),
            "status": str(self.status),
            "note": self.note,
            "target": None if self.target is None else str(self.target),
            "met": self.met,
            "params": dict(self.params),
        }


# -- measuring ----------------------------------------------------------------


def _timed(prepare: Prepare, expect: int | None) -> tuple[int, int]:
    """``(operations, elapsed ns)`` of one run; prepare and GC stay outside the clock."""
    run = prepare()
    gc.collect()
    start = time.perf_counter_ns()
    ops = run()
    elapsed = time.perf_counter_ns() - start
    if expect is not None and ops != expect:
        raise BenchError(f"the run did {ops} operations, expected {expect}")
    return ops, max(elapsed, 1)


def rate(prepare: Prepare, expect: int | None = None) -> Sampler:
    """A sampler of operations per second."""

    def sample() -> float:
        ops, ns = _timed(prepare, expect)
        return ops * 1e9 / ns

    return sample


def cost_ns(prepare: Prepare, expect: int | None = None) -> Sampler:
    """A sampler of nanoseconds per operation."""

    def sample() -> float:
        ops, ns = _timed(prepare, expect)
        return ns / max(ops, 1)

    return sample


def rounds(
    samplers: Mapping[str, Sampler],
    settings: Settings,
    warmup: Mapping[str, Sampler] | None = None,
) -> dict[str, Series]:
    """Warm-up rounds, then ``settings.repeat`` interleaved rounds of every sampler.

    ``warmup`` gives smaller samplers for the warm-up rounds (by name), for
    workloads too long to run whole only to be thrown away.
    """
    names = list(samplers)
    series = {name: Series() for name in names}
    for index in range(settings.warmup + settings.repeat):
        shift = index % len(names) if names else 0
        for name in names[shift:] + names[:shift]:
            sampler = samplers[name]
            if index < settings.warmup and warmup is not None:
                sampler = warmup.get(name, sampler)
            value = _sample(name, sampler, series[name])
            if value is not None and index >= settings.warmup:
                series[name].runs.append(value)
    return series


def _sample(name: str, sampler: Sampler, series: Series) -> float | None:
    """One value, or None once the contender has failed (it then sits out)."""
    if series.status is not Status.OK:
        return None
    try:
        return sampler()
    except Unavailable as exc:
        series.status, series.note = Status.UNAVAILABLE, str(exc)
    except Exception as exc:
        series.status, series.note = Status.ERROR, f"{type(exc).__name__}: {exc}"
        print(f"bench: {name} failed:", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)
    series.runs.clear()
    return None


# -- figures ------------------------------------------------------------------


def figure(
    key: str,
    label: str,
    unit: str,
    series: Series,
    *,
    target: Target | None = None,
    note: str = "",
    params: Mapping[str, int] | None = None,
) -> Figure:
    """A figure straight from one contender's series."""
    notes = "; ".join(part for part in (note, series.note) if part)
    return Figure(key, label, unit, tuple(series.runs), series.status, notes, target, params or {})


_WORST = (Status.ERROR, Status.UNAVAILABLE, Status.PLACEHOLDER)


def ratio(
    key: str,
    label: str,
    numerator: Series,
    denominator: Series,
    *,
    target: Target | None = None,
    note: str = "",
) -> Figure:
    """The per-round ratio ``numerator / denominator`` (both from the same rounds)."""
    for status in _WORST:
        for side in (numerator, denominator):
            if side.status is status:
                return Figure(key, label, "x", (), status, side.note, target)
    runs = tuple(a / b for a, b in zip(numerator.runs, denominator.runs, strict=True))
    return Figure(key, label, "x", runs, Status.OK, note, target)


def placeholder(key: str, label: str, unit: str, why: str, target: Target | None = None) -> Figure:
    return Figure(key, label, unit, (), Status.PLACEHOLDER, why, target)


# -- output -------------------------------------------------------------------


def _value(fig: Figure) -> str:
    median = fig.median
    if median is None:
        return "-"
    if fig.unit == "x":
        return f"{median:.2f}x"
    return f"{median:,.0f}" if abs(median) >= 100 else f"{median:.3g}"


def _met(fig: Figure) -> str:
    met = fig.met
    if fig.target is None:
        return ""
    return "n/a" if met is None else ("yes" if met else "NO")


def _rows(figures: Sequence[Figure]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = [("figure", "median", "unit", "target", "met", "note")]
    for fig in figures:
        note = fig.note if fig.status is Status.OK else f"[{fig.status}] {fig.note}"
        target = "" if fig.target is None else str(fig.target)
        unit = "" if fig.unit == "x" else fig.unit
        rows.append((fig.label, _value(fig), unit, target, _met(fig), note))
    return rows


def print_table(figures: Sequence[Figure], header: str, out: Any = None) -> None:
    """Print every figure as one aligned table (the note column is left ragged)."""
    out = sys.stdout if out is None else out
    rows = _rows(figures)
    widths = [max(len(row[col]) for row in rows) for col in range(5)]
    print(header, file=out)
    for row in rows:
        cells = [row[0].ljust(widths[0]), row[1].rjust(widths[1])]
        cells += [row[col].ljust(widths[col]) for col in (2, 3, 4)]
        print("  ".join([*cells, row[5]]).rstrip(), file=out)


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    affinity = getattr(os, "sched_getaffinity", None)
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(affinity(0)) if affinity else os.cpu_count(),
    }


def write_json(
    path: Path, figures: Iterable[Figure], settings: Settings, extra: Mapping[str, Any]
) -> None:
    """Write the figures, atomically (through ``<path>.tmp``)."""
    doc = {
        "format": JSON_FORMAT,
        **machine(),
        "quick": settings.quick,
        "repeat": settings.repeat,
        "warmup": settings.warmup,
        **extra,
        "figures": {fig.key: fig.as_json() for fig in figures},
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)


def size_text(n: int) -> str:
    """``10M``, ``100k`` or ``1,234``: a size as the issue writes it."""
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 100_000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return f"{n:,}"
