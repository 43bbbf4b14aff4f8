"""Lines that continue a text record: a traceback under the line that logged it.

A text-format logger writes one record over many lines when it logs an
exception (``exc_info``) or a message with line breaks: only the first line
has the time, the level and the trace ID. The lines after it belong to it.

A record starts at a line that begins with a timestamp (ISO 8601, optionally
in brackets, or syslog's ``Mon dd hh:mm:ss``) or a level word (``ERROR:``,
``INFO ``): its *head* (:data:`._record_cuts.RECORD_START`). A line after a
head continues it when it starts neither so nor with ``{``, and reads as
nothing of its own: no trace ID, no timestamp, no JSON, no ``key=value``
pairs at its start, no bad bytes (an indented line that starts with a
brace but is no JSON is a traceback's source line, ``    {}["key"]``). It
joins its head's record: the record's byte range grows to take it in, so
that it is carried, ordered and written with the head (its text after the
head's line, shown under it). Any other line closes the record. A record takes at most
:data:`._record_cuts.JOIN_LIMIT` bytes of continuation; the lines past it
stand alone.

Both scan paths read a block's lines in order through :class:`Continuations`;
blocks and parallel ranges are cut where no record can be split
(:mod:`._record_cuts`), so that the result does not depend on where a file is cut.
"""

from __future__ import annotations

import re

from ._model import BROKEN, JSON, LOGFMT, NO_TRACE_ID, UNPARSEABLE_JSON
from ._record_cuts import JOIN_LIMIT, RECORD_START

__all__ = ["Continuations"]

Buffer = bytes | bytearray | memoryview

_CRI = re.compile(rb"\S+ std(?:out|err) [PF] ")
_OPEN_BRACE, _SPACE, _TAB = 123, 32, 9


class Continuations:
    """The open record of one block of whole lines, which its next lines may continue.

    The scan hands it each line it parses itself, in line order, with what
    the parser read. Lines the scan reads elsewhere (the C scanner's JSON
    records) are never blank, and a non-blank line between an open record
    and a candidate closes the record.
    """

    __slots__ = ("_end", "_head_end", "_start")

    def __init__(self) -> None:
        self._start = 0
        self._head_end = -1
        self._end = -1
        """End of the open record's last line (-1: none open)."""

    def joins(
        self,
        data: Buffer,
        start: int,
        raw: bytes,
        parsed: tuple[object, object, object, object, object, int, int, object],
    ) -> int:
        """The open record's length with the line ``raw`` (non-blank, at
        ``start`` in ``data``, read as ``parsed``) joined to it, or -1 when it
        is a record of its own (it may then open one)."""
        first = raw[0]
        head = first != _OPEN_BRACE and RECORD_START.match(raw) is not None
        flags = parsed[5]
        if self._end >= 0 and not head and first != _OPEN_BRACE:
            end = start + len(raw)
            indented = first in (_SPACE, _TAB)
            # An indented line that merely starts with a brace (a traceback's
            # source line: ``    {}["key"]``) is no broken JSON record.
            brace = indented and parsed[6] == UNPARSEABLE_JSON
            if (
                parsed[0] is None
                and parsed[3] is None
                and (parsed[6] == NO_TRACE_ID or brace)
                and not flags & (JSON | (0 if brace else BROKEN))
                and (not flags & LOGFMT or indented)
                and end - self._head_end <= JOIN_LIMIT
                and not bytes(data[self._end : start]).strip()
            ):
                self._end = end
                return end - self._start
            self._end = -1
        elif (
            head
            and not flags & (JSON | LOGFMT | BROKEN)
            and parsed[6] <= NO_TRACE_ID
            and (raw.find(b" std", 19, 48) < 0 or _CRI.match(raw) is None)
        ):
            self._start = start
            self._head_end = self._end = start + len(raw)
        else:
            self._end = -1
        return -1
