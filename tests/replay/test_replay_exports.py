"""Guards ``replay.__all__``, the replay package's public surface (as trio's test_exports does).

Adding or removing a public name is a decision: it must show up here, in a
diff, next to the code change that made it.
"""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import replay

ROOT = Path(__file__).resolve().parents[2]

EXPECTED = {
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "CheckpointKind",
    "EventKind",
    "PlayResult",
    "Player",
    "RecordResult",
    "Recorder",
    "ReplayDivergence",
    "ReplayError",
    "ReplayMode",
    "ReplayMutex",
    "ScenarioError",
    "ScenarioNotDeclared",
    "TraceFormatError",
    "TraceHeader",
    "TraceReader",
    "TraceWriter",
    "chooser_from_spec",
    "declare_scenario",
    "load_scenario",
    "play",
    "record",
    "trusting_traces",
}


def test_all_is_the_expected_set() -> None:
    assert set(replay.__all__) == EXPECTED


def test_all_has_no_duplicates() -> None:
    assert len(replay.__all__) == len(set(replay.__all__))


def test_every_exported_name_is_importable() -> None:
    module = importlib.import_module("replay")
    for name in replay.__all__:
        assert hasattr(module, name), name
        namespace: dict[str, object] = {}
        exec(f"from replay import {name}", namespace)
        assert namespace[name] is getattr(replay, name)


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from replay import *", namespace)
    namespace.pop("__builtins__")
    assert set(namespace) == EXPECTED


def test_nothing_private_is_exported() -> None:
    for name in replay.__all__:
        assert not name.startswith("_"), name
        obj = getattr(replay, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            module = obj.__module__
            assert module.startswith("replay."), (name, module)
            assert not obj.__name__.startswith("_"), name


def test_exported_classes_and_functions_keep_their_own_names() -> None:
    for name in replay.__all__:
        obj = getattr(replay, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__name__ == name


def test_every_exported_name_lives_in_a_submodule_all() -> None:
    # The package re-exports; each name is declared public where it is defined.
    for name in replay.__all__:
        obj = getattr(replay, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            submodule = importlib.import_module(obj.__module__)
            assert name in submodule.__all__, (name, obj.__module__)


def test_every_submodule_all_names_something_that_exists() -> None:
    for module_name in (
        "api", "errors", "mutex", "scenario", "session", "trace", "trace.format",
        "trace.records", "trace.choices", "trace.header", "trace.reader", "trace.writer",
        "tools", "host", "cli", "hypothesis",
    ):
        submodule = importlib.import_module(f"replay.{module_name}")
        for name in submodule.__all__:
            assert hasattr(submodule, name), (module_name, name)
            assert not name.startswith("_"), (module_name, name)


def test_errors_share_one_root() -> None:
    for name in ("ReplayDivergence", "TraceFormatError", "ScenarioError"):
        assert issubclass(getattr(replay, name), replay.ReplayError)
    assert issubclass(replay.ReplayError, Exception)


def test_the_format_constants_are_exported() -> None:
    assert replay.FORMAT_NAME == "evreplay-trace"
    assert replay.FORMAT_VERSION == 3


def test_the_package_is_typed() -> None:
    assert (Path(replay.__file__).parent / "py.typed").is_file()


def test_importing_replay_does_not_import_the_test_tier_or_hypothesis() -> None:
    # The package is import-light: plain ``import replay`` pulls in no test tooling.
    code = (
        "import sys, replay; print(sorted(m for m in ('hypothesis', 'pytest') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
