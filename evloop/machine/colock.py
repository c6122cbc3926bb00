"""Coroutine locks: ``CoQueue``, ``CoMutex``, ``CoRwlock`` (QEMU ``util/qemu-coroutine-lock.c``).

They block the *coroutine*, never the thread of control: a waiter yields,
and whoever releases it wakes it with :func:`aio_co_wake` (at once when that
is a plain call on its context, after the waker yields when the waker is a
coroutine there, through ``co_schedule_bh`` when it lives on another
context).

``CoMutex`` keeps QEMU's fairness and hand-off: waiters are served in the
order they queued, and ``unlock`` with a waiter hands the mutex *directly* to
the first one (the lock count never drops to zero in between), so a
coroutine that calls ``lock`` before the woken one has run queues behind it
instead of barging in. QEMU needs a lock-free "responsibility hand-off"
protocol because a ``lock`` on another CPU may be half-way between counting
itself and queueing itself when ``unlock`` looks; only one thread of control
runs at a time here and neither call waits in between, so that window does
not exist and the count and the queue always agree.

``CoRwlock`` is QEMU's ticket lock: a queue of tickets (reader or writer) in
arrival order, guarded by a ``CoMutex``; a reader arriving while a writer is
queued waits behind it, and each woken reader wakes the next reader in line.
"""

from __future__ import annotations

from collections import deque
from types import TracebackType
from typing import Protocol

from ..errors import EvloopInternalError, SimulationError
from .coroutine import (
    Coroutine,
    aio_co_wake,
    qemu_coroutine_self,
    qemu_coroutine_yield,
    qemu_get_current_aio_context,
)

__all__ = [
    "CoMutex",
    "CoQueue",
    "CoRwlock",
    "qemu_co_queue_next",
    "qemu_co_queue_restart_all",
    "qemu_co_queue_wait",
]


class Lockable(Protocol):
    """What :meth:`CoQueue.wait` releases while waiting (QEMU's ``QemuLockable``)."""

    def lock(self) -> None: ...

    def unlock(self) -> None: ...


def _self(what: str) -> Coroutine:
    co = qemu_coroutine_self()
    if co is None or co.caller is None:
        raise SimulationError(f"{what} called outside a coroutine")
    return co


class CoQueue:
    """Coroutines waiting for something, woken in the order they waited."""

    __slots__ = ("entries",)

    def __init__(self) -> None:
        self.entries: deque[Coroutine] = deque()

    def wait(self, lock: Lockable | None = None, *, front: bool = False) -> None:
        """``qemu_co_queue_wait``: release ``lock``, yield until woken, take ``lock`` again."""
        co = _self("qemu_co_queue_wait()")
        if front:
            self.entries.appendleft(co)
        else:
            self.entries.append(co)
        if lock is not None:
            lock.unlock()
        qemu_coroutine_yield()
        if lock is not None:
            lock.lock()

    def enter_next(self, lock: Lockable | None = None) -> bool:
        """``qemu_co_enter_next``: wake the first waiter (releasing ``lock`` meanwhile)."""
        if not self.entries:
            return False
        co = self.entries.popleft()
        if lock is not None:
            lock.unlock()
        aio_co_wake(co)
        if lock is not None:
            lock.lock()
        return True

    def next(self) -> bool:
        """``qemu_co_queue_next``: wake the first waiter; False if there was none."""
        return self.enter_next()

    def restart_all(self) -> None:
        """``qemu_co_queue_restart_all``: wake every waiter, first first."""
        while self.enter_next():
            pass

    def empty(self) -> bool:
        return not self.entries

    def __repr__(self) -> str:
        return f"<CoQueue {[co.name for co in self.entries]}>"


def qemu_co_queue_wait(queue: CoQueue, lock: Lockable | None = None) -> None:
    queue.wait(lock)


def qemu_co_queue_next(queue: CoQueue) -> bool:
    return queue.next()


def qemu_co_queue_restart_all(queue: CoQueue) -> None:
    queue.restart_all()


