"""replay: record every nondeterministic decision of a simulation, and replay it bit-exactly.

As QEMU's ``replay/``: every source of nondeterminism goes through one log, a
streaming msgpack trace; a play takes every value from the log, re-records it,
and stops at the first divergence. See ``docs/trace-format.md`` for the file
format and ``docs/design.md`` for how the layers fit.

PYTEST_DONT_REWRITE
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import PlayResult, RecordResult, play, record
    from .declared import ScenarioNotDeclared, declare_scenario, trusting_traces
    from .errors import ReplayDivergence, ReplayError, TraceFormatError
    from .mutex import ReplayMutex
    from .scenario import ScenarioError, chooser_from_spec, load_scenario
    from .session import Player, Recorder, ReplayMode
    from .trace.format import FORMAT_NAME, FORMAT_VERSION, CheckpointKind, EventKind
    from .trace.header import TraceHeader
    from .trace.reader import TraceReader
    from .trace.writer import TraceWriter

# Loaded on first use, so that importing a submodule (the pytest plugin,
# which pytest imports in every run) does not pull in msgpack and evloop.
_HOMES = {
    "PlayResult": "api", "RecordResult": "api", "play": "api", "record": "api",
    "ReplayDivergence": "errors", "ReplayError": "errors", "TraceFormatError": "errors",
    "FORMAT_NAME": "trace.format", "FORMAT_VERSION": "trace.format",
    "EventKind": "trace.format", "TraceHeader": "trace.header",
    "ReplayMutex": "mutex", "ScenarioError": "scenario",
    "ScenarioNotDeclared": "declared", "declare_scenario": "declared",
    "trusting_traces": "declared",
    "chooser_from_spec": "scenario", "load_scenario": "scenario",
    "CheckpointKind": "trace.format", "Player": "session", "Recorder": "session",
    "ReplayMode": "session", "TraceReader": "trace.reader", "TraceWriter": "trace.writer",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'replay' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
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
]
