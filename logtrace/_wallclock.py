"""The wall clock of span records: the one ``logging`` stamps its records with.

A span record's start and its own timestamp sit among the service's log lines,
so they read the clock those lines read: ``time.time()`` before Python 3.13,
``time.time_ns()`` from 3.13 on, looked up on the :mod:`time` module at each
call as :class:`logging.LogRecord` does. A process whose clock is moved after
logtrace was imported (by a test, or a library that moves time) moves its span
records with its lines, and the stitcher sees one clock per service.

A record factory or a filter may also move a record's ``created`` after it
was made; logtrace's JSON formatter then moves the span's start with it
(:func:`restamp_span_start`), so that start and end stay on one clock.
"""

from __future__ import annotations

import logging
import sys
import time
from datetime import datetime, timedelta, timezone
from time import perf_counter_ns
from typing import Any

from ._fields import iso_utc

__all__ = ["clock_pair", "restamp_span_start", "wall_ns"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)
_SAME_CLOCK_NS = 1_000_000
"""How far a record's time may be from when it was made before it counts as moved."""

_time = time.time
_time_ns = time.time_ns

if sys.version_info >= (3, 13):

    def wall_ns() -> int:
        """Nanoseconds since the epoch, as ``logging`` reads them."""
        return time.time_ns()

else:

    def wall_ns() -> int:
        """Nanoseconds since the epoch, as ``logging`` reads them: from
        ``time.time()`` (converted as the JSON formatter converts
        ``record.created``) once that was replaced, else the same clock read
        as an integer (less than half the cost)."""
        if time.time is _time:
            return _time_ns()
        return round(time.time() * 1e9)


_PAIR_NS = 20_000
"""How long a reading of both clocks may take before it is read again."""
_PAIR_TRIES = 4


def clock_pair() -> tuple[int, int]:
    """The wall clock (:func:`wall_ns`) and ``perf_counter_ns()`` read at one
    instant. A span's start is a wall time and its end that time plus a
    duration the performance counter measured, so the two readings must be
    of one moment: a garbage collection or a thread switch between them
    (hundreds of microseconds) moves every time the span states by as much,
    and a server's answer comes out later than its caller heard it. The
    counter is read on both sides of the wall clock and the pair taken again
    while that took longer than 20 µs."""
    for _ in range(_PAIR_TRIES):
        before = perf_counter_ns()
        wall = wall_ns()
        after = perf_counter_ns()
        if after - before <= _PAIR_NS:
            break
    return wall, (before + after) // 2


def _moved_ns(record: logging.LogRecord) -> int:
    """How far ``record.created`` was moved after the record was made (by a
    record factory or a filter); ``relativeCreated`` keeps the time it was
    made with."""
    start: Any = getattr(logging, "_startTime", None)
    if start is None:
        return 0
    if sys.version_info >= (3, 13):
        made = start + record.relativeCreated * 1e6
    else:
        made = (start + record.relativeCreated / 1e3) * 1e9
    moved = round(record.created * 1e9 - made)
    return moved if abs(moved) > _SAME_CLOCK_NS else 0


def restamp_span_start(fields: dict[str, Any], key: str, record: logging.LogRecord) -> None:
    """Move a span record's start (``fields[key]``, ISO 8601 UTC) as far as
    its ``created`` was moved after the record was made: the record's time is
    the span's end, and both must stay on the clock the service's lines show."""
    moved = _moved_ns(record)
    text = fields.get(key)
    if not moved or type(text) is not str:
        return
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return
    if at.tzinfo is None:
        return
    fields[key] = iso_utc((at - _EPOCH) // _MICROSECOND * 1000 + moved)
