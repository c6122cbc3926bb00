"""Input from outside the simulated system: a scripted peer on a virtual fd.

A scenario, a test or a fuzzer plays the world outside the system under test
(a typist on a serial console, a client on a socket) through a
:class:`ScriptedPeer`: it holds one end of a virtual pipe or socket pair, and
its bytes arrive at chosen virtual times. Arrival happens at the scheduler's
scheduling points, never in the middle of a callback; when several inputs are
due at the same instant, which comes first is a decision of the chooser (so a
fuzzer can reorder them and a trace records the order).

A peer whose bytes do not fit (the system is not reading) keeps the rest and
delivers it as room appears, as a blocking writer would. The replay layer
records each delivery, with its data and its position, as QEMU records
character-device input (ASYNC_CHAR_READ).
"""

from __future__ import annotations

import select
from collections.abc import Callable
from dataclasses import dataclass, field

from ..loop.fds import FdTable

__all__ = ["ExternalEvent", "ScriptedPeer"]


@dataclass(slots=True, eq=False)
class ExternalEvent:
    """One scheduled action of a peer: bytes to send, or closing its end."""

    peer: ScriptedPeer
    at_ns: int
    data: bytes = b""
    close: bool = False
    sent: int = field(default=0)

    def describe(self) -> str:
        if self.close:
            return f"{self.peer.name}: close"
        return f"{self.peer.name}: {len(self.data) - self.sent} bytes"


class ScriptedPeer:
    """The outside end of a virtual fd, driven by a script of timed sends.

    Create it with :meth:`Simulation.peer`.
    """

    def __init__(
        self,
        fds: FdTable,
        fd: int,
        name: str,
        schedule: Callable[[int, ExternalEvent], None],
        now: Callable[[], int],
    ) -> None:
        self.fds = fds
        self.fd = fd
        self.name = name
        self._schedule = schedule
        self._now = now
        self.delivered = 0
        self.closed = False
        #: Creation number within the simulation (digest identity).
        self.uid = 0

    def send(self, data: bytes, at_ns: int | None = None) -> None:
        """Deliver ``data`` into the fd at virtual time ``at_ns`` (default: now)."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"peer {self.name!r} sends bytes, not {type(data).__name__}")
        at = self._when(at_ns, "send")
        self._schedule(at, ExternalEvent(self, at, bytes(data)))

    def close(self, at_ns: int | None = None) -> None:
        """Close the peer's end at ``at_ns`` (the system then reads EOF)."""
        at = self._when(at_ns, "close")
        self._schedule(at, ExternalEvent(self, at, close=True))

    def received(self, n: int = 1 << 20) -> bytes:
        """Read what the system wrote to the peer (socket peers), without blocking."""
        out = bytearray()
        while len(out) < n:
            if not self.fds.mask(self.fd) & select.POLLIN:
                break
            chunk = self.fds.read(self.fd, n - len(out))
            if not chunk:
                break
            out += chunk
        return bytes(out)

    def _when(self, at_ns: int | None, verb: str) -> int:
        now = self._now()
        if at_ns is None:
            return now
        if at_ns < now:
            raise ValueError(
                f"peer {self.name!r}: cannot {verb} at t={at_ns} ns, which is in the past "
                f"(now is t={now} ns)"
            )
        return at_ns

    def deliver(self, event: ExternalEvent) -> bool:
        """Apply ``event`` now; False if bytes remain because the fd is full."""
        if self.closed:
            return True
        if event.close:
            self.closed = True
            self.fds.close(self.fd)
            return True
        view = event.data
        while event.sent < len(view):
            try:
                n = self.fds.write(self.fd, view[event.sent :])
            except BlockingIOError:
                return False
            except BrokenPipeError:
                event.sent = len(view)  # the system closed its end: the bytes are lost
                return True
            event.sent += n
            self.delivered += n
        return True

    def __repr__(self) -> str:
        return f"<ScriptedPeer {self.name!r} fd={self.fd} delivered={self.delivered}>"
