"""The trace file: its format, records, header, and the streaming reader and writer.

``format`` holds the constants and event kinds, ``records`` each kind's layout
and checks, ``choices`` the CHOICES codec, ``header`` the header record;
``writer`` and ``reader`` stream a trace one chunk at a time.
docs/trace-format.md is the specification these modules implement.
"""

from __future__ import annotations

from .reader import Record, TracePosition, TraceReader
from .writer import TraceWriter

__all__ = ["Record", "TracePosition", "TraceReader", "TraceWriter"]
