"""Tests for replay.mutex: QEMU's replay mutex for plain OS threads.

The stress tests use real ``threading.Thread``s, registered by name, that take
the mutex thousands of times each and sleep(0) outside it so the OS really
interleaves them. A recording's grants, played back, must give the same order
of critical sections every time; a log that cannot be followed must fail with
a :class:`ReplayDivergence` naming the thread, never hang.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pytest

from replay import ReplayDivergence, ReplayError, ReplayMode, ReplayMutex

#: Every join in this file is bounded: a hang is a failure, not a stuck run.
JOIN_TIMEOUT = 30.0


@dataclass
class Run:
    mutex: ReplayMutex
    #: The critical sections, in the order they ran: (thread name, iteration).
    order: list[tuple[str, int]] = field(default_factory=list)
    errors: dict[str, BaseException] = field(default_factory=dict)


def run_threads(
    mode: ReplayMode,
    iterations: Sequence[int],
    grants: Sequence[int] | None = None,
    *,
    stall_timeout: float = 30.0,
    threads: Sequence[str] | None = None,
) -> Run:
    """Threads w0, w1, ... each taking the mutex ``iterations[i]`` times, then finishing.

    The threads are registered from this thread, in order, before any starts
    (so their indices do not depend on the OS), and all start together.
    """
    run = Run(ReplayMutex(mode, grants, threads=threads, stall_timeout=stall_timeout))
    go = threading.Event()

    def body(index: int, name: str, count: int) -> None:
        run.mutex.bind(index)
        go.wait()
        try:
            for i in range(count):
                with run.mutex:
                    assert run.mutex.locked() or mode is ReplayMode.NONE
                    run.order.append((name, i))
                time.sleep(0)
            run.mutex.finished()
        except BaseException as exc:
            run.errors[name] = exc

    threads = []
    for i, count in enumerate(iterations):
        name = f"w{i}"
        thread = threading.Thread(target=body, args=(i, name, count), name=name)
        assert run.mutex.register(name, thread) == i
        threads.append(thread)
    for thread in threads:
        thread.start()
    go.set()
    for thread in threads:
        thread.join(JOIN_TIMEOUT)
        assert not thread.is_alive(), f"{thread.name} hung"
    return run


def in_thread(fn: Callable[[], object], name: str = "other") -> BaseException | None:
    """Run ``fn`` in a new thread; return what it raised."""
    raised: list[BaseException] = []

    def target() -> None:
        try:
            fn()
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=target, name=name)
    thread.start()
    thread.join(JOIN_TIMEOUT)
    assert not thread.is_alive()
    return raised[0] if raised else None


# -- NONE ---------------------------------------------------------------------------------


def test_in_none_mode_every_call_is_a_no_op() -> None:
    mutex = ReplayMutex()
    assert mutex.mode is ReplayMode.NONE
    # No registration needed, nothing held, nothing logged.
    mutex.lock()
    mutex.lock()
    assert mutex.locked() is False
    mutex.unlock()
    mutex.unlock()
    with mutex as entered:
        assert entered is mutex
        assert mutex.locked() is False
    assert mutex.grants == []


def test_in_none_mode_threads_need_not_register() -> None:
    run = run_threads(ReplayMode.NONE, [200, 200])
    assert run.errors == {}
    assert len(run.order) == 400
    assert run.mutex.grants == []


# -- RECORD -------------------------------------------------------------------------------


def test_record_logs_each_grant_as_the_threads_index() -> None:
    granted: list[int] = []
    mutex = ReplayMutex(ReplayMode.RECORD, on_grant=granted.append)
    assert mutex.register("main") == 0
    assert mutex.thread_names == ("main",)
    assert mutex.locked() is False
    mutex.lock()
    assert mutex.locked() is True
    mutex.unlock()
    assert mutex.locked() is False
    with mutex as entered:
        assert entered is mutex
        assert mutex.locked() is True
    assert mutex.grants == [0, 0]
    assert granted == [0, 0]


def test_record_with_threads_logs_the_order_the_os_chose() -> None:
    run = run_threads(ReplayMode.RECORD, [500, 500, 500])
    assert run.errors == {}
    names = ("w0", "w1", "w2")
    assert run.mutex.thread_names == names
    assert [names[i] for i in run.mutex.grants] == [name for name, _ in run.order]


def test_a_recording_mutex_starts_with_an_empty_log() -> None:
    with pytest.raises(ValueError, match=r"^a recording ReplayMutex starts with an empty log$"):
        ReplayMutex(ReplayMode.RECORD, [0])


def test_locked_is_per_thread() -> None:
    mutex = ReplayMutex(ReplayMode.RECORD)
    mutex.register("main")
    with mutex:
        seen: list[bool] = []

        def other() -> None:
            mutex.register("other")
            seen.append(mutex.locked())

        assert in_thread(other) is None
        assert seen == [False]
        assert mutex.locked() is True


# -- misuse -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [ReplayMode.RECORD, ReplayMode.PLAY])
@pytest.mark.parametrize("op", ["lock", "unlock", "finished"])
def test_an_unregistered_thread_is_told_to_register(mode: ReplayMode, op: str) -> None:
    mutex = ReplayMutex(mode, [0] if mode is ReplayMode.PLAY else None)
    raised = in_thread(getattr(mutex, op), name="stranger")
    assert isinstance(raised, ReplayError)
    assert str(raised) == (
        f"ReplayMutex.{op}() from thread 'stranger', which is not registered: "
        "call register(name) in each thread first"
    )


def test_a_name_registers_once() -> None:
    mutex = ReplayMutex(ReplayMode.RECORD)
    mutex.register("a")
    with pytest.raises(ValueError, match=r"^a thread named 'a' is already registered$"):
        mutex.register("a", threading.Thread(target=lambda: None))


def test_unlock_by_a_thread_that_does_not_hold_it_raises() -> None:
    mutex = ReplayMutex(ReplayMode.RECORD)
    mutex.register("holder")
    with pytest.raises(ReplayError, match=r"^thread 'holder' does not hold the replay mutex$"):
        mutex.unlock()
    mutex.lock()

    def other() -> None:
        mutex.register("other")
        mutex.unlock()

    raised = in_thread(other)
    assert isinstance(raised, ReplayError)
    assert str(raised) == "thread 'other' does not hold the replay mutex"
    assert mutex.locked() is True
    mutex.unlock()


def test_locking_twice_from_one_thread_raises() -> None:
    mutex = ReplayMutex(ReplayMode.RECORD)
    mutex.register("me")
    mutex.lock()
    with pytest.raises(ReplayError, match=r"^thread 'me' already holds the replay mutex$"):
        mutex.lock()
    mutex.unlock()


# -- PLAY ---------------------------------------------------------------------------------


def test_play_follows_a_given_log() -> None:
    grants = [1, 0, 0, 2, 1, 2, 2, 0, 1]
    counts = [grants.count(i) for i in range(3)]
    run = run_threads(ReplayMode.PLAY, counts, grants)
    assert run.errors == {}
    assert [name for name, _ in run.order] == [f"w{i}" for i in grants]
    assert run.mutex.grants == grants


@pytest.mark.slow
def test_four_threads_recorded_once_replay_the_same_order_five_times() -> None:
    counts = [2000, 2000, 2000, 2000]
    recorded = run_threads(ReplayMode.RECORD, counts)
    assert recorded.errors == {}
    grants = list(recorded.mutex.grants)
    assert len(grants) == sum(counts)
    switches = sum(1 for a, b in itertools.pairwise(grants) if a != b)
    assert switches > 100, "the OS did not interleave the threads: the test proves nothing"
    for _ in range(5):
        played = run_threads(ReplayMode.PLAY, counts, grants)
        assert played.errors == {}
        assert played.order == recorded.order


def test_uneven_threads_replay_too() -> None:
    counts = [1500, 10, 700, 1, 1200]
    recorded = run_threads(ReplayMode.RECORD, counts)
    grants = list(recorded.mutex.grants)
    for _ in range(3):
        played = run_threads(ReplayMode.PLAY, counts, grants)
        assert played.errors == {}
        assert played.order == recorded.order


def test_a_log_naming_a_thread_that_has_finished_fails_naming_it() -> None:
    # w0 took the mutex 3 times when recorded but only once now.
    started = time.monotonic()
    run = run_threads(ReplayMode.PLAY, [1, 3], [0, 1, 0, 1, 0, 1], stall_timeout=10.0)
    assert time.monotonic() - started < 5.0  # noticed at once, not by the stall timeout
    assert set(run.errors) == {"w1"}
    div = run.errors["w1"]
    assert isinstance(div, ReplayDivergence)
    assert div.event_index == 2
    assert div.expected == "MUTEX grant to 'w0'"
    assert div.actual == "the log's next grant names 'w0', which has ended; waiting: ['w1']"
    assert div.recent == ("w0", "w1")
    assert "'w0'" in str(div)
    assert run.order == [("w0", 0), ("w1", 0)]
    assert run.mutex.divergence is div


def test_a_log_naming_a_thread_that_exited_without_saying_so_fails() -> None:
    mutex = ReplayMutex(ReplayMode.PLAY, [0, 1, 0], stall_timeout=0.5)

    def quitter() -> None:
        mutex.register("quitter")
        with mutex:
            pass

    assert in_thread(quitter, "quitter") is None
    mutex.register("main")
    with mutex:
        pass
    started = time.monotonic()
    with pytest.raises(ReplayDivergence) as info:
        mutex.lock()
    assert time.monotonic() - started < 5.0
    assert info.value.expected == "MUTEX grant to 'quitter'"
    assert "'quitter'" in str(info.value)


def test_a_log_that_runs_out_fails_naming_the_waiting_thread() -> None:
    run = run_threads(ReplayMode.PLAY, [2, 2], [0, 1, 0], stall_timeout=10.0)
    assert set(run.errors) == {"w1"}
    div = run.errors["w1"]
    assert isinstance(div, ReplayDivergence)
    assert div.event_index == 3
    assert div.expected == "MUTEX grant to '<none: the log has ended>'"
    assert div.actual == "the log has no grant left (after 3 grants); waiting: ['w1']"
    assert "'w1'" in str(div)


def test_a_log_naming_a_thread_that_never_asks_fails_after_the_stall_timeout() -> None:
    mutex = ReplayMutex(ReplayMode.PLAY, [0, 1], stall_timeout=0.3)
    mutex.register("main")
    registered = threading.Event()
    release = threading.Event()

    def idler() -> None:
        mutex.register("idler")
        registered.set()
        release.wait(JOIN_TIMEOUT)  # alive, but never asks

    thread = threading.Thread(target=idler, name="idler")
    thread.start()
    try:
        assert registered.wait(JOIN_TIMEOUT)
        with mutex:
            pass
        started = time.monotonic()
        with pytest.raises(ReplayDivergence) as info:
            mutex.lock()
        waited = time.monotonic() - started
    finally:
        release.set()
        thread.join(JOIN_TIMEOUT)
    assert 0.25 <= waited < 5.0
    div = info.value
    assert div.expected == "MUTEX grant to 'idler'"
    assert div.actual == (
        "thread 'idler' (the log's next grant) did not ask for the replay mutex within 0.3 s; "
        "waiting: ['main']"
    )


def test_waiting_for_a_late_turn_while_others_take_theirs_is_not_a_stall() -> None:
    # w1 asks at once but the log gives it the last grant; w0 takes 30 grants,
    # 0.3 s in all, longer than the stall timeout. Progress is being made, so
    # w1 must wait on, not report a stall.
    grants = [0] * 30 + [1]
    mutex = ReplayMutex(ReplayMode.PLAY, grants, stall_timeout=0.15)
    errors: list[BaseException] = []
    order: list[str] = []

    def body(index: int, name: str, count: int) -> None:
        mutex.bind(index)
        try:
            for _ in range(count):
                with mutex:
                    order.append(name)
                    time.sleep(0.01)
            mutex.finished()
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=body, args=(i, f"w{i}", count), name=f"w{i}")
        for i, count in enumerate([30, 1])
    ]
    for i, thread in enumerate(threads):
        assert mutex.register(f"w{i}", thread) == i
    for thread in reversed(threads):  # w1 first: it waits from the start
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT)
        assert not thread.is_alive()
    assert errors == []
    assert order == ["w0"] * 30 + ["w1"]


def test_a_log_naming_a_thread_that_never_registered_fails() -> None:
    run = run_threads(ReplayMode.PLAY, [1, 2], [0, 1, 7], stall_timeout=10.0)
    assert set(run.errors) == {"w1"}
    div = run.errors["w1"]
    assert isinstance(div, ReplayDivergence)
    assert div.expected == "MUTEX grant to '#7'"
    assert div.actual == (
        "the log's next grant names thread #7, which never registered; waiting: ['w1']"
    )


def test_after_a_divergence_every_thread_is_refused() -> None:
    mutex = ReplayMutex(ReplayMode.PLAY, [0], stall_timeout=5.0)
    mutex.register("main")
    with mutex:
        pass
    with pytest.raises(ReplayDivergence) as first:
        mutex.lock()

    def other() -> None:
        mutex.register("other")
        mutex.lock()

    assert in_thread(other) is first.value
    with pytest.raises(ReplayDivergence) as again:
        mutex.lock()
    assert again.value is first.value


def test_a_thread_registered_before_it_starts_is_waited_for() -> None:
    # The log names w0 first, but w1 starts (and asks) before w0 has even
    # started: w0 has not ended, so w1 must wait for it.
    mutex = ReplayMutex(ReplayMode.PLAY, [0, 1], stall_timeout=10.0)
    order: list[str] = []
    errors: list[BaseException] = []

    def body(index: int, name: str) -> None:
        mutex.bind(index)
        try:
            with mutex:
                order.append(name)
        except BaseException as exc:
            errors.append(exc)

    w0 = threading.Thread(target=body, args=(0, "w0"))
    w1 = threading.Thread(target=body, args=(1, "w1"))
    mutex.register("w0", w0)
    mutex.register("w1", w1)
    w1.start()
    time.sleep(0.1)
    w0.start()
    for thread in (w0, w1):
        thread.join(JOIN_TIMEOUT)
        assert not thread.is_alive()
    assert errors == []
    assert order == ["w0", "w1"]


# -- the log tells the truth: registration order, grants used up ------------------------


def test_threads_registering_in_another_order_than_recorded_is_a_divergence() -> None:
    recorded = run_threads(ReplayMode.RECORD, [3, 3])
    names, grants = recorded.mutex.thread_names, list(recorded.mutex.grants)
    assert names == ("w0", "w1")
    mutex = ReplayMutex(ReplayMode.PLAY, grants, threads=names, stall_timeout=600.0)
    first = threading.Thread(target=lambda: None, name="w1")
    with pytest.raises(ReplayDivergence) as info:
        mutex.register("w1", first)  # w1 would get w0's grants
    div = info.value
    assert div.expected == "REGISTER thread #0 'w0'"
    assert div.actual == (
        "thread 'w1' registered as thread #0, which the recording registered as 'w0' "
        "(recorded order: ['w0', 'w1']); waiting: []"
    )
    assert div.thread == "w1"
    assert mutex.divergence is div
    # Every later call is refused with the same divergence.
    with pytest.raises(ReplayDivergence) as again:
        mutex.register("w0")
    assert again.value is div


def test_threads_that_register_themselves_out_of_order_diverge() -> None:
    # Real threads each registering itself, in the reverse of the recorded order.
    mutex = ReplayMutex(ReplayMode.PLAY, [0, 1], threads=("a", "b"), stall_timeout=600.0)
    raised: dict[str, BaseException | None] = {}
    b_done = threading.Event()

    def body(name: str, after: threading.Event | None) -> None:
        if after is not None:
            after.wait(JOIN_TIMEOUT)
        try:
            mutex.register(name)
            with mutex:
                pass
            raised[name] = None
        except BaseException as exc:
            raised[name] = exc
        finally:
            if name == "b":
                b_done.set()

    threads = [
        threading.Thread(target=body, args=("a", b_done), name="a"),
        threading.Thread(target=body, args=("b", None), name="b"),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT)
        assert not thread.is_alive()
    assert isinstance(raised["b"], ReplayDivergence)
    assert raised["a"] is raised["b"]
    assert str(raised["b"].actual).startswith(
        "thread 'b' registered as thread #0, which the recording registered as 'a'"
    )


def test_a_thread_the_recording_did_not_have_is_a_divergence() -> None:
    mutex = ReplayMutex(ReplayMode.PLAY, [0], threads=("main",))
    mutex.register("main")
    with pytest.raises(ReplayDivergence) as info:
        mutex.register("extra", threading.Thread(target=lambda: None))
    assert info.value.expected == "no more registrations"
    assert info.value.actual == (
        "thread 'extra' registered as thread #1, but the recording registered only 1 "
        "(recorded order: ['main']); waiting: []"
    )


def test_grants_left_when_every_recorded_thread_has_finished_are_a_divergence() -> None:
    # Recorded: w1 took the mutex twice; now it takes it once and finishes.
    run = run_threads(ReplayMode.PLAY, [1, 1], [0, 1, 1], threads=("w0", "w1"))
    assert run.order == [("w0", 0), ("w1", 0)]
    assert len(run.errors) == 1  # the thread that finished last
    (div,) = run.errors.values()
    assert isinstance(div, ReplayDivergence)
    assert div.event_index == 2
    assert div.expected == "MUTEX grant to 'w1'"
    assert div.actual == (
        "every recorded thread has finished with 1 grant of the log unused; waiting: []"
    )


def test_close_reports_grants_left_over() -> None:
    run = run_threads(ReplayMode.PLAY, [1, 1], [0, 1, 0, 1])
    assert run.errors == {}  # without the names, no thread can tell it was the last
    with pytest.raises(ReplayDivergence) as info:
        run.mutex.close()
    assert info.value.event_index == 2
    assert info.value.expected == "MUTEX grant to 'w0'"
    assert info.value.actual == "the run ended with 2 grants of the log unused; waiting: []"


def test_close_of_a_used_up_log_is_quiet() -> None:
    grants = [1, 0, 1]
    run = run_threads(ReplayMode.PLAY, [1, 2], grants, threads=("w0", "w1"))
    assert run.errors == {}
    run.mutex.close()
    run.mutex.close()
    ReplayMutex(ReplayMode.RECORD).close()  # nothing to check when recording


# -- a holder that dies or blocks ---------------------------------------------------------


def _holder_then_waiter(
    mode: ReplayMode, *, release: threading.Event | None = None, stall_timeout: float = 600.0
) -> tuple[ReplayMutex, BaseException | None, BaseException | None]:
    """``holder`` takes the mutex and never unlocks (it ends, or waits for ``release``)."""
    grants = [0, 1] if mode is ReplayMode.PLAY else None
    mutex = ReplayMutex(mode, grants, stall_timeout=stall_timeout)
    holding = threading.Event()
    errors: dict[str, BaseException | None] = {"holder": None, "waiter": None}

    def holder() -> None:
        mutex.bind(0)
        try:
            mutex.lock()
            holding.set()
            if release is not None:
                release.wait(JOIN_TIMEOUT)
                mutex.unlock()
        except BaseException as exc:
            errors["holder"] = exc
            holding.set()

    def waiter() -> None:
        mutex.bind(1)
        holding.wait(JOIN_TIMEOUT)
        try:
            mutex.lock()
            mutex.unlock()
        except BaseException as exc:
            errors["waiter"] = exc
        finally:
            if release is not None:
                release.set()

    threads = [threading.Thread(target=holder, name="holder"),
               threading.Thread(target=waiter, name="waiter")]
    for i, thread in enumerate(threads):
        assert mutex.register(thread.name, thread) == i
    for thread in threads:
        thread.start()
    for thread in threads:
        # The stall timeout is far longer than this: only the holder's death
        # can have ended the wait.
        thread.join(JOIN_TIMEOUT)
        assert not thread.is_alive(), f"{thread.name} hung"
    return mutex, errors["holder"], errors["waiter"]


def test_play_names_a_holder_that_ended_without_releasing_it() -> None:
    mutex, holder_error, div = _holder_then_waiter(ReplayMode.PLAY)
    assert holder_error is None
    assert isinstance(div, ReplayDivergence)
    assert div.thread == "holder"
    assert div.expected == "MUTEX grant to 'waiter'"
    assert div.actual == (
        "thread 'holder' ended while holding the replay mutex (it took grant 0 and never "
        "released it); waiting: ['waiter']"
    )
    assert mutex.divergence is div


def test_record_names_a_holder_that_ended_without_releasing_it() -> None:
    mutex, holder_error, error = _holder_then_waiter(ReplayMode.RECORD)
    assert holder_error is None
    assert isinstance(error, ReplayError)
    assert not isinstance(error, ReplayDivergence)
    assert str(error) == (
        "thread 'holder' ended while holding the replay mutex (it never released it): "
        "every other thread would wait for it forever"
    )
    assert mutex.grants == [0]


def test_play_names_a_holder_that_blocks_while_holding_it() -> None:
    release = threading.Event()
    _, holder_error, div = _holder_then_waiter(
        ReplayMode.PLAY, release=release, stall_timeout=0.2
    )
    assert holder_error is None  # it could still unlock once released
    assert isinstance(div, ReplayDivergence)
    assert div.thread == "holder"
    assert div.expected == "MUTEX grant to 'waiter'"
    assert div.actual == (
        "thread 'holder' has held the replay mutex for 0.2 s without releasing it "
        "(blocked while holding it); waiting: ['waiter']"
    )


def test_close_names_a_holder_that_never_released_it() -> None:
    mutex = ReplayMutex(ReplayMode.PLAY, [0])
    mutex.register("main")
    mutex.lock()
    with pytest.raises(ReplayDivergence) as info:
        mutex.close()
    assert info.value.thread == "main"
    assert info.value.actual == (
        "the run ended with thread 'main' still holding the replay mutex; waiting: []"
    )


def test_finishing_while_holding_the_mutex_is_refused() -> None:
    mutex = ReplayMutex(ReplayMode.RECORD)
    mutex.register("main")
    with mutex, pytest.raises(ReplayError, match=(
        r"^thread 'main' said it has finished while holding the replay mutex: unlock it first$"
    )):
        mutex.finished()
