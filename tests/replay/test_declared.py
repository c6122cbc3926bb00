"""replay/declared.py: a trace may name only a scenario the user declared.

Each hostile trace here names code that leaves a mark (a file) when it is
imported or called, so a test can see that nothing ran, not only that an
error was raised.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import replay.declared as declared
from replay import (
    ScenarioError,
    ScenarioNotDeclared,
    TraceHeader,
    TraceReader,
    TraceWriter,
    declare_scenario,
    play,
    record,
    trusting_traces,
)
from replay.cli.main import main
from replay.cli.options import default_trace_path
from replay.pytest_plugin import replay_test, trace_stem
from tests.helpers import reframe

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _fresh_declarations(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no scenario declared in this process."""
    monkeypatch.setattr(declared, "_declared", set())


def write_trace(path: Path, scenario: str, **params: Any) -> Path:
    header = TraceHeader(scenario=scenario, parameters=params, seed=0, package_version="0.1.0")
    with TraceWriter(path, header):
        pass
    return path


def recorded(path: Path, scenario: str, **params: Any) -> Path:
    """A real recording of ``scenario``, then this process forgets it was declared."""
    record(scenario, path, params=params)
    declared._declared.clear()
    return path


def refusal(path: Path, name: str) -> str:
    return (
        f"{path}: the trace names scenario {name!r}, which is not declared, so it was not "
        f"imported; to allow it, pass --scenario {name} (or declare it: "
        "@replay.declare_scenario, [tool.evreplay] scenarios in pyproject.toml, an "
        "evreplay.scenarios entry point), or --trust for a trace whose origin you trust"
    )


def evil_file(folder: Path, marker: Path) -> Path:
    """A scenario file that writes ``marker`` when imported and when called."""
    path = folder / "evil.py"
    path.write_text(textwrap.dedent(f"""\
        with open({str(marker)!r}, "a") as out:
            out.write("imported\\n")

        def f(sim, **kw):
            with open({str(marker)!r}, "a") as out:
                out.write("called\\n")
        """))
    return path


# -- refused before any import ---------------------------------------------------------


def test_a_trace_naming_a_file_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    name = f"{evil_file(tmp_path, marker)}:f"
    trace = write_trace(tmp_path / "t.evr", name)
    with pytest.raises(ScenarioNotDeclared) as info:
        play(trace)
    assert str(info.value) == refusal(trace, name)
    assert not marker.exists()


@pytest.mark.parametrize("name", [
    "os:system", "subprocess:getoutput", "sys:exit", "code:interact", "../../x.py:f",
    "replay.pytest_plugin:_test_file_of",
])
def test_a_trace_naming_any_undeclared_callable_is_refused(tmp_path: Path, name: str) -> None:
    trace = write_trace(tmp_path / "t.evr", name, command="touch pwned")
    with pytest.raises(ScenarioNotDeclared) as info:
        play(trace)
    assert str(info.value).startswith(f"{trace}: the trace names scenario {name!r}, which is")


