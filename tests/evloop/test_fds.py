"""Tests for evloop.fds: the virtual fd layer, checked against Linux's rules."""

from __future__ import annotations

import errno
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from select import POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT, POLLPRI, POLLRDHUP

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)

from evloop import WaitCondition
from evloop.errors import DeadlockError
from evloop.loop.fds import EVENTFD_MAX, PIPE_BUF, PIPE_CAPACITY, SOCKET_CAPACITY, FdTable

# -- helpers ------------------------------------------------------------------


@contextmanager
def raises_os(exc_type: type[OSError], code: int, message: str) -> Iterator[None]:
    """Expect exactly ``exc_type`` (not a subclass) with ``code`` and ``message``."""
    with pytest.raises(exc_type) as info:
        yield
    assert type(info.value) is exc_type
    assert info.value.errno == code
    assert info.value.strerror == message


def u64(value: int) -> bytes:
    return value.to_bytes(8, "little")


class Recorder:
    """A watcher that logs every call into a log shared with other recorders."""

    def __init__(self, name: str, log: list[tuple[str, int, int]] | None = None) -> None:
        self.name = name
        self.log: list[tuple[str, int, int]] = [] if log is None else log
        self.last: dict[int, int] = {}

    def fd_ready(self, fd: int, mask: int) -> None:
        self.log.append((self.name, fd, mask))
        self.last[fd] = mask

    def __repr__(self) -> str:
        return f"<Recorder {self.name}>"


