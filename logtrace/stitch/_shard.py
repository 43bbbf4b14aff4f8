"""Big inputs: the run cut into trace shards that each fit the memory budget.

Every stage after reading works on whole traces, so a run can be cut by
trace: a stable hash of the canonical trace ID picks a row's shard, and each
shard is grouped, treed, corrected, ordered and written as a run of its own.
What must see the whole run is small and kept whole: the distinct traces
(ID -> first-seen index, start time, where the shard wrote it) and the calls
the clock estimate reads (one model for the run, as without shards).

Rows go from the scan workers to spool files, are split once into one spool
file per shard (plus one for lines without a trace), and each shard is read
back alone: memory holds one shard, never the run. The output is the same
bytes as an unsharded run: traces are merged from the shards' outputs in the
unsharded order (start time, then first appearance), then the lines without
a trace in file and line order.
"""

from __future__ import annotations

import math
import os
import pickle
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from hashlib import blake2b
from itertools import count, filterfalse
from typing import IO, TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from ._clocks import ClockModel, estimate_clocks_from_columns
from ._correct import (
    CallerRecords,
    apply_clocks,
    bracketing_rows,
    correct_times,
    find_calls,
    loose_calls,
    model_arrays,
)
from ._group import Table, group
from ._model import SCAN_DTYPE, FileScan
from ._order import order
from ._parse import BROKEN, NO_TRACE_ID
from ._read import Source
from ._render import Rendering, _give_back_free_heap, take_rows, write_jsonl
from ._scan import load_spilled
from ._tree import Tree, build_tree

if TYPE_CHECKING:
    from ._pipeline import Options, Summary

__all__ = ["BYTES_PER_ROW", "FIXED_MEMORY", "shard_count", "stitch_sharded"]

BYTES_PER_ROW = 300
"""Peak memory per line of a shard: scanned rows, the table, the tree,
the sort's temporaries, the renderer's batch, and the heap's slack
(measured ~250 on service logs)."""

FIXED_MEMORY = 64 << 20
"""Memory the process holds whatever the input (interpreter, numpy, the
renderer's buffer); a shard gets the rest of the budget."""

_NO_ROWS = np.empty(0, dtype=SCAN_DTYPE)

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


