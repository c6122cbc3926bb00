"""Finding a scenario from its name, and choosers from their specs.

A scenario is a function taking a :class:`~evloop.Simulation` (and keyword
parameters) that sets up the system under test. It is named
``module:function`` (``replay.examples.minimachine:scenario``) or
``path/to/file.py:function``; a trace's header holds that name, so a trace
replays with no other argument.

A scenario may be a coroutine function: ``async def scenario(sim)`` (it takes
the simulation when it has a positional parameter) or ``async def main()``.
Its coroutine runs on a :class:`~evloop.asyncio.SimEventLoop` bound to the
run's simulation, in a thread of control named ``asyncio``, so every command,
the Python API, the pytest plugin and the hypothesis integration run it the
way they run any scenario: :func:`start_scenario` is the one place that calls
a scenario.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from evloop import Chooser, FifoChooser, PCTChooser, RandomChooser, Simulation

from .errors import ReplayError

__all__ = [
    "ASYNCIO_THREAD",
    "MOVED_MODULES",
    "ScenarioError",
    "chooser_from_spec",
    "file_hash",
    "load_scenario",
    "scenario_name",
    "source_file",
    "source_hash",
    "start_scenario",
    "takes_simulation",
]

Scenario = Callable[..., Any]

#: The thread of control a coroutine scenario's event loop runs in.
ASYNCIO_THREAD = "asyncio"


#: The header extension holding :func:`source_hash` of the recorded scenario.
SOURCE_KEY: Final = "scenario.source_hash"


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


def takes_simulation(fn: Scenario) -> bool:
    """Whether ``fn`` is called with the simulation first.

    A plain function always is. A coroutine function is when it has a
    positional parameter (``async def scenario(sim)``), and is not when it
    has none (``async def main()``, ``async def main(*, clients=2)``).
    """
    if not inspect.iscoroutinefunction(fn):
        return True
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                  inspect.Parameter.VAR_POSITIONAL)
    return any(p.kind in positional for p in parameters)


def start_scenario(fn: Scenario, sim: Simulation, params: Mapping[str, Any]) -> None:
    """Call the scenario ``fn`` on ``sim`` with ``params``; the run is ``sim.run()``'s.

    A coroutine (from an ``async def`` scenario, or returned by a plain one)
    is run by :func:`evloop.asyncio.run` on ``sim`` in the thread of control
    :data:`ASYNCIO_THREAD`: its loop's clock is the simulation's, its waits
    are the scheduler's, and what it raises ends the run as a failure.
    """
    result = fn(sim, **params) if takes_simulation(fn) else fn(**params)
    if inspect.iscoroutine(result):
        from evloop.asyncio import run

        main = result
        sim.thread(ASYNCIO_THREAD, lambda: run(main, sim=sim))


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
    """``fifo``, ``random:SEED`` or ``pct:SEED[:DEPTH[:HORIZON]]``.

    PCT's ``HORIZON`` (default 1000) is how many decisions its change points
    are drawn among: about a run's number of decisions is best.
    """
    kind, _, arg = spec.partition(":")
    try:
        if kind == "fifo" and not arg:
            return FifoChooser()
        if kind == "random":
            return RandomChooser(int(arg or "0"))
        if kind == "pct":
            seed, _, rest = arg.partition(":")
            depth, _, horizon = rest.partition(":")
            return PCTChooser(int(seed or "0"), int(depth or "3"), int(horizon or "1000"))
    except ValueError:
        pass
    raise ScenarioError(
        f"unknown chooser {spec!r}: expected 'fifo', 'random:SEED' or "
        "'pct:SEED[:DEPTH[:HORIZON]]'"
    )


# -- the scenario's source: "the scenario changed since this was recorded" ---------------


def source_file(fn: Scenario, params: Mapping[str, Any]) -> Path | None:
    """The file whose text is the scenario: the one defining ``fn``, or None if unknown.

    A scenario that runs code from elsewhere (the pytest plugin's
    ``replay_test`` runs a test file) says which file with an
    ``evreplay_source(params)`` attribute.
    """
    locate = getattr(fn, "evreplay_source", None)
    try:
        if callable(locate):
            found = locate(params)
            return None if found is None else Path(found)
        name = inspect.getsourcefile(inspect.unwrap(fn))
    except (TypeError, OSError, ReplayError):
        return None
    return None if name is None else Path(name)


def source_hash(fn: Scenario, params: Mapping[str, Any]) -> str | None:
    """The first 16 hex digits of the SHA-256 of the scenario's file, or None if unreadable.

    The whole file, not just the function: a fix in a helper beside the
    scenario changes what the scenario does as much as one in its body.
    """
    path = source_file(fn, params)
    return None if path is None else file_hash(path)


def file_hash(path: Path) -> str | None:
    """:func:`source_hash` of the file at ``path``: 16 hex digits of SHA-256, None if unreadable."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return hashlib.sha256(data).hexdigest()[:16]
