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


# -- steps of one run: record, play, dump, export ----------------------------------------

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from replay import play, record  # noqa: E402
from replay.cli.main import main  # noqa: E402
from replay.cli.progress import StepMeter, trace_steps  # noqa: E402
from replay.tools.dump import dump  # noqa: E402
from replay.tools.perfetto import export_perfetto  # noqa: E402

LONG = "tests.scenarios.workloads:many_decisions"


def test_record_and_play_tell_the_steps_at_every_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "long.evr"
    told: list[int] = []
    recorded = record(LONG, path, checkpoint_interval=100, progress=told.append)
    assert recorded.steps > 1000
    assert told == list(range(100, recorded.steps + 1, 100))
    replayed: list[int] = []
    assert play(path, progress=replayed.append).bit_exact
    assert replayed == told
    dumped: list[int] = []
    dump(path, io.StringIO(), progress=dumped.append)
    exported: list[int] = []
    export_perfetto(path, io.StringIO(), progress=exported.append)
    assert dumped == exported == told


def test_a_shown_meter_changes_no_byte_of_a_sanitized_recording(tmp_path: Path) -> None:
    # tqdm reads the clock mid-run; the sanitizer must let it (it is exempt).
    quiet, shown = tmp_path / "quiet.evr", tmp_path / "shown.evr"
    record(LONG, quiet, checkpoint_interval=100)
    out = io.StringIO()
    meter = StepMeter("recording", None, stream=out, delay_s=0)
    meter.meter._bar.mininterval = 0
    record(LONG, shown, checkpoint_interval=100, progress=meter)
    meter.close()
    assert re.search(r"[0-9]+ ?step", out.getvalue()), out.getvalue()
    assert quiet.read_bytes() == shown.read_bytes()


def test_a_step_meter_shows_rate_and_time_left_of_a_play(tmp_path: Path) -> None:
    path = tmp_path / "long.evr"
    record(LONG, path, checkpoint_interval=100)
    total = trace_steps(path)
    assert total is not None and total > 1000
    out = io.StringIO()
    meter = StepMeter(f"replaying {path.name}", total, stream=out, delay_s=0)
    meter.meter._bar.mininterval = 0
    play(path, progress=meter)
    meter.close()
    lines = out.getvalue().splitlines()
    assert lines and all(line.startswith("replaying long.evr:") for line in lines)
    assert re.search(r"\[[0-9:]+<[0-9:]+, +[0-9.?]+ ?(step/s|s/step)\]", lines[-1]), lines
    assert "\r" not in out.getvalue()


def test_a_short_command_prints_no_progress(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.evr"
    assert main(["record", "replay.examples.minimachine:scenario", "-o", str(path)]) == 0
    assert main(["play", str(path)]) == 0
    assert main(["dump", str(path)]) == 0
    assert main(["export", str(path), "-o", str(tmp_path / "m.json")]) == 0
    assert capsys.readouterr().err == ""
