"""Build the span tree of every trace at once, as arrays over all spans.

A span's parent comes from its records' ``parent_span_id``. Spans whose
parent is not in the logs (a service that wrote nothing, a rotated-away file)
hang under their trace's root and are flagged; a trace with no root at all
puts them at depth 0. Depths are found by pointer jumping, so a million spans
cost a few vectorised passes, and a cycle in hostile input cannot loop.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import numpy.typing as npt

from ._model import KIND_CLIENT, SPAN_RECORD, Table, Tree

__all__ = ["build_tree", "relink", "span_extents"]

I32 = npt.NDArray[np.int32]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

_MAX_DEPTH = 256


def span_extents(n: int, span: I32, at: F64, declared: F64) -> tuple[F64, F64]:
    """Per span of ``n``: earliest record time or declared start, latest record time.

    ``span`` is each row's span (-1 for none), ``at`` its time and ``declared``
    its ``span.start`` (NaN for none); spans without a time get NaN.
    """
    has_span = span >= 0
    timed = has_span & ~np.isnan(at)
    start = np.full(n, np.inf)
    end = np.full(n, -np.inf)
    np.minimum.at(start, span[timed], at[timed])
    np.maximum.at(end, span[timed], at[timed])
    with_start = has_span & ~np.isnan(declared)
    np.minimum.at(start, span[with_start], declared[with_start])
    start[np.isinf(start)] = np.nan
    end[np.isinf(end)] = np.nan
    return start, end


def build_tree(table: Table) -> Tree:
    rows = table.rows
    n = len(table.spans)
    span = rows["span"]
    parent_col = rows["parent"]
    has_span = span >= 0
    present = np.zeros(n, dtype=bool)
    present[span[has_span]] = True
    parent = np.full(n, -1, dtype=np.int32)
    linked = has_span & (parent_col >= 0) & (parent_col != span)
    parent[span[linked]] = parent_col[linked]
    service = np.full(n, -1, dtype=np.int32)
    # Reverse assignment: the first record of a span wins.
    service[span[has_span][::-1]] = rows["svc"][has_span][::-1]

    flags = rows["flags"]
    record = has_span & ((flags & SPAN_RECORD) != 0)
    start, end = span_extents(n, span, rows["ts"], np.where(record, table.span_start, np.nan))
    client = np.zeros(n, dtype=bool)
    client[span[record & ((flags & KIND_CLIENT) != 0)]] = True

    blank = np.zeros(0, dtype=np.int32)
    tree = Tree(parent, present, blank, blank.astype(bool), service, start, end, client, blank)
    return relink(table, tree)


def relink(table: Table, tree: Tree) -> Tree:
    """``tree`` with orphan flags and depths (per span and per row) found
    again from its ``parent`` array (after parents were added to it)."""
    parent, present = tree.parent, tree.present
    n = len(parent)
    has_parent = parent >= 0
    orphan = np.zeros(n, dtype=bool)
    orphan[has_parent] = ~present[parent[has_parent]]
    trace_of = table.span_trace
    has_root = np.zeros(len(table.traces), dtype=bool)
    has_root[trace_of[present & ~has_parent]] = True

    depth = np.full(n, -1, dtype=np.int32)
    depth[~has_parent] = 0
    depth[orphan] = has_root[trace_of[orphan]].astype(np.int32)
    pending = np.flatnonzero(depth < 0)
    for _ in range(_MAX_DEPTH):
        if not len(pending):
            break
        up = depth[parent[pending]]
        done = up >= 0
        depth[pending[done]] = up[done] + 1
        pending = pending[~done]
    if len(pending):  # a cycle of parents: treat its members as orphans
        orphan[pending] = True
        depth[pending] = has_root[trace_of[pending]].astype(np.int32)

    rows = table.rows
    span = rows["span"]
    has_span = span >= 0
    row_depth = np.zeros(len(rows), dtype=np.int32)
    row_depth[has_span] = depth[span[has_span]]
    return replace(tree, orphan=orphan, depth=depth, row_depth=row_depth)
