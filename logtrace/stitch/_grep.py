"""``logtrace grep``: every line holding an ID, in stitched order.

The search is a byte search over each file (``mmap`` and ``bytes.find``, no
decoding); only matching lines are parsed. They are then ordered as the
stitcher orders a trace, with clock offsets estimated from the calls among
the matches alone: a full estimate would need a full read, and one trace's
client span records already pin its hops down. Pure Python and no numpy, so
that start-up costs little next to the search.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ._clocks import Edge, estimate_clocks
from ._parse import KIND_CLIENT, SPAN_RECORD, parse_line
from ._read import Source, open_decompressed, read_blocks, service_from_path

__all__ = ["Match", "grep", "order_matches", "search_file"]


@dataclass(slots=True)
class Match:
    """One matching line."""

    file: int
    line: int
    offset: int
    raw: bytes
    """The line without its line ending."""


def _line_end(data: bytes | mmap.mmap, pos: int, size: int) -> int:
    end = data.find(b"\n", pos)
    return size if end < 0 else end


def _search(data: bytes | mmap.mmap, needle: bytes, file: int, base: int) -> Iterator[Match]:
    size = len(data)
    pos = data.find(needle)
    line = 1
    counted = 0
    while pos >= 0:
        start = data.rfind(b"\n", 0, pos) + 1
        end = _line_end(data, pos, size)
        line += data.count(b"\n", counted, start)
        counted = start
        raw = data[start:end]
        if raw[-1:] == b"\r":
            raw = raw[:-1]
        yield Match(file, line, base + start, raw)
        if end >= size:
            return
        pos = data.find(needle, end + 1)


def search_file(index: int, source: Source, needles: Sequence[bytes], warnings: list[str]) -> list[Match]:
    """Matching lines of one file, decompressed if need be, in file order."""
    stream, compressed = open_decompressed(source.path)
    try:
        if not compressed:
            size = os.fstat(stream.fileno()).st_size
            if size == 0:
                return []
            with mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return _merged(data, needles, index, 0)
        content = b"".join(read_blocks(stream, warnings, source.name))
        return _merged(content, needles, index, 0)
    finally:
        stream.close()


def _merged(data: bytes | mmap.mmap, needles: Sequence[bytes], index: int, base: int) -> list[Match]:
    if len(needles) == 1:
        return list(_search(data, needles[0], index, base))
    found: dict[int, Match] = {}
    for needle in needles:
        for m in _search(data, needle, index, base):
            found.setdefault(m.offset, m)
    return [found[k] for k in sorted(found)]


def order_matches(matches: list[Match], names: Sequence[str]) -> list[Match]:
    """Matches in stitched order: traces by start, records merged across files
    by corrected time, each file's own order kept."""
    parsed = [parse_line(m.raw) for m in matches]
    services = [p[4] or service_from_path(names[m.file]) for m, p in zip(matches, parsed)]
    # Spans among the matches: service, raw start and end, client record.
    span_info: dict[tuple[str, str], list[object]] = {}
    for p, svc in zip(parsed, services):
        trace, span, parent, ts, _, flags, _, start = p
        if trace is None or span is None or ts is None:
            continue
        info = span_info.get((trace, span))
        if info is None:
            info = span_info[(trace, span)] = [svc, ts, ts, parent, False]
        info[1] = min(info[1], ts, start if start is not None else ts)  # type: ignore[call-overload]
        info[2] = max(info[2], ts)  # type: ignore[call-overload]
        if parent is not None:
            info[3] = parent
        if flags & SPAN_RECORD and flags & KIND_CLIENT:
            info[4] = True
    edges = []
    for (trace, _), (svc, start, end, parent, _) in span_info.items():
        if parent is None:
            continue
        up = span_info.get((trace, parent))  # type: ignore[arg-type]
        if up is None or up[0] == svc:
            continue
        edges.append(
            Edge(up[0], svc, up[1], up[2], start, end, bool(up[4]))  # type: ignore[arg-type]
        )
    clocks = estimate_clocks(edges, set(services))
    corrected = []
    for p, svc in zip(parsed, services):
        ts = p[3]
        corrected.append(None if ts is None else clocks[svc].correct(ts))
    # Hold each file's order: a record never sorts before an earlier line of its file.
    held: list[float] = []
    last: dict[tuple[str | None, int], float] = {}
    for m, p, ts in zip(matches, parsed, corrected):
        key = (p[0], m.file)
        prev = last.get(key, float("-inf"))
        value = prev if ts is None or ts < prev else ts
        last[key] = value
        held.append(value)
    first: dict[str | None, float] = {}
    for p, value in zip(parsed, held):
        if p[0] is not None and value > float("-inf"):
            first[p[0]] = min(first.get(p[0], value), value)
    keyed = sorted(
        range(len(matches)),
        key=lambda i: (
            parsed[i][0] is None,
            first.get(parsed[i][0], float("inf")),
            parsed[i][0] or "",
            held[i] if parsed[i][0] is not None else 0.0,
            matches[i].file,
            matches[i].line,
        ),
    )
    return [matches[i] for i in keyed]


def grep(ids: Sequence[str], sources: Sequence[Source], warnings: list[str]) -> list[Match]:
    """Every line of ``sources`` containing one of ``ids``, in stitched order."""
    needles: list[bytes] = []
    for ident in ids:
        for form in (ident, ident.lower()):
            encoded = form.encode()
            if encoded and encoded not in needles:
                needles.append(encoded)
    matches: list[Match] = []
    for index, source in enumerate(sources):
        matches.extend(search_file(index, source, needles, warnings))
    return order_matches(matches, [s.name for s in sources])
