"""Tests for evloop.notifier: QEMU's EventNotifier on a virtual eventfd."""

from __future__ import annotations

import errno
from select import POLLIN, POLLOUT

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evloop.loop.fds import EVENTFD_MAX, FdTable
from evloop.loop.notifier import EventNotifier


class Recorder:
    def __init__(self) -> None:
        self.log: list[tuple[int, int]] = []

    def fd_ready(self, fd: int, mask: int) -> None:
        self.log.append((fd, mask))


def test_a_new_notifier_is_a_clear_counting_eventfd() -> None:
    fds = FdTable()
    n = EventNotifier(fds)
    assert n.fd == 3
    assert fds.kind(n.fd) == "eventfd"
    assert fds.mask(n.fd) == POLLOUT
    assert n.test_and_clear() is False
    assert repr(n) == "<EventNotifier fd=3 clear>"


def test_an_active_notifier_starts_set() -> None:
    n = EventNotifier(FdTable(), active=True)
    assert repr(n) == "<EventNotifier fd=3 set>"
    assert n.test_and_clear() is True
    assert n.test_and_clear() is False


def test_set_makes_the_fd_readable_and_test_and_clear_clears_it() -> None:
    fds = FdTable()
    n = EventNotifier(fds)
    n.set()
    assert fds.mask(n.fd) == POLLIN | POLLOUT
    assert repr(n) == "<EventNotifier fd=3 set>"
    assert n.test_and_clear() is True
    assert fds.mask(n.fd) == POLLOUT


def test_many_sets_are_cleared_by_one_test_and_clear() -> None:
    n = EventNotifier(FdTable())
    for _ in range(5):
        n.set()
    assert n.test_and_clear() is True
    assert n.test_and_clear() is False


def test_set_on_a_full_counter_is_quietly_still_set() -> None:
    fds = FdTable()
    n = EventNotifier(fds)
    fds.write(n.fd, EVENTFD_MAX.to_bytes(8, "little"))
    n.set()  # EAGAIN inside, ignored as QEMU does
    assert fds.mask(n.fd) == POLLIN
    assert n.test_and_clear() is True
    assert n.test_and_clear() is False


def test_watchers_of_the_fd_see_set_and_clear() -> None:
    fds = FdTable()
    n = EventNotifier(fds)
    rec = Recorder()
    fds.watch(n.fd, rec)
    n.set()
    n.test_and_clear()
    n.test_and_clear()  # nothing to clear: nobody is told
    assert rec.log == [(3, POLLOUT), (3, POLLIN | POLLOUT), (3, POLLOUT)]


def test_notifiers_take_the_lowest_free_numbers() -> None:
    fds = FdTable()
    r, _ = fds.pipe()
    fds.close(r)
    assert EventNotifier(fds).fd == 3
    assert EventNotifier(fds).fd == 5


def test_close_frees_the_fd_and_forgets_it() -> None:
    fds = FdTable()
    n = EventNotifier(fds, active=True)
    n.close()
    assert n.fd == -1
    assert fds.open_fds() == []
    assert repr(n) == "<EventNotifier closed>"


def test_closing_twice_does_nothing() -> None:
    fds = FdTable()
    n = EventNotifier(fds)
    n.close()
    fds.eventfd()  # takes the number the notifier had
    n.close()
    assert fds.open_fds() == [3]


@pytest.mark.parametrize("op", ["set", "test_and_clear"])
def test_a_closed_notifier_is_ebadf(op: str) -> None:
    n = EventNotifier(FdTable())
    n.close()
    with pytest.raises(OSError) as info:
        getattr(n, op)()
    assert type(info.value) is OSError
    assert info.value.errno == errno.EBADF
    assert info.value.strerror == f"Bad file descriptor ({op} on a closed EventNotifier)"


def test_a_closed_notifier_never_touches_the_reused_number() -> None:
    fds = FdTable()
    n = EventNotifier(fds)
    n.close()
    other = EventNotifier(fds, active=True)
    assert other.fd == 3
    with pytest.raises(OSError):
        n.test_and_clear()
    with pytest.raises(OSError):
        n.set()
    assert other.test_and_clear() is True


def test_an_fd_closed_behind_its_back_fails_loudly() -> None:
    fds = FdTable()
    n = EventNotifier(fds)
    fds.close(n.fd)
    with pytest.raises(OSError) as info:
        n.set()
    assert (info.value.errno, info.value.strerror) == (
        errno.EBADF,
        "Bad file descriptor (write on fd 3)",
    )
    with pytest.raises(OSError) as info:
        n.test_and_clear()
    assert (info.value.errno, info.value.strerror) == (
        errno.EBADF,
        "Bad file descriptor (read on fd 3)",
    )


def test_fd_is_read_only() -> None:
    n = EventNotifier(FdTable())
    with pytest.raises(AttributeError):
        n.fd = 7  # type: ignore[misc]


@given(st.lists(st.booleans(), max_size=50), st.booleans())
def test_a_notifier_is_a_flag(ops: list[bool], active: bool) -> None:
    """Whatever the order of set and test_and_clear, it behaves as one boolean."""
    fds = FdTable()
    n = EventNotifier(fds, active=active)
    flag = active
    for is_set in ops:
        if is_set:
            n.set()
            flag = True
        else:
            assert n.test_and_clear() is flag
            flag = False
        assert bool(fds.mask(n.fd) & POLLIN) is flag
