"""Partition: the scanned rows cut by trace, as many partitions as the budget needs.

Every stage after reading works on whole traces, so a run can be cut by
trace: a stable hash of the canonical trace ID picks a row's partition, and
each partition is grouped, treed, corrected, ordered and selected as a run
of its own. Only the clock estimate must see the whole run (see
:mod:`._calls`).

One partition is the normal case: a run that fits the memory budget keeps
its scans in memory and is grouped straight from them, with no spool file.
Beyond the budget, rows go from the scan workers to spool files, are split
once into one spool file per partition (plus one for lines without a trace),
and each partition is read back alone: memory holds one partition, never the
run. No table of the run's traces exists anywhere: a trace's place among
first appearances is the scan it first appears in and its index there, which
its partition alone can tell (:func:`first_keys`).
"""

from __future__ import annotations

import math
import os
import pickle
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from ._memory import take_rows
from ._model import SCAN_DTYPE, FileScan, Summary
from ._spool import drop_spilled, load_spilled
from ._trace_halves import partition_key

if TYPE_CHECKING:
    from ._model import Source

__all__ = [
    "BYTES_PER_ROW",
    "FIXED_MEMORY",
    "Partitions",
    "Piece",
    "compact",
    "first_keys",
    "jobs_within",
    "load_pieces",
    "looks_too_big",
    "open_files_allowed",
    "partition_count",
    "partition_of_traces",
    "segment_rows",
    "split",
    "unspilled",
    "whole",
]

I64 = npt.NDArray[np.int64]

BYTES_PER_ROW = 200
"""Peak memory per line of a partition: scanned rows, the table, the tree,
the sort's temporaries, the renderer's batch, and the heap's slack
(measured ~190 besides the IDs)."""

BYTES_PER_ID = 150
"""Peak memory per distinct trace or span ID of a partition: the strings, the
dicts and lists that number them, and the per-span arrays (measured ~120)."""

FIXED_MEMORY = 64 << 20
"""Memory the process holds whatever the input (interpreter, libraries, the
renderer's and the reader's buffers); a partition gets the rest of the budget."""

MIN_PARTITION_MEMORY = 16 << 20
"""A partition's share when the budget leaves less: a budget that small makes
partitions so small that their fixed costs would dominate."""

MIN_LINE_BYTES = 120
"""Fewer bytes per line than this are rare in service logs: the input's size
over it bounds the line count before reading."""

PER_JOB = 48 << 20
"""The least a scan worker is given: its own part of the interpreter, read
buffers, and a segment of rows and IDs not yet written out."""

SCANNING_PARENT = 32 << 20
"""What the main process holds while the workers scan (the interpreter and
libraries; the scans' rows go to disk)."""

SCAN_FIXED = 24 << 20
"""What a scan worker holds besides its segment: its own part of the
interpreter (the rest is shared with the parent), its read buffers."""

BYTES_PER_SCANNED_ROW = 700
"""A segment's memory per row when every line has IDs never seen before: the
row, its IDs in the scanner and as Python strings, their pickle (measured
~680; service logs with 80 lines a trace take a third of that)."""

_NO_ROWS = np.empty(0, dtype=SCAN_DTYPE)


def looks_too_big(input_bytes: int, memory: int) -> bool:
    """Whether an input of ``input_bytes`` may need more than one partition:
    decided before reading, from the most lines it can hold."""
    return input_bytes // MIN_LINE_BYTES * BYTES_PER_ROW > memory


def partition_count(rows: int, ids: int, memory: int) -> int:
    """How many partitions keep one partition's ``rows`` lines and ``ids``
    trace and span IDs (counted once per scan segment: at most the distinct
    ones times the segments they appear in) within ``memory``."""
    usable = max(memory - FIXED_MEMORY, MIN_PARTITION_MEMORY)
    return max(1, math.ceil((rows * BYTES_PER_ROW + ids * BYTES_PER_ID) / usable))


