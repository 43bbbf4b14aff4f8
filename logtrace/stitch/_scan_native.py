"""The scan with the C extension: blocks handed to ``_native_scan.Scanner``.

The scanner reads JSON records itself, whatever their keys' names and order
among the conventions the parser knows (logtrace's own, structlog,
python-json-logger, ECS, OpenTelemetry, Datadog, zap, logrus, pino), and whole
CRI and Docker json-file lines that wrap one; it asks :func:`scan_line`
(through a callback) for every other line, in line order, so it gives exactly
the pure-Python rows (:mod:`._scan_python`).
Reading and decompressing run one block ahead in a thread: both release the
GIL, and so does the scanner.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

from ._continued import Continuations
from ._id_forms import norm_span_id, norm_trace_id
from ._intern import Interner
from ._model import NO_TRACE_ID
from ._native import native_scan
from ._parse import PARTIALS, Parsed
from ._scan_python import scan_line

__all__ = ["prefetched", "scan_block_native"]

_NAN = math.nan

_Item = TypeVar("_Item")


def prefetched(blocks: Iterator[_Item]) -> Iterator[_Item]:
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


def scan_block_native(
    block: bytes | memoryview,
    pos: int,
    lineno: int,
    state: Interner,
    scanner: native_scan.Scanner,
) -> int:
    """:func:`._scan_python.scan_block` with the C scanner: the rows stay in
    ``scanner`` (see ``Scanner.rows``); returns the block's newline count.

    The scanner writes the rows of the lines it reads and asks
    :func:`scan_line` (through ``fallback``) for the others, in line order,
    so IDs are interned in the same order as on the Python path. It owns the
    ID tables; ``state`` only caches spellings seen by the fallback. It reads
    whole CRI and Docker json-file lines itself while no piece of a cut line
    waits in :data:`._parse.PARTIALS` (pieces join on the Python side).
    A line that continues the text record before it (:mod:`._continued`)
    makes the scanner grow that record's row instead of adding one.
    """

    records = Continuations()

    def fallback(start: int, length: int) -> _RowValues | list[_RecordValues] | bool | None:
        raw = bytes(block[start : start + length])
        if raw.isspace():
            return None
        parsed = scan_line(raw)
        if isinstance(parsed, list):  # a line of many records: a row each
            records.joins(block, start, raw, parsed[0][2])  # closes the open record
            return [(s, n, *_intern_line(p, state, scanner)) for s, n, p in parsed]
        if records.joins(block, start, raw, parsed) >= 0:
            return True  # continues the record of the last row
        return _intern_line(parsed, state, scanner)

    return scanner.scan(block, pos, lineno, fallback, PARTIALS)[1]


_RowValues = tuple[float, int, int, int, int, int, int, float]
"""ts, trace, span, parent, service, flags, reason, start: one row's values."""
_RecordValues = tuple[int, int, float, int, int, int, int, int, int, float]
"""A record's start and length within its line, then its row's values."""


def _intern_line(parsed: Parsed, state: Interner, scanner: native_scan.Scanner) -> _RowValues:
    """One line's row values, its IDs interned as the Python scan interns a block's."""
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
