"""Span-record fields the scan does not keep, read back for the calls alone.

Three fields of a server or client span record matter to the clock estimate
only: when the server's response was complete (``response_ms`` after
``span.start``), when its headers went out (``headers_ms``) and which host
the span ran on (``host.name``, or ``hostname``). Rather than carry them
through the scan for every line, the clock stage reads them from the records
of the spans that take part in a cross-service call (a small share of the
lines), by byte offset, as the writers read lines back. A file whose first
records name none of the fields is not read further: its writer does not
write them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from hashlib import blake2b
from typing import Any

import numpy as np
import numpy.typing as npt

from ._decompress import LineReader
from ._group import RowLines
from ._model import SPAN_RECORD, Table, Tree
from ._span_fields import ANSWER_PATTERNS, HEADERS_PATTERNS, HOST_PATTERNS, number, text_span_record

__all__ = [
    "SpanExtras",
    "answered_ends",
    "ends_before_text_records",
    "host_key",
    "span_extras",
    "text_records",
]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

_GIVE_UP = 256
"""Span records read from a file without finding either field before the file is left alone."""


_NONE = np.empty(0, dtype=object)


def host_key(host: str) -> int:
    """A host name as a positive 63-bit integer (0: none), for numpy columns."""
    if not host:
        return 0
    digest = blake2b(host.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return (int.from_bytes(digest, "big") >> 1) or 1


@dataclass(slots=True)
class SpanExtras:
    """Per span asked for, what its span record says (raw clock of its service)."""

    answered: F64
    """``span.start`` plus ``response_ms``: when its response was complete."""
    heard: F64
    """``span.start`` plus ``headers_ms``: when its answer's headers went out."""
    hosts: I64
    """Its host's :func:`host_key` (0 if unnamed)."""
    recorded: B
    """Whether it has a span record at all (where it has none, or its record
    does not say, the times above are NaN and the host 0)."""


def span_extras(table: Table, spans: I64) -> SpanExtras:
    """What the span records of ``spans`` say, read once per partition (the
    clock stage and the order stage look at the same calls)."""
    memo = table.memo.get("span_extras")
    if memo is None or not np.array_equal(memo[0], spans):
        memo = table.memo["span_extras"] = (spans.copy(), _read_extras(table, spans))
    found: SpanExtras = memo[1]
    return SpanExtras(
        found.answered.copy(), found.heard.copy(), found.hosts.copy(), found.recorded.copy()
    )


def answered_ends(table: Table, tree: Tree, spans: I64) -> Tree:
    """``tree`` with each of ``spans`` ending when its answer went out (the
    headers, else the complete response), where its span record says so and
    that is before its last line. A server writes its span record when the
    application returns, which can be after the caller heard back (and
    wrote its line): a callee fits inside its caller's call by its answer."""
    memo = table.memo.get("answered_ends")
    if memo is None or not np.array_equal(memo[0], spans):
        found = _read_extras(table, spans)
        said = np.where(np.isnan(found.heard), found.answered, found.heard)
        memo = table.memo["answered_ends"] = (spans.copy(), said)
    end = tree.end.copy()
    end[spans] = np.fmin(end[spans], memo[1])
    return replace(tree, end=end)


def text_records(table: Table, spans: I64) -> tuple[F64, F64]:
    """Per span of the table: when its span record was written, where its
    last line is one a text format wrote (``logtrace.span`` as the logger's
    name, none of the record's fields), and the time of its last line but
    one (NaN for none). Only ``spans`` (spans without a record the scan
    read) are looked at. Such a record is written when the application
    returned, often after the caller heard back: it bounds nothing."""
    # Per span, once: the callers' and the callees' spans of a partition's
    # calls are asked for in turn, by every stage that finds its calls.
    n = len(table.spans)
    memo = table.memo.get("text_records")
    if memo is None:
        memo = table.memo["text_records"] = (
            np.zeros(n, dtype=bool),
            np.full(n, np.nan),
            np.full(n, np.nan),
        )
    known, written, before = memo
    wanted = np.zeros(n, dtype=bool)
    wanted[spans] = True
    wanted &= ~known
    known |= wanted
    if not wanted.any():
        return written, before
    rows = table.rows
    span_col = rows["span"]
    usable = np.flatnonzero((span_col >= 0) & ~np.isnan(rows["ts"]))
    usable = usable[wanted[span_col[usable]]]
    if not len(usable):
        return written, before
    span = span_col[usable].astype(np.int64)
    perm = np.lexsort((usable, rows["ts"][usable], span))
    usable, span = usable[perm], span[perm]
    last = np.flatnonzero(np.r_[span[1:] != span[:-1], True])
    line = RowLines(table)
    try:
        late = np.array([text_span_record(line(r)) for r in usable[last].tolist()], dtype=bool)
    finally:
        line.close()
    last = last[late]
    written[span[last]] = rows["ts"][usable[last]]
    prev = np.maximum(last - 1, 0)
    has_prev = (last > 0) & (span[prev] == span[last])
    before[span[last[has_prev]]] = rows["ts"][usable[prev[has_prev]]]
    return written, before


