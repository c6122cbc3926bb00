"""IOThreads: a thread of control running its own AioContext (QEMU ``iothread.c``).

The loop is ``while running: ctx.poll(True)``. :meth:`IOThread.stop` asks it
to stop the way ``iothread_stop`` does, with a oneshot bottom half on the
IOThread's own context, so the request is ordered with everything else
scheduled there; :meth:`IOThread.join` then waits for the thread to end.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..loop.aio import AioContext

if TYPE_CHECKING:
    from .scheduler import ThreadOfControl

__all__ = ["IOThread"]


class IOThread:
    """Create it with :meth:`Simulation.iothread`."""

    def __init__(self, name: str, ctx: AioContext) -> None:
        self.name = name
        self.ctx = ctx
        self.running = True
        self.thread: ThreadOfControl | None = None

    def run(self) -> None:
        """The thread's body (``iothread_run``)."""
        while self.running:
            self.ctx.poll(True)

    def stop(self) -> None:
        """Ask the loop to stop after its current iteration, from any thread of control."""
        self.ctx.bh_schedule_oneshot(self._stop_bh, name=f"{self.name}:stop")

    def _stop_bh(self) -> None:
        self.running = False

    def join(self, timeout_ns: int = -1) -> bool:
        """Wait for the thread to end; True if it has."""
        assert self.thread is not None
        return self.thread.join(timeout_ns)

    def __repr__(self) -> str:
        return f"<IOThread {self.name!r} running={self.running}>"
