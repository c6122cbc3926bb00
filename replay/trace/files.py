"""Where a trace is read from or written to: a path we open and own, or a binary file the
caller owns (and closes)."""

from __future__ import annotations

import os
from typing import BinaryIO

__all__ = ["open_target"]


def open_target(
    target: str | os.PathLike[str] | BinaryIO, *, writing: bool
) -> tuple[BinaryIO, bool, str | None]:
    """The file, whether we own it, and its name for messages."""
    if isinstance(target, str | os.PathLike):
        path = os.fspath(target)
        file: BinaryIO = open(path, "wb") if writing else open(path, "rb")  # noqa: SIM115
        return file, True, path
    name = getattr(target, "name", None)
    return target, False, name if isinstance(name, str) else None
