"""Tests for replay.scenario: scenario names and chooser specs, and their messages.

A user who mistypes a scenario or a chooser reads one of these messages, so
each is asserted exactly.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import tests.scenarios.workloads as workloads
from evloop import FifoChooser, RandomChooser, Simulation
from replay import (
    ReplayDivergence,
    ScenarioError,
    TraceReader,
    chooser_from_spec,
    load_scenario,
    play,
    record,
)
from replay.scenario import scenario_name
from tests.helpers import assert_same_run

ROOT = Path(__file__).resolve().parents[2]

FILE_SCENARIO = """
from evloop import SCALE_MS, ClockType

SEEN = []

def scenario(sim, *, ticks=4):
    def tick():
        SEEN.append(sim.random.getrandbits(16))
        if len(SEEN) < ticks:
            timer.mod_ns(sim.now_ns + SCALE_MS)
    timer = sim.main_loop.timer_new_ns(ClockType.REALTIME, tick, name="file-tick")
    timer.mod_ns(SCALE_MS)

class Holder:
    @staticmethod
    def nested(sim):
        pass

NOT_CALLABLE = 3
"""


def message(exc_info: pytest.ExceptionInfo[BaseException]) -> str:
    return str(exc_info.value)


# -- load_scenario ------------------------------------------------------------------------


def test_a_module_function_loads() -> None:
    assert load_scenario("tests.scenarios.workloads:threaded") is workloads.threaded


def test_a_dotted_attribute_loads() -> None:
    fn = load_scenario("tests.scenarios.workloads:OBSERVED.append")
    assert callable(fn)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            "nocolon",
            "scenario 'nocolon' is not of the form module:function or path/to/file.py:function",
        ),
        (
            123,
            "scenario 123 is not of the form module:function or path/to/file.py:function",
        ),
        (None, "scenario None is not of the form module:function or path/to/file.py:function"),
        (":scenario", "scenario ':scenario': both the module and the function are needed"),
        (
            "examples.minimachine:",
            "scenario 'examples.minimachine:': both the module and the function are needed",
        ),
        (
            "no_such_module_q:scenario",
            "scenario 'no_such_module_q:scenario': cannot import module 'no_such_module_q': "
            "No module named 'no_such_module_q'",
        ),
        (
            "examples.no_such_module_q:scenario",
            "scenario 'examples.no_such_module_q:scenario': cannot import module "
            "'examples.no_such_module_q': No module named 'examples.no_such_module_q'",
        ),
        (
            "examples.minimachine:nope",
            "scenario 'examples.minimachine:nope': module 'examples.minimachine' has no "
            "attribute 'nope'",
        ),
        (
            "examples.minimachine:Machine.nope",
            "scenario 'examples.minimachine:Machine.nope': module 'examples.minimachine' has no "
            "attribute 'Machine.nope'",
        ),
        (
            "examples.minimachine:SCALE_MS",
            "scenario 'examples.minimachine:SCALE_MS' is not callable",
        ),
        (
            "/no/such/dir/scen.py:scenario",
            "scenario '/no/such/dir/scen.py:scenario': no such file '/no/such/dir/scen.py'",
        ),
        (
            "relative/missing.py:scenario",
            "scenario 'relative/missing.py:scenario': no such file 'relative/missing.py'",
        ),
        ("missing.py:scenario", "scenario 'missing.py:scenario': no such file 'missing.py'"),
    ],
)
def test_load_scenario_says_what_is_wrong(spec: Any, expected: str) -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario(spec)
    assert message(info) == expected


def test_a_scenario_error_is_a_replay_error() -> None:
    from replay import ReplayError

    assert issubclass(ScenarioError, ReplayError)


# -- path/to/file.py:function ------------------------------------------------------------


@pytest.fixture
def scenario_file(tmp_path: Path) -> Path:
    path = tmp_path / "my_machine.py"
    path.write_text(FILE_SCENARIO)
    return path


def test_a_function_in_a_file_loads(scenario_file: Path) -> None:
    fn = load_scenario(f"{scenario_file}:scenario")
    assert fn.__name__ == "scenario"
    assert callable(load_scenario(f"{scenario_file}:Holder.nested"))


def test_a_relative_file_path_loads(scenario_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(scenario_file.parent.parent)
    relative = f"{scenario_file.parent.name}/{scenario_file.name}"
    assert load_scenario(f"{relative}:scenario").__name__ == "scenario"
    monkeypatch.chdir(scenario_file.parent)
    assert load_scenario(f"{scenario_file.name}:scenario").__name__ == "scenario"


def test_a_file_without_the_attribute_says_so(scenario_file: Path) -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario(f"{scenario_file}:nope")
    assert message(info) == (
        f"scenario '{scenario_file}:nope': module '{scenario_file}' has no attribute 'nope'"
    )
    with pytest.raises(ScenarioError) as info:
        load_scenario(f"{scenario_file}:NOT_CALLABLE")
    assert message(info) == f"scenario '{scenario_file}:NOT_CALLABLE' is not callable"


def test_a_file_that_is_not_python_says_so(tmp_path: Path) -> None:
    path = tmp_path / "notes" / "machine.txt"
    path.parent.mkdir()
    path.write_text("def scenario(sim): pass\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(f"{path}:scenario")
    assert message(info) == f"scenario '{path}:scenario': cannot load '{path}' as Python"


def test_a_directory_is_not_a_scenario_file(tmp_path: Path) -> None:
    folder = tmp_path / "pkg.py"
    folder.mkdir()
    with pytest.raises(ScenarioError) as info:
        load_scenario(f"{folder}:scenario")
    assert message(info) == f"scenario '{folder}:scenario': no such file '{folder}'"


def test_a_scenario_in_a_file_records_and_plays_bit_exactly(
    scenario_file: Path, tmp_path: Path
) -> None:
    trace = tmp_path / "t.evr"
    spec = f"{scenario_file}:scenario"
    recorded = record(spec, trace, seed=4, params={"ticks": 6})
    with TraceReader(trace) as reader:
        assert reader.header.scenario == spec
    assert_same_run(recorded, play(trace))
    assert recorded.steps == 6


# -- scenario_name ------------------------------------------------------------------------


def test_a_spec_names_itself() -> None:
    assert scenario_name("examples.minimachine:scenario") == "examples.minimachine:scenario"


def test_a_bad_spec_fails_when_named() -> None:
    with pytest.raises(ScenarioError, match=r"has no attribute 'nope'$"):
        scenario_name("examples.minimachine:nope")


def test_a_module_level_function_is_named_module_colon_qualname() -> None:
    assert scenario_name(workloads.clocks_and_random) == (
        "tests.scenarios.workloads:clocks_and_random"
    )


def _unnameable_message(fn: object) -> str:
    return (
        f"scenario {fn!r} cannot be named for replay: pass a module-level function of an "
        "importable module, or a 'module:function' string"
    )


def test_a_lambda_cannot_be_named() -> None:
    fn: Callable[[Simulation], None] = lambda sim: None  # noqa: E731
    with pytest.raises(ScenarioError) as info:
        scenario_name(fn)
    assert message(info) == _unnameable_message(fn)


def test_a_nested_function_cannot_be_named() -> None:
    def nested(sim: Simulation) -> None:
        pass

    with pytest.raises(ScenarioError) as info:
        scenario_name(nested)
    assert message(info) == _unnameable_message(nested)


def test_a_function_of_main_cannot_be_named() -> None:
    def fn(sim: Simulation) -> None:
        pass

    fn.__qualname__ = "fn"
    fn.__module__ = "__main__"
    with pytest.raises(ScenarioError) as info:
        scenario_name(fn)
    assert message(info) == _unnameable_message(fn)


def test_a_function_its_module_no_longer_holds_cannot_be_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = workloads.timers_only
    monkeypatch.setattr(workloads, "timers_only", workloads.console)
    with pytest.raises(ScenarioError) as info:
        scenario_name(original)
    assert message(info) == (
        f"scenario {original!r} is not reachable as 'tests.scenarios.workloads:timers_only'"
    )


def test_record_refuses_an_unnameable_scenario_before_writing(tmp_path: Path) -> None:
    trace = tmp_path / "t.evr"
    with pytest.raises(ScenarioError, match=re.escape("cannot be named for replay")):
        record(lambda sim: None, trace)
    assert not trace.exists()


# -- chooser_from_spec --------------------------------------------------------------------


def test_fifo_is_the_fifo_chooser() -> None:
    assert isinstance(chooser_from_spec("fifo"), FifoChooser)


@pytest.mark.parametrize(("spec", "seed"), [("random:7", 7), ("random:0", 0), ("random", 0)])
def test_random_seed_is_a_seeded_random_chooser(spec: str, seed: int) -> None:
    chooser = chooser_from_spec(spec)
    assert isinstance(chooser, RandomChooser)
    assert chooser.seed == seed


def test_a_random_chooser_from_a_spec_is_the_same_walk_each_time() -> None:
    from evloop import ChoiceKind

    options = ["a", "b", "c", "d"]
    first = chooser_from_spec("random:42")
    second = chooser_from_spec("random:42")
    walk = [first.choose(ChoiceKind.THREAD, options) for _ in range(50)]
    assert walk == [second.choose(ChoiceKind.THREAD, options) for _ in range(50)]
    assert len(set(walk)) > 1


@pytest.mark.parametrize(
    ("spec", "depth", "horizon"),
    [("pct:5", 3, 1000), ("pct:5:2", 2, 1000), ("pct:5:4:15", 4, 15)],
)
def test_a_pct_spec_may_give_depth_and_horizon(spec: str, depth: int, horizon: int) -> None:
    from evloop import PCTChooser

    chooser = chooser_from_spec(spec)
    assert isinstance(chooser, PCTChooser)
    assert (chooser.seed, chooser.depth, chooser.horizon) == (5, depth, horizon)


def test_a_pct_recording_with_a_horizon_plays_back_bit_exact(tmp_path: Path) -> None:
    # Play rebuilds the header's chooser, horizon included, and checks every decision.
    path = tmp_path / "pct.evr"
    recorded = record("examples.minimachine:scenario", path, chooser="pct:0:2:20")
    with TraceReader(path) as reader:
        assert reader.header.chooser == "pct:0:2:20"
    played = play(path)
    assert played.bit_exact is True and played.failure == recorded.failure


@pytest.mark.parametrize(
    "spec",
    ["", "FIFO", "fifo:1", "lifo", "random:x", "random:1.5", "random:0x10", "rand:1",
     "pct:1:2:x", "pct:1:2:0"],
)
def test_an_unknown_chooser_says_what_is_accepted(spec: str) -> None:
    with pytest.raises(ScenarioError) as info:
        chooser_from_spec(spec)
    assert message(info) == (
        f"unknown chooser {spec!r}: expected 'fifo', 'random:SEED' or "
        "'pct:SEED[:DEPTH[:HORIZON]]'"
    )


def test_the_bundled_machine_ships_in_the_package_and_keeps_its_old_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import replay.examples.minimachine as shipped

    monkeypatch.chdir(tmp_path)  # no clone on sys.path: only the installed package
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(ROOT))])
    for name in [n for n in sys.modules if n == "examples" or n.startswith("examples.")]:
        monkeypatch.delitem(sys.modules, name)
    assert load_scenario("replay.examples.minimachine:scenario") is shipped.scenario
    assert load_scenario("examples.minimachine:scenario") is shipped.scenario
    with pytest.raises(ScenarioError, match=r"cannot import module 'examples.other'"):
        load_scenario("examples.other:scenario")


def test_the_old_module_is_the_shipped_module_in_a_clone() -> None:
    import examples.minimachine
    import replay.examples.minimachine as shipped

    assert examples.minimachine is shipped


# -- the scenario's source in the trace ---------------------------------------------------

TICKING = """
from evloop import SCALE_MS

