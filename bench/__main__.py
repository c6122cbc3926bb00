"""``python -m bench``: run the benchmark suite, print one table, write ``results.json``.

    python -m bench                      # every workload, 5 rounds after 1 warm-up
    python -m bench --quick              # tiny sizes, 1 round, no warm-up (make test)
    python -m bench --only timers,bh     # some workloads
    python -m bench --repeat 9 --json /tmp/r.json

Exits 1 if any figure is an ``error`` (its traceback is on stderr); a missed
target is reported in the table, not in the exit status.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .harness import Figure, Settings, Status, machine, print_table, write_json
from .sizes import FULL, QUICK
from .suite import WORKLOADS

DEFAULT_JSON = Path(__file__).resolve().parent / "results.json"
DEFAULT_REPEAT = 5


def _workload_names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in WORKLOADS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown workload {', '.join(unknown) or '(none)'}; choose from {', '.join(WORKLOADS)}"
        )
    return names


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes, 1 repetition, no warm-up (checks the code runs)",
    )
    parser.add_argument(
        "--only",
        type=_workload_names,
        default=list(WORKLOADS),
        metavar="NAME[,NAME]",
        help=f"workloads to run: {', '.join(WORKLOADS)}",
    )
    parser.add_argument(
        "--repeat",
        type=_positive,
        default=None,
        metavar="N",
        help=f"measured rounds per figure (default {DEFAULT_REPEAT}, quick 1)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=DEFAULT_JSON,
        metavar="PATH",
        help="where to write the figures (default bench/results.json)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    default_repeat = 1 if args.quick else DEFAULT_REPEAT
    settings = Settings(
        quick=args.quick,
        repeat=args.repeat or default_repeat,
        warmup=0 if args.quick else 1,
    )
    sizes = QUICK if args.quick else FULL
    start = time.perf_counter()
    figures: list[Figure] = []
    for name in args.only:
        print(f"bench: running {name} ...", file=sys.stderr, end="", flush=True)
        began = time.perf_counter()
        figures += WORKLOADS[name](settings, sizes)
        print(f" {time.perf_counter() - began:.1f} s", file=sys.stderr, flush=True)
    wall_s = round(time.perf_counter() - start, 3)
    info = machine()
    header = (
        f"evreplay benchmarks: Python {info['python']}, {info['cpus_usable']} cores usable, "
        f"median of {settings.repeat} round(s) after {settings.warmup} warm-up"
        f"{', QUICK sizes' if args.quick else ''}; ratios are per round, same run"
    )
    print_table(figures, header)
    extra = {"workloads": args.only, "wall_s": wall_s}
    write_json(args.json, figures, settings, extra)
    print(f"bench: wrote {args.json} ({wall_s:.1f} s)", file=sys.stderr)
    return 1 if any(fig.status is Status.ERROR for fig in figures) else 0


if __name__ == "__main__":
    sys.exit(main())
