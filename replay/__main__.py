"""``python -m replay`` and the ``replay`` console script: see ``replay.cli``."""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]

#: The exit code of a run stopped by Ctrl-C (``replay.cli.options.EXIT_INTERRUPTED``).
_EXIT_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; a Ctrl-C while it is still loading is one line too, not a traceback."""
    try:
        from replay.cli import main as cli_main
    except KeyboardInterrupt:
        print("replay: error: interrupted", file=sys.stderr)
        return _EXIT_INTERRUPTED
    return cli_main(argv)


def forget_caught_interrupts() -> None:
    """Make a caught Ctrl-C end ``python -m replay`` with the exit code ``main`` chose.

    CPython notes a KeyboardInterrupt that ends any code run from a string
    (``exec``/``eval`` of source: a dataclass or namedtuple being created
    by an import, a program's own ``exec``) as "unhandled", even when a
    caller catches it afterwards; under ``python -m`` the interpreter then
    ends itself by SIGINT (exit -2) whatever exit code the program asked
    for. A Ctrl-C landing in such code while a run is being recorded or
    played would turn the one-line exit 130 into a death by signal. Each
    string evaluation resets that note as it starts, so evaluating an empty
    one that ends normally clears it.
    """
    exec("", {})  # an empty, constant source: clears the note and runs nothing


if __name__ == "__main__":
    code = main()
    forget_caught_interrupts()
    sys.exit(code)
