"""The benchmark suite runs, on tiny sizes, and writes well-formed JSON.

No timing is asserted here, ever: machines are shared and noisy, and the
figures are for people to read (``make bench``). What is asserted is that every
workload's code runs, that ``results.json`` has every expected figure with the
expected shape, and the harness's arithmetic on made-up values.

The runs and the dispatch anatomy import the peers (simpy, trio): without the
``bench`` extra those tests skip, saying so; the harness's own tests still run.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.harness import Series, Settings, Status, Target, figure, ratio, rounds

ROOT = Path(__file__).resolve().parents[2]

#: The peers ``bench`` measures against: the ``bench`` extra.
BENCH_EXTRA = ("simpy", "trio", "async_solipsism")
_MISSING = [name for name in BENCH_EXTRA if importlib.util.find_spec(name) is None]

#: On every test that runs the suite or imports ``bench.peers``.
needs_bench_extra = pytest.mark.skipif(
    bool(_MISSING),
    reason=f"needs the bench extra (pip install -e '.[bench]'): {', '.join(_MISSING)} missing",
)

EXPECTED_FIGURES = {
    "timers_evreplay",
    "timers_simpy",
    "timers_asyncio_virtual",
    "timers_trio",
    "timers_heapq",
    "timers_ratio_simpy",
    "timers_ratio_heapq",
    "timers_ratio_asyncio",
    "timers_ratio_trio",
    "bh_evreplay",
    "bh_asyncio_call_soon",
    "bh_asyncio_virtual_call_soon",
    "bh_ratio_asyncio",
    "bh_ratio_asyncio_virtual",
    "pingpong_evreplay",
    "pingpong_asyncio",
    "pingpong_ratio_asyncio",
    "record_overhead_timers",
    "play_overhead_timers",
    "bytes_per_event_timers",
    "record_overhead_bh",
    "play_overhead_bh",
    "bytes_per_event_bh",
    "record_overhead_pingpong",
    "play_overhead_pingpong",
    "bytes_per_event_pingpong",
    "record_overhead_threads",
    "play_overhead_threads",
    "bytes_per_event_threads",
    "record_overhead_asyncio_sleep",
    "play_overhead_asyncio_sleep",
    "bytes_per_event_asyncio_sleep",
    "record_overhead_asyncio_queue",
    "play_overhead_asyncio_queue",
    "bytes_per_event_asyncio_queue",
    "bytes_per_decision",
    "trace_other_records_timers",
    "trace_other_records_bh",
    "rss_baseline",
    "rss_1m_steps",
    "rss_10m_steps",
    "rss_record_1m_steps",
    "rss_record_10m_steps",
    "rss_play_1m_steps",
    "rss_play_10m_steps",
    "rss_ratio_10m_1m",
    "rss_ratio_record_10m_1m",
    "rss_ratio_play_10m_1m",
    "scaling_fds_10",
    "scaling_fds_1000",
    "scaling_fds_10000",
    "scaling_fds_100000",
    "scaling_fds_ratio_100k_10",
    "scaling_timers_100",
    "scaling_timers_10000",
    "scaling_timers_1000000",
    "scaling_timers_ratio_1m_100",
    "threads_2",
    "threads_4",
    "threads_8",
    "threads_record_2",
    "threads_record_4",
    "threads_record_8",
    "threads_play_2",
    "threads_play_4",
    "threads_play_8",
    "threads_ratio_play_record_8",
    "bounce_greenlet",
    "bounce_os",
    "bounce_asyncio",
    "bounce_ratio_asyncio",
    "bounce_ratio_os",
    "coroutine_round_trip",
    "generator_round_trip",
    "coroutine_ratio_generator",
    "asyncio_chain_evreplay",
    "asyncio_chain_stock",
    "asyncio_chain_ratio_stock",
    "asyncio_event_evreplay",
    "asyncio_event_stock",
    "asyncio_event_ratio_stock",
    "asyncio_queue_evreplay",
    "asyncio_queue_stock",
    "asyncio_queue_ratio_stock",
    "asyncio_sleep_evreplay",
    "asyncio_sleep_solipsism",
    "asyncio_sleep_looptime",
    "asyncio_sleep_ratio_virtual",
    "ctx_timer_evreplay",
    "ctx_timer_simpy",
    "ctx_timer_ratio_simpy",
    "ctx_timers_evreplay",
    "ctx_timers_simpy",
    "ctx_timers_ratio_simpy",
    "fd_bounce_evreplay",
    "fd_bounce_asyncio",
    "fd_bounce_ratio_asyncio",
    "campaign_serial",
    "campaign_process_b32",
    "campaign_dask_b32",
    "campaign_process_b128",
    "campaign_dask_b128",
    "campaign_ratio_process_dask_b32",
    "campaign_ratio_process_dask_b128",
    "campaign_ratio_process_serial",
}

#: Figures that count things that may rightly be none (records besides checkpoints).
MAY_BE_ZERO = {"trace_other_records_timers", "trace_other_records_bh"}

#: Figures measured on peers alone: they must be measured whatever state evloop is in.
PEER_FIGURES = {
    "timers_simpy",
    "timers_asyncio_virtual",
    "timers_trio",
    "timers_heapq",
    "bh_asyncio_call_soon",
    "bh_asyncio_virtual_call_soon",
    "pingpong_asyncio",
    "bounce_asyncio",
    "generator_round_trip",
    "asyncio_chain_stock",
    "asyncio_event_stock",
    "asyncio_queue_stock",
    "asyncio_sleep_solipsism",
    "ctx_timer_simpy",
    "ctx_timers_simpy",
    "fd_bounce_asyncio",
}

FIGURE_KEYS = {"label", "unit", "median", "runs", "status", "note", "target", "met", "params"}
MACHINE_KEYS = {"python", "implementation", "platform", "cpu_count", "cpus_usable"}


def _evloop_imports() -> bool:
    try:
        return hasattr(importlib.import_module("evloop"), "Simulation")
    except ImportError:
        return False


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One ``python -m bench --quick`` run, in a fresh interpreter with warnings as errors."""
    path = tmp_path_factory.mktemp("bench") / "results.json"
    cmd = [sys.executable, "-W", "error", "-m", "bench", "--quick", "--json", str(path)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "timers: simpy" in done.stdout
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


@pytest.mark.slow  # the shared quick run takes about 2 s
@needs_bench_extra
def test_quick_run_writes_every_expected_figure(quick_results: dict[str, Any]) -> None:
    assert set(quick_results["figures"]) == EXPECTED_FIGURES
    assert set(quick_results) >= MACHINE_KEYS
    assert quick_results["quick"] is True
    assert (quick_results["repeat"], quick_results["warmup"]) == (1, 0)


@pytest.mark.slow  # the shared quick run takes about 2 s
@needs_bench_extra
def test_quick_figures_are_well_formed(quick_results: dict[str, Any]) -> None:
    for key, fig in quick_results["figures"].items():
        assert set(fig) == FIGURE_KEYS, key
        assert fig["status"] in {"ok", "unavailable"}, (key, fig["note"])
        if fig["status"] == "ok":
            assert len(fig["runs"]) == 1, key
            assert isinstance(fig["median"], float), key
            assert fig["median"] > 0 or (key in MAY_BE_ZERO and fig["median"] == 0), key
        else:
            assert (fig["median"], fig["runs"], fig["met"]) == (None, [], None), key
        if fig["target"] is None:
            assert fig["met"] is None, key


#: Peer figures whose package make bench installs in a folder of its own.
INSTALLED_APART = frozenset({"asyncio_sleep_looptime"})


@pytest.mark.slow  # the shared quick run takes about 2 s
@needs_bench_extra
def test_peers_are_always_measured(quick_results: dict[str, Any]) -> None:
    for key in PEER_FIGURES:
        assert quick_results["figures"][key]["status"] == "ok", key


@pytest.mark.slow  # the shared quick run takes about 2 s
@needs_bench_extra
def test_evreplay_figures_are_measured_once_evloop_imports(
    quick_results: dict[str, Any],
) -> None:
    # looptime is installed apart, by make bench only (it registers a pytest
    # plugin of its own): its figure may read unavailable in any test run.
    statuses = {
        fig["status"]
        for key, fig in quick_results["figures"].items()
        if key not in INSTALLED_APART
    }
    if _evloop_imports():
        assert "unavailable" not in statuses
    else:
        assert "unavailable" in statuses


@needs_bench_extra
def test_only_runs_the_named_workloads(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    cmd = [sys.executable, "-m", "bench", "--quick", "--only", "record", "--json", str(path)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    doc = json.loads(path.read_text())
    assert doc["workloads"] == ["record"]
    assert set(doc["figures"]) == {
        key for key in EXPECTED_FIGURES if key.startswith(("record_", "play_", "bytes_", "trace_"))
    }


@needs_bench_extra
def test_unknown_workload_is_refused(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "bench", "--only", "nope", "--json", str(tmp_path / "r.json")]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "unknown workload nope; choose from timers, bh" in done.stderr


# -- the harness, on made-up values ---------------------------------------------------


def _values(*values: float) -> Any:
    it = iter(values)
    return lambda: next(it)


def test_rounds_discard_warmup_and_interleave() -> None:
    calls: list[str] = []

    def sampler(name: str, value: float) -> Any:
        def sample() -> float:
            calls.append(name)
            return value

        return sample

    series = rounds({"a": sampler("a", 1.0), "b": sampler("b", 2.0)}, Settings(False, 2, 1))
    assert calls == ["a", "b", "b", "a", "a", "b"]
    assert series["a"].runs == [1.0, 1.0]
    assert series["b"].runs == [2.0, 2.0]


def test_warmup_rounds_use_the_smaller_samplers_when_given() -> None:
    calls: list[str] = []

    def sampler(name: str, value: float) -> Any:
        def sample() -> float:
            calls.append(name)
            return value

        return sample

    series = rounds(
        {"a": sampler("a", 1.0), "b": sampler("b", 2.0)},
        Settings(False, 2, 1),
        warmup={"a": sampler("small-a", 9.0)},
    )
    assert calls == ["small-a", "b", "b", "a", "a", "b"]
    assert series["a"].runs == [1.0, 1.0]  # the warm-up value is thrown away
    assert series["b"].runs == [2.0, 2.0]


@needs_bench_extra
@pytest.mark.parametrize("guard", [False, True])
@pytest.mark.parametrize("digest", [False, True])
@pytest.mark.parametrize("clocks", [False, True])
def test_the_dispatch_anatomy_model_does_the_whole_workload(
    guard: bool, digest: bool, clocks: bool
) -> None:
    from bench.anatomy import model

    # model() raises unless every one of the 500 dispatches happened.
    assert model(10, 500, guard=guard, digest=digest, clocks=clocks) > 0


def test_ratio_is_the_median_of_per_round_ratios() -> None:
    series = rounds(
        {"a": _values(10.0, 30.0, 8.0), "b": _values(5.0, 10.0, 8.0)}, Settings(False, 3, 0)
    )
    fig = ratio("k", "a / b", series["a"], series["b"], target=Target(">=", 1.5))
    assert fig.runs == (2.0, 3.0, 1.0)
    assert fig.median == 2.0
    assert fig.met is True
    assert fig.as_json()["target"] == ">= 1.5"


def test_an_unavailable_contender_makes_its_ratios_unavailable() -> None:
    from bench.harness import Unavailable

    def missing() -> float:
        raise Unavailable("evloop does not import yet")

    series = rounds({"a": missing, "b": _values(1.0)}, Settings(True, 1, 0))
    assert series["a"].status is Status.UNAVAILABLE
    fig = ratio("k", "a / b", series["a"], series["b"], target=Target("<=", 1.2))
    assert (fig.status, fig.median, fig.met) == (Status.UNAVAILABLE, None, None)
    assert fig.note == "evloop does not import yet"


def test_a_failing_contender_is_an_error_figure(capsys: pytest.CaptureFixture[str]) -> None:
    def broken() -> float:
        raise KeyError("boom")

    series = rounds({"a": broken}, Settings(True, 1, 0))
    fig = figure("k", "a", "op/s", series["a"])
    assert fig.status is Status.ERROR
    assert fig.note == "KeyError: 'boom'"
    assert "bench: a failed:" in capsys.readouterr().err


def test_target_bounds() -> None:
    assert Target("<=", 1.2).met(1.2) and not Target("<=", 1.2).met(1.21)
    assert Target(">=", 0.4).met(0.4) and not Target(">=", 0.4).met(0.39)
    assert Series().status is Status.OK


# -- bench.report: the README's tables from one run ---------------------------------------


def _results(**figures: dict[str, Any]) -> dict[str, Any]:
    return {
        "implementation": "CPython", "python": "3.11.7", "cpus_usable": 2, "repeat": 5,
        "warmup": 1, "wall_s": 754.4, "workloads": ["timers", "record"], "figures": figures,
    }  # fmt: skip


def test_the_report_lists_ratios_with_their_targets_and_leaves_rates_out() -> None:
    from bench.report import render

    text = render(_results(
        timers_evreplay={"label": "timers: evreplay", "unit": "dispatch/s", "median": 1e5,
                         "status": "ok", "note": "", "target": None, "met": None},
        timers_ratio_simpy={"label": "timers: evreplay / simpy", "unit": "x", "median": 0.674,
                            "status": "ok", "note": "", "target": ">= 1.0", "met": False},
        record_overhead={"label": "record / plain", "unit": "x", "median": 1.061,
                         "status": "ok", "note": "chooser random:1", "target": "<= 1.5",
                         "met": True},
        bytes_per_decision={"label": "bytes per decision", "unit": "B", "median": 2.031,
                            "status": "ok", "note": "", "target": "<= 3.0", "met": True},
    ))  # fmt: skip
    lines = text.splitlines()
    assert lines[0].startswith("One `make bench` run: CPython 3.11.7, 2 usable cores, 5 measured")
    assert "12 min 34 s of wall time" in lines[0]
    assert "| timers: evreplay / simpy | 0.67x | ≥ 1.0x | **no** |" in lines
    assert "| record / plain (chooser random:1) | 1.06x | ≤ 1.5x | yes |" in lines
    assert "| bytes per decision | 2.03 B | ≤ 3.0 B | yes |" in lines
    assert not any("dispatch/s" in line for line in lines)


def test_the_report_refuses_a_file_that_is_not_a_run_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench.report import main

    bad = tmp_path / "r.json"
    bad.write_text('{"figures": {}}')
    assert main([str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"bench.report: {bad}: not a results file of python -m bench")
    assert "Traceback" not in err
