"""What a simulation tells the replay layer, beyond the chooser, clock and RNG seams.

``evloop`` never imports ``replay``: the replay layer implements this protocol
and passes it to :class:`~evloop.Simulation`, as QEMU's ``util/`` calls
``replay_*`` functions that do nothing when replay is off. Every method is
called from the thread of control holding the turn, at a deterministic point.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["SimulationHooks"]


class SimulationHooks(Protocol):
    def checkpoint(self, step: int) -> None:
        """Every ``checkpoint_interval`` steps, after the step has been counted."""
        ...

    def input(self, channel: str, data: bytes, close: bool) -> None:
        """External input was delivered (bytes, or the peer closed), before its step."""
        ...

    def shutdown(self, cause: str) -> None:
        """A shutdown was requested (the first request of a run only)."""
        ...
