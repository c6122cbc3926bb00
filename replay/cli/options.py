"""What the command line accepts: exit codes, option types, the options record and play share."""

from __future__ import annotations

import argparse
import ast
import inspect
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, NoReturn

from evloop.machine.watchdog import DEFAULT_TIMEOUT_S as DEFAULT_WATCHDOG_S

from ..declared import BUNDLED_SCENARIOS as DECLARED_BUNDLED
from ..scenario import (
    Scenario,
    ScenarioError,
    chooser_from_spec,
    load_scenario,
    takes_simulation,
)

__all__ = [
    "BUNDLED_SCENARIOS", "EXIT_DIVERGED", "EXIT_FOUND", "EXIT_INTERRUPTED", "EXIT_OK",
    "EXIT_USAGE", "UsageError",
]

EXIT_OK: Final = 0
EXIT_FOUND: Final = 1
EXIT_USAGE: Final = 2
#: The run departed from its trace, or the trace was cut and only its whole
#: chunks were replayed (play and the tools that replay).
EXIT_DIVERGED: Final = 3
#: Stopped by a real Ctrl-C (SIGINT): 128 + the signal's number, as a shell reports it.
EXIT_INTERRUPTED: Final = 130

#: The scenarios ``replay scenarios`` lists: ``module:function`` names.
BUNDLED_SCENARIOS: Final = tuple(
    s for s in DECLARED_BUNDLED if not s.startswith("replay.pytest_plugin:")
)
#: Where ``record`` writes when given no ``-o`` (relative to the working directory).
DEFAULT_TRACE_DIR: Final = "traces"

_INT64_MIN: Final = -(1 << 63)
_UINT64_MAX: Final = (1 << 64) - 1


class UsageError(Exception):
    """A mistake in the command line or its inputs: one line, exit 2."""


def fail(message: str) -> NoReturn:
    raise UsageError(message)


class Parser(argparse.ArgumentParser):
    """argparse, but errors become :class:`UsageError` (one line, no usage dump)."""

    def error(self, message: str) -> NoReturn:
        fail(f"{message} (see '{self.prog} --help')")


# -- option types ------------------------------------------------------------------------


def int_in(lo: int | None, hi: int | None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text, 0)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, not {text!r}") from None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            bounds = f"in [{lo}, {hi}]" if hi is not None else f">= {lo}"
            raise argparse.ArgumentTypeError(f"expected an integer {bounds}, not {value}")
        return value

    return parse


_UNITS: Final = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
_DURATION: Final = re.compile(r"\s*(\d+)\s*(ns|us|µs|ms|s)?\s*")


def parse_duration_ns(text: str) -> int:
    """``T`` for ``--until-ns``: nanoseconds, or with a unit (``50ms``, ``2s``, ``10us``)."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise argparse.ArgumentTypeError(
            f"expected nanoseconds or a duration such as 50ms, not {text!r}"
        )
    return int(match[1]) * _UNITS[match[2] or "ns"]


def parse_param(text: str) -> tuple[str, Any]:
    """``KEY=VALUE``; VALUE is a Python literal (``3``, ``True``, ``b'hi'``, ``[1, 2]``) or text."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(
            f"expected KEY=VALUE with KEY a parameter name, not {text!r}"
        )
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        value = raw  # plain text: --param label=hello
    return key, value


def existing_file(text: str) -> Path:
    path = Path(text)
    if not path.exists():
        fail(f"{text}: no such file")
    if path.is_dir():
        fail(f"{text}: is a directory, not a trace file")
    return path


def writable_output(text: str | None, default: Path, flag: str = "-o") -> Path:
    """Where a command will write, checked before it does any long work.

    ``text`` is the user's path (None: ``default``, whose directory is
    created). A user's path must name a file in an existing directory that
    we can create files in; the check creates and removes a probe file there,
    so a permission, a read-only file system or a missing directory is said
    now, in one line naming the path, not after minutes of fuzzing.
    """
    out = Path(text) if text else default
    if out.is_dir():
        fail(f"{flag} {out}: is a directory")
    parent = out.parent
    if not text:
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            fail(f"cannot create the directory {str(parent)!r} for {out}: {exc.strerror}")
    elif not parent.is_dir():
        what = "no such directory" if not parent.exists() else "not a directory"
        fail(f"{flag} {out}: {what}: {str(parent)!r}")
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        fail(f"{flag} {out}: cannot write in {str(parent)!r}: {exc.strerror}")
    return out



# -- which scenarios a trace may name (every command that reads or writes traces) ------


def add_trust_options(p: argparse.ArgumentParser, *, scenario: bool = True) -> None:
    """``--scenario SPEC`` (repeatable) and ``--trust``: see ``replay/declared.py``.

    ``scenario=False`` for a command whose own ``--scenario`` names the
    scenario to run (``rerun``): the user names it, so it is declared.
    """
    p.add_argument("--trust", action="store_true",
                   help="allow a trace to name any scenario (only for traces whose origin "
                        "you trust: playing imports and runs what the trace names)")
    if not scenario:
        return
    p.add_argument("--scenario", dest="declare", action="append", default=[], metavar="SPEC",
                   help="allow traces to name this scenario: module:function, "
                        "path/to/file.py:function, or a module whose @replay.declare_scenario "
                        "functions count (repeatable)")


