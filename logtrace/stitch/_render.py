"""Render: the ordered rows as JSON lines or as text for a terminal.

JSON lines copy a valid JSON record's original text into ``record`` (it was
validated when parsed), so the output costs a prefix per line, not a
re-serialisation. Other lines are JSON-escaped. Output is cut into contiguous
ranges rendered by forked workers into spool files, appended in order.
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import get_context
from typing import IO

import msgspec
import numpy as np
import numpy.typing as npt

from ._group import Table
from ._order import Order
from ._parse import JSON, LOGFMT, REASONS, parse_logfmt
from ._read import LineReader
from ._tree import Tree

__all__ = ["Rendering", "write_jsonl"]

_encode = msgspec.json.encode


@dataclass(slots=True)
class Rendering:
    """Everything a renderer reads; forked workers inherit it without copying."""

    table: Table
    tree: Tree
    corrected: npt.NDArray[np.float64]
    order: Order


def record_json(raw: bytes, flags: int) -> bytes:
    """The ``record`` value for a line: its own text if it is a valid JSON object."""
    if flags & JSON:
        return raw
    text = raw.decode(errors="replace")
    if flags & LOGFMT:
        return _encode(parse_logfmt(text))
    return _encode({"message": text})


def iso_strings(ts: npt.NDArray[np.float64]) -> list[str]:
    """ISO 8601 UTC strings with microseconds; ``""`` for NaN."""
    nan = np.isnan(ts)
    us = np.round(np.where(nan, 0.0, ts) * 1e6).astype(np.int64)
    text = np.datetime_as_string(us.astype("datetime64[us]"), unit="us")
    out: list[str] = text.tolist()
    if nan.any():
        for i in np.flatnonzero(nan).tolist():
            out[i] = ""
    return out


_BATCH = 1 << 14


def _render_range(r: Rendering, lo: int, hi: int, out: IO[bytes]) -> None:
    """Rows ``lo:hi`` of the output order, in batches to bound memory."""
    table = r.table
    ctx = _Context(
        [_encode(s).decode() for s in table.services],
        [_encode(s.name).decode() for s in table.sources],
        len(table.sources),
    )
    release = _ReleasePlan(r, lo, hi)
    traced = max(lo, min(hi, r.order.n_traced))
    try:
        for start in range(lo, traced, _BATCH):
            end = min(traced, start + _BATCH)
            _render_batch(r, start, end, out, ctx, False)
            release.after(end, ctx)
        # Lines without a trace come last in file order, one here and there:
        # read with pread, as mapping them would fault in whole runs of pages.
        for start in range(traced, hi, _BATCH):
            _render_batch(r, start, min(hi, start + _BATCH), out, ctx, True)
    finally:
        for reader in ctx.readers:
            if reader is not None:
                reader.close()


class _ReleasePlan:
    """Give back the pages of input files that no later row will read.

    Traces come out in start order and files are written in time order, so
    the reading position in each file only creeps forward. Dropping the
    mapped pages behind it keeps resident memory to a window instead of
    the whole input (the page cache keeps them; nothing is read twice).
    """

    __slots__ = ("_low", "_positions")

    def __init__(self, r: Rendering, lo: int, hi: int) -> None:
        # Lines without a trace come last, in file order: they would pin every
        # file's first pages. They are left out; reading one of them again later
        # only maps its page back from the page cache.
        hi = max(lo, min(hi, r.order.n_traced))
        idx = r.order.rows[lo:hi]
        files = r.table.file[idx]
        offsets = r.table.rows["off"][idx]
        self._positions: dict[int, npt.NDArray[np.int64]] = {}
        self._low: dict[int, npt.NDArray[np.int64]] = {}
        for f in np.unique(files).tolist():
            where = np.flatnonzero(files == f)
            self._positions[f] = where + lo
            # Smallest offset still needed from each position on (suffix minimum).
            self._low[f] = np.minimum.accumulate(offsets[where][::-1])[::-1]

    def after(self, end: int, ctx: _Context) -> None:
        for f, positions in self._positions.items():
            data = ctx.maps[f]
            if not isinstance(data, mmap.mmap):
                continue
            k = int(np.searchsorted(positions, end))
            low = int(self._low[f][k]) if k < len(positions) else len(data)
            low -= low % mmap.PAGESIZE
            if low > 0:
                with contextlib.suppress(OSError, ValueError, AttributeError):
                    data.madvise(mmap.MADV_DONTNEED, 0, low)


class _Context:
    """What the batches of one range share: names and open files."""

    __slots__ = ("files", "maps", "readers", "services")

    def __init__(self, services: list[str], files: list[str], n_files: int) -> None:
        self.services = services
        self.files = files
        self.readers: list[LineReader | None] = [None] * n_files
        self.maps: list[bytes | mmap.mmap | None] = [None] * n_files

    def open(self, file: int, path: str) -> bytes | mmap.mmap:
        reader = self.readers[file] = LineReader(path)
        data = self.maps[file] = reader.data
        return data


def _render_batch(
    r: Rendering, lo: int, hi: int, out: IO[bytes], ctx: _Context, direct: bool
) -> None:
    table = r.table
    idx = r.order.rows[lo:hi]
    sub = table.rows[idx]
    traces, spans, services, files = table.traces, table.spans, ctx.services, ctx.files
    # One head string per distinct (trace, span, parent, service, depth) in the batch.
    # A span fixes its trace and depth, so (span, parent) or, without a span,
    # (trace, parent) make an int key that sorts fast; the rare row whose
    # service differs from its group's first gets a head of its own.
    trace_col, span_col, parent_col = sub["trace"], sub["span"], sub["parent"]
    svc_col, depth_col = sub["svc"], r.tree.row_depth[idx]
    key = np.where(
        span_col >= 0,
        ((span_col.astype(np.int64) + 1) << 32) | (parent_col.astype(np.int64) + 1),
        -((trace_col.astype(np.int64) + 2) << 32) - (parent_col.astype(np.int64) + 1),
    )
    _, first, head_of = np.unique(key, return_index=True, return_inverse=True)
    odd = np.flatnonzero(svc_col != svc_col[first[head_of]])
    if len(odd):
        head_of = head_of.copy()
        head_of[odd] = len(first) + np.arange(len(odd))
        first = np.concatenate([first, odd])
    heads = []
    for trace, span, parent, svc, depth in zip(
        trace_col[first].tolist(),
        span_col[first].tolist(),
        parent_col[first].tolist(),
        svc_col[first].tolist(),
        depth_col[first].tolist(),
        strict=True,
    ):
        t_text = "null" if trace < 0 else f'"{traces[trace]}"'
        s_text = "null" if span < 0 else f'"{spans[span]}"'
        p_text = "null" if parent < 0 else f'"{spans[parent]}"'
        heads.append(
            f'{{"trace_id":{t_text},"span_id":{s_text},"parent_span_id":{p_text},'
            f'"service":{services[svc]},"depth":{depth},"timestamp":'
        )
    corrected = r.corrected[idx]
    offset = np.round((sub["ts"] - corrected) * 1000.0, 3)
    # The offset and the file name sit side by side: one text per distinct pair.
    file_col = table.file[idx]
    distinct_off, off_of = np.unique(offset, return_inverse=True)
    pair = off_of.astype(np.int64) * len(files) + file_col
    distinct_pair, pair_of = np.unique(pair, return_inverse=True)
    off_values = distinct_off.tolist()
    middles = []
    for key in distinct_pair.tolist():
        v = off_values[key // len(files)]
        off_text = "null" if v != v else repr(v + 0.0)
        middles.append(f',"offset_ms":{off_text},"file":{files[key % len(files)]},"line":')
    stamps = iso_strings(corrected)
    maps = ctx.maps
    paths = table.data_paths
    file_list = file_col.tolist()
    for file in np.unique(file_col).tolist():
        if maps[file] is None:
            ctx.open(file, paths[file])
    prefixes = [
        f'{heads[h]}"{stamp}Z"{middles[m]}{line},"record":'.encode()
        for h, stamp, m, line in zip(
            head_of.tolist(), stamps, pair_of.tolist(), sub["line"].tolist(), strict=True
        )
    ]
    for i in np.flatnonzero(np.isnan(corrected)).tolist():
        h, m, line = int(head_of[i]), int(pair_of[i]), int(sub["line"][i])
        prefixes[i] = f'{heads[h]}null{middles[m]}{line},"record":'.encode()
    starts = sub["off"]
    if direct:
        fds = [-1 if reader is None else reader.fileno() for reader in ctx.readers]
        raws = [
            os.pread(fds[f], n, s)
            for f, s, n in zip(file_list, starts.tolist(), sub["len"].tolist(), strict=True)
        ]
    else:
        raws = [
            maps[f][s:e]
            for f, s, e in zip(
                file_list, starts.tolist(), (starts + sub["len"]).tolist(), strict=True
            )
        ]
    flags = sub["flags"]
    for i in np.flatnonzero((flags & JSON) == 0).tolist():
        raws[i] = record_json(raws[i], int(flags[i]))
    tails = [b"}\n", *(b',"reason":"%s"}\n' % reason.encode() for reason in REASONS[1:])]
    parts: list[bytes] = [b""] * (3 * len(raws))
    parts[0::3] = prefixes
    parts[1::3] = raws
    parts[2::3] = map(tails.__getitem__, sub["reason"].tolist())
    out.write(b"".join(parts))


_CURRENT: Rendering | None = None


def _worker(job: tuple[int, int, str]) -> str:
    lo, hi, path = job
    assert _CURRENT is not None
    with open(path, "wb") as f:
        _render_range(_CURRENT, lo, hi, f)
    return path


def write_jsonl(
    r: Rendering,
    out: IO[bytes],
    jobs: int,
    spool_dir: str,
    progress: Callable[[], None] | None = None,
) -> None:
    """Write every ordered row as one JSON line, in ``jobs`` parallel ranges."""
    global _CURRENT
    n = len(r.order.rows)
    if jobs <= 1 or n < 200_000:
        _render_range(r, 0, n, out)
        return
    _give_back_free_heap()  # the worker's copy of the parent counts in full
    bounds = [n * k // jobs for k in range(jobs + 1)]
    jobs_list = [
        (bounds[k], bounds[k + 1], tempfile.mktemp(prefix=f"part{k}-", dir=spool_dir))
        for k in range(1, jobs)
    ]
    _CURRENT = r
    try:
        with get_context("fork").Pool(jobs - 1) as pool:
            pending = pool.map_async(_worker, jobs_list)
            _render_range(r, bounds[0], bounds[1], out)
            if progress is not None:
                progress()
            paths = pending.get()
    finally:
        _CURRENT = None
    out.flush()
    for path in paths:
        with open(path, "rb") as part:
            _copy(part, out)
        os.unlink(path)


def _give_back_free_heap() -> None:
    """Return the C heap's free pages to the system (glibc only).

    Reading and grouping leave ~100 MB of freed small blocks that the
    allocator keeps; a forked process would start with all of them resident.
    """
    try:
        libc = ctypes.CDLL(None)
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _copy(src: IO[bytes], dst: IO[bytes]) -> None:
    try:
        out_fd = dst.fileno()
    except (OSError, AttributeError, ValueError):
        shutil.copyfileobj(src, dst, 1 << 20)
        return
    size = os.fstat(src.fileno()).st_size
    sent = 0
    try:
        while sent < size:
            done = os.sendfile(out_fd, src.fileno(), sent, size - sent)
            if done == 0:
                break
            sent += done
    except OSError:
        src.seek(sent)
        shutil.copyfileobj(src, dst, 1 << 20)
