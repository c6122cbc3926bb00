"""``run`` and ``EventLoopPolicy``: asyncio's entry points, on simulated loops.

* :func:`run` is ``asyncio.run`` on a fresh :class:`SimEventLoop` (and so a
  fresh simulation, unless one is given): same cancellation of leftover
  tasks, same shutdown of async generators and of the default executor, in
  virtual time.
* :class:`EventLoopPolicy` makes every loop asyncio creates a simulated one,
  as ``uvloop.EventLoopPolicy`` does for uvloop: ``asyncio.run``,
  ``asyncio.Runner``, ``IsolatedAsyncioTestCase`` and
  ``asyncio.new_event_loop`` all get one. Loop ``k`` (counting from 0) of a
  policy is seeded ``seed + k``, so a program that creates several loops is
  as reproducible as one that creates one.
"""

from __future__ import annotations

import asyncio
import asyncio.events
from collections.abc import Callable, Coroutine
from typing import Any, TypeAlias, TypeVar

from ..machine.simulation import Simulation
from ..seams import Chooser
from .loop import SimEventLoop

__all__ = ["EventLoopPolicy", "run"]

_T = TypeVar("_T")

#: A chooser for every loop, or a function making one from the loop's seed.
ChooserSpec: TypeAlias = Chooser | Callable[[int], Chooser] | None


def _chooser_for(spec: ChooserSpec, seed: int) -> Chooser | None:
    if spec is None or hasattr(spec, "choose"):
        return spec
    return spec(seed)


def run(
    main: Coroutine[Any, Any, _T],
    *,
    seed: int = 0,
    chooser: ChooserSpec = None,
    debug: bool | None = None,
    chaos: bool = False,
    sanitize: bool | str = False,
    sim: Simulation | None = None,
) -> _T:
    """``asyncio.run(main)`` on a simulated loop: virtual time, no real waiting.

    Without ``sim`` the loop gets a fresh ``Simulation(seed, chooser=...,
    sanitize=...)``, closed with the loop; with one, the loop runs on it
    (its seed, chooser and sanitizer are the simulation's own).
    """
    if sim is not None and (seed != 0 or chooser is not None or sanitize is not False):
        raise ValueError(
            "run(sim=...) runs on that simulation: its seed, chooser and sanitizer are "
            "its own, so do not pass seed, chooser or sanitize as well"
        )

    def new_loop() -> SimEventLoop:
        if sim is not None:
            return SimEventLoop(sim, chaos=chaos)
        return SimEventLoop(
            seed=seed, chooser=_chooser_for(chooser, seed), chaos=chaos, sanitize=sanitize
        )

    with asyncio.Runner(debug=debug, loop_factory=new_loop) as runner:
        return runner.run(main)


class EventLoopPolicy(asyncio.events.BaseDefaultEventLoopPolicy):
    """Every new event loop is a :class:`SimEventLoop` on a fresh, seeded simulation."""

    def __init__(
        self, seed: int = 0, chooser: ChooserSpec = None, *, chaos: bool = False,
        sanitize: bool | str = False,
    ) -> None:
        super().__init__()
        if not isinstance(seed, int):
            raise TypeError(f"seed must be an int, not {type(seed).__name__}")
        self.seed = seed
        self.chooser = chooser
        self.chaos = chaos
        self.sanitize = sanitize
        #: Loops made so far; the next one is seeded ``seed + loops``.
        self.loops = 0

    def new_event_loop(self) -> SimEventLoop:
        seed = self.seed + self.loops
        self.loops += 1
        return SimEventLoop(
            seed=seed, chooser=_chooser_for(self.chooser, seed), chaos=self.chaos,
            sanitize=self.sanitize,
        )

    def __repr__(self) -> str:
        return f"<evloop.asyncio.EventLoopPolicy seed={self.seed} loops={self.loops}>"
