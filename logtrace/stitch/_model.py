"""The plain data passed between the stitcher's stages.

The stitcher never holds parsed records: a run over millions of lines keeps
one fixed-size row per line (40 bytes) and reads a line's text
back by offset only when it writes it out. IDs are interned to small ints
per file chunk (:class:`FileScan`), then across the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["ROW_FIELDS", "SCAN_DTYPE", "FileScan", "Record"]

ROW_FIELDS = ("off", "len", "line", "ts", "trace", "span", "parent", "svc", "flags", "reason")
"""Per line: byte offset, length (line ending excluded), 1-based line number,
raw timestamp (NaN if none), trace, span and parent span index (-1 if none),
service index, flags, reason. See :mod:`._parse` for flags and reasons."""
ROW_DTYPES = ("<i8", "<i4", "<i4", "<f8", "<i4", "<i4", "<i4", "<u2", "u1", "u1")

SCAN_DTYPE = np.dtype([*zip(ROW_FIELDS, ROW_DTYPES, strict=True), ("start", "<f8")])
"""A scanned row: the table's row plus the start time (raw clock) of a span
record, NaN for other lines."""


@dataclass(slots=True)
class FileScan:
    """What reading and parsing one file (or one byte range of it) produced."""

    file: int
    """Index of the file in the run's list of sources."""
    data_path: str
    """Where the line bytes live: the file itself or its decompressed spool."""
    rows: npt.NDArray[np.void]
    """:data:`SCAN_DTYPE` rows, one per non-blank line, in file order."""
    traces: list[str]
    """Local trace index -> trace ID."""
    spans: list[str]
    """Local span index -> span ID; parents share this table. The same ID in
    two traces is one entry here; grouping tells them apart."""
    services: list[str]
    """Local service index -> name; index 0 is the name taken from the file name."""
    lines: int
    """Lines in this range, blank ones included (to number the next range)."""
    warnings: list[str] = field(default_factory=list)
    spooled_ids: int = 0
    """Trace and span IDs written to a spool file with the rows (``traces``
    and ``spans`` are empty then): what grouping them will hold."""


@dataclass(slots=True)
class Record:
    """One line as the text renderer shows it."""

    file: str
    line: int
    service: str
    timestamp: float | None
    """Corrected epoch seconds (UTC), or ``None`` if the line has no time."""
    level: str | None
    message: str
    fields: dict[str, Any]
    """Key fields worth showing next to the message (route, status, error...)."""
    error: bool
