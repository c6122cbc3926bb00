"""poll(2) over the virtual fd table, and the blocking wait behind it.

:class:`PollCalls` is a base of :class:`~evloop.loop.fds.FdTable`: it asks the
table for each fd's mask (rule 3 of ``fds.py``: readiness is tracked, so one
mask costs constant time) and, when nothing is ready and the timeout is not
zero, hands a :class:`_PollWait` to the table's blocker, the one place a
poll lets anything else run. It reads no object's state itself.
"""

from __future__ import annotations

import select
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from ..errors import DeadlockError

if TYPE_CHECKING:
    from ..seams import Blocker

__all__ = ["PollCalls"]

# poll(2) reports these whether or not they were asked for.
_ALWAYS_REPORTED: Final = select.POLLERR | select.POLLHUP | select.POLLNVAL


class _PollWait:
    """What a blocked :meth:`FdTable.poll` waits for: any of its fds to report something."""

    __slots__ = ("_fds", "_table")

    def __init__(self, table: PollCalls, fds: tuple[tuple[int, int], ...]) -> None:
        self._table = table
        self._fds = fds

    def ready(self) -> bool:
        mask = self._table.mask
        return any(fd >= 0 and mask(fd) & (events | _ALWAYS_REPORTED) for fd, events in self._fds)

    def describe(self) -> str:
        return _describe_poll(self._fds)


def _describe_poll(fds: Sequence[tuple[int, int]]) -> str:
    return f"poll(fds={[fd for fd, _ in fds]})"


class PollCalls:
    """The fd table's poll(2) (see the module docstring). A base of ``FdTable``."""

    __slots__ = ()

    if TYPE_CHECKING:
        blocker: Blocker | None

        def mask(self, fd: int) -> int: ...

    def poll(self, fds: Sequence[tuple[int, int]], timeout_ns: int) -> list[tuple[int, int]]:
        """poll(2) over ``(fd, events)`` pairs; ``timeout_ns`` < 0 waits forever.

        Returns ``(fd, revents)`` for the entries with something to report, in
        input order. ``revents`` holds the asked-for bits plus POLLERR, POLLHUP
        and POLLNVAL, which are always reported. A negative fd is ignored, as
        poll(2) documents. With nothing ready and a non-zero timeout, the wait
        goes to :attr:`blocker`; the result after it may be empty (timed out).
        """
        result = self._poll_now(fds)
        if result or timeout_ns == 0:
            return result
        blocker = self.blocker
        if blocker is None:
            if timeout_ns > 0:
                return result  # nothing else exists that could make an fd ready
            what = _describe_poll(fds)
            raise DeadlockError(
                f"{what} with an infinite timeout would never return: none of these fds "
                "is ready and no blocker is set to let anything else run",
                blocked=(("main", what),),
            )
        blocker.block(_PollWait(self, tuple(fds)), timeout_ns)
        return self._poll_now(fds)

    def _poll_now(self, fds: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
        result: list[tuple[int, int]] = []
        mask = self.mask
        for fd, events in fds:
            if fd < 0:
                continue
            revents = mask(fd) & (events | _ALWAYS_REPORTED)
            if revents:
                result.append((fd, revents))
        return result
