"""A host trace's channels: the real fds a recording relays, and their header entry."""

from __future__ import annotations

import fcntl
import os
import select
import selectors
import stat
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Final

from evloop import (
    FdTable,
)
from evloop.loop.fds import SOCKET_CAPACITY

from ..errors import ReplayError
from ..trace.header import TraceHeader

__all__ = ["Channel", "ChannelKind", "is_host_trace"]

#: ``extensions["mode"]`` of a host-mode trace.
HOST_MODE: Final = "host"
#: ``extensions[CHANNELS_KEY]``: ``[[name, kind], ...]`` in name order.
CHANNELS_KEY: Final = "host.channels"
#: ``extensions[FLUSH_KEY]``: the recorded real time (ns) after which a wait
#: closes the trace's chunk (``replay/host/monitors.py``); absent in traces
#: recorded before it, which cut chunks by size only.
FLUSH_KEY: Final = "host.flush_ns"
#: A host recording's chunk is closed at least every this much real time.
FLUSH_INTERVAL_NS: Final = 100_000_000

_POLLIN: Final = select.POLLIN
_POLLOUT: Final = select.POLLOUT
_CLOSED_BY_PROGRAM: Final = select.POLLERR | select.POLLHUP
_READ: Final = selectors.EVENT_READ


class ChannelKind(Enum):
    PIPE = "pipe"  #: input only: the program holds the read end of a virtual pipe
    SOCKET = "socket"  #: both ways: the program holds one end of a virtual socket pair


# -- channels: the program's side, shared by both modes -------------------------------------


class Channel:
    """One external channel as the program sees it (rule 2); watches its outside end."""

    __slots__ = ("closed_by_program", "eof_delivered", "fd", "fds", "feeder", "kind", "name",
                 "output")

    def __init__(self, fds: FdTable, name: str, kind: ChannelKind) -> None:
        self.fds = fds
        self.name = name
        self.kind = kind
        if kind is ChannelKind.PIPE:
            self.fd, self.feeder = fds.pipe()
        else:
            self.fd, self.feeder = fds.socketpair()
        #: Everything the program wrote to the channel (socket channels).
        self.output = bytearray()
        self.eof_delivered = False
        self.closed_by_program = False
        fds.watch(self.feeder, self)

    @property
    def live(self) -> bool:
        """Input can still reach the program: no EOF yet, and its end is open."""
        return not (self.eof_delivered or self.closed_by_program)

    def fd_ready(self, fd: int, mask: int) -> None:
        """Drain what the program wrote; notice that it closed its end (FdWatcher)."""
        if mask & _POLLIN and self.kind is ChannelKind.SOCKET:
            self.output += self.fds.read(self.feeder, SOCKET_CAPACITY)
        if mask & _CLOSED_BY_PROGRAM:
            self.closed_by_program = True

    @property
    def drained(self) -> bool:
        """The program has read all input delivered so far (always, for a pipe).

        EOF on a socket closes its outside end, and with it the program's way
        to reply; so RECORD delivers it only once the program has read what
        came before it, which keeps "read, reply, read EOF" working.
        """
        return self.kind is ChannelKind.PIPE or not self.fds.mask(self.fd) & _POLLIN

    @property
    def has_room(self) -> bool:
        return bool(self.fds.mask(self.feeder) & _POLLOUT)

    def deliver(self, data: bytes) -> int:
        """Write input into the program's end; returns how many bytes fitted."""
        try:
            return self.fds.write(self.feeder, data)
        except BlockingIOError:
            return 0
        except BrokenPipeError:
            self.closed_by_program = True
            return 0

    def deliver_eof(self) -> None:
        """Close the outside end: the program reads EOF (and a socket's writes get EPIPE)."""
        self.eof_delivered = True
        self.fds.unwatch(self.feeder, self)
        self.fds.close(self.feeder)

    def __repr__(self) -> str:
        state = "eof" if self.eof_delivered else "closed" if self.closed_by_program else "live"
        return f"<Channel {self.name!r} {self.kind.value} fd={self.fd} {state}>"


def _channel_kind(name: object, fd: object) -> ChannelKind:
    if not isinstance(name, str) or not name:
        raise ValueError(f"a channel name must be a non-empty str, not {name!r}")
    if not isinstance(fd, int) or isinstance(fd, bool) or fd < 0:
        raise ValueError(f"input {name!r}: expected a real fd (an int >= 0), not {fd!r}")
    try:
        mode = os.fstat(fd).st_mode
        access = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE
    except OSError as exc:
        raise ValueError(f"input {name!r}: fd {fd} is not an open fd ({exc.strerror})") from None
    if access == os.O_WRONLY:
        raise ValueError(
            f"input {name!r}: fd {fd} is write-only; a channel takes input from its peer "
            "(pass a pipe's read end or a socket)"
        )
    if stat.S_ISSOCK(mode):
        return ChannelKind.SOCKET
    if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode):
        return ChannelKind.PIPE
    raise ValueError(
        f"input {name!r}: fd {fd} is not a pipe, FIFO, character device or socket "
        "(a regular file cannot be waited on; read it in the scenario instead)"
    )


def channel_specs(inputs: Mapping[str, int]) -> list[tuple[str, ChannelKind]]:
    """Each input's channel kind, in name order; refuses what host mode cannot wait on."""
    specs = {name: _channel_kind(name, fd) for name, fd in inputs.items()}
    fds: dict[int, str] = {}
    with selectors.DefaultSelector() as probe:
        for name, fd in inputs.items():
            if fd in fds:
                raise ValueError(f"inputs {fds[fd]!r} and {name!r} are both fd {fd}")
            fds[fd] = name
            try:
                probe.register(fd, _READ)
            except OSError as exc:
                raise ValueError(
                    f"input {name!r}: fd {fd} cannot be waited on ({exc.strerror})"
                ) from None
    return sorted(specs.items())


def is_host_trace(header: TraceHeader) -> bool:
    """Whether a trace was recorded in host mode (and so plays with :func:`play_host`)."""
    return header.extensions.get("mode") == HOST_MODE


def flush_interval(header: TraceHeader, path: str | Path) -> int | None:
    """The header's ``host.flush_ns``: None when absent (chunks cut by size only)."""
    value = header.extensions.get(FLUSH_KEY)
    if value is None:
        return None
    if type(value) is not int or not 1 <= value < 1 << 63:
        raise ReplayError(
            f"{path}: header field {FLUSH_KEY} must be an integer in [1, 2**63), not {value!r}"
        )
    return value


def channels_from_header(header: TraceHeader, path: str | Path) -> list[tuple[str, ChannelKind]]:
    if not is_host_trace(header):
        raise ReplayError(f"{path}: not a host-mode trace (play it with replay.play)")
    value = header.extensions.get(CHANNELS_KEY, ())
    kinds = {kind.value: kind for kind in ChannelKind}
    out: list[tuple[str, ChannelKind]] = []
    if isinstance(value, tuple):
        for item in value:
            if not (
                isinstance(item, tuple) and len(item) == 2
                and isinstance(item[0], str) and item[0] and item[1] in kinds
            ):
                break
            out.append((item[0], kinds[str(item[1])]))
        else:
            names = [n for n, _ in out]
            if names == sorted(set(names)):
                return out
    raise ReplayError(
        f"{path}: header extension {CHANNELS_KEY!r} must list [name, 'pipe' | 'socket'] "
        f"pairs with unique names in name order, not {value!r}"
    )
