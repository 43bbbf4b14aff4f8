"""Big inputs: the run cut into trace shards that each fit the memory budget.

Every stage after reading works on whole traces, so a run can be cut by
trace: a stable hash of the canonical trace ID picks a row's shard, and each
shard is grouped, treed, corrected, ordered and written as a run of its own.
Only the clock estimate must see the whole run: it keeps the calls (a
bounded number of them, see :func:`call_cap`), never the lines or the traces.

Rows go from the scan workers to spool files, are split once into one spool
file per shard (plus one for lines without a trace), and each shard is read
back alone: memory holds one shard, never the run. No table of the run's
traces exists anywhere: a trace's place among first appearances is the scan
it first appears in and its index there, which its shard alone can tell.

The output is the same bytes as an unsharded run. Each shard writes its
traces in the unsharded order restricted to its own (start time, then first
appearance) with an index of where each went; a bounded merge of those
indexes copies the traces out in the run's order. The lines without a trace
follow, in file and line order.
"""

from __future__ import annotations

import math
import os
import pickle
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from hashlib import blake2b
from itertools import compress
from typing import IO, TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from ._clocks import ClockModel, estimate_clocks_from_columns
from ._correct import (
    CallerRecords,
    apply_clocks,
    bracketing_rows,
    correct_rows,
    find_calls,
    loose_calls,
    model_arrays,
)
from ._group import Table, group
from ._memory import give_back_free_heap, take_rows
from ._model import SCAN_DTYPE, FileScan
from ._order import Order, order
from ._output import in_window, keeps_untraced, narrow, select_traces, write_table
from ._parse import BROKEN, NO_TRACE_ID
from ._plan import Source
from ._render import Rendering
from ._render_jsonl import write_jsonl
from ._render_text import write_text
from ._spool import drop_spilled, load_spilled
from ._tree import Tree, build_tree

if TYPE_CHECKING:
    from ._pipeline import Options, Summary

__all__ = ["BYTES_PER_ROW", "FIXED_MEMORY", "SHARDED_FORMATS", "shard_count", "stitch_sharded"]

SHARDED_FORMATS = ("jsonl", "text")
"""Output formats written a shard at a time (each trace's block stands alone)."""

BYTES_PER_ROW = 200
"""Peak memory per line of a shard: scanned rows, the table, the tree,
the sort's temporaries, the renderer's batch, and the heap's slack
(measured ~190 besides the IDs)."""

BYTES_PER_ID = 150
"""Peak memory per distinct trace or span ID of a shard: the strings, the
dicts and lists that number them, and the per-span arrays (measured ~120)."""

FIXED_MEMORY = 64 << 20
"""Memory the process holds whatever the input (interpreter, libraries, the
renderer's and the reader's buffers); a shard gets the rest of the budget."""

_MIN_SHARD_MEMORY = 16 << 20
"""A shard's share when the budget leaves less: a budget that small makes
shards so small that their fixed costs would dominate."""

_NO_ROWS = np.empty(0, dtype=SCAN_DTYPE)

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

_INDEX = np.dtype([("start", "<f8"), ("key", "<i8"), ("at", "<i8"), ("size", "<i8")])
"""Per written trace: start (NaN as +inf), first-appearance key, and its
byte range in its shard's output; a shard's entries in output order."""


def shard_count(rows: int, ids: int, memory: int) -> int:
    """How many shards keep one shard's ``rows`` lines and ``ids`` trace and
    span IDs (counted once per scan segment: at most the distinct ones
    times the segments they appear in) within ``memory``."""
    usable = max(memory - FIXED_MEMORY, _MIN_SHARD_MEMORY)
    return max(1, math.ceil((rows * BYTES_PER_ROW + ids * BYTES_PER_ID) / usable))


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


def _first_keys(scan_index: int, local: I64) -> I64:
    """Where traces first appear, as one sortable int: scan, then index in it."""
    keys: I64 = local | (scan_index << 32)
    return keys


