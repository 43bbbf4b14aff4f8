"""Where most intervals agree: the offsets a pair of services' evidence
points to.

Each span pair of two services in one trace gives an interval of offsets
(the callee's clock minus the caller's) at which the caller contains the
callee (:mod:`._containment`), or at which the callee fits between two of
the caller's records (:mod:`._record_gaps`). The intervals of real calls
all hold the true offset; those of unrelated spans scatter. The *depth* of
an offset is how many intervals hold it; the evidence points to the
stretch around the deepest offset, down to :data:`NEAR_DEPTH` of it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = [
    "CLOSE",
    "NEAR_DEPTH",
    "Intervals",
    "around",
    "deepest",
    "depths",
    "packing_at",
    "snug",
    "snug_stretches",
    "snuggest",
]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

NEAR_DEPTH = 0.9
"""The share of the deepest point's depth the stretch around it keeps."""
Intervals = tuple[F64, F64, I64, I64]
"""Each interval's ``lo`` and ``hi``, its trace's key and its callee span's."""


def deepest(lo: F64, hi: F64, keys: I64, callees: I64) -> tuple[float, float, int, int]:
    """The offsets that nearly as many intervals hold as the most do (the
    stretch around the deepest point, down to :data:`NEAR_DEPTH` of it:
    unrelated spans that happen to fit pile up beside the true offset and
    may pull the deepest point off it), and how many traces and callee spans
    hold the deepest point."""
    coord, depth = _trace_depths(lo, hi, keys)
    return _stretch(coord, depth, int(np.argmax(depth)), lo, hi, keys, callees)


def snuggest(lo: F64, hi: F64, keys: I64, callees: I64) -> tuple[float, float, int, int]:
    """As :func:`deepest`, for intervals at which callees fit between two
    records of their callers: the first of :func:`snug_stretches`."""
    return snug_stretches(lo, hi, keys, callees)[0]


def snug_stretches(
    lo: F64, hi: F64, keys: I64, callees: I64
) -> list[tuple[float, float, int, int]]:
    """As :func:`deepest`, for intervals at which callees fit between two
    records of their callers: of the stretches nearly as deep as the
    deepest, the deepest, the one with the most fits per unit of room they
    leave (depth over the median width of the intervals holding the deepest
    point) among equals; then the others with nearly as many fits per unit
    of room as it (:data:`CLOSE`), deepest first. A callee fits the gap of
    its own call with the round trip to spare, and a wider gap (a longer
    call of the same caller, made before or after) with that call's length
    to spare: both in every trace, one snug and one loose. A call beside one
    to the same service as long (a gateway calling stock, which calls the
    database, then the database itself) fits as snugly, and a gap of the
    caller's own about as long as the callee (a pause of 2 ms around a
    2 ms call) more snugly still, in nearly every trace: the service graph
    decides between those (:func:`._record_gaps.choose_stretches`).

    The depth counts callee spans that one interval alone holds, where
    some offset has nearly every callee so held (:func:`_callee_depths`):
    times to the millisecond widen each gap until a short call's callee
    fits its neighbour too, and counted once per interval, the overlap of
    the two is deepest, beside the truth. Where no offset has (calls in a
    row within one millisecond: each callee fits two gaps at the truth),
    intervals are counted."""
    coord, depth = _gap_depths(lo, hi, callees)
    deep = depth >= NEAR_DEPTH * depth.max()
    starts = np.flatnonzero(deep & ~np.r_[False, deep[:-1]])
    ends = np.flatnonzero(deep & ~np.r_[deep[1:], False]) + 1
    if len(starts) < 2:
        return [_stretch(coord, depth, int(np.argmax(depth)), lo, hi, keys, callees)]
    tops = [s + int(np.argmax(depth[s:e])) for s, e in zip(starts, ends, strict=True)]
    tops = sorted(tops, key=lambda k: -depth[k])[:_MAX_STRETCHES]
    packed = {k: depth[k] / _room(coord, k, lo, hi) for k in tops}
    ranked = sorted(tops, key=lambda k: (-depth[k], -packed[k]))
    best = packed[ranked[0]]
    kept = [ranked[0], *(k for k in ranked[1:] if packed[k] >= CLOSE * best)]
    return [_stretch(coord, depth, k, lo, hi, keys, callees) for k in kept]


