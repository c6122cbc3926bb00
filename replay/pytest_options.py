"""The pytest plugin's options and ini keys, and the settings a session reads from them.

pytest loads ``replay/pytest_plugin.py``; the three hooks here are found on it
(it imports them) and run once per session, before any test.
:func:`pytest_addoption` declares every ``--evreplay-*`` option and
``evreplay_*`` ini key; :func:`pytest_configure` declares the markers, checks
the options and keeps what they say as one ``_Settings`` in the config's
stash (``_SETTINGS``), where the ``sim`` fixture, the failure report and the
collection of traces read it; :func:`pytest_unconfigure` undoes what
configure set outside the config.

Rules this module keeps:

* **Checked once, at configure.** A bad value (``evreplay_sanitize = maybe``,
  a report step count out of range, a trace directory that does not exist)
  is a ``pytest.UsageError`` naming the option and the value, before any
  test runs, never a failure of each test that reads it.
* **Paths resolve where they were given.** A directory on the command line
  is relative to the directory pytest was started in; one in an ini key, to
  the rootdir.
* **Trace directories are collected as paths.** Each is added once to the
  session's arguments (an xdist worker re-parses the options and configures
  again), so its ``*.evr`` files reach ``pytest_collect_file``.
* **Import-light**, as the plugin is: pytest alone at module level;
  ``replay/saving.py`` is imported when a save directory is configured.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["pytest_addoption", "pytest_configure", "pytest_unconfigure"]

#: How many recent steps the simulation keeps (as :func:`replay.record` does).
RECENT_STEPS = 32
#: How many of them a failure report shows, unless ``evreplay_report_steps`` says otherwise.
DEFAULT_REPORT_STEPS = 20

MARKER = (
    "deterministic(runs=5, processes=False): run the test `runs` times, each with a fresh "
    "`sim` fixture (with processes=True: each in a fresh process under PYTHONHASHSEED=0, 1, "
    "...), and fail at the first step where the runs differ"
)
ASYNCIO_MARKER = (
    "evreplay_asyncio: run an `async def` test on evreplay's simulated event loop "
    "(virtual clock and network, its `sim` fixture's simulation)"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("evreplay", "evreplay: deterministic simulation and replay")
    group.addoption(
        "--evreplay-traces",
        action="append",
        default=[],
        metavar="DIR",
        help="collect every *.evr trace under DIR as a test that replays it bit-exactly "
        "(repeatable)",
    )
    group.addoption(
        "--evreplay-rerun",
        action="append",
        default=[],
        metavar="DIR",
        help="collect every *.evr trace under DIR as a test that reruns the current code "
        "under its schedule and fails if its failure comes back (repeatable)",
    )
    group.addoption(
        "--evreplay-save-traces",
        default=None,
        metavar="DIR",
        help="record the run of every test using the `sim` fixture and save the trace of "
        "each failing one under DIR (ini: evreplay_save_traces)",
    )
    parser.addini(
        "evreplay_save_traces",
        "directory to save the traces of failing `sim` tests in (relative to the rootdir)",
        default="",
    )
    group.addoption(
        "--evreplay-no-sanitize",
        action="store_true",
        default=False,
        help="leave time.*, random.*, os.urandom and uuid alone in `sim` runs (by default "
        "the simulation answers them; ini: evreplay_sanitize = false)",
    )
    parser.addini(
        "evreplay_sanitize",
        "true (the default): `sim` runs answer time.*, random.*, os.urandom and uuid calls "
        "from the simulation; strict: refuse them; false: leave them alone",
        default="true",
    )
    parser.addini(
        "evreplay_report_steps",
        f"how many recent steps a failing `sim` test's report shows (default "
        f"{DEFAULT_REPORT_STEPS}, at most {RECENT_STEPS})",
        default=str(DEFAULT_REPORT_STEPS),
    )


@dataclass
class _Settings:
    save_dir: Path | None
    report_steps: int
    trace_dirs: list[Path]
    rerun_dirs: list[Path]
    #: What ``sim`` runs pass as ``Simulation(sanitize=...)``.
    sanitize: bool | str = True


_SETTINGS = pytest.StashKey[_Settings]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)
    config.addinivalue_line("markers", ASYNCIO_MARKER)
    settings = _Settings(
        _save_dir(config),
        _report_steps(config),
        _trace_dirs(config, "evreplay_traces"),
        _trace_dirs(config, "evreplay_rerun"),
        _sanitize(config),
    )
    config.stash[_SETTINGS] = settings
    if settings.save_dir is not None:  # where the hypothesis integration saves too
        from replay.saving import set_session_dir

        set_session_dir(settings.save_dir)
    # Trace directories are collected like any path given on the command line.
    # (An xdist worker re-parses the options and arrives here too: add each once.)
    present = {(config.invocation_params.dir / arg).resolve() for arg in config.args}
    for d in dict.fromkeys([*settings.trace_dirs, *settings.rerun_dirs]):
        if d not in present:
            config.args.append(str(d))


def pytest_unconfigure(config: pytest.Config) -> None:
    settings = config.stash.get(_SETTINGS, None)
    if settings is not None and settings.save_dir is not None:
        from replay.saving import set_session_dir

        set_session_dir(None)


def _save_dir(config: pytest.Config) -> Path | None:
    option = config.getoption("evreplay_save_traces")
    if option:
        return (config.invocation_params.dir / str(option)).resolve()
    ini = str(config.getini("evreplay_save_traces"))
    return (config.rootpath / ini).resolve() if ini else None


def _sanitize(config: pytest.Config) -> bool | str:
    if config.getoption("evreplay_no_sanitize"):
        return False
    value = str(config.getini("evreplay_sanitize")).strip().lower()
    modes: dict[str, bool | str] = {"true": True, "strict": "strict", "false": False}
    if value not in modes:
        raise pytest.UsageError(
            f"evreplay_sanitize must be true, strict or false, not {value!r}"
        )
    return modes[value]


def _report_steps(config: pytest.Config) -> int:
    value = str(config.getini("evreplay_report_steps"))
    try:
        steps = int(value)
    except ValueError:
        steps = -1
    if not 0 <= steps <= RECENT_STEPS:
        raise pytest.UsageError(
            f"evreplay_report_steps must be an integer from 0 to {RECENT_STEPS}, not {value!r}"
        )
    return steps


def _trace_dirs(config: pytest.Config, name: str) -> list[Path]:
    dirs = []
    for option in config.getoption(name):
        path = (config.invocation_params.dir / option).resolve()
        if not path.is_dir():
            flag = "--" + name.replace("_", "-")
            raise pytest.UsageError(f"{flag}={option}: no such directory")
        dirs.append(path)
    return dirs
