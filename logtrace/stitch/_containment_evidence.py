"""Containment evidence: what one partition's spans say of which service
calls which, as plain columns (:mod:`._evidence`) that the run decides on
(:class:`._containment.LinkDecider`).

Per span pair of two services in one trace that could be caller and
callee: the offsets at which the first contains the second
(:func:`containment_interval`), those at which the second fits between two
consecutive records of the first (:mod:`._record_gaps`), and, summed over
the partition's traces, those at which it fits between two records at the
same positions in every trace (:mod:`._record_positions`); each for the
callees' whole spans and for their spans without the last line.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ._calls import sample_keys
from ._evidence import AGAIN, FOLLOWED, GAP, LATER, POSITION, TRIMMED, Evidence, empty_evidence
from ._model import Table, Tree
from ._record_gaps import RecordGaps, logged_gaps, without_last_line
from ._record_positions import position_evidence
from ._resolution import row_resolution, span_resolution
from ._span_extras import answered_ends
from ._span_openings import opens_alike
from ._span_pairs import after_own_service, inside_own_service, span_pairs, unlinked_spans

__all__ = ["containment_evidence", "containment_interval", "spans_resolution"]

I8 = npt.NDArray[np.int8]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


def containment_interval(tree: Tree, a: I64, b: I64, res: F64) -> tuple[F64, F64]:
    """Offsets (callee's clock minus caller's) for which ``a`` contains ``b``;
    ``res`` per span is how long its times last (a span whose lines name
    whole milliseconds may end up to one later, and its callee start one
    later: :func:`spans_resolution`)."""
    lo: F64 = tree.end[b] - tree.end[a] - res[a]
    hi: F64 = tree.start[b] - tree.start[a] + res[b]
    return lo, hi


def spans_resolution(table: Table, tree: Tree) -> F64:
    """Per span of ``tree``: how long the times of its lines last, at most."""
    return span_resolution(table, len(tree.parent), row_resolution(table))


def containment_evidence(table: Table, tree: Tree) -> Evidence:
    """One partition's evidence: the span pairs whose durations let the
    first contain the second, with their intervals, for callees' whole
    spans and for their spans without the last line."""
    parts: list[tuple[I64, I64, F64, F64, I8]] = []
    row_res = row_resolution(table)
    a, b, gap_lo, gap_hi, gaps = logged_gaps(table, tree, row_res)
    if len(a):
        parts.append((a, b, gap_lo, gap_hi, np.full(len(a), GAP, dtype=np.int8)))
    res = span_resolution(table, len(tree.parent), row_res)
    tree = answered_ends(table, tree, unlinked_spans(table, tree))
    inner = inside_own_service(table, tree, res)
    later, follows = after_own_service(table, tree, res)
    followed = np.zeros(len(later), dtype=bool)
    followed[follows[follows >= 0]] = True
    again = later & opens_alike(table, follows)
    trimmed: Tree | None = None
    positions: list[tuple[I32, I32, F64, F64, I64, I8]] = []
    for a, b in span_pairs(table, tree):
        b_inner = inner[b]
        a, b = a[~b_inner], b[~b_inner]
        gaps = gaps or RecordGaps(table, tree, row_res)
        trimmed = trimmed or without_last_line(table, tree)
        for kind, fit in ((0, tree), (TRIMMED, trimmed)):
            lo, hi = containment_interval(fit, a, b, res)
            ok = lo <= hi
            parts.append((a[ok], b[ok], lo[ok], hi[ok], np.full(int(ok.sum()), kind, np.int8)))
            placed = position_evidence(table, fit, gaps.records, a[ok], b[ok], res)
            kinds = np.full(len(placed[0]), kind | POSITION, dtype=np.int8)
            positions.append((*placed, kinds))
            pair, gap_lo, gap_hi = gaps.intervals(fit, a[ok], b[ok])
            found = np.full(len(pair), kind | GAP, dtype=np.int8)
            parts.append((a[ok][pair], b[ok][pair], gap_lo, gap_hi, found))
    if not parts:
        return empty_evidence()
    a = np.concatenate([p[0] for p in parts])
    b = np.concatenate([p[1] for p in parts])
    lo = np.concatenate([p[2] for p in parts])
    hi = np.concatenate([p[3] for p in parts])
    kinds = np.concatenate([p[4] for p in parts])
    kinds[later[b]] |= LATER
    kinds[followed[b]] |= FOLLOWED
    kinds[again[b]] |= AGAIN
    trace = table.span_trace[b].astype(np.int64)
    with_pairs, at = np.unique(trace, return_inverse=True)
    keys = sample_keys([table.traces[t] for t in with_pairs.tolist()])[at.ravel()]
    callees, at = np.unique(b, return_inverse=True)
    callee_keys = sample_keys([table.spans[s] for s in callees.tolist()])[at.ravel()] ^ keys
    found_rows = (
        tree.service[a].astype(np.int32),
        tree.service[b].astype(np.int32),
        lo,
        hi,
        keys,
        callee_keys,
        kinds,
    )
    # Summed over traces, kept whatever traces the run samples: no trace key.
    summed = [(*p[:4], np.full(len(p[0]), -1, dtype=np.int64), p[4], p[5]) for p in positions]
    columns = zip(found_rows, *summed, strict=True)
    return tuple(np.concatenate(c) for c in columns)  # type: ignore[return-value]
