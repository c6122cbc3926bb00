"""Bottom halves: callbacks that run as soon as their context polls.

The flag machine is QEMU's (``util/async.c``), one bit per fact:

* ``PENDING``: enqueued on the context's list and waiting for ``aio_bh_poll``;
  set by every enqueue, cleared by the dequeue. A BH is on exactly one list
  while PENDING, never twice: enqueueing a PENDING BH only ORs in new flags,
  so scheduling a BH that is already pending neither moves nor duplicates it.
* ``SCHEDULED``: run the callback when dequeued. ``cancel`` clears only this
  bit; the BH stays on the list and is dequeued harmlessly.
* ``DELETED``: free when dequeued, without running the callback.
* ``ONESHOT``: free after running once (``aio_bh_schedule_oneshot``).
* ``IDLE``: run at least every 10 ms; an idle BH running is never progress.

``aio_bh_poll`` moves the whole list aside as a *slice* before running it, so a
BH scheduled while BHs run (itself included) lands on the fresh list and runs
in the next poll, never this one. Within one batch the newest enqueued runs
first, because QEMU inserts at the head of a singly linked list; we append and
pop from the end, which is the same order.

Python has no use-after-free, so we make one loud instead: any use of a BH
after it has been freed (a deleted BH dequeued, a oneshot BH run) raises
:class:`~evloop.errors.SimulationError`. Scheduling a BH that is deleted but
not yet dequeued is legal and, as in QEMU, silently never runs it.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntFlag
from typing import TYPE_CHECKING

from ..errors import SimulationError

if TYPE_CHECKING:
    from .aio import AioContext

__all__ = ["BH", "BHFlags"]

BH_PENDING = 1 << 0
BH_SCHEDULED = 1 << 1
BH_DELETED = 1 << 2
BH_ONESHOT = 1 << 3
BH_IDLE = 1 << 4
#: Not a QEMU flag: set once the BH has been freed, to catch use after free.
BH_FREED = 1 << 5


class BHFlags(IntFlag):
    """The flag bits of :attr:`BH.flags`, for display and assertions."""

    PENDING = BH_PENDING
    SCHEDULED = BH_SCHEDULED
    DELETED = BH_DELETED
    ONESHOT = BH_ONESHOT
    IDLE = BH_IDLE
    FREED = BH_FREED


class BH:
    """A bottom half (``QEMUBH``) of one :class:`~evloop.AioContext`.

    Create it with :meth:`AioContext.bh_new`; never directly.
    """

    __slots__ = ("_flags", "cb", "ctx", "name", "uid")

    def __init__(self, ctx: AioContext, cb: Callable[[], object], name: str | None) -> None:
        self.ctx = ctx
        self.cb = cb
        self.name = name
        self._flags = 0
        #: Creation number within the context: stable from run to run.
        self.uid = ctx._next_uid()

    @property
    def flags(self) -> BHFlags:
        return BHFlags(self._flags)

    def schedule(self) -> None:
        """Run the callback in the context's next poll (``qemu_bh_schedule``)."""
        # AioContext._bh_enqueue, inlined (the hot path of every BH workload).
        old = self._flags
        if old & BH_FREED:
            self._use_after_free("schedule")
        self._flags = old | BH_PENDING | BH_SCHEDULED
        ctx = self.ctx
        if not old & BH_PENDING:
            ctx._bh_list.append(self)
        ctx._bh_dirty[0] = True
        ctx._notified = True
        if ctx._notify_me:
            ctx.notifier.set()

    def schedule_idle(self) -> None:
        """Like :meth:`schedule`, but polled at least every 10 ms and never progress."""
        if self._flags & BH_FREED:
            self._use_after_free("schedule_idle")
        self.ctx._bh_enqueue(self, BH_SCHEDULED | BH_IDLE)

    def cancel(self) -> None:
        """Do not run the callback after all (``qemu_bh_cancel``); the BH stays usable."""
        if self._flags & BH_FREED:
            self._use_after_free("cancel")
        self._flags &= ~BH_SCHEDULED

    def delete(self) -> None:
        """Free the BH at the context's next poll without running it (``qemu_bh_delete``).

        Legal from inside the BH's own callback.
        """
        if self._flags & BH_FREED:
            self._use_after_free("delete")
        self.ctx._bh_enqueue(self, BH_DELETED)

    def _use_after_free(self, op: str) -> None:
        why = "a oneshot BH is freed once it has run" if self._flags & BH_ONESHOT else (
            "it was deleted and its context has since freed it"
        )
        raise SimulationError(
            f"{op}() on BH {self.describe()} of context {self.ctx.name!r} after it was freed: "
            f"{why}; keep the BH alive (do not delete it) while anything may still schedule it"
        )

    def describe(self) -> str:
        if self.name is not None:
            return repr(self.name)
        return repr(callback_name(self.cb))

    def __repr__(self) -> str:
        return f"<BH {self.describe()} flags={self.flags!r}>"


def callback_name(cb: object) -> str:
    """A stable, human name for a callback: its qualified name, unwrapping partials."""
    func = getattr(cb, "func", None)  # functools.partial
    if func is not None and getattr(cb, "args", None) is not None:
        return callback_name(func)
    name = getattr(cb, "__qualname__", None)
    if isinstance(name, str):
        return name
    return type(cb).__qualname__
