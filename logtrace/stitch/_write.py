"""Write: one dispatcher for every format, and the merge of partitions.

A run of one partition is written straight to the output. A run of many
writes each partition's traces (JSON lines or text: each trace's block
stands alone) to a spool file in the one-partition order restricted to its
own traces (start time, then first appearance), with an index of where each
went (:func:`write_part`); a bounded merge of those indexes copies the
traces out in the run's order (:func:`merge`). The lines without a trace
follow, in file and line order.
"""

from __future__ import annotations

import os
from typing import IO

import numpy as np
import numpy.typing as npt

from ._export import EXPORT_FORMATS, FRAMES, write_export
from ._model import Options, Order, Rendering, Table
from ._render_jsonl import write_jsonl
from ._render_text import write_text

__all__ = ["INDEX", "MERGED_FORMATS", "frame", "merge", "merge_chunk", "write", "write_part"]

I64 = npt.NDArray[np.int64]

MERGED_FORMATS = ("jsonl", "text", "none", *EXPORT_FORMATS)
"""Output formats written a partition at a time and merged. HTML and Chrome
output are one page each: a run of many partitions gathers the traces it
shows into one (see :func:`._select.gather_chosen`). ``none`` writes nothing
(a run for its summary alone)."""


def frame(fmt: str) -> tuple[bytes, bytes, bytes]:
    """What a merged output of ``fmt`` has before its traces, between two, and after them."""
    return FRAMES.get(fmt, (b"", b"", b""))


INDEX = np.dtype([("start", "<f8"), ("key", "<i8"), ("at", "<i8"), ("size", "<i8")])
"""Per written trace: start (NaN as +inf), first-appearance key, and its
byte range in its partition's output; a partition's entries in output order."""


def write(
    r: Rendering,
    out: IO[bytes],
    options: Options,
    spool: str,
    untraced_heading: bool = True,
    framed: bool = True,
) -> None:
    """Write the ordered rows of ``r`` in ``options.format``. Text output
    puts the lines without a trace under a heading unless
    ``untraced_heading`` is false (a run written in parts has it once);
    an export leaves out its frame (:func:`frame`) unless ``framed``.
    ``none`` writes nothing (a run for its summary alone)."""
    if options.format == "none":
        return
    if options.format == "jsonl":
        write_jsonl(r, out, options.jobs, spool)
    elif options.format in EXPORT_FORMATS:
        write_export(r, out, options.format, framed, r.tree.inferred)
    elif options.format in ("html", "chrome", "perfetto"):
        from ._render_chrome import write_chrome
        from ._render_html import write_html

        (write_html if options.format == "html" else write_chrome)(r, out)
    else:
        write_text(r, out, color=options.color, untraced_heading=untraced_heading)
    out.flush()


def write_part(r: Rendering, first: I64, path: str, options: Options, spool: str) -> None:
    """Write a partition's traces to ``path`` and, to ``path.index``, where
    each went (:data:`INDEX`); ``first`` is per trace where it first appears."""
    if options.format in EXPORT_FORMATS:
        with open(path, "wb") as f:
            sizes = write_export(r, f, options.format, False, r.tree.inferred)
        index = _sized_index(sizes, r.order, first)
    else:
        with open(path, "wb") as f:
            write(r, f, options, spool)
        index = _trace_index(path, r.table, r.order, first, options.format)
    index.tofile(path + ".index")


def _sized_index(sizes: list[tuple[int, int]], ordered: Order, first: I64) -> npt.NDArray[np.void]:
    """:data:`INDEX` entries of traces written one after the other: ``sizes``
    holds each one's trace index and byte size, in output order."""
    index = np.empty(len(sizes), dtype=INDEX)
    if not sizes:
        return index
    local = np.array([t for t, _ in sizes], dtype=np.int64)
    size = np.array([n for _, n in sizes], dtype=np.int64)
    start = ordered.trace_start[local]
    index["start"] = np.where(np.isnan(start), np.inf, start)
    index["key"] = first[local]
    index["at"] = np.concatenate([[0], np.cumsum(size)[:-1]])
    index["size"] = size
    return index


def _trace_index(
    path: str, table: Table, ordered: Order, first: I64, fmt: str
) -> npt.NDArray[np.void]:
    """Where each trace with lines went in ``path``, in the order written."""
    trace_seq = table.rows["trace"][ordered.rows]
    if not len(trace_seq) or fmt == "none":
        return np.empty(0, dtype=INDEX)
    cut = np.flatnonzero(trace_seq[1:] != trace_seq[:-1]) + 1
    first_row = np.concatenate([[0], cut]).astype(np.int64)
    local = trace_seq[first_row].astype(np.int64)
    if fmt == "text":
        # A text block starts with a blank line, the only blank lines there are
        # (a row may take more than one line: an exception goes under it).
        offsets = np.append(_blank_lines(path), os.path.getsize(path))
    else:
        # One output line per row.
        offsets = _line_starts(path, np.append(first_row, len(trace_seq)))
    index = np.empty(len(local), dtype=INDEX)
    start = ordered.trace_start[local]
    index["start"] = np.where(np.isnan(start), np.inf, start)
    index["key"] = first[local]
    index["at"] = offsets[:-1]
    index["size"] = np.diff(offsets)
    return index


