"""Group by trace: join the per-chunk scans into one table with run-wide IDs.

Each chunk interned its IDs locally; here they are mapped to run-wide small
ints with one dict lookup per distinct ID (not per line), and the rows become
numpy columns, which the later stages sort and reduce without Python loops.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from itertools import chain, count, filterfalse
from typing import Any

import numpy as np
import numpy.typing as npt

from ._decompress import LineReader
from ._model import ROW_DTYPE, ROW_FIELDS, FileScan, Source, Table
from ._trace_halves import low_half_partners

__all__ = [
    "TABLE_BYTES_PER_ROW",
    "RowLines",
    "group",
    "hex_span_maps",
    "index_map",
    "join_halves",
    "split_by_trace",
    "split_general",
    "split_without_collisions",
]

I32 = npt.NDArray[np.int32]
F64 = npt.NDArray[np.float64]


class RowLines:
    """The original text of table rows, each file opened on first use."""

    __slots__ = ("_readers", "_table")

    def __init__(self, table: Table) -> None:
        self._table = table
        self._readers: dict[int, LineReader] = {}

    def __call__(self, row: int) -> bytes:
        table = self._table
        f = int(table.file[row])
        reader = self._readers.get(f)
        if reader is None:
            reader = self._readers[f] = LineReader(table.data_paths[f])
        rows = table.rows
        return reader.get(int(rows["off"][row]), int(rows["len"][row]))

    def close(self) -> None:
        for reader in self._readers.values():
            reader.close()
        self._readers.clear()


def _column(n: int, dtype: npt.DTypeLike, spill_dir: str | None, name: str) -> npt.NDArray[Any]:
    if spill_dir is None or n == 0:
        return np.empty(n, dtype=dtype)
    path = os.path.join(spill_dir, f"{name}.column")
    return np.memmap(path, dtype=dtype, mode="w+", shape=(n,))


def split_without_collisions(
    rows: npt.NDArray[np.void], names: list[str]
) -> tuple[list[str], I32] | None:
    """:func:`split_by_trace` for the usual case, every span ID in one trace
    only: sorting the distinct spans, not every reference; ``None`` otherwise."""
    n = len(names)
    if n == 0:
        return None
    trace = rows["trace"]
    lo = np.full(n, np.iinfo(np.int32).max, dtype=np.int32)
    hi = np.full(n, -1, dtype=np.int32)
    for name in ("span", "parent"):
        column = rows[name]
        has = column >= 0
        at, owner = column[has], trace[has]
        np.minimum.at(lo, at, owner)
        np.maximum.at(hi, at, owner)
    if not np.array_equal(lo, hi):
        return None
    keys = (lo.astype(np.int64) << 32) | np.arange(n, dtype=np.int64)
    order = np.argsort(keys)
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n, dtype=np.int64)
    for name in ("span", "parent"):
        column = rows[name]
        has = column >= 0
        column[has] = rank[column[has]]
    return list(map(names.__getitem__, order.tolist())), lo[order]


def split_by_trace(rows: npt.NDArray[np.void], names: list[str]) -> tuple[list[str], I32]:
    """Make span indexes mean (trace, span ID): the same ID in two traces
    (hostile or colliding input) becomes two spans. Rewrites the span and
    parent columns in place; returns span ID and trace per new index."""
    quick = split_without_collisions(rows, names)
    return quick if quick is not None else split_general(rows, names)


def split_general(rows: npt.NDArray[np.void], names: list[str]) -> tuple[list[str], I32]:
    trace = rows["trace"].astype(np.int64)
    keys = []
    for name in ("span", "parent"):
        column = rows[name]
        has = column >= 0
        keys.append(np.where(has, (trace << 32) | column.astype(np.int64), -1))
    distinct, inverse = np.unique(np.concatenate(keys), return_inverse=True)
    offset = 1 if len(distinct) and distinct[0] == -1 else 0
    n = len(trace)
    for k, name in enumerate(("span", "parent")):
        part = inverse[k * n : (k + 1) * n].astype(np.int64) - offset
        rows[name] = np.where(keys[k] >= 0, part, -1)
    real = distinct[offset:]
    span_trace = (real >> 32).astype(np.int32)
    spans = [names[i] for i in (real & 0xFFFFFFFF).tolist()]
    return spans, span_trace


def index_map(ids: dict[str, int], names: list[str]) -> I32:
    """Run-wide index of each of a scan's (distinct) names, new ones appended
    in order; C-level iteration, as a run has hundreds of thousands of spans."""
    ids.update(zip(filterfalse(ids.__contains__, names), count(len(ids))))
    if not names:
        return np.zeros(1, dtype=np.int32)
    return np.fromiter(map(ids.__getitem__, names), dtype=np.int32, count=len(names))


def hex_span_maps(names: list[list[str]]) -> tuple[list[str], list[I32]] | None:
    """What :func:`index_map` gives for every scan's spans (the run's span
    list in first-seen order, and each scan's local -> run-wide index), with
    numpy, when every span ID is 16 lowercase hex digits; else ``None``."""
    every = list(chain.from_iterable(names))
    if not every:
        return None
    joined = "".join(every)
    # Hex IDs are canonical at 16 digits or more, anything else has a non-hex
    # character: all hex and 16 per ID on average means 16 each.
    if len(joined) != 16 * len(every) or not joined.isascii() or joined != joined.lower():
        return None
    try:
        raw = bytes.fromhex(joined)
    except ValueError:
        return None
    if len(raw) != 8 * len(every):  # fromhex skips whitespace
        return None
    key = np.frombuffer(raw, dtype=">u8")
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    seen = np.argsort(first, kind="stable")
    rank = np.empty(len(first), dtype=np.int32)
    rank[seen] = np.arange(len(first), dtype=np.int32)
    index = rank[inverse.ravel()]
    maps: list[I32] = []
    at = 0
    for part in names:
        maps.append(index[at : at + len(part)] if part else np.zeros(1, dtype=np.int32))
        at += len(part)
    return list(map(every.__getitem__, first[seen].tolist())), maps


def copy_row_prefix(rows: npt.NDArray[np.void], scanned: npt.NDArray[np.void]) -> None:
    """``rows[f] = scanned[f]`` for every row field: a scan row starts with a
    table row's fields, at the same offsets, so whole 8-byte words are copied
    (a field at a time walks the rows ten times)."""
    words = ROW_DTYPE.itemsize // 8
    if (
        rows.flags.c_contiguous
        and scanned.flags.c_contiguous
        and ROW_DTYPE.itemsize % 8 == 0
        and scanned.dtype.itemsize % 8 == 0
        and all(scanned.dtype.fields[f] == ROW_DTYPE.fields[f] for f in ROW_FIELDS)  # type: ignore[index]
    ):
        dst = rows.view(np.uint64).reshape(len(rows), words)
        src = scanned.view(np.uint64).reshape(len(scanned), scanned.dtype.itemsize // 8)
        dst[:] = src[:, :words]
        return
    for name in ROW_FIELDS:
        rows[name] = scanned[name]


TABLE_BYTES_PER_ROW = 160
"""Peak memory per line while grouping and ordering (the table and the
sort's temporaries): beyond the budget, the columns go to spill files."""


def group(
    sources: Sequence[Source],
    scans: Sequence[FileScan],
    spill_dir: str | None = None,
    memory: int | None = None,
) -> Table:
    """One table from the scans (in file order, ranges of a file in offset order).

    With ``spill_dir``, the per-line columns live in memory-mapped files
    there (only if the table would not fit ``memory``, when given): the
    kernel can write them out under memory pressure instead of the run
    failing. Each scan's rows are released once copied.
    """
    total = sum(len(s.rows) for s in scans)
    if memory is not None and total * TABLE_BYTES_PER_ROW <= memory:
        spill_dir = None
    all_rows = _column(total, ROW_DTYPE, spill_dir, "rows")
    all_files = _column(total, np.int32, spill_dir, "file")
    all_starts = _column(total, np.float64, spill_dir, "span_start")
    at = 0
    data_paths = [s.path for s in sources]
    trace_ids: dict[str, int] = {}
    span_ids: dict[str, int] = {}
    service_ids: dict[str, int] = {}
    warnings: list[str] = []
    lines_before: dict[int, int] = {}
    hex_maps = hex_span_maps([scan.spans for scan in scans])
    span_names: list[str] = []
    if hex_maps is not None:
        span_names, maps = hex_maps
        hex_map = iter(maps)
    for scan in scans:
        scanned = scan.rows
        scan.rows = scanned[:0]
        n = len(scanned)
        rows = all_rows[at : at + n]  # filled in place: no second copy of the lines
        copy_row_prefix(rows, scanned)
        data_paths[scan.file] = scan.data_path
        warnings.extend(scan.warnings)
        tmap = index_map(trace_ids, scan.traces)
        smap = index_map(span_ids, scan.spans) if hex_maps is None else next(hex_map)
        vmap = np.array(
            [service_ids.setdefault(v, len(service_ids)) for v in scan.services], dtype=np.uint16
        )
        for name, table in (("trace", tmap), ("span", smap), ("parent", smap)):
            column = rows[name]
            has = column >= 0
            column[has] = table[column[has]]
        rows["svc"] = vmap[rows["svc"]]
        base = lines_before.get(scan.file, 0)
        if base:
            rows["line"] += base
        lines_before[scan.file] = base + scan.lines
        all_starts[at : at + n] = scanned["start"]
        del scanned
        all_files[at : at + n] = scan.file
        at += n
        del rows
    if hex_maps is None:
        span_names = list(span_ids)
    names = list(trace_ids)
    joined = join_halves(all_rows, names)
    spans, span_trace = split_by_trace(all_rows, span_names)
    return Table(
        sources=list(sources),
        data_paths=data_paths,
        rows=all_rows,
        file=all_files,
        span_start=all_starts,
        traces=names,
        spans=spans,
        span_trace=span_trace,
        services=list(service_ids),
        warnings=warnings,
        joined=joined,
    )


def join_halves(rows: npt.NDArray[np.void], names: list[str]) -> dict[str, str]:
    """Each 64-bit trace ID of ``names`` that is the low half of one 128-bit
    ID there joins that trace (:func:`._trace_halves.low_half_partners`):
    its rows take the other's index, and it leaves ``names`` (in place).
    Returns short ID -> the ID it joined."""
    partners = low_half_partners(names)
    if not partners:
        return {}
    keep = np.ones(len(names), dtype=bool)
    keep[list(partners)] = False
    index = np.cumsum(keep, dtype=np.int64) - 1
    for short, partner in partners.items():
        index[short] = index[partner]
    column = rows["trace"]
    has = column >= 0
    column[has] = index[column[has]]
    joined = {names[short]: names[partner] for short, partner in partners.items()}
    names[:] = [t for t, k in zip(names, keep.tolist(), strict=True) if k]
    return joined
