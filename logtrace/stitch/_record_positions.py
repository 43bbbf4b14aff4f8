"""Where a callee lies among its caller's records, counted by position: the
first clocks for a caller that does not wait for its call.

A gateway that gathers two calls writes lines while both run ("call
pricing", then the answer from pricing while orders still works), so
orders fits between none of two consecutive lines of the gateway
(:mod:`._record_gaps`) and only the gateway's whole span bounds it, which
leaves the offset several milliseconds wide. Yet the gateway writes the
same lines in the same order in every trace: orders always starts after
its ``i``-th record from the start and ends before its ``j``-th from the
end. For every such position pair, a span pair gives the offsets at which
the callee fits between the two records (:func:`position_evidence`)::

    end - r[m - 1 - j]  <=  d  <=  start - r[i]              (raw clocks)

Per trace the pair's interval is the union over its candidate span pairs
(the true pair is among them); over traces, the intersection. A position
pair consistent over nearly every trace bounds the offset. The pairs that
truly bracket the call all hold the true offset; a pair can also be steady
by chance (an answer line's position depends on which of several gathered
callees answered first) and hold a stretch beside it. The stretch that the
most pairs hold stands (:func:`position_stretches`); where two stretches
apart are held by as many, none does.

The summary is mergeable: per partition and service pair, per position
pair, the largest low bound, the smallest high bound and how many traces
give them, as rows of containment evidence (:mod:`._evidence`, bit
:data:`._evidence.POSITION`) that the sampling of traces always keeps.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ._interval_depth import depths
from ._model import Table, Tree
from ._record_gaps import SpanRecords

__all__ = ["MAX_POSITION", "POSITION_SHARE", "position_evidence", "position_stretches"]

I8 = npt.NDArray[np.int8]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

MAX_POSITION = 12
"""Records counted from each end of a caller's span: a position pair's
first record is among its first this many, its second among its last."""
POSITION_SHARE = 0.95
"""A position pair bounds a link when the caller's spans of this share of
the link's traces at least have records at both positions."""
_COUNT_SHIFT = 20
_INDEX_SHIFT = 10

PositionRows = tuple[I32, I32, F64, F64, I64]
"""Caller's and callee's service, the low and high bound, and the packed
position pair and trace count (:func:`position_evidence`)."""


def position_evidence(
    table: Table, tree: Tree, records: SpanRecords, a: I64, b: I64, res: F64
) -> PositionRows:
    """For the span pairs (caller ``a``, callee ``b``) of one partition: per
    service pair and position pair (the caller's ``i``-th record from the
    start, its ``j``-th from the end, both counted from zero), the largest
    low bound over traces, the smallest high bound and the traces counted.
    ``records``: the partition's records by span (the callers' ones count);
    ``res`` per span: how long its times last."""
    ts, lasts, begin = records.first, records.last, records.begin
    m = records.count[a]
    start = tree.start[b] + res[b]
    end = tree.end[b]
    parts: list[tuple[I64, I64, F64, F64]] = []
    for i in range(MAX_POSITION):
        for j in range(MAX_POSITION):
            valid = np.flatnonzero(m - 1 - j > i)
            if not len(valid):
                continue
            first = ts[begin[a[valid]] + i]
            after = lasts[begin[a[valid]] + m[valid] - 1 - j]
            code = np.full(len(valid), (i << _INDEX_SHIFT) | j, dtype=np.int64)
            parts.append((valid, code, end[valid] - after, start[valid] - first))
    if not parts:
        return _empty()
    pair = np.concatenate([p[0] for p in parts])
    code = np.concatenate([p[1] for p in parts])
    lo = np.concatenate([p[2] for p in parts])
    hi = np.concatenate([p[3] for p in parts])
    svc_a = tree.service[a[pair]].astype(np.int64)
    svc_b = tree.service[b[pair]].astype(np.int64)
    trace = table.span_trace[b[pair]].astype(np.int64)
    # Per trace, the union of its span pairs' non-empty intervals (none: empty).
    fits = lo <= hi
    lo = np.where(fits, lo, np.inf)
    hi = np.where(fits, hi, -np.inf)
    _, at = np.unique(np.stack([svc_a, svc_b, code, trace]), axis=1, return_inverse=True)
    at = at.ravel()
    per_lo = np.full(at.max() + 1, np.inf)
    per_hi = np.full(at.max() + 1, -np.inf)
    np.minimum.at(per_lo, at, lo)
    np.maximum.at(per_hi, at, hi)
    first_of = np.zeros(at.max() + 1, dtype=np.int64)
    first_of[at] = np.arange(len(at))
    # Over traces: the intersection, and how many traces.
    key = np.stack([svc_a[first_of], svc_b[first_of], code[first_of]])
    groups, at = np.unique(key, axis=1, return_inverse=True)
    at = at.ravel()
    out_lo = np.full(groups.shape[1], -np.inf)
    out_hi = np.full(groups.shape[1], np.inf)
    np.maximum.at(out_lo, at, per_lo)
    np.minimum.at(out_hi, at, per_hi)
    traces = np.bincount(at, minlength=groups.shape[1]).astype(np.int64)
    packed = (traces << _COUNT_SHIFT) | groups[2]
    return groups[0].astype(np.int32), groups[1].astype(np.int32), out_lo, out_hi, packed