def _blank_lines(path: str) -> I64:
    """Byte offset of every empty line of the file at ``path``."""
    found = []
    pos = 0
    previous = 10  # the file's start counts as a line start
    with open(path, "rb") as f:
        while block := f.read(16 << 20):
            data = np.frombuffer(block, dtype=np.uint8)
            ends = np.flatnonzero(data == 10)
            before = np.where(ends > 0, data[np.maximum(ends - 1, 0)], previous)
            found.append(pos + ends[before == 10])
            previous = int(data[-1])
            pos += len(block)
    return np.concatenate(found) if found else np.empty(0, dtype=np.int64)


def _line_starts(path: str, lines: I64) -> I64:
    """Byte offset where each of ``lines`` (sorted 0-based line numbers,
    the last one may be the line count) starts in the file."""
    out = np.zeros(len(lines), dtype=np.int64)
    seen = 0  # lines ended before the current block
    pos = 0
    k = 0
    while k < len(lines) and lines[k] == 0:
        k += 1
    with open(path, "rb") as f:
        while k < len(lines):
            block = f.read(16 << 20)
            if not block:
                break
            ends = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10)
            # Line m starts right after the end of line m - 1.
            hi = int(np.searchsorted(lines, seen + len(ends), "right"))
            want = lines[k:hi] - 1 - seen
            out[k:hi] = pos + ends[want] + 1
            k = hi
            seen += len(ends)
            pos += len(block)
    return out


def merge_chunk(memory: int, count: int) -> tuple[int, int]:
    """Index entries and output bytes read per partition at a time: an eighth
    of the budget for all partitions (a bigger trace is read whole)."""
    share = memory // 8 // max(count, 1)
    entries = int(min(1 << 16, max(256, share // INDEX.itemsize)))
    return entries, max(64 << 10, share)


def merge(outputs: list[str], out: IO[bytes], chunk: tuple[int, int], sep: bytes = b"") -> None:
    """The partitions' traces (``outputs``, each with its ``.index``) in the
    one-partition order: by start, traces without a time last, ties by first
    appearance; ``sep`` between two traces (an export's separator).

    Each partition's index is in that order already, and so is its output. A
    chunk of each is read at a time and everything up to the smallest last
    entry among the chunks that do not end their partition is taken: a run
    of consecutive traces per partition, read with one call, then
    interleaved. Memory holds a chunk per partition however many traces
    there are."""
    entries_cap, bytes_cap = chunk
    indexes = [path + ".index" for path in outputs]
    # Indexes are read a chunk at a time, not mapped: a mapping holds a file
    # descriptor, and the partitions' outputs already hold one each.
    counts = [os.path.getsize(p) // INDEX.itemsize for p in indexes]
    pos = [0] * len(counts)
    fds = [os.open(p, os.O_RDONLY) for p in outputs]
    written = False
    try:
        while True:
            heads = {}
            for k, path in enumerate(indexes):
                if pos[k] < counts[k]:
                    at = pos[k] * INDEX.itemsize
                    head = np.fromfile(path, dtype=INDEX, count=entries_cap, offset=at)
                    fits = np.searchsorted(np.cumsum(head["size"]), bytes_cap, "right")
                    heads[k] = head[: max(1, int(fits))]
            if not heads:
                break
            bound: tuple[float, int] | None = None
            for k, head in heads.items():
                if pos[k] + len(head) < counts[k]:
                    last = (float(head["start"][-1]), int(head["key"][-1]))
                    bound = last if bound is None or last < bound else bound
            part_of, entry_parts, blocks = [], [], {}
            for k, head in heads.items():
                if bound is not None:
                    start, key = head["start"], head["key"]
                    upto = (start < bound[0]) | ((start == bound[0]) & (key <= bound[1]))
                    head = head[: int(np.count_nonzero(upto))]
                if not len(head):
                    continue
                pos[k] += len(head)
                first, end = int(head["at"][0]), int(head["at"][-1] + head["size"][-1])
                blocks[k] = memoryview(_pread(fds[k], first, end - first))
                head = head.copy()
                head["at"] -= first
                part_of.append(np.full(len(head), k, dtype=np.int32))
                entry_parts.append(head)
            part = np.concatenate(part_of)
            taken = np.concatenate(entry_parts)
            ranked = np.lexsort((taken["key"], taken["start"]))
            if sep and written:
                out.write(sep)
            written = True
            out.write(
                sep.join(
                    blocks[k][at : at + size]
                    for k, at, size in zip(
                        part[ranked].tolist(),
                        taken["at"][ranked].tolist(),
                        taken["size"][ranked].tolist(),
                        strict=True,
                    )
                )
            )
            del blocks
    finally:
        for fd in fds:
            os.close(fd)
    for path in outputs:
        os.unlink(path)
        os.unlink(path + ".index")


def _pread(fd: int, at: int, size: int) -> bytes:
    parts = []
    while size > 0:
        piece = os.pread(fd, size, at)
        if not piece:
            break
        parts.append(piece)
        at += len(piece)
        size -= len(piece)
    return parts[0] if len(parts) == 1 else b"".join(parts)
