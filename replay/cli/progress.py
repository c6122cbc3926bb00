"""Progress of the long commands, on stderr: a tqdm bar on a terminal, plain lines elsewhere.

tqdm (a small, pure-Python, widely used progress meter) computes the rate
and the time left; on a terminal it redraws one line, and anywhere else
(CI logs, a pipe) :class:`_Lines` turns each of its redraws into a plain
line, at most one every ``every_s`` seconds, so a log shows how far a long
command is without escape codes. Its monitor thread is off: a command that
runs simulations starts no thread of its own.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from tqdm import tqdm  # type: ignore[import-untyped]

__all__ = ["Meter", "StepMeter", "trace_steps"]

tqdm.monitor_interval = 0


class _Lines:
    """A stream for tqdm that writes each redraw as one plain line."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        line = text.rpartition("\r")[2].strip()
        if line:
            self.stream.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


class Meter:
    """How far a long command is: ``done`` of ``total`` units, the rate, the time left."""

    def __init__(
        self,
        what: str,
        total: int | None,
        unit: str,
        *,
        stream: TextIO | None = None,
        every_s: float = 10.0,
        delay_s: float = 0.0,
    ) -> None:
        out = stream if stream is not None else sys.stderr
        isatty = getattr(out, "isatty", None)
        self.terminal = bool(isatty and isatty())
        self._bar = tqdm(
            total=total,
            desc=what,
            unit=unit,
            file=out if self.terminal else _Lines(out),
            mininterval=0.1 if self.terminal else every_s,
            leave=not self.terminal,  # off a terminal, the last line says how it ended
            dynamic_ncols=self.terminal,
            ascii=not self.terminal,
            delay=delay_s,
        )

    def to(self, done: int, total: int | None = None) -> None:
        """``done`` units so far (of ``total``, if it changed)."""
        if total is not None and total != self._bar.total:
            self._bar.total = total
        if done > self._bar.n:
            self._bar.update(done - self._bar.n)

    def write(self, text: str, stream: TextIO | None = None) -> None:
        """Print a line of output without tearing the bar."""
        out = stream if stream is not None else sys.stdout
        if self.terminal:
            self._bar.write(text, file=out)
        else:
            print(text, file=out, flush=True)

    def close(self) -> None:
        self._bar.close()


class StepMeter:
    """Steps of one run (record, play, dump, export), told at each periodic checkpoint.

    Shown only once the run has taken ``delay_s`` seconds: a short run prints
    nothing. ``total`` is the run's last step when known (a trace's end, a
    ``--max-steps``), else the display has a rate and no time left.
    """

    def __init__(
        self, what: str, total: int | None, *, stream: TextIO | None = None, delay_s: float = 2.0
    ) -> None:
        self.meter = Meter(what, total, "step", stream=stream, delay_s=delay_s)

    def __call__(self, step: int) -> None:
        self.meter.to(step)

    def close(self) -> None:
        self.meter.close()


def trace_steps(path: Path, until_step: int | None = None) -> int | None:
    """How many steps replaying the trace at ``path`` runs (None if it cannot say)."""
    from ..driver import trace_end_step
    from ..errors import ReplayError

    try:
        end = trace_end_step(path)
    except (ReplayError, OSError):
        return None  # the replay itself says what is wrong with the file
    return end if until_step is None else min(end, until_step)