CLOSE = 0.9
"""How closely another stretch's fits must pack for :func:`snug_stretches`
to offer it beside the best."""
_MAX_STRETCHES = 16
"""The deepest stretches :func:`snuggest` compares, at most."""


def deepest_packing(lo: F64, hi: F64, callees: I64) -> float:
    """At the deepest point of the intervals: how many callee spans hold it
    per unit of room they leave there (see :func:`snug_stretches`)."""
    coord, depth = depths(lo, hi)
    at = int(np.argmax(depth))
    return len(np.unique(callees[_holding(coord, at, lo, hi)])) / _room(coord, at, lo, hi)


def packing_at(lo: F64, hi: F64, callees: I64, at: float) -> float:
    """At the offset ``at``: how many callee spans hold it per unit of the
    room they leave there (the median width of the intervals holding it,
    at least :data:`MIN_ROOM`). Fits snug in many traces pack densely; loose
    fits that barely overlap give a narrow stretch of offsets, but not a
    dense one."""
    inside = (lo <= at) & (hi >= at)
    if not inside.any():
        return 0.0
    room = max(float(np.median(hi[inside] - lo[inside])), MIN_ROOM)
    return len(np.unique(callees[inside])) / room


def _holding(coord: F64, at: int, lo: F64, hi: F64) -> npt.NDArray[np.bool_]:
    """Which intervals hold the stretch from ``coord[at]`` to the next end."""
    held: npt.NDArray[np.bool_] = (lo <= coord[at]) & (hi >= coord[min(at + 1, len(coord) - 1)])
    return held


def _room(coord: F64, at: int, lo: F64, hi: F64) -> float:
    """The median width of the intervals holding ``coord[at]`` (at least
    :data:`MIN_ROOM`)."""
    inside = _holding(coord, at, lo, hi)
    if not inside.any():
        return np.inf
    return max(float(np.median(hi[inside] - lo[inside])), MIN_ROOM)


MIN_ROOM = 1e-6
"""Seconds: the least room :func:`snuggest` counts a stretch's fits with."""


def around(
    lo: F64, hi: F64, keys: I64, callees: I64, near: float
) -> tuple[float, float, int, int] | None:
    """As :func:`deepest`, around the offset ``near`` instead of the deepest
    point, if intervals of nearly as many traces hold it (else ``None``).
    Traces, not intervals: a callee service called twice in a trace, once
    inside a longer call of the same caller, has more intervals beside the
    true offset than at it, in every trace alike."""
    coord, depth = depths(lo, hi)
    at = max(int(np.searchsorted(coord, near, side="right")) - 1, 0)
    top = int(np.argmax(depth))
    held = len(np.unique(keys[(lo <= coord[at]) & (hi >= coord[at])]))
    most = len(np.unique(keys[(lo <= coord[top]) & (hi >= coord[top])]))
    if held < NEAR_DEPTH * most:
        return None
    return _stretch(coord, depth, at, lo, hi, keys, callees, float(depth[at]))


def depths(lo: F64, hi: F64) -> tuple[F64, F64]:
    """The intervals' ends in order, and how many intervals hold each."""
    coord = np.concatenate([lo, hi])
    delta = np.concatenate([np.ones(len(lo)), -np.ones(len(hi))])
    kind = np.concatenate([np.zeros(len(lo)), np.ones(len(hi))])  # openings first on ties
    perm = np.lexsort((kind, coord))
    return coord[perm], np.cumsum(delta[perm])


def _trace_depths(lo: F64, hi: F64, keys: I64) -> tuple[F64, F64]:
    """As :func:`depths`, counting traces: each trace's intervals merged
    where they overlap first. A trace with more spans that could be callees
    (a background task traced as a span of its own beside the request)
    holds no offset more than once."""
    if not len(lo):
        return depths(lo, hi)
    perm = np.lexsort((lo, keys))
    lo, hi, keys = lo[perm], hi[perm], keys[perm]
    first = np.r_[True, keys[1:] != keys[:-1]]
    group = np.cumsum(first) - 1
    base = lo[first][group]
    width = float(np.max(hi - base)) + 1.0
    # the running latest end within each trace (groups kept apart by width)
    reach = np.maximum.accumulate(group * width + (hi - base)) - group * width + base
    opens = first.copy()
    opens[1:] |= lo[1:] > reach[:-1]
    run = np.cumsum(opens) - 1
    ends = np.r_[np.flatnonzero(opens)[1:], len(lo)] - 1
    return depths(lo[opens], reach[ends][: int(run[-1]) + 1])


