"""The evreplay pytest plugin: a ``sim`` fixture, a determinism marker, traces as tests.

pytest loads this module through the ``pytest11`` entry point
(``evreplay = "replay.pytest_plugin"``) in every session of every project that
installs evreplay. What it provides:

* the ``sim`` fixture: a fresh :class:`~evloop.Simulation`, closed after the test,
  whose threads of control have ``time.*``, ``random.*``, ``os.urandom`` and
  ``uuid`` answered by the simulation (``--evreplay-no-sanitize`` or the ini
  key ``evreplay_sanitize`` turns that off);
* ``@pytest.mark.deterministic(runs=N)``: run the test N times, each with a fresh
  ``sim``, and fail at the first step where a run's trace differs from the first's;
  with ``processes=True`` each run is a fresh process under its own
  ``PYTHONHASHSEED``, so hash-order bugs show (``replay/pytest_fresh.py``);
* ``@pytest.mark.evreplay_asyncio``: an ``async def`` test runs on a
  :class:`~evloop.asyncio.SimEventLoop` bound to its ``sim`` (the fixture is
  added when the test does not ask for it), as a coroutine scenario runs; it
  is reported and saved as a ``sim`` test is. pytest-asyncio's own
  ``@pytest.mark.asyncio`` tests are left to pytest-asyncio;
* ``--evreplay-traces=DIR``: every ``*.evr`` file under DIR is a test item that
  replays the trace and passes when the replay is bit-exact (a recorded failure
  that replays to the same failure passes: the trace reproduces);
* an "evreplay" section in the report of every failing test that used ``sim``:
  virtual time, steps, the last steps, and the trace saved with
  ``--evreplay-save-traces=DIR`` with the command that replays it.

Rules this module keeps:

* **Import-light.** Nothing from ``evloop`` or ``replay`` is imported at module
  level but ``replay/pytest_options.py`` (the options, ini keys and markers,
  and the settings read from them) and ``replay/pytest_traces.py``, which
  keep the same rule: hooks and fixtures import what they use when they run,
  so a session that never uses the plugin pays only for these three files.
  (Python does run ``replay/__init__.py`` first, since this module lives in
  that package.)
* **Prefixed names.** Every option starts with ``--evreplay-``, every ini key
  with ``evreplay_``, so the plugin cannot clash with another.
* **A saved trace needs no pytest to replay.** Its header names the scenario
  :func:`replay_test`, which loads the test's file and calls the test function
  with the simulation; ``python -m replay play PATH`` (from the rootdir) runs it.
  Only a module-level test function whose one argument is ``sim`` can be called
  so; for any other test no trace is saved, and the report says why. The
  recorded run is built exactly as :func:`replay.record` builds one (seed 0,
  FIFO chooser, the same checkpoint interval and ring of recent steps).
* **A failure is recorded by type and place, not message.** pytest rewrites
  ``assert`` statements in test modules and a replay imports the module
  without rewriting, so an ``AssertionError``'s message differs between the
  two; its type and the file and line it was raised at do not.
* **Names never collide.** A saved trace is named from the xdist worker id
  (``PYTEST_XDIST_WORKER``), the sanitised node id and the run's digest, and is
  created exclusively (a suffix is added rather than overwrite a file); the
  hypothesis integration saves into the same directory by the same rule
  (``replay/saving.py``).
"""

from __future__ import annotations

import io
import os
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest

# pytest finds the hooks on this module: those that declare and read the
# options live in pytest_options.py.
from .pytest_options import _SETTINGS, RECENT_STEPS
from .pytest_options import pytest_addoption as pytest_addoption
from .pytest_options import pytest_configure as pytest_configure
from .pytest_options import pytest_unconfigure as pytest_unconfigure
from .pytest_traces import (
    FailureRecurs,
    RecordedTestFailure,
    RerunItem,
    TraceFile,
    TraceItem,
    TraceMismatch,
    plural,
    recorded_failure,
    replay_test,
)

if TYPE_CHECKING:
    from evloop import DispatchEvent, Simulation
    from replay.session import Recorder

__all__ = [
    "FailureRecurs",
    "RecordedTestFailure",
    "RerunItem",
    "TraceItem",
    "TraceMismatch",
    "replay_test",
    "sim",
]

