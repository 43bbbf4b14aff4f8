"""The pure-Python scan of one block of whole lines into rows.

Lines shaped like logtrace's own records are decoded thousands at a time by
msgspec into :class:`_Line` and their fields worked out column by column
with numpy (:func:`_fast_rows`, timestamps by :func:`_timestamp_column`);
only the other lines are parsed one at a time (:func:`_slow_rows`). IDs are
interned last, in line order, so indexes do not depend on which path read a
line: the C scanner (:mod:`._scan_native`) gives the same rows.
"""

from __future__ import annotations

from itertools import chain, compress, repeat

import msgspec
import numpy as np
import numpy.typing as npt

from .._schema import (
    ERROR_TYPE,
    EXCEPTION_TYPE,
    HTTP_RESPONSE_STATUS_CODE,
    SPAN_KIND,
    SPAN_START,
)
from ._batches import Records, line_records, may_hold_many
from ._continued import Continuations
from ._id_forms import names_no_service
from ._intern import Interner, fixed_width
from ._model import (
    ERROR,
    JSON,
    KIND_FLAGS,
    NO_TRACE_ID,
    SCAN_DTYPE,
    SPAN_RECORD,
)
from ._parse import (
    ERROR_LEVELS,
    NOT_ERROR_LEVELS,
    Parsed,
    duration_value,
    parse_line,
    scan_json,
)
from ._timestamps import iso_fast, minute_cache, parse_timestamp

__all__ = ["PURE_BLOCK", "line_breaks", "scan_block", "scan_line"]

PURE_BLOCK = 2 << 20
"""Bytes the pure-Python scan parses at a time: its per-line temporaries
cost tens of times the bytes, so its blocks are smaller than the C scan's."""


class _Line(msgspec.Struct, gc=False):
    """The keys of logtrace's own records, typed: a block of such lines is
    decoded in one call; any other shape sends its chunk down the general path."""

    timestamp: str | None = None
    level: str | None = None
    service: str | None = None
    trace_id: str | None = None
    span_id: str | None = None
    parent_span_id: str | None = None
    span_kind: object = msgspec.field(default=None, name=SPAN_KIND)
    span_start: object = msgspec.field(default=None, name=SPAN_START)
    duration_ms: object = None
    error_type: object = msgspec.field(default=None, name=ERROR_TYPE)
    exception_type: object = msgspec.field(default=None, name=EXCEPTION_TYPE)
    exc_info: object = None
    status: object = msgspec.field(default=None, name=HTTP_RESPONSE_STATUS_CODE)


_decode_lines = msgspec.json.Decoder(_Line).decode_lines

_LINES_PER_CHUNK = 4096
_OPEN, _CLOSE, _CR, _NL = 123, 125, 13, 10


class _Block:
    """Per-line columns of one block while it is parsed; IDs still as written."""

    __slots__ = ("flags", "parent", "reason", "service", "span", "start", "trace", "ts")

    def __init__(self, n: int) -> None:
        self.ts = np.full(n, np.nan)
        self.start = np.full(n, np.nan)
        self.flags = np.zeros(n, dtype=np.uint8)
        self.reason = np.zeros(n, dtype=np.uint8)
        self.trace: npt.NDArray[np.object_] = np.full(n, None, dtype=object)
        self.span: npt.NDArray[np.object_] = np.full(n, None, dtype=object)
        self.parent: npt.NDArray[np.object_] = np.full(n, None, dtype=object)
        self.service: npt.NDArray[np.object_] = np.full(n, None, dtype=object)


