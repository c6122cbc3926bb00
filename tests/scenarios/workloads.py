"""Scenarios that exercise each source of nondeterminism the replay layer records.

* :func:`timers_only`: one thread, timers and bottom halves: no decision at all.
* :func:`threaded`: threads of control, IOThreads and the thread pool, with
  preemption points and virtual sleeps, so a ``random:SEED`` chooser has
  THREAD decisions to make.
* :func:`clocks_and_random`: timers and a thread of control that read the
  HOST and VIRTUAL_RT clocks and draw from ``sim.random``, and let what they
  read decide what happens next.
* :func:`many_decisions`: threads of control that do nothing but yield, for
  measuring what a THREAD decision costs in the trace.
* :func:`console`: a scripted peer typing into a socket pair (INPUT records).

Each writes what it saw into :data:`OBSERVED` (cleared when the scenario is
set up), so a test can compare what two runs did, not only their traces.
"""

from __future__ import annotations

from evloop import SCALE_MS, SCALE_US, ClockType, Simulation

#: What the last run of a scenario in this module observed, in order.
OBSERVED: list[object] = []


def timers_only(sim: Simulation, *, ticks: int = 50, period_ns: int = SCALE_MS) -> None:
    """A periodic REALTIME timer that schedules a bottom half on every tick."""
    OBSERVED.clear()
    ctx = sim.main_loop.aio_context

    def tick() -> None:
        OBSERVED.append(("tick", sim.now_ns))
        ctx.bh_schedule_oneshot(lambda: OBSERVED.append(("bh", sim.now_ns)), name="after-tick")
        if len(OBSERVED) < 2 * ticks - 1:
            timer.mod_ns(sim.now_ns + period_ns)

    timer = sim.main_loop.timer_new_ns(ClockType.REALTIME, tick, name="tick")
    timer.mod_ns(period_ns)


def threaded(sim: Simulation, *, workers: int = 3, rounds: int = 8, iothreads: int = 2) -> None:
    """Workers hand requests to IOThreads, whose thread pools complete them to the main loop."""
    OBSERVED.clear()
    main_ctx = sim.main_loop.aio_context
    ios = [sim.iothread(f"io{i}") for i in range(iothreads)]

    def submit(worker: int, n: int) -> None:
        io = ios[(worker + n) % len(ios)]

        def work() -> int:
            sim.sleep((1 + (worker * 7 + n * 3) % 5) * SCALE_US)
            sim.yield_now()
            return worker * 1000 + n

        def done(result: object) -> None:
            OBSERVED.append(("done", io.name, result, sim.now_ns))
            main_ctx.bh_schedule_oneshot(
                lambda: OBSERVED.append(("completed", result)), name="complete"
            )

        io.ctx.thread_pool_submit(work, done)

    def body(worker: int) -> None:
        for n in range(rounds):
            OBSERVED.append(("round", worker, n, sim.now_ns))
            ios[worker % len(ios)].ctx.bh_schedule_oneshot(
                lambda n=n: submit(worker, n), name=f"submit-{worker}"
            )
            if n % 2:
                sim.yield_now()
            else:
                sim.sleep(SCALE_US)

    threads = [sim.thread(f"worker{w}", lambda w=w: body(w)) for w in range(workers)]

    def coordinator() -> None:
        for t in threads:
            t.join()
        sim.sleep(SCALE_MS)
        for io in ios:
            io.stop()

    sim.thread("coordinator", coordinator)


