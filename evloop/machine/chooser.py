"""The single door every scheduling decision goes through.

Wherever QEMU's rules leave the order open (which runnable thread of control
takes the next turn, which of several simultaneous external events comes
first, whether to inject a fault), the simulation asks one :class:`Chooser`
for an index into a list of options. The options are listed in a stable,
documented order (FIFO: the longest waiting first), so the first option is
always QEMU's own order. Seeded, fuzzed, shrunk and replayed runs differ only
in which chooser answers; a trace records the answers.

A decision with a single option is never asked: there is nothing to choose.

A chooser that needs to see the simulation (which thread of control is
running, to count preemptions) may define ``attach(sim)``: the simulation
calls it once, when it is built.

A chooser whose every decision depends on nothing but how many options it
is offered (FIFO, a random walk) may define ``answers(sizes)``: the choices
it would make, in order, if asked decisions among ``sizes[0]``,
``sizes[1]``, ... options, advancing as those calls would. A player checks
a batch of recorded decisions against it at once instead of asking it each
decision again (replay/session/player.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..seams import ChoiceKind
from .rng import SimRandom

if TYPE_CHECKING:
    from .simulation import Simulation

__all__ = ["ChoicePoint", "FifoChooser", "PCTChooser", "RandomChooser", "SystematicChooser"]


class FifoChooser:
    """QEMU's own order: always the first option (the longest waiting)."""

    __slots__ = ()

    def choose(self, kind: ChoiceKind, options: Sequence[str]) -> int:
        return 0

    def answers(self, sizes: Sequence[int]) -> list[int]:
        """The first option, every time (see the module docstring)."""
        return [0] * len(sizes)

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

    def answers(self, sizes: Sequence[int]) -> list[int]:
        """What :meth:`choose` would answer decisions among ``sizes`` options, in order."""
        return self._rng.randrange_each(sizes)

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

    __slots__ = (
        "_changes", "_decisions", "_last", "_low", "_priority", "_rng", "depth", "horizon", "seed",
    )

    def __init__(self, seed: int = 0, depth: int = 3, horizon: int = 1000) -> None:
        if depth < 1:
            raise ValueError(f"PCT depth must be at least 1, not {depth}")
        if horizon < 1:
            raise ValueError(f"PCT horizon must be at least 1, not {horizon}")
        self.seed = seed
        self.depth = depth
        self.horizon = horizon
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


@dataclass(frozen=True, slots=True)
class ChoicePoint:
    """One decision a :class:`SystematicChooser` answered: what was asked, what it chose."""

    kind: ChoiceKind
    #: How many options there were.
    options: int
    #: The running thread's index among a THREAD decision's options, or -1
    #: when it cannot continue (it blocked or finished) or the decision is
    #: not about threads.
    running: int
    choice: int

    @property
    def default(self) -> int:
        """The choice that preempts nobody: the running thread, else the first option."""
        return self.running if self.running >= 0 else 0

    def costs(self, choice: int) -> int:
        """Preemptions taking ``choice`` here costs: 1 to switch away from a thread
        that could continue, else 0."""
        return 1 if 0 <= self.running != choice else 0

    def order(self) -> list[int]:
        """The order a depth-first search tries the options in: the default first."""
        first = self.default
        return [first, *(i for i in range(self.options) if i != first)]


class SystematicChooser:
    """One run of a systematic (depth-first) exploration: a prefix, then no preemption.

    It answers the first ``len(prefix)`` decisions from ``prefix`` and every
    later one with :attr:`ChoicePoint.default`: the running thread keeps the
    turn whenever it can continue, otherwise the first option (FIFO). Every
    decision is logged (:attr:`log`) with the running thread's position, so
    an explorer can count the run's preemptions and pick the next prefix.

    A *preemption* is a THREAD decision that picks another thread while the
    running one is among the options (it reached a preemption point, a wait
    with a zero timeout, or a wait that is already over), or a PREEMPT
    decision (fine preemption) that picks any option but 0. It needs to know
    the running thread, which the simulation gives through :meth:`attach`.

    Past ``max_decisions`` decisions the chooser answers 0 (FIFO) and stops
    logging (:attr:`beyond` counts them): a thread that spins on
    ``yield_now`` while nobody preempts it would otherwise never finish.
    A prefix answer out of range for its decision means the run did not
    repeat the one the prefix came from: :attr:`diverged_at` names it and
    the chooser answers 0.
    """

    spec = "systematic"

    def __init__(self, prefix: Sequence[int] = (), *, max_decisions: int = 10_000) -> None:
        if max_decisions < 1:
            raise ValueError(f"max_decisions must be at least 1, not {max_decisions}")
        self.prefix = tuple(prefix)
        self.max_decisions = max_decisions
        self.log: list[ChoicePoint] = []
        self.beyond = 0
        self.diverged_at: int | None = None
        self._sim: Simulation | None = None

    def attach(self, sim: Simulation) -> None:
        self._sim = sim

    def _running(self, kind: ChoiceKind, options: Sequence[str]) -> int:
        if kind is ChoiceKind.PREEMPT:
            return 0  # a preemption point lists the running thread first
        sim = self._sim
        if kind is not ChoiceKind.THREAD or sim is None:
            return -1
        name = sim.current_thread.name
        for i, option in enumerate(options):  # thread names are unique
            if option == name:
                return i
        return -1

    def choose(self, kind: ChoiceKind, options: Sequence[str]) -> int:
        i = len(self.log)
        if i >= self.max_decisions:
            self.beyond += 1
            return 0
        running = self._running(kind, options)
        if i < len(self.prefix):
            choice = self.prefix[i]
            if not 0 <= choice < len(options):
                if self.diverged_at is None:
                    self.diverged_at = i
                choice = 0
        else:
            choice = running if running >= 0 else 0
        self.log.append(ChoicePoint(kind, len(options), running, choice))
        return choice

    @property
    def preemptions(self) -> int:
        """How many preemptions this run made so far."""
        return sum(d.costs(d.choice) for d in self.log)

    def __repr__(self) -> str:
        return f"SystematicChooser({len(self.prefix)} prefix decisions)"
