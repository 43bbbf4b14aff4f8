"""Where a file may be cut without cutting a record: blocks and parallel ranges.

A text record may run over many lines (a traceback under the line that
logged it: see :mod:`._continued`). It starts at a line that begins with a
timestamp or a level word (:data:`RECORD_START`) and takes at most
:data:`JOIN_LIMIT` bytes of the lines after it. The scan reads a block's lines
alone, so blocks (:func:`record_cut`) and the ranges read in parallel
(:func:`safe_start`) end before such a line, or far enough past one that the
lines after the cut join no record: where a file is cut changes nothing.
Light (no numpy, no data model): planning and ``logtrace grep`` import it.
"""

from __future__ import annotations

import re
from typing import IO

__all__ = ["JOIN_LIMIT", "RECORD_START", "record_cut", "safe_start"]

JOIN_LIMIT = 64 << 10
"""Bytes of continuation lines a record takes (a long traceback is a few KiB)."""

RECORD_START = re.compile(
    rb"\[?(?:\d{4}-\d\d-\d\d[T ]\d\d:\d\d"
    rb"|[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d"
    rb"|(?:DEBUG|INFO|NOTICE|WARNING|WARN|ERROR|CRITICAL|FATAL|TRACE)\b)"
)
"""A line that starts a record of its own: a timestamp or a level word first."""
_OPEN_BRACE = 123


def _starts_record(data: bytes | bytearray, start: int, end: int) -> bool:
    return data[start] == _OPEN_BRACE or RECORD_START.match(data, start, end) is not None


def record_cut(data: bytes | bytearray, lo: int, cut: int) -> int:
    """Where to end a block of the whole lines ``data[lo:cut]`` so that no
    record is split: ``cut``, or the start of a head whose record the lines
    after ``cut`` may continue (``lo``: the block is one record so far; read on).

    Only the block's last lines are looked at: back to a line that starts a
    record, or :data:`JOIN_LIMIT` bytes.
    """
    pos = cut
    floor = cut - JOIN_LIMIT
    while pos > lo:
        e = pos - 1
        if data[e] == 10 and e > lo and data[e - 1] == 13:
            e -= 1
        lf = data.rfind(b"\n", lo, e)
        cr = data.rfind(b"\r", max(lo, lf + 1), e)
        s = max(lf, cr, lo - 1) + 1
        if e < floor:
            return cut
        if s < e and _starts_record(data, s, e):
            return s if data[s] != _OPEN_BRACE else cut
        pos = s
    return cut


def safe_start(f: IO[bytes], size: int) -> int:
    """The position, from ``f``'s (a line start), of a line where a scan
    range may start: one that starts a record, or one :data:`JOIN_LIMIT`
    bytes past the last line that may have; ``size`` when the file ends first."""
    origin = pos = f.tell()
    while pos < size and pos - origin < JOIN_LIMIT:
        line = f.readline()
        if not line:
            return size
        body = line.rstrip(b"\r\n")
        if body.strip() and _starts_record(body, 0, len(body)):
            return pos
        pos = f.tell()
        if b"\r" in body:  # a CR alone ends a line too: a record may start after it
            origin = pos
    return min(pos, size)
