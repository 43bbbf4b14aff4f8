"""Render: the ordered rows as JSON lines or as text for a terminal.

JSON lines copy a valid JSON record's original text into ``record`` (it was
validated when parsed), so the output costs a prefix per line, not a
re-serialisation. Other lines are JSON-escaped. Output is cut into contiguous
ranges rendered by forked workers into spool files, appended in order.
"""

from __future__ import annotations

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


_BATCH = 1 << 16


def _render_range(r: Rendering, lo: int, hi: int, out: IO[bytes]) -> None:
    """Rows ``lo:hi`` of the output order, in batches to bound memory."""
    table = r.table
    ctx = _Context(
        [_encode(s).decode() for s in table.services],
        [_encode(s.name).decode() for s in table.sources],
    )
    try:
        for start in range(lo, hi, _BATCH):
            _render_batch(r, start, min(hi, start + _BATCH), out, ctx)
    finally:
        for reader in ctx.readers.values():
            reader.close()


class _Context:
    """Caches shared by the batches of one range."""

    __slots__ = ("files", "heads", "offsets", "readers", "services")

    def __init__(self, services: list[str], files: list[str]) -> None:
        self.services = services
        self.files = files
        self.readers: dict[int, LineReader] = {}
        self.heads: dict[tuple[int, int, int, int, int], str] = {}
        self.offsets: dict[float, str] = {}


def _render_batch(r: Rendering, lo: int, hi: int, out: IO[bytes], ctx: _Context) -> None:
    table = r.table
    idx = r.order.rows[lo:hi]
    sub = table.rows[idx]
    traces, spans, services, files = table.traces, table.spans, ctx.services, ctx.files
    readers, heads, offsets = ctx.readers, ctx.heads, ctx.offsets
    corrected = r.corrected[idx]
    offset_ms = np.round((sub["ts"] - corrected) * 1000.0, 3).tolist()
    stamps = iso_strings(corrected)
    chunk: list[bytes] = []
    append = chunk.append
    for (
        trace,
        span,
        parent,
        svc,
        depth,
        stamp,
        off_ms,
        file,
        line,
        off,
        length,
        flags,
        reason,
    ) in zip(
        sub["trace"].tolist(),
        sub["span"].tolist(),
        sub["parent"].tolist(),
        sub["svc"].tolist(),
        r.tree.row_depth[idx].tolist(),
        stamps,
        offset_ms,
        table.file[idx].tolist(),
        sub["line"].tolist(),
        sub["off"].tolist(),
        sub["len"].tolist(),
        sub["flags"].tolist(),
        sub["reason"].tolist(), strict=False,
    ):
        key = (trace, span, parent, svc, depth)
        head = heads.get(key)
        if head is None:
            if len(heads) > 200_000:
                heads.clear()
            t_text = "null" if trace < 0 else f'"{traces[trace]}"'
            s_text = "null" if span < 0 else f'"{spans[span]}"'
            p_text = "null" if parent < 0 else f'"{spans[parent]}"'
            head = heads[key] = (
                f'{{"trace_id":{t_text},"span_id":{s_text},"parent_span_id":{p_text},'
                f'"service":{services[svc]},"depth":{depth},'
            )
        off_text = offsets.get(off_ms)
        if off_text is None:
            off_text = offsets[off_ms] = "null" if off_ms != off_ms else repr(off_ms + 0.0)
        reader = readers.get(file)
        if reader is None:
            reader = readers[file] = LineReader(table.data_paths[file])
        raw = reader.get(off, length)
        if not flags & JSON:
            raw = record_json(raw, flags)
        stamp_text = f'"{stamp}Z"' if stamp else "null"
        append(
            f'{head}"timestamp":{stamp_text},"offset_ms":{off_text},'
            f'"file":{files[file]},"line":{line},"record":'.encode()
        )
        append(raw)
        append(b"}\n" if not reason else b',"reason":"%s"}\n' % REASONS[reason].encode())
    out.write(b"".join(chunk))


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
