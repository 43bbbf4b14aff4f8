"""Order: traces by start, records of a trace in narrative order.

Records are merged across files by corrected time, but one file is one
clock: its records never swap places. Where a file's own timestamps go
backwards (threads racing to the log), a record keeps the latest time seen
before it in that file and trace, so the merge below cannot reorder them.
Lines without a trace come last, in file and line order.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ._model import Order, Table

__all__ = ["order"]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


def order(table: Table, corrected: F64) -> Order:
    """Output order of all rows.

    ``corrected`` holds per-row corrected times (NaN for lines without one).
    """
    rows = table.rows
    trace = rows["trace"]
    n_traces = len(table.traces)
    traced = np.flatnonzero(trace >= 0)
    # Rows are in (file, line) order already; a stable sort by (trace, file) keeps it.
    key = trace[traced].astype(np.int64) * max(len(table.sources), 1) + table.file[traced]
    perm = np.argsort(key, kind="stable")
    by_group = traced[perm]
    group_key = key[perm]
    ts = corrected[by_group]
    ts = _fill_and_hold(ts, group_key)
    t_of = trace[by_group]
    start = np.full(n_traces, np.inf)
    end = np.full(n_traces, -np.inf)
    finite = ~np.isnan(ts)
    np.minimum.at(start, t_of[finite], ts[finite])
    np.maximum.at(end, t_of[finite], ts[finite])
    start[np.isinf(start)] = np.nan
    end[np.isinf(end)] = np.nan

    # Trace rank: by start time, traces without any time last, ties by first appearance.
    sort_start = np.where(np.isnan(start), np.inf, start)
    rank = np.empty(n_traces, dtype=np.int64)
    rank[np.lexsort((np.arange(n_traces), sort_start))] = np.arange(n_traces)
    # Lines without a time inside a trace sort first among its lines of equal time.
    ts = np.where(np.isnan(ts), -np.inf, ts)
    final = by_group[np.lexsort((ts, rank[t_of]))]
    tail = np.flatnonzero(trace < 0)
    out = np.concatenate([final, tail]).astype(np.int64)
    return Order(out, len(final), start, end)


def _fill_and_hold(ts: F64, group: npt.NDArray[np.int64]) -> F64:
    """Within each group (a trace's records in one file, in line order): fill
    missing times from the previous record (or the next, at the start), then
    hold the running maximum so that the file's order is never undone."""
    n = len(ts)
    if n == 0:
        return ts
    boundary = np.empty(n, dtype=bool)
    boundary[0] = True
    np.not_equal(group[1:], group[:-1], out=boundary[1:])
    missing = np.isnan(ts)
    if missing.any():
        idx = np.where(missing & ~boundary, 0, np.arange(n))
        np.maximum.accumulate(idx, out=idx)
        ts = ts[idx]  # forward fill within groups (boundaries never take from before)
        still = np.isnan(ts)
        if still.any():
            rev = ts[::-1]
            rb = np.empty(n, dtype=bool)
            rb[0] = True
            np.not_equal(group[::-1][1:], group[::-1][:-1], out=rb[1:])
            ridx = np.where(np.isnan(rev) & ~rb, 0, np.arange(n))
            np.maximum.accumulate(ridx, out=ridx)
            ts = rev[ridx][::-1].copy()
    else:
        ts = ts.copy()
    back = np.flatnonzero((ts[1:] < ts[:-1]) & ~boundary[1:]) + 1
    if len(back):
        starts = np.flatnonzero(boundary)
        for g in np.unique(np.searchsorted(starts, back, side="right") - 1):
            lo = starts[g]
            hi = starts[g + 1] if g + 1 < len(starts) else n
            np.fmax.accumulate(ts[lo:hi], out=ts[lo:hi])
    return ts
