"""Recording and playing a simulation: one code path, two sources.

Every source of nondeterminism reaches the replay layer through one seam of
the simulation (the chooser, the clock-read hook, the RNG draw hook, the
simulation hooks for input, checkpoints and shutdown; ``evloop/seams.py``),
all plugged at once by :meth:`.base.Session.attach`. At each door the
:class:`Recorder` takes the live value and logs it; the :class:`Player` takes
the value from the trace, checks that it is asked at the same step and with
the same shape, and logs it again. So a play *re-records* the run, and a run
that replays faithfully re-records exactly the bytes it read.

What is logged, in step order (the position counter precedes every event):

* decisions of the chooser (CHOICES batches of (step delta, options, choice));
* external input deliveries, with their data (INPUT; empty data is the peer
  closing) -- in a simulation the scenario's scripted peers regenerate them,
  so play checks them against the log;
* reads of the HOST and VIRTUAL_RT clocks, as their offset from the virtual
  clock (CLOCK; the offset is 0 unless a fault moved the clock);
* 64-bit draws of the simulation's RNG (RANDOM);
* shutdown requests and their cause, and the exception that ended a failing
  run (SHUTDOWN, cause ``"exception: Type: message"``);
* checkpoints: INIT at step 0, PERIODIC every ``checkpoint_interval`` steps,
  FINAL at the end, each with the rolling digest of every step so far;
* (format 3 on) QEMU's timer checkpoints (CLOCK_CHECKPOINTS batches):
  VIRTUAL before each due VIRTUAL timer that is not EXTERNAL, HOST and
  VIRTUAL_RT before those lists run their due timers (``util/qemu-timer.c``
  ``timerlist_run_timers``). In play a timer list runs only when its
  checkpoint is the log's next event; a checkpoint missing or extra is a
  divergence naming the clock;
* (``run.async_events`` on) each bottom half the async-event queue releases,
  by sequence number and name (ASYNC_EVENT, QEMU's ``replay_save_events``;
  ``evloop/machine/asyncevents.py``). In play the log's next event must be the
  one released; one missing, extra or in another order is a divergence naming it.

What the seed and the header determine is never taken on trust: a played
RANDOM value must be the seeded generator's own draw, a simulation's CLOCK
offset must be 0 (its clocks are virtual), and the header's chooser, rebuilt
from its spec, makes every decision again and must make the recorded one
(recorded-only choosers, whose decisions exist only in the trace, excepted).
A chooser whose decisions depend only on their number of options (FIFO, a
random walk) answers a batch of recorded decisions when it is read, in one
call; play diverges at the first it answers otherwise, when it gets there,
exactly as if it had asked then. Any other chooser is asked each decision.
So a trace whose values or header were edited diverges at the record that
lies, however well its framing was made whole again. Host mode's real inputs
(its clock samples and input bytes) cannot be checked this way; the trace's
own integrity chain covers them (docs/trace-format.md).

A play that departs from the log raises :class:`ReplayDivergence` at the first
event that differs (a decision asked at another step or with another number
of options, a digest that differs at a checkpoint, input that differs), with
the step, the virtual time, the event index, what the trace expected, what
the run did, the thread and the last steps before it. After a divergence the
player refuses further work.

``base`` holds what both share (emitting records in step order, the doors'
wiring into the simulation's seams), ``recorder`` the :class:`Recorder`,
``player`` the :class:`Player`; ``replay/failures.py`` how a failing run's
exception is described and compared.
"""

from __future__ import annotations

from .base import ReplayMode
from .player import Player
from .recorder import Recorder

__all__ = ["Player", "Recorder", "ReplayMode"]
