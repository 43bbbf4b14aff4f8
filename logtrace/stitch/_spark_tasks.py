"""What a Spark task runs for :mod:`logtrace.stitch.spark`: the local engine's stages on plain data.

This module is the one place the Spark engine calls the local engine's
stages, and it imports no pyspark: every function takes and returns plain,
picklable data (numpy arrays, dataclasses, bytes), so that a Python worker
of any executor runs it.

1. :func:`scan_split` scans one scan task (a file, a byte range of a local
   file, or a file's content as Spark read it) with the local scanner and
   cuts its rows by trace partition (the local partitioner's hash), each
   piece with the bytes of its lines: after the shuffle, a partition holds
   everything its traces need, wherever it runs.
2. :func:`received` lays a partition's pieces out as the local engine's
   partition files, so that :func:`._stage.open_partition` groups it.
3. :func:`calls_of` and :func:`bracket_of` are the clock estimate's
   per-partition halves (:func:`._calls.partition_calls`,
   :func:`._calls.bracket_partition`); :func:`blocks_of` is the rest of the
   per-partition stage (:func:`._stage.stage` and the jsonl writer).
"""

from __future__ import annotations

import io
import mmap
import os
import pickle
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from ._calls import (
    CallCollector,
    CallColumns,
    KeptCalls,
    bracket_partition,
    call_cap,
    note_clocks,
    partition_calls,
    solve_clocks,
)
from ._clocks import ClockModel
from ._containment import LinkDecider
from ._containment_evidence import containment_evidence
from ._correct import correct_rows
from ._evidence import Evidence, EvidenceCollector, gap_offsets
from ._inferred_calls import round_calls, solve_with_links
from ._link_rules import Rule
from ._memory import take_rows
from ._model import FileScan, Options, Source, Summary
from ._partition import Partitions, compact, partition_of_traces
from ._plan import InputError, ScanTask, expand_paths, plan_tasks, rotation_order
from ._scan import input_size, scan_task
from ._select import filtered, in_window, keeps_untraced
from ._sibling_links import recheck_siblings
from ._stage import choose, open_partition, open_table, stage
from ._write import INDEX, merge, merge_chunk, write

__all__ = [
    "BLOCK_LINES",
    "Block",
    "CallCollector",
    "EvidenceCollector",
    "InputError",
    "Layout",
    "LinkDecider",
    "Options",
    "Received",
    "Run",
    "ScanFacts",
    "Shipped",
    "Summary",
    "blocks_of",
    "bracket_of",
    "call_cap",
    "calls_of",
    "chosen_of",
    "filtered",
    "gap_offsets",
    "gather_facts",
    "inferred_calls_of",
    "merge_blocks",
    "note_clocks",
    "one_per_scan",
    "plan_local",
    "plan_named",
    "received",
    "recheck_siblings",
    "scan_split",
    "solve_clocks",
    "solve_with_links",
    "write_gathered",
]

I64 = npt.NDArray[np.int64]

BLOCK_LINES = 1 << 14
"""Lines without a trace per output block (a trace is always one block)."""


@dataclass(slots=True)
class Layout:
    """How a run is cut into Spark partitions: ``count`` by trace (the local
    partitioner's hash), then ``untraced`` for the lines without a trace (by
    ranges of scans, so that they stay in file and line order), then one
    that gathers what each scan tells the driver."""

    sources: list[Source]
    scans: int
    count: int
    untraced: int

    @property
    def facts(self) -> int:
        """The partition of the scans' facts."""
        return self.count + self.untraced

    @property
    def total(self) -> int:
        return self.count + self.untraced + 1

    def untraced_partition(self, scan: int) -> int:
        return self.count + scan * self.untraced // max(self.scans, 1)


@dataclass(slots=True)
class ScanFacts:
    """What the driver learns from one scan: its stub (services, line count),
    its line counts and warnings, and the services its lines belong to."""

    index: int
    stub: FileScan
    summary: Summary
    used: list[str]


Shipped = tuple[int, FileScan, I64, bytes]
"""A piece on its way to its partition: scan index, rows (``off`` into the
bytes that follow) with the IDs they use, first-appearance keys, line bytes."""


