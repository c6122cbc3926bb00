"""replay: record every nondeterministic decision of a simulation, and replay it bit-exactly.

As QEMU's ``replay/``: every source of nondeterminism goes through one log, a
streaming msgpack trace; a play takes every value from the log, re-records it,
and stops at the first divergence. See ``docs/trace-format.md`` for the file
format and ``docs/design.md`` for how the layers fit.
"""

from .api import PlayResult, RecordResult, play, record
from .errors import ReplayDivergence, ReplayError, TraceFormatError
from .format import FORMAT_NAME, FORMAT_VERSION, EventKind, TraceHeader
from .mutex import ReplayMutex
from .scenario import ScenarioError, chooser_from_spec, load_scenario
from .session import CheckpointKind, Player, Recorder, ReplayMode
from .trace import TraceReader, TraceWriter

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
    "TraceFormatError",
    "TraceHeader",
    "TraceReader",
    "TraceWriter",
    "chooser_from_spec",
    "load_scenario",
    "play",
    "record",
]
