"""Rule 4 of :mod:`._order_rules` over a whole partition: the caller's lines
that bracket each call where the times leave the order open.

Per call, from every line of its callee's call (the callee span's and those
of the spans under it up to the next call, span records included): the
latest the callee can have started (the earliest end of those lines'
intervals, or a span record's start) and the earliest it can have ended
(their latest time). The caller's own lines, in key order, each no earlier
than the lines before it in its file, the start its span states and the
send of a call it is in (``CallerLines.floor``): the longest run
from the first that all surely came before the callee ended and may have
come before it started bounds the call's lines from below; the longest run
to the last that all surely came after it started and may have come after
it ended bounds them from above. Only calls where either side writes coarse
times take part.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ._order_keys import MAX_WRITER_HOPS
from ._segments import segmented

__all__ = ["CallLines", "CallerLines", "bracket_writers", "call_brackets"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

_INF = np.inf


@dataclass(slots=True)
class CallerLines:
    """The spans' own lines with a time (no span records), in group order."""

    span: I64
    t: F64
    """Corrected time."""
    res: F64
    keys: F64
    floor: F64
    """The earliest it can have been written: its time, or a later one that
    an earlier line of its file and trace (a span record's stated start)
    gives."""


@dataclass(slots=True)
class CallLines:
    """Every line with a time of each call: the callee span whose call it is in."""

    call: I64
    t: F64
    """Corrected time (``-inf``: a line that says nothing of when the call
    ended, a span record written late)."""
    started_by: F64
    """The latest its span can have started: the time's interval end, or a
    span record's corrected start."""
    coarse: B


def call_brackets(
    caller_lines: CallerLines, call_lines: CallLines, n_spans: int, caller: I64, callee: I64
) -> tuple[F64, F64]:
    """Per call: the key its callee's lines stay above and the key they stay
    below (``-inf`` and ``inf`` where the caller's lines say nothing)."""
    n_calls = len(caller)
    before = np.full(n_calls, -_INF)
    after = np.full(n_calls, _INF)
    span, lo, keys = caller_lines.span, caller_lines.floor, caller_lines.keys
    hi = caller_lines.t + caller_lines.res
    coarse = np.zeros(n_spans, dtype=bool)
    coarse[span[caller_lines.res > 0]] = True
    coarse_call = np.zeros(n_spans, dtype=bool)
    coarse_call[call_lines.call[call_lines.coarse]] = True
    chosen = np.flatnonzero(coarse[caller] | coarse_call[callee])
    if not len(chosen) or not len(span):
        return before, after
    p, x = caller[chosen], callee[chosen]
    start_by = np.full(n_spans, _INF)
    np.minimum.at(start_by, call_lines.call, call_lines.started_by)
    end_from = np.full(n_spans, -_INF)
    np.maximum.at(end_from, call_lines.call, call_lines.t)
    latest_start, earliest_end = start_by[x], end_from[x]

    # The callers' lines, each span's in key order (group order already is,
    # unless a span's lines are in two files).
    is_caller = np.zeros(n_spans, dtype=bool)
    is_caller[p] = True
    sel = np.flatnonzero(is_caller[span])
    o = sel[np.argsort(span[sel], kind="stable")]
    s_span, s_key = span[o], keys[o]
    same = s_span[1:] == s_span[:-1]
    if (same & (s_key[1:] < s_key[:-1])).any():
        o = sel[np.lexsort((keys[sel], span[sel]))]
        s_span, s_key = span[o], keys[o]
        same = s_span[1:] == s_span[:-1]
    s_lo, s_hi = lo[o], hi[o]
    boundary = np.empty(len(o), dtype=bool)
    boundary[:1] = True
    np.logical_not(same, out=boundary[1:])
    first = np.searchsorted(s_span, p, side="left")
    size = np.searchsorted(s_span, p, side="right") - first
    known = (size > 0) & np.isfinite(latest_start)

    # From the first line on: surely before the end, maybe before the start.
    run = np.minimum(
        _count(segmented(s_hi.copy(), boundary, np.fmax, False), first, size, earliest_end, True),
        _count(segmented(s_lo.copy(), boundary, np.fmax, False), first, size, latest_start, True),
    )
    ok = known & (run > 0)
    before[chosen[ok]] = s_key[(first + run - 1)[ok]]
    # Back from the last line: surely after the start, maybe after the end.
    skip = np.maximum(
        _count(segmented(s_lo.copy(), boundary, np.fmin, True), first, size, latest_start, True),
        _count(segmented(s_hi.copy(), boundary, np.fmin, True), first, size, earliest_end, False),
    )
    ok = known & (skip < size)
    after[chosen[ok]] = s_key[(first + skip)[ok]]
    return before, after


def _count(values: F64, first: I64, size: I64, q: F64, strict: bool) -> I64:
    """Per query: how many of ``values[first:first + size]`` (ascending) are
    below ``q`` (``strict``) or at most ``q``: a bisection of every group at
    once, a step per halving of the longest."""
    lo = first.copy()
    hi = first + size
    while True:
        open_ = lo < hi
        if not open_.any():
            break
        mid = (lo + hi) // 2
        value = values[np.where(open_, mid, 0)]
        below = open_ & ((value < q) if strict else (value <= q))
        lo = np.where(below, mid + 1, lo)
        hi = np.where(open_ & ~below, mid, hi)
    counted: I64 = lo - first
    return counted


def bracket_writers(caller_lines: CallerLines, caller: I64, parent: I64, service: I64) -> I64:
    """Per call: the span whose own lines bracket it, the caller or, where
    that writes none (a client span whose only line is its record), the
    nearest span above it in its service that does."""
    n_spans = len(parent)
    writes = np.zeros(n_spans, dtype=bool)
    writes[caller_lines.span] = True
    writer: I64 = caller.copy()
    for _ in range(MAX_WRITER_HOPS):
        up = parent[writer]
        move = ~writes[writer] & (up >= 0)
        move[move] &= service[up[move]] == service[writer[move]]
        if not move.any():
            break
        writer[move] = up[move]
    return writer