def position_stretches(
    svc_a: I32, svc_b: I32, lo: F64, hi: F64, packed: I64, width: int
) -> dict[int, tuple[float, float, int]]:
    """Per service pair (caller index times ``width`` plus callee's), from
    every partition's rows (:func:`position_evidence`): the offsets that the
    most position pairs consistent over their traces hold (pairs where the
    caller's spans of :data:`POSITION_SHARE` of the service pair's traces
    have records at both positions), and in how many traces the steadiest
    of those is. Where two stretches apart are held by as many, none."""
    if not len(svc_a):
        return {}
    pair = svc_a.astype(np.int64) * width + svc_b
    code = packed & ((1 << _COUNT_SHIFT) - 1)
    traces = packed >> _COUNT_SHIFT
    groups, at = np.unique(np.stack([pair, code]), axis=1, return_inverse=True)
    at = at.ravel()
    g_lo = np.full(groups.shape[1], -np.inf)
    g_hi = np.full(groups.shape[1], np.inf)
    np.maximum.at(g_lo, at, lo)
    np.minimum.at(g_hi, at, hi)
    g_traces = np.bincount(at, weights=traces, minlength=groups.shape[1])
    out: dict[int, tuple[float, float, int]] = {}
    for p in np.unique(groups[0]).tolist():
        mine = groups[0] == p
        enough = g_traces[mine] >= POSITION_SHARE * g_traces[mine].max()
        steady = enough & (g_lo[mine] <= g_hi[mine])
        held = _most_held(g_lo[mine][steady], g_hi[mine][steady])
        if held is not None:
            inside = (g_lo[mine] <= held[0]) & (g_hi[mine] >= held[1]) & steady
            out[p] = (held[0], held[1], int(g_traces[mine][inside].max()))
    return out


def _most_held(lo: F64, hi: F64) -> tuple[float, float] | None:
    """The stretch that the most intervals ``[lo, hi]`` hold; ``None`` where
    none is, or where two stretches apart are held by as many. The pairs
    that truly bracket a call all hold the true offset; a pair steady by
    chance (an answer line at a position another callee's answer takes in
    other traces) holds a stretch beside it with fewer others."""
    if not len(lo):
        return None
    coord, depth = depths(lo, hi)
    # Stretch k runs from end k to end k + 1 at depth[k].
    at = np.flatnonzero(depth == depth.max())
    if (np.diff(at) > 1).any():
        return None
    return float(coord[at[0]]), float(coord[at[-1] + 1])


def _empty() -> PositionRows:
    f = np.empty(0, dtype=np.float64)
    i = np.empty(0, dtype=np.int32)
    return i, i, f, f, np.empty(0, dtype=np.int64)
