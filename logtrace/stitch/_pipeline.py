"""The stitcher's stages wired together: what ``logtrace stitch`` runs."""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import IO

import numpy as np

from ._correct import apply_clocks, estimate
from ._group import group
from ._model import SCAN_DTYPE, FileScan
from ._order import order
from ._output import filtered, write_table
from ._parse import BROKEN, NO_TRACE_ID
from ._plan import expand_paths
from ._render import Rendering
from ._scan import SEGMENT_ROWS, input_size, plan_tasks, scan, scan_spilled
from ._shard import (
    BYTES_PER_ROW,
    SHARDED_FORMATS,
    shard_count,
    stitch_sharded,
)
from ._spool import load_spilled
from ._tree import build_tree

__all__ = ["Options", "Summary", "stitch"]

_BYTES_PER_ROW = 160
"""Peak memory per input line while grouping and ordering (the table and
the sort's temporaries), to decide when the table goes to spill files."""


@dataclass(slots=True)
class Options:
    traces: Sequence[str] = ()
    errors_only: bool = False
    services: Sequence[str] = ()
    since: float | None = None
    until: float | None = None
    format: str = "jsonl"
    skew_correction: bool = True
    jobs: int = 1
    memory: int = 512 << 20
    """Memory budget in bytes; the row table spills to disk beyond it."""
    color: bool = False
    tmp_dir: str | None = None
    shards: int = 0
    """Trace shards (JSON lines and text); 0 lets the memory budget decide (see :mod:`._shard`)."""


@dataclass(slots=True)
class Summary:
    """What a run read and did, for the summary line and the exit code."""

    files: int = 0
    records: int = 0
    traces: int = 0
    written_traces: int = 0
    unattributed: int = 0
    unparseable: int = 0
    offsets_ms: dict[str, float] = field(default_factory=dict)
    drift_ppm: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def stitch(
    paths: Sequence[str],
    out: IO[bytes],
    options: Options,
    progress: Callable[[str, float], None] | None = None,
) -> Summary:
    """Read ``paths``, write the stitched traces to ``out``, return the summary."""
    spool = tempfile.mkdtemp(prefix="logtrace-", dir=options.tmp_dir)
    gc_was_enabled = gc.isenabled()
    gc.disable()  # millions of small objects, no cycles among them
    try:
        return _run(paths, out, options, spool, progress)
    finally:
        if gc_was_enabled:
            gc.enable()
        shutil.rmtree(spool, ignore_errors=True)


