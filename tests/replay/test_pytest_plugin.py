"""The pytest plugin (``replay/pytest_plugin.py``), driven through ``pytester``.

Each test writes a small test suite into a fresh directory and runs pytest on
it in-process (the plugin comes in through its ``pytest11`` entry point, as
in any project that installs evreplay); the xdist tests start workers.
"""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import replay
from replay.pytest_plugin import trace_stem

pytest_plugins = ["pytester"]

#: Warnings are errors in the inner runs too. evloop and replay opt out of
#: assertion rewriting (PYTEST_DONT_REWRITE), so importing them first is fine.
#: pytest-asyncio (in the test extra) is active in them, as in a project using both.
INI = (
    "[pytest]\n"
    "addopts = --strict-markers -p no:cacheprovider\n"
    "asyncio_default_fixture_loop_scope = function\n"
    "filterwarnings =\n"
    "    error\n"
)


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    pytester.makeini(INI)
    # The inner runs are not xdist workers, even when this suite runs under -n.
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    return pytester


def play_in_child(cwd: Path, trace: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m replay play TRACE`` from ``cwd``, as a user replays a saved trace.

    In a child, not in this process: an inner pytest run that first imported
    evloop leaves copies of its modules behind when pytester restores
    ``sys.modules``, and a play mixing the two generations is no real play.
    """
    return subprocess.run(
        [sys.executable, "-m", "replay", "play", str(trace), *args],
        cwd=cwd, capture_output=True, text=True, timeout=300,
    )


def traces_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("*.evr"))


# -- registration ----------------------------------------------------------------------


def test_the_plugin_is_registered_through_a_pytest11_entry_point() -> None:
    entries = importlib.metadata.entry_points(group="pytest11")
    assert [e.value for e in entries if e.name == "evreplay"] == ["replay.pytest_plugin"]


def test_importing_the_plugin_imports_nothing_beyond_pytest_and_its_package() -> None:
    code = textwrap.dedent(
        """
        import sys
        import pytest, replay
        before = set(sys.modules)
        import replay.pytest_plugin
        print(sorted(set(sys.modules) - before))
        print("hypothesis" in sys.modules)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out == [
        "['replay.pytest_options', 'replay.pytest_plugin', 'replay.pytest_traces']", "False"
    ]


def test_the_options_are_prefixed(suite: pytest.Pytester) -> None:
    result = suite.runpytest("--help")
    result.stdout.fnmatch_lines(
        [
            "evreplay: deterministic simulation and replay:",
            "*--evreplay-traces=DIR*",
            "*--evreplay-save-traces=DIR*",
            "*evreplay_save_traces (string):*",
            "*evreplay_report_steps (string):*",
        ]
    )


def test_the_marker_is_registered(suite: pytest.Pytester) -> None:
    result = suite.runpytest("--markers")
    result.stdout.fnmatch_lines(
        ["@pytest.mark.deterministic(runs=5, processes=False): run the test *"]
    )


# -- the sim fixture ---------------------------------------------------------------------


def test_sim_is_a_fresh_simulation_closed_after_the_test(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        import pytest
        from evloop import Simulation, SimulationError

        SEEN = []

        def test_first(sim):
            assert isinstance(sim, Simulation)
            assert (sim.seed, sim.steps, sim.now_ns) == (0, 0, 0)
            sim.main_loop.aio_context.bh_schedule_oneshot(lambda: None, name="b")
            sim.run()
            assert sim.steps == 1
            SEEN.append(sim)

        def test_second(sim):
            assert sim is not SEEN[0] and sim.steps == 0
            with pytest.raises(SimulationError, match="^this simulation is closed$"):
                SEEN[0].run()
        """
    )
    suite.runpytest("-p", "no:randomly").assert_outcomes(passed=2)


def test_a_passing_test_and_a_test_without_sim_get_no_section(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        def test_passes(sim):
            sim.run()

        def test_no_sim():
            assert False
        """
    )
    result = suite.runpytest("-rA")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.no_fnmatch_line("*- evreplay -*")
    result.stdout.no_fnmatch_line("*no trace saved*")


# -- @pytest.mark.deterministic ------------------------------------------------------------


def test_deterministic_runs_a_deterministic_test_n_times(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        import pytest
        from evloop import ClockType, SCALE_MS

        RUNS = []

        @pytest.mark.deterministic(runs=5)
        def test_steady(sim):
            RUNS.append(sim)
            ctx = sim.main_loop.aio_context
            ticks = []

            def tick():
                ticks.append(sim.now_ns)
                ctx.bh_schedule_oneshot(lambda: None, name=f"after-{len(ticks)}")
                if len(ticks) < 4:
                    timer.mod_ns(sim.now_ns + SCALE_MS)

            timer = sim.main_loop.timer_new_ns(ClockType.VIRTUAL, tick, name="tick")
            timer.mod_ns(SCALE_MS)
            sim.run()
            assert len(ticks) == 4

        def test_it_ran_five_times_with_fresh_closed_simulations():
            assert len({id(s) for s in RUNS}) == 5
            assert all(s.steps == 8 and s._closed for s in RUNS)
            assert all(s.log == RUNS[0].log for s in RUNS)
        """
    )
    suite.runpytest("-p", "no:randomly").assert_outcomes(passed=2)


NONDETERMINISTIC = """
import pytest

COUNT = [0]

@pytest.mark.deterministic(runs=5)
def test_flaky(sim):
    COUNT[0] += 1
    ctx = sim.main_loop.aio_context
    ctx.bh_schedule_oneshot(lambda: None, name="first")
    # A global counter stands for any state that leaks between runs.
    for name in (["a", "b"] if COUNT[0] < 3 else ["b", "a"]):
        ctx.bh_schedule_oneshot(lambda: None, name=name)
    sim.run()
"""


def test_deterministic_fails_at_the_first_divergent_step(suite: pytest.Pytester) -> None:
    suite.makepyfile(NONDETERMINISTIC)
    result = suite.runpytest()
    result.assert_outcomes(failed=1)
    event = "DispatchEvent(step=1, time_ns=0, thread='main', context='aio-context', kind='bh'"
    result.stdout.fnmatch_lines(
        [
            "@pytest.mark.deterministic(runs=5): run 3 differs from run 1 at step 1:",
            f"  run 1: {event}, name='b')",
            f"  run 3: {event}, name='a')",
            "*- evreplay -*",
            "simulation (run 3 of 5 of @pytest.mark.deterministic): t=0 ns, 3 steps, digest 0x*",
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")


def test_deterministic_names_a_run_that_ends_early(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        import pytest

        COUNT = [0]

        @pytest.mark.deterministic(runs=3)
        def test_grows(sim):
            COUNT[0] += 1
            for i in range(COUNT[0]):
                sim.main_loop.aio_context.bh_schedule_oneshot(lambda: None, name=f"bh{i}")
            sim.run()
        """
    )
    result = suite.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "@pytest.mark.deterministic(runs=3): run 2 differs from run 1 at step 1:",
            "  run 1: DispatchEvent(step=1, *name='bh0')",
            "  run 2: DispatchEvent(step=1, *name='bh1')",
        ]
    )


