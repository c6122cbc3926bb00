"""Finding a scenario from its name, and choosers from their specs.

A scenario is a function taking a :class:`~evloop.Simulation` (and keyword
parameters) that sets up the system under test. It is named
``module:function`` (``replay.examples.minimachine:scenario``) or
``path/to/file.py:function``; a trace's header holds that name, so a trace
replays with no other argument.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from evloop import Chooser, FifoChooser, PCTChooser, RandomChooser

from .errors import ReplayError

__all__ = [
    "MOVED_MODULES",
    "ScenarioError",
    "chooser_from_spec",
    "load_scenario",
    "scenario_name",
]

Scenario = Callable[..., Any]


class ScenarioError(ReplayError):
    """A scenario name or a chooser spec that cannot be used (says what to fix)."""


def load_scenario(spec: str) -> Scenario:
    """The scenario function named by ``spec`` (``module:function`` or ``file.py:function``)."""
    if not isinstance(spec, str) or ":" not in spec:
        raise ScenarioError(
            f"scenario {spec!r} is not of the form module:function or path/to/file.py:function"
        )
    where, _, attr = spec.rpartition(":")
    if not where or not attr:
        raise ScenarioError(f"scenario {spec!r}: both the module and the function are needed")
    if where.endswith(".py") or "/" in where or "\\" in where:
        module = _load_file(Path(where), spec)
    else:
        module = _import_module(where, spec)
    target: Any = module
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ScenarioError(
                f"scenario {spec!r}: module {where!r} has no attribute {attr!r}"
            ) from None
    if not callable(target):
        raise ScenarioError(f"scenario {spec!r} is not callable")
    return target  # type: ignore[no-any-return]


#: Modules that moved, by their old names: traces name a scenario by its
#: module, and a trace recorded before the move must still find it.
MOVED_MODULES: Final = {"examples.minimachine": "replay.examples.minimachine"}


def _import_module(where: str, spec: str) -> Any:
    try:
        return importlib.import_module(where)
    except ImportError as exc:
        moved = MOVED_MODULES.get(where)
        missing = getattr(exc, "name", None)
        if moved is not None and missing is not None and where.startswith(missing):
            return importlib.import_module(moved)
        raise ScenarioError(f"scenario {spec!r}: cannot import module {where!r}: {exc}") from None


def _load_file(path: Path, spec: str) -> Any:
    if not path.is_file():
        raise ScenarioError(f"scenario {spec!r}: no such file {str(path)!r}")
    name = f"_evreplay_scenario_{path.stem}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise ScenarioError(f"scenario {spec!r}: cannot load {str(path)!r} as Python")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    module_spec.loader.exec_module(module)
    return module


def scenario_name(scenario: str | Scenario) -> str:
    """The name a trace header stores for ``scenario`` (a spec or an importable function)."""
    if isinstance(scenario, str):
        load_scenario(scenario)  # fail now, not at replay time
        return scenario
    module = getattr(scenario, "__module__", None)
    qualname = getattr(scenario, "__qualname__", None)
    if not module or not qualname or "<" in qualname or module == "__main__":
        raise ScenarioError(
            f"scenario {scenario!r} cannot be named for replay: pass a module-level function "
            "of an importable module, or a 'module:function' string"
        )
    name = f"{module}:{qualname}"
    if load_scenario(name) is not scenario:
        raise ScenarioError(f"scenario {scenario!r} is not reachable as {name!r}")
    return name


#: Choosers whose decisions exist only in the trace they were recorded to
#: (a play takes them from the trace, so it never needs to rebuild them).
RECORDED_ONLY = ("hypothesis", "script", "systematic")


def chooser_from_spec(spec: str) -> Chooser:
    """``fifo``, ``random:SEED`` or ``pct:SEED[:DEPTH]``."""
    kind, _, arg = spec.partition(":")
    try:
        if kind == "fifo" and not arg:
            return FifoChooser()
        if kind == "random":
            return RandomChooser(int(arg or "0"))
        if kind == "pct":
            seed, _, depth = arg.partition(":")
            return PCTChooser(int(seed or "0"), int(depth or "3"))
    except ValueError:
        pass
    raise ScenarioError(
        f"unknown chooser {spec!r}: expected 'fifo', 'random:SEED' or 'pct:SEED[:DEPTH]'"
    )