@dataclass(slots=True)
class _Run:
    """What the whole run keeps in memory: per scan and per call, never per
    line or per trace."""

    sources: list[Source]
    scans: list[FileScan]
    """Every scan without its rows and IDs (those are in the shard files)."""
    services: list[str]
    shards: int
    paths: list[str]
    """Spool file per shard; the last one holds the lines without a trace."""
    spool: str
    rows_per_batch: int


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
    """Write the run's traces shard by shard; fills ``summary``.

    JSON lines and text are written a shard at a time and merged. HTML and
    Chrome output (one page each) are written from the traces the filters
    select, chosen a shard at a time: memory holds those, not the run.
    """
    with _open_files_allowed(shards + 32):
        whole_page = options.format not in SHARDED_FORMATS
        run = _split(sources, scanned, options, spool, shards, summary, keep_scans=whole_page)
        clocks = _estimate(run, call_cap(options.memory)) if options.skew_correction else {}
        for name in list(summary.offsets_ms):
            model = clocks.get(name)
            summary.offsets_ms[name] = round(model.offset_s * 1e3, 3) if model else 0.0
            summary.drift_ppm[name] = round(model.drift * 1e6, 3) if model else 0.0
        if whole_page:
            _write_selected(run, [path for _, path in scanned], clocks, options, out, summary)
            return
        _write_shards(run, clocks, options, out, summary, progress)


def _write_shards(
    run: _Run,
    clocks: dict[str, ClockModel],
    options: Options,
    out: IO[bytes],
    summary: Summary,
    progress: Callable[[str, float], None] | None,
) -> None:
    """JSON lines or text: each shard written to the spool with its index,
    the traces merged into ``out``, then the lines without a trace."""
    shards = run.shards
    outputs: list[str] = []
    indexes: list[str] = []
    summary.traces = summary.written_traces = 0
    for s in range(shards):
        if progress is not None:
            progress("writing", s / (shards + 1))
        path = os.path.join(run.spool, f"shard{s}.out")
        outputs.append(path)
        indexes.append(path + ".index")
        traces, written = _write_shard(run, s, clocks, options, path)
        summary.traces += traces
        summary.written_traces += written
        give_back_free_heap()
    _merge(outputs, indexes, out, _merge_chunk(options.memory, shards))
    for path in outputs + indexes:
        os.unlink(path)
    _write_untraced(run, clocks, options, out)
    out.flush()