#: The scenario a trace saved from a test names in its header.
REPLAY_TEST_SCENARIO = "replay.pytest_plugin:replay_test"
#: The checkpoint interval of a recorded ``sim`` (the default of :func:`replay.record`).
CHECKPOINT_INTERVAL = 1024
#: How many times ``@pytest.mark.deterministic`` runs a test when not told.
DEFAULT_RUNS = 5


# -- the sim fixture ------------------------------------------------------------------


@dataclass
class _Run:
    """One simulation a test ran with, and its recording (when traces are saved)."""

    sim: Simulation
    recorder: Recorder | None = None
    buffer: io.BytesIO | None = None


@dataclass
class _ItemState:
    """What the plugin knows about one test that uses ``sim``."""

    runs: list[_Run] = field(default_factory=list)
    #: The run the test is on (the one a failure report describes).
    current: _Run | None = None
    #: "run k of N" while ``@deterministic`` repeats the test.
    run_label: str = ""
    #: ``@deterministic`` repeats the test; the fixture's own run is not the only one.
    repeating: bool = False
    #: The runs differed: the failure is the plugin's, there is no failing run to save.
    diverged: bool = False

    def close(self) -> None:
        for run in self.runs:
            run.sim.close()


_STATE = pytest.StashKey[_ItemState]()


@pytest.fixture
def sim(request: pytest.FixtureRequest) -> Iterator[Simulation]:
    """A fresh sanitized :class:`~evloop.Simulation` (seed 0, FIFO), closed after the test."""
    item = request.node
    state = _ItemState()
    item.stash[_STATE] = state
    try:
        yield _new_run(item, state).sim
    finally:
        state.close()


def _new_run(item: pytest.Item, state: _ItemState) -> _Run:
    """A fresh simulation for ``item``, recorded when traces are saved and the test replayable."""
    from evloop import Simulation

    log = item.get_closest_marker("deterministic") is not None
    settings = item.config.stash[_SETTINGS]
    if settings.save_dir is not None and _unreplayable(item) is None:
        run = _recorded_run(item, log, settings.sanitize)
    else:
        run = _Run(Simulation(0, log=log, recent=RECENT_STEPS, sanitize=settings.sanitize))
    state.runs.append(run)
    state.current = run
    return run


def _recorded_run(item: pytest.Item, log: bool, sanitize: bool | str) -> _Run:
    """A simulation under a recorder, set up by the driver :func:`replay.record` uses."""
    from evloop import FifoChooser
    from replay.api import simulation
    from replay.driver import begin_recording, new_header
    from replay.scenario import file_hash
    from replay.session import Recorder

    header = new_header(
        REPLAY_TEST_SCENARIO,
        params={"path": _test_file(item), "function": item.name},
        checkpoint_interval=CHECKPOINT_INTERVAL,
        sanitize=sanitize,
        source=file_hash(item.path),
    )
    buffer = io.BytesIO()
    chooser = FifoChooser()
    recording = begin_recording(
        buffer, header, lambda writer: (Recorder(writer), simulation(header, chooser, log), None)
    )
    return _Run(recording.sim, recording.recorder, buffer)


def _test_file(item: pytest.Item) -> str:
    """The test's file, relative to the rootdir when it is under it (traces travel)."""
    try:
        return item.path.relative_to(item.config.rootpath).as_posix()
    except ValueError:
        return str(item.path)


def _unreplayable(item: pytest.Item) -> str | None:
    """Why :func:`replay_test` cannot call this test, or None when it can."""
    if not isinstance(item, pytest.Function):
        return "it is not a Python test function"
    if item.cls is not None:
        return "it is a method of a test class (only module-level functions can be replayed)"
    if item.originalname != item.name:
        return "it is parametrized (only a test whose one argument is `sim` can be replayed)"
    import inspect

    params = list(inspect.signature(item.obj).parameters)
    if params == [] and _is_async_test(item) and inspect.iscoroutinefunction(item.obj):
        return None  # async def test(): replay_test calls it with no argument
    if params != ["sim"]:
        return f"it takes {params!r} (only a test whose one argument is `sim` can be replayed)"
    return None


# -- @pytest.mark.deterministic ---------------------------------------------------------


def _processes(marker: pytest.Mark) -> bool:
    """The marker's ``processes``: each run in a fresh process (``replay/pytest_fresh.py``)."""
    processes = marker.kwargs.get("processes", False)
    if not isinstance(processes, bool):
        pytest.fail(
            f"@pytest.mark.deterministic(processes={processes!r}): processes is True or False",
            pytrace=False,
        )
    return processes


