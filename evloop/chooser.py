"""The single door every scheduling decision goes through.

Wherever QEMU's rules leave the order open (which runnable thread of control
takes the next turn, which of several simultaneous external events comes
first, whether to inject a fault), the simulation asks one :class:`Chooser`
for an index into a list of options. The options are listed in a stable,
documented order (FIFO: the longest waiting first), so the first option is
always QEMU's own order. Seeded, fuzzed, shrunk and replayed runs differ only
in which chooser answers; a trace records the answers.

A decision with a single option is never asked: there is nothing to choose.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum
from typing import Protocol

from .rng import SimRandom

__all__ = ["ChoiceKind", "Chooser", "FifoChooser", "RandomChooser"]


class ChoiceKind(IntEnum):
    """What a decision is about."""

    THREAD = 0  #: which runnable thread of control takes the next turn
    EXTERNAL = 1  #: which of several simultaneous external events comes first
    FAULT = 2  #: whether (and which) fault to inject


class Chooser(Protocol):
    def choose(self, kind: ChoiceKind, options: Sequence[str]) -> int:
        """Return an index into ``options`` (at least two of them)."""
        ...


class FifoChooser:
    """QEMU's own order: always the first option (the longest waiting)."""

    __slots__ = ()

    def choose(self, kind: ChoiceKind, options: Sequence[str]) -> int:
        return 0

    def __repr__(self) -> str:
        return "FifoChooser()"


class RandomChooser:
    """A seeded random walk: each decision uniform over its options."""

    __slots__ = ("_rng", "seed")

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._rng = SimRandom(seed)

    def choose(self, kind: ChoiceKind, options: Sequence[str]) -> int:
        return self._rng.randrange(len(options))

    def __repr__(self) -> str:
        return f"RandomChooser(seed={self.seed})"
