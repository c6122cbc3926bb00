"""Workload 7 on real OS threads: N threads taking a ``replay.ReplayMutex``.

:class:`MutexGrants` runs them recorded and played; ``replay`` is imported
lazily (:func:`bench.workloads.load_replay`), as every evreplay workload is.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from types import ModuleType

from .harness import BenchError, Run
from .workloads import load_replay

__all__ = ["MutexGrants"]

#: How long a benchmark waits for its real threads before calling it a hang.
JOIN_TIMEOUT_S = 600.0


# -- workload 7: the replay mutex, on real threads ---------------------------------------
#
# QEMU's threads hold the replay mutex while they run and drop it only around
# blocking waits; which thread gets it next is up to the OS, so each grant is
# logged (RECORD) and followed (PLAY). Here each of N real threads takes the
# mutex, counts, drops it and calls time.sleep(0), the stand-in for a blocking
# wait: it releases the GIL and lets the OS pick who goes next, so the mutex
# really changes hands (without it one thread would re-take it for a whole GIL
# switch interval). A PLAY run follows the grants of the last RECORD run.


@dataclass
class MutexGrants:
    """``n_threads`` real threads taking a ``ReplayMutex`` ``total // n_threads`` times each.

    :meth:`record` and :meth:`play` are prepares; their runs return the number
    of grants. A play follows the grants of the last recording (made untimed
    in its prepare if there is none yet). ``handoffs`` keeps, per mode, the
    share of each run's grants that went to another thread than the one before.
    """

    n_threads: int
    total: int
    handoffs: dict[str, list[float]] = field(default_factory=dict)
    _grants: list[int] | None = None

    @property
    def per_thread(self) -> int:
        return self.total // self.n_threads

    def record(self) -> Run:
        return self._run(_MutexThreads(load_replay(), self.n_threads, self.per_thread, None))

    def play(self) -> Run:
        replay = load_replay()
        if self._grants is None:
            recording = _MutexThreads(replay, self.n_threads, self.per_thread, None)
            recording.run()
            self._grants = recording.mutex.grants
        return self._run(_MutexThreads(replay, self.n_threads, self.per_thread, self._grants))

    def _run(self, threads: _MutexThreads) -> Run:
        def run() -> int:
            count = threads.run()
            log = threads.mutex.grants
            if threads.recording:
                self._grants = log
            changes = sum(1 for a, b in itertools.pairwise(log) if a != b)
            share = self.handoffs.setdefault("record" if threads.recording else "play", [])
            share.append(changes / max(len(log) - 1, 1))
            return count

        return run


class _MutexThreads:
    """N registered threads, started and parked on an event until :meth:`run`."""

    def __init__(
        self, replay: ModuleType, n_threads: int, per_thread: int, grants: list[int] | None
    ) -> None:
        self.recording = grants is None
        mode = replay.ReplayMode.RECORD if self.recording else replay.ReplayMode.PLAY
        self.mutex = replay.ReplayMutex(mode, grants)
        self.per_thread = per_thread
        self.count = 0
        self.errors: list[BaseException] = []
        self._go = threading.Event()
        self._threads = [
            threading.Thread(target=self._body, name=f"bench-mutex-{i}", daemon=True)
            for i in range(n_threads)
        ]
        # Registered from here, in order, before any starts: the stable indices
        # the grants name never depend on the OS.
        self._indices = [self.mutex.register(t.name, t) for t in self._threads]
        for thread in self._threads:
            thread.start()

    def _body(self) -> None:
        mutex = self.mutex
        mutex.bind(self._indices[self._threads.index(threading.current_thread())])
        self._go.wait()
        try:
            for _ in range(self.per_thread):
                with mutex:
                    self.count += 1
                time.sleep(0)
            mutex.finished()
        except BaseException as exc:
            self.errors.append(exc)

    def run(self) -> int:
        self._go.set()
        deadline = time.monotonic() + JOIN_TIMEOUT_S
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0.0))
            if thread.is_alive():
                raise BenchError(f"{thread.name} still runs after {JOIN_TIMEOUT_S:g} s")
        if self.errors:
            raise BenchError(f"a mutex thread failed: {self.errors[0]!r}") from self.errors[0]
        return self.count
