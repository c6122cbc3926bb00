"""Tests for evloop.watchdog: a thread of control that never gives the turn back is named.

Each test really spins or really blocks, with a short timeout, and checks that
the run stops with a :class:`~evloop.WatchdogError` naming the thread and the
frame it was stuck in, and that the interval timer and the ``SIGALRM``
handler are put back.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from evloop import Simulation, SimulationError, WatchdogError

TIMEOUT = 0.2
SITE = re.compile(r"^tests/evloop/test_watchdog\.py:(\d+) in (\w+)\(\)$")


@pytest.fixture(autouse=True)
def alarm_left_alone() -> Iterator[None]:
    assert signal.getsignal(signal.SIGALRM) == signal.SIG_DFL
    yield
    assert signal.getsignal(signal.SIGALRM) == signal.SIG_DFL
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def _message(thread: str, site: str, timeout: float = TIMEOUT) -> str:
    return (
        f"watchdog: thread of control {thread!r} held the turn for {timeout:g} s of wall time "
        f"without waiting, at {site}: under the greenlet backend a thread of control must not "
        "block in a real call or spin; wait in virtual time (sim.sleep, SimEvent.wait, the "
        "virtual fds), or build the simulation with threads='os'"
    )


def _stopped(sim: Simulation) -> tuple[WatchdogError, float]:
    started = time.monotonic()
    with pytest.raises(WatchdogError) as info:
        sim.run()
    return info.value, time.monotonic() - started


def _lines_of(fn: object) -> range:
    code = fn.__code__  # type: ignore[attr-defined]
    last = max(line for _, _, line in code.co_lines() if line is not None)
    return range(code.co_firstlineno, last + 1)


def test_a_spinning_thread_of_control_is_named_with_its_frame() -> None:
    def spin() -> None:
        n = 0
        while True:
            n += 1

    with Simulation(watchdog=TIMEOUT) as sim:
        sim.thread("spinner", spin)
        error, elapsed = _stopped(sim)
    match = SITE.match(error.site)
    assert match is not None, error.site
    assert match.group(2) == "spin"
    assert int(match.group(1)) in _lines_of(spin)
    assert error.thread == "spinner"
    assert str(error) == _message("spinner", error.site)
    assert error.__notes__ == ["(raised in thread of control 'spinner')"]
    assert isinstance(error, SimulationError)
    assert TIMEOUT <= elapsed < 20 * TIMEOUT


def test_a_real_blocking_sleep_is_interrupted_and_named() -> None:
    def nap() -> None:
        time.sleep(60)

    with Simulation(watchdog=TIMEOUT) as sim:
        sim.thread("napper", nap)
        error, elapsed = _stopped(sim)
    assert error.site == f"tests/evloop/test_watchdog.py:{_lines_of(nap)[1]} in nap()"
    assert str(error) == _message("napper", error.site)
    assert elapsed < 20 * TIMEOUT


def test_a_real_blocking_read_and_lock_are_interrupted() -> None:
    r, w = os.pipe()
    lock = threading.Lock()
    lock.acquire()
    try:

        def read() -> None:
            os.read(r, 1)

        def take() -> None:
            lock.acquire()

        for name, fn in (("reader", read), ("locker", take)):
            with Simulation(watchdog=TIMEOUT) as sim:
                sim.thread(name, fn)
                error, elapsed = _stopped(sim)
            assert error.thread == name
            assert error.site.endswith(f" in {fn.__name__}()")
            assert elapsed < 20 * TIMEOUT
    finally:
        os.close(r)
        os.close(w)


def test_a_callback_spinning_on_the_main_thread_is_named() -> None:
    def stuck() -> None:
        while True:
            pass

    with Simulation(watchdog=TIMEOUT) as sim:
        sim.main_loop.aio_context.bh_schedule_oneshot(stuck)
        error, _ = _stopped(sim)
    assert error.thread == "main"
    assert error.site.endswith(" in stuck()")


def test_a_thread_that_waits_in_virtual_time_is_never_stopped() -> None:
    # Half a second of wall time, far past the timeout, but it keeps moving.
    with Simulation(watchdog=0.05) as sim:
        deadline = time.monotonic() + 0.5
        count = [0]

        def busy() -> None:
            while time.monotonic() < deadline:
                sim.sleep(1)
                count[0] += 1

        sim.thread("busy", busy)
        assert sim.run().reason.value == "idle"
    assert count[0] > 0


def test_the_main_thread_waiting_outside_run_is_watched_too() -> None:
    with Simulation(watchdog=TIMEOUT) as sim:
        t = sim.thread("napper", lambda: time.sleep(60))
        with pytest.raises(WatchdogError) as info:
            t.join()
    assert info.value.thread == "napper"


def test_the_watchdog_can_be_turned_off_and_is_off_for_os_threads() -> None:
    with Simulation(watchdog=None) as sim:
        assert sim.watchdog is None
        seen: list[object] = []
        sim.thread("w", lambda: seen.append(signal.getsignal(signal.SIGALRM)))
        sim.run()
    assert seen == [signal.SIG_DFL]
    with Simulation(threads="os") as sim:
        assert sim.watchdog is None
    with Simulation() as sim:
        assert sim.watchdog is not None
        assert sim.watchdog.timeout == 5.0
        assert repr(sim.watchdog) == "<Watchdog 5 s off>"


def test_someone_elses_alarm_handler_is_left_alone_and_a_thread_watches() -> None:
    def theirs(signum: int, frame: object) -> None:
        pass

    signal.signal(signal.SIGALRM, theirs)
    try:
        with Simulation(watchdog=TIMEOUT) as sim:
            seen: list[object] = []

            def spin() -> None:
                seen.append(signal.getsignal(signal.SIGALRM))
                seen.extend(t.name for t in threading.enumerate() if t.name == "evloop:watchdog")
                while True:
                    pass

            sim.thread("w", spin)
            error, _ = _stopped(sim)
        assert seen == [theirs, "evloop:watchdog"]
        assert error.thread == "w"
        assert str(error) == _message("w", error.site)
    finally:
        signal.signal(signal.SIGALRM, signal.SIG_DFL)


def _in_a_thread(fn: Callable[[], None]) -> tuple[BaseException | None, float]:
    """Build and run a simulation whose thread of control runs ``fn``, off the main thread."""
    out: list[BaseException | None] = []
    started = time.monotonic()

    def body() -> None:
        with Simulation(watchdog=TIMEOUT) as sim:
            sim.thread("stuck", fn)
            try:
                sim.run()
            except BaseException as exc:
                out.append(exc)
            else:
                out.append(None)

    t = threading.Thread(target=body, name="driver")
    t.start()
    t.join(timeout=30)
    assert not t.is_alive()
    return out[0], time.monotonic() - started


def test_off_the_main_thread_a_spin_is_stopped_by_the_watching_thread() -> None:
    def spin() -> None:
        n = 0
        while True:
            n += 1

    error, elapsed = _in_a_thread(spin)
    assert isinstance(error, WatchdogError)
    assert error.thread == "stuck"
    match = SITE.match(error.site)
    assert match is not None and match.group(2) == "spin"
    assert str(error) == _message("stuck", error.site)
    assert error.__notes__ == ["(raised in thread of control 'stuck')"]
    assert elapsed < 20 * TIMEOUT
    assert [t.name for t in threading.enumerate() if t.name == "evloop:watchdog"] == []


def test_off_the_main_thread_a_real_blocking_call_is_named_on_stderr_then_stopped(
    capfd: pytest.CaptureFixture[str],
) -> None:
    def nap() -> None:
        time.sleep(6 * TIMEOUT)  # cannot be interrupted from outside

    error, elapsed = _in_a_thread(nap)
    assert isinstance(error, WatchdogError)
    assert error.thread == "stuck"
    assert error.site.endswith(" in nap()")
    assert elapsed >= 6 * TIMEOUT
    err = capfd.readouterr().err
    said = f"{_message('stuck', error.site)} (blocked in a real call; raised when it returns)\n"
    assert err.count(said) == 1


@pytest.mark.parametrize("value", [0, -1.0, "5", True, float("nan")])
def test_a_bad_timeout_is_refused(value: object) -> None:
    with pytest.raises(
        ValueError,
        match=re.escape(f"watchdog must be a positive number of seconds or None, not {value!r}"),
    ):
        Simulation(watchdog=value)  # type: ignore[arg-type]


def test_a_run_inside_another_runs_callback_hands_the_alarm_back() -> None:
    seen: dict[str, object] = {}
    with Simulation(watchdog=TIMEOUT) as outer:

        def nested() -> None:
            seen["outer handler"] = signal.getsignal(signal.SIGALRM)
            with Simulation(watchdog=TIMEOUT / 2, sanitize=True) as inner:
                inner.thread("w", lambda: seen.update(inner=signal.getsignal(signal.SIGALRM)))
                inner.run()
            seen["after"] = signal.getsignal(signal.SIGALRM)
            seen["timer"] = signal.getitimer(signal.ITIMER_REAL)[1]

        outer.main_loop.aio_context.bh_schedule_oneshot(nested)
        outer.run()
        assert outer.watchdog is not None
        assert seen["outer handler"] == outer.watchdog._tick
        assert seen["inner"] != outer.watchdog._tick
        assert seen["after"] == outer.watchdog._tick
        assert seen["timer"] == pytest.approx(TIMEOUT / 4)
