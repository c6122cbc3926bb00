"""replay campaign on the command line: the table, --json, a corpus that verify and rerun
read, a real Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from replay import play, trusting_traces
from replay.cli.main import main
from tests.scenarios.campaign import signature

TWO_BUGS = "tests.scenarios.campaign:two_bugs"
ORDER = signature("AssertionError", "assert queue == sorted(queue)")
STALE = signature("RuntimeError", 'raise RuntimeError("stale read: the writer ran before')
ROOT = Path(__file__).resolve().parents[3]


def test_the_table_names_each_failure_once_and_the_exit_is_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "found"
    code = main(["campaign", TWO_BUGS, "--seeds", "40", "--workers", "1", "-o", str(out)])
    lines = capsys.readouterr().out.splitlines()
    assert code == 1
    assert lines[0].startswith(f"campaign {TWO_BUGS} (random): 40 seeds in ")
    assert lines[0].endswith("30 failing, 2 distinct failures")
    assert lines[1].split() == ["signature", "count", "first", "seed", "shrunk", "trace"]
    order = out / "tests.scenarios.campaign-two_bugs"
    rows = [line.split() for line in lines[2:4]]
    assert [r[:6] for r in rows] == [
        [*ORDER.split(), "21", "0", "1/5"],
        [*STALE.split(), "9", "2", "4/6"],
    ]
    assert all(Path(r[6]).parent == order and play(r[6]).bit_exact for r in rows)
    assert lines[4] == f"replay a trace with: replay play {rows[0][6]}"


def test_json_summary_and_a_clean_scenario_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["campaign", "examples.minimachine:scenario", "--seeds", "6", "--workers", "1",
            "--param", "fixed=True", "--json", "-o", str(tmp_path)]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert {k: summary[k] for k in ("seeds", "ran", "stop", "failing_seeds", "failures")} == {
        "seeds": 6, "ran": 6, "stop": "done", "failing_seeds": 0, "failures": [],
    }


def test_a_corpus_keeps_one_trace_per_failure_across_runs_and_verifies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = tmp_path / "corpus"
    base = ["campaign", TWO_BUGS, "--workers", "2", "--corpus", str(corpus), "--commit", "c1"]
    assert main([*base, "--seeds", "40", "--json"]) == 1
    first = json.loads(capsys.readouterr().out)
    assert [f["corpus"] for f in first["failures"]] == ["new", "new"]
    assert main([*base, "--seeds", "80"]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == f"corpus {corpus}: 0 new, 0 replaced, 2 kept"
    index = json.loads((corpus / "index.json").read_text())
    assert [(e["signature"], e["count"], e["commit"]) for e in index["entries"]] == [
        (ORDER, 21 + 38, "c1"),
        (STALE, 9 + 22, "c1"),
    ]
    assert sorted(p.name for p in corpus.rglob("*")) == sorted(
        [Path(e["trace"]).name for e in index["entries"]]
        + ["index.json", "tests.scenarios.campaign-two_bugs"]
    )  # no staging folder left behind
    assert main(["verify", str(corpus)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "2 traces: 2 ok, 0 diverged, 0 bad"
    # Both bugs are still there: rerun says so (exit 1); it exits 0 once they are fixed.
    assert main(["rerun", str(corpus)]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == "2 traces: 0 fixed, 2 fail, 0 bad"


def test_bad_options_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["campaign", TWO_BUGS, "--seeds", "4", "--executor", "ray"]) == 2
    assert capsys.readouterr().err == (
        "replay: error: argument --executor: expected process, dask-local or tcp://HOST:PORT, "
        "not 'ray' (see 'replay campaign --help')\n"
    )
    assert main(["campaign", TWO_BUGS, "--seeds", "4", "--corpus", "a", "-o", "b"]) == 2
    assert capsys.readouterr().err == (
        "replay: error: --corpus and -o: the corpus is where the traces go; give one of them\n"
    )
    (tmp_path / "index.json").write_text("[]")
    assert main(["campaign", TWO_BUGS, "--seeds", "4", "--corpus", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"replay: error: {tmp_path / 'index.json'}: not a campaign corpus index: its format "
        "is not 'evreplay-campaign-corpus'\n"
    )


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"])
def test_ctrl_c_keeps_every_finished_seed(tmp_path: Path, workers: str) -> None:
    """A real SIGINT to a running campaign: it stops, shrinks and saves what it found."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-m", "replay", "campaign", TWO_BUGS, "--seeds", "10000000",
         "--workers", workers, "--batch", "16", "--json", "-o", str(tmp_path)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert child.stderr is not None
    # Off a terminal, progress is a plain line every few seconds: wait for one
    # saying that 100 seeds are done (both bugs show within the first 40).
    watchdog = threading.Timer(600.0, child.kill)
    watchdog.start()
    try:
        seen: list[str] = []
        for line in child.stderr:
            seen.append(line)
            done = re.search(r"(\d+)/10000000", line)
            if done is not None and int(done.group(1)) >= 100:
                break
        else:
            pytest.fail(f"the campaign ended before 100 seeds: {''.join(seen)}")
        assert child.poll() is None
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=120)
    finally:
        watchdog.cancel()
    assert child.returncode == 1, err
    summary = json.loads(out)
    assert summary["stop"] == "interrupted"
    assert 0 < summary["ran"] < 10_000_000
    assert [f["signature"] for f in summary["failures"]] == [ORDER, STALE]
    with trusting_traces():  # the traces this test just made
        for failure in summary["failures"]:
            assert play(failure["trace"]).bit_exact is True
    assert "Traceback" not in err


@pytest.mark.slow
def test_a_local_dask_cluster_of_processes_finds_what_one_process_finds_quietly(
    tmp_path: Path,
) -> None:
    pytest.importorskip("distributed")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = {}
    for executor, workers in (("process", "1"), ("dask-local", "2")):
        done = subprocess.run(
            [sys.executable, "-m", "replay", "campaign", TWO_BUGS, "--seeds", "48",
             "--executor", executor, "--workers", workers, "--json",
             "-o", str(tmp_path / executor)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 1, done.stderr
        # Not a terminal: progress is plain "campaign ..." lines, and Dask says nothing.
        assert all(line.startswith("campaign ") for line in done.stderr.splitlines()), done.stderr
        summary = json.loads(done.stdout)
        runs[executor] = [
            (f["signature"], f["count"], f["first_seed"], Path(f["trace"]).read_bytes())
            for f in summary["failures"]
        ]
    assert len(runs["process"]) == 2
    assert runs["process"] == runs["dask-local"]


@pytest.mark.slow
def test_a_time_limit_stops_the_campaign_and_keeps_what_it_found(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "replay", "campaign", TWO_BUGS, "--seeds", "10000000",
         "--workers", "1", "--time-limit", "1s", "--json", "-o", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    summary = json.loads(done.stdout)
    assert summary["stop"] == "time-limit" and 0 < summary["ran"] < 10_000_000
    assert [f["signature"] for f in summary["failures"]] == [ORDER, STALE]
