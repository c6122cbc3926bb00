"""``ReplayMutex``: QEMU's ``replay_mutex_lock`` for real OS threads.

Threads that run loop code hold the replay mutex while they run and drop it
only around blocking waits. Which thread gets it next is up to the OS: a
source of nondeterminism like any other, so it goes through the log.

* ``NONE``: every call is a no-op, as in QEMU; :meth:`locked` is False.
* ``RECORD``: a real lock; each grant is logged as the stable index of the
  thread that got it (threads are numbered by :meth:`register`, in the order
  they register; never by OS id).
* ``PLAY``: grants follow the log. A thread asking out of turn waits on its
  own condition, and an unlock wakes only the thread the log names next, so
  playing costs one wake-up per grant, as recording does. If the thread the
  log names can never arrive (it has finished, or was never registered, or
  the log has run out while threads still ask), play fails with
  :class:`ReplayDivergence` naming it; if no grant is made for
  ``stall_timeout`` seconds it fails the same way, rather than hang.

The log is the threads' names in the order they registered
(:attr:`thread_names`) and the grants (:attr:`grants`). Given the names
(``threads=``), play checks registrations against them: a thread that
registers in another place, or one the recording did not have, is a
divergence, since its index would mean another thread's grants. The log must
be used up: when every recorded thread has said it has :meth:`finished`, or
at :meth:`close`, grants left over are a divergence.

A thread that holds the mutex and ends without releasing it, or blocks
holding it, stops every other thread. Waiters look at the holder every
:data:`HOLDER_POLL_S` seconds: a holder that has ended is reported at once,
by name, as the cause (in RECORD too, as a :class:`ReplayError`, where it
would otherwise hang); one that still holds it after ``stall_timeout`` is
reported as blocked while holding it, never blamed on the log's next thread.

Inside a :class:`~evloop.Simulation` the turn lock plays this role and its
grants are the scheduler's THREAD decisions; this class is for programs whose
threads the simulation does not schedule (host mode, plain threads).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import NoReturn

from .errors import ReplayDivergence, ReplayError
from .session import ReplayMode

__all__ = ["HOLDER_POLL_S", "ReplayMutex"]

#: How often (seconds) a waiting thread looks whether the holder has ended.
HOLDER_POLL_S = 0.05


class ReplayMutex:
    """The replay mutex. ``grants`` is the log: appended to in RECORD, followed in PLAY."""

    def __init__(
        self,
        mode: ReplayMode = ReplayMode.NONE,
        grants: Iterable[int] | None = None,
        *,
        threads: Sequence[str] | None = None,
        on_grant: Callable[[int], None] | None = None,
        stall_timeout: float = 30.0,
    ) -> None:
        self.mode = mode
        self.grants: list[int] = list(grants) if grants is not None else []
        if mode is ReplayMode.RECORD and (self.grants or threads):
            raise ValueError("a recording ReplayMutex starts with an empty log")
        #: PLAY: the recorded threads' names, in registration order (None: unchecked).
        self.recorded_threads = None if threads is None else tuple(threads)
        self._on_grant = on_grant
        self._stall_timeout = stall_timeout
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        # PLAY: one condition per registered thread, all on the same lock.
        self._conds: list[threading.Condition] = []
        self._held_by: int | None = None
        self._cursor = 0
        self._names: list[str] = []
        self._threads: list[threading.Thread | None] = []
        self._finished: set[int] = set()
        self._waiting: set[int] = set()
        self._local = threading.local()
        self.divergence: ReplayDivergence | None = None

    # -- registration -------------------------------------------------------------

    def register(self, name: str, thread: threading.Thread | None = None) -> int:
        """Name the calling thread (or ``thread``); returns its stable index.

        In PLAY with the recorded names, the index must name the same thread
        as in the recording: else a divergence.
        """
        with self._cond:
            if name in self._names:
                raise ValueError(f"a thread named {name!r} is already registered")
            index = len(self._names)
            self._check_registration(index, name)
            self._names.append(name)
            self._threads.append(thread if thread is not None else threading.current_thread())
            self._conds.append(threading.Condition(self._lock))
            if thread is None or thread is threading.current_thread():
                self._local.index = index
            self._wake_all()
            return index

    def bind(self, index: int) -> None:
        """Bind the calling thread to a registration made for it by another thread."""
        self._local.index = index

    def _check_registration(self, index: int, name: str) -> None:
        recorded = self.recorded_threads
        if self.mode is not ReplayMode.PLAY or recorded is None:
            return
        if self.divergence is not None:
            raise self.divergence
        if index < len(recorded) and recorded[index] == name:
            return
        where = (
            f"as thread #{index}, which the recording registered as {recorded[index]!r}"
            if index < len(recorded)
            else f"as thread #{index}, but the recording registered only {len(recorded)}"
        )
        self._fail(
            f"REGISTER thread #{index} {recorded[index]!r}" if index < len(recorded)
            else "no more registrations",
            f"thread {name!r} registered {where} (recorded order: {list(recorded)!r})",
            thread=name,
        )

    def finished(self) -> None:
        """The calling thread will not ask for the mutex again.

        In PLAY, once every recorded thread has finished, the log must be used
        up: grants left are a divergence, raised here.
        """
        with self._cond:
            me = self._my_index("finished")
            if self._held_by == me:
                raise ReplayError(
                    f"thread {self._names[me]!r} said it has finished while holding the "
                    "replay mutex: unlock it first"
                )
            self._finished.add(me)
            self._wake_all()
            recorded = self.recorded_threads
            if (
                self.mode is ReplayMode.PLAY and self.divergence is None
                and recorded is not None and len(self._finished) == len(recorded)
            ):
                self._check_used_up("every recorded thread has finished")

    def close(self) -> None:
        """The run is over: in PLAY, the log must be used up and the mutex free.

        Raises :class:`ReplayDivergence` for grants left over, or a thread
        still holding the mutex; a no-op in the other modes, and idempotent.
        """
        if self.mode is not ReplayMode.PLAY:
            return
        with self._cond:
            if self.divergence is not None:
                raise self.divergence
            if self._held_by is not None:
                holder = self._names[self._held_by]
                self._fail(
                    self._expected(),
                    f"the run ended with thread {holder!r} still holding the replay mutex",
                    thread=holder,
                )
            self._check_used_up("the run ended")

    def _check_used_up(self, when: str) -> None:
        left = len(self.grants) - self._cursor
        if left > 0:
            grants = "grant" if left == 1 else "grants"
            self._fail(self._expected(), f"{when} with {left} {grants} of the log unused")

    def _wake_all(self) -> None:
        # Called with the lock held: every waiter re-checks (a thread came or went).
        self._cond.notify_all()
        for cond in self._conds:
            cond.notify_all()

    def _my_index(self, op: str) -> int:
        index = getattr(self._local, "index", None)
        if index is None:
            raise ReplayError(
                f"ReplayMutex.{op}() from thread {threading.current_thread().name!r}, which is "
                "not registered: call register(name) in each thread first"
            )
        return int(index)

    # -- the lock -----------------------------------------------------------------

    def lock(self) -> None:
        if self.mode is ReplayMode.NONE:
            return
        me = self._my_index("lock")
        with self._cond:
            if self._held_by == me:
                raise ReplayError(f"thread {self._names[me]!r} already holds the replay mutex")
            if self.mode is ReplayMode.RECORD:
                while self._held_by is not None:
                    self._cond.wait(HOLDER_POLL_S)
                    self._check_holder_alive()
                self._take(me)
                self.grants.append(me)
                if self._on_grant is not None:
                    self._on_grant(me)
                return
            self._waiting.add(me)
            try:
                self._await_turn(me)
            finally:
                self._waiting.discard(me)
            self._cursor += 1
            self._take(me)

    def _await_turn(self, me: int) -> None:
        """Wait until the log's next grant is ``me`` and the mutex is free (PLAY, locked).

        Stalls are counted in the waits that timed out with no grant made
        meanwhile, so no clock is read.
        """
        mine = self._conds[me]
        poll = min(HOLDER_POLL_S, self._stall_timeout)
        stalled = 0.0
        while True:
            self._check_can_arrive()
            if self._held_by is None and self.grants[self._cursor] == me:
                return
            cursor = self._cursor
            notified = mine.wait(poll)
            if self._cursor != cursor:
                stalled = 0.0
            elif not notified:
                stalled += poll
                if stalled >= self._stall_timeout:
                    self._fail_stalled()

    def _fail_stalled(self) -> None:
        holder = self._held_by
        if holder is not None:
            name = self._names[holder]
            self._fail(
                self._expected(),
                f"thread {name!r} has held the replay mutex for {self._stall_timeout:g} s "
                "without releasing it (blocked while holding it)",
                thread=name,
            )
        self._fail(
            self._expected(),
            f"thread {self._expected_name()!r} (the log's next grant) did not "
            f"ask for the replay mutex within {self._stall_timeout:g} s",
        )

    def _holder_gone(self) -> str | None:
        """The holder's name if it has ended while holding the mutex, else None."""
        holder = self._held_by
        if holder is None:
            return None
        thread = self._threads[holder]
        started = thread is not None and thread.ident is not None
        if started and thread is not None and not thread.is_alive():
            return self._names[holder]
        return None

    def _check_holder_alive(self) -> None:
        """RECORD: a holder that has ended would make every waiter wait forever."""
        name = self._holder_gone()
        if name is not None:
            raise ReplayError(
                f"thread {name!r} ended while holding the replay mutex (it never released "
                "it): every other thread would wait for it forever"
            )

    def _take(self, me: int) -> None:
        self._held_by = me

    def _expected_name(self) -> str:
        if self._cursor >= len(self.grants):
            return "<none: the log has ended>"
        index = self.grants[self._cursor]
        return self._names[index] if index < len(self._names) else f"#{index}"

    def _expected(self) -> str:
        return f"MUTEX grant to {self._expected_name()!r}"

    def _check_can_arrive(self) -> None:
        if self.divergence is not None:
            raise self.divergence
        holder = self._holder_gone()
        if holder is not None:
            self._fail(
                self._expected(),
                f"thread {holder!r} ended while holding the replay mutex (it took grant "
                f"{self._cursor - 1} and never released it)",
                thread=holder,
            )
        if self._cursor >= len(self.grants):
            self._fail(self._expected(), f"the log has no grant left (after {self._cursor} grants)")
        expected = self.grants[self._cursor]
        if expected in self._waiting:
            return
        if expected < len(self._names):
            thread = self._threads[expected]
            started = thread is not None and thread.ident is not None
            alive = thread is not None and thread.is_alive()
            gone = expected in self._finished or (started and not alive)
            if gone:
                self._fail(
                    self._expected(),
                    f"the log's next grant names {self._names[expected]!r}, which has ended",
                )
        elif self._waiting and len(self._waiting) + len(self._finished) >= len(self._names):
            self._fail(
                self._expected(),
                f"the log's next grant names thread #{expected}, which never registered",
            )

    def _fail(self, expected: str, why: str, *, thread: str | None = None) -> NoReturn:
        """Record the divergence, wake every waiter (each raises it too), raise it."""
        waiting = sorted(self._names[i] for i in self._waiting)
        self.divergence = ReplayDivergence(
            step=self._cursor,
            time_ns=None,
            event_index=self._cursor,
            expected=expected,
            actual=f"{why}; waiting: {waiting}",
            thread=thread,
            recent=tuple(
                self._names[i] for i in self.grants[max(0, self._cursor - 8) : self._cursor]
            ),
        )
        self._wake_all()
        raise self.divergence

    def unlock(self) -> None:
        if self.mode is ReplayMode.NONE:
            return
        me = self._my_index("unlock")
        with self._cond:
            if self._held_by != me:
                raise ReplayError(f"thread {self._names[me]!r} does not hold the replay mutex")
            self._held_by = None
            if self.mode is ReplayMode.RECORD:
                self._cond.notify_all()
                return
            # PLAY: wake the thread the log names next, if it is waiting; if it
            # is not, it will find the mutex free when it asks. When the log
            # has ended or names a thread that never registered, every waiter
            # must look (one of them reports it).
            cursor = self._cursor
            if cursor < len(self.grants) and self.grants[cursor] < len(self._conds):
                self._conds[self.grants[cursor]].notify()
            else:
                self._wake_all()

    def locked(self) -> bool:
        """True if the calling thread holds the mutex (always False in NONE mode)."""
        if self.mode is ReplayMode.NONE:
            return False
        index = getattr(self._local, "index", None)
        return index is not None and self._held_by == index

    def __enter__(self) -> ReplayMutex:
        self.lock()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.unlock()

    @property
    def thread_names(self) -> tuple[str, ...]:
        return tuple(self._names)