def scan_split(index: int, task: ScanTask, layout: Layout, spool: str) -> Iterator[tuple[int, Any]]:
    """Scan ``task``, the run's scan ``index`` (its path readable here;
    ``spool`` takes a compressed file's content) and yield ``(partition,
    Shipped)`` per piece, then ``(layout.facts, ScanFacts)``."""
    scan = scan_task(task, spool)
    rows, traces, spans = scan.rows, scan.traces, scan.spans
    summary = Summary()
    summary.warnings.extend(scan.warnings)
    summary.count_rows(rows)
    used = sorted({scan.services[v] for v in np.unique(rows["svc"]).tolist()})
    if len(rows):
        trace = rows["trace"]
        local = partition_of_traces(traces, layout.count) if traces else np.zeros(1, np.int32)
        row_part = np.where(
            trace >= 0, local[np.maximum(trace, 0)], layout.untraced_partition(index)
        )
        perm = np.argsort(row_part, kind="stable")
        cuts = np.flatnonzero(np.diff(row_part[perm])) + 1
        with (
            open(scan.data_path, "rb") as f,
            mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m,
        ):
            for part in np.split(perm, cuts):
                kept = take_rows(rows, part.astype(np.int64))
                blob = _lines(m, kept)
                _, piece, keys = compact(index, scan, kept, traces, spans)
                piece.data_path = ""
                yield int(row_part[part[0]]), (index, piece, keys, blob)
    stub = FileScan(scan.file, "", rows[:0].copy(), [], [], scan.services, scan.lines)
    yield layout.facts, ScanFacts(index, stub, summary, used)


def _lines(data: mmap.mmap | bytes, rows: npt.NDArray[np.void]) -> bytes:
    """The bytes of ``rows``' lines, one after the other; ``rows["off"]``
    rewritten to point into them."""
    off = rows["off"].tolist()
    size = rows["len"].tolist()
    blob = b"".join([data[o : o + n] for o, n in zip(off, size, strict=True)])
    starts = np.zeros(len(rows), dtype=np.int64)
    np.cumsum(rows["len"][:-1], out=starts[1:])
    rows["off"] = starts
    return blob


@dataclass(slots=True)
class Received:
    """A partition laid out as the local engine's files: :attr:`parts` for
    :func:`._stage.open_partition` (partition 0 of it)."""

    parts: Partitions
    pieces: list[tuple[int, FileScan, I64]] = field(default_factory=list)


def received(items: Iterable[Shipped], run: Run, workdir: str) -> Received:
    """Write a partition's pieces (in any order) where the local engine's
    stages read them: the line bytes of each file into one data file, the
    pieces in scan order into a partition file."""
    ordered = sorted(items, key=lambda shipped: shipped[0])
    data: dict[int, str] = {}
    pieces: list[tuple[int, FileScan, I64]] = []
    for index, piece, keys, blob in ordered:
        path = data.setdefault(piece.file, os.path.join(workdir, f"data{piece.file}"))
        with open(path, "ab") as out:
            base = out.tell()
            out.write(blob or b" ")  # an empty file cannot be mapped
        if base:
            piece.rows["off"] += base
        piece.data_path = path
        pieces.append((index, piece, keys))
    path = os.path.join(workdir, "partition.rows")
    with open(path, "wb") as f:
        for piece_of_scan in pieces:
            pickle.dump(piece_of_scan, f, protocol=pickle.HIGHEST_PROTOCOL)
    scans = [replace(stub, data_path=data.get(stub.file, "")) for stub in run.stubs]
    # A count above one: the partition is read back from its file.
    parts = Partitions(run.layout.sources, scans, run.services, run.used, 2, [path], workdir)
    return Received(parts, pieces)


def calls_of(r: Received, s: int, memory: int) -> tuple[int, CallColumns, Evidence]:
    """Partition ``s``'s traces and calls, for the run's collector, and what
    containment says of its spans without parents (:mod:`._containment`)."""
    grouped = open_partition(r.parts, 0, memory)
    calls = partition_calls(s, grouped.table, grouped.tree, grouped.first, True)
    return len(grouped.table.traces), calls, containment_evidence(grouped.table, grouped.tree)


def inferred_calls_of(
    r: Received,
    s: int,
    memory: int,
    clocks: dict[str, ClockModel],
    callers: dict[tuple[str, str], Rule],
    margin: float | None,
    doubt_s: float,
) -> CallColumns:
    """Partition ``s``'s calls, logged and inferred, for one round of
    :func:`._inferred_calls.solve_with_links`."""
    g = open_partition(r.parts, 0, memory)
    return round_calls(s, g.table, g.tree, g.first, clocks, callers, margin, doubt_s, True)


