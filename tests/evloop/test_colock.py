"""Tests for evloop.colock: CoQueue, CoMutex, CoRwlock.

``/locking/*`` of QEMU's ``tests/unit/test-coroutine.c`` first, then the
``/aio/multi/mutex/*`` cases of ``test-aio-multithread.c``, adapted to
virtual time: coroutines on several IOThreads take one CoMutex for a virtual
microsecond at a time, under random choosers, and the mutex must hand it
over in the order they asked.
"""

from __future__ import annotations

import pytest

from evloop import (
    SCALE_MS,
    SCALE_US,
    ClockType,
    CoMutex,
    CoQueue,
    CoRwlock,
    RandomChooser,
    Simulation,
    SimulationError,
    aio_co_schedule,
    qemu_co_queue_next,
    qemu_co_queue_restart_all,
    qemu_co_queue_wait,
    qemu_co_sleep_ns,
    qemu_coroutine_create,
    qemu_coroutine_enter,
    qemu_coroutine_yield,
)
from evloop.machine.coroutine import qemu_get_current_aio_context

# -- /locking/co-mutex -------------------------------------------------------------------


@pytest.mark.parametrize("guard", [False, True], ids=["lock-unlock", "lockable"])
def test_co_mutex(guard: bool) -> None:
    mutex = CoMutex()
    locked = False
    done = 0

    def mutex_fn() -> None:
        nonlocal locked, done
        if guard:
            with mutex:
                assert not locked
                locked = True
                qemu_coroutine_yield()
                locked = False
        else:
            mutex.lock()
            assert not locked
            locked = True
            qemu_coroutine_yield()
            locked = False
            mutex.unlock()
        done += 1

    c1 = qemu_coroutine_create(mutex_fn)
    c2 = qemu_coroutine_create(mutex_fn)
    qemu_coroutine_enter(c1)
    assert locked
    qemu_coroutine_enter(c2)
    # Unlock queues c2. It is then started automatically when c1 yields or returns.
    qemu_coroutine_enter(c1)
    assert done == 1
    assert locked
    qemu_coroutine_enter(c2)
    assert done == 2
    assert not locked


def test_co_mutex_serves_its_waiters_in_order() -> None:
    mutex = CoMutex()
    order: list[str] = []

    def take(name: str) -> None:
        mutex.lock()
        order.append(name)
        qemu_coroutine_yield()
        mutex.unlock()

    c1 = qemu_coroutine_create(lambda: take("c1"), name="c1")
    c2 = qemu_coroutine_create(lambda: take("c2"), name="c2")
    c3 = qemu_coroutine_create(lambda: take("c3"), name="c3")
    qemu_coroutine_enter(c1)
    qemu_coroutine_enter(c2)  # queues
    assert repr(mutex) == "<CoMutex holder='c1' waiters=['c2']>"
    qemu_coroutine_enter(c1)  # unlocks: c2 takes over, runs, yields holding it
    assert order == ["c1", "c2"]
    qemu_coroutine_enter(c3)  # queues behind c2
    assert order == ["c1", "c2"]
    qemu_coroutine_enter(c2)  # unlocks: c3 runs
    assert order == ["c1", "c2", "c3"]
    qemu_coroutine_enter(c3)
    assert mutex.locked == 0 and mutex.holder is None
    assert all(co.done for co in (c1, c2, c3))


def test_a_newcomer_between_unlock_and_the_woken_waiter_queues_behind_it() -> None:
    mutex = CoMutex()
    order: list[str] = []

    def waiter() -> None:
        mutex.lock()
        order.append("waiter")
        mutex.unlock()

    def newcomer() -> None:
        mutex.lock()
        order.append("newcomer")
        mutex.unlock()

    w = qemu_coroutine_create(waiter)
    n = qemu_coroutine_create(newcomer)

    def holder() -> None:
        mutex.lock()
        qemu_coroutine_yield()
        mutex.unlock()  # w is woken after this coroutine yields...
        qemu_coroutine_enter(n)  # ...and n asks first: it must still come second
        order.append("holder done")

    h = qemu_coroutine_create(holder)
    qemu_coroutine_enter(h)
    qemu_coroutine_enter(w)
    qemu_coroutine_enter(h)
    assert order == ["holder done", "waiter", "newcomer"]


