"""Pass one: read and parse each file into compact rows, in parallel.

Large uncompressed files are cut into byte ranges at line boundaries so that
every core has work; a compressed file is one task (it is decompressed once,
into a spool the output pass reads back). Workers are forked, intern IDs
locally and send back numpy rows, never parsed records.

Per-line Python is what costs: lines shaped like logtrace's own records are
decoded thousands at a time by msgspec and their fields worked out column by
column with numpy; only the other lines are parsed one at a time. When the C
extension is built, it reads those common lines itself and hands every other
line to the same one-at-a-time parser, giving the same rows.
"""

from __future__ import annotations

import gc
import math
import os
import pickle
import queue
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import chain, compress, pairwise, repeat
from multiprocessing import get_context
from typing import IO, TypeVar

import msgspec
import numpy as np
import numpy.typing as npt

from ._ids import norm_span_id, norm_trace_id
from ._model import SCAN_DTYPE, FileScan
from ._parse import (
    _ERROR_LEVELS,
    _NOT_ERROR,
    ERROR,
    JSON,
    KIND_CLIENT,
    KIND_PRODUCER,
    KIND_SERVER,
    NO_TRACE_ID,
    SPAN_RECORD,
    TRUNCATED,
    UNPARSEABLE_JSON,
    Parsed,
    parse_line,
    scan_json,
)
from ._read import BLOCK, Source, open_decompressed, read_blocks, service_from_path, whole_lines
from ._timestamps import iso_fast, minute_cache, parse_timestamp

try:
    from . import _native_scan
except ImportError:  # not built: the pure-Python path gives the same rows
    _native_scan = None  # type: ignore[assignment]

__all__ = [
    "ScanTask",
    "drop_spilled",
    "input_size",
    "load_spilled",
    "plan_tasks",
    "scan",
    "scan_spilled",
    "scan_task",
]

CHUNK = 48 << 20
"""Uncompressed files larger than this are scanned as several ranges."""

PURE_BLOCK = 2 << 20
"""Bytes the pure-Python scan parses at a time: its per-line temporaries
cost tens of times the bytes, so its blocks are smaller than the C scan's."""

SEGMENT_ROWS = 1 << 18
"""Rows a scan handing out segments holds before it hands one out (about 15 MB,
and up to two IDs a row)."""

ScanTask = tuple[int, str, str, int, int]
"""(file index, name as given, path, start offset, end offset or -1 for the end)."""