def scenario(sim, *, ticks=4):
    def body():
        for _ in range(ticks):
            sim.sleep(SCALE_MS * sim.random.randrange(1, 5))

    sim.thread("ticker", body)
"""


def test_a_recording_keeps_a_hash_of_its_scenarios_file(tmp_path: Path) -> None:
    import hashlib

    from replay.scenario import SOURCE_KEY

    source = tmp_path / "ticking.py"
    source.write_text(TICKING)
    path = tmp_path / "t.evr"
    record(f"{source}:scenario", path)
    with TraceReader(path) as reader:
        recorded = reader.header.extensions[SOURCE_KEY]
    assert recorded == hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    record("tests.scenarios.workloads:timers_only", tmp_path / "w.evr")
    with TraceReader(tmp_path / "w.evr") as reader:
        assert reader.header.extensions[SOURCE_KEY] == hashlib.sha256(
            Path(workloads.__file__).read_bytes()
        ).hexdigest()[:16]


def test_a_divergence_says_the_scenario_changed_since_the_recording(tmp_path: Path) -> None:
    source = tmp_path / "ticking.py"
    source.write_text(TICKING)
    path = tmp_path / "t.evr"
    record(f"{source}:scenario", path)
    assert play(path).bit_exact  # unchanged: plays
    source.write_text(TICKING.replace("randrange(1, 5)", "randrange(1, 5) + 1"))
    with pytest.raises(ReplayDivergence) as info:
        play(path)
    assert info.value.scenario_changed is not None
    assert re.search(
        rf"\n  note: the scenario {re.escape(str(source))}:scenario changed since this trace "
        r"was recorded \(source [0-9a-f]{16}, now [0-9a-f]{16}\): the changed code need not "
        r"follow the trace; 'replay rerun' says whether its failure still happens\n",
        str(info.value),
    )


def test_a_divergence_of_unchanged_source_says_nothing_of_it(tmp_path: Path) -> None:
    import tests.scenarios.divergent as divergent

    path = tmp_path / "t.evr"
    record("tests.scenarios.divergent:skipping", path)
    divergent.SKIP_AT = 2  # the same file, another behaviour: no claim about the source
    try:
        with pytest.raises(ReplayDivergence) as info:
            play(path)
    finally:
        divergent.SKIP_AT = None
    assert info.value.scenario_changed is None and "note:" not in str(info.value)