def bracket_of(
    r: Received,
    c: KeptCalls,
    mine: I64,
    before: npt.NDArray[np.float64],
    after: npt.NDArray[np.float64],
) -> tuple[I64, npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """One bracketing round of calls ``mine`` (all of this partition): their
    tightened send and receive bounds (:func:`._calls.bracket_partition`)."""
    send, receive = c.send.copy(), c.receive.copy()
    bracket_partition(open_table(r.parts, 0), c, mine, before, after, send, receive)
    return mine, send[mine], receive[mine]


Block = tuple[int, float, int, int, int, str | None, bytes]
"""Output lines in the merged order's terms: group (0 a trace, 1 lines
without one), trace start (+inf for none), first appearance, partition,
sequence in it, trace ID, and the JSON lines."""


def blocks_of(
    r: Received, s: int, clocks: dict[str, ClockModel], options: Options
) -> tuple[int, int, list[Block]]:
    """Partition ``s`` corrected, ordered, selected and written as jsonl:
    its traces, the selected ones, and the output in blocks."""
    staged = stage(open_partition(r.parts, 0, options.memory), clocks, options)
    rendering = staged.rendering
    out = io.BytesIO()
    write(rendering, out, replace(options, format="jsonl", jobs=1), r.parts.spool)
    text = out.getvalue()
    del out
    rows = rendering.order.rows
    trace_seq = rendering.table.rows["trace"][rows]
    ends = np.flatnonzero(np.frombuffer(text, dtype=np.uint8) == 10) + 1
    if len(ends) != len(rows):
        raise RuntimeError(f"partition {s}: {len(ends)} lines written for {len(rows)} rows")
    traced = rendering.order.n_traced
    cut = np.flatnonzero(trace_seq[1:traced] != trace_seq[: max(traced - 1, 0)]) + 1
    firsts = [0, *cut.tolist()] if traced else []
    bounds = [*firsts, *range(traced, len(rows), BLOCK_LINES), len(rows)]
    starts = np.concatenate([[0], ends])
    blocks: list[Block] = []
    traces = rendering.table.traces
    start_of = rendering.order.trace_start
    for seq, (lo, hi) in enumerate(pairwise(bounds)):
        chunk = text[int(starts[lo]) : int(starts[hi])]
        if lo < traced:
            t = int(trace_seq[lo])
            start = float(start_of[t])
            key = int(staged.first[t])
            blocks.append((0, start if start == start else np.inf, key, s, seq, traces[t], chunk))
        else:
            blocks.append((1, 0.0, 0, s, seq, None, chunk))
    return staged.traces, staged.selected, blocks


def chosen_of(
    r: Received, untraced: bool, clocks: dict[str, ClockModel], options: Options
) -> list[Shipped]:
    """The pieces of a filtered run's chosen traces in this partition (or,
    of a partition of lines without a trace, those the time window keeps),
    with their line bytes: what the driver gathers into one page."""
    if untraced:
        if not keeps_untraced(options):
            return []
        chosen: set[str] = set()
        service_index = {name: k for k, name in enumerate(r.parts.services)}
    else:
        chosen = set(choose(open_table(r.parts, 0), clocks, options))
    shipped: list[Shipped] = []
    for index, piece, keys in r.pieces:
        rows = piece.rows
        if untraced:
            svc = np.array([service_index[v] for v in piece.services], dtype=np.int64)
            ts = correct_rows(rows["ts"], svc[rows["svc"]], r.parts.services, clocks)
            keep = in_window(ts, options)
        else:
            wanted = np.fromiter(map(chosen.__contains__, piece.traces), bool, len(piece.traces))
            keep = wanted[rows["trace"]]
        if not keep.any():
            continue
        kept = take_rows(rows, np.flatnonzero(keep))
        with (
            open(piece.data_path, "rb") as f,
            mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m,
        ):
            blob = _lines(m, kept)
        _, small, _ = compact(index, piece, kept, piece.traces, piece.spans)
        small.data_path = ""
        first = dict(zip(piece.traces, keys.tolist(), strict=True))
        keys_kept = np.array([first[t] for t in small.traces], dtype=np.int64)
        shipped.append((index, small, keys_kept, blob))
    return shipped


def one_per_scan(shipped: Iterable[Shipped]) -> list[Shipped]:
    """Pieces gathered from several partitions as one piece per scan (what a
    partition's table is built from): rows in line order, traces in the
    order they first appear (their keys), span IDs in the pieces' order."""
    by_scan: dict[int, list[Shipped]] = {}
    for item in shipped:
        by_scan.setdefault(item[0], []).append(item)
    return [
        items[0] if len(items) == 1 else _joined(index, items)
        for index, items in sorted(by_scan.items())
    ]


def _joined(index: int, items: list[Shipped]) -> Shipped:
    traces: list[str] = []
    spans: dict[str, int] = {}
    rows_of, keys_of, blobs = [], [], []
    at = 0
    for _, piece, keys, blob in items:
        rows = piece.rows.copy()
        rows["trace"] += np.where(rows["trace"] >= 0, len(traces), 0).astype(np.int32)
        names = [spans.setdefault(name, len(spans)) for name in piece.spans]
        span_map = np.array(names or [0], dtype=np.int32)
        for name in ("span", "parent"):
            column = rows[name]
            has = column >= 0
            column[has] = span_map[column[has]]
        rows["off"] += at
        at += len(blob)
        traces.extend(piece.traces)
        rows_of.append(rows)
        keys_of.append(keys)
        blobs.append(blob)
    rows = np.concatenate(rows_of)
    rows = rows[np.argsort(rows["line"], kind="stable")]
    keys = np.concatenate(keys_of)
    by_key = np.argsort(keys, kind="stable")
    rank = np.empty(len(by_key), dtype=np.int32)
    rank[by_key] = np.arange(len(by_key), dtype=np.int32)
    has = rows["trace"] >= 0
    rows["trace"][has] = rank[rows["trace"][has]]
    first = items[0][1]
    piece = replace(
        first, rows=rows, traces=[traces[k] for k in by_key.tolist()], spans=list(spans)
    )
    return index, piece, keys[by_key], b"".join(blobs)


@dataclass(slots=True)
class Run:
    """What every partition's task is given (broadcast): the layout, every
    scan's stub (services, line count) in scan order, the run's services."""

    layout: Layout
    stubs: list[FileScan]
    services: list[str]
    used: list[str]


def plan_local(
    paths: Sequence[str], spool: str, options: Options
) -> tuple[list[Source], list[ScanTask], int, list[str]]:
    """Local paths planned as the local engine plans them (same names, same
    order, large plain files cut into line-aligned byte ranges): sources,
    scan tasks, input size, and the inputs skipped."""
    skipped: list[str] = []
    sources = expand_paths(paths, spool, None if options.strict else skipped)
    tasks = plan_tasks(sources, 2)
    return sources, tasks, input_size(tasks), skipped


def plan_named(names: Iterable[str]) -> list[Source]:
    """Files Spark listed, by their URIs, each log's rotations oldest first."""
    return rotation_order([Source(name, name) for name in sorted(set(names))])


def gather_facts(
    facts: Iterable[ScanFacts], layout: Layout, skipped: list[str]
) -> tuple[Run, Summary]:
    """The run's stubs, services and line counts from every scan's facts."""
    ordered = sorted(facts, key=lambda f: f.index)
    if [f.index for f in ordered] != list(range(layout.scans)):
        raise RuntimeError("some scans told nothing (a file listed twice, or a task lost)")
    summary = Summary(files=len(layout.sources), skipped=skipped)
    services: dict[str, None] = {}
    used: set[str] = set()
    for f in ordered:
        services.update(dict.fromkeys(f.stub.services))
        used.update(f.used)
        summary.records += f.summary.records
        summary.unattributed += f.summary.unattributed
        summary.unparseable += f.summary.unparseable
        summary.warnings.extend(f.summary.warnings)
    names = list(services)
    run = Run(layout, [f.stub for f in ordered], names, [n for n in names if n in used])
    return run, summary


def write_gathered(
    shipped: Iterable[Shipped],
    run: Run,
    workdir: str,
    clocks: dict[str, ClockModel],
    options: Options,
    out: IO[bytes],
) -> int:
    """A filtered run's chosen pieces as one partition, written in
    ``options.format`` as the local engine writes one; returns the traces written."""
    r = received(one_per_scan(shipped), run, workdir)
    staged = stage(open_partition(r.parts, 0, options.memory), clocks, options)
    write(staged.rendering, out, replace(options, jobs=1), workdir)
    return staged.selected


def merge_blocks(blocks: Iterable[Block], out: IO[bytes], workdir: str, memory: int) -> None:
    """The jsonl output in the local engine's order, from every partition's
    blocks in partition order: each trace partition's traces go to a spool
    file with an index, merged by the local engine's merge as soon as the
    lines without a trace begin; those follow as they come."""
    outputs: list[str] = []
    entries: list[tuple[float, int, int, int]] = []
    part: IO[bytes] | None = None
    at = 0
    merged = False

    def finish() -> None:
        nonlocal part
        if part is not None:
            part.close()
            np.array(entries, dtype=INDEX).tofile(outputs[-1] + ".index")
            part = None

    for group, start, key, s, _, _, lines in blocks:
        if group == 0:
            if part is None or not outputs[-1].endswith(f"part{s}.out"):
                finish()
                outputs.append(os.path.join(workdir, f"part{s}.out"))
                part = open(outputs[-1], "wb")  # noqa: SIM115 (closed in finish())
                entries.clear()
                at = 0
            part.write(lines)
            entries.append((start, key, at, len(lines)))
            at += len(lines)
            continue
        if not merged:
            finish()
            merge(outputs, out, merge_chunk(memory, len(outputs)))
            merged = True
        out.write(lines)
    if not merged:
        finish()
        merge(outputs, out, merge_chunk(memory, len(outputs)))
    out.flush()