class Counter:
    """A watcher that only counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def fd_ready(self, fd: int, mask: int) -> None:
        self.calls += 1


class FakeBlocker:
    """Records each block() and runs ``during`` inside it, as another thread would."""

    def __init__(self, during: Callable[[], None] | None = None) -> None:
        self.during = during
        self.calls: list[tuple[str, int, bool]] = []
        self.ready_after: list[bool] = []

    def block(self, cond: WaitCondition, timeout_ns: int) -> None:
        self.calls.append((cond.describe(), timeout_ns, cond.ready()))
        if self.during is not None:
            self.during()
        self.ready_after.append(cond.ready())


def fill_pipe(fds: FdTable, w: int, nbytes: int) -> None:
    """Put exactly ``nbytes`` into the pipe of write end ``w``."""
    while nbytes:
        nbytes -= fds.write(w, b"x" * min(nbytes, PIPE_CAPACITY))


# -- allocation ---------------------------------------------------------------


def test_numbers_start_at_3_and_pipe_takes_the_read_end_first() -> None:
    fds = FdTable()
    assert fds.pipe() == (3, 4)
    assert fds.socketpair() == (5, 6)
    assert fds.eventfd() == 7
    assert fds.open_fds() == [3, 4, 5, 6, 7]


def test_first_fd_is_configurable() -> None:
    fds = FdTable(first_fd=0)
    assert fds.pipe() == (0, 1)
    assert FdTable(first_fd=100).eventfd() == 100


def test_negative_first_fd_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^first_fd must not be negative, not -1$"):
        FdTable(first_fd=-1)


def test_the_lowest_free_number_is_reused() -> None:
    fds = FdTable()
    for _ in range(5):
        fds.eventfd()
    fds.close(6)
    fds.close(4)
    assert fds.open_fds() == [3, 5, 7]
    assert fds.eventfd() == 4
    assert fds.pipe() == (6, 8)
    assert fds.eventfd() == 9


def test_a_pipe_can_straddle_reused_and_new_numbers() -> None:
    fds = FdTable()
    r, _ = fds.pipe()
    fds.close(r)
    assert fds.socketpair() == (3, 5)


def test_closing_everything_starts_over_at_first_fd() -> None:
    fds = FdTable()
    opened = [fds.eventfd() for _ in range(4)]
    for fd in reversed(opened):
        fds.close(fd)
    assert fds.open_fds() == []
    assert [fds.eventfd() for _ in range(4)] == opened


def test_kind_and_is_open() -> None:
    fds = FdTable()
    r, w = fds.pipe()
    a, b = fds.socketpair()
    e = fds.eventfd()
    assert [fds.kind(fd) for fd in (r, w, a, b, e)] == [
        "pipe-r",
        "pipe-w",
        "socket",
        "socket",
        "eventfd",
    ]
    assert fds.is_open(r) and fds.is_open(e)
    assert not fds.is_open(2) and not fds.is_open(99) and not fds.is_open(-1)
    fds.close(w)
    assert not fds.is_open(w)
    with raises_os(OSError, errno.EBADF, f"Bad file descriptor (kind on fd {w})"):
        fds.kind(w)


def test_repr() -> None:
    fds = FdTable()
    fds.pipe()
    assert repr(fds) == "<FdTable first_fd=3 open=[3, 4]>"


# -- errors common to every kind ----------------------------------------------


@pytest.mark.parametrize("fd", [-1, 0, 2, 3, 99])
def test_unknown_fds_are_ebadf(fd: int) -> None:
    fds = FdTable()
    with raises_os(OSError, errno.EBADF, f"Bad file descriptor (read on fd {fd})"):
        fds.read(fd, 1)
    with raises_os(OSError, errno.EBADF, f"Bad file descriptor (read on fd {fd})"):
        fds.read(fd, 0)
    with raises_os(OSError, errno.EBADF, f"Bad file descriptor (write on fd {fd})"):
        fds.write(fd, b"x")
    with raises_os(OSError, errno.EBADF, f"Bad file descriptor (write on fd {fd})"):
        fds.write(fd, b"")
    with raises_os(OSError, errno.EBADF, f"Bad file descriptor (close on fd {fd})"):
        fds.close(fd)


def test_closing_twice_is_ebadf() -> None:
    fds = FdTable()
    e = fds.eventfd()
    fds.close(e)
    with raises_os(OSError, errno.EBADF, "Bad file descriptor (close on fd 3)"):
        fds.close(e)


def test_every_operation_on_a_closed_fd_is_ebadf() -> None:
    fds = FdTable()
    for fd in (*fds.pipe(), *fds.socketpair(), fds.eventfd()):
        fds.close(fd)
        with raises_os(OSError, errno.EBADF, f"Bad file descriptor (read on fd {fd})"):
            fds.read(fd, 8)
        with raises_os(OSError, errno.EBADF, f"Bad file descriptor (write on fd {fd})"):
            fds.write(fd, u64(1))


def test_a_negative_read_size_is_a_value_error() -> None:
    fds = FdTable()
    r, _ = fds.pipe()
    message = "read size must not be negative (read of -1 bytes on fd 3)"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        fds.read(r, -1)


def test_a_negative_read_size_is_checked_before_the_fd() -> None:
    with pytest.raises(ValueError, match="read of -5 bytes on fd 42"):
        FdTable().read(42, -5)


# -- pipes --------------------------------------------------------------------


def test_pipe_bytes_arrive_in_order() -> None:
    fds = FdTable()
    r, w = fds.pipe()
    assert fds.write(w, b"hello ") == 6
    assert fds.write(w, b"world") == 5
    assert fds.read(r, 3) == b"hel"
    assert fds.read(r, 100) == b"lo world"


def test_reading_an_empty_pipe_is_eagain() -> None:
    fds = FdTable()
    r, _ = fds.pipe()
    with raises_os(
        BlockingIOError, errno.EAGAIN, "Resource temporarily unavailable (read on fd 3)"
    ):
        fds.read(r, 1)


def test_read_of_zero_bytes_returns_nothing_and_consumes_nothing() -> None:
    fds = FdTable()
    r, w = fds.pipe()
    assert fds.read(r, 0) == b""  # empty pipe, writer open: still no EAGAIN
    fds.write(w, b"abc")
    assert fds.read(r, 0) == b""
    assert fds.read(r, 3) == b"abc"


def test_the_wrong_end_of_a_pipe_is_ebadf_even_for_zero_bytes() -> None:
    fds = FdTable()
    r, w = fds.pipe()
    with raises_os(OSError, errno.EBADF, "Bad file descriptor (read on fd 4)"):
        fds.read(w, 0)
    with raises_os(OSError, errno.EBADF, "Bad file descriptor (read on fd 4)"):
        fds.read(w, 10)
    with raises_os(OSError, errno.EBADF, "Bad file descriptor (write on fd 3)"):
        fds.write(r, b"")
    with raises_os(OSError, errno.EBADF, "Bad file descriptor (write on fd 3)"):
        fds.write(r, b"x")


def test_pipe_eof_comes_after_the_buffered_bytes() -> None:
    fds = FdTable()
    r, w = fds.pipe()
    fds.write(w, b"last words")
    fds.close(w)
    assert fds.read(r, 4) == b"last"
    assert fds.read(r, 100) == b" words"
    assert fds.read(r, 100) == b""
    assert fds.read(r, 100) == b""


def test_writing_to_a_pipe_without_reader_is_epipe() -> None:
    fds = FdTable()
    r, w = fds.pipe()
    fds.close(r)
    with raises_os(BrokenPipeError, errno.EPIPE, "Broken pipe (write on fd 4)"):
        fds.write(w, b"x")
    with raises_os(BrokenPipeError, errno.EPIPE, "Broken pipe (write on fd 4)"):
        fds.write(w, b"x" * (PIPE_CAPACITY + 1))


def test_epipe_comes_before_eagain() -> None:
    fds = FdTable()
    r, w = fds.pipe()
    fill_pipe(fds, w, PIPE_CAPACITY)
    fds.close(r)
    with raises_os(BrokenPipeError, errno.EPIPE, "Broken pipe (write on fd 4)"):
        fds.write(w, b"x")


def test_an_empty_pipe_write_succeeds_even_without_reader() -> None:
    fds = FdTable()
    r, w = fds.pipe()
    assert fds.write(w, b"") == 0
    fds.close(r)
    assert fds.write(w, b"") == 0  # Linux: "Null write succeeds"


def test_a_pipe_holds_exactly_its_capacity() -> None:
    fds = FdTable()
    r, w = fds.pipe()
    assert fds.write(w, b"a" * PIPE_CAPACITY) == PIPE_CAPACITY
    with raises_os(
        BlockingIOError, errno.EAGAIN, "Resource temporarily unavailable (write on fd 4)"
    ):
        fds.write(w, b"b")
    assert fds.read(r, PIPE_CAPACITY + 1) == b"a" * PIPE_CAPACITY


def test_a_large_write_to_an_empty_pipe_is_partial() -> None:
    fds = FdTable()
    r, w = fds.pipe()
    data = bytes(range(256)) * 400  # 102400 bytes
    assert fds.write(w, data) == PIPE_CAPACITY
    assert fds.read(r, len(data)) == data[:PIPE_CAPACITY]


def test_small_writes_are_atomic() -> None:
    fds = FdTable()
    r, w = fds.pipe()
    fill_pipe(fds, w, PIPE_CAPACITY - 100)
    with raises_os(
        BlockingIOError, errno.EAGAIN, "Resource temporarily unavailable (write on fd 4)"
    ):
        fds.write(w, b"y" * 101)
    assert fds.write(w, b"y" * 100) == 100
    assert fds.read(r, PIPE_CAPACITY) == b"x" * (PIPE_CAPACITY - 100) + b"y" * 100


def test_a_write_of_exactly_pipe_buf_is_atomic() -> None:
    fds = FdTable()
    _, w = fds.pipe()
    fill_pipe(fds, w, PIPE_CAPACITY - PIPE_BUF + 1)
    with raises_os(
        BlockingIOError, errno.EAGAIN, "Resource temporarily unavailable (write on fd 4)"
    ):
        fds.write(w, b"y" * PIPE_BUF)


def test_a_write_just_over_pipe_buf_may_be_partial() -> None:
    fds = FdTable()
    r, w = fds.pipe()
    fill_pipe(fds, w, PIPE_CAPACITY - PIPE_BUF + 1)
    assert fds.write(w, b"y" * (PIPE_BUF + 1)) == PIPE_BUF - 1
    assert fds.read(r, PIPE_CAPACITY)[-PIPE_BUF:] == b"x" + b"y" * (PIPE_BUF - 1)


def test_a_large_write_is_eagain_only_when_nothing_fits() -> None:
    fds = FdTable()
    r, w = fds.pipe()
    fill_pipe(fds, w, PIPE_CAPACITY - 1)
    assert fds.write(w, b"y" * 10000) == 1
    with raises_os(
        BlockingIOError, errno.EAGAIN, "Resource temporarily unavailable (write on fd 4)"
    ):
        fds.write(w, b"z" * 10000)
    fds.read(r, 10)
    assert fds.write(w, b"z" * 10000) == 10


def test_bytes_like_data_is_accepted() -> None:
    fds = FdTable()
    r, w = fds.pipe()
    assert fds.write(w, bytearray(b"ab")) == 2
    assert fds.write(w, memoryview(b"cd")) == 2  # type: ignore[arg-type]
    assert fds.read(r, 10) == b"abcd"


def test_pipe_masks() -> None:
    fds = FdTable()
    r, w = fds.pipe()
    assert fds.mask(r) == 0
    assert fds.mask(w) == POLLOUT
    fds.write(w, b"x")
    assert fds.mask(r) == POLLIN
    assert fds.mask(w) == POLLOUT


def test_pipe_write_end_is_writable_while_pipe_buf_bytes_are_free() -> None:
    fds = FdTable()
    r, w = fds.pipe()
    fill_pipe(fds, w, PIPE_CAPACITY - PIPE_BUF)
    assert fds.mask(w) == POLLOUT
    fds.write(w, b"x")
    assert fds.mask(w) == 0
    fds.read(r, 1)
    assert fds.mask(w) == POLLOUT


def test_pipe_read_end_hangs_up_when_the_writer_closes() -> None:
    fds = FdTable()
    r, w = fds.pipe()
    fds.write(w, b"x")
    fds.close(w)
    assert fds.mask(r) == POLLIN | POLLHUP
    fds.read(r, 1)
    assert fds.mask(r) == POLLHUP


def test_pipe_write_end_errors_when_the_reader_closes() -> None:
    fds = FdTable()
    r, w = fds.pipe()
    fds.close(r)
    assert fds.mask(w) == POLLOUT | POLLERR


def test_a_full_pipe_keeps_its_buffer_after_the_reader_closes() -> None:
    # Linux frees a pipe's buffers only when both ends are gone, so POLLOUT
    # still reflects the bytes nobody can read any more.
    fds = FdTable()
    r, w = fds.pipe()
    fill_pipe(fds, w, PIPE_CAPACITY)
    fds.close(r)
    assert fds.mask(w) == POLLERR


def test_closed_and_unknown_fds_are_pollnval() -> None:
    fds = FdTable()
    r, _ = fds.pipe()
    fds.close(r)
    assert fds.mask(r) == POLLNVAL
    assert fds.mask(0) == POLLNVAL
    assert fds.mask(1000) == POLLNVAL
    assert fds.mask(-1) == POLLNVAL


# -- sockets ------------------------------------------------------------------


def test_socketpair_carries_bytes_both_ways() -> None:
    fds = FdTable()
    a, b = fds.socketpair()
    assert fds.write(a, b"ping") == 4
    assert fds.write(b, b"pong!") == 5
    assert fds.read(b, 10) == b"ping"
    assert fds.read(a, 2) == b"po"
    assert fds.read(a, 10) == b"ng!"


def test_reading_an_empty_socket_is_eagain() -> None:
    fds = FdTable()
    a, _ = fds.socketpair()
    with raises_os(
        BlockingIOError, errno.EAGAIN, "Resource temporarily unavailable (read on fd 3)"
    ):
        fds.read(a, 1)
    assert fds.read(a, 0) == b""


def test_a_socket_end_holds_its_capacity_and_writes_are_partial() -> None:
    fds = FdTable()
    a, b = fds.socketpair()
    assert fds.write(a, b"x" * (SOCKET_CAPACITY - 3)) == SOCKET_CAPACITY - 3
    assert fds.write(a, b"12345") == 3  # no PIPE_BUF atomicity on a stream socket
    with raises_os(
        BlockingIOError, errno.EAGAIN, "Resource temporarily unavailable (write on fd 3)"
    ):
        fds.write(a, b"6")
    assert fds.write(b, b"the other way is free") == 21
    assert fds.read(b, SOCKET_CAPACITY)[-3:] == b"123"


def test_socket_masks() -> None:
    fds = FdTable()
    a, b = fds.socketpair()
    assert fds.mask(a) == POLLOUT
    assert fds.mask(b) == POLLOUT
    fds.write(a, b"x" * (SOCKET_CAPACITY - 1))
    assert fds.mask(a) == POLLOUT
    assert fds.mask(b) == POLLIN | POLLOUT
    fds.write(a, b"x")
    assert fds.mask(a) == 0
    fds.read(b, 1)
    assert fds.mask(a) == POLLOUT


def test_socket_peer_close_gives_eof_after_the_queued_bytes() -> None:
    fds = FdTable()
    a, b = fds.socketpair()
    fds.write(a, b"bye")
    fds.close(a)
    assert fds.mask(b) == POLLIN | POLLRDHUP | POLLHUP | POLLOUT
    assert fds.read(b, 10) == b"bye"
    assert fds.read(b, 10) == b""
    assert fds.mask(b) == POLLIN | POLLRDHUP | POLLHUP | POLLOUT


def test_writing_to_a_closed_peer_is_epipe_even_for_zero_bytes() -> None:
    fds = FdTable()
    a, b = fds.socketpair()
    fds.close(b)
    with raises_os(BrokenPipeError, errno.EPIPE, "Broken pipe (write on fd 3)"):
        fds.write(a, b"x")
    with raises_os(BrokenPipeError, errno.EPIPE, "Broken pipe (write on fd 3)"):
        fds.write(a, b"")


def test_an_empty_socket_write_succeeds_while_the_peer_is_open() -> None:
    fds = FdTable()
    a, b = fds.socketpair()
    fds.write(a, b"x" * SOCKET_CAPACITY)
    assert fds.write(a, b"") == 0  # even with no room
    assert fds.mask(b) == POLLIN | POLLOUT


def test_closing_a_socket_end_drops_its_unread_bytes() -> None:
    fds = FdTable()
    a, b = fds.socketpair()
    fds.write(a, b"x" * SOCKET_CAPACITY)
    fds.close(b)
    assert fds.mask(a) == POLLIN | POLLRDHUP | POLLHUP | POLLOUT
    assert fds.read(a, 1) == b""


# -- eventfd ------------------------------------------------------------------


def test_eventfd_read_returns_and_resets_the_counter() -> None:
    fds = FdTable()
    e = fds.eventfd(5)
    assert fds.write(e, u64(2)) == 8
    assert fds.read(e, 8) == u64(7)
    with raises_os(
        BlockingIOError, errno.EAGAIN, "Resource temporarily unavailable (read on fd 3)"
    ):
        fds.read(e, 8)


def test_eventfd_bytes_are_little_endian() -> None:
    fds = FdTable()
    e = fds.eventfd(0x0102)
    assert fds.read(e, 100) == b"\x02\x01\x00\x00\x00\x00\x00\x00"


def test_eventfd_semaphore_mode_counts_down_by_one() -> None:
    fds = FdTable()
    e = fds.eventfd(2, semaphore=True)
    fds.write(e, u64(1))
    assert [fds.read(e, 8) for _ in range(3)] == [u64(1)] * 3
    with raises_os(
        BlockingIOError, errno.EAGAIN, "Resource temporarily unavailable (read on fd 3)"
    ):
        fds.read(e, 8)


@pytest.mark.parametrize("n", [0, 1, 7])
def test_eventfd_short_reads_are_einval_even_when_empty(n: int) -> None:
    fds = FdTable()
    full = fds.eventfd(1)
    empty = fds.eventfd(0)
    with raises_os(OSError, errno.EINVAL, "Invalid argument (read on fd 3)"):
        fds.read(full, n)
    with raises_os(OSError, errno.EINVAL, "Invalid argument (read on fd 4)"):
        fds.read(empty, n)
    assert fds.read(full, 8) == u64(1)  # nothing consumed


@pytest.mark.parametrize("data", [b"", b"\x01", b"\x01" * 7])
def test_eventfd_short_writes_are_einval(data: bytes) -> None:
    fds = FdTable()
    e = fds.eventfd()
    with raises_os(OSError, errno.EINVAL, "Invalid argument (write on fd 3)"):
        fds.write(e, data)
    assert fds.mask(e) == POLLOUT


def test_eventfd_write_uses_the_first_eight_bytes() -> None:
    fds = FdTable()
    e = fds.eventfd()
    assert fds.write(e, u64(3) + b"ignored") == 8
    assert fds.read(e, 8) == u64(3)


def test_eventfd_refuses_the_all_ones_value() -> None:
    fds = FdTable()
    e = fds.eventfd()
    with raises_os(OSError, errno.EINVAL, "Invalid argument (write on fd 3)"):
        fds.write(e, u64(0xFFFFFFFFFFFFFFFF))


def test_eventfd_write_of_zero_changes_nothing() -> None:
    fds = FdTable()
    e = fds.eventfd()
    assert fds.write(e, u64(0)) == 8
    assert fds.mask(e) == POLLOUT


def test_eventfd_counter_saturates_at_eventfd_max() -> None:
    fds = FdTable()
    e = fds.eventfd(1)
    assert fds.write(e, u64(EVENTFD_MAX - 2)) == 8
    assert fds.mask(e) == POLLIN | POLLOUT
    assert fds.write(e, u64(1)) == 8
    assert fds.mask(e) == POLLIN  # full: no longer writable
    with raises_os(
        BlockingIOError, errno.EAGAIN, "Resource temporarily unavailable (write on fd 3)"
    ):
        fds.write(e, u64(1))
    assert fds.write(e, u64(0)) == 8  # adding nothing always fits
    assert fds.read(e, 8) == u64(EVENTFD_MAX)
    assert fds.mask(e) == POLLOUT


def test_eventfd_overflowing_write_is_eagain_and_changes_nothing() -> None:
    fds = FdTable()
    e = fds.eventfd(10)
    with raises_os(
        BlockingIOError, errno.EAGAIN, "Resource temporarily unavailable (write on fd 3)"
    ):
        fds.write(e, u64(EVENTFD_MAX - 9))
    assert fds.read(e, 8) == u64(10)


def test_eventfd_initval_is_an_unsigned_int() -> None:
    fds = FdTable()
    assert fds.read(fds.eventfd(0xFFFFFFFF), 8) == u64(0xFFFFFFFF)
    for bad in (-1, 0x100000000):
        message = f"eventfd initval must be in 0..0xffffffff (an unsigned int), not {bad}"
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            fds.eventfd(bad)
    assert fds.open_fds() == [3]  # a refused eventfd takes no number


def test_eventfd_masks() -> None:
    fds = FdTable()
    assert fds.mask(fds.eventfd()) == POLLOUT
    assert fds.mask(fds.eventfd(1)) == POLLIN | POLLOUT


# -- poll ---------------------------------------------------------------------


def test_poll_keeps_input_order_and_drops_quiet_entries() -> None:
    fds = FdTable()
    r, w = fds.pipe()
    e = fds.eventfd(1)
    fds.write(w, b"x")
    assert fds.poll([(e, POLLIN), (r, POLLIN), (w, POLLIN), (r, POLLIN | POLLOUT)], 0) == [
        (e, POLLIN),
        (r, POLLIN),
        (r, POLLIN),
    ]
    assert fds.poll([(w, POLLOUT), (e, POLLOUT | POLLIN)], 0) == [
        (w, POLLOUT),
        (e, POLLIN | POLLOUT),
    ]


def test_poll_reports_err_hup_and_nval_unasked() -> None:
    fds = FdTable()
    r1, w1 = fds.pipe()
    r2, w2 = fds.pipe()
    fds.close(w1)  # r1: POLLHUP
    fds.close(r2)  # w2: POLLERR (and POLLOUT, not asked)
    assert fds.poll([(r1, 0), (w2, 0), (w1, 0), (99, POLLIN)], 0) == [
        (r1, POLLHUP),
        (w2, POLLERR),
        (w1, POLLNVAL),
        (99, POLLNVAL),
    ]


def test_poll_reports_rdhup_only_when_asked() -> None:
    fds = FdTable()
    a, b = fds.socketpair()
    fds.close(b)
    assert fds.poll([(a, POLLIN)], 0) == [(a, POLLIN | POLLHUP)]
    assert fds.poll([(a, POLLIN | POLLRDHUP)], 0) == [(a, POLLIN | POLLRDHUP | POLLHUP)]
    assert fds.poll([(a, POLLPRI)], 0) == [(a, POLLHUP)]


def test_poll_ignores_negative_fds() -> None:
    fds = FdTable()
    e = fds.eventfd(1)
    assert fds.poll([(-1, POLLIN), (e, POLLIN), (-7, 0)], 0) == [(e, POLLIN)]


def test_poll_with_a_zero_timeout_never_blocks() -> None:
    blocker = FakeBlocker()
    fds = FdTable(blocker=blocker)
    r, _ = fds.pipe()
    assert fds.poll([(r, POLLIN)], 0) == []
    assert blocker.calls == []


def test_poll_does_not_block_when_something_is_ready() -> None:
    blocker = FakeBlocker()
    fds = FdTable(blocker=blocker)
    e = fds.eventfd(1)
    assert fds.poll([(e, POLLIN)], -1) == [(e, POLLIN)]
    assert blocker.calls == []


def test_poll_blocks_in_the_blocker_and_sees_what_happened_meanwhile() -> None:
    fds = FdTable()
    r1, _ = fds.pipe()
    r2, w2 = fds.pipe()
    blocker = FakeBlocker(during=lambda: fds.write(w2, b"wake"))
    fds.blocker = blocker
    assert fds.poll([(r1, POLLIN), (r2, POLLIN)], 5_000) == [(r2, POLLIN)]
    assert blocker.calls == [("poll(fds=[3, 5])", 5_000, False)]
    assert blocker.ready_after == [True]


def test_poll_passes_an_infinite_timeout_to_the_blocker() -> None:
    fds = FdTable()
    e = fds.eventfd()
    blocker = FakeBlocker(during=lambda: fds.write(e, u64(1)))
    fds.blocker = blocker
    assert fds.poll([(e, POLLIN)], -1) == [(e, POLLIN)]
    assert blocker.calls == [("poll(fds=[3])", -1, False)]


def test_poll_returns_nothing_when_the_blocker_times_out() -> None:
    blocker = FakeBlocker()
    fds = FdTable(blocker=blocker)
    r, _ = fds.pipe()
    assert fds.poll([(r, POLLIN)], 1_000_000) == []
    assert blocker.calls == [("poll(fds=[3])", 1_000_000, False)]
    assert blocker.ready_after == [False]


def test_the_wait_condition_sees_the_always_reported_bits() -> None:
    fds = FdTable()
    r, w = fds.pipe()
    blocker = FakeBlocker(during=lambda: fds.close(w))
    fds.blocker = blocker
    assert fds.poll([(r, POLLIN)], -1) == [(r, POLLHUP)]
    assert blocker.ready_after == [True]


def test_the_wait_condition_ignores_negative_fds_and_unasked_bits() -> None:
    fds = FdTable()
    r, w = fds.pipe()
    blocker = FakeBlocker(during=lambda: fds.write(w, b"x"))
    fds.blocker = blocker
    assert fds.poll([(-1, POLLIN), (w, POLLIN), (r, POLLOUT)], 10) == []
    assert blocker.calls == [("poll(fds=[-1, 4, 3])", 10, False)]
    assert blocker.ready_after == [False]


def test_poll_without_blocker_and_a_finite_timeout_returns_at_once() -> None:
    fds = FdTable()
    r, _ = fds.pipe()
    assert fds.poll([(r, POLLIN)], 10**12) == []


def test_poll_without_blocker_and_an_infinite_timeout_is_a_deadlock() -> None:
    fds = FdTable()
    r, w = fds.pipe()
    message = (
        "poll(fds=[3, 4]) with an infinite timeout would never return: none of these fds "
        "is ready and no blocker is set to let anything else run"
    )
    with pytest.raises(DeadlockError, match=f"^{re.escape(message)}$") as info:
        fds.poll([(r, POLLIN), (w, POLLIN)], -1)
    assert info.value.blocked == (("main", "poll(fds=[3, 4])"),)


def test_poll_of_nothing_forever_is_a_deadlock() -> None:
    with pytest.raises(DeadlockError, match=r"^poll\(fds=\[\]\) with an infinite timeout"):
        FdTable().poll([], -1)


# -- watchers -----------------------------------------------------------------


def test_watch_reports_the_current_mask_at_once() -> None:
    fds = FdTable()
    r, w = fds.pipe()
    fds.write(w, b"x")
    rec = Recorder("a")
    fds.watch(r, rec)
    fds.watch(w, rec)
    fds.watch(50, rec)  # a number nobody holds
    assert rec.log == [("a", r, POLLIN), ("a", w, POLLOUT), ("a", 50, POLLNVAL)]


def test_a_pipe_write_tells_the_write_end_then_the_read_end() -> None:
    fds = FdTable()
    r, w = fds.pipe()
    log: list[tuple[str, int, int]] = []
    first, second = Recorder("first", log), Recorder("second", log)
    fds.watch(r, first)
    fds.watch(w, first)
    fds.watch(r, second)
    fds.watch(w, second)
    log.clear()
    fds.write(w, b"x")
    assert log == [
        ("first", w, POLLOUT),
        ("second", w, POLLOUT),
        ("first", r, POLLIN),
        ("second", r, POLLIN),
    ]
    log.clear()
    fds.read(r, 1)
    assert log == [
        ("first", r, 0),
        ("second", r, 0),
        ("first", w, POLLOUT),
        ("second", w, POLLOUT),
    ]


def test_a_socket_write_tells_the_writer_then_the_peer() -> None:
    fds = FdTable()
    a, b = fds.socketpair()
    rec = Recorder("w")
    fds.watch(b, rec)
    fds.watch(a, rec)
    rec.log.clear()
    fds.write(a, b"x")
    assert rec.log == [("w", a, POLLOUT), ("w", b, POLLIN | POLLOUT)]
    rec.log.clear()
    fds.read(b, 1)
    assert rec.log == [("w", b, POLLOUT), ("w", a, POLLOUT)]


def test_eventfd_changes_are_told() -> None:
    fds = FdTable()
    e = fds.eventfd()
    rec = Recorder("w")
    fds.watch(e, rec)
    fds.write(e, u64(EVENTFD_MAX))
    fds.read(e, 8)
    assert rec.log == [("w", e, POLLOUT), ("w", e, POLLIN), ("w", e, POLLOUT)]


def test_failed_operations_tell_nobody() -> None:
    fds = FdTable()
    r, w = fds.pipe()
    e = fds.eventfd()
    rec = Recorder("w")
    for fd in (r, w, e):
        fds.watch(fd, rec)
    rec.log.clear()
    for op in (
        lambda: fds.read(r, 1),
        lambda: fds.read(e, 8),
        lambda: fds.write(e, b"short"),
        lambda: fds.write(r, b"x"),
    ):
        with pytest.raises(OSError):
            op()
    assert fds.read(r, 0) == b""
    assert fds.write(w, b"") == 0
    assert rec.log == []


def test_close_tells_pollnval_then_the_peer() -> None:
    fds = FdTable()
    r, w = fds.pipe()
    rec = Recorder("w")
    fds.watch(w, rec)
    fds.watch(r, rec)
    rec.log.clear()
    fds.close(r)
    assert rec.log == [("w", r, POLLNVAL), ("w", w, POLLOUT | POLLERR)]


def test_socket_close_tells_the_peer_it_hung_up() -> None:
    fds = FdTable()
    a, b = fds.socketpair()
    rec = Recorder("w")
    fds.watch(a, rec)
    rec.log.clear()
    fds.close(b)
    assert rec.log == [("w", a, POLLIN | POLLRDHUP | POLLHUP | POLLOUT)]


def test_watchers_follow_the_number_across_close_and_reuse() -> None:
    fds = FdTable()
    rec = Recorder("w")
    fds.watch(3, rec)
    fds.watch(4, rec)
    assert fds.pipe() == (3, 4)
    fds.close(3)
    assert fds.eventfd(1) == 3
    assert rec.log == [
        ("w", 3, POLLNVAL),
        ("w", 4, POLLNVAL),
        ("w", 3, 0),  # pipe(): read end, then write end
        ("w", 4, POLLOUT),
        ("w", 3, POLLNVAL),  # close(3), then its peer
        ("w", 4, POLLOUT | POLLERR),
        ("w", 3, POLLIN | POLLOUT),  # the eventfd that took number 3
    ]


def test_socketpair_creation_is_told_in_order() -> None:
    fds = FdTable()
    rec = Recorder("w")
    fds.watch(4, rec)
    fds.watch(3, rec)
    rec.log.clear()
    fds.socketpair()
    assert rec.log == [("w", 3, POLLOUT), ("w", 4, POLLOUT)]


def test_unwatch_stops_the_calls() -> None:
    fds = FdTable()
    e = fds.eventfd()
    a, b = Recorder("a"), Recorder("b")
    fds.watch(e, a)
    fds.watch(e, b)
    fds.unwatch(e, a)
    fds.write(e, u64(1))
    assert a.log == [("a", e, POLLOUT)]
    assert b.log == [("b", e, POLLOUT), ("b", e, POLLIN | POLLOUT)]
    fds.unwatch(e, b)
    fds.close(e)
    assert b.log[-1] == ("b", e, POLLIN | POLLOUT)


def test_a_watcher_stays_on_a_closed_number_until_unwatched() -> None:
    fds = FdTable()
    e = fds.eventfd()
    rec = Recorder("w")
    fds.watch(e, rec)
    fds.close(e)
    fds.unwatch(e, rec)
    fds.eventfd()
    assert rec.log == [("w", e, POLLOUT), ("w", e, POLLNVAL)]


def test_unwatch_of_a_stranger_is_a_value_error() -> None:
    fds = FdTable()
    e = fds.eventfd()
    a, b = Recorder("a"), Recorder("b")
    with pytest.raises(ValueError, match=r"^unwatch\(3\): <Recorder a> does not watch fd 3$"):
        fds.unwatch(e, a)
    fds.watch(e, b)
    with pytest.raises(ValueError, match=r"^unwatch\(3\): <Recorder a> does not watch fd 3$"):
        fds.unwatch(e, a)
    fds.unwatch(e, b)
    with pytest.raises(ValueError, match=r"^unwatch\(3\): <Recorder b> does not watch fd 3$"):
        fds.unwatch(e, b)


def test_watching_the_same_number_twice_is_a_value_error() -> None:
    fds = FdTable()
    e = fds.eventfd()
    a = Recorder("a")
    fds.watch(e, a)
    with pytest.raises(ValueError, match=r"^watch\(3\): <Recorder a> already watches fd 3$"):
        fds.watch(e, a)
    assert a.log == [("a", e, POLLOUT)]


def test_watchers_are_compared_by_identity() -> None:
    @dataclass
    class EqualWatcher:
        seen: list[int] = field(default_factory=list)

        def fd_ready(self, fd: int, mask: int) -> None:
            self.seen.append(mask)

    fds = FdTable()
    e = fds.eventfd()
    first, second = EqualWatcher(), EqualWatcher()
    assert first == second
    fds.watch(e, first)
    fds.watch(e, second)
    fds.unwatch(e, second)
    fds.write(e, u64(1))
    assert first.seen == [POLLOUT, POLLIN | POLLOUT]
    assert second.seen == [POLLOUT]


def test_a_watcher_that_reads_leaves_later_watchers_with_the_current_mask() -> None:
    fds = FdTable()
    r, w = fds.pipe()

    class Drainer:
        def fd_ready(self, fd: int, mask: int) -> None:
            if mask & POLLIN:
                fds.read(fd, 100)

    late = Recorder("late")
    fds.watch(r, Drainer())
    fds.watch(r, late)
    fds.write(w, b"data")
    assert late.last[r] == fds.mask(r) == 0
    # late was told of the drained pipe twice (nested round, then outer round),
    # and never of the POLLIN that no longer holds.
    assert late.log == [("late", r, 0), ("late", r, 0), ("late", r, 0)]


def test_a_watcher_unwatched_mid_round_is_not_called() -> None:
    fds = FdTable()
    e = fds.eventfd()
    victim = Recorder("victim")

    class Remover:
        def fd_ready(self, fd: int, mask: int) -> None:
            if mask & POLLIN:
                fds.unwatch(fd, victim)

    fds.watch(e, Remover())
    fds.watch(e, victim)
    fds.write(e, u64(1))
    assert victim.log == [("victim", e, POLLOUT)]


def test_a_watcher_added_mid_round_is_told_once() -> None:
    fds = FdTable()
    e = fds.eventfd()
    newcomer = Recorder("new")

    class Adder:
        def fd_ready(self, fd: int, mask: int) -> None:
            if mask & POLLIN:
                fds.watch(fd, newcomer)

    fds.watch(e, Adder())
    fds.write(e, u64(1))
    assert newcomer.log == [("new", e, POLLIN | POLLOUT)]


def test_a_raising_watcher_propagates_after_the_operation_completed() -> None:
    fds = FdTable()
    r, w = fds.pipe()

    class Boom:
        def fd_ready(self, fd: int, mask: int) -> None:
            if mask & POLLIN:
                raise RuntimeError("boom")

    fds.watch(r, Boom())
    with pytest.raises(RuntimeError, match=r"^boom$"):
        fds.write(w, b"x")
    assert fds.mask(r) == POLLIN


def test_idle_watched_fds_cost_nothing() -> None:
    """Structural, not timed: with 10,000 idle watched fds, a busy fd's traffic
    calls none of their watchers and computes no more masks than with 10."""

    class CountingTable(FdTable):
        mask_calls = 0

        def mask(self, fd: int) -> int:
            CountingTable.mask_calls += 1
            return super().mask(fd)

    def traffic(idle_pipes: int) -> tuple[int, int, int]:
        fds = CountingTable()
        idle = Counter()
        for _ in range(idle_pipes):
            ir, iw = fds.pipe()
            fds.watch(ir, idle)
            fds.watch(iw, idle)
        idle.calls = 0
        busy = Counter()
        r, w = fds.pipe()
        e = fds.eventfd()
        a, b = fds.socketpair()
        for fd in (r, w, e, a, b):
            fds.watch(fd, busy)
        busy.calls = 0
        CountingTable.mask_calls = 0
        for _ in range(1000):
            fds.write(w, b"x" * 100)
            fds.read(r, 100)
            fds.write(e, u64(1))
            fds.read(e, 8)
            fds.write(a, b"y")
            fds.read(b, 1)
        fds.close(w)
        fds.close(r)
        fds.pipe()
        return idle.calls, busy.calls, CountingTable.mask_calls

    small, large = traffic(5), traffic(5000)
    assert small[0] == large[0] == 0
    assert small[1:] == large[1:]
    assert small[1] == 1000 * (2 + 2 + 1 + 1 + 2 + 2) + 3 + 2  # closes, then the new pipe


# -- properties ---------------------------------------------------------------

_sizes = st.one_of(
    st.integers(0, 300),
    st.sampled_from([PIPE_BUF - 1, PIPE_BUF, PIPE_BUF + 1, 30_000, PIPE_CAPACITY, 70_000]),
)


@given(st.lists(st.tuples(st.booleans(), _sizes), max_size=60))
def test_pipe_neither_loses_duplicates_nor_reorders_bytes(
    ops: list[tuple[bool, int]],
) -> None:
    fds = FdTable()
    r, w = fds.pipe()
    accepted = bytearray()
    received = bytearray()
    counter = 0
    for is_write, size in ops:
        if is_write:
            data = bytes((counter + i) % 251 for i in range(size))
            try:
                n = fds.write(w, data)
            except BlockingIOError:
                assert size > 0
                assert len(accepted) - len(received) + min(size, PIPE_BUF) > PIPE_CAPACITY
                continue
            assert n == size or (size > PIPE_BUF and n > 0)
            accepted += data[:n]
            counter += n
        else:
            try:
                received += fds.read(r, size)
            except BlockingIOError:
                assert size > 0 and len(accepted) == len(received)
        assert 0 <= len(accepted) - len(received) <= PIPE_CAPACITY
    fds.close(w)
    while chunk := fds.read(r, 10_000):
        received += chunk
    assert received == accepted


@given(st.lists(st.tuples(st.booleans(), st.booleans(), _sizes), max_size=60))
def test_socketpair_carries_each_direction_intact(
    ops: list[tuple[bool, bool, int]],
) -> None:
    fds = FdTable()
    ends = fds.socketpair()
    sent: list[bytearray] = [bytearray(), bytearray()]  # by the end that wrote
    got: list[bytearray] = [bytearray(), bytearray()]  # by the end that wrote
    for is_write, side, size in ops:
        me = int(side)
        if is_write:
            data = bytes((len(sent[me]) + i) % 253 for i in range(size))
            try:
                n = fds.write(ends[me], data)
            except BlockingIOError:
                assert len(sent[me]) - len(got[me]) == SOCKET_CAPACITY
                continue
            sent[me] += data[:n]
        else:
            try:
                got[1 - me] += fds.read(ends[me], size)
            except BlockingIOError:
                assert len(sent[1 - me]) == len(got[1 - me])
        assert len(sent[me]) - len(got[me]) <= SOCKET_CAPACITY
    for me in (0, 1):
        pending = len(sent[me]) - len(got[me])
        if pending:
            got[me] += fds.read(ends[1 - me], pending)
        assert got[me] == sent[me]
        with pytest.raises(BlockingIOError):
            fds.read(ends[1 - me], 1)


# -- a model-based state machine ----------------------------------------------


class _ModelPipe:
    def __init__(self, r: int, w: int) -> None:
        self.buf = bytearray()
        self.r: int | None = r
        self.w: int | None = w


class _ModelSocket:
    def __init__(self, fd: int) -> None:
        self.fd: int | None = fd
        self.queue = bytearray()
        self.peer: _ModelSocket


class _ModelEventFd:
    def __init__(self, counter: int, semaphore: bool) -> None:
        self.counter = counter
        self.semaphore = semaphore


_Model = _ModelPipe | _ModelSocket | _ModelEventFd
_FD_RANGE = range(0, 16)  # every number the machine can ever allocate, and some it can't


def _naive_mask(model: dict[int, _Model], fd: int) -> int:
    """The mask recomputed from scratch, the slow obvious way."""
    obj = model.get(fd)
    if obj is None:
        return POLLNVAL
    mask = 0
    if isinstance(obj, _ModelPipe):
        if fd == obj.r:
            mask |= POLLIN if len(obj.buf) > 0 else 0
            mask |= POLLHUP if obj.w is None else 0
        else:
            mask |= POLLOUT if len(obj.buf) + PIPE_BUF <= PIPE_CAPACITY else 0
            mask |= POLLERR if obj.r is None else 0
    elif isinstance(obj, _ModelSocket):
        if obj.peer.fd is None:
            mask = POLLIN | POLLOUT | POLLHUP | POLLRDHUP
        else:
            mask |= POLLIN if len(obj.queue) > 0 else 0
            mask |= POLLOUT if len(obj.peer.queue) < SOCKET_CAPACITY else 0
    else:
        mask |= POLLIN if obj.counter != 0 else 0
        mask |= POLLOUT if obj.counter != EVENTFD_MAX else 0
    return mask


_eventfd_values = st.one_of(
    st.integers(0, 5),
    st.sampled_from([EVENTFD_MAX - 1, EVENTFD_MAX, 0xFFFFFFFFFFFFFFFF]),
)


class FdTableMachine(RuleBasedStateMachine):
    """Random operations on a table and on a naive model; masks and results must agree."""

    def __init__(self) -> None:
        super().__init__()
        self.fds = FdTable()
        self.model: dict[int, _Model] = {}
        self.watcher = Recorder("w")
        self.byte = 0

    def _lowest_free(self) -> int:
        fd = 3
        while fd in self.model:
            fd += 1
        return fd

    def _data(self, size: int) -> bytes:
        data = bytes((self.byte + i) % 241 for i in range(size))
        self.byte += size
        return data

    @precondition(lambda self: len(self.model) < 10)
    @rule()
    def pipe(self) -> None:
        r = self._lowest_free()
        self.model[r] = _ModelPipe(r, -1)  # placeholder so the next number is found
        w = self._lowest_free()
        p = _ModelPipe(r, w)
        self.model[r] = self.model[w] = p
        assert self.fds.pipe() == (r, w)

    @precondition(lambda self: len(self.model) < 10)
    @rule()
    def socketpair(self) -> None:
        fd_a = self._lowest_free()
        a = self.model[fd_a] = _ModelSocket(fd_a)
        fd_b = self._lowest_free()
        b = self.model[fd_b] = _ModelSocket(fd_b)
        a.peer, b.peer = b, a
        assert self.fds.socketpair() == (fd_a, fd_b)

    @precondition(lambda self: len(self.model) < 10)
    @rule(initval=st.sampled_from([0, 1, 0xFFFFFFFF]), semaphore=st.booleans())
    def eventfd(self, initval: int, semaphore: bool) -> None:
        fd = self._lowest_free()
        self.model[fd] = _ModelEventFd(initval, semaphore)
        assert self.fds.eventfd(initval, semaphore) == fd

    @rule(fd=st.sampled_from(_FD_RANGE), size=_sizes)
    def write(self, fd: int, size: int) -> None:
        obj = self.model.get(fd)
        data = self._data(size)
        if isinstance(obj, _ModelEventFd):
            return  # eventfds get their own rule
        expected: int | type[OSError]
        if obj is None or (isinstance(obj, _ModelPipe) and fd != obj.w):
            expected = OSError
        elif isinstance(obj, _ModelPipe):
            room = PIPE_CAPACITY - len(obj.buf)
            if size == 0:
                expected = 0
            elif obj.r is None:
                expected = BrokenPipeError
            elif size <= room:
                expected = size
            elif size <= PIPE_BUF or room == 0:
                expected = BlockingIOError
            else:
                expected = room
            if isinstance(expected, int):
                obj.buf += data[:expected]
        else:
            peer = obj.peer
            room = SOCKET_CAPACITY - len(peer.queue)
            if peer.fd is None:
                expected = BrokenPipeError
            elif size == 0:
                expected = 0
            elif room == 0:
                expected = BlockingIOError
            else:
                expected = min(size, room)
                peer.queue += data[:expected]
        self._check(expected, lambda: self.fds.write(fd, data))

    @rule(fd=st.sampled_from(_FD_RANGE), value=_eventfd_values, short=st.booleans())
    def write_eventfd(self, fd: int, value: int, short: bool) -> None:
        obj = self.model.get(fd)
        if not isinstance(obj, _ModelEventFd):
            return
        data = u64(value)[: 7 if short else 8]
        expected: int | type[OSError]
        if short or value == 0xFFFFFFFFFFFFFFFF:
            expected = OSError
        elif obj.counter + value > EVENTFD_MAX:
            expected = BlockingIOError
        else:
            expected = 8
            obj.counter += value
        self._check(expected, lambda: self.fds.write(fd, data))

    @rule(fd=st.sampled_from(_FD_RANGE), n=st.sampled_from([0, 1, 7, 8, 100, 70_000]))
    def read(self, fd: int, n: int) -> None:
        obj = self.model.get(fd)
        expected: bytes | type[OSError]
        if obj is None or (isinstance(obj, _ModelPipe) and fd != obj.r):
            expected = OSError
        elif isinstance(obj, _ModelEventFd):
            if n < 8:
                expected = OSError
            elif obj.counter == 0:
                expected = BlockingIOError
            else:
                value = 1 if obj.semaphore else obj.counter
                obj.counter -= value
                expected = u64(value)
        else:
            buf = obj.buf if isinstance(obj, _ModelPipe) else obj.queue
            eof = obj.w is None if isinstance(obj, _ModelPipe) else obj.peer.fd is None
            if n == 0 or (not buf and eof):
                expected = b""
            elif not buf:
                expected = BlockingIOError
            else:
                expected = bytes(buf[:n])
                del buf[:n]
        self._check(expected, lambda: self.fds.read(fd, n))

    @rule(fd=st.sampled_from(_FD_RANGE))
    def close(self, fd: int) -> None:
        obj = self.model.pop(fd, None)
        if isinstance(obj, _ModelPipe):
            if fd == obj.r:
                obj.r = None
            else:
                obj.w = None
        elif isinstance(obj, _ModelSocket):
            obj.fd = None
            obj.queue.clear()
        self._check(OSError if obj is None else None, lambda: self.fds.close(fd))

    @rule(fd=st.sampled_from(_FD_RANGE))
    def toggle_watch(self, fd: int) -> None:
        if fd in self.watcher.last:
            self.fds.unwatch(fd, self.watcher)
            del self.watcher.last[fd]
        else:
            self.fds.watch(fd, self.watcher)

    @rule(
        entries=st.lists(
            st.tuples(st.sampled_from(_FD_RANGE), st.sampled_from([0, POLLIN, POLLOUT, 0x2007])),
            max_size=5,
        )
    )
    def poll(self, entries: list[tuple[int, int]]) -> None:
        expected = [
            (fd, _naive_mask(self.model, fd) & (events | POLLERR | POLLHUP | POLLNVAL))
            for fd, events in entries
        ]
        assert self.fds.poll(entries, 0) == [(fd, m) for fd, m in expected if m]

    def _check(self, expected: object, call: Callable[[], object]) -> None:
        if isinstance(expected, type):
            with pytest.raises(expected) as info:
                call()
            assert type(info.value) is expected
        else:
            assert call() == expected

    @invariant()
    def masks_match_the_naive_model(self) -> None:
        for fd in _FD_RANGE:
            assert self.fds.mask(fd) == _naive_mask(self.model, fd), fd

    @invariant()
    def watchers_were_last_told_the_current_mask(self) -> None:
        for fd, told in self.watcher.last.items():
            assert told == self.fds.mask(fd), fd

    @invariant()
    def the_open_fds_match(self) -> None:
        assert self.fds.open_fds() == sorted(self.model)
        for fd in _FD_RANGE:
            assert self.fds.is_open(fd) == (fd in self.model)


FdTableMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40)
TestFdTableMachine = FdTableMachine.TestCase
TestFdTableMachine.pytestmark = [pytest.mark.slow]
