"""The stitcher's one orchestrator: what ``logtrace stitch`` runs.

plan the inputs -> scan (in parallel, bounded) -> partition by trace ->
clocks (one collector fed by every partition) -> per partition: group,
tree, correct, order, select -> write. A run that fits the memory budget is
a run of one partition, held in memory and written straight to the output;
a bigger one differs only in its partition count (see docs/architecture.md).
"""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import IO, NamedTuple

import numpy as np
import numpy.typing as npt

from ._calls import (
    CallCollector,
    call_cap,
    note_clocks,
    partition_calls,
    solve_clocks,
)
from ._clocks import ClockModel
from ._containment import LinkDecider, Links
from ._containment_evidence import containment_evidence
from ._evidence import EvidenceCollector, gap_offsets
from ._inferred_calls import solve_with_links
from ._marks import count_marks
from ._memory import give_back_free_heap
from ._model import SCAN_DTYPE, FileScan, Options, Outcomes, Rendering, Summary, Table, Tree
from ._outcomes import merge_outcomes, outcomes
from ._partition import (
    Partitions,
    jobs_within,
    load_pieces,
    looks_too_big,
    open_files_allowed,
    partition_count,
    segment_rows,
    split,
    unspilled,
    whole,
)
from ._plan import expand_paths
from ._scan import SEGMENT_ROWS, input_size, plan_tasks, scan, scan_spilled
from ._select import filtered, gather_chosen
from ._sibling_links import recheck_siblings
from ._stage import Grouped, choose, open_partition, open_table, stage, table_of
from ._tree import build_tree
from ._write import MERGED_FORMATS, frame, merge, merge_chunk, write, write_part

__all__ = ["PARTITIONS_ENV", "PartitionResult", "partition_task", "stitch"]

Progress = Callable[[str, float], None]

PARTITIONS_ENV = "LOGTRACE_STITCH_PARTITIONS"
"""A partition count whatever the budget (tests, measurements)."""

_NO_KEYS = np.empty(0, dtype=np.int64)
"""First-appearance keys of a partition written alone (never merged)."""


def stitch(
    paths: Sequence[str],
    out: IO[bytes],
    options: Options | None = None,
    progress: Progress | None = None,
) -> Summary:
    """Read ``paths``, write the stitched traces to ``out``, return the summary."""
    options = options or Options()
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
    progress: Progress | None,
) -> Summary:
    # Plan: which inputs, cut into which scan tasks, and whether their rows
    # may need more than one partition (then they go to disk as they are read).
    skipped: list[str] = []
    sources = expand_paths(paths, spool, None if options.strict else skipped)
    tasks = plan_tasks(sources, options.jobs)
    forced = options.partitions or int(os.environ.get(PARTITIONS_ENV) or 0)
    # HTML and Chrome output are one page each: they hold what they show, so
    # partitions help them only when a filter leaves part of the run out.
    page = options.format not in MERGED_FORMATS
    partitionable = not page or filtered(options)
    too_big = looks_too_big(input_size(tasks), options.memory)
    spilling = partitionable and (forced > 1 or too_big)
    if spilling:
        options = replace(options, jobs=jobs_within(options.memory, options.jobs))
        if options.jobs <= 1:
            # One process, but files still cut into ranges: a range's rows are
            # what a scan holds before they go to disk.
            tasks = plan_tasks(sources, 2)
    done = [0]

    def scanned(scan_result: object) -> None:
        if progress is not None:
            done[0] += 1
            progress("reading", done[0] / max(len(tasks), 1))

    # Scan, and partition by trace.
    summary = Summary(files=len(sources), skipped=skipped)
    if not spilling:
        parts = whole(sources, scan(tasks, spool, options.jobs, scanned), spool, summary)
        if too_big and not partitionable:
            summary.warnings.append(_PAGE_WARNING.format(options.format))
        return _stitch(parts, [], out, options, summary, progress)
    segment = segment_rows(options.memory, options.jobs, SEGMENT_ROWS)
    segments = scan_spilled(tasks, spool, options.jobs, scanned, segment)
    rows = sum(_spilled_rows(s, path) for s, path in segments)
    ids = sum(s.spooled_ids + len(s.traces) + len(s.spans) for s, _ in segments)
    count = forced or partition_count(rows, ids, options.memory)
    if count == 1:
        parts = whole(sources, [unspilled(s, path) for s, path in segments], spool, summary)
        del segments
        return _stitch(parts, [], out, options, summary, progress)
    # The split writes to every partition's file at once, the merge reads them all.
    with open_files_allowed(count + 32):
        spilled = [path for _, path in segments]
        parts = split(sources, segments, count, spool, options.memory, summary, page)
        del segments
        return _stitch(parts, spilled, out, options, summary, progress)


