"""The nondeterminism sanitizer: real time and randomness, routed or refused inside a run.

A simulation is deterministic only if everything it does comes through its
seams: the virtual clock, ``sim.random``, the turn lock. A scenario that calls
``time.time()`` or ``random.random()`` instead reads the host, and two runs (or
a record and its play) part ways. The sanitizer closes those doors while a
simulation runs (``Simulation(sanitize=True)`` or ``"strict"``, or
``with Sanitizer(sim, strict=...)``). Rules kept here:

* **What is patched.** Module attributes: ``time.time``, ``time.time_ns``,
  ``time.monotonic``, ``time.monotonic_ns``, ``time.perf_counter``,
  ``time.perf_counter_ns``, ``time.sleep``; every function of the ``random``
  module bound to its hidden global instance (see :data:`RANDOM_FUNCTIONS`);
  ``os.urandom``; ``uuid.uuid1`` and ``uuid.uuid4``; and
  ``threading.Thread.start``. :data:`PATCHED_CALLS` lists them all.
* **Whom it affects.** Only calls made on the OS thread of a live thread of
  control of a sanitized simulation (``threading.get_ident()`` against each
  ``ThreadOfControl._ident``). Any other thread of the process calls the
  original function, untouched: patching is process-wide, its effect is not.
* **Routed** (``strict=False``): the call is answered from the simulation.
  ``time.time()`` reads HOST (through ``VirtualClock.get_ns``, so the replay
  layer's clock door sees it), ``monotonic``/``perf_counter`` read REALTIME,
  the ``*_ns`` forms in integer ns; ``time.sleep(s)`` blocks in virtual time
  (``sim.sleep``, ``s`` rounded to the nearest ns; ``sleep(0)`` is a
  preemption point); ``random.f(...)`` is ``sim.random.f(...)``;
  ``os.urandom(n)`` is ``sim.random.randbytes(n)``; ``uuid.uuid4()`` is built
  from 16 bytes of ``sim.random``, ``uuid.uuid1()`` from HOST and
  ``sim.random`` (clock sequence, then a random multicast node, as RFC 4122
  section 4.5 allows). So every value goes through a door the replay layer
  records and plays.
* **Strict** (``strict=True``): every one of those calls raises
  :class:`~evloop.errors.NondeterminismError` naming the call, its call site
  (``file:line``) and what to use instead.
* **Unregistered threads are refused in both modes.** A thread the simulation
  did not start runs outside the turn lock: it interleaves with the threads of
  control however the host's scheduler likes, so nothing it does can be made
  deterministic or replayed, and no routing can fix that. ``Thread.start``
  lets through only the threads ``Scheduler.spawn`` starts for threads of
  control (recognised by their target, ``Scheduler._thread_main``).
* **Exempt callers.** A call whose immediate caller is in the ``logging``
  package (log records carry real timestamps; routing them would put every
  log call in the trace, and strict mode would refuse logging), in the
  ``replay`` package (host mode's ``HostClock`` is the one place the project
  reads the real clock, on purpose), or in the test and progress tools that
  run beside a simulation (hypothesis, pytest, tqdm: see
  ``_EXEMPT_PACKAGES``) goes to the original. ``evloop`` itself
  reads no clock, so it is not exempt: a patched function that evloop calls
  directly as a callback (``functools.partial(time.sleep, 1)`` as a thread's
  function) is still sanitized.
* **Installed once, undone on the last exit.** The wrappers are installed
  when the first sanitizer is entered and the saved originals put back when
  the last one exits, even when the run raises. Sanitizers of other
  simulations may be active at the same time (nested runs, runs in other OS
  threads): a call is answered by the innermost active sanitizer whose
  simulation owns the calling thread. Entering a sanitizer for a simulation
  that already has an active one is a no-op (the outer one, and its mode,
  stay in charge).

* **Bound references too.** A module that bound a patched function before the
  run (``from time import time``, ``from random import random``) is found by
  walking ``sys.modules`` and its binding replaced for the run, then put back
  (``bindings.py``, which says which modules are walked and why).

Limitations (say so rather than pretend): the standard library's own bindings
(``queue`` and ``threading`` timeouts, which bind ``time.monotonic`` at
import) keep the original, on purpose; ``datetime.now()``,
``random.Random()`` / ``random.SystemRandom`` / ``secrets`` (seeded or read
from the OS in C, not through ``os.urandom``), ``os.getrandom``,
``_thread.start_new_thread`` and C extensions are not intercepted. Everything
that runs on a thread of control during a run is sanitized, including a
signal handler that happens to run there.
"""

