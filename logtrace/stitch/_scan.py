"""The scan stage: read and parse each task's lines into compact rows, in parallel.

Tasks come from :func:`._plan.plan_tasks`: large uncompressed files are cut
into byte ranges at line boundaries so that every core has work; a
compressed file is one task (it is decompressed once, into a spool the
output pass reads back). Workers are forked, intern IDs locally and send
back numpy rows, never parsed records. A run too big for memory scans in
segments whose rows wait in spool files (:mod:`._spool`).

Each block of lines is scanned by the C extension when it is built
(:mod:`._scan_native`), else in Python (:mod:`._scan_python`); both give
the same rows.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterator, Sequence
from typing import IO

import numpy as np
import numpy.typing as npt

from ._decompress import (
    BLOCK,
    line_views,
    open_decompressed,
    range_blocks,
    read_blocks,
    whole_lines,
)
from ._intern import Interner
from ._model import SCAN_DTYPE, TRUNCATED, UNPARSEABLE_JSON, FileScan
from ._native import native_enabled, native_scan
from ._parse import PARTIALS
from ._plan import InputError, ScanTask, input_size, plan_tasks, service_from_path, task_size
from ._process_pool import forked_pool
from ._scan_native import prefetched, scan_block_native
from ._scan_python import PURE_BLOCK, line_breaks, scan_block
from ._spool import content_spool, spill, spooled

__all__ = [
    "SEGMENT_ROWS",
    "input_size",
    "plan_tasks",
    "scan",
    "scan_spilled",
    "scan_task",
    "segment_block",
]

SEGMENT_ROWS = 1 << 18
"""Rows a scan handing out segments holds before it hands one out (about 15 MB,
and up to two IDs a row)."""


def scan_task(
    task: ScanTask,
    spool_dir: str,
    segment: Callable[[FileScan], None] | None = None,
    segment_rows: int = SEGMENT_ROWS,
    block_size: int = BLOCK,
) -> FileScan:
    """Read one task's lines, ``block_size`` bytes at a time (at most
    :data:`PURE_BLOCK` in pure Python), and turn each non-blank one into a row.

    With ``segment``, every ``segment_rows`` rows or so go to it as a scan of
    their own, with only the IDs they use, and interning starts afresh: a
    long compressed file never holds all its rows or all its IDs. The
    segments' line numbers count from the task's start and their ``lines``
    is 0; the returned scan (the last rows) has the task's line count, so
    that the next task's lines are numbered after it as without segments.
    """
    index, name, path, start, end = task
    warnings: list[str] = []
    spool: IO[bytes] | None = None
    data_path = path
    state = Interner(service_from_path(name))
    PARTIALS.clear()  # a line cut by a container runtime never joins another file's
    scanner = native_scan.Scanner(state.services) if native_enabled(native_scan) else None
    blocks: Iterator[bytes | memoryview]
    if scanner is None:
        block_size = min(block_size, PURE_BLOCK)
    if end >= 0:
        if scanner is None:
            blocks = whole_lines(range_blocks(path, start, end, block_size))
            stream: IO[bytes] | None = None
        else:
            stream = open(path, "rb")  # noqa: SIM115 (closed below)
            stream.seek(start)
            blocks = prefetched(line_views(stream, end - start, None, name, block_size))
    else:
        try:
            stream, compressed = open_decompressed(path)
        except InputError as exc:  # gone or changed since the plan
            warnings.append(f"{exc}; skipped")
            result = _file_scan(index, path, _joined([]), state, scanner, 0)
            result.warnings = warnings
            return result
        if not compressed and _small(stream, block_size):
            # One read, no reading thread and no block buffers: a run of
            # many small files pays for neither once per file.
            blocks = _whole(stream, warnings, name)
        elif scanner is not None and not compressed:
            blocks = prefetched(line_views(stream, -1, warnings, name, block_size))
        else:
            blocks = read_blocks(stream, warnings, name, block_size)
        if compressed:
            spool, data_path = content_spool(index, spool_dir)
            if scanner is not None:
                blocks = prefetched(spooled(blocks, spool))
                spool = None
    parts: list[npt.NDArray[np.void]] = []
    pending = 0  # rows not yet written to the sink
    pos = start
    lineno = 0
    unterminated = False
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for block in blocks:
            if segment is not None and pending >= segment_rows:
                # Before the next block: the task's last rows stay in memory
                # (the last one may be marked truncated below).
                if scanner is None:
                    segment(_file_scan(index, data_path, _joined(parts), state, None, 0))
                    parts.clear()
                else:
                    rows = np.frombuffer(scanner.rows(), dtype=SCAN_DTYPE)
                    segment(_file_scan(index, data_path, rows, state, scanner, 0))
                    del rows
                state.restart()
                if scanner is not None:
                    scanner = native_scan.Scanner(state.services)
                pending = 0
            if spool is not None:
                spool.write(block)
            if scanner is None:
                assert isinstance(block, bytes)
                part = scan_block(block, pos, lineno, state)
                newlines = line_breaks(block)
                if len(part):
                    parts.append(part)
                    pending += len(part)
            else:
                newlines = scan_block_native(block, pos, lineno, state, scanner)
                pending += newlines  # at most one row a line
            pos += len(block)
            lineno += newlines
            unterminated = block[-1:] not in (b"\n", b"\r")
            if unterminated:
                lineno += 1
    finally:
        if gc_was_enabled:
            gc.enable()
        close = getattr(blocks, "close", None)
        if close is not None:
            close()  # stops a reading thread before its stream is closed
        if stream is not None:
            stream.close()
        if spool is not None:
            spool.close()
    if scanner is not None:
        rows = np.frombuffer(scanner.rows(), dtype=SCAN_DTYPE)
    else:
        rows = _joined(parts)
    if unterminated:
        warnings.append(
            f"{name}: ends in the middle of a line (still being written?); read as it is"
        )
    if unterminated and len(rows):
        last = rows[-1:]
        if last["line"][0] == lineno and last["reason"][0] == UNPARSEABLE_JSON:
            # A last line without its newline that does not parse: a file still being written.
            last["reason"] = TRUNCATED
    result = _file_scan(index, data_path, rows, state, scanner, lineno)
    result.warnings = warnings
    return result


def _small(stream: IO[bytes], block_size: int) -> bool:
    try:
        return os.fstat(stream.fileno()).st_size < block_size
    except (OSError, AttributeError, ValueError):
        return False


def _whole(stream: IO[bytes], warnings: list[str], name: str) -> Iterator[bytes]:
    try:
        data = stream.read()
    except OSError as exc:
        warnings.append(f"{name}: stopped reading: {exc}")
        return
    if data:
        yield data


def _joined(parts: list[npt.NDArray[np.void]]) -> npt.NDArray[np.void]:
    return np.concatenate(parts) if parts else np.empty(0, dtype=SCAN_DTYPE)


def _file_scan(
    index: int,
    data_path: str,
    rows: npt.NDArray[np.void],
    state: Interner,
    scanner: native_scan.Scanner | None,
    lines: int,
) -> FileScan:
    return FileScan(
        file=index,
        data_path=data_path,
        rows=rows,
        traces=list(state.trace_ids) if scanner is None else scanner.traces(),
        spans=list(state.span_ids) if scanner is None else scanner.spans(),
        services=[s for s in state.services if s is not None],  # type: ignore[misc]
        lines=lines,
    )


_SPOOL_DIR = ""


def _worker(task: ScanTask) -> FileScan:
    return scan_task(task, _SPOOL_DIR)


_SEGMENT_ROWS = SEGMENT_ROWS


def _spilling_worker(task: ScanTask) -> list[tuple[FileScan, str | None]]:
    """:func:`scan_task` in segments, each with its rows, trace IDs and span
    IDs written to spool files (their path returned, ``None`` for no rows):
    a worker hands back only what does not grow with the input, and the
    parent reads the rest when it needs it."""
    spilled: list[tuple[FileScan, str | None]] = []

    def hand_out(part: FileScan) -> None:
        spilled.append(spill(task[0], part, _SPOOL_DIR))

    hand_out(scan_task(task, _SPOOL_DIR, hand_out, _SEGMENT_ROWS, segment_block(_SEGMENT_ROWS)))
    return spilled


def segment_block(segment_rows: int) -> int:
    """Bytes read at a time by a scan handing out segments of ``segment_rows``:
    a segment is handed out between blocks, so a block is a small part of it."""
    return max(1 << 20, min(BLOCK, segment_rows * 32))


def scan(
    tasks: Sequence[ScanTask],
    spool_dir: str,
    jobs: int,
    progress: Callable[[FileScan], None] | None = None,
) -> list[FileScan]:
    """Scan all tasks (forked workers when ``jobs > 1``), results in task order."""
    return [s for s, _ in _scan_all(tasks, spool_dir, jobs, progress, _worker_plain)]


def scan_spilled(
    tasks: Sequence[ScanTask],
    spool_dir: str,
    jobs: int,
    progress: Callable[[FileScan], None] | None = None,
    segment_rows: int | None = None,
) -> list[tuple[FileScan, str | None]]:
    """:func:`scan` in segments of about ``segment_rows`` rows (default
    :data:`SEGMENT_ROWS`), each segment's rows and IDs left in spool files
    (read back with :func:`._spool.load_spilled`): neither the parent nor a
    worker ever holds them all."""
    global _SEGMENT_ROWS
    _SEGMENT_ROWS = segment_rows or SEGMENT_ROWS
    # Also one job scans in a worker: the memory a scan frees is not all given
    # back to the system, and the parent has a whole run still to stitch.
    return _scan_all(tasks, spool_dir, jobs, progress, _spilling_worker, isolate=True)


def _worker_plain(task: ScanTask) -> list[tuple[FileScan, str | None]]:
    return [(_worker(task), None)]


def _scan_all(
    tasks: Sequence[ScanTask],
    spool_dir: str,
    jobs: int,
    progress: Callable[[FileScan], None] | None,
    work: Callable[[ScanTask], list[tuple[FileScan, str | None]]],
    isolate: bool = False,
) -> list[tuple[FileScan, str | None]]:
    global _SPOOL_DIR
    _SPOOL_DIR = spool_dir
    results: list[tuple[FileScan, str | None]] = []
    in_process = jobs <= 1 or len(tasks) <= 1
    if (in_process and not isolate) or "fork" not in _start_methods():
        for task in tasks:
            results.extend(work(task))
            if progress is not None:
                progress(results[-1][0])
        return results
    # Biggest tasks first so that the last one to finish is a small one.
    order = sorted(range(len(tasks)), key=lambda i: -task_size(tasks[i]))
    by_index: dict[int, list[tuple[FileScan, str | None]]] = {}
    workers = max(1, min(jobs, len(tasks)))
    # Many small tasks go to the workers a few at a time: one round trip each
    # would cost more than scanning a small file.
    chunk = max(1, min(32, len(tasks) // (workers * 16)))
    with forked_pool(workers) as pool:
        results_in_order = pool.imap(work, [tasks[i] for i in order], chunk)
        for i, result in zip(order, results_in_order, strict=False):
            by_index[i] = result
            if progress is not None:
                progress(result[-1][0])
    return [segment for i in range(len(tasks)) for segment in by_index[i]]


def _start_methods() -> list[str]:
    from multiprocessing import get_all_start_methods

    return get_all_start_methods()
