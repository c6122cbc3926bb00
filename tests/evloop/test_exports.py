"""Guards ``evloop.__all__``, the package's public surface (as trio's test_exports does).

Adding or removing a public name is a decision: it must show up here, in a
diff, next to the code change that made it.
"""

from __future__ import annotations

import importlib
import inspect

import evloop

EXPECTED = {
    "BH",
    "HOST_EPOCH_NS",
    "IOTHREAD_POLL_MAX_NS_DEFAULT",
    "QEMU_TIMER_ATTR_ALL",
    "QEMU_TIMER_ATTR_EXTERNAL",
    "qemu_clock_deadline_ns_all",
    "REQUEST_CANCELLED",
    "RequestState",
    "ThreadPoolRequest",
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
    "DeadlockError",
    "DispatchEvent",
    "DispatchKind",
    "EventNotifier",
    "EvloopError",
    "EvloopInternalError",
    "FdTable",
    "FencedError",
    "FifoChooser",
    "RandomChooser",
    "IOThread",
    "MainLoop",
    "NondeterminismError",
    "PCTChooser",
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
    "ThreadState",
    "Timer",
    "VirtualClock",
    "WaitCondition",
    "WarpBlocker",
    "WatchdogError",
    "soonest_timeout",
    "CoMutex",
    "CoQueue",
    "CoRwlock",
    "Coroutine",
    "aio_co_enter",
    "aio_co_schedule",
    "aio_co_wake",
    "qemu_co_queue_next",
    "qemu_co_queue_restart_all",
    "qemu_co_queue_wait",
    "qemu_co_sleep_ns",
    "qemu_coroutine_create",
    "qemu_coroutine_enter",
    "qemu_coroutine_self",
    "qemu_coroutine_yield",
    "qemu_in_coroutine",
    "timeout_ns_to_ms",
}


def test_all_is_the_expected_set() -> None:
    assert set(evloop.__all__) == EXPECTED


def test_all_has_no_duplicates() -> None:
    assert len(evloop.__all__) == len(set(evloop.__all__))


def test_every_exported_name_is_importable() -> None:
    module = importlib.import_module("evloop")
    for name in evloop.__all__:
        assert hasattr(module, name), name
        namespace: dict[str, object] = {}
        exec(f"from evloop import {name}", namespace)
        assert namespace[name] is getattr(evloop, name)


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from evloop import *", namespace)
    namespace.pop("__builtins__")
    assert set(namespace) == EXPECTED


def test_nothing_private_is_exported() -> None:
    for name in evloop.__all__:
        assert not name.startswith("_"), name
        obj = getattr(evloop, name)
        module = getattr(obj, "__module__", None)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert module is not None
            assert module.startswith("evloop."), (name, module)
            assert not obj.__name__.startswith("_"), name


def test_exported_classes_and_functions_keep_their_own_names() -> None:
    for name in evloop.__all__:
        obj = getattr(evloop, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__name__ == name


def test_every_exported_name_lives_in_a_submodule_all() -> None:
    # The package re-exports; each name is declared public where it is defined.
    for name in evloop.__all__:
        obj = getattr(evloop, name)
        module_name = getattr(obj, "__module__", None)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert module_name is not None
            submodule = importlib.import_module(module_name)
            assert name in submodule.__all__, (name, module_name)


def test_errors_share_one_root() -> None:
    for name in (
        "DeadlockError",
        "SimulationError",
        "EvloopInternalError",
        "NondeterminismError",
    ):
        assert issubclass(getattr(evloop, name), evloop.EvloopError)


def test_the_package_has_a_version() -> None:
    assert evloop.__version__ == "0.1.0"