from __future__ import annotations

import functools
import math
import operator
import os
import random
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType, ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, SupportsIndex

from ..errors import NondeterminismError, SimulationError
from ..loop.clock import ClockType
from .bindings import BoundReferences
from .scheduler import Scheduler, ThreadState

if TYPE_CHECKING:
    from .simulation import Simulation

__all__ = ["PATCHED_CALLS", "RANDOM_FUNCTIONS", "Sanitizer"]

#: The ``random`` module's functions bound to its hidden global instance that
#: the sanitizer routes. ``seed``, ``getstate`` and ``setstate`` are left
#: alone: inside a simulation nothing draws from the hidden instance, so its
#: state leaks nothing (and ``random.seed()`` must not reseed ``sim.random``).
RANDOM_FUNCTIONS: tuple[str, ...] = tuple(
    name
    for name in (
        "betavariate", "binomialvariate", "choice", "choices", "expovariate",
        "gammavariate", "gauss", "getrandbits", "lognormvariate", "normalvariate",
        "paretovariate", "randbytes", "randint", "random", "randrange", "sample",
        "shuffle", "triangular", "uniform", "vonmisesvariate", "weibullvariate",
    )
    if hasattr(random, name)
)

#: Callers in these packages always get the original function (see the rules):
#: logging's timestamps, the replay layer's host clock, the test framework's
#: own bookkeeping (hypothesis times its draws, which a chooser makes mid-run)
#: and the command line's progress display (tqdm times its redraws mid-run).
_EXEMPT_PACKAGES = ("logging", "replay", "hypothesis", "_pytest", "pytest", "pluggy", "tqdm")

_get_ident = threading.get_ident
_NS_PER_S = 1_000_000_000
#: RFC 4122 time: 100 ns intervals since 1582-10-15, the Gregorian reform.
_UUID_EPOCH_OFFSET = 0x01B21DD213814000

# The wrappers' shared state. ``_active`` is replaced whole (never mutated)
# under ``_lock``, so the wrappers read it without the lock.
_lock = threading.Lock()
_active: tuple[Sanitizer, ...] = ()
_saved: list[tuple[object, str, Any]] = []
#: ``(patch index, id(original))`` -> ``(original, wrapper)``: one wrapper per
#: original, so a module that bound a wrapper during a run keeps a working one.
_wrappers: dict[tuple[int, int], tuple[Any, Callable[..., Any]]] = {}
_bound = BoundReferences(_EXEMPT_PACKAGES)


