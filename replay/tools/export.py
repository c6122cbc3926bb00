"""``replay export``: a replayed trace in another tool's format."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO

__all__ = ["export"]

# -- export ------------------------------------------------------------------------------


def export(path: str | Path, out: TextIO, *, fmt: str = "perfetto", **options: Any) -> Any:
    """Export a trace's run for another tool; ``fmt`` is ``perfetto`` (Chrome trace events)."""
    if fmt in ("perfetto", "chrome"):
        from .perfetto import export_perfetto

        return export_perfetto(path, out, **options)
    raise ValueError(f"unknown export format {fmt!r} (known: perfetto)")