def jobs_within(memory: int, jobs: int) -> int:
    """Scan workers that fit the budget beside the main process: at least one."""
    return max(1, min(jobs, (memory - SCANNING_PARENT) // PER_JOB))


def segment_rows(memory: int, jobs: int, most: int) -> int:
    """Rows a scan worker holds before it hands them out (at most ``most``):
    what its share of the budget holds."""
    share = max(PER_JOB, (memory - SCANNING_PARENT) // max(jobs, 1))
    return max(1 << 14, min(most, (share - SCAN_FIXED) // BYTES_PER_SCANNED_ROW))


def partition_of_traces(trace_ids: Sequence[str], count: int) -> npt.NDArray[np.int32]:
    """Each trace's partition: a hash of its canonical ID (the same on every
    run), of a 32-digit one's low half (:func:`._trace_halves.partition_key`:
    a 64-bit form of it lands in the same partition)."""
    return np.fromiter(
        (zlib.crc32(partition_key(t).encode("utf-8", "surrogatepass")) % count for t in trace_ids),
        dtype=np.int32,
        count=len(trace_ids),
    )


def first_keys(scan_index: int, local: I64) -> I64:
    """Where traces first appear, as one sortable int: scan, then index in it."""
    keys: I64 = local | (scan_index << 32)
    return keys


@dataclass(slots=True)
class Partitions:
    """The run cut by trace: plain data (lists, strings) that any process can
    be given to read a partition back."""

    sources: list[Source]
    scans: list[FileScan]
    """Every scan: whole when the run is one partition; else without its
    rows and IDs (those are in the partition files)."""
    services: list[str]
    """The run's services, in first-seen order."""
    used: list[str]
    """The services some line belongs to, in the same order."""
    count: int
    paths: list[str] = field(default_factory=list)
    """Spool file per partition, the last one for the lines without a trace
    (none for one partition)."""
    spool: str = ""
    rows_per_batch: int = 0
    """Lines without a trace written at a time."""


class _Tally:
    """The run's services and line counts, a scan at a time."""

    def __init__(self, scans: Sequence[FileScan]) -> None:
        self.ids: dict[str, int] = {}
        for scan in scans:
            for v in scan.services:
                self.ids.setdefault(v, len(self.ids))
        self.used = np.zeros(len(self.ids), dtype=bool)

    def add(self, scan: FileScan, rows: npt.NDArray[np.void], summary: Summary) -> None:
        summary.warnings.extend(scan.warnings)
        summary.count_rows(rows)
        if len(rows):
            vmap = np.array([self.ids[v] for v in scan.services], dtype=np.int64)
            self.used[vmap[np.asarray(rows["svc"])]] = True

    def services(self) -> tuple[list[str], list[str]]:
        names = list(self.ids)
        return names, [n for n, u in zip(names, self.used.tolist(), strict=True) if u]


def whole(
    sources: Sequence[Source], scans: list[FileScan], spool: str, summary: Summary
) -> Partitions:
    """The run as one partition: the scans as they are (in memory), counted
    into ``summary``; ``spool`` takes the table's columns if they do not fit."""
    tally = _Tally(scans)
    for scan in scans:
        tally.add(scan, scan.rows, summary)
    services, used = tally.services()
    return Partitions(list(sources), scans, services, used, 1, spool=spool)


def unspilled(result: FileScan, path: str | None) -> FileScan:
    """A scan whose rows went to a spool file, with them read back into memory."""
    if path is not None:
        result.rows, result.traces, result.spans = load_spilled(path)
    return result


def split(
    sources: Sequence[Source],
    scanned: Sequence[tuple[FileScan, str | None]],
    count: int,
    spool: str,
    memory: int,
    summary: Summary,
    keep_scans: bool = False,
) -> Partitions:
    """One read of every scan: the run's services, the summary's counts, and
    each scan's rows cut into the partition files (with the trace and span
    IDs they use and where each trace appears first). The scans' own spool
    files are removed unless ``keep_scans``."""
    tally = _Tally([scan for scan, _ in scanned])
    paths = [os.path.join(spool, f"part{s}.rows") for s in range(count + 1)]
    files = [open(p, "wb") for p in paths]  # noqa: SIM115 (closed below)
    stubs: list[FileScan] = []
    try:
        for i, (scan, spilled) in enumerate(scanned):
            if spilled is not None:
                mapped, traces, spans = load_spilled(spilled)
                rows = np.asarray(mapped)
            else:
                rows, traces, spans = scan.rows, scan.traces, scan.spans
            tally.add(scan, rows, summary)
            stubs.append(
                FileScan(scan.file, scan.data_path, _NO_ROWS, [], [], scan.services, scan.lines)
            )
            trace = np.asarray(rows["trace"])
            local = partition_of_traces(traces, count) if traces else np.zeros(1, np.int32)
            row_part = np.where(trace >= 0, local[np.maximum(trace, 0)], count)
            perm = np.argsort(row_part, kind="stable")
            bounds = np.searchsorted(row_part[perm], np.arange(count + 2))
            for s in range(count + 1):
                part = perm[bounds[s] : bounds[s + 1]]
                if len(part):
                    piece = compact(i, scan, take_rows(rows, part), traces, spans)
                    pickle.dump(piece, files[s], protocol=pickle.HIGHEST_PROTOCOL)
            scan.traces = scan.spans = []  # the partition files have them now
            del rows, traces, spans, trace, perm, row_part
            if spilled is not None:
                del mapped
                if not keep_scans:
                    drop_spilled(spilled)
    finally:
        for f in files:
            f.close()
    services, used = tally.services()
    per_batch = max(1 << 14, (memory - FIXED_MEMORY) // BYTES_PER_ROW)
    return Partitions(list(sources), stubs, services, used, count, paths, spool, per_batch)


Piece = tuple[int, FileScan, I64]
"""A scan's rows of one partition: the scan's index, the rows with the IDs
they use, and per trace there where it appears first in the run."""


def compact(
    index: int, scan: FileScan, rows: npt.NDArray[np.void], traces: list[str], spans: list[str]
) -> Piece:
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
    return index, piece, first_keys(index, used_t.astype(np.int64))


def load_pieces(path: str) -> Iterator[Piece]:
    """A partition file's pieces, in the order the scans were split."""
    with open(path, "rb") as f:
        while True:
            try:
                yield pickle.load(f)
            except EOFError:
                return


@contextmanager
def open_files_allowed(wanted: int) -> Iterator[None]:
    """The soft limit on open files raised to ``wanted`` if the hard one
    allows (the split writes to every partition's file at once, the merge
    reads them all), then put back."""
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
