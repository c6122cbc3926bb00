"""evloop: QEMU's event loop on a virtual clock and a virtual fd layer.

Names follow QEMU's vocabulary in Python form (``AioContext``, ``bh_new``,
``set_fd_handler``, ``timer_new_ns``, ``ClockType.VIRTUAL``). Every callback is
a zero-argument callable; every time is an integer number of nanoseconds.
See ``docs/design.md`` for the layers and what depends on what.

PYTEST_DONT_REWRITE
"""

from .errors import (
    DeadlockError,
    EvloopError,
    EvloopInternalError,
    FencedError,
    NondeterminismError,
    SimulationError,
    WatchdogError,
)
from .loop.aio import AioContext
from .loop.bh import BH, BHFlags
from .loop.clock import (
    HOST_EPOCH_NS,
    SCALE_MS,
    SCALE_NS,
    SCALE_US,
    ClockType,
    VirtualClock,
    soonest_timeout,
    timeout_ns_to_ms,
)
from .loop.fds import FdTable
from .loop.mainloop import MainLoop
from .loop.notifier import EventNotifier
from .loop.timer import QEMU_TIMER_ATTR_ALL, QEMU_TIMER_ATTR_EXTERNAL, Timer
from .loop.timergroup import qemu_clock_deadline_ns_all
from .loop.waiting import WarpBlocker
from .machine.chooser import (
    ChoicePoint,
    FifoChooser,
    PCTChooser,
    RandomChooser,
    SystematicChooser,
)
from .machine.colock import (
    CoMutex,
    CoQueue,
    CoRwlock,
    qemu_co_queue_next,
    qemu_co_queue_restart_all,
    qemu_co_queue_wait,
)
from .machine.coroutine import (
    Coroutine,
    aio_co_enter,
    aio_co_schedule,
    aio_co_wake,
    qemu_co_sleep_ns,
    qemu_coroutine_create,
    qemu_coroutine_enter,
    qemu_coroutine_self,
    qemu_coroutine_yield,
    qemu_in_coroutine,
)
from .machine.external import ScriptedPeer
from .machine.iothread import IOTHREAD_POLL_MAX_NS_DEFAULT, IOThread
from .machine.observation import DispatchEvent
from .machine.rng import SimRandom
from .machine.scheduler import ThreadOfControl, ThreadState
from .machine.simevent import SimEvent
from .machine.simulation import RunResult, Simulation, StopReason
from .machine.threadpool import REQUEST_CANCELLED, RequestState, ThreadPoolRequest
from .seams import (
    Blocker,
    ChoiceKind,
    Chooser,
    DispatchKind,
    Seams,
    SimulationHooks,
    WaitCondition,
)

__all__ = [
    "BH",
    "HOST_EPOCH_NS",
    "IOTHREAD_POLL_MAX_NS_DEFAULT",
    "QEMU_TIMER_ATTR_ALL",
    "QEMU_TIMER_ATTR_EXTERNAL",
    "REQUEST_CANCELLED",
    "SCALE_MS",
    "SCALE_NS",
    "SCALE_US",
    "AioContext",
    "BHFlags",
    "Blocker",
    "ChoiceKind",
    "ChoicePoint",
    "Chooser",
    "ClockType",
    "CoMutex",
    "CoQueue",
    "CoRwlock",
    "Coroutine",
    "DeadlockError",
    "DispatchEvent",
    "DispatchKind",
    "EventNotifier",
    "EvloopError",
    "EvloopInternalError",
    "FdTable",
    "FencedError",
    "FifoChooser",
    "IOThread",
    "MainLoop",
    "NondeterminismError",
    "PCTChooser",
    "RandomChooser",
    "RequestState",
    "RunResult",
    "ScriptedPeer",
    "Seams",
    "SimEvent",
    "SimRandom",
    "Simulation",
    "SimulationError",
    "SimulationHooks",
    "StopReason",
    "SystematicChooser",
    "ThreadOfControl",
    "ThreadPoolRequest",
    "ThreadState",
    "Timer",
    "VirtualClock",
    "WaitCondition",
    "WarpBlocker",
    "WatchdogError",
    "aio_co_enter",
    "aio_co_schedule",
    "aio_co_wake",
    "qemu_clock_deadline_ns_all",
    "qemu_co_queue_next",
    "qemu_co_queue_restart_all",
    "qemu_co_queue_wait",
    "qemu_co_sleep_ns",
    "qemu_coroutine_create",
    "qemu_coroutine_enter",
    "qemu_coroutine_self",
    "qemu_coroutine_yield",
    "qemu_in_coroutine",
    "soonest_timeout",
    "timeout_ns_to_ms",
]

__version__ = "0.1.0"