# -- shared run options (record, check-determinism) ------------------------------------


def add_run_options(p: argparse.ArgumentParser) -> None:
    """The options that shape a recorded run. New run options (faults...) go here."""
    p.add_argument("--seed", type=int_in(_INT64_MIN, _UINT64_MAX), default=0,
                   help="the simulation's seed (default 0)")
    p.add_argument("--chooser", default="fifo", metavar="SPEC",
                   help="who makes scheduling decisions: fifo (QEMU's order, the default), "
                        "random:SEED, or any other spec replay.chooser_from_spec accepts")
    p.add_argument("--chooser-seed", type=int_in(0, None), metavar="S",
                   help="the seed of a chooser given without one (--chooser random)")
    p.add_argument("--param", type=parse_param, action="append", default=[],
                   metavar="KEY=VALUE",
                   help="a scenario parameter (repeatable); VALUE is a Python literal "
                        "(3, True, b'hi', [1, 2]) or else plain text")
    p.add_argument("--until-ns", type=parse_duration_ns, metavar="T",
                   help="stop at virtual time T (ns, or with a unit: 50ms, 2s)")
    p.add_argument("--max-steps", type=int_in(0, None), metavar="N",
                   help="stop after N steps")
    add_watchdog_option(p)
    add_sanitize_option(p)
    p.add_argument("--preemption", choices=("off", "fine"), default="off",
                   help="fine: every loop primitive that touches shared state is a preemption "
                        "point, a recorded decision (Simulation(preemption='fine')); the trace "
                        "says so, and its play runs the same way (default off)")
    p.add_argument("--async-events", choices=("off", "queue"), default="off",
                   help="queue: bottom halves scheduled from another thread wait in a queue "
                        "released, and logged, at each main-loop iteration boundary, as QEMU's "
                        "replay-events.c does; the trace says so (default off)")
    p.add_argument("--faults", action="append", default=[], metavar="KIND[,KIND...]",
                   help="faults the simulation may inject, each a recorded decision: delay, "
                        "reorder, loss, duplicate, partition, short-read, short-write, eagain, "
                        "eintr, host-jump, host-skew, preempt, reset (optionally KIND:fd=N)")


def add_sanitize_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-sanitize", dest="sanitize", action="store_false",
                   help="leave time.*, random.*, os.urandom and uuid alone (by default the "
                        "scenario's calls of them, and references bound by 'from time import "
                        "time', are answered by the simulation, so the trace replays)")


def add_watchdog_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--watchdog", type=parse_watchdog, default=DEFAULT_WATCHDOG_S, metavar="S",
                   help="stop a thread of control that holds the turn for S seconds of wall "
                        f"time without waiting (default {DEFAULT_WATCHDOG_S:g}; 0: off, which "
                        "the trace records so that its play is unwatched too)")


def parse_watchdog(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected seconds >= 0 (0: off), not {text!r}")
    return None if value == 0 else value


def faults_of(args: argparse.Namespace) -> list[str]:
    faults = [f.strip() for arg in args.faults for f in arg.split(",") if f.strip()]
    if faults:
        from evloop.machine.faults import parse_faults

        try:
            parse_faults(faults)
        except ValueError as exc:
            fail(f"--faults: {exc}")
    return faults


def chooser_spec(args: argparse.Namespace) -> str:
    spec: str = args.chooser
    if args.chooser_seed is not None:
        if ":" in spec:
            fail(f"--chooser {spec!r} has its seed already; drop --chooser-seed")
        spec = f"{spec}:{args.chooser_seed}"
    try:
        chooser_from_spec(spec)
    except ScenarioError as exc:
        fail(f"--chooser: {exc}")
    return spec


def load_scenario_arg(spec: str) -> Scenario:
    try:
        return load_scenario(spec)
    except ScenarioError as exc:
        fail(f"{exc} (see 'replay scenarios')")
    except Exception as exc:  # the scenario's module itself failed to import
        fail(f"scenario {spec!r}: importing it failed: {type(exc).__name__}: {exc}")


def _check_params(spec: str, fn: Scenario, params: dict[str, Any]) -> None:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    first = 1 if takes_simulation(fn) else 0  # the simulation, when the scenario takes it
    try:
        signature.bind(*[None] * first, **params)
    except TypeError as exc:
        names = list(signature.parameters)[first:]
        takes = ", ".join(names) if names else "no parameters"
        fail(f"--param: scenario {spec!r} does not accept these ({exc}); it takes: {takes}")


def run_params(args: argparse.Namespace, fn: Scenario) -> dict[str, Any]:
    params = dict(args.param)
    _check_params(args.scenario, fn, params)
    return params


def default_trace_path(scenario: str, seed: int, chooser: str) -> Path:
    """``traces/<module>-<function>-seed<N>[-<chooser>].evr``."""
    where, _, func = scenario.rpartition(":")
    module = Path(where).stem if where.endswith(".py") else where.rpartition(".")[2]
    name = f"{module}-{func}-seed{seed}"
    if chooser != "fifo":
        name += "-" + chooser
    # One name in traces/, never a path out of it (no separators, no leading dot).
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).lstrip(".") or "trace"
    return Path(DEFAULT_TRACE_DIR) / (name + ".evr")