def _gap_depths(lo: F64, hi: F64, callees: I64) -> tuple[F64, F64]:
    """The intervals' ends in order, and at each the depth
    :func:`snug_stretches` goes by: callee spans one interval alone holds
    where some offset has nearly every callee so held, else intervals."""
    if len(lo):
        coord, once, alone = _callee_depths(lo, hi, callees)
        if alone.max() >= NEAR_DEPTH * once.max():
            return coord, alone
    return depths(lo, hi)


def _callee_depths(lo: F64, hi: F64, callees: I64) -> tuple[F64, F64, F64]:
    """The intervals' ends in order, and at each how many callee spans some
    interval holds, and how many one interval alone holds. A callee's
    intervals at one offset come from gaps of different caller spans, or
    from gaps of one span widened by coarse times (to the millisecond)
    until neighbours overlap: where two hold it, its caller's records do
    not bracket it one way there."""
    n = len(lo)
    coord = np.concatenate([lo, hi])
    who = np.concatenate([callees, callees])
    delta = np.concatenate([np.ones(n, dtype=np.int64), -np.ones(n, dtype=np.int64)])
    # per callee, by offset, closings first on ties: touching intervals
    # leave it held once, not twice
    perm = np.lexsort((-delta, coord, who))
    coord, delta = coord[perm], delta[perm]
    after = np.cumsum(delta)  # each callee's own count: its deltas sum to zero
    before = after - delta
    once = (after >= 1).astype(np.int64) - (before >= 1)
    alone = (after == 1).astype(np.int64) - (before == 1)
    order = np.argsort(coord, kind="stable")
    coord = coord[order]
    # at each offset, the depth once every change there is counted (not
    # the passing ones between)
    new = np.r_[True, coord[1:] != coord[:-1]]
    ends = (np.r_[np.flatnonzero(new)[1:], len(coord)] - 1)[np.cumsum(new) - 1]
    return (
        coord,
        np.cumsum(once[order])[ends].astype(np.float64),
        np.cumsum(alone[order])[ends].astype(np.float64),
    )


def _stretch(
    coord: F64,
    depth: F64,
    at: int,
    lo: F64,
    hi: F64,
    keys: I64,
    callees: I64,
    top: float | None = None,
) -> tuple[float, float, int, int]:
    """The stretch around ``coord[at]`` down to :data:`NEAR_DEPTH` of the
    deepest point (or of depth ``top``), and how many traces and callee
    spans hold ``coord[at]``."""
    # the intervals holding the middle of the stretch from coord[at] to the
    # next end (where intervals of one trace were merged, one alone may not
    # reach that end)
    mid = (coord[at] + coord[min(at + 1, len(coord) - 1)]) / 2
    inside = (lo <= mid) & (hi >= mid)
    low = depth < NEAR_DEPTH * (depth.max() if top is None else top)
    before = np.flatnonzero(low[:at])
    after = np.flatnonzero(low[at:])
    left = float(coord[before[-1] + 1]) if len(before) else float(coord[0])
    right = float(coord[at + after[0]]) if len(after) else float(coord[-1])
    return left, right, len(np.unique(keys[inside])), len(np.unique(callees[inside]))


def snug(
    contained: Intervals, fitted: list[tuple[float, float, int, int]]
) -> list[tuple[tuple[float, float, int, int], tuple[float, float] | None]]:
    """One pair's stretches (see :func:`deepest`) from its containment rows,
    each around an offset where most of its callees fit between two records
    of their callers (``fitted``: :func:`snug_stretches` of its gap rows), with
    that gap stretch, when about as many traces agree on it as on
    containment's deepest point and containment holds there nearly as
    often; else containment's deepest stretch alone. A callee service
    called from two places of a trace fits inside a caller's span at the
    offsets of both calls, and the count of containing spans may favour the
    wrong one by a few; only the right one puts each call in a gap between
    its caller's records."""
    lo, hi, keys, callees = contained
    deep = deepest(lo, hi, keys, callees)
    out: list[tuple[tuple[float, float, int, int], tuple[float, float] | None]] = []
    for fit in fitted:
        if fit[2] < NEAR_DEPTH * deep[2]:
            continue
        there = around(lo, hi, keys, callees, (fit[0] + fit[1]) / 2)
        if there is not None:
            out.append((there, (fit[0], fit[1])))
    return out or [(deep, None)]