def scan_block(block: bytes, pos: int, lineno: int, state: Interner) -> npt.NDArray[np.void]:
    """Rows for the non-blank lines of one block of whole lines.

    Lines that look like one ASCII JSON object are decoded a chunk at a time
    and their fields worked out column by column; every other line (and every
    line of a chunk the batch decoder rejects) takes :func:`scan_line`. IDs
    are interned last, in line order, so indexes do not depend on the path.
    """
    data = np.frombuffer(block, dtype=np.uint8)
    text = block
    if b"\r" in block:
        # A CR not followed by LF ends a line too: it becomes LF for the batch decoder.
        lone = data == _CR
        lone[:-1] &= data[1:] != _NL
        breaks = lone | (data == _NL)
        ends = np.flatnonzero(breaks)
        if lone.any():
            buf = bytearray(block)
            for i in np.flatnonzero(lone).tolist():
                buf[i] = _NL
            text = bytes(buf)
    else:
        ends = np.flatnonzero(data == _NL)
    if not block.endswith((b"\n", b"\r")):
        ends = np.append(ends, len(block))
    n = len(ends)
    starts = np.empty(n, dtype=np.int64)
    starts[:1] = 0
    starts[1:] = ends[:-1] + 1
    lengths = ends - starts
    has = lengths > 0
    cr = np.zeros(n, dtype=bool)
    cr[has] = data[ends[has] - 1] == _CR
    lengths -= cr
    has = lengths > 0
    cand = has.copy()
    cand[has] = (data[starts[has]] == _OPEN) & (data[starts[has] + lengths[has] - 1] == _CLOSE)
    high = np.flatnonzero(data >= 128)
    if len(high):
        cand[np.searchsorted(ends, high)] = False
    keep = cand.copy()
    cols = _Block(n)
    others = np.flatnonzero(has & ~cand).tolist()
    if others:
        buf = bytearray(text)
        for i in others:
            buf[starts[i] : ends[i]] = b" " * int(ends[i] - starts[i])
        text = bytes(buf)
    view = memoryview(text)
    cand_at = np.flatnonzero(cand)
    for lo in range(0, len(cand_at), _LINES_PER_CHUNK):
        at = cand_at[lo : lo + _LINES_PER_CHUNK]
        first, last = int(at[0]), int(at[-1])
        try:
            lines = _decode_lines(view[int(starts[first]) : int(ends[last])])
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            lines = None
        if lines is None or len(lines) != len(at):
            others.extend(at.tolist())
            continue
        _fast_rows(lines, at, cols, others)
    offsets = starts + pos
    numbers = np.arange(lineno + 1, lineno + 1 + n, dtype=np.int64)
    if others:
        others.sort()
        many = _slow_rows(others, block, starts, lengths, cols, keep)
        if many:
            cols, keep, offsets, lengths, numbers = _with_records(
                many, cols, keep, offsets, lengths, numbers
            )
    return _rows(cols, keep, offsets, lengths, numbers, state)


def line_breaks(block: bytes) -> int:
    """The line breaks in ``block``: LF, CR LF, and a CR alone."""
    lf = block.count(b"\n")
    cr = block.count(b"\r")
    return lf + cr - block.count(b"\r\n") if cr else lf


def _fast_rows(
    lines: list[_Line], at: npt.NDArray[np.int64], cols: _Block, others: list[int]
) -> None:
    """Fields of a decoded chunk, column at a time; lines outside the common
    shape (no trace ID, no timestamp...) go to the line parser via ``others``."""
    n = len(lines)
    trace = [r.trace_id for r in lines]
    stamp_text = [r.timestamp for r in lines]
    service = [r.service for r in lines]
    level = [r.level for r in lines]
    slow = {i for i, v in enumerate(trace) if v is None}
    if stamp_text.count(None) or level.count(None) or service.count(None):
        slow.update(i for i, v in enumerate(stamp_text) if v is None)
        slow.update(i for i, v in enumerate(level) if v is None)
        slow.update(i for i, v in enumerate(service) if v is None)
    named = dict.fromkeys(service)
    bad = {s for s in named if s is not None and (len(s) > 200 or names_no_service(s))}
    if bad:
        slow.update(i for i, v in enumerate(service) if v in bad)
    fast = np.ones(n, dtype=bool)
    if slow:
        fast[list(slow)] = False
        others.extend(at[~fast].tolist())
        if not fast.any():
            return
        for i in slow:
            stamp_text[i] = _NO_STAMP
    flags = np.full(n, JSON, dtype=np.uint8)
    errors = {
        v
        for v in dict.fromkeys(level)
        if v is not None and v not in NOT_ERROR_LEVELS and v.lower() in ERROR_LEVELS
    }
    if errors:
        flags[[i for i, v in enumerate(level) if v in errors]] |= ERROR
    # Error keys are rare: one pass finds the lines that have any, then those are checked.
    marked = [
        i
        for i, r in enumerate(lines)
        if r.error_type is not None
        or r.exception_type is not None
        or r.exc_info
        or (type(r.status) is int and r.status >= 500)
    ]
    if marked:
        flags[marked] |= ERROR
    stamps = _timestamp_column(stamp_text)
    kinds = [r.span_kind for r in lines]
    if kinds.count(None) != n:
        durations = [duration_value(r.duration_ms) for r in lines]
        which = [
            i
            for i, (k, d) in enumerate(zip(kinds, durations, strict=True))
            if k is not None and d is not None and fast[i]
        ]
        if which:
            picked = [lines[i] for i in which]
            got = _timestamp_column(
                [v if type(v) is str else _NO_STAMP for v in (r.span_start for r in picked)]
            )
            took = np.array([durations[i] for i in which], dtype=np.float64)
            cols.start[at[which]] = np.where(np.isnan(got), stamps[which] - took / 1e3, got)
            flags[which] |= np.array(
                [
                    SPAN_RECORD | KIND_FLAGS.get(k, 0) if type(k) is str else SPAN_RECORD
                    for k in (r.span_kind for r in picked)
                ],
                dtype=np.uint8,
            )
    where = at[fast]
    if slow:
        keep = fast.tolist()
        trace = list(compress(trace, keep))
        service = list(compress(service, keep))
        span = list(compress((r.span_id for r in lines), keep))
        parent = list(compress((r.parent_span_id for r in lines), keep))
    else:
        span = [r.span_id for r in lines]
        parent = [r.parent_span_id for r in lines]
    cols.trace[where] = trace
    cols.span[where] = span
    cols.parent[where] = parent
    cols.service[where] = service
    cols.ts[where] = stamps[fast]
    cols.flags[where] = flags[fast]


