"""QEMU's wake-up races, as scenarios: each bug before its fix, and the fix.

Three bugs from the history of QEMU's AioContext wake-up protocol, found in
2014-2015 by hangs and crashes that tracing made vanish. Each scenario here
takes ``fixed`` (False: the code before the commit; True: the commit
applied), turns fine preemption on (``Simulation.set_preemption("fine")``,
``evloop/machine/preemption.py``) and runs the actors of the bug report:

* ``iothread``: an event loop that blocks in ``ppoll`` (``aio_poll(ctx, true)``
  in a loop, as the I/O thread or an IOThread does);
* ``vcpu0``: a thread calling ``aio_poll(ctx, false)`` on the same context
  once, as device emulation did under the BQL in 2015;
* ``worker``: a thread-pool worker completing requests with
  ``qemu_bh_schedule`` and waiting, with a timeout, for their bottom halves
  to run; then it stops the event loop the same way.

The races need the protocol *of their time*, not today's, so the context is
a model of QEMU 2.3/2.4's (:class:`Context2015`): ``notify_me``,
``dispatching`` and ``bh->scheduled`` are plain fields, each access preceded
by ``sim.preemption_point()``; the notifier is a real
:class:`~evloop.EventNotifier` on the simulation's eventfd (whose ``set`` and
``test_and_clear`` are themselves points in fine mode), and ``ppoll`` is a
real poll of the virtual fd table, which sleeps until the eventfd is
readable. As on Linux, a poller whose fd was readable for a moment but
cleared before it ran stays asleep.

* :func:`dispatching_race`, QEMU eabc977973 ("AioContext: fix broken
  ctx->dispatching optimization"): ``aio_notify`` skipped
  ``event_notifier_set`` while ``ctx->dispatching`` was set, one flag shared
  by every poller, so the vCPU's non-blocking poll made a worker skip the
  kick that the sleeping I/O thread needed. The fix counts blocking pollers
  in ``ctx->notify_me`` and kicks whenever one waits.
* :func:`test_and_clear_race`, QEMU 21a03d17f2 ("AioContext: fix broken
  placement of event_notifier_test_and_clear"): the notifier was cleared
  after the bottom halves ran, so a poll could clear a kick set for a BH
  scheduled after its BH phase, while another thread slept in ``ppoll``
  counting on that kick; the fix clears it right after ``ppoll``, before any
  event is processed.
* :func:`bh_ctx_race`, QEMU 924fe1293c ("aio: fix qemu_bh_schedule()
  bh->ctx race condition"): ``qemu_bh_schedule`` read ``bh->ctx`` after
  setting ``bh->scheduled``, when the event loop may already have run the BH
  and freed it; the fix reads it first.

``preemption="off"`` runs a scenario without fine preemption, where none of
the races can happen: every access of a turn is atomic.

Each of the two notify scenarios isolates its commit: they differ from their
fix only in that commit's change (the ``dispatching`` one clears the notifier
where 21a03d17f2 put it). A lost wake-up fails as the worker's timeout
(``AssertionError: lost wake-up``), a use after free where it happens.

:func:`today` runs the same actors on evloop's own loop (today's QEMU: the
``notified`` flag, ``aio_notify_accept``, one poller per context) to show
that it passes the same exploration.

PYTEST_DONT_REWRITE (its failure messages are the same under pytest as in ``replay``)
"""

from __future__ import annotations

import select
from collections.abc import Callable
from functools import partial
from typing import cast

from evloop import BH, SCALE_MS, EventNotifier, Simulation
from evloop.machine.simulation import Preemption

__all__ = [
    "REQUEST_TIMEOUT_NS",
    "Context2015",
    "ModelBH",
    "bh_ctx_race",
    "dispatching_race",
    "test_and_clear_race",
    "today",
]

#: When the requests are made, and how long the worker waits for each to run.
START_NS = 1 * SCALE_MS
REQUEST_TIMEOUT_NS = 10 * SCALE_MS


class ModelBH:
    """A 2014 ``QEMUBH``: ``scheduled`` and ``deleted`` flags, freed by ``aio_bh_poll``."""

    __slots__ = ("_ctx", "cb", "deleted", "freed", "name", "scheduled")

    def __init__(self, ctx: Context2015, cb: Callable[[], object], name: str) -> None:
        self._ctx = ctx
        self.cb = cb
        self.name = name
        self.scheduled = False
        self.deleted = False
        self.freed = False

    @property
    def ctx(self) -> Context2015:
        """``bh->ctx``: reading it once ``aio_bh_poll`` has freed the BH is a use after free."""
        if self.freed:
            raise AssertionError(
                f"use after free: qemu_bh_schedule read bh->ctx of BH {self.name!r} after "
                "aio_bh_poll ran and freed it (QEMU 924fe1293c: read ctx before setting "
                "bh->scheduled)"
            )
        return self._ctx


