"""The simulation's random number generator: seeded, portable, replayable.

A :class:`random.Random` whose core generator is SplitMix64 (Steele, Lea &
Flood 2014), written out here so that the same seed yields the same numbers
on every platform and every Python version: ``random.Random``'s own Mersenne
Twister seeding has changed between releases for some argument types, and
ours must not. All the derived methods (``randrange``, ``choice``,
``shuffle``, ``uniform`` ...) come from :class:`random.Random` and are built
on :meth:`getrandbits` and :meth:`random`, so they inherit the determinism.

Every 64-bit draw goes through :meth:`SimRandom._next64`, the one door the
replay layer hooks to record or play draws (QEMU's EVENT_RANDOM).
"""

from __future__ import annotations

import random as _stdlib_random
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["SimRandom"]

_MASK64 = (1 << 64) - 1


class SimRandom(_stdlib_random.Random):
    """Deterministic RNG; also usable with ``hypothesis.register_random``."""

    def __init__(self, seed: int = 0) -> None:
        self._state = 0
        self.draw_hook: Callable[[int], int] | None = None
        super().__init__(seed)

    def seed(self, a: Any = 0, version: int = 2) -> None:
        if not isinstance(a, int):
            raise TypeError(f"SimRandom is seeded with an int, not {type(a).__name__}")
        self._state = a & _MASK64
        self.gauss_next = None

    def getstate(self) -> tuple[Any, ...]:
        # gauss() keeps its second value between calls: part of the state.
        return ("splitmix64", self._state, self.gauss_next)

    def setstate(self, state: tuple[Any, ...]) -> None:
        if len(state) != 3 or state[0] != "splitmix64":
            raise ValueError("not a SimRandom state")
        self._state = int(state[1]) & _MASK64
        self.gauss_next = state[2]

    def _next64(self) -> int:
        self._state = z = (self._state + 0x9E3779B97F4A7C15) & _MASK64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        z ^= z >> 31
        hook = self.draw_hook
        return z if hook is None else hook(z)

    def randrange_each(self, sizes: Sequence[int]) -> list[int]:
        """``[self.randrange(n) for n in sizes]``, the same draws in one loop.

        ``randrange(n)`` is CPython's ``_randbelow_with_getrandbits``: the top
        ``n.bit_length()`` bits of a 64-bit draw, drawn again while not below
        ``n``. Written out here (the :meth:`_next64` arithmetic inlined), it
        costs a fraction of the four calls per draw, for a player checking a
        batch of random decisions (``RandomChooser.answers``). With a draw
        hook, or a size outside ``[1, 2**64)``, it is the calls themselves.
        """
        if self.draw_hook is not None or (sizes and not 1 <= min(sizes) <= max(sizes) <= _MASK64):
            return [self.randrange(n) for n in sizes]
        state = self._state
        out: list[int] = []
        append = out.append
        for n in sizes:
            shift = 64 - n.bit_length()
            while True:
                state = z = (state + 0x9E3779B97F4A7C15) & _MASK64
                z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
                z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
                r = (z ^ (z >> 31)) >> shift
                if r < n:
                    break
            append(r)
        self._state = state
        return out

    def random(self) -> float:
        return (self._next64() >> 11) * (1.0 / 9007199254740992.0)

    def getrandbits(self, k: int) -> int:
        if k < 0:
            raise ValueError("number of bits must be non-negative")
        if k <= 64:
            return self._next64() >> (64 - k) if k else 0
        out = 0
        for shift in range(0, k, 64):
            out |= self._next64() << shift
        return out & ((1 << k) - 1)

    def randbytes(self, n: int) -> bytes:
        return self.getrandbits(n * 8).to_bytes(n, "little")
