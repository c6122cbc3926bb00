"""``python -m bench.report [results.json]``: the figures of one run as Markdown tables.

The README's Performance section is this output for the run it describes:
one table of the ratios (each the median of per-round ratios taken within
the run, with its target when it has one), one of the sizes, and a line
saying which run it was. Rates are left out: they only compare within a run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

DEFAULT_JSON = Path(__file__).resolve().parent / "results.json"


def _target(figure: dict[str, Any]) -> str:
    text = figure.get("target")
    if not text:
        return ""
    unit = "x" if figure["unit"] == "x" else f" {figure['unit']}"
    return str(text).replace(">=", "≥").replace("<=", "≤") + unit


def _met(figure: dict[str, Any]) -> str:
    met = figure.get("met")
    if met is None:
        return ""
    return "yes" if met else "**no**"


def _value(figure: dict[str, Any]) -> str:
    if figure.get("status") != "ok":
        return f"({figure.get('status')})"
    median = float(figure["median"])
    if figure["unit"] == "x":
        return f"{median:.2f}x"
    if figure["unit"] == "B":
        return f"{median:.3g} B"
    return f"{median:,.0f} {figure['unit']}"


def render(results: dict[str, Any]) -> str:
    """The run's ratio and size figures as two Markdown tables, with the run's settings."""
    figures: dict[str, dict[str, Any]] = results["figures"]
    ratios = [f for f in figures.values() if f["unit"] == "x"]
    sizes = [f for f in figures.values() if f["unit"] in ("B", "record")]
    minutes, seconds = divmod(round(float(results["wall_s"])), 60)
    lines = [
        f"One `make bench` run: {results['implementation']} {results['python']}, "
        f"{results['cpus_usable']} usable cores, {results['repeat']} measured rounds after "
        f"{results['warmup']} warm-up round(s), {minutes} min {seconds:02d} s of wall time, "
        f"workloads {', '.join(results['workloads'])}.",
        "",
        "| ratio | this run | target | met |",
        "| --- | ---: | --- | --- |",
    ]
    for f in ratios:
        note = f" ({f['note']})" if f.get("note") else ""
        lines.append(f"| {f['label']}{note} | {_value(f)} | {_target(f)} | "
                     f"{_met(f)} |")
    if sizes:
        lines += ["", "| size | this run | target | met |", "| --- | ---: | --- | --- |"]
        for f in sizes:
            note = f" ({f['note']})" if f.get("note") else ""
            lines.append(f"| {f['label']}{note} | {_value(f)} | "
                         f"{_target(f)} | {_met(f)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.report", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "results", nargs="?", type=Path, default=DEFAULT_JSON,
        help="a results.json written by python -m bench (default: bench/results.json)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        results = json.loads(args.results.read_text())
        text = render(results)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"bench.report: {args.results}: not a results file of python -m bench ({exc})",
              file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
