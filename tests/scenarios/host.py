"""Host-mode scenarios: programs that meet real peers when recorded (``tests/test_host.py``).

* :func:`echo` reads every channel it is given, upper-cases what comes in on a
  socket back to the peer, closes a channel at EOF, and ticks a REALTIME timer
  while any channel is open; a HOST timer armed from a HOST read fires once.
  With :data:`EXTRA_BH` set it runs one more bottom half per read (a changed
  program, which a play must report as a divergence).
* :func:`ticks` has no channel at all: real time only.
* :func:`stuck` waits forever inside a callback: a deadlock once input is over.

Each appends what it saw to :data:`OBSERVED` and keeps its simulation in
:data:`LAST`, so a test can compare a recording with its play.
"""

from __future__ import annotations

from collections.abc import Callable

from evloop import SCALE_MS, ClockType
from replay.host.simulation import HostSimulation

OBSERVED: list[tuple[object, ...]] = []
#: The simulation of the last run, by role ("sim").
LAST: dict[str, HostSimulation] = {}
#: When True, :func:`echo` schedules one more bottom half for every read.
EXTRA_BH = False


def echo(sim: HostSimulation, *, tick_ms: int = 4) -> None:
    OBSERVED.clear()
    LAST["sim"] = sim
    fds = sim.fds
    ml = sim.main_loop
    open_channels = dict(sim.inputs)

    def reader(name: str, fd: int) -> Callable[[], None]:
        def on_read() -> None:
            data = fds.read(fd, 4096)
            OBSERVED.append(("read", name, data, sim.now_ns))
            if EXTRA_BH:
                ml.aio_context.bh_schedule_oneshot(lambda: None, name="extra")
            if not data:
                ml.set_fd_handler(fd, None, None)
                fds.close(fd)
                del open_channels[name]
            elif fds.kind(fd) == "socket":
                fds.write(fd, data.upper())

        return on_read

    for name, fd in sorted(sim.inputs.items()):
        ml.set_fd_handler(fd, reader(name, fd), None)

    def tick() -> None:
        OBSERVED.append(("tick", sim.now_ns, sim.clock.get_ns(ClockType.VIRTUAL_RT)))
        if open_channels:
            timer.mod_ns(sim.now_ns + tick_ms * SCALE_MS)

    timer = ml.timer_new_ns(ClockType.REALTIME, tick, name="tick")
    timer.mod_ns(tick_ms * SCALE_MS)

    def host_tick() -> None:
        OBSERVED.append(("host-timer", sim.now_ns, sim.clock.get_ns(ClockType.HOST)))

    ml.timer_new_ns(ClockType.HOST, host_tick, name="host-timer").mod_ns(
        sim.clock.get_ns(ClockType.HOST) + 2 * SCALE_MS
    )


def ticks(sim: HostSimulation, *, count: int = 5, tick_ms: int = 2) -> None:
    OBSERVED.clear()
    LAST["sim"] = sim

    def tick() -> None:
        OBSERVED.append(("tick", sim.now_ns, sim.random.getrandbits(16)))
        if len(OBSERVED) < count:
            timer.mod_ns(sim.now_ns + tick_ms * SCALE_MS)

    timer = sim.main_loop.timer_new_ns(ClockType.REALTIME, tick, name="tick")
    timer.mod_ns(tick_ms * SCALE_MS)


def stuck(sim: HostSimulation) -> None:
    """Reads its channel to EOF, then polls a context nothing can ever wake."""
    OBSERVED.clear()
    LAST["sim"] = sim
    fds = sim.fds
    ml = sim.main_loop
    (fd,) = sim.inputs.values()
    lonely = sim.new_aio_context("lonely")

    def on_read() -> None:
        data = fds.read(fd, 4096)
        OBSERVED.append(("read", data))
        if not data:
            ml.set_fd_handler(fd, None, None)
            lonely.poll(True)

    ml.set_fd_handler(fd, on_read, None)


def fails_on(sim: HostSimulation, *, word: bytes = b"boom") -> None:
    """Reads its channel; the read that brings ``word`` fails (a bug found on a real peer)."""
    OBSERVED.clear()
    LAST["sim"] = sim
    fds = sim.fds
    (fd,) = sim.inputs.values()
    seen = bytearray()

    def on_read() -> None:
        data = fds.read(fd, 4096)
        OBSERVED.append(("read", data))
        seen.extend(data)
        if word in seen:
            raise ValueError(f"got {bytes(seen)!r} at t={sim.now_ns}")
        if not data:
            sim.main_loop.set_fd_handler(fd, None, None)

    sim.main_loop.set_fd_handler(fd, on_read, None)
