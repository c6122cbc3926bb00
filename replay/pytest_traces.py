"""Traces as tests: the scenario of a trace saved from a test, and trace files as items.

Two halves of the pytest plugin (``replay/pytest_plugin.py``) that meet at a
trace file:

* a trace saved from a failing test names the scenario :func:`replay_test`
  (as ``replay.pytest_plugin:replay_test``, the name its header keeps), which
  loads the test's file and calls the test with the simulation, so the trace
  replays with no pytest; the test's failure is recorded by type and place
  (:func:`recorded_failure`);
* a ``*.evr`` file under ``--evreplay-traces`` or ``--evreplay-rerun`` is a
  :class:`TraceFile` whose items replay it (:class:`TraceItem`) or rerun its
  schedule under the current code (:class:`RerunItem`).

Import-light, as the plugin is: nothing from ``evloop`` or ``replay`` is
imported at module level.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from evloop import Simulation
    from replay.api import PlayResult

__all__ = [
    "FailureRecurs",
    "RecordedTestFailure",
    "RerunItem",
    "TraceFile",
    "TraceItem",
    "TraceMismatch",
    "plural",
    "recorded_failure",
    "replay_test",
]


class RecordedTestFailure(Exception):
    """How a test failed, as a saved trace records it: exception type and where it was raised."""


class TraceMismatch(Exception):
    """A trace replayed without diverging, but cannot be confirmed byte for byte."""


def plural(n: int, noun: str) -> str:
    """``1 step``, ``2 steps``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


# -- the scenario of a trace saved from a test ------------------------------------------


