"""Progress of long commands: tqdm on a terminal, plain lines with rate and time left elsewhere."""

from __future__ import annotations

import io
import re

from replay.cli.progress import Meter


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_progress_is_plain_lines_with_rate_and_time_left() -> None:
    out = io.StringIO()
    meter = Meter("verifying traces", 4, "trace", stream=out, every_s=0)
    for i in range(1, 5):
        meter.to(i)
    meter.close()
    lines = out.getvalue().splitlines()
    assert lines, "no progress line"
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()
    assert all(line.startswith("verifying traces:") for line in lines)
    assert re.search(r"4/4 \[[0-9:]+<[0-9:]+, +[0-9.?]+ ?(trace/s|s/trace)\]", lines[-1]), lines


def test_on_a_terminal_the_bar_redraws_one_line() -> None:
    out = Terminal()
    meter = Meter("fuzzing", 10, "run", stream=out)
    meter.to(5)
    meter.close()
    text = out.getvalue()
    assert text.startswith("\rfuzzing:") and "/10 [" in text
    assert text.endswith("\r")  # cleared when done: the output that follows starts clean


def test_output_lines_go_to_their_stream_whole() -> None:
    err, out = io.StringIO(), io.StringIO()
    meter = Meter("verifying", 2, "trace", stream=err, every_s=0)
    meter.write("ok       a.evr: fine", stream=out)
    meter.close()
    assert out.getvalue() == "ok       a.evr: fine\n"
