"""evloop: QEMU's event loop on a virtual clock and a virtual fd layer.

Names follow QEMU's vocabulary in Python form (``AioContext``, ``bh_new``,
``set_fd_handler``, ``timer_new_ns``, ``ClockType.VIRTUAL``). Every callback is
a zero-argument callable; every time is an integer number of nanoseconds.
See ``docs/design.md`` for the layers and what depends on what.

PYTEST_DONT_REWRITE
"""

from .aio import AioContext, DispatchKind
from .bh import BH, BHFlags
from .chooser import ChoiceKind, Chooser, FifoChooser, PCTChooser, RandomChooser
from .clock import (
    HOST_EPOCH_NS,
    SCALE_MS,
    SCALE_NS,
    SCALE_US,
    ClockType,
    VirtualClock,
    soonest_timeout,
    timeout_ns_to_ms,
)
from .errors import (
    DeadlockError,
    EvloopError,
    EvloopInternalError,
    NondeterminismError,
    SimulationError,
)
from .external import ScriptedPeer
from .fds import FdTable
from .hooks import SimulationHooks
from .iothread import IOThread
from .mainloop import MainLoop
from .notifier import EventNotifier
from .rng import SimRandom
from .scheduler import ThreadOfControl, ThreadState
from .simulation import DispatchEvent, RunResult, SimEvent, Simulation, StopReason
from .timer import Timer
from .waiting import Blocker, WaitCondition, WarpBlocker

__all__ = [
    "BH",
    "HOST_EPOCH_NS",
    "SCALE_MS",
    "SCALE_NS",
    "SCALE_US",
    "AioContext",
    "BHFlags",
    "Blocker",
    "ChoiceKind",
    "Chooser",
    "ClockType",
    "DeadlockError",
    "DispatchEvent",
    "DispatchKind",
    "EventNotifier",
    "EvloopError",
    "EvloopInternalError",
    "FdTable",
    "FifoChooser",
    "IOThread",
    "MainLoop",
    "NondeterminismError",
    "PCTChooser",
    "RandomChooser",
    "RunResult",
    "ScriptedPeer",
    "SimEvent",
    "SimRandom",
    "Simulation",
    "SimulationError",
    "SimulationHooks",
    "StopReason",
    "ThreadOfControl",
    "ThreadState",
    "Timer",
    "VirtualClock",
    "WaitCondition",
    "WarpBlocker",
    "soonest_timeout",
    "timeout_ns_to_ms",
]

__version__ = "0.1.0"