def plan_tasks(sources: Sequence[Source], jobs: int) -> list[ScanTask]:
    """Split large plain files into line-aligned ranges; one task per compressed file."""
    tasks: list[ScanTask] = []
    for index, src in enumerate(sources):
        try:
            size = os.path.getsize(src.path)
            with open(src.path, "rb") as f:
                head = f.read(6)
        except OSError:
            tasks.append((index, src.name, src.path, 0, -1))
            continue
        compressed = head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00"))
        if compressed or size <= CHUNK or jobs <= 1:
            tasks.append((index, src.name, src.path, 0, -1))
            continue
        parts = max(2, math.ceil(size / CHUNK))
        bounds = [0]
        with open(src.path, "rb") as f:
            for k in range(1, parts):
                f.seek(max(size * k // parts, bounds[-1]))
                f.readline()
                pos = f.tell()
                if pos < size and pos > bounds[-1]:
                    bounds.append(pos)
        bounds.append(size)
        for start, end in pairwise(bounds):
            tasks.append((index, src.name, src.path, start, end))
    return tasks


def _range_blocks(path: str, start: int, end: int, size: int = BLOCK) -> Iterator[bytes]:
    with open(path, "rb") as f:
        f.seek(start)
        remaining = end - start
        while remaining > 0:
            block = f.read(min(remaining, size))
            if not block:
                return
            remaining -= len(block)
            yield block


def native_enabled() -> bool:
    """Whether the C scanner is used: built, and ``LOGTRACE_PURE_PYTHON`` unset or empty."""
    return _NATIVE_LAYOUT and not os.environ.get("LOGTRACE_PURE_PYTHON")


def scan_task(
    task: ScanTask,
    spool_dir: str,
    segment: Callable[[FileScan], None] | None = None,
    segment_rows: int = SEGMENT_ROWS,
    block_size: int = BLOCK,
) -> FileScan:
    """Read one task's lines, ``block_size`` bytes at a time (at most
    :data:`PURE_BLOCK` in pure Python), and turn each non-blank one into a row.

    With ``segment``, every ``segment_rows`` rows or so go to it as a scan of
    their own, with only the IDs they use, and interning starts afresh: a
    long compressed file never holds all its rows or all its IDs. The
    segments' line numbers count from the task's start and their ``lines``
    is 0; the returned scan (the last rows) has the task's line count, so
    that the next task's lines are numbered after it as without segments.
    """
    index, name, path, start, end = task
    warnings: list[str] = []
    spool: IO[bytes] | None = None
    data_path = path
    state = _Interner(service_from_path(name))
    scanner = _native_scan.Scanner(state.services) if native_enabled() else None
    blocks: Iterator[bytes | memoryview]
    if scanner is None:
        block_size = min(block_size, PURE_BLOCK)
    if end >= 0:
        if scanner is None:
            blocks = whole_lines(_range_blocks(path, start, end, block_size))
            stream: IO[bytes] | None = None
        else:
            stream = open(path, "rb")  # noqa: SIM115 (closed below)
            stream.seek(start)
            blocks = _prefetched(_line_views(stream, end - start, None, name, block_size))
    else:
        stream, compressed = open_decompressed(path)
        if scanner is not None and not compressed:
            blocks = _prefetched(_line_views(stream, -1, warnings, name, block_size))
        else:
            blocks = read_blocks(stream, warnings, name, block_size)
        if compressed:
            fd, data_path = tempfile.mkstemp(prefix=f"{index}-", suffix=".spool", dir=spool_dir)
            spool = os.fdopen(fd, "wb")
            if scanner is not None:
                blocks = _prefetched(_spooled(blocks, spool))
                spool = None
    parts: list[npt.NDArray[np.void]] = []
    pending = 0  # rows not yet written to the sink
    pos = start
    lineno = 0
    unterminated = False
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for block in blocks:
            if segment is not None and pending >= segment_rows:
                # Before the next block: the task's last rows stay in memory
                # (the last one may be marked truncated below).
                if scanner is None:
                    segment(_state_scan(index, data_path, _joined(parts), state, None, 0))
                    parts.clear()
                else:
                    rows = np.frombuffer(scanner.rows(), dtype=SCAN_DTYPE)
                    segment(_state_scan(index, data_path, rows, state, scanner, 0))
                    del rows
                state.restart()
                if scanner is not None:
                    scanner = _native_scan.Scanner(state.services)
                pending = 0
            if spool is not None:
                spool.write(block)
            if scanner is None:
                assert isinstance(block, bytes)
                part = _scan_block(block, pos, lineno, state)
                newlines = block.count(b"\n")
                if len(part):
                    parts.append(part)
                    pending += len(part)
            else:
                newlines = _scan_block_native(block, pos, lineno, state, scanner)
                pending += newlines  # at most one row a line
            pos += len(block)
            lineno += newlines
            unterminated = block[-1:] != b"\n"
            if unterminated:
                lineno += 1
    finally:
        if gc_was_enabled:
            gc.enable()
        close = getattr(blocks, "close", None)
        if close is not None:
            close()  # stops a reading thread before its stream is closed
        if stream is not None:
            stream.close()
        if spool is not None:
            spool.close()
    if scanner is not None:
        rows = np.frombuffer(scanner.rows(), dtype=SCAN_DTYPE)
    else:
        rows = _joined(parts)
    if unterminated and len(rows):
        last = rows[-1:]
        if last["line"][0] == lineno and last["reason"][0] == UNPARSEABLE_JSON:
            # A last line without its newline that does not parse: a file still being written.
            last["reason"] = TRUNCATED
    result = _state_scan(index, data_path, rows, state, scanner, lineno)
    result.warnings = warnings
    return result


def _joined(parts: list[npt.NDArray[np.void]]) -> npt.NDArray[np.void]:
    return np.concatenate(parts) if parts else np.empty(0, dtype=SCAN_DTYPE)


def _state_scan(
    index: int,
    data_path: str,
    rows: npt.NDArray[np.void],
    state: _Interner,
    scanner: _native_scan.Scanner | None,
    lines: int,
) -> FileScan:
    return FileScan(
        file=index,
        data_path=data_path,
        rows=rows,
        traces=list(state.trace_ids) if scanner is None else scanner.traces(),
        spans=list(state.span_ids) if scanner is None else scanner.spans(),
        services=[s for s in state.services if s is not None],  # type: ignore[misc]
        lines=lines,
    )


class _Interner:
    """IDs and service names of one task, interned to local indexes.

    Each distinct spelling of an ID is made canonical once; ``None`` (no ID)
    maps to -1 like a spelling that is not an ID.
    """

    __slots__ = ("services", "span_ids", "spans", "trace_ids", "traces")

    def __init__(self, file_service: str) -> None:
        self.traces: dict[object, int] = {None: -1}
        self.trace_ids: dict[str, int] = {}
        self.spans: dict[object, int] = {None: -1}
        self.span_ids: dict[str, int] = {}
        self.services: dict[object, int] = {file_service: 0, None: 0}

    def restart(self) -> None:
        """Forget the IDs (a new segment numbers its own); services stay."""
        self.traces = {None: -1}
        self.trace_ids = {}
        self.spans = {None: -1}
        self.span_ids = {}

    def add_traces(self, spellings: Iterable[object]) -> None:
        _add_ids(self.traces, self.trace_ids, spellings, 32, norm_trace_id)

    def add_spans(self, spellings: Iterable[object]) -> None:
        _add_ids(self.spans, self.span_ids, spellings, 16, norm_span_id)

    def add_services(self, names: Iterable[object]) -> None:
        services = self.services
        for value in names:
            if value not in services:
                services[value] = min(len(services) - 1, 65535)


def _add_ids(
    known: dict[object, int],
    ids: dict[str, int],
    spellings: Iterable[object],
    width: int,
    norm: Callable[[object], str | None],
) -> None:
    """Intern new spellings in order; full-width lowercase hex is already canonical."""
    new = [v for v in spellings if v not in known]
    if not new:
        return
    canonical = _canonical_hex(new, width)
    for value, same in zip(new, canonical, strict=True):
        canon = value if same else norm(value)
        known[value] = -1 if canon is None else ids.setdefault(canon, len(ids))  # type: ignore[arg-type]


def _canonical_hex(values: list[object], width: int) -> list[bool]:
    """Per value: a ``str`` of ``width`` lowercase hex digits, not all zero."""
    c = _fixed_width(values, width)
    if c is None:
        return [type(v) is str and len(v) == width and _canonical_hex1(v, width) for v in values]
    digit = ((c >= 48) & (c <= 57)) | ((c >= 97) & (c <= 102))
    ok = digit.all(axis=1) & (c != 48).any(axis=1)
    result: list[bool] = ok.tolist()
    return result


def _canonical_hex1(value: str, width: int) -> bool:
    c = _fixed_width([value], width)
    return c is not None and bool(_canonical_hex([value], width)[0])


def _fixed_width(values: Sequence[object], width: int) -> npt.NDArray[np.uint8] | None:
    """ASCII strings all ``width`` long as an ``(n, width)`` byte array, else ``None``.

    One join and one encode instead of a conversion per value: the NUL
    separators land in the last column only if every piece has the width.
    """
    try:
        joined = "\0".join(values).encode("ascii")  # type: ignore[arg-type]
    except (TypeError, UnicodeEncodeError):
        return None
    n = len(values)
    if len(joined) != (width + 1) * n - 1 or joined.count(0) != n - 1:
        return None
    c = np.frombuffer(joined + b"\0", dtype=np.uint8).reshape(n, width + 1)
    if c[:, width].any():
        return None
    return c[:, :width]


class _Line(msgspec.Struct, gc=False):
    """The keys of logtrace's own records, typed: a block of such lines is
    decoded in one call; any other shape sends its chunk down the general path."""

    timestamp: str | None = None
    level: str | None = None
    service: str | None = None
    trace_id: str | None = None
    span_id: str | None = None
    parent_span_id: str | None = None
    span_kind: object = msgspec.field(default=None, name="span.kind")
    span_start: object = msgspec.field(default=None, name="span.start")
    duration_ms: object = None
    error_type: object = msgspec.field(default=None, name="error.type")
    exception_type: object = msgspec.field(default=None, name="exception.type")
    exc_info: object = None
    status: object = msgspec.field(default=None, name="http.response.status_code")


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


def _scan_block(block: bytes, pos: int, lineno: int, state: _Interner) -> npt.NDArray[np.void]:
    """Rows for the non-blank lines of one block of whole lines.

    Lines that look like one ASCII JSON object are decoded a chunk at a time
    and their fields worked out column by column; every other line (and every
    line of a chunk the batch decoder rejects) takes :func:`_parse_raw`. IDs
    are interned last, in line order, so indexes do not depend on the path.
    """
    data = np.frombuffer(block, dtype=np.uint8)
    ends = np.flatnonzero(data == _NL)
    if not block.endswith(b"\n"):
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
    text = block
    if others:
        buf = bytearray(block)
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
    if others:
        others.sort()
        _slow_rows(others, block, starts, lengths, cols, keep)
    return _intern(cols, keep, starts + pos, lengths, lineno, state)


_ROW_OFFSETS = [0, 8, 12, 16, 24, 28, 32, 36, 38, 39, 40]
_NATIVE_LAYOUT = (
    _native_scan is not None
    and SCAN_DTYPE.itemsize == _native_scan.ROW_SIZE
    and [SCAN_DTYPE.fields[name][1] for name in SCAN_DTYPE.names or ()]  # type: ignore[index]
    == _ROW_OFFSETS
)
"""The C scanner writes rows with this layout; any other disables it."""

_NAN = math.nan


def _line_views(
    stream: IO[bytes], limit: int, warnings: list[str] | None, name: str, block: int = BLOCK
) -> Iterator[memoryview]:
    """Blocks of whole lines (the last may lack its newline), read straight
    into reused buffers: no copy per block, unlike :func:`read_blocks`.

    Buffers rotate so that a view stays valid while the next two are read
    (see :func:`_prefetched`). ``limit`` bytes at most (-1: to the end). With
    ``warnings``, a read error ends the stream with a warning, as
    :func:`read_blocks` does; without, it is raised.
    """
    bufs = [bytearray(block) for _ in range(3)]
    turn = 0
    buf = bufs[0]
    fill = 0
    while True:
        want = len(buf) - fill if limit < 0 else min(len(buf) - fill, limit)
        got = 0
        if want > 0:
            try:
                got = stream.readinto(memoryview(buf)[fill : fill + want])  # type: ignore[attr-defined]
            except (OSError, ValueError, EOFError) as exc:
                if warnings is None:
                    raise
                warnings.append(f"{name}: stopped reading: {exc}")
        if not got:
            if fill:
                yield memoryview(buf)[:fill]
            return
        fill += got
        if limit >= 0:
            limit -= got
        cut = buf.rfind(b"\n", 0, fill) + 1
        if cut == 0:
            if fill == len(buf):  # a line longer than the buffer
                grown = bytearray(2 * len(buf))
                grown[:fill] = buf
                buf = bufs[turn] = grown
            continue
        yield memoryview(buf)[:cut]
        turn = (turn + 1) % len(bufs)
        tail = fill - cut
        if len(bufs[turn]) < tail + 1:
            bufs[turn] = bytearray(max(block, 2 * tail))
        bufs[turn][:tail] = memoryview(buf)[cut:fill]
        buf = bufs[turn]
        fill = tail


_Item = TypeVar("_Item")


def _spooled(
    blocks: Iterator[bytes | memoryview], spool: IO[bytes]
) -> Iterator[bytes | memoryview]:
    """Blocks, each also written to the spool (closed at the end)."""
    with spool:
        for block in blocks:
            spool.write(block)
            yield block


def _prefetched(blocks: Iterator[_Item]) -> Iterator[_Item]:
    """The same blocks, read one ahead by a thread: reading and decompressing
    (which release the GIL) overlap with the C scanner (which does too)."""
    box: queue.Queue[tuple[bool, _Item | None, BaseException | None]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(item: tuple[bool, _Item | None, BaseException | None]) -> bool:
        while not stop.is_set():
            try:
                box.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for block in blocks:
                if not put((False, block, None)):
                    return
        except BaseException as exc:  # handed to the scanning thread
            put((True, None, exc))
            return
        put((True, None, None))

    thread = threading.Thread(target=run, name="logtrace-read", daemon=True)
    thread.start()
    try:
        while True:
            done, block, exc = box.get()
            if done:
                if exc is not None:
                    raise exc
                return
            yield block  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()


def _scan_block_native(
    block: bytes | memoryview,
    pos: int,
    lineno: int,
    state: _Interner,
    scanner: _native_scan.Scanner,
) -> int:
    """:func:`_scan_block` with the C scanner: the rows stay in ``scanner``
    (see ``Scanner.rows``); returns the block's newline count.

    The scanner writes the rows of the lines it reads and asks
    :func:`_parse_raw` (through ``fallback``) for the others, in line order,
    so IDs are interned in the same order as on the Python path. It owns the
    ID tables; ``state`` only caches spellings seen by the fallback.
    """

    def fallback(start: int, length: int) -> _RowValues | None:
        raw = bytes(block[start : start + length])
        if raw.isspace():
            return None
        return _intern_line(_parse_raw(raw), state, scanner)

    return scanner.scan(block, pos, lineno, fallback)[1]


_RowValues = tuple[float, int, int, int, int, int, int, float]
"""ts, trace, span, parent, service, flags, reason, start: one row's values."""


def _intern_line(parsed: Parsed, state: _Interner, scanner: _native_scan.Scanner) -> _RowValues:
    """One line's row values, interning as :func:`_intern` does for a block."""
    trace, span, parent, ts, service, flags, reason, start = parsed
    tix = state.traces.get(trace)
    if tix is None:
        tix = _intern_one(state.traces, trace, norm_trace_id, scanner.intern_trace)
    if tix >= 0:
        spans = state.spans
        six = spans.get(span)
        if six is None:
            six = _intern_one(spans, span, norm_span_id, scanner.intern_span)
        pix = spans.get(parent)
        if pix is None:
            pix = _intern_one(spans, parent, norm_span_id, scanner.intern_span)
    else:
        six = pix = -1
        if reason == 0:
            reason = NO_TRACE_ID
    services = state.services
    svc = services.get(service)
    if svc is None:
        svc = services[service] = min(len(services) - 1, 65535)
    return (
        _NAN if ts is None else ts,
        tix,
        six,
        pix,
        svc,
        flags,
        reason,
        _NAN if start is None else start,
    )


def _intern_one(
    known: dict[object, int],
    value: object,
    norm: Callable[[object], str | None],
    intern: Callable[[str], int],
) -> int:
    canon = norm(value)
    index = -1 if canon is None else intern(canon)
    known[value] = index
    return index


def _intern(
    cols: _Block,
    keep: npt.NDArray[np.bool_],
    offsets: npt.NDArray[np.int64],
    lengths: npt.NDArray[np.int64],
    lineno: int,
    state: _Interner,
) -> npt.NDArray[np.void]:
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
    rows["line"] = at + (lineno + 1)
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


def _slow_rows(
    which: list[int],
    block: bytes,
    starts: npt.NDArray[np.int64],
    lengths: npt.NDArray[np.int64],
    cols: _Block,
    keep: npt.NDArray[np.bool_],
) -> None:
    """One line at a time: everything but the common case."""
    for i in which:
        s = int(starts[i])
        raw = block[s : s + int(lengths[i])]
        if raw.isspace():
            keep[i] = False
            continue
        keep[i] = True
        trace, span, parent, ts, service, flags, reason, sstart = _parse_raw(raw)
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


def _parse_raw(raw: bytes) -> Parsed:
    parsed = None
    if raw[:1] == b"{" and raw.isascii():
        parsed = scan_json(raw)
    if parsed is None:
        parsed = parse_line(raw)
    return parsed


def _iso_column(values: list[str]) -> npt.NDArray[np.float64]:
    """:func:`iso_fast` over a column: epoch seconds, NaN where it would give ``None``."""
    n = len(values)
    out = np.full(n, np.nan)
    if not n:
        return out
    c = _fixed_width(values, 27)
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


def _timestamps(values: list[str | None]) -> npt.NDArray[np.float64]:
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
    bad = {s for s in dict.fromkeys(service) if s is not None and not 0 < len(s) <= 200}
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
        if v is not None and v not in _NOT_ERROR and v.lower() in _ERROR_LEVELS
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
    stamps = _timestamps(stamp_text)
    kinds = [r.span_kind for r in lines]
    if kinds.count(None) != n:
        durations = [r.duration_ms for r in lines]
        which = [
            i
            for i, (k, d) in enumerate(zip(kinds, durations, strict=True))
            if k is not None and (type(d) is float or type(d) is int) and fast[i]
        ]
        if which:
            picked = [lines[i] for i in which]
            got = _timestamps(
                [v if type(v) is str else _NO_STAMP for v in (r.span_start for r in picked)]
            )
            took = np.array([durations[i] for i in which], dtype=np.float64)
            cols.start[at[which]] = np.where(np.isnan(got), stamps[which] - took / 1e3, got)
            flags[which] |= np.array(
                [
                    _KIND_FLAGS.get(k, SPAN_RECORD) if type(k) is str else SPAN_RECORD
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


_KIND_FLAGS: dict[object, int] = {
    "client": SPAN_RECORD | KIND_CLIENT,
    "server": SPAN_RECORD | KIND_SERVER,
    "producer": SPAN_RECORD | KIND_PRODUCER,
}


_SPOOL_DIR = ""


def _worker(task: ScanTask) -> FileScan:
    return scan_task(task, _SPOOL_DIR)


_SEGMENT_ROWS = SEGMENT_ROWS


def _spilling_worker(task: ScanTask) -> list[tuple[FileScan, str | None]]:
    """:func:`scan_task` in segments, each with its rows, trace IDs and span
    IDs written to spool files (their path returned, ``None`` for no rows):
    a worker hands back only what does not grow with the input, and the
    parent reads the rest when it needs it."""
    spilled: list[tuple[FileScan, str | None]] = []

    def spill(part: FileScan) -> None:
        spilled.append(_spill(task[0], part))

    spill(scan_task(task, _SPOOL_DIR, spill, _SEGMENT_ROWS, segment_block(_SEGMENT_ROWS)))
    return spilled


def segment_block(segment_rows: int) -> int:
    """Bytes read at a time by a scan handing out segments of ``segment_rows``:
    a segment is handed out between blocks, so a block is a small part of it."""
    return max(1 << 20, min(BLOCK, segment_rows * 32))


def _spill(file_index: int, part: FileScan) -> tuple[FileScan, str | None]:
    if not len(part.rows):
        return part, None
    fd, path = tempfile.mkstemp(prefix=f"rows{file_index}-", suffix=".rows", dir=_SPOOL_DIR)
    with os.fdopen(fd, "wb") as f:
        f.write(part.rows.tobytes())
    with open(path + ".ids", "wb") as f:
        pickle.dump((part.traces, part.spans), f, protocol=pickle.HIGHEST_PROTOCOL)
    part.spooled_ids = len(part.traces) + len(part.spans)
    part.rows = np.empty(0, dtype=SCAN_DTYPE)
    part.traces = []
    part.spans = []
    return part, path


def load_spilled(path: str) -> tuple[npt.NDArray[np.void], list[str], list[str]]:
    """A spilled scan's rows (mapped read-only: no memory until read), trace IDs and span IDs."""
    rows: npt.NDArray[np.void] = np.memmap(path, dtype=SCAN_DTYPE, mode="r")
    with open(path + ".ids", "rb") as f:
        traces, spans = pickle.load(f)
    return rows, traces, spans


def drop_spilled(path: str) -> None:
    """Remove a spilled scan's files."""
    os.unlink(path)
    os.unlink(path + ".ids")


def scan(
    tasks: Sequence[ScanTask],
    spool_dir: str,
    jobs: int,
    progress: Callable[[FileScan], None] | None = None,
) -> list[FileScan]:
    """Scan all tasks (forked workers when ``jobs > 1``), results in task order."""
    return [s for s, _ in _scan_all(tasks, spool_dir, jobs, progress, _worker_plain)]


def scan_spilled(
    tasks: Sequence[ScanTask],
    spool_dir: str,
    jobs: int,
    progress: Callable[[FileScan], None] | None = None,
    segment_rows: int | None = None,
) -> list[tuple[FileScan, str | None]]:
    """:func:`scan` in segments of about ``segment_rows`` rows (default
    :data:`SEGMENT_ROWS`), each
    segment's rows and IDs left in spool files (read back with
    :func:`load_spilled`): neither the parent nor a worker ever holds them all."""
    global _SEGMENT_ROWS
    _SEGMENT_ROWS = segment_rows or SEGMENT_ROWS
    # Also one job scans in a worker: the memory a scan frees is not all given
    # back to the system, and the parent has a whole run still to stitch.
    return _scan_all(tasks, spool_dir, jobs, progress, _spilling_worker, isolate=True)


def _worker_plain(task: ScanTask) -> list[tuple[FileScan, str | None]]:
    return [(_worker(task), None)]


def _scan_all(
    tasks: Sequence[ScanTask],
    spool_dir: str,
    jobs: int,
    progress: Callable[[FileScan], None] | None,
    work: Callable[[ScanTask], list[tuple[FileScan, str | None]]],
    isolate: bool = False,
) -> list[tuple[FileScan, str | None]]:
    global _SPOOL_DIR
    _SPOOL_DIR = spool_dir
    results: list[tuple[FileScan, str | None]] = []
    in_process = jobs <= 1 or len(tasks) <= 1
    if (in_process and not isolate) or "fork" not in _start_methods():
        for task in tasks:
            results.extend(work(task))
            if progress is not None:
                progress(results[-1][0])
        return results
    # Biggest tasks first so that the last one to finish is a small one.
    order = sorted(range(len(tasks)), key=lambda i: -_task_size(tasks[i]))
    by_index: dict[int, list[tuple[FileScan, str | None]]] = {}
    with get_context("fork").Pool(max(1, min(jobs, len(tasks)))) as pool:
        for i, result in zip(order, pool.imap(work, [tasks[i] for i in order]), strict=False):
            by_index[i] = result
            if progress is not None:
                progress(result[-1][0])
    return [segment for i in range(len(tasks)) for segment in by_index[i]]


def input_size(tasks: Sequence[ScanTask]) -> int:
    """About how many bytes of lines the tasks hold (compressed files counted 8x)."""
    return sum(_task_size(t) for t in tasks)


def _task_size(task: ScanTask) -> int:
    _, _, path, start, end = task
    if end >= 0:
        return end - start
    try:
        return os.path.getsize(path) * 8  # compressed: about 8x once decompressed
    except OSError:
        return 0


def _start_methods() -> list[str]:
    from multiprocessing import get_all_start_methods

    return get_all_start_methods()