def ends_before_text_records(table: Table, tree: Tree, spans: I64) -> F64:
    """Per span of ``spans`` (spans without a span record the scan read):
    its end, or its last line but one where its last line is a span record
    a text format wrote (:func:`text_records`); NaN where that record is
    the span's only timed line."""
    written, before = text_records(table, spans)
    return np.where(np.isnan(written[spans]), tree.end[spans], before[spans])


def _read_extras(table: Table, spans: I64) -> SpanExtras:
    out = SpanExtras(
        np.full(len(spans), np.nan),
        np.full(len(spans), np.nan),
        np.zeros(len(spans), dtype=np.int64),
        np.zeros(len(spans), dtype=bool),
    )
    rows = table.rows
    if not len(spans) or not len(rows):
        return out
    record = np.flatnonzero((rows["span"] >= 0) & ((rows["flags"] & SPAN_RECORD) != 0))
    if not len(record):
        return out
    row_of = np.full(len(table.spans), -1, dtype=np.int64)
    row_of[rows["span"][record]] = record
    wanted = row_of[spans]
    out.recorded = wanted >= 0
    at = np.flatnonzero(out.recorded)
    if not len(at):
        return out
    files = table.file[wanted[at]]
    order = np.argsort(files, kind="stable")
    at, files = at[order], files[order]
    cuts = np.flatnonzero(np.diff(files)) + 1
    host_keys: dict[bytes, int] = {}
    for chunk in np.split(at, cuts):
        _read_file(table, chunk, wanted, (out.answered, out.heard), out.hosts, host_keys)
    return out


def _read_file(
    table: Table,
    chunk: I64,
    wanted: I64,
    answered: tuple[F64, F64],
    hosts: I64,
    host_keys: dict[bytes, int],
) -> None:
    """The fields of the records of ``chunk`` (positions into ``spans``), all in one file:
    its first :data:`_GIVE_UP`, then the rest if those name any of the fields."""
    lines = wanted[chunk]
    reader = LineReader(table.data_paths[int(table.file[lines[0]])])
    try:
        head = _read_lines(reader.data, table, chunk[:_GIVE_UP], wanted, answered, hosts, host_keys)
        if head and len(chunk) > _GIVE_UP:
            _read_lines(reader.data, table, chunk[_GIVE_UP:], wanted, answered, hosts, host_keys)
    finally:
        reader.close()


def _read_lines(
    data: Any,
    table: Table,
    chunk: I64,
    wanted: I64,
    answered: tuple[F64, F64],
    hosts: I64,
    host_keys: dict[bytes, int],
) -> bool:
    """Read the fields of ``chunk``'s records in one pass over their joined
    lines; whether any was found."""
    rows = table.rows
    lines = wanted[chunk]
    lengths = rows["len"][lines].astype(np.int64)
    offsets = rows["off"][lines].tolist()
    ends = (rows["off"][lines] + lengths).tolist()
    block = b"\n".join([data[a:b] for a, b in zip(offsets, ends, strict=True)])
    found = False
    starts = table.span_start[lines]
    for patterns, name, out in (
        (ANSWER_PATTERNS, b"response_ms", answered[0]),
        (HEADERS_PATTERNS, b"headers_ms", answered[1]),
    ):
        numbers = _first_of(patterns, block, lengths) if name in block else _NONE
        have = np.flatnonzero(numbers != b"")
        if len(have):
            found = True
            for k in have.tolist():
                ms = number(numbers[k])
                if ms is not None:
                    out[chunk[k]] = starts[k] + ms / 1e3
    names = _first_of(HOST_PATTERNS, block, lengths) if b"host" in block else _NONE
    have = np.flatnonzero(names != b"")
    if len(have):
        found = True
        unique, inverse = np.unique(names[have], return_inverse=True)
        keys = []
        for name in unique.tolist():
            key = host_keys.get(name)
            if key is None:
                key = host_keys[name] = host_key(name.decode("utf-8", "replace"))
            keys.append(key)
        hosts[chunk[have]] = np.array(keys, dtype=np.int64)[inverse]
    return found


def _first_of(patterns: tuple[re.Pattern[bytes], ...], block: bytes, lengths: I64) -> Any:
    """Per line of ``block`` (lines of ``lengths`` bytes joined by newlines):
    the value the first of ``patterns`` (one group each, no match spanning
    lines) finds in the line captures (``b""``: none)."""
    n = len(lengths)
    out = np.full(n, b"", dtype=object)
    ends = np.cumsum(lengths + 1)  # each line's end, past its newline
    for pattern in patterns:
        if not (out == b"").any():
            break
        starts: list[int] = []
        found: list[bytes] = []
        for match in pattern.finditer(block):
            starts.append(match.start())
            found.append(match[1])
        if not starts:
            continue
        where = np.searchsorted(ends, starts, side="right")  # the line of each match
        line, first = np.unique(where, return_index=True)  # the first in each line
        values = np.empty(len(found), dtype=object)
        values[:] = found
        take = out[line] == b""
        out[line[take]] = values[first[take]]
    return out