def test_co_mutex_misuse_is_named() -> None:
    mutex = CoMutex()
    with pytest.raises(SimulationError, match=r"^CoMutex.lock\(\) called outside a coroutine$"):
        mutex.lock()

    def unlock_unheld() -> None:
        mutex.unlock()

    with pytest.raises(
        SimulationError,
        match=r"^CoMutex.unlock\(\) from coroutine 'thief', but it is held by nobody$",
    ):
        qemu_coroutine_enter(qemu_coroutine_create(unlock_unheld, name="thief"))

    def keep() -> None:
        mutex.lock()

    with pytest.raises(
        SimulationError,
        match=r"^coroutine 'keeper' returned holding 1 lock\(s\) \(CoMutex or CoRwlock\): "
        r"unlock them before it returns$",
    ):
        qemu_coroutine_enter(qemu_coroutine_create(keep, name="keeper"))


# -- CoQueue -----------------------------------------------------------------------------


def test_co_queue_wakes_in_order_and_restart_all_wakes_everyone() -> None:
    queue = CoQueue()
    woke: list[int] = []

    def wait(i: int) -> None:
        qemu_co_queue_wait(queue)
        woke.append(i)

    cos = [qemu_coroutine_create(lambda i=i: wait(i)) for i in range(4)]
    for co in cos:
        qemu_coroutine_enter(co)
    assert not queue.empty()
    assert qemu_co_queue_next(queue) is True
    assert woke == [0]
    qemu_co_queue_restart_all(queue)
    assert woke == [0, 1, 2, 3]
    assert queue.empty()
    assert qemu_co_queue_next(queue) is False


def test_co_queue_wait_releases_and_retakes_its_mutex() -> None:
    mutex = CoMutex()
    queue = CoQueue()
    trail: list[str] = []

    def consumer() -> None:
        with mutex:
            trail.append("consumer waits")
            queue.wait(mutex)
            trail.append(f"consumer holds: {mutex.holder is consumer_co}")

    def producer() -> None:
        with mutex:  # free: the consumer gave it up while waiting
            trail.append("producer")
            queue.next()  # the consumer runs once we yield, and waits for the mutex

    consumer_co = qemu_coroutine_create(consumer)
    qemu_coroutine_enter(consumer_co)
    qemu_coroutine_enter(qemu_coroutine_create(producer))
    assert trail == ["consumer waits", "producer", "consumer holds: True"]
    assert consumer_co.done and mutex.locked == 0


def test_wait_at_the_front() -> None:
    queue = CoQueue()
    woke: list[str] = []

    def wait(name: str, front: bool) -> None:
        queue.wait(front=front)
        woke.append(name)

    for name, front in (("a", False), ("b", False), ("urgent", True)):
        qemu_coroutine_enter(qemu_coroutine_create(lambda n=name, f=front: wait(n, f)))
    queue.restart_all()
    assert woke == ["urgent", "a", "b"]


# -- /locking/co-rwlock ------------------------------------------------------------------


def test_co_rwlock_upgrade() -> None:
    lock = CoRwlock()
    done = {"c1": False, "c2": False}

    def rwlock_yield_upgrade() -> None:
        lock.rdlock()
        qemu_coroutine_yield()
        lock.upgrade()
        lock.unlock()
        done["c1"] = True

    def rwlock_wrlock_yield() -> None:
        lock.wrlock()
        qemu_coroutine_yield()
        lock.unlock()
        done["c2"] = True

    c1 = qemu_coroutine_create(rwlock_yield_upgrade)
    c2 = qemu_coroutine_create(rwlock_wrlock_yield)
    qemu_coroutine_enter(c1)
    qemu_coroutine_enter(c2)
    # c1 now should go to sleep.
    qemu_coroutine_enter(c1)
    assert not done["c1"]
    qemu_coroutine_enter(c2)
    assert done == {"c1": True, "c2": True}


def test_co_rwlock_downgrade() -> None:
    # | c1     | c2         | c3         | c4         |
    # | rdlock |            |            |            |
    # | yield  |            |            |            |
    # |        | wrlock     |            |            |
    # |        | <queued>   |            |            |
    # |        |            | rdlock     |            |
    # |        |            | <queued>   |            |
    # |        |            |            | wrlock     |
    # |        |            |            | <queued>   |
    # | unlock |            |            |            |
    # | yield  |            |            |            |
    # |        | <dequeued> |            |            |
    # |        | downgrade  |            |            |
    # |        | unlock     |            |            |
    # |        |            | <dequeued> |            |
    # |        |            | unlock     |            |
    # |        |            |            | <dequeued> |
    # |        |            |            | unlock     |
    lock = CoRwlock()
    done = dict.fromkeys(("c1", "c2", "c3", "c4"), False)

    def rdlock_yield() -> None:
        lock.rdlock()
        qemu_coroutine_yield()
        lock.unlock()
        qemu_coroutine_yield()
        done["c1"] = True

    def wrlock_downgrade() -> None:
        lock.wrlock()
        lock.downgrade()
        lock.unlock()
        done["c2"] = True

    def rdlock() -> None:
        lock.rdlock()
        lock.unlock()
        done["c3"] = True

    def wrlock() -> None:
        lock.wrlock()
        lock.unlock()
        done["c4"] = True

    cos = [qemu_coroutine_create(fn) for fn in (rdlock_yield, wrlock_downgrade, rdlock, wrlock)]
    for co in cos:
        qemu_coroutine_enter(co)
    qemu_coroutine_enter(cos[0])
    assert (done["c2"], done["c3"], done["c4"]) == (True, True, True)
    qemu_coroutine_enter(cos[0])
    assert done["c1"]
    assert lock.owners == 0 and not lock.tickets


