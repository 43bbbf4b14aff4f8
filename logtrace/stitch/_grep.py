"""``logtrace grep``: every line holding an ID, in stitched order.

The search is a byte search over each file (``mmap`` and the C library's
``memmem``, or ``bytes.find`` without the extension: :mod:`._search`; no
decoding); a compressed file is searched a block of whole lines at a time,
never held whole. With more than one CPU, threads search the next files while
this one's matches are read (the search and decompression run without the
GIL). Only matching lines are parsed.
They are then ordered as the stitcher orders a trace, with clock offsets
estimated from the calls among the matches alone: a full estimate would need
a full read, and one trace's client span records already pin its hops down.

Ordering needs every match at once, so it is done while the matches fit a
bounded buffer (:data:`ORDER_BUFFER`, far more than a trace's lines). Beyond
it, an ID held by a large part of the input, the matches are written as they
are found, in file order file by file, and :func:`grep_stream` says so: memory
stays bounded whatever the input. Pure Python and no numpy, so that start-up
costs little next to the search.
"""

from __future__ import annotations

import heapq
import math
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO

from ._clocks import ClockModel, estimate_clocks
from ._decompress import open_decompressed, read_blocks
from ._grep_calls import trace_calls
from ._model import Source
from ._order_rules import Line, order_lines
from ._parse import parse_line
from ._plan import InputError, service_from_path
from ._precision import Resolutions, file_resolution, resolution, whole_ms
from ._search import find

__all__ = [
    "ORDER_BUFFER",
    "Match",
    "file_matches",
    "grep",
    "grep_stream",
    "order_matches",
    "search_file",
]

ORDER_BUFFER = 32 << 20
"""Bytes of matches (their text and about :data:`_MATCH_COST` each) held to
be put in stitched order; beyond, matches are written in file order."""

_MATCH_COST = 200
_NO_SKEW = ClockModel()
_POINTS = Resolutions()


@dataclass(slots=True)
class Match:
    """One matching line."""

    file: int
    line: int
    """1-based line number (0 when not asked for)."""
    offset: int
    raw: bytes
    """The line without its line ending."""


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


_READ = 1 << 20
"""Bytes read at a time from an uncompressed file, into one reused buffer."""


def _plain_blocks(stream: IO[bytes], size: int) -> Iterator[tuple[bytearray, int]]:
    """Whole lines of ``stream``, a buffer at a time: the buffer and how many of
    its bytes hold lines (the last block may lack its newline). The buffer is
    reused: read a block before taking the next. A line longer than the buffer
    doubles it."""
    buffer = bytearray(size)
    held = 0  # a line cut by the last read, moved to the front
    while True:
        with memoryview(buffer) as view:
            got = stream.readinto(view[held:])  # type: ignore[attr-defined]
        if not got:
            if held:
                yield buffer, held
            return
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
) -> Iterator[Match]:
    """:func:`search_file` as it goes: matches in file order as they are found."""
    stream, compressed = open_decompressed(source.path)
    blocks: Iterable[tuple[Buffer, int]]
    if compressed:
        blocks = ((block, len(block)) for block in read_blocks(stream, warnings, source.name))
    else:
        blocks = _plain_blocks(stream, _READ)
    base = 0
    line = 1
    try:
        for data, size in blocks:
            yield from _merged(data, size, needles, index, base, numbers, line)
            base += size
            if numbers:
                line += _count_lines(data, 0, size)  # blocks end after an LF
    finally:
        stream.close()


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


def order_matches(
    matches: list[Match],
    names: Sequence[str],
    paths: Sequence[str] | None = None,
    clocks: dict[str, ClockModel] | None = None,
) -> list[Match]:
    """Matches in stitched order: the rules of :mod:`._order_rules`, the
    stitcher's, on clocks estimated from the calls among the matches.

    ``names`` are the files' names (their services when lines name none),
    ``paths`` where to read them (default: the names), for their timestamps'
    resolution. ``clocks`` (by default estimated from the matches) put
    each service's times on the reference clock."""
    paths = names if paths is None else paths
    parsed = [parse_line(m.raw) for m in matches]
    services = [
        p[4] or service_from_path(names[m.file]) for m, p in zip(matches, parsed, strict=True)
    ]
    # A file's resolutions matter only to lines whose time could be coarse:
    # those that fall on a whole millisecond (or second). Others are points.
    coarse = {m.file for m, p in zip(matches, parsed, strict=True) if _maybe_coarse(p[3])}
    resolutions = {
        f: file_resolution(paths[f]) if f in coarse else _POINTS for f in {m.file for m in matches}
    }
    lasts = [
        resolution(math.nan if p[3] is None else p[3], resolutions[m.file])
        for m, p in zip(matches, parsed, strict=True)
    ]
    if clocks is None:
        raws = [m.raw for m in matches]
        edges, hosts = trace_calls(parsed, services, raws, lasts)
        clocks = estimate_clocks(edges, set(services), hosts)
    models = {svc: clocks.get(svc, _NO_SKEW) for svc in set(services)}
    lines: list[Line] = []
    nan = math.nan
    for m, p, svc, last in zip(matches, parsed, services, lasts, strict=True):
        trace, span, parent, ts, _, flags, _, start = p
        raw = nan if ts is None else ts
        lines.append(
            Line(
                m.file,
                trace,
                span,
                parent,
                svc,
                flags,
                raw,
                nan if start is None else start,
                nan if ts is None else models[svc].correct(ts),
                last,
            )
        )

    def correct(service: str, t: float) -> float:
        return models[service].correct(t)

    return [matches[i] for i in order_lines(lines, correct, lambda i: matches[i].raw)]


