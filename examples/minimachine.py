"""A small QEMU-like machine, built only on evloop's public API.

* a serial console: a character backend on a virtual socket pair, registered
  with ``MainLoop.set_fd_handler`` (so on ``iohandler_ctx``), fed by an
  external typist (a scripted peer) and echoing what it reads;
* an RTC-like device: a periodic VIRTUAL-clock timer counting ticks;
* a block device: requests are handed to an IOThread, which runs them on the
  thread pool and completes each back into the main loop with a bottom half;
* a vCPU-like thread of control that submits block requests and reads the RTC.

``scenario(sim)`` sets the machine up on a :class:`~evloop.Simulation`;
``main()`` runs it and prints what it dispatched.
"""

from __future__ import annotations

import select
from dataclasses import dataclass, field

from evloop import SCALE_MS, ClockType, Simulation


@dataclass
class Machine:
    sim: Simulation
    console_out: bytearray = field(default_factory=bytearray)
    rtc_ticks: int = 0
    completed: list[int] = field(default_factory=list)


def scenario(sim: Simulation, *, requests: int = 3, text: bytes = b"hello\n") -> Machine:
    m = Machine(sim)
    ml = sim.main_loop
    fds = sim.fds

    # Serial console: the guest side of a socket pair, the typist on the other end.
    guest, host = fds.socketpair()
    typist = sim.peer(host, name="typist")
    for i, byte in enumerate(text):
        typist.send(bytes([byte]), at_ns=(i + 1) * 3 * SCALE_MS)

    def serial_read() -> None:
        data = fds.read(guest, 64)
        m.console_out += data
        if fds.mask(guest) & select.POLLOUT:
            fds.write(guest, data)  # echo

    ml.set_fd_handler(guest, serial_read, None)

    # RTC: a 10 ms periodic VIRTUAL timer for 50 ms.
    def rtc_tick() -> None:
        m.rtc_ticks += 1
        if m.rtc_ticks < 5:
            rtc.mod_ns(sim.clock.get_ns(ClockType.VIRTUAL) + 10 * SCALE_MS)

    rtc = ml.timer_new_ns(ClockType.VIRTUAL, rtc_tick, name="rtc-tick")
    rtc.mod_ns(10 * SCALE_MS)

    # Block device: requests go to an IOThread, work runs on its thread pool,
    # completion comes back to the main loop through a bottom half.
    io = sim.iothread("iothread0")

    def submit(req: int) -> None:
        def work() -> int:
            sim.sleep(2 * SCALE_MS)  # the "disk" takes 2 ms
            return req * 512

        def done(result: object) -> None:
            ml.aio_context.bh_schedule_oneshot(lambda: m.completed.append(req), name="blk-done")

        io.ctx.thread_pool_submit(work, done)

    def vcpu() -> None:
        for req in range(requests):
            io.ctx.bh_schedule_oneshot(lambda req=req: submit(req), name="blk-submit")
            sim.sleep(5 * SCALE_MS)
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
            f"rtc ticked {m.rtc_ticks} times, block requests completed: {m.completed}"
        )


if __name__ == "__main__":
    main()