class Context2015:
    """The wake-up protocol of a QEMU 2.3/2.4 AioContext, accesses separated by points.

    ``protocol`` is ``"dispatching"`` (``aio_notify`` kicks unless
    ``ctx->dispatching``; before eabc977973) or ``"notify_me"`` (it kicks
    when a blocking poller counted itself in ``ctx->notify_me``).
    ``clear_first`` clears the notifier right after ``ppoll`` (21a03d17f2);
    otherwise its fd handler clears it after the BH phase.
    ``read_ctx_first`` makes ``qemu_bh_schedule`` read ``bh->ctx`` before it
    sets ``bh->scheduled`` (924fe1293c).
    """

    def __init__(
        self,
        sim: Simulation,
        *,
        protocol: str = "notify_me",
        clear_first: bool = True,
        read_ctx_first: bool = True,
    ) -> None:
        if protocol not in ("dispatching", "notify_me"):
            raise ValueError(f"protocol must be 'dispatching' or 'notify_me', not {protocol!r}")
        self.sim = sim
        self.point = sim.preemption_point
        self.protocol = protocol
        self.clear_first = clear_first
        self.read_ctx_first = read_ctx_first
        self.notifier = EventNotifier(sim.fds)
        self.notify_me = 0
        self.dispatching = False
        self.bhs: list[ModelBH] = []
        self.running = True

    # -- bottom halves (async.c) ----------------------------------------------------

    def bh_new(self, cb: Callable[[], object], name: str) -> ModelBH:
        bh = ModelBH(self, cb, name)
        self.bhs.append(bh)
        return bh

    def bh_schedule(self, bh: ModelBH) -> None:
        """``qemu_bh_schedule``, called from any thread."""
        self.point()
        if self.read_ctx_first:
            ctx = bh.ctx
            if bh.scheduled:  # atomic_xchg(&bh->scheduled, 1) == 1
                return
            bh.scheduled = True
        else:
            if bh.scheduled:
                return
            bh.scheduled = True
            self.point()
            ctx = bh.ctx  # the BH may have run, been deleted and been freed by now
        ctx.aio_notify()

    @staticmethod
    def bh_delete(bh: ModelBH) -> None:
        """``qemu_bh_delete``: freed by the next ``aio_bh_poll`` that walks the list."""
        bh.scheduled = False
        bh.deleted = True

    def aio_notify(self) -> None:
        self.point()  # smp_mb(): bh->scheduled is written before the flag is read
        kick = not self.dispatching if self.protocol == "dispatching" else self.notify_me > 0
        if kick:
            self.notifier.set()

    def _bh_poll(self) -> bool:
        """``aio_bh_poll``: run the scheduled BHs, then free the deleted ones."""
        progress = False
        for bh in list(self.bhs):
            self.point()
            if bh.scheduled and not bh.deleted:
                bh.scheduled = False
                progress = True
                bh.cb()
        for bh in list(self.bhs):
            if bh.deleted:
                bh.freed = True
                self.bhs.remove(bh)
        return progress

    def _bh_scheduled(self) -> bool:
        return any(bh.scheduled and not bh.deleted for bh in self.bhs)

    # -- aio_poll (aio-posix.c) -------------------------------------------------------
    #
    # A point comes before each access to shared state (the flags, the BHs'
    # fields, the eventfd); what lies between two points is atomic.

    def aio_poll(self, blocking: bool) -> bool:
        point = self.point
        was_dispatching = False
        if self.protocol == "dispatching":
            point()
            was_dispatching = self.dispatching
            point()
            self.dispatching = not blocking  # aio_set_dispatching(ctx, !blocking)
        elif blocking:
            point()
            self.notify_me += 2
        point()
        timeout = -1 if blocking and not self._bh_scheduled() else 0  # aio_compute_timeout
        point()
        fd = self.notifier.fd
        self.sim.fds.poll([(fd, select.POLLIN)], timeout)  # ppoll
        if self.protocol == "dispatching":
            point()
            self.dispatching = True
        elif blocking:
            point()
            self.notify_me -= 2
        if self.clear_first:
            self.notifier.test_and_clear()
        progress = self._bh_poll()
        if not self.clear_first:
            # Too late: after the BHs ran (the bug as QEMU's own formal model of it,
            # docs/spin/aio_notify_bug.promela, has it: req = 0, then event = 0).
            self.notifier.test_and_clear()
        if self.protocol == "dispatching":
            point()
            self.dispatching = was_dispatching
        return progress

    def run(self) -> None:
        """The I/O thread: ``while running: aio_poll(ctx, true)``."""
        while self.running:
            self.aio_poll(True)

    def stop_bh(self) -> ModelBH:
        """A BH that stops :meth:`run` (``iothread_stop``)."""

        def stop() -> None:
            self.running = False

        return self.bh_new(stop, "stop")


def _contains(items: list[str], item: str) -> bool:
    return item in items


