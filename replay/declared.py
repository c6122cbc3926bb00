"""Which scenarios a trace may name: the user declares them; nothing else is imported.

A trace is untrusted input: its HEADER names a scenario (``module:function``
or ``path/to/file.py:function``) and the parameters to call it with. Playing
it imports that module and calls that function, so a trace could otherwise
make the tools run any code on the machine. The rules kept here:

* **Declared or refused, before any import.** A scenario a trace names is
  played only when it is declared:

  - bundled with the package (:data:`BUNDLED_SCENARIOS`; old names are kept
    as aliases so that old traces keep playing);
  - named with :func:`declare_scenario` in this process: as a decorator on the
    function (``@replay.declare_scenario``), or called with a spec string (the
    command line's ``--scenario SPEC`` does this); a scenario this process
    records with :func:`replay.record` counts too, the user having named it;
  - listed in the ``scenarios`` array of the ``[tool.evreplay]`` table of the
    nearest ``pyproject.toml`` at or above the working directory;
  - the value of an entry point of the ``evreplay.scenarios`` group of an
    installed distribution.

  A spec is ``module:function`` or ``file.py:function`` (that scenario), or a
  bare ``module`` (that module's functions decorated with
  ``@declare_scenario``; the module is imported only when a trace names one
  of its functions). Anything else raises :class:`ScenarioNotDeclared` with
  one line naming the scenario and how to allow it; :func:`trusting_traces`
  (the command line's ``--trust``) lifts the check.
* **Parameters are plain data, checked against the signature.** A header's
  parameters are msgpack scalars and arrays (the reader refuses anything
  else); :func:`check_parameters` binds them to the scenario's signature
  before the scenario is called, so a trace cannot pass what the function
  does not take.
* **Derived file names stay in their directory** (:func:`safe_component`).
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import inspect
import os
import re
import shlex
import threading
import tomllib
from collections.abc import Callable, Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any, Final, TypeVar, overload

from .scenario import Scenario, ScenarioError, load_scenario, takes_simulation

__all__ = [
    "BUNDLED_SCENARIOS",
    "ENTRY_POINT_GROUP",
    "SCENARIO_ALIASES",
    "ScenarioNotDeclared",
    "check_parameters",
    "declare_scenario",
    "declared_by",
    "load_trace_scenario",
    "safe_component",
    "trusting_traces",
]

#: The scenarios shipped with evreplay, which any trace may name.
BUNDLED_SCENARIOS: Final = (
    "replay.examples.minimachine:scenario",
    "replay.examples.cache_service:main",
    "replay.examples.cache_service:main_fixed",
    "replay.examples.wakeups:dispatching_race",
    "replay.examples.wakeups:test_and_clear_race",
    "replay.examples.wakeups:bh_ctx_race",
    "replay.examples.wakeups:today",
    "replay.pytest_plugin:replay_test",
)
#: Old names of bundled scenarios -> their current names. A trace naming an
#: old name plays the current one (its bytes are unchanged).
SCENARIO_ALIASES: Final[Mapping[str, str]] = {
    "examples.minimachine:scenario": "replay.examples.minimachine:scenario",
}
#: The entry point group that declares scenarios of an installed distribution.
ENTRY_POINT_GROUP: Final = "evreplay.scenarios"
#: The attribute ``@declare_scenario`` sets on a function it declares.
MARK: Final = "__evreplay_scenario__"

F = TypeVar("F", bound=Callable[..., Any])

_lock = threading.Lock()
_declared: set[str] = set()  # specs: module:function, file.py:function, or module
_trust: contextvars.ContextVar[bool] = contextvars.ContextVar("evreplay_trust", default=False)


class ScenarioNotDeclared(ScenarioError):
    """A trace names a scenario the user has not declared; nothing was imported."""


@overload
def declare_scenario(target: str) -> str: ...
@overload
def declare_scenario(target: F) -> F: ...
def declare_scenario(target: F | str) -> F | str:
    """Declare a scenario that traces may name; as a decorator, returns the function.

    ``target`` is a function (``@declare_scenario``: declared under its
    ``module:qualname``) or a spec string: ``module:function``,
    ``path/to/file.py:function``, or a bare ``module`` whose
    ``@declare_scenario`` functions count. Declaring imports nothing.
    """
    if isinstance(target, str):
        spec = _normalize(target)
        with _lock:
            _declared.add(spec)
        return target
    if not callable(target):
        raise ScenarioError(f"declare_scenario: {target!r} is neither a function nor a spec")
    module = getattr(target, "__module__", None)
    qualname = getattr(target, "__qualname__", None)
    if not module or not qualname:
        raise ScenarioError(f"declare_scenario: {target!r} has no module:function name")
    setattr(target, MARK, True)
    with _lock:
        _declared.add(f"{module}:{qualname}")
    return target


@contextlib.contextmanager
def trusting_traces() -> Iterator[None]:
    """Inside this block, a trace may name any scenario (``--trust``)."""
    token = _trust.set(True)
    try:
        yield
    finally:
        _trust.reset(token)


def load_trace_scenario(name: str, where: str | os.PathLike[str]) -> Scenario:
    """The scenario function a trace at ``where`` names, if it is declared.

    Refuses an undeclared name before importing anything
    (:class:`ScenarioNotDeclared`); a declared one is loaded as
    :func:`~replay.scenario.load_scenario` does, under its current name when
    ``name`` is an old alias.
    """
    name = SCENARIO_ALIASES.get(name, name)
    if not _trust.get() and not _is_declared(name):
        raise ScenarioNotDeclared(
            f"{where}: the trace names scenario {name!r}, which is not declared, so it was "
            f"not imported; to allow it, pass --scenario {_quote(name)} (or declare it: "
            f"@replay.declare_scenario, [tool.evreplay] scenarios in pyproject.toml, an "
            f"{ENTRY_POINT_GROUP} entry point), or --trust for a trace whose origin you trust"
        )
    try:
        return load_scenario(name)
    except ScenarioError as exc:
        raise ScenarioError(f"{where}: {exc}") from None


def check_parameters(
    fn: Scenario, name: str, params: Mapping[str, Any], where: str | os.PathLike[str]
) -> None:
    """Refuse ``params`` (a trace's) that ``fn``'s signature does not take, naming them."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    first = 1 if takes_simulation(fn) else 0  # async def main() takes no simulation
    try:
        signature.bind(*[None] * first, **params)
    except TypeError as exc:
        names = list(signature.parameters)[first:]
        takes = ", ".join(names) if names else "no parameters"
        raise ScenarioError(
            f"{where}: the trace's parameters do not fit scenario {name!r} ({exc}); "
            f"it takes: {takes}"
        ) from None


def declared_by(cwd: str | os.PathLike[str] | None = None) -> list[str]:
    """Every spec declared in ``cwd``: bundled, this process's, pyproject's, entry points'."""
    return [*_local_specs(cwd), *_entry_point_specs()]


def _local_specs(cwd: str | os.PathLike[str] | None = None) -> list[str]:
    """The declarations that cost no scan of installed distributions."""
    with _lock:
        here = sorted(_declared)
    return [*BUNDLED_SCENARIOS, *here, *_pyproject_specs(cwd)]


_SAFE: Final = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_component(text: str, fallback: str = "x") -> str:
    """``text`` as one file name component: ``[A-Za-z0-9_.-]`` only, never ``.``/``..``."""
    name = _SAFE.sub("_", text).strip(".")
    return name or fallback


# -- matching ----------------------------------------------------------------------------


def _is_declared(name: str) -> bool:
    if ":" not in name:
        return False
    spec = _normalize(name)
    module, _, attr = spec.rpartition(":")
    # Reading every installed distribution's entry points costs tens of
    # milliseconds: only when the cheap sources do not declare the name.
    for source in (_local_specs, _entry_point_specs):
        specs = source()
        if spec in specs:
            return True
        if module in specs and not _is_file(module) and _marked(module, attr):
            return True
    return False


def _marked(module: str, attr: str) -> bool:
    """Whether ``module.attr`` is decorated with ``@declare_scenario`` (imports ``module``)."""
    try:
        target: Any = importlib.import_module(module)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError):
        return False
    return getattr(target, MARK, False) is True