class CoMutex:
    """A mutex for coroutines, fair and with direct hand-off (``CoMutex``).

    Also a context manager (QEMU's ``WITH_QEMU_LOCK_GUARD``).
    """

    __slots__ = ("_waiters", "ctx", "holder", "locked")

    def __init__(self) -> None:
        #: Holders plus waiters (QEMU's ``locked`` count).
        self.locked = 0
        self.holder: Coroutine | None = None
        #: The context of the holder, or of the waiter it was handed to.
        self.ctx: object = None
        self._waiters: deque[Coroutine] = deque()

    def lock(self) -> None:
        co = _self("CoMutex.lock()")
        self.locked += 1
        if self.locked == 1:
            self.ctx = qemu_get_current_aio_context()
        else:
            self._waiters.append(co)
            qemu_coroutine_yield()  # unlock() handed it over
        self.holder = co
        co.locks_held += 1

    def unlock(self) -> None:
        co = _self("CoMutex.unlock()")
        if self.holder is not co:
            holder = "nobody" if self.holder is None else repr(self.holder.name)
            raise SimulationError(
                f"CoMutex.unlock() from coroutine {co.name!r}, but it is held by {holder}"
            )
        self.ctx = None
        self.holder = None
        co.locks_held -= 1
        self.locked -= 1
        if self.locked == 0:
            return
        to_wake = self._waiters.popleft()
        self.ctx = to_wake.ctx
        aio_co_wake(to_wake)

    def __enter__(self) -> CoMutex:
        self.lock()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.unlock()

    def __repr__(self) -> str:
        holder = None if self.holder is None else self.holder.name
        return f"<CoMutex holder={holder!r} waiters={[co.name for co in self._waiters]}>"


class CoRwlock:
    """A readers-writer lock for coroutines, fair by arrival (``CoRwlock``)."""

    __slots__ = ("mutex", "owners", "tickets")

    def __init__(self) -> None:
        self.mutex = CoMutex()
        #: Readers holding it, or -1 while a writer does.
        self.owners = 0
        #: Waiters in arrival order: (is_reader, coroutine).
        self.tickets: deque[tuple[bool, Coroutine]] = deque()

    def _maybe_wake_one(self) -> None:
        """Called with ``mutex`` held; releases it. Owners are counted before the wake."""
        co = None
        if self.tickets:
            reader, first = self.tickets[0]
            if reader and self.owners >= 0:
                self.owners += 1
                co = first
            elif not reader and self.owners == 0:
                self.owners = -1
                co = first
        if co is not None:
            self.tickets.popleft()
            self.mutex.unlock()
            aio_co_wake(co)
        else:
            self.mutex.unlock()

    def rdlock(self) -> None:
        co = _self("CoRwlock.rdlock()")
        self.mutex.lock()
        # For fairness, wait if a writer is in line.
        if self.owners == 0 or (self.owners > 0 and not self.tickets):
            self.owners += 1
            self.mutex.unlock()
        else:
            self.tickets.append((True, co))
            self.mutex.unlock()
            qemu_coroutine_yield()
            _check(self.owners >= 1, "a woken reader finds no read owner")
            # Possibly wake another reader, which wakes the next in line.
            self.mutex.lock()
            self._maybe_wake_one()
        co.locks_held += 1

    def wrlock(self) -> None:
        co = _self("CoRwlock.wrlock()")
        self.mutex.lock()
        if self.owners == 0:
            self.owners = -1
            self.mutex.unlock()
        else:
            self.tickets.append((False, co))
            self.mutex.unlock()
            qemu_coroutine_yield()
            _check(self.owners == -1, "a woken writer does not own the lock")
        co.locks_held += 1

    def unlock(self) -> None:
        co = _self("CoRwlock.unlock()")
        if self.owners == 0:
            raise SimulationError(f"CoRwlock.unlock() from coroutine {co.name!r}: not locked")
        co.locks_held -= 1
        self.mutex.lock()
        if self.owners > 0:
            self.owners -= 1
        else:
            self.owners = 0
        self._maybe_wake_one()

    def upgrade(self) -> None:
        """A reader becomes the writer (waiting for the other readers and queued writers)."""
        co = _self("CoRwlock.upgrade()")
        self.mutex.lock()
        if self.owners <= 0:
            self.mutex.unlock()
            raise SimulationError(f"CoRwlock.upgrade() from coroutine {co.name!r}: not read-locked")
        # For fairness, wait if a writer is in line.
        if self.owners == 1 and not self.tickets:
            self.owners = -1
            self.mutex.unlock()
        else:
            self.owners -= 1
            self.tickets.append((False, co))
            self._maybe_wake_one()
            qemu_coroutine_yield()
            _check(self.owners == -1, "an upgraded reader does not own the lock")

    def downgrade(self) -> None:
        """The writer becomes a reader (and the readers next in line join it)."""
        co = _self("CoRwlock.downgrade()")
        self.mutex.lock()
        if self.owners != -1:
            self.mutex.unlock()
            raise SimulationError(
                f"CoRwlock.downgrade() from coroutine {co.name!r}: not write-locked"
            )
        self.owners = 1
        self._maybe_wake_one()

    def __repr__(self) -> str:
        return f"<CoRwlock owners={self.owners} queued={len(self.tickets)}>"


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise EvloopInternalError(f"CoRwlock: {what}")
