"""A small QEMU-like machine, built only on evloop's public API.

* a serial console: a character backend on a virtual socket pair, registered
  with ``MainLoop.set_fd_handler`` (so on ``iohandler_ctx``), fed by an
  external typist (a scripted peer) and echoing what it reads;
* an RTC-like device: a periodic VIRTUAL-clock timer counting ticks;
* a block device: requests are handed to an IOThread, which runs them on its
  thread pool and completes each back into the main loop with a bottom half
  (QEMU's thread-pool completion pattern). With ``coroutines=True`` each
  request is handled by a coroutine on the IOThread instead, as QEMU's block
  layer does: it takes the driver's ``CoMutex``, submits the work to the
  thread pool and yields until the pool's completion wakes it
  (``thread_pool_submit_co``), then completes into the main loop;
* a vCPU-like thread of control running a guest block driver: it submits a
  request, waits for the device to accept it, and if the request has not
  completed within its I/O timeout, resets the device and retries.

The ordering bug. The driver's timeout equals the disk's latency, so at that
instant the vCPU and the block completion race. In QEMU's own order (FIFO:
the longest-waiting thread first) the completion wins every time and the
machine is fine. In any order where the vCPU's timeout runs first, the device
is reset while the request is in flight; the reset does not drain in-flight
I/O (QEMU's virtio-blk reset calls ``blk_drain`` for exactly this reason), so
the completion arrives for a request whose buffers the reset freed: a
use-after-free, caught here by the device's invariant check. ``fixed=True``
makes the reset drain in-flight requests first.

``scenario(sim, ...)`` sets the machine up on a :class:`~evloop.Simulation`;
``main()`` runs it and prints what it dispatched.
"""

from __future__ import annotations

import select
from dataclasses import dataclass, field
from functools import partial

from evloop import (
    SCALE_MS,
    ClockType,
    CoMutex,
    IOThread,
    Simulation,
    aio_co_schedule,
    aio_co_wake,
    qemu_coroutine_create,
    qemu_coroutine_self,
    qemu_coroutine_yield,
)

#: How long the "disk" takes per request, and the guest driver's I/O timeout.
DISK_LATENCY_NS = 5 * SCALE_MS
DRIVER_TIMEOUT_NS = 5 * SCALE_MS


class BlockDevice:
    """A block device model: submit from the vCPU, complete in the main loop."""

    def __init__(
        self, sim: Simulation, io: IOThread, *, drain_on_reset: bool, coroutines: bool = False
    ) -> None:
        self.sim = sim
        self.io = io
        self.drain_on_reset = drain_on_reset
        self.coroutines = coroutines
        #: The driver's lock, held by a request coroutine while it runs (``s->lock``).
        self.lock = CoMutex()
        self.inflight: dict[int, str] = {}
        self.completed: list[int] = []
        self.resets = 0
        self.accepted = sim.event("blk-accepted")
        self.idle = sim.event("blk-idle")
        self.idle.set()

    # vCPU context (device emulation runs in the vCPU thread, as in QEMU)
    def submit(self, req: int) -> None:
        self.inflight[req] = f"buffer-{req}"
        self.idle.clear()
        if self.coroutines:
            co = qemu_coroutine_create(partial(self._co_request, req), name=f"blk-request-{req}")
            aio_co_schedule(self.io.ctx, co)
            return
        self.io.ctx.bh_schedule_oneshot(partial(self._start, req), name="blk-submit")

    def reset(self) -> None:
        self.resets += 1
        if self.drain_on_reset:
            self.idle.wait()  # blk_drain: wait for in-flight requests
        self.inflight.clear()  # free every request's buffers
        self.idle.set()

    # IOThread context
    def _start(self, req: int) -> None:
        self.io.ctx.thread_pool_submit(partial(self._work, req), partial(self._done, req))

    def _co_request(self, req: int) -> None:
        """A request, as a coroutine on the IOThread (``blk_co_preadv`` and below)."""
        with self.lock:
            result = self._thread_pool_submit_co(partial(self._work, req))
        self._done(req, result)

    def _thread_pool_submit_co(self, fn: partial[str]) -> object:
        """Run ``fn`` on the pool; the coroutine yields until the completion wakes it."""
        co = qemu_coroutine_self()
        assert co is not None
        box: list[object] = []

        def wake(result: object) -> None:
            box.append(result)
            aio_co_wake(co)

        self.io.ctx.thread_pool_submit(fn, wake)
        qemu_coroutine_yield()
        return box[0]

    def _done(self, req: int, result: object) -> None:
        self.sim.main_loop.aio_context.bh_schedule_oneshot(
            partial(self._complete, req, result), name="blk-complete"
        )

    # worker thread context
    def _work(self, req: int) -> str:
        self.accepted.set()
        self.sim.sleep(DISK_LATENCY_NS)
        return f"data-{req}"

    # main loop context
    def _complete(self, req: int, result: object) -> None:
        buffer = self.inflight.pop(req, None)
        if buffer is None:
            raise AssertionError(
                f"blk: request {req} completed after a device reset freed its buffers "
                "(use after free: the reset did not drain in-flight I/O)"
            )
        self.completed.append(req)
        if not self.inflight:
            self.idle.set()