class Sanitizer:
    """Routes (or, ``strict``, refuses) real nondeterminism from a simulation's threads.

    A context manager; :meth:`Simulation.run` enters one when the simulation
    was built with ``sanitize=True`` or ``"strict"``. It may be entered again
    (the inner entry is a no-op) and undoes everything on exit.
    """

    def __init__(self, sim: Simulation, *, strict: bool = False) -> None:
        self.sim = sim
        self.strict = bool(strict)
        self._sched: Scheduler = sim._sched
        # One flag per __enter__ not yet exited: did that entry register us?
        self._entries: list[bool] = []
        self._last_uuid1 = -1

    @property
    def active(self) -> bool:
        """This sanitizer is the one answering for its simulation right now."""
        return self in _active

    def __enter__(self) -> Sanitizer:
        global _active
        with _lock:
            register = all(other.sim is not self.sim for other in _active)
            if register:
                if not _active:
                    _install()
                _active = (*_active, self)
        self._entries.append(register)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        global _active
        if not self._entries:
            raise SimulationError("Sanitizer.__exit__ without a matching __enter__")
        if not self._entries.pop():
            return
        with _lock:
            _active = tuple(other for other in _active if other is not self)
            if not _active:
                _restore()

    def __repr__(self) -> str:
        mode = "strict" if self.strict else "routed"
        state = "active" if self.active else "inactive"
        return f"<Sanitizer {mode} {state} for {self.sim!r}>"

    def _owns(self, ident: int) -> bool:
        """The OS thread ``ident`` is a live thread of control of this simulation."""
        sched = self._sched
        if sched.current._ident == ident:
            return True
        # A finished thread's ident may be reused by an unrelated OS thread.
        return any(t._ident == ident and t.state is not ThreadState.DONE for t in sched.threads)

    # -- the routed answers (called only from the wrappers, on a thread of control) --------

    def _time(self) -> float:
        return self.sim.clock.get_ns(ClockType.HOST) / _NS_PER_S

    def _time_ns(self) -> int:
        return self.sim.clock.get_ns(ClockType.HOST)

    def _monotonic(self) -> float:
        return self.sim.clock.get_ns(ClockType.REALTIME) / _NS_PER_S

    def _monotonic_ns(self) -> int:
        return self.sim.clock.get_ns(ClockType.REALTIME)

    def _sleep(self, secs: float) -> None:
        if isinstance(secs, int):
            ns = secs * _NS_PER_S
        else:
            seconds = float(secs)
            if math.isnan(seconds):
                raise ValueError("Invalid value NaN (not a number)")
            ns = round(seconds * _NS_PER_S)  # the nearest ns: int() would make 1.001 s short
        if ns < 0:
            raise ValueError("sleep length must be non-negative")
        self.sim.sleep(ns)

    def _urandom(self, size: SupportsIndex) -> bytes:
        n = operator.index(size)
        if n < 0:
            raise ValueError("negative argument not allowed")
        return self.sim.random.randbytes(n)

    def _uuid4(self) -> uuid.UUID:
        return uuid.UUID(bytes=self.sim.random.randbytes(16), version=4)

    def _uuid1(self, node: int | None = None, clock_seq: int | None = None) -> uuid.UUID:
        # uuid.uuid1's algorithm, on HOST time; timestamps strictly increase
        # within this sanitizer, as CPython keeps them increasing per process.
        timestamp = self.sim.clock.get_ns(ClockType.HOST) // 100 + _UUID_EPOCH_OFFSET
        if timestamp <= self._last_uuid1:
            timestamp = self._last_uuid1 + 1
        self._last_uuid1 = timestamp
        if clock_seq is None:
            clock_seq = self.sim.random.getrandbits(14)
        if node is None:
            node = self.sim.random.getrandbits(48) | (1 << 40)  # multicast bit: not a MAC
        fields = (
            timestamp & 0xFFFFFFFF,
            (timestamp >> 32) & 0xFFFF,
            (timestamp >> 48) & 0x0FFF,
            (clock_seq >> 8) & 0x3F,
            clock_seq & 0xFF,
            node,
        )
        return uuid.UUID(fields=fields, version=1)


# -- the patch table ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Patch:
    """One replaced attribute, and what a call of it does inside a simulation."""

    owner: object  #: the module or class whose attribute is replaced
    attr: str
    call: str  #: the name messages use: "time.time"
    advice: str  #: what to use instead (a strict error's last clause)
    #: The routed answer, called as ``route(sanitizer, *args, **kwargs)``;
    #: None: refused in both modes.
    route: Callable[..., Any] | None
    #: Calls this predicate accepts (given the call's arguments) go to the
    #: original in every mode.
    passes: Callable[..., bool] | None = None


def _random_route(name: str) -> Callable[..., Any]:
    def route(sanitizer: Sanitizer, *args: Any, **kwargs: Any) -> Any:
        return getattr(sanitizer.sim.random, name)(*args, **kwargs)

    return route


def _starts_thread_of_control(thread: threading.Thread, *args: Any, **kwargs: Any) -> bool:
    # Scheduler.spawn gives every thread of control this target (and the
    # watchdog's thread has its own), and nothing else does; threading keeps
    # the target as ``_target`` until the thread runs.
    target = getattr(thread, "_target", None)
    func = getattr(target, "__func__", None)
    if func is not None and func.__qualname__ == "Watchdog._watch":
        from .watchdog import Watchdog

        return func is Watchdog._watch  # it only watches, and decides nothing
    return func is Scheduler._thread_main


_HOST_ADVICE = "read the simulation's clock (sim.clock.get_ns(ClockType.HOST))"
_REALTIME_ADVICE = "read the simulation's clock (sim.now_ns, the REALTIME clock)"
_UUID_ADVICE = (
    "build it from the simulation's RNG (uuid.UUID(bytes=sim.random.randbytes(16), version=4))"
)