def _run(
    paths: Sequence[str],
    out: IO[bytes],
    options: Options,
    spool: str,
    progress: Callable[[str, float], None] | None,
) -> Summary:
    sources = expand_paths(paths, spool)
    tasks = plan_tasks(sources, options.jobs)
    forced = options.shards or int(os.environ.get(_SHARDS_ENV) or 0)
    # HTML and Chrome output are one page each: they hold what they show, so
    # shards help them only when a filter leaves part of the run out.
    sharded_format = options.format in SHARDED_FORMATS or filtered(options)
    too_big = input_size(tasks) // _MIN_LINE_BYTES * BYTES_PER_ROW > options.memory
    sharding = sharded_format and (forced > 1 or too_big)
    if sharding:
        options = replace(options, jobs=_jobs_within(options.memory, options.jobs))
    if sharding and options.jobs <= 1:
        # One process, but files still cut into ranges: a range's rows are
        # what a scan holds before they go to disk.
        tasks = plan_tasks(sources, 2)
    done = [0]

    def scanned(scan_result: object) -> None:
        if progress is not None:
            done[0] += 1
            progress("reading", done[0] / max(len(tasks), 1))

    if sharding:
        segment = _segment_rows(options.memory, options.jobs)
        spilled = scan_spilled(tasks, spool, options.jobs, scanned, segment)
        rows_total = sum(_spilled_rows(s, path) for s, path in spilled)
        ids_total = sum(s.spooled_ids + len(s.traces) + len(s.spans) for s, _ in spilled)
        shards = forced or shard_count(rows_total, ids_total, options.memory)
        if shards > 1:
            summary = Summary()
            stitch_sharded(sources, spilled, out, options, spool, shards, summary, progress)
            return summary
        scans = [_unspilled(s, path) for s, path in spilled]
        del spilled
    else:
        scans = scan(tasks, spool, options.jobs, scanned)
    rows_total = sum(len(s.rows) for s in scans)
    spill = spool if rows_total * _BYTES_PER_ROW > options.memory else None
    table = group(sources, scans, spill)
    del scans
    tree = build_tree(table)
    clocks = estimate(table, tree) if options.skew_correction else {}
    corrected = apply_clocks(table, clocks)
    ordered = order(table, corrected)
    if progress is not None:
        progress("writing", 1.0)

    rows = table.rows
    reason = rows["reason"]
    summary = Summary(
        files=len(sources),
        records=len(rows),
        traces=len(table.traces),
        unattributed=int(np.count_nonzero(reason)),
        unparseable=int(np.count_nonzero((reason > NO_TRACE_ID) | ((rows["flags"] & BROKEN) != 0))),
        warnings=list(table.warnings),
    )
    if too_big and not sharded_format:
        summary.warnings.append(
            f"the {options.format} output holds every trace of a run that may not fit "
            "--memory; --errors, --trace, --service, --since or --until keep it to those"
        )
    used = np.zeros(len(table.services), dtype=bool)
    used[rows["svc"]] = True
    for i, name in enumerate(table.services):
        if used[i]:
            model = clocks.get(name)
            summary.offsets_ms[name] = round(model.offset_s * 1e3, 3) if model else 0.0
            summary.drift_ppm[name] = round(model.drift * 1e6, 3) if model else 0.0

    summary.written_traces = write_table(
        Rendering(table, tree, corrected, ordered), out, options, spool
    )
    return summary


_PER_JOB = 48 << 20
"""The least a scan worker is given: its own part of the interpreter, read
buffers, and a segment of rows and IDs not yet written out."""

_SCANNING_PARENT = 32 << 20
"""What the main process holds while the workers scan (the interpreter and
libraries; the scans' rows go to disk)."""


def _jobs_within(memory: int, jobs: int) -> int:
    """Scan workers that fit the budget beside the main process: at least one."""
    return max(1, min(jobs, (memory - _SCANNING_PARENT) // _PER_JOB))


_SCAN_FIXED = 24 << 20
"""What a scan worker holds besides its segment: its own part of the
interpreter (the rest is shared with the parent), its read buffers."""
_BYTES_PER_SCANNED_ROW = 700
"""A segment's memory per row when every line has IDs never seen before: the
row, its IDs in the scanner and as Python strings, their pickle (measured
~680; service logs with 80 lines a trace take a third of that)."""


def _segment_rows(memory: int, jobs: int) -> int:
    """Rows a scan worker holds before it hands them out: what its share of the budget holds."""
    share = max(_PER_JOB, (memory - _SCANNING_PARENT) // max(jobs, 1))
    return max(1 << 14, min(SEGMENT_ROWS, (share - _SCAN_FIXED) // _BYTES_PER_SCANNED_ROW))


_SHARDS_ENV = "LOGTRACE_STITCH_SHARDS"
"""Private: a shard count for JSON lines whatever the budget (tests, measurements)."""

_MIN_LINE_BYTES = 120
"""Fewer bytes per line than this are rare in service logs: the input's size
over it bounds the line count before reading."""


def _spilled_rows(result: FileScan, path: str | None) -> int:
    if path is None:
        return len(result.rows)
    return os.path.getsize(path) // SCAN_DTYPE.itemsize


def _unspilled(result: FileScan, path: str | None) -> FileScan:
    if path is not None:
        result.rows, result.traces, result.spans = load_spilled(path)
    return result


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