def shard_count(rows: int, memory: int) -> int:
    """How many shards keep one shard's rows within ``memory``."""
    usable = max(memory - FIXED_MEMORY, memory // 2, 1)
    return max(1, math.ceil(rows * BYTES_PER_ROW / usable))


MIN_CALLS = 500_000
"""Calls the clock estimate keeps at least, whatever the budget: enough for
the tightest delays of every service pair to show (about 80 MB at most)."""
_BYTES_PER_CALL = 160
"""Memory per kept call while estimating (columns, sort, the estimator's arrays)."""


def call_cap(memory: int) -> int:
    """How many calls the clock estimate keeps: a quarter of the budget's worth."""
    return max(MIN_CALLS, (memory - FIXED_MEMORY) // 4 // _BYTES_PER_CALL)


def _sample_keys(trace_ids: Sequence[str]) -> npt.NDArray[np.int64]:
    """Per trace, the key that decides whether its calls are kept when a run
    has more calls than the estimate keeps: a hash other than the shard's."""
    digests = b"".join(
        blake2b(t.encode("utf-8", "surrogatepass"), digest_size=8).digest() for t in trace_ids
    )
    keys: npt.NDArray[np.int64] = (np.frombuffer(digests, dtype=">u8") >> np.uint64(1)).astype(
        np.int64
    )
    return keys


def shard_of_traces(trace_ids: Sequence[str], shards: int) -> npt.NDArray[np.int32]:
    """Each trace's shard: a hash of its canonical ID (the same on every run)."""
    return np.fromiter(
        (zlib.crc32(t.encode("utf-8", "surrogatepass")) % shards for t in trace_ids),
        dtype=np.int32,
        count=len(trace_ids),
    )


@dataclass(slots=True)
class _Run:
    """What the whole run keeps in memory: per trace and per call, never per line."""

    sources: list[Source]
    scans: list[FileScan]
    """Every scan without its rows and span IDs (those are in the shard files)."""
    trace_ids: dict[str, int]
    services: list[str]
    shards: int
    paths: list[str]
    """Spool file per shard; the last one holds the lines without a trace."""
    spool: str
    rows_per_batch: int
    span_count: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """Per trace (first-seen index): how many spans it has."""


def stitch_sharded(
    sources: Sequence[Source],
    scanned: Sequence[tuple[FileScan, str | None]],
    out: IO[bytes],
    options: Options,
    spool: str,
    shards: int,
    summary: Summary,
    progress: Callable[[str, float], None] | None = None,
) -> None:
    """Write the run's JSON lines shard by shard; fills ``summary``."""
    run = _split(sources, scanned, options, spool, shards, summary)
    clocks = _estimate(run, call_cap(options.memory)) if options.skew_correction else {}
    used = summary.offsets_ms
    for name in list(used):
        model = clocks.get(name)
        summary.offsets_ms[name] = round(model.offset_s * 1e3, 3) if model else 0.0
        summary.drift_ppm[name] = round(model.drift * 1e6, 3) if model else 0.0
    n = len(run.trace_ids)
    start = np.full(n, np.nan)
    where = np.full(n, -1, dtype=np.int64)
    length = np.zeros(n, dtype=np.int64)
    shard_at = np.zeros(n, dtype=np.int32)
    outputs: list[str] = []
    written = 0
    for s in range(shards):
        if progress is not None:
            progress("writing", s / (shards + 1))
        path = os.path.join(spool, f"shard{s}.jsonl")
        outputs.append(path)
        written += _write_shard(run, s, clocks, options, path, start, where, length, shard_at)
        _give_back_free_heap()
    summary.written_traces = written
    _merge(outputs, start, where, length, shard_at, out)
    for path in outputs:
        os.unlink(path)
    _write_untraced(run, clocks, options, out)
    out.flush()


def _split(
    sources: Sequence[Source],
    scanned: Sequence[tuple[FileScan, str | None]],
    options: Options,
    spool: str,
    shards: int,
    summary: Summary,
) -> _Run:
    """One read of every scan: run-wide trace and service indexes, the
    summary's counts, and each scan's rows cut into the shard files."""
    trace_ids: dict[str, int] = {}
    service_ids: dict[str, int] = {}
    for scan, _ in scanned:
        new = filterfalse(trace_ids.__contains__, scan.traces)
        trace_ids.update(zip(new, count(len(trace_ids))))
        for v in scan.services:
            service_ids.setdefault(v, len(service_ids))
    shard_of = shard_of_traces(list(trace_ids), shards)
    services = list(service_ids)
    used = np.zeros(len(services), dtype=bool)
    paths = [os.path.join(spool, f"shard{s}.rows") for s in range(shards + 1)]
    files = [open(p, "wb") for p in paths]  # noqa: SIM115 (closed below)
    stubs: list[FileScan] = []
    records = unattributed = unparseable = 0
    try:
        for scan, spilled in scanned:
            if spilled is not None:
                mapped, spans = load_spilled(spilled)
                rows = np.asarray(mapped)
            else:
                rows, spans = scan.rows, scan.spans
            summary.warnings.extend(scan.warnings)
            stub = FileScan(scan.file, scan.data_path, _NO_ROWS, [], [], scan.services, scan.lines)
            stubs.append(stub)
            n = len(rows)
            records += n
            trace = np.asarray(rows["trace"])
            reason = np.asarray(rows["reason"])
            unattributed += int(np.count_nonzero(reason))
            broken = (np.asarray(rows["flags"]) & BROKEN) != 0
            unparseable += int(np.count_nonzero((reason > NO_TRACE_ID) | broken))
            vmap = np.array([service_ids[v] for v in scan.services], dtype=np.int64)
            if n:
                used[vmap[np.asarray(rows["svc"])]] = True
            tmap = np.fromiter(
                map(trace_ids.__getitem__, scan.traces), dtype=np.int64, count=len(scan.traces)
            )
            local_shard = shard_of[tmap] if len(tmap) else np.zeros(1, dtype=np.int32)
            row_shard = np.where(trace >= 0, local_shard[np.maximum(trace, 0)], shards)
            perm = np.argsort(row_shard, kind="stable")
            bounds = np.searchsorted(row_shard[perm], np.arange(shards + 2))
            for s in range(shards + 1):
                part = perm[bounds[s] : bounds[s + 1]]
                sub = take_rows(rows, part) if len(part) else _NO_ROWS
                pickle.dump(_compact(scan, sub, spans), files[s], protocol=pickle.HIGHEST_PROTOCOL)
            scan.traces = []  # the shard files have them now
            del rows, spans, trace, reason, broken, perm, row_shard
            if spilled is not None:
                del mapped
                os.unlink(spilled)
                os.unlink(spilled + ".spans")
    finally:
        for f in files:
            f.close()
    summary.files = len(sources)
    summary.records = records
    summary.traces = len(trace_ids)
    summary.unattributed = unattributed
    summary.unparseable = unparseable
    for i, name in enumerate(services):
        if used[i]:
            summary.offsets_ms[name] = 0.0
            summary.drift_ppm[name] = 0.0
    per_batch = max(1 << 14, (options.memory - FIXED_MEMORY) // BYTES_PER_ROW)
    return _Run(list(sources), stubs, trace_ids, services, shards, paths, spool, per_batch)


def _compact(scan: FileScan, rows: npt.NDArray[np.void], spans: list[str]) -> FileScan:
    """The scan restricted to ``rows``: only the trace and span IDs they use,
    in the scan's order (so that first appearances keep their order)."""
    trace_col = rows["trace"]
    used_t = np.unique(trace_col[trace_col >= 0])
    tnew = np.full(len(scan.traces) + 1, -1, dtype=np.int32)
    tnew[used_t] = np.arange(len(used_t), dtype=np.int32)
    rows["trace"] = tnew[trace_col]
    span_col, parent_col = rows["span"], rows["parent"]
    both = np.concatenate([span_col, parent_col])
    used_s = np.unique(both[both >= 0])
    snew = np.full(len(spans) + 1, -1, dtype=np.int32)
    snew[used_s] = np.arange(len(used_s), dtype=np.int32)
    rows["span"] = snew[span_col]
    rows["parent"] = snew[parent_col]
    return FileScan(
        scan.file,
        scan.data_path,
        rows,
        list(map(scan.traces.__getitem__, used_t.tolist())),
        list(map(spans.__getitem__, used_s.tolist())),
        scan.services,
        scan.lines,
    )


def _load(path: str) -> Iterator[FileScan]:
    with open(path, "rb") as f:
        while True:
            try:
                yield pickle.load(f)
            except EOFError:
                return


@dataclass(slots=True)
class _Shard:
    table: Table
    tree: Tree
    gtrace: I64
    """Shard trace index -> run-wide (first-seen) trace index."""
    within: I64
    """Shard span index -> its rank among its trace's spans."""


def _open_shard(run: _Run, s: int) -> _Shard:
    table = group(run.sources, list(_load(run.paths[s])))
    tree = build_tree(table)
    gtrace = np.fromiter(
        map(run.trace_ids.__getitem__, table.traces), dtype=np.int64, count=len(table.traces)
    )
    span_trace = table.span_trace.astype(np.int64)
    first = np.searchsorted(span_trace, np.arange(len(table.traces)))
    within = np.arange(len(span_trace), dtype=np.int64) - first[span_trace]
    return _Shard(table, tree, gtrace, within)


@dataclass(slots=True)
class _Calls:
    """The run's calls, in the order an unsharded run finds them."""

    shard: npt.NDArray[np.int32]
    caller: I64
    """Run-wide span index of the caller (as an unsharded run numbers spans)."""
    svc_caller: npt.NDArray[np.int16]
    svc_callee: npt.NDArray[np.int16]
    send: F64
    receive: F64
    start: F64
    end: F64
    exact: npt.NDArray[np.bool_]


def _estimate(run: _Run, cap: int) -> dict[str, ClockModel]:
    """:func:`._correct.estimate` over the shards: calls gathered from each
    (a small fraction of the rows), one estimate for the run.

    Beyond ``cap`` calls, the calls of a deterministic sample of traces are
    kept (those with the smallest keys, see :func:`_sample_keys`), so that
    memory stays bounded however long the run; below it, every call counts.
    """
    parts: list[tuple[npt.NDArray[np.generic], ...]] = []
    keys: npt.NDArray[np.int64] | None = None
    below = np.iinfo(np.int64).max  # calls of traces with keys below this are kept
    kept = 0
    span_count = np.zeros(len(run.trace_ids), dtype=np.int64)
    lo = np.full(len(run.services), np.inf)
    hi = np.full(len(run.services), -np.inf)
    for s in range(run.shards):
        sh = _open_shard(run, s)
        table, tree = sh.table, sh.tree
        np.add.at(span_count, sh.gtrace[table.span_trace], 1)
        calls = find_calls(table, tree)
        parts.append(
            (
                np.full(len(calls.callee), s, dtype=np.int32),
                sh.gtrace[table.span_trace[calls.callee]],
                sh.within[calls.callee],
                sh.within[calls.caller],
                tree.service[calls.caller].astype(np.int16),
                tree.service[calls.callee].astype(np.int16),
                calls.send,
                calls.receive,
                calls.start,
                calls.end,
                calls.exact,
            )
        )
        if below < np.iinfo(np.int64).max or kept + len(calls.callee) > 2 * cap:
            if keys is None:
                keys = _sample_keys(list(run.trace_ids))
            parts, below = _thin(parts, keys, below, cap)
        kept = sum(len(p[0]) for p in parts)
        rows = table.rows
        ts = rows["ts"]
        usable = bracketing_rows(table)
        svc = rows["svc"][usable].astype(np.int64)
        np.minimum.at(lo, svc, ts[usable])
        np.maximum.at(hi, svc, ts[usable])
        del sh, table, tree, calls, rows
        _give_back_free_heap()
    run.span_count = span_count
    base = np.concatenate([[0], np.cumsum(span_count)[:-1]]) if len(span_count) else span_count
    cols = [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]
    callee_g = base[cols[1]] + cols[2]
    perm = np.argsort(callee_g, kind="stable")
    del callee_g
    caller_g = base[cols[1]] + cols[3]
    c = _Calls(
        cols[0][perm],
        caller_g[perm],
        *(column[perm] for column in cols[4:]),
    )
    del cols, parts, caller_g, perm
    clocks = _estimate_calls(run, c, c.send, c.receive)
    loose = loose_calls(c.svc_caller, c.svc_callee, c.exact)
    if not len(loose):
        return clocks
    for margin in (100e-6, 30e-6):
        send, receive = _bracket(run, c, loose, clocks, margin, lo, hi, base)
        clocks = _estimate_calls(run, c, send, receive)
    return clocks


def _thin(
    parts: list[tuple[npt.NDArray[np.generic], ...]],
    keys: npt.NDArray[np.int64],
    below: int,
    cap: int,
) -> tuple[list[tuple[npt.NDArray[np.generic], ...]], int]:
    """Keep the calls of traces whose key is under the (lowered) limit: at
    most ``cap`` calls once more than twice that many were seen."""
    trace_keys = [keys[p[1].astype(np.int64)] for p in parts]
    every = np.concatenate(trace_keys)
    every = every[every < below]
    if len(every) > cap:
        below = int(np.partition(every, cap)[cap])
    thinned = []
    for part, k in zip(parts, trace_keys, strict=True):
        keep = k < below
        thinned.append(tuple(column[keep] for column in part))
    return thinned, below


def _estimate_calls(run: _Run, c: _Calls, send: F64, receive: F64) -> dict[str, ClockModel]:
    return estimate_clocks_from_columns(
        c.svc_caller, c.svc_callee, send, receive, c.start, c.end, c.exact,
        run.services, run.services,
    )  # fmt: skip


def _bracket(
    run: _Run,
    c: _Calls,
    loose: I64,
    clocks: dict[str, ClockModel],
    margin: float,
    lo_raw: F64,
    hi_raw: F64,
    base: I64,
) -> tuple[F64, F64]:
    """As :func:`._correct._bracket`, shard by shard: a call's caller span
    and its records are in one shard. The run-wide earliest and latest
    corrected times come from each service's earliest and latest raw ones
    (a correction never reorders one service's times)."""
    models = model_arrays(clocks, run.services)
    send = c.send.copy()
    receive = c.receive.copy()
    has = np.flatnonzero(np.isfinite(lo_raw))
    if not len(has):
        return send, receive
    t0 = float(correct_times(lo_raw[has], has, models).min())
    width = float(correct_times(hi_raw[has], has, models).max()) - t0 + 1.0
    for s in range(run.shards):
        mine = loose[c.shard[loose] == s]
        if not len(mine):
            continue
        sh = _open_shard(run, s)
        table = sh.table
        usable = bracketing_rows(table)
        if not usable.any():
            continue
        gspan = base[sh.gtrace[table.span_trace]] + sh.within
        records = CallerRecords(
            gspan[table.rows["span"][usable]],
            table.rows["ts"][usable],
            apply_clocks(table, clocks)[usable],
            t0,
            width,
        )
        records.tighten(
            mine, c.caller[mine], c.start[mine], c.end[mine],
            c.svc_callee[mine].astype(np.int64), models, margin, send, receive,
        )  # fmt: skip
        del sh, table, records
    return send, receive


def _write_shard(
    run: _Run,
    s: int,
    clocks: dict[str, ClockModel],
    options: Options,
    path: str,
    start: F64,
    where: I64,
    length: I64,
    shard_at: npt.NDArray[np.int32],
) -> int:
    """Write shard ``s``'s traces to ``path``; note where each trace went.
    Returns how many traces were selected."""
    from ._pipeline import _keep_rows, _select

    sh = _open_shard(run, s)
    table, tree = sh.table, sh.tree
    corrected = apply_clocks(table, clocks)
    ordered = order(table, corrected)
    start[sh.gtrace] = ordered.trace_start
    selected = _select(table, corrected, ordered.trace_start, options)
    if selected is not None:
        keep = _keep_rows(table, corrected, ordered.rows, selected, options)
        ordered.rows = ordered.rows[keep]
        ordered.n_traced = len(ordered.rows)
        written = int(np.count_nonzero(selected))
    else:
        written = len(table.traces)
    with open(path, "wb") as f:
        write_jsonl(Rendering(table, tree, corrected, ordered), f, options.jobs, run.spool)
    trace_seq = table.rows["trace"][ordered.rows]
    del corrected, tree
    if not len(trace_seq):
        return written
    cut = np.flatnonzero(trace_seq[1:] != trace_seq[:-1]) + 1
    first_line = np.concatenate([[0], cut]).astype(np.int64)
    local = trace_seq[first_line].astype(np.int64)
    offsets = _line_starts(path, np.concatenate([first_line, [len(trace_seq)]]))
    g = sh.gtrace[local]
    where[g] = offsets[:-1]
    length[g] = np.diff(offsets)
    shard_at[g] = s
    return written


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


def _merge(
    outputs: list[str],
    start: F64,
    where: I64,
    length: I64,
    shard_at: npt.NDArray[np.int32],
    out: IO[bytes],
) -> None:
    """The shards' traces in the unsharded order: by start, traces without a
    time last, ties by first appearance; byte ranges copied through a bounded buffer."""
    n = len(start)
    sort_start = np.where(np.isnan(start), np.inf, start)
    ranked = np.lexsort((np.arange(n), sort_start))
    ranked = ranked[length[ranked] > 0]
    fds = [os.open(p, os.O_RDONLY) for p in outputs]
    buffer = bytearray()
    limit = 4 << 20
    try:
        for s, at, size in zip(
            shard_at[ranked].tolist(), where[ranked].tolist(), length[ranked].tolist(), strict=True
        ):
            while size > 0:
                piece = os.pread(fds[s], min(size, limit), at)
                if not piece:
                    break
                buffer += piece
                at += len(piece)
                size -= len(piece)
                if len(buffer) >= limit:
                    out.write(buffer)
                    buffer.clear()
        out.write(buffer)
    finally:
        for fd in fds:
            os.close(fd)


def _write_untraced(
    run: _Run, clocks: dict[str, ClockModel], options: Options, out: IO[bytes]
) -> None:
    """Lines without a trace, in file and line order, a bounded batch of scans at a time."""
    from ._pipeline import _keep_rows, _select

    batch: dict[int, FileScan] = {}
    held = 0

    def flush() -> None:
        if not batch:
            return
        scans = [batch.get(i, stub) for i, stub in enumerate(run.scans)]
        table = group(run.sources, scans)
        batch.clear()
        corrected = apply_clocks(table, clocks)
        ordered = order(table, corrected)
        selected = _select(table, corrected, ordered.trace_start, options)
        if selected is not None:
            ordered.rows = ordered.rows[
                _keep_rows(table, corrected, ordered.rows, selected, options)
            ]
        tree = build_tree(table)
        out.flush()
        write_jsonl(Rendering(table, tree, corrected, ordered), out, options.jobs, run.spool)

    for i, part in enumerate(_load(run.paths[-1])):
        if not len(part.rows):
            continue
        batch[i] = part
        held += len(part.rows)
        if held >= run.rows_per_batch:
            flush()
            held = 0
    flush()
