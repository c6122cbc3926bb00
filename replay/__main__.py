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


if __name__ == "__main__":
    sys.exit(main())
