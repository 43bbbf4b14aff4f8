"""Render the ordered rows as JSON lines, one per log line.

JSON lines copy a valid JSON record's original text into ``record`` (it was
validated when parsed), so the output costs a prefix per line, not a
re-serialisation. Other lines are JSON-escaped. Output is cut into contiguous
ranges rendered by forked workers into spool files, appended in order.

With the C extension ``_native_write`` built, the per-line work (joining
IDs, names, timestamp, offset and record) runs in C, in one process; Python
keeps the rare texts (records that are not JSON, odd timestamps). Both paths
write the same bytes; ``LOGTRACE_PURE_PYTHON=1`` selects the Python one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from typing import IO

import msgspec
import numpy as np

from ._marks import span_marks
from ._memory import give_back_free_heap, take_rows
from ._model import JSON, Rendering
from ._native import native_enabled, native_write
from ._process_pool import forked_pool
from ._record_text import iso_strings, record_json
from ._render_jsonl_native import render_native
from ._render_range import TAILS, RangeContext, ReleasePlan, marks_if_any, tail_codes

__all__ = ["write_jsonl"]

_encode = msgspec.json.encode


_BATCH = 1 << 14
_NATIVE_BATCH = 1 << 14
"""Rows per batch. The C path renders one batch while the next is gathered,
into two reused output buffers (~10 MB each at 16k rows): the same memory as
one buffer of 32k rows, which was no faster (its fixed cost per batch is a
few numpy passes; 16k and 32k rows both write the 500 MB bench in 0.31 s)."""


def _render_range(r: Rendering, lo: int, hi: int, out: IO[bytes]) -> None:
    """Rows ``lo:hi`` of the output order, in batches to bound memory."""
    table = r.table
    ctx = RangeContext(
        [_encode(s).decode() for s in table.services],
        [_encode(s.name).decode() for s in table.sources],
        len(table.sources),
        marks_if_any(span_marks(r.tree)),
    )
    # Inferred parents add a key the C path does not write: such runs take the Python one.
    native = native_enabled(native_write) and not _any_inferred(r)
    size = _NATIVE_BATCH if native else _BATCH
    release = ReleasePlan(r, lo, hi)
    traced = max(lo, min(hi, r.order.n_traced))
    # Lines without a trace come last in file order, one here and there:
    # read with pread (direct), as mapping them would fault in whole runs of pages.
    batches = [(start, min(traced, start + size), False) for start in range(lo, traced, size)]
    batches += [(start, min(hi, start + size), True) for start in range(traced, hi, size)]
    try:
        if native:
            render_native(r, batches, out, ctx, release)
            return
        for start, end, direct in batches:
            _render_batch(r, start, end, out, ctx, direct)
            if not direct:
                release.after(end, ctx)
    finally:
        for reader in ctx.readers:
            if reader is not None:
                reader.close()


def _any_inferred(r: Rendering) -> bool:
    return r.tree.inferred is not None and bool(r.tree.inferred.any())


def _render_batch(
    r: Rendering, lo: int, hi: int, out: IO[bytes], ctx: RangeContext, direct: bool
) -> None:
    table = r.table
    idx = r.order.rows[lo:hi]
    sub = take_rows(table.rows, idx)
    traces, spans, services, files = table.traces, table.spans, ctx.services, ctx.files
    # One head string per distinct (trace, span, parent, service, depth) in the batch.
    # A span fixes its trace and depth, so (span, parent) or, without a span,
    # (trace, parent) make an int key that sorts fast; the rare row whose
    # service differs from its group's first gets a head of its own.
    trace_col, span_col, parent_col = sub["trace"], sub["span"], sub["parent"]
    svc_col, depth_col = sub["svc"], r.tree.row_depth[idx]
    inferred = np.zeros(len(idx), dtype=bool)
    if r.tree.inferred is not None:  # the parent the logs do not name, as inferred
        has_span = span_col >= 0
        inferred[has_span] = r.tree.inferred[span_col[has_span]]
        parent_col = np.where(inferred, r.tree.parent[np.maximum(span_col, 0)], parent_col)
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
        if span >= 0 and parent >= 0 and r.tree.inferred is not None and r.tree.inferred[span]:
            p_text += ',"parent_inferred":true'
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
    parts: list[bytes] = [b""] * (3 * len(raws))
    parts[0::3] = prefixes
    parts[1::3] = raws
    parts[2::3] = map(TAILS.__getitem__, tail_codes(ctx.marks, sub).tolist())
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
    """Write every ordered row as one JSON line.

    The pure-Python path renders ``jobs`` ranges in parallel processes.
    """
    global _CURRENT
    n = len(r.order.rows)
    # The C path is bound by memory traffic: a forked worker's part, spooled
    # and copied back, costs more than it saves (threads gained nothing either).
    if jobs <= 1 or n < 200_000 or native_enabled(native_write):
        _render_range(r, 0, n, out)
        return
    give_back_free_heap()  # the worker's copy of the parent counts in full
    bounds = [n * k // jobs for k in range(jobs + 1)]
    jobs_list = [
        (bounds[k], bounds[k + 1], tempfile.mktemp(prefix=f"part{k}-", dir=spool_dir))
        for k in range(1, jobs)
    ]
    _CURRENT = r
    try:
        with forked_pool(jobs - 1) as pool:
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
