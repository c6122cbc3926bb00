"""Tests for the ``replay`` command line (``replay.cli``, ``python -m replay``).

Most run the CLI in-process through ``main(argv)``, which returns the exit
code; a few run it as a real subprocess to check the entry point, the exit
codes a shell sees, and that a user's mistake never shows a traceback.

Exit codes: 0 ok, 1 a finding (failure, divergence, difference), 2 usage
error or bad input, which is one line on stderr: ``replay: error: ...``.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import tests.scenarios.divergent as divergent
from evloop import DispatchEvent
from replay import TraceReader, play, record
from replay.cli.main import main
from replay.cli.options import BUNDLED_SCENARIOS, default_trace_path, parse_duration_ns, parse_param
from replay.tools.events import RecordStream, format_ns
from replay.trace.format import CHUNK_HEADER, CHUNK_HEADER_SIZE, MAGIC

ROOT = Path(__file__).resolve().parents[3]
MACHINE = "examples.minimachine:scenario"
DIVERGENT = "tests.scenarios.divergent"
WORKLOADS = "tests.scenarios.workloads"
FAILS = "tests.scenarios.failing:callback_fails"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def run_subprocess(*args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "replay", *args], cwd=cwd, capture_output=True, text=True,
        env={**os.environ, **env}, check=False, timeout=120,
    )


def facts(path: Path) -> dict[str, Any]:
    """What a trace's summaries must say, taken from the library (not from literals)."""
    steps: list[DispatchEvent] = []
    played = play(path, on_step=steps.append)
    with RecordStream(path) as stream:
        for _ in stream:
            pass
    return {
        "steps": played.steps, "time": format_ns(played.time_ns), "events": played.events,
        "records": stream.records, "bytes": path.stat().st_size, "decisions": stream.decisions,
        "threads": list(dict.fromkeys(["main", *(s.thread for s in steps if s.kind != "input")])),
        "timers": sum(1 for s in steps if s.kind == "timer"),
    }


def last_chunk_offset(data: bytes) -> int:
    offset = last = len(MAGIC)
    while offset < len(data):
        last = offset
        offset += CHUNK_HEADER_SIZE + CHUNK_HEADER.unpack_from(data, offset)[0]
    return last


def assert_user_error(code: int, err: str, message: str) -> None:
    assert code == 2
    assert err.startswith("replay: error: ")
    assert len(err.strip().splitlines()) == 1, err
    assert message in err
    assert "Traceback" not in err


@pytest.fixture
def machine(tmp_path: Path) -> Path:
    path = tmp_path / "machine.evr"
    record(MACHINE, path)
    return path


@pytest.fixture
def failing(tmp_path: Path) -> Path:
    path = tmp_path / "failing.evr"
    record(FAILS, path)
    return path


# -- record ----------------------------------------------------------------------------------


def test_record_writes_the_trace_and_prints_a_one_line_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m.evr"
    code, stdout, err = run(["record", MACHINE, "-o", str(out)], capsys)
    assert (code, err) == (0, "")
    f = facts(out)
    assert stdout == (
        f"recorded {MACHINE} (seed 0, chooser fifo): {f['steps']} steps, {f['time']} virtual, "
        f"{f['records']} records, {f['bytes']} bytes, {f['decisions']} decisions; idle -> {out}\n"
    )
    assert play(out).bit_exact


def test_record_takes_seed_chooser_params_and_limits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m.evr"
    code, stdout, _ = run(
        ["record", MACHINE, "-o", str(out), "--seed", "7", "--chooser", "random", "--chooser-seed",
         "1", "--param", "requests=1", "--param", "text=b'x'", "--param", "fixed=True",
         "--until-ns", "25ms", "--max-steps", "1000"],
        capsys,
    )
    assert code == 0, stdout
    with TraceReader(out) as reader:
        header = reader.header
    assert (header.seed, header.chooser) == (7, "random:1")
    assert dict(header.parameters) == {"requests": 1, "text": b"x", "fixed": True}
    assert header.extensions["run.until_ns"] == 25_000_000
    assert header.extensions["run.max_steps"] == 1000
    assert "; until -> " in stdout


def test_record_writes_to_traces_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    code, stdout, _ = run(["record", MACHINE, "--seed", "2"], capsys)
    assert code == 0
    assert (tmp_path / "traces" / "minimachine-scenario-seed2.evr").is_file()
    assert stdout.rstrip().endswith("-> traces/minimachine-scenario-seed2.evr")
    assert default_trace_path("dir/my_file.py:boot", 3, "random:7") == Path(
        "traces/my_file-boot-seed3-random-7.evr"
    )