def _slow_rows(
    which: list[int],
    block: bytes,
    starts: npt.NDArray[np.int64],
    lengths: npt.NDArray[np.int64],
    cols: _Block,
    keep: npt.NDArray[np.bool_],
) -> dict[int, Records]:
    """One line at a time: everything but the common case. Returns the lines
    that hold many records; each of their columns holds the line's first.
    A line that continues the text record before it (:mod:`._continued`)
    has no row: that record's length grows to take it in."""
    many: dict[int, Records] = {}
    records = Continuations()
    last = -1
    for i in which:
        s = int(starts[i])
        raw = block[s : s + int(lengths[i])]
        if raw.isspace():
            keep[i] = False
            continue
        got = scan_line(raw)
        if isinstance(got, list):
            many[i] = got
            got = got[0][2]
            records.joins(block, s, raw, got)  # a JSON line: closes the record
        else:
            joined = records.joins(block, s, raw, got)
            if joined >= 0:
                keep[i] = False
                lengths[last] = joined
                continue
        keep[i] = True
        last = i
        trace, span, parent, ts, service, flags, reason, sstart = got
        cols.trace[i] = trace
        cols.span[i] = span
        cols.parent[i] = parent
        cols.service[i] = service
        if ts is not None:
            cols.ts[i] = ts
        if sstart is not None:
            cols.start[i] = sstart
        cols.flags[i] = flags
        cols.reason[i] = reason
    return many


def _with_records(
    many: dict[int, Records],
    cols: _Block,
    keep: npt.NDArray[np.bool_],
    offsets: npt.NDArray[np.int64],
    lengths: npt.NDArray[np.int64],
    lines: npt.NDArray[np.int64],
) -> tuple[
    _Block,
    npt.NDArray[np.bool_],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
]:
    """The columns with a row per record for the lines that hold many: each
    record's byte range, the line's number, in the line's place."""
    at: list[int] = []
    extra: list[tuple[int, int, Parsed]] = []
    offsets = offsets.copy()
    lengths = lengths.copy()
    for i, records in sorted(many.items()):
        base = int(offsets[i])
        offsets[i] = base + records[0][0]
        lengths[i] = records[0][1]
        for start, length, parsed in records[1:]:
            at.append(i + 1)
            extra.append((base + start, length, parsed))
    out = _Block(0)
    nan = np.nan
    for name, values in (
        ("trace", [p[0] for _, _, p in extra]),
        ("span", [p[1] for _, _, p in extra]),
        ("parent", [p[2] for _, _, p in extra]),
        ("ts", [nan if p[3] is None else p[3] for _, _, p in extra]),
        ("service", [p[4] for _, _, p in extra]),
        ("flags", [p[5] for _, _, p in extra]),
        ("reason", [p[6] for _, _, p in extra]),
        ("start", [nan if p[7] is None else p[7] for _, _, p in extra]),
    ):
        column = getattr(cols, name)
        if column.dtype == object:
            filler = np.empty(len(values), dtype=object)
            filler[:] = values
            setattr(out, name, np.insert(column, at, filler))
        else:
            setattr(out, name, np.insert(column, at, np.array(values, dtype=column.dtype)))
    return (
        out,
        np.insert(keep, at, True),
        np.insert(offsets, at, [o for o, _, _ in extra]),
        np.insert(lengths, at, [n for _, n, _ in extra]),
        np.insert(lines, at, lines[np.array(at, dtype=np.int64) - 1]),
    )


def scan_line(raw: bytes) -> Parsed | Records:
    """One non-blank line as the scan reads it (IDs maybe as written, see
    :func:`scan_json`): both scan paths parse the lines they do not batch here.
    A line that holds many records gives each one's byte range and fields
    (:func:`._batches.line_records`)."""
    parsed = None
    if raw[:1] == b"{" and raw.isascii():
        parsed = scan_json(raw)
    if parsed is None:
        parsed = parse_line(raw)
    if parsed[0] is None and raw[:1] == b"{" and may_hold_many(raw):
        # Only a line that joins no trace of its own may hold many records.
        records = line_records(raw)
        if records is not None:
            return records
    return parsed