def _runs(marker: pytest.Mark) -> int:
    """The marker's ``runs``; a misused marker fails the test with what to fix."""
    kwargs = set(marker.kwargs) - {"processes"}
    if len(marker.args) > 1 or kwargs - {"runs"} or (marker.args and kwargs):
        pytest.fail(
            f"@pytest.mark.deterministic takes runs and processes (got args={marker.args!r}, "
            f"kwargs={dict(marker.kwargs)!r})",
            pytrace=False,
        )
    runs = marker.args[0] if marker.args else marker.kwargs.get("runs", DEFAULT_RUNS)
    if not isinstance(runs, int) or isinstance(runs, bool) or runs < 2:
        pytest.fail(
            f"@pytest.mark.deterministic(runs={runs!r}): runs must be an int of at least 2 "
            "(one run has nothing to be compared with)",
            pytrace=False,
        )
    return runs


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> object | None:
    """Run a ``@deterministic`` test ``runs`` times and compare the runs' traces;
    run an ``@evreplay_asyncio`` test on the simulated loop.

    Each run goes through the whole ``pytest_pyfunc_call`` hook again (this
    implementation stands aside while it repeats, but for running an async
    test), so other plugins' ways of calling a test still apply. Every other
    fixture keeps its one value.
    """
    marker = pyfuncitem.get_closest_marker("deterministic")
    if marker is None:
        return _call_async(pyfuncitem)
    state = pyfuncitem.stash.get(_STATE, None)
    if state is None or "sim" not in pyfuncitem.funcargs:
        pytest.fail(
            "@pytest.mark.deterministic repeats the test's simulation: "
            "the test must use the `sim` fixture",
            pytrace=False,
        )
    if state.repeating:
        return _call_async(pyfuncitem)
    runs = _runs(marker)
    if _processes(marker):
        _in_fresh_processes(pyfuncitem, state, runs)
        return True
    state.repeating = True
    try:
        _repeat(pyfuncitem, state, runs)
    finally:
        state.repeating = False
    return True


def _in_fresh_processes(item: pytest.Function, state: _ItemState, runs: int) -> None:
    """``processes=True``: the parent runs the test in children; a child runs it once."""
    from replay.pytest_fresh import CHILD_ENV, run_in_processes, write_child_result

    out = os.environ.get(CHILD_ENV)
    if out is None:
        state.current = None  # the runs are the children's: no simulation here to report
        run_in_processes(item, runs)
        return
    assert state.current is not None
    state.repeating = True
    try:
        item.ihook.pytest_pyfunc_call(pyfuncitem=item)
    except BaseException as exc:
        write_child_result(out, state.current.sim, exc)
        raise
    finally:
        state.repeating = False
    write_child_result(out, state.current.sim, None)


# -- @pytest.mark.evreplay_asyncio --------------------------------------------------------


def _is_async_test(item: pytest.Item) -> bool:
    return item.get_closest_marker("evreplay_asyncio") is not None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """An ``@evreplay_asyncio`` test gets the ``sim`` fixture, asked for or not."""
    if not isinstance(item, pytest.Function) or not _is_async_test(item):
        return
    if "sim" not in item.fixturenames:
        item.fixturenames.append("sim")


def _call_async(item: pytest.Function) -> object | None:
    """Run an ``@evreplay_asyncio`` test's coroutine on its ``sim``; None for other tests."""
    if not _is_async_test(item):
        return None
    import inspect

    from replay.scenario import start_scenario

    if not inspect.iscoroutinefunction(item.obj):
        pytest.fail(
            f"@pytest.mark.evreplay_asyncio runs an `async def` test on the simulated loop: "
            f"{item.name} is not a coroutine function",
            pytrace=False,
        )
    simulation = cast("Simulation", item.funcargs["sim"])
    kwargs = {name: item.funcargs[name] for name in inspect.signature(item.obj).parameters}
    start_scenario(lambda _sim: item.obj(**kwargs), simulation, {})
    simulation.run()
    return True