def test_deterministic_names_the_run_in_which_the_test_itself_failed(
    suite: pytest.Pytester,
) -> None:
    suite.makepyfile(
        """
        import pytest

        COUNT = [0]

        @pytest.mark.deterministic(runs=4)
        def test_third_fails(sim):
            COUNT[0] += 1
            sim.run()
            assert COUNT[0] != 3
        """
    )
    result = suite.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*(in run 3 of 4 of @pytest.mark.deterministic)*", "simulation (run 3 of 4 *"]
    )


@pytest.mark.parametrize(
    ("mark", "message"),
    [
        ("deterministic(runs=1)", "@pytest.mark.deterministic(runs=1): runs must be an int of "
         "at least 2 (one run has nothing to be compared with)"),
        ("deterministic(runs='3')", "@pytest.mark.deterministic(runs='3'): runs must be*"),
        ("deterministic(3, runs=3)", "@pytest.mark.deterministic takes runs and processes "
         "(got args=(3,), kwargs={'runs': 3})"),
    ],
)
def test_a_misused_marker_says_what_to_fix(
    suite: pytest.Pytester, mark: str, message: str
) -> None:
    suite.makepyfile(
        f"""
        import pytest

        @pytest.mark.{mark}
        def test_it(sim):
            sim.run()
        """
    )
    result = suite.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([message])


