"""Host mode: record a program against real peers, replay it anywhere with no peer at all.

In a simulation every input is scripted. In host mode the world outside the
program is real: a subprocess writing into a pipe, a client on a TCP socket,
and the real clock. RECORD runs the program against them and logs what came
in and when; PLAY runs the same program on the virtual layer, with the logged
input and clock values and no peer (so a bug seen on a real machine becomes a
file that reproduces it anywhere). These are the rules that make that exact:

Rule 1: the program runs on the virtual layer in both modes. Its own pipes,
socket pairs and eventfds (the loops' notifiers included) are
:class:`~evloop.FdTable` objects when recording too, so they behave the same
when played, down to buffer sizes, fd numbers and error messages. Only the
*outside* of each external channel is real.

Rule 2: a channel is a virtual object with a relay at its outside end. Each
real fd handed to :func:`record_host` becomes a named channel: a virtual pipe
(real pipes, FIFOs and character devices: input only) or socket pair (real
sockets: both ways). The program holds one end, ``sim.inputs[name]``; the host
layer holds the other. RECORD relays bytes from the real fd into that end and
drains what the program writes out of it to the real fd; PLAY feeds the same
end from the log and keeps what the program writes in ``Channel.output``. The
program sees one code path: only the source of the bytes changes.

Rule 3: time and input enter only at a *wait*. Every blocking wait of the
loops goes to the :class:`HostMonitor` (the fd table's blocker). One round of
a wait is: RECORD ``select()``\\s on the real fds for as long as the loop asked
(level-triggered: each wait asks again), measures the real time that passed
and logs it as ``CLOCK(step, REALTIME, ns)``, then, channel by channel in name
order, reads what the real fd has, writes into the channel what fits and logs
that as ``INPUT(step, channel, bytes)`` (EOF: empty bytes). PLAY takes the next
CLOCK record and the INPUT records after it. Nothing is dispatched inside a
wait, so every record of a wait has the step count of the moment it ended.
A wait rounds again (and logs again) until its condition is ready, its
timeout has passed, or the run's ``until_ns`` is reached; each of those is
decided from virtual state alone, so play rounds as often as record did.

Rule 4: the virtual clock moves only at those sample points, by the measured
real time, so timers and the step digest see the same values in both modes.
HOST starts at the real wall time (logged once, as ``CLOCK(0, HOST, ns)``
after the INIT checkpoint, relative to :data:`~evloop.HOST_EPOCH_NS`), so a
HOST timer armed from a HOST read fires when it should. Reads of HOST and
VIRTUAL_RT are live (``time.time_ns()``, real time since the start) and logged
as their offset from the sampled clock, as every read is.

Rule 5: a wait that nothing could ever end is not a real wait. When its
timeout is infinite and no channel can deliver anything any more (each has
delivered EOF or been closed by the program), the wait goes to the
simulation's scheduler, which decides as it does in a simulation: the run is
idle, reaches ``until_ns``, or is a :class:`~evloop.DeadlockError`.

Rule 6: nothing waits in memory for long. A host recording cannot be made
again, so the trace's current chunk is closed (handed to the OS) before a
wait that may block past 100 ms of real time since the last close, and
after a round that brought input or ended past it; a SIGKILL then loses at
most that much. The points are decided from the recorded round lengths and
the virtual clock, so a play cuts its re-recording's chunks at the same
records and stays bit-exact (``host.flush_ns`` in the header says the
interval; traces without it were cut by size only, and play them so).

What host mode does not do, on purpose:

* threads of control (``sim.thread``, ``sim.iothread``, ``sim.sleep`` ...):
  one thread runs the program; a thread pool runs work inline;
* record what the program writes to a peer: it is a consequence, not an input.
  Writes to a socket channel take what the virtual socket takes, exactly as
  when played; the relay forwards them as the real peer accepts them;
* half-close: the virtual layer has no ``shutdown()``, so EOF on a socket
  channel closes its whole outside end, as a peer's ``close()`` would, and
  later writes by the program fail with EPIPE. RECORD delivers that EOF only
  once the program has read everything before it, so "read, reply, read EOF"
  works; a program that replies only *after* reading EOF does not.
"""

from __future__ import annotations

from .channels import Channel, ChannelKind, is_host_trace
from .clock import HostClock
from .mode import play_host, record_host
from .monitors import HostMonitor, LiveMonitor, TraceMonitor
from .simulation import HostPlayer, HostRecorder, HostSimulation

__all__ = [
    "Channel",
    "ChannelKind",
    "HostClock",
    "HostMonitor",
    "HostPlayer",
    "HostRecorder",
    "HostSimulation",
    "LiveMonitor",
    "TraceMonitor",
    "is_host_trace",
    "play_host",
    "record_host",
]
