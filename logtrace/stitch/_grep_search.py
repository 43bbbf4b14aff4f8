"""``logtrace grep``'s search: the matching lines of each file, in file order.

A byte search over each file (the C library's ``memmem``, or ``bytes.find``
without the extension: :mod:`._search`; no decoding). An uncompressed file is
read into one reused buffer a block of whole lines at a time; a compressed one
is searched a block of whole lines at a time as it is decompressed; neither is
held whole. With more than one CPU, threads search the next files while this
one's matches are read (the search and decompression run without the GIL).

Light at import (no numpy, no parser): ``logtrace grep`` starts the search
first and loads the ordering while it runs.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import threading
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from typing import IO, TYPE_CHECKING

from ._decompress import open_decompressed, read_blocks
from ._gil import short_gil_turns
from ._plan import InputError, ScanTask, plan_tasks
from ._search import find

if TYPE_CHECKING:
    from ._source import Source

__all__ = ["MATCH_COST", "Match", "each_file", "file_matches", "search_file"]

MATCH_COST = 200
"""About what a held match costs beyond its text, in bytes."""


class Match:
    """One matching line."""

    __slots__ = ("file", "line", "offset", "raw")

    def __init__(self, file: int, line: int, offset: int, raw: bytes) -> None:
        self.file = file
        self.line = line
        """1-based line number (0 when not asked for)."""
        self.offset = offset
        self.raw = raw
        """The line without its line ending."""

    def __repr__(self) -> str:
        return f"Match(file={self.file}, line={self.line}, offset={self.offset}, raw={self.raw!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Match):
            return NotImplemented
        return (self.file, self.line, self.offset, self.raw) == (
            other.file,
            other.line,
            other.offset,
            other.raw,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable, as the dataclass it replaces


Buffer = bytes | bytearray


def _line_end(data: Buffer, pos: int, size: int) -> int:
    end = data.find(b"\n", pos, size)
    end = size if end < 0 else end
    cr = data.find(b"\r", pos, end)
    if cr >= 0 and (cr + 1 != end or end == size):
        return cr  # a CR alone ends a line too
    return end


def _line_start(data: Buffer, pos: int) -> int:
    start = data.rfind(b"\n", 0, pos) + 1
    return data.rfind(b"\r", start, pos) + 1 or start  # a CR there is alone


def _count_lines(data: Buffer, lo: int, hi: int) -> int:
    """Line breaks (LF, CR LF, a CR alone) from ``lo`` to ``hi``, both line starts."""
    lf = data.count(b"\n", lo, hi)
    cr = data.count(b"\r", lo, hi)
    return lf + cr - data.count(b"\r\n", lo, hi) if cr else lf


def _search(
    data: Buffer, size: int, needle: bytes, file: int, base: int, numbers: bool, line: int = 1
) -> Iterator[Match]:
    """Matches of ``needle`` in the first ``size`` bytes of ``data`` (whole lines,
    the first of them number ``line``, at byte ``base`` of the file)."""
    pos = find(data, needle, 0, size)
    counted = 0
    while pos >= 0:
        start = _line_start(data, pos)
        end = _line_end(data, pos, size)
        if numbers:
            line += _count_lines(data, counted, start)
            counted = start
        raw = bytes(data[start:end])
        if raw[-1:] == b"\r":
            raw = raw[:-1]
        yield Match(file, line, base + start, raw)
        if end >= size:
            return
        pos = find(data, needle, end + 1, size)


_READ = 4 << 20
"""Bytes read at a time from an uncompressed file, into one reused buffer."""


def _plain_blocks(stream: IO[bytes], size: int, limit: int = -1) -> Iterator[tuple[bytearray, int]]:
    """Whole lines of ``stream`` (its next ``limit`` bytes; -1: all), a buffer at
    a time: the buffer and how many of its bytes hold lines (the last block may
    lack its newline). The buffer is reused: read a block before taking the
    next. A line longer than the buffer doubles it."""
    buffer = bytearray(size)
    held = 0  # a line cut by the last read, moved to the front
    left = limit
    while True:
        want = len(buffer) - held if left < 0 else min(len(buffer) - held, left)
        got = 0
        if want:
            with memoryview(buffer) as view:
                got = stream.readinto(view[held : held + want])  # type: ignore[attr-defined]
        if not got:
            if held:
                yield buffer, held
            return
        if left >= 0:
            left -= got
        end = held + got
        cut = buffer.rfind(b"\n", 0, end) + 1
        if cut:
            yield buffer, cut
            buffer[: end - cut] = buffer[cut:end]
            held = end - cut
        else:
            held = end
        if held == len(buffer):
            buffer.extend(bytes(len(buffer)))


def search_file(
    index: int,
    source: Source,
    needles: Sequence[bytes],
    warnings: list[str],
    numbers: bool = True,
) -> list[Match]:
    """Matching lines of one file, decompressed if need be, in file order."""
    return list(file_matches(index, source, needles, warnings, numbers))


def file_matches(
    index: int,
    source: Source,
    needles: Sequence[bytes],
    warnings: list[str],
    numbers: bool = True,
    start: int = 0,
    end: int = -1,
    first_line: int = 1,
    counted: list[int] | None = None,
) -> Iterator[Match]:
    """:func:`search_file` as it goes: matches in file order as they are found.

    Of an uncompressed file, the lines from byte ``start`` (a line start, line
    number ``first_line``) to ``end`` (-1: the end) alone; the line breaks
    read are appended to ``counted`` (when ``numbers``) once done.
    """
    stream, compressed = open_decompressed(source.path)
    blocks: Iterable[tuple[Buffer, int]]
    if compressed:
        blocks = ((block, len(block)) for block in read_blocks(stream, warnings, source.name))
    else:
        if start:
            stream.seek(start)
        blocks = _plain_blocks(stream, _READ, -1 if end < 0 else end - start)
    base = start
    line = first_line
    try:
        for data, size in blocks:
            yield from _merged(data, size, needles, index, base, numbers, line)
            base += size
            if numbers:
                line += _count_lines(data, 0, size)  # blocks end after an LF
    finally:
        stream.close()
        if counted is not None:
            counted.append(line - first_line)


def _merged(
    data: Buffer,
    size: int,
    needles: Sequence[bytes],
    index: int,
    base: int,
    numbers: bool,
    line: int,
) -> Iterator[Match]:
    if len(needles) == 1:
        yield from _search(data, size, needles[0], index, base, numbers, line)
        return
    # Each needle's matches come in offset order: merge them, a line once.
    searches = [_search(data, size, n, index, base, numbers, line) for n in needles]
    last = -1
    for m in heapq.merge(*searches, key=lambda m: m.offset):
        if m.offset != last:
            last = m.offset
            yield m


def _workers(files: int) -> int:
    """Threads searching files at once: one per CPU this process may use, at most 4."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(files, cpus, 4))


