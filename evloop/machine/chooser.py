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

from ..seams import ChoiceKind
from .rng import SimRandom

__all__ = ["FifoChooser", "PCTChooser", "RandomChooser"]


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


class PCTChooser:
    """Probabilistic concurrency testing (Burckhardt et al., ASPLOS 2010).

    Every thread of control gets a random priority when first seen, and the
    highest-priority runnable thread always runs. At ``depth - 1`` change
    points, drawn at random among the first ``horizon`` decisions, the thread
    that ran last drops to a priority below every initial one. A bug of depth
    ``d`` (one needing ``d`` ordering constraints) is then found with
    probability at least ``1 / (n * k**(d-1))`` per run, for ``n`` threads and
    ``k`` decisions, which a uniform random walk does not guarantee.

    External-event order follows the same priorities by name; fault
    decisions are drawn at random, mostly "none" (option 0).
    """

    __slots__ = ("_changes", "_decisions", "_last", "_low", "_priority", "_rng", "depth", "seed")

    def __init__(self, seed: int = 0, depth: int = 3, horizon: int = 1000) -> None:
        if depth < 1:
            raise ValueError(f"PCT depth must be at least 1, not {depth}")
        if horizon < 1:
            raise ValueError(f"PCT horizon must be at least 1, not {horizon}")
        self.seed = seed
        self.depth = depth
        self._rng = SimRandom(seed)
        self._priority: dict[str, int] = {}
        self._changes = sorted(self._rng.sample(range(1, horizon + 1), min(depth - 1, horizon)))
        self._decisions = 0
        self._last: str | None = None
        self._low = depth  # change points lower a thread to depth-1, depth-2, ... 1

    def _prio(self, name: str) -> int:
        prio = self._priority.get(name)
        if prio is None:
            # Initial priorities lie above every change-point priority.
            prio = self._priority[name] = self.depth + self._rng.randrange(1 << 30)
        return prio

    def choose(self, kind: ChoiceKind, options: Sequence[str]) -> int:
        if kind is ChoiceKind.FAULT:
            return 0 if self._rng.random() < 0.9 else 1 + self._rng.randrange(len(options) - 1)
        self._decisions += 1
        best = max(range(len(options)), key=lambda i: (self._prio(options[i]), -i))
        if self._changes and self._changes[0] == self._decisions:
            # A change point: the thread about to run drops below everyone.
            self._changes.pop(0)
            self._low -= 1
            self._priority[options[best]] = self._low
            best = max(range(len(options)), key=lambda i: (self._prio(options[i]), -i))
        self._last = options[best]
        return best

    def __repr__(self) -> str:
        return f"PCTChooser(seed={self.seed}, depth={self.depth})"
