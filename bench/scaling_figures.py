"""Workloads 5 and 6 as figures: what must not grow with size.

Peak RSS as a run's steps grow (plain, recorded, played; each value from a
fresh process, ``bench/rss.py``), and the cost of a step beside more and
more idle fds and pending timers.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from . import workloads
from .harness import (
    BenchError,
    Figure,
    Run,
    Sampler,
    Settings,
    Target,
    Unavailable,
    cost_ns,
    figure,
    ratio,
    rounds,
    size_text,
)
from .sizes import FULL, Sizes

__all__ = ["bench_memory", "bench_scaling"]

ROOT = Path(__file__).resolve().parent.parent


# -- 5. memory -------------------------------------------------------------------------


RSS_NOTE = "own peak of a fresh process (VmHWM on Linux: see bench/rss.py)"


def _rss_sampler(mode: str, steps: int, trace: Path | None = None) -> Sampler:
    def child() -> dict[str, Any]:
        cmd = [sys.executable, "-m", "bench.rss", mode, str(steps)]
        cmd += [] if trace is None else [str(trace)]
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
        if done.returncode:
            raise BenchError(f"{' '.join(cmd[1:])} exited {done.returncode}: {done.stderr}")
        result: dict[str, Any] = json.loads(done.stdout)
        if "unavailable" in result:
            raise Unavailable(result["unavailable"])
        return result

    def sample() -> float:
        if mode == "play" and trace is not None and not trace.exists():
            _rss_sampler("record", steps, trace)()  # the trace to play; its peak is not kept
        return float(child()["peak_kib"])

    return sample


def bench_memory(settings: Settings, z: Sizes) -> list[Figure]:
    small, large = z.rss_steps
    # A fresh process per value: no warm-up (there is nothing to warm), fewer rounds.
    once = replace(settings, warmup=0, repeat=min(settings.repeat, z.rss_repeat))
    with tempfile.TemporaryDirectory(prefix="evreplay-bench-") as tmp:
        # Play children play what the record children of the same size wrote.
        traces = {steps: Path(tmp) / f"rss-{steps}.trace" for steps in (small, large)}
        runs = {
            "baseline": ("plain", 0),
            "1m_steps": ("plain", small),
            "10m_steps": ("plain", large),
            "record_1m_steps": ("record", small),
            "record_10m_steps": ("record", large),
            "play_1m_steps": ("play", small),
            "play_10m_steps": ("play", large),
        }
        samplers = {
            name: _rss_sampler(mode, steps, traces.get(steps) if mode != "plain" else None)
            for name, (mode, steps) in runs.items()
        }
        s = rounds(samplers, once)
    figs = [
        figure(
            f"rss_{name}",
            f"rss: {mode} run, {size_text(steps)} steps",
            "KiB",
            s[name],
            note=RSS_NOTE,
            params={"steps": steps},
        )
        for name, (mode, steps) in runs.items()
    ]
    label = f"{size_text(large)} / {size_text(small)} steps"
    pairs = (
        ("rss_ratio_10m_1m", "plain", "10m_steps", "1m_steps"),
        ("rss_ratio_record_10m_1m", "record", "record_10m_steps", "record_1m_steps"),
        ("rss_ratio_play_10m_1m", "play", "play_10m_steps", "play_1m_steps"),
    )
    return figs + [
        ratio(key, f"rss: {mode} run, {label}", s[hi], s[lo], target=Target("<=", 1.2))
        for key, mode, hi, lo in pairs
    ]


# -- 6. scaling --------------------------------------------------------------------------


def bench_scaling(settings: Settings, z: Sizes) -> list[Figure]:
    active, total = z.active_timers, z.active_dispatches
    fds = partial(workloads.idle_fds, n_active=active, total=total)
    tms = partial(workloads.pending_timers, n_active=active, total=total)
    return [
        *_scaling(settings, "fds", "idle fds", FULL.idle_fds, z.idle_fds, fds, total),
        *_scaling(
            settings, "timers", "pending timers", FULL.pending_timers, z.pending_timers, tms, total
        ),
    ]


_SCALING_TARGETS = {
    "fds": ("scaling_fds_ratio_100k_10", Target("<=", 1.2)),
    "timers": ("scaling_timers_ratio_1m_100", Target("<=", 2.0)),
}


def _scaling(
    settings: Settings,
    what: str,
    label: str,
    full_sizes: tuple[int, ...],
    sizes: tuple[int, ...],
    prepare: Callable[[int], Run],
    total: int,
) -> list[Figure]:
    """ns per step of the same active workload beside each count of idle things."""
    s = rounds({str(n): cost_ns(partial(prepare, n)) for n in sizes}, settings)
    figs = [
        figure(
            f"scaling_{what}_{full}",
            f"scaling: {size_text(n)} {label}",
            "ns/step",
            s[str(n)],
            params={what: n, "active_dispatches": total},
        )
        for full, n in zip(full_sizes, sizes, strict=True)
    ]
    lo, hi = sizes[0], sizes[-1]
    key, target = _SCALING_TARGETS[what]
    text = f"scaling: {size_text(hi)} / {size_text(lo)} {label}"
    return [*figs, ratio(key, text, s[str(hi)], s[str(lo)], target=target)]