def _wait(sim: Simulation, done: Callable[[], bool], what: str) -> None:
    """The worker waits for ``what``; a lost wake-up is a timeout."""
    deadline = sim.now_ns + REQUEST_TIMEOUT_NS
    while not done():
        if sim.now_ns >= deadline:
            raise AssertionError(
                f"lost wake-up: {what} not done {REQUEST_TIMEOUT_NS // SCALE_MS} ms after it "
                "was scheduled; its BH is pending and the event loop sleeps in ppoll with "
                "nothing to wake it"
            )
        sim.sleep(SCALE_MS // 10)


def _actors(sim: Simulation, ctx: Context2015, requests: int, vcpu: bool) -> list[str]:
    """The I/O thread, the worker and (``vcpu``) a vCPU polling the same context once."""
    done: list[str] = []
    iothread = sim.thread("iothread", ctx.run)
    vcpu_thread = None

    def complete(name: str, bh_box: list[ModelBH]) -> None:
        done.append(name)
        ctx.bh_delete(bh_box[0])  # a completion BH frees itself, as thread-pool.c's did

    def worker() -> None:
        sim.sleep(START_NS)
        names = [f"request {i}" for i in range(requests)]
        for name in names:
            box: list[ModelBH] = []
            box.append(ctx.bh_new(partial(complete, name, box), name))
            ctx.bh_schedule(box[0])
        for name in names:
            _wait(sim, partial(_contains, done, name), name)
        if vcpu_thread is not None:
            # Only the I/O thread polls from here on: a kick the vCPU's poll
            # cleared for a stop it ran itself would leave the I/O thread asleep
            # (QEMU has since made one thread the only poller of a context).
            vcpu_thread.join()
        ctx.bh_schedule(ctx.stop_bh())
        _wait(sim, lambda: not iothread.is_alive(), "the stop request")

    def vcpu0() -> None:
        sim.sleep(START_NS)  # with the worker's first request
        ctx.aio_poll(False)

    sim.thread("worker", worker)
    if vcpu:
        vcpu_thread = sim.thread("vcpu0", vcpu0)
    return done


def dispatching_race(
    sim: Simulation, *, fixed: bool = False, requests: int = 1, preemption: str = "fine"
) -> list[str]:
    """QEMU eabc977973: ``ctx->dispatching`` (``fixed=False``) or ``ctx->notify_me``."""
    sim.set_preemption(cast(Preemption, preemption))  # a bad one is refused there
    ctx = Context2015(sim, protocol="notify_me" if fixed else "dispatching", clear_first=True)
    return _actors(sim, ctx, requests, vcpu=True)


def test_and_clear_race(
    sim: Simulation, *, fixed: bool = False, requests: int = 1, preemption: str = "fine"
) -> list[str]:
    """QEMU 21a03d17f2: the notifier cleared after the BHs run (``fixed=False``) or before."""
    sim.set_preemption(cast(Preemption, preemption))  # a bad one is refused there
    ctx = Context2015(sim, protocol="notify_me", clear_first=fixed)
    return _actors(sim, ctx, requests, vcpu=True)


def bh_ctx_race(
    sim: Simulation, *, fixed: bool = False, requests: int = 2, preemption: str = "fine"
) -> list[str]:
    """QEMU 924fe1293c: ``bh->ctx`` read after ``bh->scheduled`` is set (``fixed=False``)."""
    sim.set_preemption(cast(Preemption, preemption))  # a bad one is refused there
    ctx = Context2015(sim, protocol="notify_me", clear_first=True, read_ctx_first=fixed)
    return _actors(sim, ctx, requests, vcpu=False)


def today(sim: Simulation, *, requests: int = 2) -> list[str]:
    """The same actors on evloop's own loop, which follows today's QEMU (10.2).

    The worker completes requests into an IOThread with a BH it frees from
    its callback and with oneshot BHs, and into the main loop's context (the
    GSource path); the IOThread also runs a request on its thread pool. One
    thread polls each context, as QEMU asserts today.
    """
    sim.set_preemption("fine")
    io = sim.iothread("iothread")
    main_ctx = sim.main_loop.aio_context
    done: list[str] = []

    def complete(name: str, box: list[BH]) -> None:
        done.append(name)
        box[0].delete()  # a completion BH freed from its own callback

    def pool_request() -> None:
        io.ctx.thread_pool_submit(lambda: sim.sleep(SCALE_MS // 10), lambda _: done.append("pool"))

    def worker() -> None:
        sim.sleep(START_NS)
        names: list[str] = []
        for i in range(requests):
            name = f"request {i}"
            names.append(name)
            box: list[BH] = []
            bh = io.ctx.bh_new(partial(complete, name, box), name)
            box.append(bh)
            bh.schedule()
            io.ctx.bh_schedule_oneshot(partial(done.append, f"{name} oneshot"))
            main_ctx.bh_schedule_oneshot(partial(done.append, f"{name} main"))
        io.ctx.bh_schedule_oneshot(pool_request)
        for name in names:
            for what in (name, f"{name} oneshot", f"{name} main"):
                _wait(sim, partial(_contains, done, what), what)
        _wait(sim, partial(_contains, done, "pool"), "the thread-pool request")
        io.stop()
        thread = io.thread
        assert thread is not None
        _wait(sim, lambda: not thread.is_alive(), "the stop request")

    sim.thread("worker", worker)
    return done