def recorded_failure(exc: BaseException) -> RecordedTestFailure:
    """The failure as a trace records it: the exception's type and where it was raised."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = "" if tb is None else f" at {Path(tb.tb_frame.f_code.co_filename).name}:{tb.tb_lineno}"
    return RecordedTestFailure(f"{type(exc).__qualname__}{where}")


def replay_test(sim: Simulation, *, path: str, function: str) -> None:
    """The scenario of a trace saved from a test: call test ``function`` of file ``path``.

    ``path`` is relative to the rootdir, so play from there. As pytest's
    default import mode does, the test file's directory goes on ``sys.path``.
    A failure of the test is re-raised as the :class:`RecordedTestFailure`
    that the recording ended with. Both come from a trace, so they are
    checked before anything is loaded: ``path`` must be a test file
    (``test_*.py`` or ``*_test.py``) below the working directory, and
    ``function`` a test's name. An ``async def`` test runs on the simulated
    loop as it did under ``@pytest.mark.evreplay_asyncio``.
    """
    import inspect

    from replay.errors import ReplayError
    from replay.scenario import ScenarioError, load_scenario, start_scenario

    test_file = _test_file_of(path)
    if not (isinstance(function, str) and function.startswith("test")
            and all(part.isidentifier() for part in function.split("."))):
        raise ScenarioError(
            f"replay_test: function {function!r} is not a test's name (test..., Class.test...)"
        )
    directory = str(test_file.parent)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    test = load_scenario(f"{test_file}:{function}")
    try:
        start_scenario(test, sim, {})
        if inspect.iscoroutinefunction(test):  # the recorded run ran it to the end in the test
            sim.run()
    except (ReplayError, KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # pytest.fail() raises a BaseException
        raise recorded_failure(exc) from exc


def _replay_test_source(params: Mapping[str, object]) -> Path:
    """The file a trace of :func:`replay_test` runs: its source, for ``scenario.source_hash``."""
    return _test_file_of(params.get("path"))


replay_test.evreplay_source = _replay_test_source  # type: ignore[attr-defined]


def _test_file_of(path: object) -> Path:
    """``path`` (from a trace) as a test file below the working directory, or refused."""
    from replay.scenario import ScenarioError

    if not isinstance(path, str) or not path:
        raise ScenarioError(f"replay_test: path {path!r} is not a file name")
    relative = Path(path)
    name = relative.name
    is_test = name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py"))
    if relative.is_absolute() or ".." in relative.parts or not is_test:
        raise ScenarioError(
            f"replay_test: path {path!r} must be a test file (test_*.py or *_test.py) "
            "given relative to the working directory, without '..'"
        )
    root = Path.cwd().resolve()
    resolved = (root / relative).resolve()
    if root not in resolved.parents:  # a symlink out of the tree
        raise ScenarioError(f"replay_test: path {path!r} leads out of {root}")
    return resolved


# -- traces as test items ---------------------------------------------------------------


class TraceFile(pytest.File):
    """A ``*.evr`` file under ``--evreplay-traces`` (an item that replays it) or
    ``--evreplay-rerun`` (an item that reruns it), or both."""

    def __init__(self, *, replays: bool = True, reruns: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.replays = replays
        self.reruns = reruns

    def collect(self) -> Iterator[pytest.Item]:
        if self.replays:
            yield TraceItem.from_parent(self, name="replay")
        if self.reruns:
            yield RerunItem.from_parent(self, name="rerun")


class TraceItem(pytest.Item):
    """Replays one trace; passes when the replay is bit-exact.

    A recorded failure that the replay reproduces (play checks the recorded
    cause) is a pass. A divergence, a damaged file, a scenario that cannot be
    loaded, or a replay that is not bit-exact fails the item with the replay
    layer's own message and no traceback.
    """

    def runtest(self) -> None:
        from replay.api import play

        result = play(self.path)
        if result.bit_exact is None:
            raise TraceMismatch(
                f"{self.path}: the trace is truncated at byte {result.truncated_at}: it "
                f"replayed {result.steps} steps without diverging, but an incomplete trace "
                "cannot be checked bit-exactly"
            )
        if not result.bit_exact:
            raise TraceMismatch(
                f"{self.path}: replayed {result.steps} steps without diverging, but the "
                "re-recording differs from the file's bytes"
            )
        self.add_report_section("call", "evreplay", _play_summary(result))

    def repr_failure(
        self,
        excinfo: pytest.ExceptionInfo[BaseException],
        style: Any = None,
    ) -> str | Any:
        from replay.errors import ReplayDivergence, ReplayError, TraceFormatError

        exc = excinfo.value
        if isinstance(exc, ReplayDivergence):
            return f"{self.path}: {exc}"
        if isinstance(exc, TraceFormatError):
            return f"not a valid trace: {exc}"
        if isinstance(exc, ReplayError | TraceMismatch):
            return str(exc)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"replay {self.path.name}"


class FailureRecurs(Exception):
    """A rerun of a saved failure's trace failed again."""


class RerunItem(pytest.Item):
    """Reruns one trace's schedule under the current code (``replay rerun``).

    Passes when the run does not fail: the saved failure is fixed and stays
    fixed. Fails with the failure, and how far the trace's schedule applied,
    when it recurs; a bad trace fails with the replay layer's message.
    """

    def runtest(self) -> None:
        from replay.tools.rerun import rerun

        result = rerun(self.path)
        if not result.fixed:
            raise FailureRecurs(
                f"{self.path}: the failure recurs: {result.failure}; {result.schedule_text()}"
            )
        self.add_report_section("call", "evreplay", result.schedule_text())

    def repr_failure(
        self,
        excinfo: pytest.ExceptionInfo[BaseException],
        style: Any = None,
    ) -> str | Any:
        from replay.errors import ReplayError

        exc = excinfo.value
        if isinstance(exc, ReplayError | FailureRecurs):
            return str(exc)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"rerun {self.path.name}"


def _play_summary(result: PlayResult) -> str:
    ending = (
        f"reproduced the recorded failure: {result.failure}"
        if result.failure is not None
        else f"ended: {result.reason}"
    )
    return (
        f"bit-exact replay: {plural(result.steps, 'step')}, t={result.time_ns} ns, "
        f"digest {result.digest:#018x}; {ending}"
    )
