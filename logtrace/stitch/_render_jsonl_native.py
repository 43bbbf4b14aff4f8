"""JSON lines rendered by the ``_native_write`` extension: Python gathers
each batch's columns (and the rare texts C does not write), C joins them into
lines, in a second thread so that the two overlap."""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from ._gil import short_gil_turns
from ._memory import take_rows
from ._model import JSON, Rendering
from ._native import native_write
from ._record_text import iso_strings, record_json
from ._render_range import TAILS, RangeContext, ReleasePlan, tail_codes

__all__ = ["render_native"]


# The C path: timestamps outside years 1..9999 (or NaN) and records that are
# not JSON are few; Python writes those texts, C everything else.
_US_LO = -62135596800000000.0  # 0001-01-01, exact as a float
_US_HI = 253402300800000000.0  # 10000-01-01, exact as a float
_COLUMN_TYPES = ("<i4", "<i4", "<i4", "<u2", "<i4", "<i8", "<f8", "<i4", "<i4", "<i8", "<i4", "u1")
"""What ``render_batch`` reads: trace, span, parent, service, depth, timestamp
(µs), offset_ms, file, line, byte offset, length, reason."""


def render_native(
    r: Rendering,
    batches: list[tuple[int, int, bool]],
    out: IO[bytes],
    ctx: RangeContext,
    release: ReleasePlan,
) -> None:
    """Batches rendered in C, two at a time: while one thread renders a batch
    (the C loop runs without the GIL) and writes it, this one gathers the next
    batch's columns. Two reused buffers alternate (their pages stay mapped)."""
    assert native_write is not None
    render = native_write.render_batch

    def render_and_write(buffer: bytearray, args: tuple[Any, ...]) -> None:
        _emit(out, buffer, render(buffer, *args))

    buffers = (bytearray(), bytearray())
    # The renderer needs the GIL for a moment to start a batch and to write it.
    with short_gil_turns(), ThreadPoolExecutor(1, thread_name_prefix="logtrace-render") as renderer:
        pending: tuple[Future[None], int, bool] | None = None
        for i, (start, end, direct) in enumerate(batches):
            args = _native_args(r, start, end, ctx, direct)
            if pending is not None:
                _finished(pending, release, ctx)  # frees the buffer this batch takes
            pending = (renderer.submit(render_and_write, buffers[i % 2], args), end, direct)
        if pending is not None:
            _finished(pending, release, ctx)


def _finished(
    pending: tuple[Future[None], int, bool], release: ReleasePlan, ctx: RangeContext
) -> None:
    """Wait for a batch to be written, then give back the pages behind it."""
    done, end, direct = pending
    done.result()
    if not direct:
        release.after(end, ctx)


def _emit(out: IO[bytes], buffer: bytearray, size: int) -> None:
    with memoryview(buffer) as view:
        out.write(view[:size])


def _native_args(
    r: Rendering, lo: int, hi: int, ctx: RangeContext, direct: bool
) -> tuple[
    tuple[npt.NDArray[Any], ...],
    tuple[str, ...],
    tuple[str, ...],
    tuple[bytes, ...],
    tuple[bytes, ...],
    tuple[bytes, ...],
    list[object],
    npt.NDArray[np.int64],
    tuple[bytes, ...],
    npt.NDArray[np.int64],
    tuple[bytes, ...],
]:
    """What ``render_batch`` needs for rows ``lo:hi``, all but the output buffer."""
    table = r.table
    idx = r.order.rows[lo:hi]
    sub = take_rows(table.rows, idx)
    file_col = table.file[idx]
    corrected = r.corrected[idx]
    scaled = np.round(corrected * 1e6)
    plain = (scaled >= _US_LO) & (scaled < _US_HI)  # False for NaN
    stamp_us = np.where(plain, scaled, 0.0).astype(np.int64)
    stamp_rows = np.flatnonzero(~plain)
    stamp_texts: tuple[bytes, ...] = ()
    if len(stamp_rows):
        odd = corrected[stamp_rows]
        stamp_texts = tuple(
            b"null" if v != v else f'"{text}Z"'.encode()
            for v, text in zip(odd.tolist(), iso_strings(odd), strict=True)
        )
    offset = np.round((sub["ts"] - corrected) * 1000.0, 3)
    maps = ctx.maps
    if None in maps:  # until every file is open
        paths = table.data_paths
        for file in np.flatnonzero(np.bincount(file_col, minlength=len(maps))).tolist():
            if maps[file] is None:
                ctx.open(file, paths[file])
    sources: list[object]
    if direct:
        sources = [-1 if reader is None else reader.fileno() for reader in ctx.readers]
    else:
        sources = list(maps)
    flags = sub["flags"]
    record_rows = np.flatnonzero((flags & JSON) == 0)
    record_texts: tuple[bytes, ...] = ()
    if len(record_rows):
        texts = []
        readers = ctx.readers
        for f, s, n, flag in zip(
            file_col[record_rows].tolist(),
            sub["off"][record_rows].tolist(),
            sub["len"][record_rows].tolist(),
            flags[record_rows].tolist(),
            strict=True,
        ):
            reader = readers[f]
            assert reader is not None
            raw = os.pread(reader.fileno(), n, s) if direct else reader.data[s : s + n]
            texts.append(record_json(raw, flag))
        record_texts = tuple(texts)
    names = ctx.names(table)
    columns = tuple(
        np.asarray(column, dtype=dtype)  # no copy when the type already fits
        for column, dtype in zip(
            (
                sub["trace"],
                sub["span"],
                sub["parent"],
                sub["svc"],
                r.tree.row_depth[idx],
                stamp_us,
                offset,
                file_col,
                sub["line"],
                sub["off"],
                sub["len"],
                tail_codes(ctx.marks, sub),
            ),
            _COLUMN_TYPES,
            strict=True,
        )
    )
    return (
        columns,
        *names,
        TAILS,
        sources,
        stamp_rows.astype(np.int64, copy=False),
        stamp_texts,
        record_rows.astype(np.int64, copy=False),
        record_texts,
    )