def clocks_and_random(sim: Simulation, *, ticks: int = 12) -> None:
    """Timers and a thread whose behaviour depends on HOST / VIRTUAL_RT reads and random draws."""
    OBSERVED.clear()
    ml = sim.main_loop

    def tick() -> None:
        host = sim.clock.get_ns(ClockType.HOST)
        vrt = sim.clock.get_ns(ClockType.VIRTUAL_RT)
        draw = sim.random.randrange(1, 5)
        OBSERVED.append(("tick", host, vrt, draw, sim.random.random()))
        if sum(1 for o in OBSERVED if o[0] == "tick") < ticks:
            timer.mod_ns(sim.now_ns + draw * SCALE_MS + (host + vrt) % 997)

    timer = ml.timer_new_ns(ClockType.REALTIME, tick, name="random-tick")
    timer.mod_ns(SCALE_MS)

    def host_timer() -> None:
        OBSERVED.append(
            ("host-timer", sim.clock.get_ns(ClockType.HOST), sim.random.getrandbits(130))
        )

    ml.timer_new_ns(ClockType.HOST, host_timer, name="host-timer").mod_ns(
        sim.clock.get_ns(ClockType.HOST) + 3 * SCALE_MS
    )

    def sampler() -> None:
        for _ in range(ticks):
            sim.sleep(sim.random.randrange(1, 4) * SCALE_MS)
            OBSERVED.append(
                ("sample", sim.clock.get_ns(ClockType.VIRTUAL_RT), sim.random.randbytes(3))
            )
            if sim.random.random() < 0.5:
                sim.yield_now()

    sim.thread("sampler", sampler)
    OBSERVED.append(("setup", sim.random.getrandbits(64)))


def many_decisions(sim: Simulation, *, threads: int = 4, yields: int = 1000) -> None:
    """Threads of control that only yield: a THREAD decision at nearly every step."""
    OBSERVED.clear()

    def body(name: str) -> None:
        for _ in range(yields):
            OBSERVED.append(name)
            sim.yield_now()

    for i in range(threads):
        sim.thread(f"t{i}", lambda i=i: body(f"t{i}"))


def forever(sim: Simulation, *, period_ns: int = SCALE_MS) -> None:
    """A timer that re-arms itself and draws a random number, forever: only a limit stops it."""

    def tick() -> None:
        sim.random.getrandbits(64)
        timer.mod_ns(sim.now_ns + period_ns)

    timer = sim.main_loop.timer_new_ns(ClockType.VIRTUAL, tick, name="tick")
    timer.mod_ns(period_ns)


def console(sim: Simulation, *, text: bytes = b"abc", gap_ns: int = 2 * SCALE_MS) -> None:
    """A typist on a socket pair; the serial handler records and echoes what arrives."""
    OBSERVED.clear()
    fds = sim.fds
    guest, host = fds.socketpair()
    typist = sim.peer(host, name="typist")
    for i, byte in enumerate(text):
        typist.send(bytes([byte]), at_ns=(i + 1) * gap_ns)

    def serial_read() -> None:
        data = fds.read(guest, 64)
        OBSERVED.append(("read", data, sim.now_ns))
        if not data:
            sim.main_loop.set_fd_handler(guest, None, None)

    sim.main_loop.set_fd_handler(guest, serial_read, None)


def with_params(
    sim: Simulation,
    *,
    delays_ms: list[int] | None = None,
    label: str = "t",
    blob: bytes | bytearray = b"",
) -> None:
    """Timers at the given delays; what the parameters looked like goes into OBSERVED."""
    OBSERVED.clear()
    OBSERVED.append(("params", repr(delays_ms), repr(label), repr(blob)))
    delays = [*(delays_ms if delays_ms is not None else [1, 2]), len(blob)]
    for i, delay in enumerate(delays):

        def fire(i: int = i) -> None:
            OBSERVED.append((f"{label}{i}", sim.now_ns))

        sim.main_loop.timer_new_ns(ClockType.REALTIME, fire, name=f"{label}{i}").mod_ns(
            (delay + 1) * SCALE_MS
        )


def extends_a_list_param(sim: Simulation, *, delays_ms: list[int] | None = None) -> None:
    """Uses a list parameter as a list, as plain user code does."""
    OBSERVED.clear()
    delays = (delays_ms if delays_ms is not None else [1]) + [5]
    for i, delay in enumerate(delays):
        sim.main_loop.timer_new_ns(
            ClockType.REALTIME, lambda i=i: OBSERVED.append(i), name=f"d{i}"
        ).mod_ns(delay * SCALE_MS)