def each_file(
    sources: Sequence[Source],
    needles: Sequence[bytes],
    warnings: list[str],
    numbers: bool,
    cap: int | None,
    meanwhile: Callable[[], object] | None = None,
) -> Iterator[Iterable[Match]]:
    """Per file, in order, its matches (an :class:`InputError` raised on reading them).

    With more than one CPU, threads search ahead of the caller: the next
    files, and large uncompressed files in ranges of whole lines (as the
    stitcher's scan cuts them), up to four ranges per thread ahead of the
    caller. The ranges searched ahead hold at most ``cap`` bytes of matches
    together; a range past its share is searched again when its turn comes,
    as it goes, so that memory stays bounded. ``meanwhile`` runs once
    the first searches have started, before their results are awaited.
    """
    workers = _workers(len(sources))
    if workers <= 1:
        if meanwhile is not None:
            meanwhile()
        for index, source in enumerate(sources):
            yield file_matches(index, source, needles, warnings, numbers)
        return
    tasks = plan_tasks(sources, workers)
    by_file: list[list[int]] = [[] for _ in sources]
    for k, task in enumerate(tasks):
        by_file[task[0]].append(k)

    window = 4 * workers
    share = None if cap is None else max(1, cap // window)

    def search(k: int) -> _Collected:
        index, _, _, start, end = tasks[k]
        return _collect(index, sources[index], needles, numbers, share, start, end)

    ahead = _Ahead(len(tasks), window, workers, search)
    try:
        if meanwhile is not None:
            # The searching threads need the GIL for a moment between two reads.
            with short_gil_turns():
                meanwhile()
        for index, source in enumerate(sources):
            found = _file_results(ahead, tasks, by_file[index], source, needles, warnings, numbers)
            yield found
            found.close()
            ahead.drain(by_file[index])  # what a failed file left
    finally:
        ahead.close()


def _file_results(
    ahead: _Ahead,
    tasks: list[ScanTask],
    mine: list[int],
    source: Source,
    needles: Sequence[bytes],
    warnings: list[str],
    numbers: bool,
) -> Generator[Match, None, None]:
    """One file's matches (``tasks[k]`` for ``k`` in ``mine``), range after
    range, line numbers counted on."""
    before = 0  # line breaks in the ranges before this one
    for k in mine:
        index, _, _, start, end = tasks[k]
        found, counted, range_warnings, error = ahead.take(k)
        warnings.extend(range_warnings)
        if error is not None:
            raise error
        if found is None:  # too many to hold: again, as it goes
            got: list[int] = []
            yield from file_matches(
                index, source, needles, warnings, numbers, start, end, before + 1, got
            )
            before += got[0] if got else 0
            continue
        for m in found:
            if numbers:
                m.line += before
            yield m
        before += counted


_Collected = tuple[list[Match] | None, int, list[str], InputError | None]
"""A range searched ahead: its matches (``None`` past the cap; line numbers
from 1), its line breaks, its warnings, its error."""


class _Ahead:
    """Threads that run searches in order, at most ``window`` ahead of the
    reader (each result is held until taken)."""

    def __init__(
        self, count: int, window: int, workers: int, search: Callable[[int], _Collected]
    ) -> None:
        self._count = count
        self._window = window
        self._search = search
        self._lock = threading.Condition()
        self._next = 0  # the next file a thread takes
        self._taken = 0  # files the reader has taken
        self._done: dict[int, _Collected | BaseException] = {}
        self._closed = False
        self._threads = [
            threading.Thread(target=self._run, name=f"logtrace-grep-{k}", daemon=True)
            for k in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._closed and self._next < self._count:
                    if self._next < self._taken + self._window:
                        break
                    self._lock.wait()
                if self._closed or self._next >= self._count:
                    return
                k = self._next
                self._next += 1
            result: _Collected | BaseException
            try:
                result = self._search(k)
            except BaseException as exc:  # handed to the reader, raised there
                result = exc
            with self._lock:
                self._done[k] = result
                self._lock.notify_all()

    def take(self, k: int) -> _Collected:
        """File ``k``'s result, once searched (its error raised here)."""
        with self._lock:
            while k not in self._done:
                self._lock.wait()
            result = self._done.pop(k)
            self._taken = k + 1
            self._lock.notify_all()
        if isinstance(result, BaseException):
            raise result
        return result

    def drain(self, tasks: Iterable[int]) -> None:
        """Take and drop the results of ``tasks`` not taken yet."""
        for k in tasks:
            if k >= self._taken:
                with contextlib.suppress(Exception):
                    self.take(k)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        for thread in self._threads:
            thread.join()


def _collect(
    index: int,
    source: Source,
    needles: Sequence[bytes],
    numbers: bool,
    cap: int | None,
    start: int,
    end: int,
) -> _Collected:
    warnings: list[str] = []
    found: list[Match] = []
    counted: list[int] = []
    size = 0
    try:
        for m in file_matches(index, source, needles, warnings, numbers, start, end, 1, counted):
            found.append(m)
            size += len(m.raw) + MATCH_COST
            if cap is not None and size > cap:
                return None, 0, [], None
    except InputError as exc:
        return None, 0, warnings, exc
    return found, counted[0] if counted else 0, warnings, None


def _failed(error: InputError) -> Iterator[Match]:
    raise error
    yield  # a generator: the error comes when its matches are read
