"""Timestamp precision: which lines carry a second or a millisecond, not a point.

An access log line stamped ``[04/Dec/2026:18:32:08 +0000]`` happened some
time in that second, a ``logging`` line stamped ``18:32:08,123`` some time in
that millisecond. Ordered as points, such lines would come ahead of every
finer time of the same second or millisecond; ordered as what they are, they
take their place from their own file (see :mod:`._order`).

A file's resolutions are read from its first lines (:func:`file_resolution`),
the same bytes whoever asks, so that ``stitch`` and ``grep`` agree: a file
has whole-second lines when they are too many to be finer times that happen
to fall on a whole second, and whole-millisecond lines likewise. A line then
takes the coarsest resolution its file has that its value fits
(:func:`resolution`). Pure Python: ``grep`` uses it without numpy.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from ._decompress import open_decompressed
from ._parse import parse_line

__all__ = [
    "MS",
    "SAMPLE_BYTES",
    "SAMPLE_LINES",
    "SECOND",
    "Resolutions",
    "classify",
    "file_resolution",
    "resolution",
    "whole_ms",
]

SECOND = 1.0
MS = 1e-3
SAMPLE_BYTES = 256 << 10
"""How much of a file's start is read to find its resolutions."""
SAMPLE_LINES = 400
"""Timed lines read at most."""

_MS_TOLERANCE = 5e-4
"""In milliseconds: a float epoch time (about 2.4e-7 s apart near 2026) of a
whole millisecond is within 2.4e-4 ms of it; the nearest finer time a
microsecond clock can write is 1e-3 ms away."""


@dataclass(frozen=True, slots=True)
class Resolutions:
    """What a file's lines may carry besides points."""

    seconds: bool = False
    """Some lines carry a whole second only."""
    millis: bool = False
    """Some lines carry a whole millisecond only."""


def whole_ms(value: float) -> bool:
    """``value`` (epoch seconds) is a whole millisecond."""
    scaled = value * 1000.0
    return abs(scaled - round(scaled)) < _MS_TOLERANCE


def classify(values: list[float]) -> Resolutions:
    """Resolutions from a file's timestamps.

    A finer clock lands on a whole millisecond once in a thousand lines and
    on a whole second once in a million: whole-millisecond lines count only
    beyond what chance gives (more than one in a hundred, at least two,
    unless every line is one), and whole seconds likewise among them.
    """
    n = len(values)
    if n == 0:
        return Resolutions()
    seconds = sum(1 for v in values if v == math.floor(v))
    millis = sum(1 for v in values if whole_ms(v))
    return Resolutions(
        seconds=seconds > 0 and (seconds == n or seconds > 0.01 * millis + 1),
        millis=millis > seconds and (millis == n or (millis - seconds) > 0.01 * n + 1),
    )


def resolution(value: float, res: Resolutions) -> float:
    """How long the time a line names lasts (0.0: a point)."""
    if value != value:
        return 0.0
    if res.seconds and value == math.floor(value):
        return SECOND
    if res.millis and whole_ms(value):
        return MS
    return 0.0


_CACHE: dict[tuple[str, int, int], Resolutions] = {}


def file_resolution(path: str) -> Resolutions:
    """The resolutions of the file at ``path`` (decompressed if need be),
    from its first :data:`SAMPLE_LINES` timed lines; none if it cannot be read.
    A ``file:`` URI (as Spark names local files) is read as its path."""
    if path.startswith("file:"):
        from urllib.parse import unquote, urlparse

        path = unquote(urlparse(path).path)
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return Resolutions()
    key = (path, st.st_size, st.st_mtime_ns)
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    try:
        stream, _ = open_decompressed(path)
    except Exception:  # an unreadable file has no resolutions; the run goes on
        return Resolutions()
    parts: list[bytes] = []
    got = 0
    try:
        while got < SAMPLE_BYTES:
            block = stream.read(SAMPLE_BYTES - got)
            if not block:
                break
            parts.append(block)
            got += len(block)
    except Exception:  # a damaged stream: what was read counts
        pass
    finally:
        stream.close()
    head = b"".join(parts)
    if len(head) == SAMPLE_BYTES:
        head = head[: head.rfind(b"\n") + 1]  # whole lines only
    values: list[float] = []
    for raw in head.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n"):
        if not raw.strip():
            continue
        ts = parse_line(raw)[3]
        if ts is not None and ts == ts:
            values.append(ts)
            if len(values) >= SAMPLE_LINES:
                break
    res = classify(values)
    if len(_CACHE) > 4096:
        _CACHE.clear()
    _CACHE[key] = res
    return res