def _maybe_coarse(ts: float | None) -> bool:
    return ts is not None and ts == ts and whole_ms(ts)


def _needles(ids: Sequence[str]) -> list[bytes]:
    needles: list[bytes] = []
    for ident in ids:
        for form in (ident, ident.lower()):
            encoded = form.encode()
            if encoded and encoded not in needles:
                needles.append(encoded)
    return needles


def grep(
    ids: Sequence[str], sources: Sequence[Source], warnings: list[str], numbers: bool = True
) -> list[Match]:
    """Every line of ``sources`` containing one of ``ids``, in stitched order
    (all held: :func:`grep_stream` bounds its memory).

    Line numbers cost a count of every newline before each match; without
    ``numbers`` they are left at 0.
    """
    found: list[Match] = []
    grep_stream(ids, sources, warnings, found.append, numbers, buffer=-1)
    return found


def grep_stream(
    ids: Sequence[str],
    sources: Sequence[Source],
    warnings: list[str],
    write: Callable[[Match], None],
    numbers: bool = True,
    buffer: int | None = None,
    skipped: list[str] | None = None,
    clocks: dict[str, ClockModel] | None = None,
) -> tuple[int, bool]:
    """Every line of ``sources`` containing one of ``ids``, each handed to
    ``write``: in stitched order while the matches fit ``buffer`` bytes
    (default :data:`ORDER_BUFFER`; -1: no limit), else each file's in file
    order as found. Returns the number of matches and whether they came in
    stitched order.

    A file that cannot be opened (gone since it was listed) is named in
    ``skipped`` and passed over; without ``skipped``, it raises :class:`InputError`.
    ``clocks`` are as :func:`order_matches` takes them (``{}``: no correction).
    """
    needles = _needles(ids)
    if buffer is None:
        buffer = ORDER_BUFFER
    held: list[Match] | None = []
    size = 0
    count = 0
    cap = None if buffer < 0 else buffer // 2
    for matches in _each_file(sources, needles, warnings, numbers, cap):
        try:
            for m in matches:
                count += 1
                if held is None:
                    write(m)
                    continue
                held.append(m)
                size += len(m.raw) + _MATCH_COST
                if 0 <= buffer < size:
                    for early in held:
                        write(early)
                    held = None
        except InputError as exc:
            if skipped is None:
                raise
            skipped.append(str(exc))
    if held is None:
        return count, False
    for m in order_matches(held, [s.name for s in sources], [s.path for s in sources], clocks):
        write(m)
    return count, True


def _workers(files: int) -> int:
    """Threads searching files at once: one per CPU this process may use, at most 4."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(files, cpus, 4))


def _each_file(
    sources: Sequence[Source],
    needles: Sequence[bytes],
    warnings: list[str],
    numbers: bool,
    cap: int | None,
) -> Iterator[Iterable[Match]]:
    """Per file, in order, its matches (an :class:`InputError` raised on reading them).

    With more than one CPU, threads search the next files while the caller
    reads this one's (the byte search and decompression run without the GIL).
    A file searched ahead holds at most ``cap`` bytes of matches; past it, the
    file is searched again when its turn comes, as it goes, so that memory
    stays bounded.
    """
    workers = _workers(len(sources))
    if workers <= 1:
        for index, source in enumerate(sources):
            yield file_matches(index, source, needles, warnings, numbers)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="logtrace-grep") as pool:
        ahead: deque[Future[_Collected]] = deque()
        for index, source in enumerate(sources):
            while len(ahead) < workers and index + len(ahead) < len(sources):
                k = index + len(ahead)
                ahead.append(pool.submit(_collect, k, sources[k], needles, numbers, cap))
            found, file_warnings, error = ahead.popleft().result()
            if error is not None:
                warnings.extend(file_warnings)
                yield _failed(error)
            elif found is None:
                yield file_matches(index, source, needles, warnings, numbers)
            else:
                warnings.extend(file_warnings)
                yield found


_Collected = tuple[list["Match"] | None, list[str], InputError | None]
"""A file searched ahead: its matches (``None`` past the cap), its warnings, its error."""


def _collect(
    index: int, source: Source, needles: Sequence[bytes], numbers: bool, cap: int | None
) -> _Collected:
    warnings: list[str] = []
    found: list[Match] = []
    size = 0
    try:
        for m in file_matches(index, source, needles, warnings, numbers):
            found.append(m)
            size += len(m.raw) + _MATCH_COST
            if cap is not None and size > cap:
                return None, [], None
    except InputError as exc:
        return None, warnings, exc
    return found, warnings, None


def _failed(error: InputError) -> Iterator[Match]:
    raise error
    yield  # a generator: the error comes when its matches are read