_PAGE_WARNING = (
    "the {} output holds every trace of a run that may not fit "
    "--memory; --errors, --trace, --service, --since or --until keep it to those"
)


def _stitch(
    parts: Partitions,
    spilled: list[str | None],
    out: IO[bytes],
    options: Options,
    summary: Summary,
    progress: Progress | None,
) -> Summary:
    """Clocks, the per-partition stage and the write, for any partition count."""
    # One partition is grouped once and held; more are read back as needed.
    held = open_partition(parts, 0, options.memory) if parts.count == 1 else None
    clocks: dict[str, ClockModel] = {}
    if options.skew_correction:
        clocks, links = _clocks(parts, held, options)
        options = replace(options, callers=links.callers, trimmed=links.trimmed)
        if links.note:
            summary.notes.append(links.note)
    note_clocks(summary, parts.used, clocks)
    if held is not None:
        if progress is not None:
            progress("writing", 1.0)
        staged = stage(held, clocks, options)
        del held
        summary.traces, summary.written_traces = staged.traces, staged.selected
        _note(summary, *_facts(staged.rendering, options))
        write(staged.rendering, out, options, parts.spool)
    elif options.format not in MERGED_FORMATS:
        _write_page(parts, spilled, clocks, options, out, summary)
    else:
        _write_merged(parts, clocks, options, out, summary, progress)
    return summary


def _clocks(
    parts: Partitions, held: Grouped | None, options: Options
) -> tuple[dict[str, ClockModel], Links]:
    """Every partition's calls into one collector, then one solution; and
    what containment says of spans whose logs name no parent (the links
    whose calls are inferred, and a note for the summary), rechecked
    for links between parallel siblings (:mod:`._sibling_links`)."""
    cap = None if held is not None else call_cap(options.memory)
    collector = CallCollector(cap)
    evidence = EvidenceCollector()
    if held is not None:
        collector.add(partition_calls(0, held.table, held.tree, held.first, False))
        evidence.add(containment_evidence(held.table, held.tree))
    else:
        for s in range(parts.count):
            grouped = open_partition(parts, s, options.memory)
            collector.add(
                partition_calls(s, grouped.table, grouped.tree, grouped.first, collector.many)
            )
            evidence.add(containment_evidence(grouped.table, grouped.tree))
            del grouped
            give_back_free_heap()
    found = evidence.evidence()
    decide = LinkDecider(found, parts.services)
    links = decide()

    def table(s: int) -> Table:
        return held.table if held is not None else open_table(parts, s)

    if not links:
        gaps = gap_offsets(found, parts.services)
        del found, decide
        clocks = solve_clocks(collector, parts.services, parts.count, table, gaps=gaps)
        return clocks, links
    del collector

    def grouped_at(s: int) -> tuple[Table, Tree, npt.NDArray[np.int64]]:
        g = held if held is not None else open_partition(parts, s, options.memory)
        return g.table, g.tree, g.first

    def solve(chosen: Links) -> dict[str, ClockModel]:
        return solve_with_links(chosen, parts.services, parts.count, grouped_at, table, cap)

    links, clocks = recheck_siblings(links, decide, solve, decide.fits_at)
    return clocks, links


class PartitionResult(NamedTuple):
    """What a partition's task returns to the driver: plain, picklable data."""

    traces: int
    selected: int
    """Traces the filters selected."""
    path: str
    """The partition's output (with its ``.index``)."""
    marks: dict[str, int]
    """Marked spans of the selected traces (:func:`._marks.count_marks`)."""
    outcomes: Outcomes | None
    """The selected traces' outcomes (``Options.summary`` only), merged by the driver."""


