"""``python -m replay`` and the ``replay`` console script: see ``replay.cli``."""

from __future__ import annotations

import sys

from replay.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