def test_a_module_in_the_working_directory_is_not_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "ran"
    (tmp_path / "localmod.py").write_text(f"import os\nos.mkdir({str(marker)!r})\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    trace = write_trace(tmp_path / "t.evr", "localmod:f")
    with pytest.raises(ScenarioNotDeclared):
        play(trace)
    assert not marker.exists()
    assert "localmod" not in sys.modules


@pytest.mark.parametrize("command", [
    ["play"], ["verify"], ["dump"], ["stats"], ["export"], ["diff"], ["minimize", "-o", "m.evr"],
])
def test_every_trace_reading_command_refuses_in_one_line_exit_2(
    tmp_path: Path, command: list[str]
) -> None:
    marker = tmp_path / "ran"
    name = f"{evil_file(tmp_path, marker)}:f"
    trace = write_trace(tmp_path / "t.evr", name)
    target = [str(tmp_path)] if command == ["verify"] else [str(trace)]
    if command == ["diff"]:
        target = [str(trace), str(write_trace(tmp_path / "u.evr", name, n=1))]
    done = subprocess.run(
        [sys.executable, "-m", "replay", command[0], *target, *command[1:]],
        cwd=tmp_path, capture_output=True, text=True, check=False, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert not marker.exists()
    assert "Traceback" not in done.stderr + done.stdout
    if command == ["verify"]:  # verify names each bad trace on its own line, then counts
        assert done.returncode == 1
        assert "which is not declared, so it was not imported" in done.stdout
        assert done.stdout.splitlines()[-1] == "1 traces: 0 ok, 0 diverged, 1 bad"
        return
    assert done.returncode == 2
    assert done.stderr == f"replay: error: {refusal(trace, name)}\n"


# -- ways to declare -------------------------------------------------------------------


def test_dash_dash_scenario_allows_that_scenario(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    name = f"{evil_file(tmp_path, marker)}:f"
    trace = recorded(tmp_path / "t.evr", name)
    marker.unlink()
    assert main(["play", str(trace), "--scenario", name]) == 0
    assert marker.read_text() == "imported\ncalled\n"  # a file scenario is loaded anew


def test_dash_dash_trust_allows_any_scenario(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    trace = recorded(tmp_path / "t.evr", f"{evil_file(tmp_path, marker)}:f")
    marker.unlink()
    assert main(["play", str(trace), "--trust"]) == 0
    assert marker.read_text() == "imported\ncalled\n"
    with trusting_traces():
        assert play(trace).bit_exact is True
    with pytest.raises(ScenarioNotDeclared):  # only inside the block
        play(trace)


def test_a_relative_file_spec_matches_the_same_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    evil_file(tmp_path, tmp_path / "ran")
    trace = recorded(tmp_path / "t.evr", "./evil.py:f")
    declare_scenario(f"{tmp_path}/evil.py:f")
    assert play(trace).bit_exact is True


def _package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A module with one decorated scenario and one plain function; returns its name."""
    name = f"declmod_{abs(hash(str(tmp_path))) % 10**8}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent("""\
        from replay import declare_scenario

        @declare_scenario
        def good(sim, *, n: int = 1):
            pass

        def plain(sim):
            pass
        """))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_a_declared_module_allows_only_its_decorated_functions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = _package(tmp_path, monkeypatch)
    good = write_trace(tmp_path / "good.evr", f"{module}:good", n=3)
    plain = write_trace(tmp_path / "plain.evr", f"{module}:plain")
    with pytest.raises(ScenarioNotDeclared):
        play(good)
    assert module not in sys.modules  # refused before importing it
    good = recorded(good, f"{module}:good", n=3)
    declare_scenario(module)
    assert play(good).bit_exact is True
    with pytest.raises(ScenarioNotDeclared) as info:
        play(plain)
    assert str(info.value) == refusal(plain, f"{module}:plain")


def test_pyproject_tool_evreplay_declares_scenarios(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = _package(tmp_path, monkeypatch)
    (tmp_path / "evil.py").write_text("def f(sim):\n    pass\n")
    (tmp_path / "pyproject.toml").write_text(
        f'[tool.evreplay]\nscenarios = ["{module}", "evil.py:f"]\n'
    )
    deeper = tmp_path / "sub" / "dir"
    deeper.mkdir(parents=True)
    monkeypatch.chdir(deeper)  # the nearest pyproject.toml at or above the working directory
    assert play(recorded(tmp_path / "a.evr", f"{module}:good")).bit_exact is True
    assert play(recorded(tmp_path / "b.evr", f"{tmp_path}/evil.py:f")).bit_exact is True
    with pytest.raises(ScenarioNotDeclared):
        play(write_trace(tmp_path / "c.evr", f"{module}:plain"))


@pytest.mark.parametrize("table", ['scenarios = "x:y"', "scenarios = [1]", 'scenarios = [""]'])
def test_a_malformed_pyproject_table_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, table: str
) -> None:
    (tmp_path / "pyproject.toml").write_text(f"[tool.evreplay]\n{table}\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ScenarioError) as info:
        play(write_trace(tmp_path / "t.evr", "m:f"))
    assert str(info.value) == (
        f"{tmp_path / 'pyproject.toml'}: [tool.evreplay] scenarios must be an array of "
        "'module:function' or 'module' strings"
    )



def test_a_locally_declared_scenario_plays_without_reading_entry_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Scanning every installed distribution costs tens of milliseconds a
    # play: it is the last source asked, and only if the others say no.
    name = "tests.scenarios.workloads:clocks_and_random"
    trace = recorded(tmp_path / "t.evr", name)
    scans: list[None] = []
    real = declared._entry_point_specs

    def counted() -> list[str]:
        scans.append(None)
        return real()

    monkeypatch.setattr(declared, "_entry_point_specs", counted)
    declare_scenario(name)
    assert play(trace).bit_exact is True
    assert scans == []
    declared._declared.clear()  # now only an entry point could declare it: none does
    with pytest.raises(ScenarioNotDeclared):
        play(trace)
    assert scans == [None]

@pytest.mark.slow
def test_an_entry_point_declares_a_scenario(tmp_path: Path) -> None:
    """A real installed distribution's ``evreplay.scenarios`` entry point, in a fresh process."""
    site = tmp_path / "site"
    info = site / "epdemo-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: epdemo\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[evreplay.scenarios]\nmain = epdemo_mod:run\n")
    (site / "epdemo_mod.py").write_text("def run(sim):\n    pass\n\ndef other(sim):\n    pass\n")
    sys.path.insert(0, str(site))
    try:
        for fn in ("run", "other"):
            recorded(tmp_path / f"{fn}.evr", f"epdemo_mod:{fn}")
    finally:
        sys.path.remove(str(site))
        sys.modules.pop("epdemo_mod", None)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    ok = subprocess.run(
        [sys.executable, "-m", "replay", "play", str(tmp_path / "run.evr")],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False, timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    refused = subprocess.run(
        [sys.executable, "-m", "replay", "play", str(tmp_path / "other.evr")],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False, timeout=60,
    )
    assert refused.returncode == 2
    assert "the trace names scenario 'epdemo_mod:other', which is not declared" in refused.stderr


def test_a_recorded_scenario_is_declared_for_this_process(tmp_path: Path) -> None:
    trace = tmp_path / "t.evr"
    record("tests.scenarios.workloads:threaded", trace, chooser="random:1")
    assert play(trace).bit_exact is True


def test_the_bundled_machine_plays_with_no_declaration() -> None:
    assert play(ROOT / "traces" / "minimachine-clean.evr").bit_exact is True


def test_an_old_name_plays_as_its_alias(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        declared,
        "SCENARIO_ALIASES",
        {"oldpkg.machine:scenario": "replay.examples.minimachine:scenario"},
    )
    trace = tmp_path / "old.evr"
    record("replay.examples.minimachine:scenario", trace)
    data = trace.read_bytes()
    # The same run under the old name: only the header chunk differs.
    with TraceReader(trace) as reader:
        header = dataclasses.replace(reader.header, scenario="oldpkg.machine:scenario")
    old = tmp_path / "renamed.evr"
    with TraceWriter(old, header):
        pass
    head = old.read_bytes()
    # A trace recorded under the old name has its own chain: forge it too.
    old.write_bytes(reframe(head[: _header_end(head)] + data[_header_end(data) :], rechain=True))
    declared._declared.clear()
    assert play(old).bit_exact is True
    assert "oldpkg" not in sys.modules


def _header_end(data: bytes) -> int:
    """Where a trace's header chunk ends: magic, chunk header, payload."""
    return 8 + 12 + int.from_bytes(data[8:12], "little")
    assert "oldpkg" not in sys.modules


# -- parameters from a trace -----------------------------------------------------------


def test_parameters_the_scenario_does_not_take_are_refused_before_it_runs(
    tmp_path: Path,
) -> None:
    trace = write_trace(tmp_path / "t.evr", "examples.minimachine:scenario", shell="rm -rf /")
    with pytest.raises(ScenarioError) as info:
        play(trace)
    assert str(info.value).startswith(
        f"{trace}: the trace's parameters do not fit scenario 'examples.minimachine:scenario' "
        "(got an unexpected keyword argument 'shell'); it takes: "
    )


# -- the pytest plugin's scenario -------------------------------------------------------


@pytest.mark.parametrize("path", [
    "/etc/passwd.py", "../../x/test_a.py", "tests/helpers.py", "tests/../../test_x.py", 3,
])
def test_replay_test_loads_only_test_files_below_the_working_directory(path: Any) -> None:
    with pytest.raises(ScenarioError) as info:
        replay_test(None, path=path, function="test_x")  # type: ignore[arg-type]
    assert str(info.value).startswith(f"replay_test: path {path!r}")


def test_replay_test_loads_only_test_functions() -> None:
    with pytest.raises(ScenarioError) as info:
        replay_test(None, path="tests/replay/test_declared.py", function="write_trace")  # type: ignore[arg-type]
    assert str(info.value) == (
        "replay_test: function 'write_trace' is not a test's name (test..., Class.test...)"
    )


# -- derived file names ----------------------------------------------------------------


def test_a_hostile_xdist_worker_id_stays_one_name_component() -> None:
    stem = trace_stem("tests/test_x.py::test_y", 0xAB, "../../x")
    assert "/" not in stem and not stem.startswith(".")
    assert stem == "x-tests_test_x.py_test_y-00000000000000ab"


def test_a_hostile_scenario_name_gives_a_trace_name_inside_traces() -> None:
    path = default_trace_path("../../../etc/x.py:..", 0, "fifo")
    assert path.parent == Path("traces")
    assert not path.name.startswith(".")


@pytest.mark.slow
def test_a_failing_test_saves_its_trace_inside_the_directory_under_a_hostile_worker_id(
    tmp_path: Path,
) -> None:
    (tmp_path / "test_fail.py").write_text(textwrap.dedent("""\
        def test_fails(sim):
            sim.main_loop.aio_context.bh_schedule_oneshot(lambda: None)
            sim.run()
            assert False, "boom"
        """))
    saved = tmp_path / "saved"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_fail.py",
         f"--evreplay-save-traces={saved}"],
        cwd=tmp_path, capture_output=True, text=True, check=False, timeout=120,
        env={**os.environ, "PYTEST_XDIST_WORKER": "../../x", "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 1, done.stdout
    files = [p for p in tmp_path.rglob("*.evr")]
    assert [p.parent for p in files] == [saved]
    assert files[0].name.startswith("x-test_fail.py_test_fails-")


@pytest.mark.slow
def test_the_plugin_refuses_a_collected_trace_naming_an_undeclared_scenario(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "ran"
    name = f"{evil_file(tmp_path, marker)}:f"
    traces = tmp_path / "corpus"
    traces.mkdir()
    trace = write_trace(traces / "t.evr", name)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         f"--evreplay-traces={traces}", str(traces)],
        cwd=tmp_path, capture_output=True, text=True, check=False, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 1
    assert refusal(trace, name) in done.stdout
    assert "Traceback" not in done.stdout
    assert not marker.exists()


def test_rerun_refuses_an_undeclared_scenario_and_takes_trust(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    name = f"{evil_file(tmp_path, marker)}:f"
    trace = recorded(tmp_path / "t.evr", name)
    marker.unlink()
    assert main(["rerun", str(trace)]) == 2
    assert not marker.exists()
    assert main(["rerun", str(trace), "--trust"]) == 0
    assert marker.read_text().count("called\n") == 1


def test_the_corpus_name_of_the_bundled_machine_is_an_alias_of_its_shipped_name() -> None:
    assert declared.SCENARIO_ALIASES["examples.minimachine:scenario"] == (
        "replay.examples.minimachine:scenario"
    )
    assert "replay.examples.minimachine:scenario" in declared.BUNDLED_SCENARIOS