def test_a_reader_waits_behind_a_queued_writer() -> None:
    lock = CoRwlock()
    order: list[str] = []

    def reader(name: str) -> None:
        lock.rdlock()
        order.append(name)
        qemu_coroutine_yield()
        lock.unlock()

    def writer() -> None:
        lock.wrlock()
        order.append("writer")
        lock.unlock()

    r1 = qemu_coroutine_create(lambda: reader("r1"))
    w = qemu_coroutine_create(writer)
    r2 = qemu_coroutine_create(lambda: reader("r2"))
    qemu_coroutine_enter(r1)
    qemu_coroutine_enter(w)  # queued behind r1
    qemu_coroutine_enter(r2)  # queued behind the writer, though only readers hold it
    assert order == ["r1"]
    assert repr(lock) == "<CoRwlock owners=1 queued=2>"
    qemu_coroutine_enter(r1)  # unlock: the writer runs, then r2
    assert order == ["r1", "writer", "r2"]
    qemu_coroutine_enter(r2)
    assert lock.owners == 0


def test_co_rwlock_misuse_is_named() -> None:
    lock = CoRwlock()

    def unlock() -> None:
        lock.unlock()

    with pytest.raises(SimulationError, match=r"^CoRwlock.unlock\(\) from coroutine 'u': "
                       r"not locked$"):
        qemu_coroutine_enter(qemu_coroutine_create(unlock, name="u"))

    def upgrade() -> None:
        lock.upgrade()

    with pytest.raises(SimulationError, match=r"^CoRwlock.upgrade\(\) from coroutine 'g': "
                       r"not read-locked$"):
        qemu_coroutine_enter(qemu_coroutine_create(upgrade, name="g"))


# -- /aio/multi/mutex: test-aio-multithread.c ----------------------------------------------

NUM_CONTEXTS = 5


@pytest.mark.parametrize(
    ("threads", "seed"),
    [(NUM_CONTEXTS, 0), (NUM_CONTEXTS, 1), (2, 0), (2, 1), (3, 2)],
    ids=["contended-0", "contended-1", "handoff-0", "handoff-1", "handoff-2"],
)
def test_multi_co_mutex(threads: int, seed: int) -> None:
    """Coroutines on ``threads`` IOThreads increment a counter under one CoMutex.

    With every context busy the queue is exercised; with fewer, the hand-off
    across contexts. Each holds the mutex for a virtual microsecond, so others
    really queue; the mutex must be granted in the order it was asked for.
    """
    mutex = CoMutex()
    counter = 0
    atomic_counter = 0
    running = threads
    stopping = False
    asked: list[tuple[int, int]] = []  # (thread index, attempt) in the order lock() was called
    granted: list[tuple[int, int]] = []
    with Simulation(seed, chooser=RandomChooser(seed)) as sim:
        ios = [sim.iothread(f"io{i}") for i in range(NUM_CONTEXTS)]
        index = {io.ctx: i for i, io in enumerate(ios)}

        def entry() -> None:
            nonlocal counter, atomic_counter, running
            attempt = 0
            while not stopping:
                ctx = qemu_get_current_aio_context()
                assert ctx is not None
                me = (index[ctx], attempt)
                asked.append(me)
                mutex.lock()
                granted.append(me)
                counter += 1
                qemu_co_sleep_ns(ClockType.VIRTUAL, SCALE_US)
                mutex.unlock()
                # After the unlock, as QEMU's test does.
                atomic_counter += 1
                attempt += 1
                qemu_co_sleep_ns(ClockType.VIRTUAL, sim.random.randrange(1, 3) * SCALE_US // 2)
            running -= 1

        for io in ios[:threads]:
            aio_co_schedule(io.ctx, qemu_coroutine_create(entry))
        sim.run(until_ns=SCALE_MS)
        stopping = True
        while running > 0:
            sim.sleep(100 * SCALE_US)
        for io in ios:
            io.stop()
        for io in ios:
            assert io.join()
    assert counter == atomic_counter
    assert counter > 200
    assert granted == asked  # fair: served in the order asked
    assert mutex.locked == 0