def test_a_failure_found_while_recording_is_exit_1_with_the_replay_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bug.evr"
    code, stdout, _ = run(["record", FAILS, "-o", str(out), "--param", "at_tick=2"], capsys)
    assert code == 1
    summary, again = stdout.splitlines()
    assert "; FAILED: exception: AssertionError: tick 3 of <" in summary
    assert again == f"replay it with: replay play {out}"
    assert play(out).failure is not None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["record", "nosuch:thing"], "scenario 'nosuch:thing': cannot import module 'nosuch'"),
        (["record", "examples.minimachine:nope"], "has no attribute 'nope'"),
        (["record", "just-a-name"], "is not of the form module:function"),
        (["record", MACHINE, "--param", "nope=3"], "does not accept these"),
        (["record", MACHINE, "--param", "requests"], "expected KEY=VALUE"),
        (["record", MACHINE, "--param", "requests={1}"], "a value the trace format cannot hold"),
        (["record", MACHINE, "--seed", "x"], "argument --seed: expected an integer, not 'x'"),
        (["record", MACHINE, "--seed", str(2**64)], "expected an integer in ["),
        (["record", MACHINE, "--chooser", "lifo"], "--chooser: unknown chooser 'lifo'"),
        (["record", MACHINE, "--chooser", "random:1", "--chooser-seed", "2"], "has its seed"),
        (["record", MACHINE, "--until-ns", "soon"], "a duration such as 50ms"),
        (["record", MACHINE, "--max-steps", "-1"], "expected an integer >= 0"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_record_user_errors_are_one_line_and_exit_2(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, stdout, err = run([*argv, "-o", str(tmp_path / "t.evr")], capsys)
    assert_user_error(code, err, message)
    assert stdout == ""


def test_param_values_are_python_literals_or_text() -> None:
    assert parse_param("n=3") == ("n", 3)
    assert parse_param("xs=[1, 2]") == ("xs", [1, 2])
    assert parse_param("label=hello world") == ("label", "hello world")
    assert parse_param("blob=b'\\x00'") == ("blob", b"\x00")
    assert parse_duration_ns("50ms") == 50_000_000
    assert parse_duration_ns("123") == 123


# -- play ------------------------------------------------------------------------------------


def test_play_replays_bit_exactly(machine: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, _ = run(["play", str(machine)], capsys)
    assert code == 0
    f = facts(machine)
    assert stdout == (
        f"replayed {machine}: {f['steps']} steps, {f['time']} virtual, {f['events']} events, "
        "bit-exact (idle)\n"
    )


def test_play_of_a_recorded_failure_replays_to_the_same_failure(
    failing: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, stdout, _ = run(["play", str(failing)], capsys)
    assert code == 1  # the program failed, as when it was recorded
    assert "replays to the same failure: exception: AssertionError: tick 4 of <" in stdout


def test_play_until_step(machine: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, _ = run(["play", str(machine), "--until-step", "10"], capsys)
    assert code == 0
    assert stdout.startswith(f"replayed {machine} to step 10: 10 steps")


def test_play_of_a_changed_scenario_is_a_divergence_exit_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "t.evr"
    record(f"{DIVERGENT}:scenario", path)
    monkeypatch.setattr(divergent, "scenario", divergent.changed)
    code, stdout, err = run(["play", str(path)], capsys)
    assert code == 3
    assert stdout.startswith(f"{path}: replay diverged at event ")
    assert "  expected: 'CHECKPOINT FINAL" in stdout or "  expected: " in stdout
    assert err == ""


def test_play_of_a_truncated_trace_says_where_it_ends_and_what_was_replayed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    full = tmp_path / "full.evr"
    record(f"{WORKLOADS}:many_decisions", full, chooser="random:1", params={"yields": 3000})
    cut = tmp_path / "cut.evr"
    cut.write_bytes(full.read_bytes()[:-100])
    code, stdout, _ = run(["play", str(cut)], capsys)
    assert code == 3
    first, second = stdout.splitlines()
    assert first.startswith(f"{cut}: the trace is truncated: it ends at byte ")
    assert "(expected a chunk" in first
    assert second.startswith("replayed its ")
    assert "and stopped there, at step" in second
    assert second.endswith("what came after is not in the trace")


@pytest.mark.parametrize("command", ["play", "dump", "stats", "export"])
def test_a_missing_file_is_one_line_exit_2(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run([command, str(tmp_path / "nope.evr")], capsys)
    assert_user_error(code, err, f"{tmp_path / 'nope.evr'}: no such file")


@pytest.mark.parametrize("command", ["play", "dump", "stats", "export"])
def test_a_file_that_is_not_a_trace_is_one_line_naming_the_offset(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "notes.evr"
    path.write_text("hello\n")
    code, _, err = run([command, str(path)], capsys)
    assert_user_error(code, err, f"{path}: byte 0: expected the evreplay trace magic")
    assert "found b'hello\\n' (not an evreplay trace)" in err


def test_a_corrupt_trace_is_one_line_with_offset_expected_and_found(
    machine: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = bytearray(machine.read_bytes())
    data[-5] ^= 0x40  # in the last chunk's payload
    machine.write_bytes(bytes(data))
    code, _, err = run(["play", str(machine)], capsys)
    at = last_chunk_offset(bytes(data))
    assert_user_error(code, err, f"{machine}: byte {at}: expected a chunk matching its crc32")
    assert "(corrupt)" in err


def test_a_trace_whose_scenario_is_gone_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = tmp_path / "gone.py"
    module.write_text("def scenario(sim):\n    pass\n")
    path = tmp_path / "t.evr"
    record(f"{module}:scenario", path)
    module.unlink()
    code, _, err = run(["play", str(path)], capsys)
    assert_user_error(code, err, "no such file")


# -- dump ------------------------------------------------------------------------------------


def test_dump_prints_steps_and_records(machine: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, _ = run(["dump", str(machine)], capsys)
    assert code == 0
    lines = stdout.splitlines()
    assert lines[0].startswith(f"# {machine}: {MACHINE}")
    f = facts(machine)
    assert len(lines) == 2 + f["steps"] + f["events"] + 1


def test_dump_json_with_kinds_and_bounds(
    threaded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, stdout, _ = run(
        ["dump", str(threaded), "--json", "--kinds", "turn,choice", "--from", "3", "--to", "30"],
        capsys,
    )
    assert code == 0
    objects = [json.loads(line) for line in stdout.splitlines()]
    body = [o for o in objects if o["type"] in ("step", "record")]
    assert body and {o["kind"] for o in body} == {"turn", "choice"}
    assert all(3 <= o["step"] <= 30 for o in body)


@pytest.fixture
def threaded(tmp_path: Path) -> Path:
    path = tmp_path / "threaded.evr"
    record(f"{WORKLOADS}:threaded", path, chooser="random:4", params={"rounds": 2})
    return path


def test_dump_rejects_an_unknown_kind_and_reversed_bounds(
    machine: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["dump", str(machine), "--kinds", "timer,tick"], capsys)
    assert_user_error(code, err, "--kinds: unknown kind 'tick'")
    code, _, err = run(["dump", str(machine), "--from", "9", "--to", "3"], capsys)
    assert_user_error(code, err, "--from 9 is after --to 3")


def test_dump_of_a_divergent_trace_is_exit_3_with_the_message_on_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "t.evr"
    record(f"{DIVERGENT}:scenario", path)
    monkeypatch.setattr(divergent, "scenario", divergent.changed)
    code, stdout, err = run(["dump", "--json", str(path)], capsys)
    assert code == 3
    assert err.startswith(f"{path}: replay diverged at event ")
    assert all(json.loads(line) for line in stdout.splitlines())


# -- diff ------------------------------------------------------------------------------------


def test_diff_of_identical_traces_is_exit_0(
    machine: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "copy.evr"
    record(MACHINE, copy)
    code, stdout, _ = run(["diff", str(machine), str(copy)], capsys)
    assert code == 0
    assert stdout == f"identical: {machine} and {copy} are the same bytes\n"


def test_diff_of_different_traces_names_the_first_divergent_step(
    machine: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.evr"
    record(MACHINE, other, chooser="random:3")
    code, stdout, _ = run(["diff", str(machine), str(other), "--context", "2"], capsys)
    assert code == 1
    lines = stdout.splitlines()
    assert lines[:4] == [f"A: {machine}", f"B: {other}", "headers differ:",
                         "  chooser: A 'fifo', B 'random:3'"]
    assert lines[4].startswith("first divergent step: ")
    assert lines[5] == "  identical before it (last 2):"
    assert any(line.startswith("  A:") for line in lines)
    assert any(line.startswith("  B:") for line in lines)
    assert any(line.startswith("first differing trace event: ") for line in lines)


# -- stats, export ---------------------------------------------------------------------------


def test_stats(machine: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, _ = run(["stats", str(machine)], capsys)
    assert code == 0
    f = facts(machine)
    assert f"trace:            {machine}: {f['bytes']} bytes, 2 chunks, complete" in stdout
    assert f"run:              {f['steps']} steps, {f['time']} virtual (idle)" in stdout
    assert "steps by thread:  main " in stdout
    assert "(packed in CHOICES: 2.00)" in stdout
    code, stdout, _ = run(["stats", "--json", str(machine)], capsys)
    assert json.loads(stdout)["steps_by_kind"]["timer"] == f["timers"]


def test_export_writes_chrome_trace_json(
    machine: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out" / "m.json"
    out.parent.mkdir()  # a missing directory is refused (test_cli_outputs.py)
    code, stdout, _ = run(["export", str(machine), "--format", "perfetto", "-o", str(out)],
                          capsys)
    assert code == 0
    assert stdout.startswith(f"wrote {out}: ")
    threads = facts(machine)["threads"]
    assert f"on {len(threads)} thread tracks ({', '.join(threads)})" in stdout
    assert json.loads(out.read_text())["traceEvents"]
    code, stdout, _ = run(["export", str(machine), "-o", "-", "--timeline", "steps"], capsys)
    assert code == 0 and json.loads(stdout)["otherData"]["timeline"] == "steps"


def test_export_of_a_divergent_trace_leaves_no_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "t.evr"
    record(f"{DIVERGENT}:scenario", path)
    monkeypatch.setattr(divergent, "scenario", divergent.changed)
    out = tmp_path / "t.json"
    code, _, err = run(["export", str(path), "-o", str(out)], capsys)
    assert code == 3 and "replay diverged" in err
    assert list(tmp_path.iterdir()) == [path]


# -- verify ----------------------------------------------------------------------------------


def test_verify_a_tree_of_good_bad_and_diverging_traces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = tmp_path / "corpus"
    (tree / "sub").mkdir(parents=True)
    record(MACHINE, tree / "a-good.evr")
    record(FAILS, tree / "sub" / "b-failure.evr")
    record(f"{DIVERGENT}:scenario", tree / "c-diverges.evr")
    good = (tree / "a-good.evr").read_bytes()
    (tree / "sub" / "d-truncated.evr").write_bytes(good[:-4])
    (tree / "e-not-a-trace.evr").write_text("hello")
    (tree / "readme.txt").write_text("not a trace, not looked at")
    monkeypatch.setattr(divergent, "scenario", divergent.changed)
    code, stdout, _ = run(["verify", str(tree)], capsys)
    assert code == 1
    lines = stdout.splitlines()
    assert [line.split()[0] for line in lines[:-1]] == ["ok", "diverged", "bad", "ok", "bad"]
    assert "replay diverged at event" in lines[1]
    assert "byte 0: expected the evreplay trace magic" in lines[2]
    assert "replays to the same failure" in lines[3]
    assert "(truncated)" in lines[4]
    assert lines[-1] == "5 traces: 2 ok, 1 diverged, 2 bad"


def test_verify_of_good_traces_is_exit_0(
    machine: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, stdout, _ = run(["verify", str(machine.parent)], capsys)
    assert code == 0
    assert stdout.splitlines()[-1] == "1 traces: 1 ok, 0 diverged, 0 bad"


def test_verify_of_a_missing_dir_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["verify", str(tmp_path / "nope")], capsys)
    assert_user_error(code, err, "no such directory")


# -- scenarios, help -------------------------------------------------------------------------


def test_scenarios_lists_the_bundled_ones(capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, _ = run(["scenarios"], capsys)
    assert code == 0
    lines = stdout.splitlines()
    assert lines[0] == BUNDLED_SCENARIOS[0] == "replay.examples.minimachine:scenario"
    assert lines[1].startswith("    The bundled machine: ")
    assert lines[2].startswith("    params: ")


@pytest.mark.parametrize(
    "command",
    ["record", "play", "dump", "diff", "stats", "export", "verify", "scenarios",
     "check-determinism"],
)
def test_every_command_has_help_with_examples(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, stdout, _ = run([command, "--help"], capsys)
    assert code == 0
    assert "examples:\n  replay " + command in stdout


def test_no_command_prints_help_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run([], capsys)
    assert code == 2 and "usage: replay" in err


# -- check-determinism -----------------------------------------------------------------------

HASH_ORDER = """\
from evloop import Simulation

NAMES = {"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"}


def scenario(sim: Simulation) -> None:
    ctx = sim.main_loop.aio_context
    for name in NAMES:  # a set of str: its order depends on PYTHONHASHSEED
        ctx.bh_schedule_oneshot(lambda: None, name=name)
"""

WALL_CLOCK = """\
import time

from evloop import ClockType, Simulation


def scenario(sim: Simulation) -> None:
    delay = 1 + time.time_ns() % 1_000_000  # the real clock, outside the simulation
    sim.main_loop.timer_new_ns(ClockType.REALTIME, lambda: None, name="wall").mod_ns(delay)
"""


@pytest.mark.slow
def test_check_determinism_passes_on_the_bundled_machine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, stdout, _ = run(
        ["check-determinism", MACHINE, "--runs", "3", "--seed", "0", "--keep", str(tmp_path)],
        capsys,
    )
    assert code == 0, stdout
    lines = stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:3]] == [
        "run 1 (PYTHONHASHSEED=1)", "run 2 (PYTHONHASHSEED=2)", "run 3 (PYTHONHASHSEED=3)"
    ]
    assert lines[-1] == (
        f"deterministic: 3 runs of {MACHINE} (seed 0) recorded identical traces and steps"
    )


@pytest.mark.slow
def test_check_determinism_fails_on_set_order_naming_the_step(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = tmp_path / "hash_order.py"
    scenario.write_text(HASH_ORDER)
    code, stdout, _ = run(
        ["check-determinism", f"{scenario}:scenario", "--runs", "2", "--seed", "0",
         "--keep", str(tmp_path / "runs")],
        capsys,
    )
    assert code == 1
    assert ("NOT deterministic: run 1 (PYTHONHASHSEED=1) and run 2 (PYTHONHASHSEED=2) differ "
            "in their steps (traces identical)") in stdout
    assert "first divergent step: 1\n" in stdout
    assert f"traces and step dumps kept in {tmp_path / 'runs'}" in stdout


@pytest.mark.slow
def test_check_determinism_fails_on_the_real_clock_naming_the_step(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = tmp_path / "wall_clock.py"
    scenario.write_text(WALL_CLOCK)
    code, stdout, _ = run(
        ["check-determinism", f"{scenario}:scenario", "--runs", "2", "--keep", str(tmp_path / "r")],
        capsys,
    )
    assert code == 1
    assert "differ in their traces" in stdout
    assert "first divergent step: 1\n" in stdout
    assert "timer      wall" in stdout
    assert "its trace does not replay in a process like the one that recorded it" in stdout


def test_check_determinism_user_errors(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["check-determinism", MACHINE, "--runs", "1"], capsys)
    assert_user_error(code, err, "--runs: expected an integer in [2, 1000], not 1")
    code, _, err = run(["check-determinism", "nosuch:x"], capsys)
    assert_user_error(code, err, "cannot import module 'nosuch'")


# -- the real entry point --------------------------------------------------------------------


def test_python_dash_m_replay_runs_and_exits_with_the_codes(tmp_path: Path) -> None:
    out = tmp_path / "m.evr"
    done = run_subprocess("record", MACHINE, "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"recorded {MACHINE}")
    done = run_subprocess("play", str(out))
    assert (done.returncode, done.stderr) == (0, "")
    done = run_subprocess("record", FAILS, "-o", str(tmp_path / "bug.evr"))
    assert done.returncode == 1
    assert "replay it with: replay play" in done.stdout


@pytest.mark.parametrize(
    "args",
    [("play", "nope.evr"), ("record", "nosuch:x"), ("record", MACHINE, "--param", "bad"),
     ("dump", "README.md"), ("stats", "docs")],
)
def test_user_errors_in_a_real_process_show_no_traceback(args: tuple[str, ...]) -> None:
    done = run_subprocess(*args)
    assert done.returncode == 2
    assert done.stderr.startswith("replay: error: ")
    assert len(done.stderr.splitlines()) == 1
    assert "Traceback" not in done.stderr


def test_a_scenario_edited_on_disk_diverges_in_a_real_process(tmp_path: Path) -> None:
    scenario = tmp_path / "machine.py"
    body = textwrap.dedent("""\
        from evloop import SCALE_MS, ClockType, Simulation

        def scenario(sim: Simulation, *, ticks: int = 6) -> None:
            seen = []

            def tick() -> None:
                seen.append(sim.now_ns)
                if len(seen) == 3 and EXTRA:
                    sim.main_loop.aio_context.bh_schedule_oneshot(lambda: None, name="extra")
                if len(seen) < ticks:
                    timer.mod_ns(sim.now_ns + SCALE_MS)

            timer = sim.main_loop.timer_new_ns(ClockType.REALTIME, tick, name="tick")
            timer.mod_ns(SCALE_MS)
        """)
    scenario.write_text("EXTRA = False\n" + body)
    out = tmp_path / "t.evr"
    assert run_subprocess("record", f"{scenario}:scenario", "-o", str(out)).returncode == 0
    scenario.write_text("EXTRA = True\n" + body)
    done = run_subprocess("play", str(out), "--scenario", f"{scenario}:scenario")
    assert done.returncode == 3
    assert done.stdout.startswith(f"{out}: replay diverged at event ")
    assert "Traceback" not in done.stdout + done.stderr
    done = run_subprocess("verify", str(tmp_path), "--scenario", f"{scenario}:scenario")
    assert done.returncode == 1
    assert done.stdout.splitlines()[-1] == "1 traces: 0 ok, 1 diverged, 0 bad"


def test_a_broken_pipe_is_quiet(tmp_path: Path) -> None:
    path = tmp_path / "long.evr"  # a dump far longer than a pipe's buffer
    record(f"{WORKLOADS}:many_decisions", path, chooser="random:1", params={"yields": 800})
    done = subprocess.run(
        f"{sys.executable} -m replay dump {path} | head -n 2", shell=True, cwd=ROOT,
        capture_output=True, text=True, check=False, timeout=60,
    )
    assert len(done.stdout.splitlines()) == 2
    assert "Traceback" not in done.stderr and "Broken pipe" not in done.stderr


def test_progress_goes_to_a_terminal_only(
    machine: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    code, _, err = run(["verify", str(machine.parent)], capsys)
    assert code == 0  # not a terminal: plain lines, the last one how it ended
    assert "\r" not in err and "\x1b" not in err
    assert err.splitlines()[-1].startswith(f"verifying {machine.parent}: 100%")
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["verify", str(machine.parent)]) == 0
    assert terminal.getvalue().startswith(f"\rverifying {machine.parent}:")
    assert terminal.getvalue().endswith("\r")  # the line is cleared


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from evloop import __version__

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"replay (evreplay) {__version__}\n"


# -- the README's CI layout: verify the clean traces, rerun the fixed bugs' ---------------

RACY = """
from evloop import SCALE_MS

def scenario(sim, *, clients=2):
    order = []

    def client(i):
        sim.sleep(5 * SCALE_MS)
        order.append(i)
        assert FIXED or order == sorted(order), f"out of order: {order}"

    for i in range(clients):
        sim.thread(f"client{i}", lambda i=i: client(i))

FIXED = False
"""


def test_the_readmes_ci_layout_keeps_both_gates_green_after_a_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "racy.py").write_text(RACY)
    for d in ("clean", "regressions", "failures"):
        (tmp_path / "traces" / d).mkdir(parents=True)
    spec = "racy.py:scenario"
    assert main(["record", spec, "-o", "traces/clean/fifo.evr"]) == 0
    assert main(["fuzz", spec, "--runs", "200", "-o", "traces/failures/race.evr"]) == 1
    assert main(["play", "traces/failures/race.evr"]) == 1  # reproduces the failure
    assert main(["rerun", "traces/failures/race.evr"]) == 1  # not fixed yet
    (tmp_path / "racy.py").write_text(RACY.replace("FIXED = False", "FIXED = True"))
    capsys.readouterr()
    assert main(["rerun", "traces/failures/race.evr"]) == 0
    assert "fixed: the recorded failure does not recur" in capsys.readouterr().out
    (tmp_path / "traces" / "failures" / "race.evr").rename(
        tmp_path / "traces" / "regressions" / "race.evr"
    )
    assert main(["verify", "traces/clean/"]) == 0
    assert main(["rerun", "traces/regressions/"]) == 0