def test_deterministic_needs_the_sim_fixture(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        import pytest

        @pytest.mark.deterministic
        def test_it():
            pass
        """
    )
    result = suite.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["@pytest.mark.deterministic repeats the test's simulation: the test must use the "
         "`sim` fixture"]
    )


# -- the failure report section ---------------------------------------------------------------


TICKING_FAILURE = """
from evloop import ClockType

def test_fails(sim):
    ticks = []

    def tick():
        ticks.append(1)
        if len(ticks) < 25:
            timer.mod_ns(sim.now_ns + 1000)

    timer = sim.main_loop.timer_new_ns(ClockType.VIRTUAL, tick, name="tick")
    timer.mod_ns(1000)
    sim.run()
    assert len(ticks) == 3
"""


def test_a_failing_sim_test_reports_time_steps_and_the_last_steps(
    suite: pytest.Pytester,
) -> None:
    suite.makepyfile(TICKING_FAILURE)
    result = suite.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*- evreplay -*",
            "simulation: t=25000 ns, 25 steps, digest 0x*",
            "last 20 steps, oldest first:",
            "  step      6  t=6000 ns  main  main-loop  timer  tick",
            *(f"  step {n:>6}  t={n}000 ns  main  main-loop  timer  tick" for n in range(7, 26)),
            "no trace saved (run with --evreplay-save-traces=DIR to keep one)",
        ]
    )
    result.stdout.no_fnmatch_line("  step      5 *")


def test_the_number_of_steps_shown_is_an_ini_option(suite: pytest.Pytester) -> None:
    suite.makeini(INI + "evreplay_report_steps = 2\n")
    suite.makepyfile(TICKING_FAILURE)
    result = suite.runpytest()
    result.stdout.fnmatch_lines(
        ["last 2 steps, oldest first:", "  step     24 *", "  step     25 *", "no trace saved*"]
    )


def test_a_bad_report_steps_value_is_a_usage_error(suite: pytest.Pytester) -> None:
    suite.makeini(INI + "evreplay_report_steps = many\n")
    result = suite.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*evreplay_report_steps must be an integer from 0 to 32, not 'many'"]
    )


# -- saved traces ---------------------------------------------------------------------------


SAVED_SUITE = """
import pytest

def test_assertion_fails(sim):
    sim.main_loop.aio_context.bh_schedule_oneshot(lambda: None, name="only")
    sim.run()
    assert sim.steps == 2

def test_callback_raises(sim):
    def boom():
        raise ValueError("boom")

    sim.main_loop.aio_context.bh_schedule_oneshot(boom, name="boom")
    sim.run()

def test_passes(sim):
    sim.run()

def test_not_replayable(sim, tmp_path):
    assert False

@pytest.mark.parametrize("n", [1])
def test_parametrized(sim, n):
    assert False
"""


def test_failing_sim_tests_save_traces_that_replay_their_failure(
    suite: pytest.Pytester,
) -> None:
    suite.makepyfile(test_saved=SAVED_SUITE)
    result = suite.runpytest("--evreplay-save-traces=traces")
    result.assert_outcomes(passed=1, failed=4)
    saved = traces_in(suite.path / "traces")
    assert len(saved) == 2
    assert [re.sub("-[0-9a-f]{16}.evr$", "", name) for name in saved] == [
        "test_saved.py_test_assertion_fails",
        "test_saved.py_test_callback_raises",
    ]
    trace = suite.path / "traces" / saved[0]
    result.stdout.fnmatch_lines(
        [
            "simulation: t=0 ns, 1 step, digest 0x*",
            "last 1 step, oldest first:",
            "  step      1  t=0 ns  main  aio-context  bh  only",
            f"trace: {trace}",
            f"replay it (from {suite.path}): python -m replay play {trace}",
        ]
    )
    result.stdout.fnmatch_lines(
        ["no trace saved: it takes ['sim', 'tmp_path'] (only a test whose one argument is "
         "`sim` can be replayed)"]
    )
    result.stdout.fnmatch_lines(
        ["no trace saved: it is parametrized (only a test whose one argument is `sim` can be "
         "replayed)"]
    )
    played = replay.play(trace)
    assert (played.bit_exact, played.steps, played.failure) == (
        True,
        1,
        "exception: RecordedTestFailure: AssertionError at test_saved.py:6",
    )


@pytest.mark.slow
def test_saved_traces_collect_as_passing_replays(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_saved=SAVED_SUITE)
    suite.runpytest("--evreplay-save-traces=traces")
    result = suite.runpytest("--evreplay-traces=traces", "traces", "-rA")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "*Captured evreplay call*",
            "bit-exact replay: 1 step, t=0 ns, digest 0x*; reproduced the recorded failure: "
            "exception: RecordedTestFailure: ValueError at test_saved.py:10",
        ]
    )


def test_the_save_directory_is_an_ini_option(suite: pytest.Pytester) -> None:
    suite.makeini(INI + "evreplay_save_traces = out/traces\n")
    suite.makepyfile(test_saved=SAVED_SUITE)
    suite.runpytest()
    assert len(traces_in(suite.path / "out" / "traces")) == 2


@pytest.mark.slow
def test_a_trace_that_no_longer_reproduces_fails_its_replay(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_saved=SAVED_SUITE)
    suite.runpytest("--evreplay-save-traces=traces")
    suite.makepyfile(test_saved=SAVED_SUITE.replace("sim.steps == 2", "sim.steps == 1"))
    result = suite.runpytest("--evreplay-traces=traces", "traces")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*replay diverged at event 1 (step 1, time 0 ns, thread 'main')",
         "  expected: \"SHUTDOWN(step=1, cause='exception: RecordedTestFailure: "
         "AssertionError at test_saved.py:6')\"",
         "  actual:   'the run ended: CHECKPOINT FINAL(step=1, *"]
    )


@pytest.mark.slow
def test_a_name_taken_gets_a_numbered_suffix(suite: pytest.Pytester) -> None:
    suite.makepyfile(TICKING_FAILURE)
    suite.runpytest("--evreplay-save-traces=traces")
    suite.runpytest("--evreplay-save-traces=traces")
    saved = traces_in(suite.path / "traces")
    stem = re.sub(r"-2\.evr$", "", saved[0])
    assert saved == [f"{stem}-2.evr", f"{stem}.evr"]


def test_no_trace_is_saved_for_runs_that_differ(suite: pytest.Pytester) -> None:
    suite.makepyfile(NONDETERMINISTIC)
    result = suite.runpytest("--evreplay-save-traces=traces")
    result.stdout.fnmatch_lines(
        ["no trace saved: the runs differ, so no single run reproduces this failure"]
    )
    assert traces_in(suite.path / "traces") == []


def test_trace_stem_sanitises_and_prefixes_the_worker() -> None:
    assert trace_stem("tests/test_x.py::test_y[a b/c]", 0xAB, None) == (
        "tests_test_x.py_test_y_a_b_c-00000000000000ab"
    )
    assert trace_stem("t.py::test", 1, "gw3") == "gw3-t.py_test-0000000000000001"
    long = trace_stem("t.py::test_" + "x" * 300, 1, None)
    assert len(long) == 120 + 17 and re.fullmatch(r"t\.py_test_x+_[0-9a-f]{8}-0{15}1", long)
    assert trace_stem("t.py::test_" + "x" * 300, 1, None) != trace_stem(
        "t.py::test_" + "x" * 301, 1, None
    )


# -- traces as test items ---------------------------------------------------------------------


SCENARIO = """
from evloop import ClockType, SCALE_MS

EXTRA = False

def ticking(sim, *, ticks=5):
    def tick():
        n = len(seen)
        seen.append(n)
        if EXTRA and n == 2:
            sim.main_loop.aio_context.bh_schedule_oneshot(lambda: None, name="extra")
        if n + 1 < ticks:
            timer.mod_ns(sim.now_ns + SCALE_MS)

    seen = []
    timer = sim.main_loop.timer_new_ns(ClockType.VIRTUAL, tick, name="tick")
    timer.mod_ns(SCALE_MS)

def failing(sim):
    def boom():
        raise RuntimeError("found a bug")

    sim.main_loop.timer_new_ns(ClockType.VIRTUAL, boom, name="boom").mod_ns(SCALE_MS)
"""


PROJECT_SCENARIOS = (
    "[tool.evreplay]\n"
    'scenarios = ["stable.py:ticking", "stable.py:failing", "changing.py:ticking"]\n'
)


def make_traces(pytester: pytest.Pytester) -> Path:
    """good, failing, diverging, corrupt, garbage and truncated traces in ``traces/``."""
    stable = pytester.makepyfile(stable=SCENARIO)
    changing = pytester.makepyfile(changing=SCENARIO)
    traces = pytester.mkdir("traces")
    # The project declares the scenarios its traces name, as a user's does: the
    # inner run does not count on this process having recorded them.
    pytester.makefile(".toml", pyproject=PROJECT_SCENARIOS)
    replay.record(f"{stable}:ticking", traces / "good.evr")
    replay.record(f"{stable}:failing", traces / "failing.evr")
    replay.record(f"{changing}:ticking", traces / "diverging.evr")
    changing.write_text(SCENARIO.replace("EXTRA = False", "EXTRA = True"))
    good = (traces / "good.evr").read_bytes()
    corrupt = bytearray(good)
    corrupt[-12] ^= 0xFF
    (traces / "corrupt.evr").write_bytes(bytes(corrupt))
    (traces / "garbage.evr").write_bytes(b"not a trace at all")
    (traces / "truncated.evr").write_bytes(good[:-3])
    (traces / "notes.txt").write_text("not collected")
    return traces


def test_every_trace_under_the_directory_is_an_item(suite: pytest.Pytester) -> None:
    make_traces(suite)
    result = suite.runpytest("--evreplay-traces=traces", "traces", "-v")
    result.assert_outcomes(passed=2, failed=4)
    result.stdout.fnmatch_lines_random(
        [
            "traces/corrupt.evr::replay FAILED*",
            "traces/diverging.evr::replay FAILED*",
            "traces/failing.evr::replay PASSED*",
            "traces/garbage.evr::replay FAILED*",
            "traces/good.evr::replay PASSED*",
            "traces/truncated.evr::replay FAILED*",
        ]
    )


def test_failed_replays_are_reported_without_a_traceback(suite: pytest.Pytester) -> None:
    traces = make_traces(suite)
    result = suite.runpytest("--evreplay-traces=traces", "traces")
    result.stdout.fnmatch_lines_random(
        [
            # The extra bottom half runs as step 4, where the trace has the
            # tick's timer checkpoint (format 3): caught before the tick runs.
            f"{traces}/diverging.evr: replay diverged at event 4 (step 3, time 3000000 ns, "
            "thread 'main')",
            "  expected: 'CHECKPOINT CLOCK_VIRTUAL(step=3)'",
            "  actual:   'CHECKPOINT CLOCK_VIRTUAL(step=4): due timers about to run'",
            "  departed: at step 3, where the trace's event was due; the run went on without "
            "it and was stopped at step 4",
            "    DispatchEvent(step=3, time_ns=3000000, thread='main', context='main-loop', "
            "kind='timer', name='tick')",
            f"not a valid trace: {traces}/corrupt.evr: byte *: expected a chunk matching its "
            "crc32 0x*, found crc32 0x* (corrupt)",
            f"not a valid trace: {traces}/garbage.evr: byte 0: expected the evreplay trace "
            "magic *, found b'not a tr' (not an evreplay trace)",
            # Its whole chunks hold INIT only (step 0): play stops one step after it.
            f"{traces}/truncated.evr: the trace is truncated at byte *: it replayed 1 steps "
            "without diverging, but an incomplete trace cannot be checked bit-exactly",
        ]
    )
    for noise in ("*Traceback*", "*def runtest*", "*api.py:*", "*pytest_plugin.py:*"):
        result.stdout.no_fnmatch_line(noise)


def test_a_trace_directory_on_its_own_collects_with_the_test_suite(
    suite: pytest.Pytester,
) -> None:
    make_traces(suite)
    suite.makepyfile(test_plain="def test_plain():\n    pass\n")
    result = suite.runpytest("--evreplay-traces=traces", "-q")
    result.assert_outcomes(passed=3, failed=4)


def test_evr_files_are_not_collected_without_the_option(suite: pytest.Pytester) -> None:
    make_traces(suite)
    result = suite.runpytest("traces")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_a_missing_trace_directory_is_a_usage_error(suite: pytest.Pytester) -> None:
    result = suite.runpytest("--evreplay-traces=nowhere")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--evreplay-traces=nowhere: no such directory"])


# -- pytest-xdist ---------------------------------------------------------------------------


XDIST_SUITE = "\n".join(
    f"""
def test_{i}(sim):
    for k in range({i + 1}):
        sim.main_loop.aio_context.bh_schedule_oneshot(lambda: None, name=f"bh{{k}}")
    sim.run()
    assert False
"""
    for i in range(6)
)


@pytest.mark.slow
def test_xdist_workers_save_distinct_traces_named_by_worker(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_many=XDIST_SUITE)
    result = suite.runpytest("-n", "2", "-p", "xdist", "--evreplay-save-traces=traces")
    result.assert_outcomes(failed=6)
    saved = traces_in(suite.path / "traces")
    assert len(saved) == len(set(saved)) == 6
    for name in saved:
        assert re.fullmatch(r"gw[01]-test_many\.py_test_[0-5]-[0-9a-f]{16}\.evr", name), name
    tests = {re.sub(r"^gw\d-|-[0-9a-f]{16}\.evr$", "", name) for name in saved}
    assert len(tests) == 6
    replayed = suite.runpytest("-n", "2", "-p", "xdist", "--evreplay-traces=traces", "traces")
    replayed.assert_outcomes(passed=6)


@pytest.mark.slow
def test_deterministic_and_the_report_section_work_under_xdist(
    suite: pytest.Pytester,
) -> None:
    suite.makepyfile(test_flaky=NONDETERMINISTIC, test_ticking=TICKING_FAILURE)
    result = suite.runpytest("-n", "2", "-p", "xdist")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines_random(
        [
            "*@pytest.mark.deterministic(runs=5): run 3 differs from run 1 at step 1:",
            "simulation: t=25000 ns, 25 steps, digest 0x*",
        ]
    )


@pytest.mark.slow
def test_saved_traces_collect_as_reruns_that_pass_once_the_bug_is_fixed(
    suite: pytest.Pytester,
) -> None:
    suite.makepyfile(test_saved=SAVED_SUITE)
    suite.runpytest("--evreplay-save-traces=traces")
    result = suite.runpytest("--evreplay-rerun=traces", "traces", "-rA")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        ["*traces*.evr: the failure recurs: exception: RecordedTestFailure: "
         "AssertionError at test_saved.py:6; the trace holds no decision"]
    )
    suite.makepyfile(test_saved=SAVED_SUITE.replace("sim.steps == 2", "sim.steps == 1"))
    result = suite.runpytest("--evreplay-rerun=traces", "traces", "-rA")
    # The fixed test passes its rerun; the other still raises ValueError.
    result.assert_outcomes(passed=1, failed=1)
    both = suite.runpytest("--evreplay-rerun=traces", "--evreplay-traces=traces", "traces")
    # Each trace is two items. The fixed test's trace no longer replays as
    # recorded (its replay fails) but its rerun passes; the other's replay
    # passes and its rerun fails: CI needs both gates.
    both.assert_outcomes(passed=2, failed=2)


def test_a_missing_rerun_directory_is_a_usage_error(suite: pytest.Pytester) -> None:
    result = suite.runpytest("--evreplay-rerun=nowhere")
    result.stderr.fnmatch_lines(["*--evreplay-rerun=nowhere: no such directory*"])


# -- time and randomness routed in sim runs ---------------------------------------------

AMBIENT_SUITE = """
import random
from time import time

from evloop import SCALE_MS

SEEN = []


def test_reads_the_host(sim):
    def body():
        sim.sleep(SCALE_MS)
        SEEN.append((time(), random.random()))
        assert SEEN[-1][1] > 2.0, SEEN  # always fails: a trace is saved

    sim.thread("reader", body)
    sim.run()
"""


def test_sim_runs_answer_time_and_random_from_the_simulation(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_ambient=AMBIENT_SUITE)
    result = suite.runpytest("--evreplay-save-traces=traces")
    result.assert_outcomes(failed=1)
    # The run read the simulation: the virtual host clock 1 ms into 2000-01-01.
    assert re.search(r"AssertionError: \[\(946684800\.001, 0\.[0-9]+\)\]", result.stdout.str())
    (trace,) = (suite.path / "traces").glob("*.evr")
    with replay.TraceReader(trace) as reader:
        assert reader.header.extensions["run.sanitize"] is True
    played = play_in_child(suite.path, trace)
    assert played.returncode == 1 and "replays to the same failure" in played.stdout


@pytest.mark.parametrize(
    ("args", "ini"), [(["--evreplay-no-sanitize"], ""), ([], "evreplay_sanitize = false\n")]
)
def test_an_option_leaves_time_and_random_alone(
    suite: pytest.Pytester, args: list[str], ini: str
) -> None:
    suite.makeini(INI + ini)
    suite.makepyfile(test_ambient=AMBIENT_SUITE)
    result = suite.runpytest(*args)
    result.assert_outcomes(failed=1)
    assert "946684800.001" not in result.stdout.str()
    assert re.search(r"AssertionError: \[\(1[7-9][0-9]{8}\.[0-9]+, ", result.stdout.str())


def test_a_bad_sanitize_ini_value_is_a_usage_error(suite: pytest.Pytester) -> None:
    suite.makeini(INI + "evreplay_sanitize = maybe\n")
    suite.makepyfile(test_ambient=AMBIENT_SUITE)
    result = suite.runpytest()
    result.stderr.fnmatch_lines(["*evreplay_sanitize must be true, strict or false, not 'maybe'*"])


# -- one directory and one name for every saved trace ------------------------------------

ONE_DIR_SUITE = """
from hypothesis import given, settings, strategies as st
from replay.hypothesis import run_with, simulations

MACHINE = "replay.examples.minimachine:scenario"


def test_fixture(sim):
    sim.main_loop.aio_context.bh_schedule_oneshot(lambda: None, name="only")
    sim.run()
    assert False


@settings(max_examples=200, derandomize=True, database=None, deadline=None)
@given(st.data())
def test_body(data):
    run = run_with(data, MACHINE)
    assert run.failure is None, run.failure


@settings(max_examples=200, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(__import__("hypothesis").HealthCheck))
@given(simulations(MACHINE))
def test_strategy(run):
    assert run.failure is None, run.failure
"""


@pytest.mark.slow
@pytest.mark.parametrize("configured", [True, False])
def test_every_saved_trace_goes_to_one_directory_by_one_name(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, configured: bool
) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    suite.makepyfile(test_one_dir=ONE_DIR_SUITE)
    args = ["--evreplay-save-traces=kept", "-p", "no:randomly"] if configured else []
    result = suite.runpytest(*args)
    result.assert_outcomes(failed=3)
    where = suite.path / ("kept" if configured else "traces/failures")
    names = traces_in(where)
    expected = ["test_body", "test_strategy"] + (["test_fixture"] if configured else [])
    assert sorted(re.sub(r"-[0-9a-f]{16}\.evr$", "", n) for n in names) == sorted(
        f"gw1-test_one_dir.py_{test}" for test in expected
    )
    for name in names:  # each replays to its failure, bit-exact, from the rootdir
        assert play_in_child(suite.path, where / name).returncode == 1


def _readme_block(after: str, language: str, nth: int = 0) -> str:
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start = text.index(after)
    blocks = re.findall(rf"```{language}\n(.*?)```", text[start:], re.S)
    return str(blocks[nth])


@pytest.mark.slow
def test_the_readmes_hypothesis_tests_find_and_save_the_bug_in_both_forms(
    suite: pytest.Pytester,
) -> None:
    scenario = _readme_block("**1. Write a scenario.**", "python")
    (suite.path / "mypkg").mkdir()
    (suite.path / "mypkg" / "__init__.py").write_text("")
    (suite.path / "mypkg" / "counter.py").write_text(scenario)
    strategy = _readme_block("**4. Fuzz it in a test.**", "python")
    body = _readme_block("**4. Fuzz it in a test.**", "python", nth=1)
    assert "run_with(data," in body
    suite.makepyfile(test_counter=strategy + "\n\n" + body)
    result = suite.runpytest("-p", "no:cacheprovider", "--rootdir", str(suite.path))
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*AssertionError: exception: AssertionError: requests out of "
                                 "order: [[]1, 0]*"])
    saved = traces_in(suite.path / "traces" / "failures")
    assert [re.sub(r"-[0-9a-f]{16}\.evr$", "", name) for name in saved] == [
        "test_counter.py_test_requests_are_served_in_order",
        "test_counter.py_test_requests_are_served_in_order_in_the_body",
    ]
    for name in saved:
        trace = suite.path / "traces" / "failures" / name
        played = play_in_child(suite.path, trace, "--scenario", "mypkg.counter:scenario")
        assert played.returncode == 1, played.stdout + played.stderr


# -- @pytest.mark.deterministic(processes=True) -------------------------------------------

SET_ORDER_SUITE = """
import pytest

NAMES = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta"}


def start_in_set_order(sim):
    for name in NAMES:  # a set of strings: its order follows PYTHONHASHSEED
        sim.thread(name, lambda: None)
    sim.run()


@pytest.mark.deterministic(runs=3)
def test_in_one_process(sim):
    start_in_set_order(sim)


@pytest.mark.deterministic(runs=3, processes=True)
def test_in_fresh_processes(sim):
    start_in_set_order(sim)


@pytest.mark.deterministic(runs=3, processes=True)
def test_sorted_in_fresh_processes(sim):
    for name in sorted(NAMES):
        sim.thread(name, lambda: None)
    sim.run()
"""


@pytest.mark.slow
def test_fresh_processes_see_a_set_order_bug_that_one_process_cannot(
    suite: pytest.Pytester,
) -> None:
    suite.makepyfile(test_set_order=SET_ORDER_SUITE)
    result = suite.runpytest("-rf")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines([
        "@pytest.mark.deterministic(runs=3, processes=True): run 2 (PYTHONHASHSEED=1) differs "
        "from run 1 (PYTHONHASHSEED=0) at step 1:",
        "  run 1: DispatchEvent(step=1, time_ns=0, thread=*, kind='turn', *",
        "  run 2: DispatchEvent(step=1, time_ns=0, thread=*, kind='turn', *",
        "FAILED test_set_order.py::test_in_fresh_processes - Failed: *",
    ])
    assert "----- evreplay -----" not in result.stdout.str()  # no simulation of its own


def test_a_run_failing_in_its_fresh_process_fails_the_test(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_fails="""
import pytest

@pytest.mark.deterministic(runs=2, processes=True)
def test_fails(sim):
    sim.run()
    assert sim.steps == 99, "never"
""")
    result = suite.runpytest("-rf")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["run 1 (PYTHONHASHSEED=0, a fresh process) failed: "
                                 "AssertionError: never*"])


def test_processes_must_be_a_bool(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_bad="""
import pytest

@pytest.mark.deterministic(processes="yes")
def test_bad(sim):
    pass
""")
    result = suite.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*@pytest.mark.deterministic(processes='yes'): processes is True or False*"]
    )
