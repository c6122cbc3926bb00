"""Each check-determinism run meets its objects at other addresses.

An ``object``'s hash is its address, so a set of tasks, futures or any objects
without ``__hash__`` is iterated in address order. The allocator hands out
the same addresses to processes that allocate the same way, whatever their
``PYTHONHASHSEED`` and whatever the address-space randomisation (it moves
whole pages, which leaves a set's slot order alone), so a program that
iterates such a set behaves the same in every run and the bug hides.

:func:`shift_heap` takes, before the scenario runs, ``n`` blocks of every
small size class and keeps them: every later object of those sizes lands
``n`` slots further on in its pool, which rotates the slot order of a set of
them. check-determinism's run ``i`` shifts by ``i``
(:data:`HEAP_SHIFT_ENV`), so a set-order bug shows up as differing runs.
The shift is a pure function of the run's index: run ``i`` is always the same.
"""

from __future__ import annotations

import os

__all__ = ["HEAP_SHIFT_ENV", "shift_heap", "shift_heap_from_env"]

#: The environment variable holding a child process's shift (a small int).
HEAP_SHIFT_ENV = "EVREPLAY_HEAP_SHIFT"

#: The blocks taken, kept alive for the life of the process.
_TAKEN: list[bytearray] = []

#: CPython's small-object allocator serves sizes up to 512 bytes in classes of 16.
_SMALL_SIZES = range(0, 512, 16)


def shift_heap(n: int) -> None:
    """Take ``n`` blocks of every small size class, for good."""
    _TAKEN.extend(bytearray(size) for size in _SMALL_SIZES for _ in range(n))


def shift_heap_from_env() -> None:
    """Shift by ``$EVREPLAY_HEAP_SHIFT`` when it is set (check-determinism's children)."""
    value = os.environ.get(HEAP_SHIFT_ENV, "")
    if value.isdigit():
        shift_heap(int(value))