def _repeat(item: pytest.Function, state: _ItemState, runs: int) -> None:
    """Run the test ``runs`` times in this process, each with a fresh ``sim``; fail at the
    first step where a run parts from the first."""
    from replay.pytest_fresh import run_difference

    assert state.current is not None
    first = state.current
    for k in range(1, runs + 1):
        run = first if k == 1 else _new_run(item, state)
        item.funcargs["sim"] = run.sim
        state.run_label = f"run {k} of {runs} of @pytest.mark.deterministic"
        try:
            item.ihook.pytest_pyfunc_call(pyfuncitem=item)
        except Exception as exc:
            exc.add_note(f"(in {state.run_label})")
            raise
        if k > 1:
            difference = run_difference(
                [repr(e) for e in first.sim.log or []], [repr(e) for e in run.sim.log or []],
                ((first.sim.digest, first.sim.now_ns), (run.sim.digest, run.sim.now_ns)), k,
            )
            if difference is not None:
                state.diverged = True
                pytest.fail(
                    f"@pytest.mark.deterministic(runs={runs}): run {k} differs from run 1 "
                    f"{difference}",
                    pytrace=False,
                )
    item.funcargs["sim"] = first.sim


# -- failure reports and saved traces ---------------------------------------------------


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    state = item.stash.get(_STATE, None)
    if (
        call.when == "call"
        and report.failed
        and call.excinfo is not None
        and state is not None
        and state.current is not None
    ):
        report.sections.append(("evreplay", _report_section(item, state, call.excinfo.value)))


def _report_section(item: pytest.Item, state: _ItemState, exc: BaseException) -> str:
    assert state.current is not None
    settings = item.config.stash[_SETTINGS]
    simulation = state.current.sim
    lines = [
        f"simulation{f' ({state.run_label})' if state.run_label else ''}: "
        f"t={simulation.now_ns} ns, {plural(simulation.steps, 'step')}, "
        f"digest {simulation.digest:#018x}"
    ]
    lines.extend(_recent_lines(simulation, settings.report_steps))
    lines.extend(_trace_lines(item, state, exc, settings.save_dir))
    return "\n".join(lines)


def _recent_lines(simulation: Simulation, count: int) -> list[str]:
    events = simulation.recent_events()[-count:] if count else []
    if not events:
        return ["no steps ran" if simulation.steps == 0 else "recent steps not shown"]
    lines = [f"last {plural(len(events), 'step')}, oldest first:"]
    lines.extend(_format_event(event) for event in events)
    return lines


def _format_event(event: DispatchEvent) -> str:
    return (
        f"  step {event.step:>6}  t={event.time_ns} ns  {event.thread}  {event.context}  "
        f"{event.kind}  {event.name}"
    )


def _trace_lines(
    item: pytest.Item, state: _ItemState, exc: BaseException, save_dir: Path | None
) -> list[str]:
    assert state.current is not None
    run = state.current
    if save_dir is None:
        return ["no trace saved (run with --evreplay-save-traces=DIR to keep one)"]
    if state.diverged:
        return ["no trace saved: the runs differ, so no single run reproduces this failure"]
    if run.recorder is None or run.buffer is None:
        return [f"no trace saved: {_unreplayable(item)}"]
    try:
        path = _save_trace(item, run, exc, save_dir)
    except Exception as error:  # never hide the test's own failure behind the plugin's
        return [f"no trace saved: {type(error).__name__}: {error}"]
    return [
        f"trace: {path}",
        f"replay it (from {item.config.rootpath}): python -m replay play {path}",
    ]


def _save_trace(item: pytest.Item, run: _Run, exc: BaseException, save_dir: Path) -> Path:
    """Finish the recording with the test's failure and write it under ``save_dir``."""
    from replay.saving import save_trace

    assert run.recorder is not None and run.buffer is not None
    run.recorder.finish(recorded_failure(exc))
    return save_trace(run.buffer.getvalue(), save_dir, item.nodeid, run.sim.digest)


def trace_stem(nodeid: str, digest: int, worker: str | None) -> str:
    """The file name (without ``.evr``) of a saved trace: :func:`replay.saving.trace_stem`."""
    from replay.saving import trace_stem as stem

    return stem(nodeid, digest, worker)


# -- traces as test items (replay/pytest_traces.py) -------------------------------------


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> TraceFile | None:
    if file_path.suffix != ".evr":
        return None
    settings = parent.config.stash[_SETTINGS]
    replays = any(_under(file_path, d) for d in settings.trace_dirs)
    reruns = any(_under(file_path, d) for d in settings.rerun_dirs)
    if not (replays or reruns):
        return None
    return TraceFile.from_parent(parent, path=file_path, replays=replays, reruns=reruns)


def _under(path: Path, directory: Path) -> bool:
    return directory == path.parent or directory in path.parents