@contextmanager
def _open_files_allowed(wanted: int) -> Iterator[None]:
    """The soft limit on open files raised to ``wanted`` if the hard one
    allows (the split writes to every shard's file at once), then put back."""
    try:
        import resource  # POSIX only
    except ImportError:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    raised = False
    if soft != resource.RLIM_INFINITY and soft < wanted:
        limit = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
            raised = True
        except (OSError, ValueError):
            pass  # opening the files reports the limit if it is too low
    try:
        yield
    finally:
        if raised:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _split(
    sources: Sequence[Source],
    scanned: Sequence[tuple[FileScan, str | None]],
    options: Options,
    spool: str,
    shards: int,
    summary: Summary,
    keep_scans: bool = False,
) -> _Run:
    """One read of every scan: the run's services, the summary's counts, and
    each scan's rows cut into the shard files (with the trace and span IDs
    they use and where each trace appears first). The scans' own spool
    files are removed unless ``keep_scans``."""
    service_ids: dict[str, int] = {}
    for scan, _ in scanned:
        for v in scan.services:
            service_ids.setdefault(v, len(service_ids))
    services = list(service_ids)
    used = np.zeros(len(services), dtype=bool)
    paths = [os.path.join(spool, f"shard{s}.rows") for s in range(shards + 1)]
    files = [open(p, "wb") for p in paths]  # noqa: SIM115 (closed below)
    stubs: list[FileScan] = []
    records = unattributed = unparseable = 0
    try:
        for i, (scan, spilled) in enumerate(scanned):
            if spilled is not None:
                mapped, traces, spans = load_spilled(spilled)
                rows = np.asarray(mapped)
            else:
                rows, traces, spans = scan.rows, scan.traces, scan.spans
            summary.warnings.extend(scan.warnings)
            stubs.append(
                FileScan(scan.file, scan.data_path, _NO_ROWS, [], [], scan.services, scan.lines)
            )
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
            local_shard = shard_of_traces(traces, shards) if traces else np.zeros(1, np.int32)
            row_shard = np.where(trace >= 0, local_shard[np.maximum(trace, 0)], shards)
            perm = np.argsort(row_shard, kind="stable")
            bounds = np.searchsorted(row_shard[perm], np.arange(shards + 2))
            for s in range(shards + 1):
                part = perm[bounds[s] : bounds[s + 1]]
                if len(part):
                    piece = _compact(i, scan, take_rows(rows, part), traces, spans)
                    pickle.dump(piece, files[s], protocol=pickle.HIGHEST_PROTOCOL)
            scan.traces = scan.spans = []  # the shard files have them now
            del rows, traces, spans, trace, reason, broken, perm, row_shard
            if spilled is not None:
                del mapped
                if not keep_scans:
                    drop_spilled(spilled)
    finally:
        for f in files:
            f.close()
    summary.files = len(sources)
    summary.records = records
    summary.unattributed = unattributed
    summary.unparseable = unparseable
    for k, name in enumerate(services):
        if used[k]:
            summary.offsets_ms[name] = 0.0
            summary.drift_ppm[name] = 0.0
    per_batch = max(1 << 14, (options.memory - FIXED_MEMORY) // BYTES_PER_ROW)
    return _Run(list(sources), stubs, services, shards, paths, spool, per_batch)


_Piece = tuple[int, FileScan, I64]
"""A scan's rows of one shard: the scan's index, the rows with the IDs they
use, and per trace there where it appears first in the run."""


def _compact(
    index: int, scan: FileScan, rows: npt.NDArray[np.void], traces: list[str], spans: list[str]
) -> _Piece:
    """The scan restricted to ``rows``: only the trace and span IDs they use,
    in the scan's order (so that first appearances keep their order)."""
    trace_col = rows["trace"]
    used_t = np.unique(trace_col[trace_col >= 0])
    tnew = np.full(len(traces) + 1, -1, dtype=np.int32)
    tnew[used_t] = np.arange(len(used_t), dtype=np.int32)
    rows["trace"] = tnew[trace_col]
    span_col, parent_col = rows["span"], rows["parent"]
    both = np.concatenate([span_col, parent_col])
    used_s = np.unique(both[both >= 0])
    snew = np.full(len(spans) + 1, -1, dtype=np.int32)
    snew[used_s] = np.arange(len(used_s), dtype=np.int32)
    rows["span"] = snew[span_col]
    rows["parent"] = snew[parent_col]
    piece = FileScan(
        scan.file,
        scan.data_path,
        rows,
        list(map(traces.__getitem__, used_t.tolist())),
        list(map(spans.__getitem__, used_s.tolist())),
        scan.services,
        scan.lines,
    )
    return index, piece, _first_keys(index, used_t.astype(np.int64))


def _load(path: str) -> Iterator[_Piece]:
    with open(path, "rb") as f:
        while True:
            try:
                yield pickle.load(f)
            except EOFError:
                return


def _table(run: _Run, pieces: Iterable[tuple[int, FileScan]]) -> Table:
    """One table of ``pieces`` (scan index, rows of that scan). Every other
    scan takes part as its stub, so that services and line numbers are the run's."""
    scans = list(run.scans)
    for index, piece in pieces:
        scans[index] = piece
    return group(run.sources, scans)


def _shard_table(run: _Run, s: int) -> Table:
    """Shard ``s``'s rows as a table of their own."""
    return _table(run, ((index, piece) for index, piece, _ in _load(run.paths[s])))


@dataclass(slots=True)
class _Shard:
    table: Table
    tree: Tree
    first: I64
    """Per trace of the shard: where it appears first in the run (see :func:`_first_keys`)."""


def _open_shard(run: _Run, s: int) -> _Shard:
    """Shard ``s`` as a table of its own, with its span tree and where each
    of its traces first appears."""
    pieces = list(_load(run.paths[s]))
    table = _table(run, ((index, piece) for index, piece, _ in pieces))
    # group() numbers traces by first appearance over the scans in order, so
    # the earliest key seen for a trace is where it first appears in the run.
    number = {t: k for k, t in enumerate(table.traces)}
    first = np.full(len(table.traces), np.iinfo(np.int64).max, dtype=np.int64)
    for _, piece, keys in pieces:
        at = np.fromiter(map(number.__getitem__, piece.traces), np.int64, len(piece.traces))
        np.minimum.at(first, at, keys)
    del number, pieces
    return _Shard(table, build_tree(table), first)


@dataclass(slots=True)
class _Calls:
    """The run's kept calls, in the order an unsharded run finds them."""

    shard: npt.NDArray[np.int32]
    caller: I64
    """The caller's span index in its shard."""
    svc_caller: npt.NDArray[np.int16]
    svc_callee: npt.NDArray[np.int16]
    send: F64
    receive: F64
    start: F64
    end: F64
    exact: npt.NDArray[np.bool_]


_Columns = tuple[npt.NDArray[np.generic], ...]
"""One shard's calls: shard, callee's trace first key, callee's rank in its
trace, caller span, services, send, receive, start, end, exact, sample key."""
_SAMPLE = -1


def _shard_calls(s: int, sh: _Shard) -> _Columns:
    table, tree = sh.table, sh.tree
    calls = find_calls(table, tree)
    span_trace = table.span_trace.astype(np.int64)
    # A span's rank among its trace's spans (spans are numbered by trace).
    within = np.arange(len(span_trace)) - np.searchsorted(span_trace, span_trace)
    callee_trace = span_trace[calls.callee]
    with_calls, at = np.unique(callee_trace, return_inverse=True)
    sample = _sample_keys([table.traces[t] for t in with_calls.tolist()])[at.ravel()]
    return (
        np.full(len(calls.callee), s, dtype=np.int32),
        sh.first[callee_trace],
        within[calls.callee],
        calls.caller,
        tree.service[calls.caller].astype(np.int16),
        tree.service[calls.callee].astype(np.int16),
        calls.send,
        calls.receive,
        calls.start,
        calls.end,
        calls.exact,
        sample,
    )


def _estimate(run: _Run, cap: int) -> dict[str, ClockModel]:
    """:func:`._correct.estimate` over the shards: calls gathered from each
    (a small fraction of the rows), one estimate for the run.

    Beyond ``cap`` calls, the calls of a deterministic sample of traces are
    kept (those with the smallest keys, see :func:`_sample_keys`), so that
    memory stays bounded however long the run; below it, every call counts.
    """
    parts: list[_Columns] = []
    below = np.iinfo(np.int64).max  # calls of traces with keys below this are kept
    kept = 0
    for s in range(run.shards):
        parts.append(_shard_calls(s, _open_shard(run, s)))
        if below < np.iinfo(np.int64).max or kept + len(parts[-1][0]) > 2 * cap:
            parts, below = _thin(parts, below, cap)
        kept = sum(len(p[0]) for p in parts)
        give_back_free_heap()
    if not parts:
        return {}
    cols = [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]
    del parts
    # An unsharded run finds calls by callee span: traces by first appearance,
    # spans by rank in their trace.
    perm = np.lexsort((cols[2], cols[1]))
    c = _Calls(*(column[perm] for column in (cols[0], *cols[3:-1])))
    del cols, perm
    clocks = _estimate_calls(run, c, c.send, c.receive)
    loose = loose_calls(c.svc_caller, c.svc_callee, c.exact)
    if not len(loose):
        return clocks
    for margin in (100e-6, 30e-6):
        send, receive = _bracket(run, c, loose, clocks, margin)
        clocks = _estimate_calls(run, c, send, receive)
    return clocks


def _thin(parts: list[_Columns], below: int, cap: int) -> tuple[list[_Columns], int]:
    """Keep the calls of traces whose key is under the (lowered) limit: at
    most ``cap`` calls once more than twice that many were seen."""
    every = np.concatenate([p[_SAMPLE] for p in parts])
    every = every[every < below]
    if len(every) > cap:
        below = int(np.partition(every, cap)[cap])
    thinned = []
    for part in parts:
        keep = np.less(part[_SAMPLE], below)
        thinned.append(tuple(column[keep] for column in part))
    return thinned, below


def _estimate_calls(run: _Run, c: _Calls, send: F64, receive: F64) -> dict[str, ClockModel]:
    return estimate_clocks_from_columns(
        c.svc_caller, c.svc_callee, send, receive, c.start, c.end, c.exact,
        run.services, run.services,
    )  # fmt: skip


def _bracket(
    run: _Run, c: _Calls, loose: I64, clocks: dict[str, ClockModel], margin: float
) -> tuple[F64, F64]:
    """As :func:`._correct._bracket`, shard by shard: a call's caller span
    and its records are in one shard."""
    models = model_arrays(clocks, run.services)
    send = c.send.copy()
    receive = c.receive.copy()
    for s in range(run.shards):
        mine = loose[c.shard[loose] == s]
        if not len(mine):
            continue
        table = _shard_table(run, s)
        usable = bracketing_rows(table)
        records = CallerRecords(
            table.rows["span"][usable].astype(np.int64),
            table.rows["ts"][usable],
            apply_clocks(table, clocks)[usable],
        )
        records.tighten(
            mine, c.caller[mine], c.start[mine], c.end[mine],
            c.svc_callee[mine].astype(np.int64), models, margin, send, receive,
        )  # fmt: skip
        del table, records
    return send, receive


def _write_shard(
    run: _Run, s: int, clocks: dict[str, ClockModel], options: Options, path: str
) -> tuple[int, int]:
    """Write shard ``s``'s traces to ``path`` and, to ``path.index``, where
    each went (:data:`_INDEX`). Returns the shard's traces and how many of
    them were selected."""
    sh = _open_shard(run, s)
    table = sh.table
    corrected = apply_clocks(table, clocks)
    ordered = order(table, corrected)
    selected = narrow(table, corrected, ordered, options)
    written = len(table.traces) if selected is None else int(np.count_nonzero(selected))
    with open(path, "wb") as f:
        _write(Rendering(table, sh.tree, corrected, ordered), f, options, run.spool)
    del corrected
    index = _trace_index(path, table, ordered, sh.first, options.format)
    index.tofile(path + ".index")
    return len(table.traces), written


def _write(r: Rendering, out: IO[bytes], options: Options, spool: str, first: bool = True) -> None:
    if options.format == "text":
        write_text(r, out, color=options.color, untraced_heading=first)
    else:
        write_jsonl(r, out, options.jobs, spool)


def _trace_index(
    path: str, table: Table, ordered: Order, first: I64, fmt: str
) -> npt.NDArray[np.void]:
    """Where each trace with lines went in ``path``, in the order written."""
    trace_seq = table.rows["trace"][ordered.rows]
    if not len(trace_seq):
        return np.empty(0, dtype=_INDEX)
    cut = np.flatnonzero(trace_seq[1:] != trace_seq[:-1]) + 1
    first_row = np.concatenate([[0], cut]).astype(np.int64)
    local = trace_seq[first_row].astype(np.int64)
    # One output line per row; a text block also has a blank line and a heading.
    heading = 2 if fmt == "text" else 0
    first_line = first_row + heading * np.arange(len(first_row), dtype=np.int64)
    total = len(trace_seq) + heading * len(first_row)
    offsets = _line_starts(path, np.concatenate([first_line, [total]]))
    index = np.empty(len(local), dtype=_INDEX)
    start = ordered.trace_start[local]
    index["start"] = np.where(np.isnan(start), np.inf, start)
    index["key"] = first[local]
    index["at"] = offsets[:-1]
    index["size"] = np.diff(offsets)
    return index


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


def _merge_chunk(memory: int, shards: int) -> tuple[int, int]:
    """Index entries and output bytes read per shard at a time: an eighth of
    the budget for all shards (a bigger trace is read whole)."""
    share = memory // 8 // max(shards, 1)
    entries = int(min(1 << 16, max(256, share // _INDEX.itemsize)))
    return entries, max(64 << 10, share)


def _merge(outputs: list[str], indexes: list[str], out: IO[bytes], chunk: tuple[int, int]) -> None:
    """The shards' traces in the unsharded order: by start, traces without a
    time last, ties by first appearance.

    Each shard's index is in that order already, and so is its output. A
    chunk of each is read at a time and everything up to the smallest last
    entry among the chunks that do not end their shard is taken: a run of
    consecutive traces per shard, read with one call, then interleaved.
    Memory holds a chunk per shard however many traces there are."""
    entries_cap, bytes_cap = chunk
    # Indexes are read a chunk at a time, not mapped: a mapping holds a file
    # descriptor, and the shards' outputs already hold one each.
    counts = [os.path.getsize(p) // _INDEX.itemsize for p in indexes]
    pos = [0] * len(counts)
    fds = [os.open(p, os.O_RDONLY) for p in outputs]
    try:
        while True:
            heads = {}
            for k, path in enumerate(indexes):
                if pos[k] < counts[k]:
                    at = pos[k] * _INDEX.itemsize
                    head = np.fromfile(path, dtype=_INDEX, count=entries_cap, offset=at)
                    fits = np.searchsorted(np.cumsum(head["size"]), bytes_cap, "right")
                    heads[k] = head[: max(1, int(fits))]
            if not heads:
                break
            bound: tuple[float, int] | None = None
            for k, head in heads.items():
                if pos[k] + len(head) < counts[k]:
                    last = (float(head["start"][-1]), int(head["key"][-1]))
                    bound = last if bound is None or last < bound else bound
            shard_parts, entry_parts, blocks = [], [], {}
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
                shard_parts.append(np.full(len(head), k, dtype=np.int32))
                entry_parts.append(head)
            shard = np.concatenate(shard_parts)
            taken = np.concatenate(entry_parts)
            ranked = np.lexsort((taken["key"], taken["start"]))
            out.write(
                b"".join(
                    blocks[k][at : at + size]
                    for k, at, size in zip(
                        shard[ranked].tolist(),
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


def _write_selected(
    run: _Run,
    spilled: list[str | None],
    clocks: dict[str, ClockModel],
    options: Options,
    out: IO[bytes],
    summary: Summary,
) -> None:
    """HTML or Chrome output of the selected traces: which ones is decided a
    shard at a time (a trace's start and errors need the whole trace), then
    their rows are taken from the scans, in the scans' order, and written as
    an unsharded run of just them would be."""
    chosen: set[str] = set()
    summary.traces = 0
    for s in range(run.shards):
        table = _shard_table(run, s)
        corrected = apply_clocks(table, clocks)
        selected = select_traces(table, corrected, order(table, corrected).trace_start, options)
        assert selected is not None  # only filtered runs come here
        chosen.update(compress(table.traces, selected.tolist()))
        summary.traces += len(table.traces)
        del table, corrected
    service_index = {name: k for k, name in enumerate(run.services)}
    pieces: list[tuple[int, FileScan]] = []
    for i, path in enumerate(spilled):
        if path is None:
            continue
        mapped, traces, spans = load_spilled(path)
        rows = np.asarray(mapped)
        trace = rows["trace"]
        wanted = np.fromiter(map(chosen.__contains__, traces), dtype=bool, count=len(traces))
        keep = np.zeros(len(rows), dtype=bool)
        traced = trace >= 0
        keep[traced] = wanted[trace[traced]]
        if keeps_untraced(options):
            # As without shards: lines without a trace are kept inside the window.
            stub = run.scans[i]
            svc = np.array([service_index[v] for v in stub.services], dtype=np.int64)
            untraced = np.flatnonzero(~traced)
            ts = correct_rows(
                rows["ts"][untraced], svc[rows["svc"][untraced]], run.services, clocks
            )
            keep[untraced[in_window(ts, options)]] = True
        if keep.any():
            kept = take_rows(rows, np.flatnonzero(keep))
            pieces.append((i, _compact(i, run.scans[i], kept, traces, spans)[1]))
        del mapped, rows
        drop_spilled(path)
    table = _table(run, pieces)
    corrected = apply_clocks(table, clocks)
    r = Rendering(table, build_tree(table), corrected, order(table, corrected))
    summary.written_traces = write_table(r, out, options, run.spool)


def _write_untraced(
    run: _Run, clocks: dict[str, ClockModel], options: Options, out: IO[bytes]
) -> None:
    """Lines without a trace, in file and line order, a bounded batch of scans at a time."""
    batch: dict[int, FileScan] = {}
    held = 0
    first = True

    def flush() -> None:
        nonlocal first
        if not batch:
            return
        table = _table(run, batch.items())
        batch.clear()
        corrected = apply_clocks(table, clocks)
        ordered = order(table, corrected)
        narrow(table, corrected, ordered, options)
        tree = build_tree(table)
        out.flush()
        _write(Rendering(table, tree, corrected, ordered), out, options, run.spool, first)
        first = first and not len(ordered.rows)

    for index, piece, _ in _load(run.paths[-1]):
        batch[index] = piece
        held += len(piece.rows)
        if held >= run.rows_per_batch:
            flush()
            held = 0
    flush()