def partition_task(
    parts: Partitions, s: int, clocks: dict[str, ClockModel], options: Options
) -> PartitionResult:
    """One partition's whole per-partition stage and its write, from plain
    data to a file: what an executor (this process, a pool, a cluster) runs."""
    staged = stage(open_partition(parts, s, options.memory), clocks, options)
    path = os.path.join(parts.spool, f"part{s}.out")
    write_part(staged.rendering, staged.first, path, options, parts.spool)
    return PartitionResult(staged.traces, staged.selected, path, *_facts(staged.rendering, options))


def _facts(r: Rendering, options: Options) -> tuple[dict[str, int], Outcomes | None]:
    """A partition's marked spans and (when asked for) outcomes."""
    return count_marks(r), outcomes(r) if options.summary else None


def _note(summary: Summary, marks: dict[str, int], found: Outcomes | None) -> None:
    """Add a partition's facts to the run's summary."""
    for name, n in marks.items():
        summary.marks[name] = summary.marks.get(name, 0) + n
    if found is not None:
        summary.outcomes = merge_outcomes(
            [found] if summary.outcomes is None else [summary.outcomes, found]
        )


def _write_merged(
    parts: Partitions,
    clocks: dict[str, ClockModel],
    options: Options,
    out: IO[bytes],
    summary: Summary,
    progress: Progress | None,
) -> None:
    """JSON lines or text: each partition written to the spool with its
    index, the traces merged into ``out``, then the lines without a trace."""
    outputs: list[str] = []
    for s in range(parts.count):
        if progress is not None:
            progress("writing", s / (parts.count + 1))
        result = partition_task(parts, s, clocks, options)
        summary.traces += result.traces
        summary.written_traces += result.selected
        _note(summary, result.marks, result.outcomes)
        outputs.append(result.path)
        give_back_free_heap()
    prefix, sep, suffix = frame(options.format)
    out.write(prefix)
    merge(outputs, out, merge_chunk(options.memory, parts.count), sep)
    if options.format != "none":
        _write_untraced(parts, clocks, options, out)
    out.write(suffix)
    out.flush()


def _write_untraced(
    parts: Partitions, clocks: dict[str, ClockModel], options: Options, out: IO[bytes]
) -> None:
    """Lines without a trace, in file and line order, a bounded batch of scans at a time."""
    batch: dict[int, FileScan] = {}
    held = 0
    first = True

    def flush() -> None:
        nonlocal first
        if not batch:
            return
        table = table_of(parts, batch.items())
        batch.clear()
        staged = stage(Grouped(table, build_tree(table), _NO_KEYS), clocks, options)
        out.flush()
        write(staged.rendering, out, options, parts.spool, untraced_heading=first, framed=False)
        first = first and not len(staged.rendering.order.rows)

    for index, piece, _ in load_pieces(parts.paths[-1]):
        batch[index] = piece
        held += len(piece.rows)
        if held >= parts.rows_per_batch:
            flush()
            held = 0
    flush()


def _write_page(
    parts: Partitions,
    spilled: list[str | None],
    clocks: dict[str, ClockModel],
    options: Options,
    out: IO[bytes],
    summary: Summary,
) -> None:
    """HTML or Chrome output of a filtered run of many partitions: which
    traces is decided a partition at a time (a trace's start and errors need
    the whole trace), then their rows are gathered from the scans into one
    partition, written as a run of just them would be."""
    chosen: set[str] = set()
    for s in range(parts.count):
        table = open_table(parts, s)
        chosen.update(choose(table, clocks, options))
        summary.traces += len(table.traces)
        del table
    table = table_of(parts, gather_chosen(parts, spilled, chosen, clocks, options))
    staged = stage(Grouped(table, build_tree(table), _NO_KEYS), clocks, options)
    summary.written_traces = staged.selected
    _note(summary, *_facts(staged.rendering, options))
    write(staged.rendering, out, options, parts.spool)


def _spilled_rows(result: FileScan, path: str | None) -> int:
    if path is None:
        return len(result.rows)
    return os.path.getsize(path) // SCAN_DTYPE.itemsize
