"""Stitch on Apache Spark: the local engine's stages, run by Spark's executors.

::

    from pyspark.sql import SparkSession
    from logtrace.stitch import Options
    from logtrace.stitch.spark import stitch

    spark = SparkSession.builder.getOrCreate()
    result = stitch(spark, ["s3a://incident/logs/"], Options(format="jsonl"))
    result.write_parts("s3a://incident/stitched/")   # part files, anywhere Spark writes
    with open("incident.jsonl", "wb") as out:        # or one file, in the local engine's order
        result.write_merged(out)

The stages (docs/scale-out.md): every file (or line-aligned byte range of a
local file) is scanned by one task with the project's scanner, its rows cut
by the local partitioner's hash of the trace ID and shuffled with their
lines' bytes; each trace partition gives its calls to one collector on the
driver, which solves the clocks (its bracketing rounds run on the
partitions); then each partition runs the local per-partition stage and
writes jsonl. The output is byte for byte the local engine's.

This module needs pyspark (the ``spark`` extra); nothing else in logtrace
imports it.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from ._spark_tasks import (
    CallCollector,
    EvidenceCollector,
    InputError,
    Layout,
    LinkDecider,
    Options,
    Received,
    Run,
    ScanFacts,
    Summary,
    blocks_of,
    bracket_of,
    call_cap,
    calls_of,
    chosen_of,
    filtered,
    gap_offsets,
    gather_facts,
    inferred_calls_of,
    merge_blocks,
    note_clocks,
    plan_local,
    plan_named,
    received,
    recheck_siblings,
    scan_split,
    solve_clocks,
    solve_with_links,
    write_gathered,
)

if TYPE_CHECKING:
    from pyspark import RDD
    from pyspark.sql import DataFrame, SparkSession

    from ._clocks import ClockModel
    from ._containment import Links

__all__ = ["BLOCK_COLUMNS", "PARTITION_BYTES", "Stitched", "stitch", "stitch_to"]

PARTITION_BYTES = 64 << 20
"""Input bytes per trace partition when no count is given."""

BLOCK_COLUMNS = ("group", "start", "first", "part", "seq", "trace_id", "lines")
"""The blocks' columns: sorted by the first five, ``lines`` are the local engine's output."""


@dataclass
class Stitched:
    """A stitched run: its output in blocks (a DataFrame, computed once and
    kept) and its summary (trace counts complete once the output is written)."""

    blocks: DataFrame
    summary: Summary
    _counts: tuple[Any, Any]
    _rdd: RDD[Any]
    _memory: int = 512 << 20
    _tmp_dir: str | None = None

    def records(self) -> DataFrame:
        """One row per output line: ``trace_id`` (null for lines without a
        trace) and ``record``, the JSON line (UTF-8 text), in no particular order."""
        from pyspark.sql.types import StringType, StructField, StructType

        schema = StructType(
            [StructField("trace_id", StringType(), True), StructField("record", StringType())]
        )
        lines = self._rdd.flatMap(_split_lines)
        return self.blocks.sparkSession.createDataFrame(lines, schema)

    def write_parts(self, directory: str, mode: str = "errorifexists") -> None:
        """The jsonl output as part files in ``directory`` (any path Spark
        writes): one per partition, each in the merged order of its own traces."""
        from pyspark.sql.functions import expr

        text = expr("cast(substring(lines, 1, length(lines) - 1) as string)").alias("value")
        self.blocks.select(text).write.mode(mode).text(directory)
        self._count()

    def write_merged(self, out: IO[bytes]) -> None:
        """The jsonl output as one stream, in the local engine's order: the
        partitions' blocks come to the driver one partition at a time and
        are merged there as the local engine merges its partitions (the
        driver's temporary directory holds the traces until then)."""
        with tempfile.TemporaryDirectory(prefix="logtrace-merge-", dir=self._tmp_dir) as tmp:
            merge_blocks(self._rdd.toLocalIterator(True), out, tmp, self._memory)
        self._count()

    def close(self) -> None:
        """Let go of the kept output."""
        self._rdd.unpersist()

    def _count(self) -> None:
        traces, selected = self._counts
        self.summary.traces, self.summary.written_traces = traces.value, selected.value


def stitch(
    session: SparkSession,
    inputs: Sequence[str] | DataFrame,
    options: Options | None = None,
    partitions: int = 0,
    out: IO[bytes] | None = None,
) -> Stitched | Summary:
    """Stitch ``inputs``: paths Spark reads (local paths are planned as the
    local engine plans them; ``hdfs://``, ``s3a://`` and other URIs are
    listed by Spark), or a DataFrame with the ``path`` and ``content``
    columns of Spark's ``binaryFile`` source.

    jsonl: returns a :class:`Stitched` (and writes it merged to ``out`` if
    given). Text, HTML and Chrome output are for filtered runs: the chosen
    traces are gathered on the driver and written to ``out``; returns the
    summary.
    """
    options = options or Options()
    page = options.format != "jsonl"
    if page and not filtered(options):
        raise ValueError(
            f"the Spark engine writes {options.format} output for filtered runs only "
            "(--trace, --errors, --service, --since, --until); use jsonl for a whole run"
        )
    if page and out is None:
        raise ValueError(f"{options.format} output needs an output stream")
    spool = tempfile.mkdtemp(prefix="logtrace-spark-", dir=options.tmp_dir)
    try:
        return _stitch(session, inputs, options, partitions, out, spool)
    finally:
        shutil.rmtree(spool, ignore_errors=True)


def _stitch(
    session: SparkSession,
    inputs: Sequence[str] | DataFrame,
    options: Options,
    partitions: int,
    out: IO[bytes] | None,
    spool: str,
) -> Stitched | Summary:
    sc = session.sparkContext
    tasks, sources, scans, size, skipped = _inputs(session, inputs, options, spool)
    count = partitions or options.partitions
    count = count or max(sc.defaultParallelism, math.ceil(size / PARTITION_BYTES))
    layout = Layout(sources, scans, count, count)
    shuffled = tasks(layout).partitionBy(layout.total, _itself)
    facts = shuffled.mapPartitionsWithIndex(partial(_facts, layout.facts)).collect()
    run, summary = gather_facts(facts, layout, skipped)
    shared = sc.broadcast(run)
    clocks = {}
    if options.skew_correction:
        collector = CallCollector(call_cap(options.memory))
        evidence = EvidenceCollector()
        calls = shuffled.mapPartitionsWithIndex(
            partial(_each, shared, partial(_calls, options.memory), True)
        )
        # A partition's calls are a small part of its rows; past a few dozen
        # partitions they come to the driver one partition at a time.
        gathered = calls.collect() if count <= 64 else calls.toLocalIterator(True)
        for _, columns, found in gathered:
            collector.add(columns)
            evidence.add(found)
        found = evidence.evidence()
        decide = LinkDecider(found, run.services)
        links = decide()
        gaps = gap_offsets(found, run.services) if not links else []

        def bracket(*round_of: Any) -> Iterable[Any]:
            given = sc.broadcast(round_of)
            work = partial(_each, shared, partial(_bracket, given), True)
            try:
                return shuffled.mapPartitionsWithIndex(work).collect()
            finally:
                given.unpersist()

        if not links:
            clocks = solve_clocks(collector, run.services, count, None, bracket, gaps=gaps)
        else:  # logs without parent IDs: calls inferred from containment, as locally
            del collector

            def infer(*round_of: Any) -> Iterable[Any]:
                given = sc.broadcast(round_of[:4])
                work = partial(_each, shared, partial(_infer, options.memory, given), True)
                try:
                    return shuffled.mapPartitionsWithIndex(work).collect()
                finally:
                    given.unpersist()

            cap = call_cap(options.memory)

            def solve(chosen: Links) -> dict[str, ClockModel]:
                return solve_with_links(
                    chosen, run.services, count, None, None, cap, infer, bracket
                )

            links, clocks = recheck_siblings(links, decide, solve, decide.fits_at)
            options = replace(options, callers=links.callers, trimmed=links.trimmed)
        if links.note:
            summary.notes.append(links.note)
    note_clocks(summary, run.used, clocks)
    traces, selected = sc.accumulator(0), sc.accumulator(0)
    if options.format != "jsonl":
        assert out is not None
        work = partial(_chosen, clocks, options, traces)
        shipped = shuffled.mapPartitionsWithIndex(partial(_each, shared, work, False)).collect()
        summary.written_traces = write_gathered(shipped, run, spool, clocks, options, out)
        summary.traces = traces.value
        shared.unpersist()
        return summary
    from pyspark import StorageLevel
    from pyspark.sql.types import (
        BinaryType,
        DoubleType,
        IntegerType,
        LongType,
        StringType,
        StructField,
        StructType,
    )

    work = partial(_blocks, clocks, replace(options, jobs=1), traces, selected)
    rdd = shuffled.mapPartitionsWithIndex(partial(_each, shared, work, False))
    rdd.persist(StorageLevel.MEMORY_AND_DISK)
    types = (IntegerType, DoubleType, LongType, IntegerType, LongType, StringType, BinaryType)
    schema = StructType(
        [StructField(n, t(), n == "trace_id") for n, t in zip(BLOCK_COLUMNS, types, strict=True)]
    )
    frame = session.createDataFrame(rdd, schema)
    result = Stitched(frame, summary, (traces, selected), rdd, options.memory, options.tmp_dir)
    if out is not None:
        result.write_merged(out)
    return result


def _inputs(
    session: SparkSession, inputs: Sequence[str] | DataFrame, options: Options, spool: str
) -> tuple[Callable[[Layout], RDD[Any]], list[Any], int, int, list[str]]:
    """How the run is scanned: a function of the layout giving the RDD of
    ``(partition, piece)``, the sources, the scan count, the input size and
    the inputs skipped."""
    sc = session.sparkContext
    if isinstance(inputs, (list, tuple)) and all(_local(p) for p in inputs):
        sources, plan, size, skipped = plan_local(inputs, spool, options)
        if not sources:
            raise InputError("nothing to read")

        def local(layout: Layout) -> RDD[Any]:
            return sc.parallelize(list(enumerate(plan)), max(1, len(plan))).mapPartitions(
                partial(_scan_local, layout)
            )

        return local, sources, len(plan), size, skipped
    if isinstance(inputs, (list, tuple)):
        frame = (
            session.read.format("binaryFile")
            .option("recursiveFileLookup", "true")
            .load([p if not _local(p) else os.path.abspath(p) for p in inputs])
        )
    else:
        frame = inputs  # type: ignore[assignment]
    listed = frame.select("path", "length").collect()
    sources = plan_named(row[0] for row in listed)
    if not sources:
        raise InputError("nothing to read")
    size = sum(int(row[1]) for row in listed)
    index = {s.name: k for k, s in enumerate(sources)}

    def read(layout: Layout) -> RDD[Any]:
        return frame.select("path", "content").rdd.mapPartitions(
            partial(_scan_content, layout, index)
        )

    return read, sources, len(sources), size, []


def _local(path: str) -> bool:
    return "://" not in path and not path.startswith("file:")


def _itself(key: int) -> int:
    return key


def _scan_local(layout: Layout, tasks: Iterator[Any]) -> Iterator[tuple[int, Any]]:
    for index, task in tasks:  # a file's byte ranges are scans of their own
        with tempfile.TemporaryDirectory(prefix="logtrace-scan-") as spool:
            yield from scan_split(index, tuple(task), layout, spool)


def _scan_content(
    layout: Layout, index: dict[str, int], rows: Iterator[Any]
) -> Iterator[tuple[int, Any]]:
    for path, content in rows:
        with tempfile.TemporaryDirectory(prefix="logtrace-scan-") as spool:
            local = os.path.join(spool, "content")
            with open(local, "wb") as f:
                f.write(content)
            del content
            at = index[path]
            yield from scan_split(at, (at, path, local, 0, -1), layout, spool)


def _facts(at: int, s: int, items: Iterator[tuple[int, Any]]) -> Iterator[ScanFacts]:
    if s == at:
        for _, facts in items:
            yield facts


def _each(
    shared: Any,
    work: Callable[[Received, int, Run], Iterable[Any]],
    traced_only: bool,
    s: int,
    items: Iterator[tuple[int, Any]],
) -> Iterator[Any]:
    """``work`` on partition ``s`` laid out as the local engine's files."""
    run: Run = shared.value
    last = run.layout.count if traced_only else run.layout.facts
    if s >= last:
        return
    with tempfile.TemporaryDirectory(prefix="logtrace-part-") as workdir:
        r = received((shipped for _, shipped in items), run, workdir)
        yield from work(r, s, run)


def _calls(memory: int, r: Received, s: int, run: Run) -> Iterator[Any]:
    yield calls_of(r, s, memory)


def _infer(memory: int, given: Any, r: Received, s: int, run: Run) -> Iterator[Any]:
    clocks, callers, margin, doubt_s = given.value
    yield inferred_calls_of(r, s, memory, clocks, callers, margin, doubt_s)


def _bracket(given: Any, r: Received, s: int, run: Run) -> Iterator[Any]:
    c, loose, before, after = given.value
    at = np.flatnonzero(c.partition[loose] == s)
    if len(at):
        yield bracket_of(r, c, loose[at], before[at], after[at])


def _chosen(
    clocks: dict[str, Any], options: Options, traces: Any, r: Received, s: int, run: Run
) -> Iterator[Any]:
    untraced = s >= run.layout.count
    if not untraced:
        traces.add(len(r.pieces) and _trace_count(r))
    yield from chosen_of(r, untraced, clocks, options)


def _trace_count(r: Received) -> int:
    return len({t for _, piece, _ in r.pieces for t in piece.traces})


def _blocks(
    clocks: dict[str, Any],
    options: Options,
    traces: Any,
    selected: Any,
    r: Received,
    s: int,
    run: Run,
) -> Iterator[Any]:
    n, chosen, blocks = blocks_of(r, s, clocks, options)
    traces.add(n)
    selected.add(chosen)
    yield from blocks


def _split_lines(block: Any) -> Iterator[tuple[str | None, str]]:
    trace_id, lines = block[5], bytes(block[6])
    for line in lines.split(b"\n")[:-1]:
        yield trace_id, line.decode("utf-8", "replace")


def stitch_to(
    paths: Sequence[str],
    out: IO[bytes],
    options: Options,
    master: str | None = None,
    parts: str | None = None,
    partitions: int = 0,
) -> Summary:
    """What ``logtrace stitch --engine spark`` runs: a session on ``master``
    (default: the one spark-submit gives, else ``local[*]``), the run, the
    merged output to ``out`` (jsonl) unless written as part files to ``parts``."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("logtrace stitch")
    if master:
        builder = builder.master(master)
    elif not os.environ.get("SPARK_HOME") and "spark.master" not in os.environ.get(
        "PYSPARK_SUBMIT_ARGS", ""
    ):
        builder = builder.master("local[*]")
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    result = stitch(session, list(paths), options, partitions, None if parts else out)
    if isinstance(result, Summary):
        return result
    try:
        if parts:
            result.write_parts(parts)
    finally:
        result.close()
    return result.summary