@dataclass
class Machine:
    sim: Simulation
    blk: BlockDevice
    console_out: bytearray = field(default_factory=bytearray)
    rtc_ticks: int = 0
    timeouts: int = 0


def scenario(
    sim: Simulation,
    *,
    requests: int = 3,
    text: bytes = b"hello\n",
    fixed: bool = False,
    coroutines: bool = False,
) -> Machine:
    """The bundled machine: serial console, RTC, IOThread block device, one vCPU."""
    ml = sim.main_loop
    fds = sim.fds
    io = sim.iothread("iothread0")
    m = Machine(sim, BlockDevice(sim, io, drain_on_reset=fixed, coroutines=coroutines))

    # Serial console: the guest side of a socket pair, the typist on the other end.
    guest, host = fds.socketpair()
    typist = sim.peer(host, name="typist")
    for i, byte in enumerate(text):
        typist.send(bytes([byte]), at_ns=20 * SCALE_MS + i * 3 * SCALE_MS)

    def serial_read() -> None:
        data = fds.read(guest, 64)
        m.console_out += data
        if data and fds.mask(guest) & select.POLLOUT:
            fds.write(guest, data)  # echo

    ml.set_fd_handler(guest, serial_read, None)

    # RTC: a 10 ms periodic VIRTUAL timer, five ticks from t=20 ms.
    def rtc_tick() -> None:
        m.rtc_ticks += 1
        if m.rtc_ticks < 5:
            rtc.mod_ns(sim.clock.get_ns(ClockType.VIRTUAL) + 10 * SCALE_MS)

    rtc = ml.timer_new_ns(ClockType.VIRTUAL, rtc_tick, name="rtc-tick")
    rtc.mod_ns(20 * SCALE_MS)

    # The guest's block driver on a vCPU.
    def vcpu() -> None:
        blk = m.blk
        for req in range(requests):
            blk.accepted.clear()
            blk.submit(req)
            blk.accepted.wait()
            sim.sleep(DRIVER_TIMEOUT_NS)
            if req not in blk.completed:  # I/O timeout: reset the device and go on
                m.timeouts += 1
                blk.reset()
        io.stop()

    sim.thread("vcpu0", vcpu)
    return m


def main() -> None:
    with Simulation(seed=0, log=True) as sim:
        m = scenario(sim)
        result = sim.run()
        assert sim.log is not None
        for ev in sim.log:
            print(
                f"step {ev.step:4d}  t={ev.time_ns / 1e6:8.3f} ms  {ev.thread:22s} "
                f"{ev.context:12s} {ev.kind:10s} {ev.name}"
            )
        print(
            f"\nstopped: {result.reason.value} after {result.steps} steps at "
            f"t={result.time_ns / 1e6:.3f} ms; console got {bytes(m.console_out)!r}, "
            f"rtc ticked {m.rtc_ticks} times, block requests completed: {m.blk.completed}"
        )


if __name__ == "__main__":
    main()
