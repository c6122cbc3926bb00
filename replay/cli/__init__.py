"""The ``replay`` command line; ``replay.cli.main`` keeps its rules.

``options`` holds the exit codes and option types, ``run`` the commands that
run scenarios, ``tools`` the commands over trace files, ``main`` the parser.
"""

from __future__ import annotations

from .main import main
from .options import BUNDLED_SCENARIOS, EXIT_FOUND, EXIT_OK, EXIT_USAGE, UsageError

__all__ = ["BUNDLED_SCENARIOS", "EXIT_FOUND", "EXIT_OK", "EXIT_USAGE", "UsageError", "main"]