_PATCHES: tuple[_Patch, ...] = (
    _Patch(time, "time", "time.time", _HOST_ADVICE, Sanitizer._time),
    _Patch(time, "time_ns", "time.time_ns", _HOST_ADVICE, Sanitizer._time_ns),
    _Patch(time, "monotonic", "time.monotonic", _REALTIME_ADVICE, Sanitizer._monotonic),
    _Patch(time, "monotonic_ns", "time.monotonic_ns", _REALTIME_ADVICE, Sanitizer._monotonic_ns),
    _Patch(time, "perf_counter", "time.perf_counter", _REALTIME_ADVICE, Sanitizer._monotonic),
    _Patch(
        time, "perf_counter_ns", "time.perf_counter_ns", _REALTIME_ADVICE, Sanitizer._monotonic_ns
    ),
    _Patch(time, "sleep", "time.sleep", "block in virtual time (sim.sleep(ns))", Sanitizer._sleep),
    *(
        _Patch(
            random, name, f"random.{name}",
            f"draw from the simulation's RNG (sim.random.{name})", _random_route(name),
        )
        for name in RANDOM_FUNCTIONS
    ),
    _Patch(
        os, "urandom", "os.urandom",
        "draw from the simulation's RNG (sim.random.randbytes(n))", Sanitizer._urandom,
    ),
    _Patch(uuid, "uuid1", "uuid.uuid1", _UUID_ADVICE, Sanitizer._uuid1),
    _Patch(uuid, "uuid4", "uuid.uuid4", _UUID_ADVICE, Sanitizer._uuid4),
    _Patch(
        threading.Thread, "start", "threading.Thread.start",
        "a thread the simulation does not know runs outside its turn lock and cannot be made "
        "deterministic; start a thread of control with sim.thread(name, fn)",
        None, _starts_thread_of_control,
    ),
)

#: Every call the sanitizer intercepts, by the name its messages use.
PATCHED_CALLS: tuple[str, ...] = tuple(patch.call for patch in _PATCHES)


def _owner(ident: int) -> Sanitizer | None:
    """The innermost active sanitizer whose simulation runs on the OS thread ``ident``."""
    for sanitizer in reversed(_active):
        if sanitizer._owns(ident):
            return sanitizer
    return None


def _exempt(frame: FrameType) -> bool:
    name = frame.f_globals.get("__name__")
    return isinstance(name, str) and name.partition(".")[0] in _EXEMPT_PACKAGES


def _site(frame: FrameType) -> str:
    """``file:line`` of ``frame``, the file relative to the working directory when inside it."""
    filename = frame.f_code.co_filename
    try:
        relative = os.path.relpath(filename)
    except ValueError:  # another drive (Windows)
        relative = filename
    if relative == os.pardir or relative.startswith(os.pardir + os.sep):
        relative = filename
    return f"{relative}:{frame.f_lineno}"


def _refusal(patch: _Patch, caller: FrameType) -> NondeterminismError:
    site = _site(caller)
    return NondeterminismError(
        f"{patch.call}() called at {site} inside a simulation: {patch.advice} instead",
        call=patch.call,
        site=site,
    )


def _wrap(patch: _Patch, original: Callable[..., Any]) -> Callable[..., Any]:
    route = patch.route
    passes = patch.passes

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        sanitizer = _owner(_get_ident()) if _active else None
        if sanitizer is None:
            return original(*args, **kwargs)
        caller = sys._getframe(1)
        if _exempt(caller) or (passes is not None and passes(*args, **kwargs)):
            return original(*args, **kwargs)
        if route is None or sanitizer.strict:
            raise _refusal(patch, caller)
        return route(sanitizer, *args, **kwargs)

    functools.update_wrapper(wrapper, original)
    return wrapper


def _install() -> None:
    """Replace every patched attribute with its wrapper (called under ``_lock``)."""
    try:
        replaced: dict[int, tuple[object, object]] = {}
        for index, patch in enumerate(_PATCHES):
            original = getattr(patch.owner, patch.attr)
            key = (index, id(original))
            entry = _wrappers.get(key)
            if entry is None or entry[0] is not original:
                entry = _wrappers[key] = (original, _wrap(patch, original))
            _saved.append((patch.owner, patch.attr, original))
            setattr(patch.owner, patch.attr, entry[1])
            if isinstance(patch.owner, ModuleType):  # a class's method is not bound elsewhere
                replaced[id(original)] = entry
        _bound.replace(replaced)
    except BaseException:
        _restore()
        raise


def _restore() -> None:
    """Put every saved original back, last replaced first (called under ``_lock``)."""
    _bound.restore()
    while _saved:
        owner, attr, original = _saved.pop()
        setattr(owner, attr, original)