def _is_file(where: str) -> bool:
    return where.endswith(".py") or "/" in where or "\\" in where


def _normalize(spec: str) -> str:
    """A file spec with its path made absolute and normal; a module spec as it is."""
    where, sep, attr = spec.rpartition(":")
    if sep and _is_file(where):
        return f"{os.path.normpath(os.path.abspath(where))}:{attr}"
    return spec


def _quote(text: str) -> str:
    return shlex.quote(text)


# -- the sources of declarations ---------------------------------------------------------


def _pyproject_specs(cwd: str | os.PathLike[str] | None) -> list[str]:
    start = Path(cwd if cwd is not None else os.getcwd()).resolve()
    for folder in (start, *start.parents):
        path = folder / "pyproject.toml"
        if path.is_file():
            return _read_pyproject(path)
    return []


def _read_pyproject(path: Path) -> list[str]:
    try:
        with open(path, "rb") as f:
            table = tomllib.load(f).get("tool", {}).get("evreplay", {})
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ScenarioError(f"{path}: cannot read [tool.evreplay]: {exc}") from None
    specs = table.get("scenarios", []) if isinstance(table, dict) else None
    if not isinstance(specs, list) or not all(isinstance(s, str) and s for s in specs):
        raise ScenarioError(
            f"{path}: [tool.evreplay] scenarios must be an array of 'module:function' or "
            "'module' strings"
        )
    # A file spec is relative to the pyproject's folder, not the working directory.
    return [_normalize(_relative_to(s, path.parent)) for s in specs]


def _relative_to(spec: str, folder: Path) -> str:
    where, sep, attr = spec.rpartition(":")
    if sep and _is_file(where) and not os.path.isabs(where):
        return f"{folder / where}:{attr}"
    return spec


def _entry_point_specs() -> list[str]:
    try:
        points = metadata.entry_points(group=ENTRY_POINT_GROUP)
    except Exception:  # a broken distribution's metadata declares nothing
        return []
    return sorted(_normalize(ep.value.replace(" ", "")) for ep in points)

