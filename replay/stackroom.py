"""Stack room: a RecursionError is the program's own, at the same step in record and play.

Python raises RecursionError when the interpreter's call depth passes the
recursion limit, wherever that happens. Two things would make the step at
which a deeply recursing program fails differ between its recording and
its play, although the program's own frames are the same:

* the depth at which the run starts (``replay record`` on the command line,
  ``replay.record`` from a test, a play from another tool); so a run gets
  the recursion limit counted from where it starts (:func:`run_stack`);
* the replay layer's own frames at each door (a recording logs a value, a
  play reads it from the trace and checks it: not the same calls). So each
  door runs with :data:`DOOR_ROOM` more frames allowed (:func:`roomy`): the
  limit is then only ever passed in the program's frames and evloop's,
  which are the same in both directions.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import ParamSpec, TypeVar

__all__ = ["DOOR_ROOM", "depth", "restore", "roomy", "run_stack"]

#: Frames a door of the replay layer may use beyond the run's recursion limit.
DOOR_ROOM = 256

P = ParamSpec("P")
T = TypeVar("T")


def depth() -> int:
    """How many Python frames are on this thread's stack: what the recursion limit counts.

    (Counted by walking the frames: asking the interpreter instead, by trying
    limits, would lower the limit for every other thread meanwhile.)
    """
    frame: FrameType | None = sys._getframe(1)
    n = 0
    while frame is not None:
        n += 1
        frame = frame.f_back
    return n


@contextmanager
def run_stack() -> Iterator[None]:
    """The recursion limit counted from here: the run has as much as a fresh program."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(depth() + limit)
    try:
        yield
    finally:
        sys.setrecursionlimit(limit)


def roomy(door: Callable[P, T]) -> Callable[P, T]:
    """``door`` run with DOOR_ROOM more frames allowed than its caller had."""
    get, set_ = sys.getrecursionlimit, sys.setrecursionlimit

    def call(*args: P.args, **kwargs: P.kwargs) -> T:
        limit = get()
        set_(limit + DOOR_ROOM)
        try:
            return door(*args, **kwargs)
        finally:
            restore(limit)

    return call


def restore(limit: int) -> None:
    """Put the recursion limit back to ``limit`` after a door.

    A door entered at the very limit cannot have it put back (the interpreter
    refuses a limit at or below the current depth): the program is as deep
    as it may go, and it gets the RecursionError its next call would raise.
    """
    try:
        sys.setrecursionlimit(limit)
    except RecursionError:
        # As low as this frame allows (the caller's depth is this one's - 1);
        # run_stack puts the run's limit back when the run ends.
        sys.setrecursionlimit(limit + 2)
        raise RecursionError("maximum recursion depth exceeded") from None
