"""Pass one: read and parse each file into compact rows, in parallel.

Large uncompressed files are cut into byte ranges at line boundaries so that
every core has work; a compressed file is one task (it is decompressed once,
into a spool the output pass reads back). Workers are forked, intern IDs
locally and send back packed rows, never parsed records.
"""

from __future__ import annotations

import gc
import math
import os
import struct
import tempfile
from collections.abc import Callable, Iterator, Sequence
from itertools import pairwise
from multiprocessing import get_context
from typing import IO

from ._ids import norm_span_id, norm_trace_id
from ._model import ROW_FORMAT, FileScan
from ._parse import NO_TRACE_ID, TRUNCATED, UNPARSEABLE_JSON, parse_line, scan_json
from ._read import Source, open_decompressed, read_blocks, service_from_path

__all__ = ["ScanTask", "plan_tasks", "scan", "scan_task"]

CHUNK = 48 << 20
"""Uncompressed files larger than this are scanned as several ranges."""

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


def _range_blocks(path: str, start: int, end: int) -> Iterator[bytes]:
    with open(path, "rb") as f:
        f.seek(start)
        remaining = end - start
        while remaining > 0:
            block = f.read(min(remaining, 16 << 20))
            if not block:
                return
            remaining -= len(block)
            yield block


def scan_task(task: ScanTask, spool_dir: str) -> FileScan:
    """Read one task's lines and turn each non-blank one into a packed row."""
    index, name, path, start, end = task
    warnings: list[str] = []
    spool: IO[bytes] | None = None
    data_path = path
    if end >= 0:
        blocks: Iterator[bytes] = _merge_lines(_range_blocks(path, start, end))
        stream: IO[bytes] | None = None
    else:
        stream, compressed = open_decompressed(path)
        blocks = read_blocks(stream, warnings, name)
        if compressed:
            fd, data_path = tempfile.mkstemp(prefix=f"{index}-", suffix=".spool", dir=spool_dir)
            spool = os.fdopen(fd, "wb")
    pack = struct.Struct(ROW_FORMAT).pack
    rows = bytearray()
    traces: dict[object, int] = {}
    """ID as written -> local index of its canonical form (-1: not an ID)."""
    trace_ids: dict[str, int] = {}
    spans: dict[object, int] = {}
    span_ids: dict[str, int] = {}
    services: dict[str, int] = {service_from_path(name): 0}
    starts: dict[int, float] = {}
    nan = math.nan
    pos = start
    lineno = 0
    count = 0
    unterminated = False
    appended = 0
    tix: int | None
    six: int | None
    pix: int | None
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for block in blocks:
            if spool is not None:
                spool.write(block)
            lines = block.split(b"\n")
            tail = lines.pop()
            if tail:
                lines.append(tail)
            for raw in lines:
                n = len(raw)
                lineno += 1
                off = pos
                pos += n + 1
                if raw[-1:] == b"\r":
                    raw = raw[:-1]
                    n -= 1
                if not raw or raw.isspace():
                    continue
                parsed = None
                if raw[:1] == b"{" and raw.isascii():
                    parsed = scan_json(raw)
                if parsed is None:
                    parsed = parse_line(raw)
                trace, span, parent, ts, service, flags, reason, sstart = parsed
                # IDs as written: each distinct spelling is made canonical once.
                tix = -1 if trace is None else traces.get(trace)
                if tix is None:
                    canon = norm_trace_id(trace)
                    tix = traces[trace] = (
                        -1 if canon is None else trace_ids.setdefault(canon, len(trace_ids))
                    )
                if tix < 0:
                    six = pix = -1
                    if not reason:
                        reason = NO_TRACE_ID
                else:
                    six = -1 if span is None else spans.get(span)
                    if six is None:
                        canon = norm_span_id(span)
                        six = spans[span] = (
                            -1 if canon is None else span_ids.setdefault(canon, len(span_ids))
                        )
                    pix = -1 if parent is None else spans.get(parent)
                    if pix is None:
                        canon = norm_span_id(parent)
                        pix = spans[parent] = (
                            -1 if canon is None else span_ids.setdefault(canon, len(span_ids))
                        )
                if service is None:
                    sx = 0
                else:
                    sx_ = services.get(service)
                    if sx_ is None:
                        sx_ = services[service] = min(len(services), 65535)
                    sx = sx_
                if sstart is not None:
                    starts[count] = sstart
                rows += pack(
                    off, n, lineno, nan if ts is None else ts, tix, six, pix, sx, flags, reason
                )
                count += 1
                appended = lineno
            unterminated = bool(tail)
        if unterminated and appended == lineno and rows[-1] == UNPARSEABLE_JSON:
            # A last line without its newline that does not parse: a file still being written.
            rows[-1] = TRUNCATED
    finally:
        if gc_was_enabled:
            gc.enable()
        if stream is not None:
            stream.close()
        if spool is not None:
            spool.close()
    return FileScan(
        file=index,
        data_path=data_path,
        rows=bytes(rows),
        traces=list(trace_ids),
        spans=list(span_ids),
        services=list(services),
        span_starts=starts,
        lines=lineno,
        warnings=warnings,
    )


def _merge_lines(blocks: Iterator[bytes]) -> Iterator[bytes]:
    """Re-cut fixed-size reads so that every block ends on a line boundary."""
    carry = b""
    for block in blocks:
        if carry:
            block = carry + block
        cut = block.rfind(b"\n") + 1
        if cut == 0:
            carry = block
            continue
        carry = block[cut:]
        yield block[:cut] if carry else block
    if carry:
        yield carry


_SPOOL_DIR = ""


def _worker(task: ScanTask) -> FileScan:
    return scan_task(task, _SPOOL_DIR)


def scan(
    tasks: Sequence[ScanTask],
    spool_dir: str,
    jobs: int,
    progress: Callable[[FileScan], None] | None = None,
) -> list[FileScan]:
    """Scan all tasks (forked workers when ``jobs > 1``), results in task order."""
    global _SPOOL_DIR
    _SPOOL_DIR = spool_dir
    results: list[FileScan] = []
    if jobs <= 1 or len(tasks) <= 1 or "fork" not in _start_methods():
        for task in tasks:
            results.append(scan_task(task, spool_dir))
            if progress is not None:
                progress(results[-1])
        return results
    # Biggest tasks first so that the last one to finish is a small one.
    order = sorted(range(len(tasks)), key=lambda i: -_task_size(tasks[i]))
    by_index: dict[int, FileScan] = {}
    with get_context("fork").Pool(min(jobs, len(tasks))) as pool:
        for i, result in zip(order, pool.imap(_worker, [tasks[i] for i in order]), strict=False):
            by_index[i] = result
            if progress is not None:
                progress(result)
    return [by_index[i] for i in range(len(tasks))]


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
