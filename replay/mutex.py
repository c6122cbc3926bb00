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

Inside a :class:`~evloop.Simulation` the turn lock plays this role and its
grants are the scheduler's THREAD decisions; this class is for programs whose
threads the simulation does not schedule (host mode, plain threads).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from types import TracebackType

from .errors import ReplayDivergence, ReplayError
from .session import ReplayMode

__all__ = ["ReplayMutex"]


class ReplayMutex:
    """The replay mutex. ``grants`` is the log: appended to in RECORD, followed in PLAY."""

    def __init__(
        self,
        mode: ReplayMode = ReplayMode.NONE,
        grants: Iterable[int] | None = None,
        *,
        on_grant: Callable[[int], None] | None = None,
        stall_timeout: float = 30.0,
    ) -> None:
        self.mode = mode
        self.grants: list[int] = list(grants) if grants is not None else []
        if mode is ReplayMode.RECORD and self.grants:
            raise ValueError("a recording ReplayMutex starts with an empty log")
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
        """Name the calling thread (or ``thread``); returns its stable index."""
        with self._cond:
            if name in self._names:
                raise ValueError(f"a thread named {name!r} is already registered")
            index = len(self._names)
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

    def finished(self) -> None:
        """The calling thread will not ask for the mutex again."""
        with self._cond:
            self._finished.add(self._my_index("finished"))
            self._wake_all()

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
                    self._cond.wait()
                self._take(me)
                self.grants.append(me)
                if self._on_grant is not None:
                    self._on_grant(me)
                return
            self._waiting.add(me)
            mine = self._conds[me]
            try:
                while True:
                    self._check_can_arrive()
                    if self._held_by is None and self.grants[self._cursor] == me:
                        break
                    cursor = self._cursor
                    if not mine.wait(self._stall_timeout) and self._cursor == cursor:
                        self._fail(
                            f"thread {self._expected_name()!r} (the log's next grant) did not "
                            f"ask for the replay mutex within {self._stall_timeout:g} s"
                        )
            finally:
                self._waiting.discard(me)
            self._cursor += 1
            self._take(me)

    def _take(self, me: int) -> None:
        self._held_by = me

    def _expected_name(self) -> str:
        if self._cursor >= len(self.grants):
            return "<none: the log has ended>"
        index = self.grants[self._cursor]
        return self._names[index] if index < len(self._names) else f"#{index}"

    def _check_can_arrive(self) -> None:
        if self.divergence is not None:
            raise self.divergence
        if self._cursor >= len(self.grants):
            self._fail(f"the log has no grant left (after {self._cursor} grants)")
        expected = self.grants[self._cursor]
        if expected in self._waiting:
            return
        if expected < len(self._names):
            thread = self._threads[expected]
            started = thread is not None and thread.ident is not None
            alive = thread is not None and thread.is_alive()
            gone = expected in self._finished or (started and not alive)
            if gone:
                self._fail(f"the log's next grant names {self._names[expected]!r}, which has ended")
        elif self._waiting and len(self._waiting) + len(self._finished) >= len(self._names):
            self._fail(f"the log's next grant names thread #{expected}, which never registered")

    def _fail(self, why: str) -> None:
        waiting = sorted(self._names[i] for i in self._waiting)
        self.divergence = ReplayDivergence(
            step=self._cursor,
            time_ns=None,
            event_index=self._cursor,
            expected=f"MUTEX grant to {self._expected_name()!r}",
            actual=f"{why}; waiting: {waiting}",
            thread=None,
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