def _iso_column(values: list[str]) -> npt.NDArray[np.float64]:
    """:func:`iso_fast` over a column: epoch seconds, NaN where it would give ``None``."""
    n = len(values)
    out = np.full(n, np.nan)
    if not n:
        return out
    c = fixed_width(values, 27)
    if c is None:
        return out
    ok = (c[:, 19] == 46) & (c[:, 16] == 58) & (c[:, 26] == 90)
    digits = c[:, _DIGIT_COLUMNS].astype(np.int64) - 48
    ok &= ((digits >= 0) & (digits <= 9)).all(axis=1)
    ok &= (c[:, 4] == 45) & (c[:, 7] == 45) & (c[:, 10] == 84) & (c[:, 13] == 58)
    if not ok.any():
        return out
    digits[~ok] = 0
    minute = digits[:, :12] @ _MINUTE_WEIGHTS
    seconds = (digits[:, 12:] @ _SECOND_WEIGHTS) / 1e6
    ok &= seconds < 61.0
    keys, first, inverse = np.unique(
        np.where(ok, minute, -1), return_index=True, return_inverse=True
    )
    minutes = minute_cache()
    base = np.full(len(keys), np.nan)
    firsts: list[tuple[int, float]] = []
    for k, (key, i) in enumerate(zip(keys.tolist(), first.tolist(), strict=True)):
        if key >= 0:
            prefix = values[i][:16]
            value = minutes.get(prefix)
            if value is None:
                # A new minute: its first line takes the general parser, which
                # caches the minute for the others (as line by line).
                stamp = parse_timestamp(values[i])
                value = minutes.get(prefix)
                if stamp is not None:
                    firsts.append((i, stamp))
            if value is not None:
                base[k] = value
    out = np.where(ok, base[inverse] + seconds, np.nan)
    for i, stamp in firsts:
        out[i] = stamp
    return out


_NO_STAMP = "-" * 27
"""Stands for a timestamp not to parse, keeping a column all strings."""
_DIGIT_COLUMNS = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22, 23, 24, 25]
_MINUTE_WEIGHTS = np.array([10**k for k in range(11, -1, -1)], dtype=np.int64)
_SECOND_WEIGHTS = np.array([10**k for k in range(7, -1, -1)], dtype=np.int64)


def _timestamp_column(values: list[str | None]) -> npt.NDArray[np.float64]:
    """Epoch seconds of ISO strings (NaN for none), exactly as the line parser reads them."""
    stamps = _iso_column(values)  # type: ignore[arg-type]
    missing = np.flatnonzero(np.isnan(stamps)).tolist()
    for i in missing:
        value = values[i]
        if value is None or value is _NO_STAMP:
            continue
        stamp = iso_fast(value)
        if stamp is None:
            stamp = parse_timestamp(value)
        if stamp is not None:
            stamps[i] = stamp
    return stamps


def _rows(
    cols: _Block,
    keep: npt.NDArray[np.bool_],
    offsets: npt.NDArray[np.int64],
    lengths: npt.NDArray[np.int64],
    lines: npt.NDArray[np.int64],
    state: Interner,
) -> npt.NDArray[np.void]:
    """The kept lines' rows, their IDs and services interned in line order."""
    at = np.flatnonzero(keep)
    m = len(at)
    rows = np.empty(m, dtype=SCAN_DTYPE)
    if not m:
        return rows
    trace = cols.trace[at].tolist()
    span = cols.span[at].tolist()
    parent = cols.parent[at].tolist()
    service = cols.service[at].tolist()
    state.add_traces(dict.fromkeys(trace))
    tix = np.fromiter(map(state.traces.__getitem__, trace), dtype=np.int32, count=m)
    valid = tix >= 0
    state.add_spans(
        dict.fromkeys(chain.from_iterable(compress(zip(span, parent, strict=True), valid.tolist())))
    )
    get = state.spans.get
    six = np.fromiter(map(get, span, repeat(-1)), dtype=np.int32, count=m)
    pix = np.fromiter(map(get, parent, repeat(-1)), dtype=np.int32, count=m)
    six[~valid] = -1
    pix[~valid] = -1
    if service.count(service[0]) == m:
        state.add_services(service[:1])
    else:
        state.add_services(dict.fromkeys(service))
    reason = cols.reason[at]
    reason[~valid & (reason == 0)] = NO_TRACE_ID
    rows["off"] = offsets[at]
    rows["len"] = lengths[at]
    rows["line"] = lines[at]
    rows["ts"] = cols.ts[at]
    rows["trace"] = tix
    rows["span"] = six
    rows["parent"] = pix
    if service.count(service[0]) == m:
        rows["svc"] = state.services[service[0]]
    else:
        rows["svc"] = np.fromiter(map(state.services.__getitem__, service), np.uint16, m)
    rows["flags"] = cols.flags[at]
    rows["reason"] = reason
    rows["start"] = cols.start[at]
    return rows
