"""Correct clocks: observe every cross-service call, estimate, apply.

A call is a span whose parent belongs to another service. When the parent is
a client span with its own record, its start and end are exactly when the
caller sent the request and got the answer (on the caller's clock); else the
caller's enclosing span bounds the call, more loosely. The estimate itself
lives in :mod:`._clocks`; it sees the calls of all traces at once.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

from ._clocks import ClockModel, Edge, estimate_clocks
from ._group import Table
from ._tree import Tree

__all__ = ["apply_clocks", "call_edges", "estimate"]

F64 = npt.NDArray[np.float64]


def call_edges(table: Table, tree: Tree) -> Iterator[Edge]:
    """One :class:`Edge` per span whose parent span is in another service."""
    parent = tree.parent
    callee = np.flatnonzero(tree.present & (parent >= 0))
    caller = parent[callee]
    keep = tree.present[caller] & (tree.service[caller] != tree.service[callee])
    keep &= (tree.service[caller] >= 0) & (tree.service[callee] >= 0)
    callee, caller = callee[keep], caller[keep]
    send, start = tree.start[caller], tree.start[callee]
    keep = ~np.isnan(send) & ~np.isnan(start)
    callee, caller, send, start = callee[keep], caller[keep], send[keep], start[keep]
    receive, end = tree.end[caller], tree.end[callee]
    names = table.services
    for a, b, s, r, st, en, exact in zip(
        tree.service[caller].tolist(),
        tree.service[callee].tolist(),
        send.tolist(),
        receive.tolist(),
        start.tolist(),
        end.tolist(),
        tree.client[caller].tolist(),
    ):
        yield Edge(
            names[a],
            names[b],
            s,
            None if r != r else r,
            st,
            None if en != en else en,
            exact,
        )


def estimate(table: Table, tree: Tree) -> dict[str, ClockModel]:
    """Clock models for every service of the run, from all its calls."""
    return estimate_clocks(call_edges(table, tree), table.services)


def apply_clocks(table: Table, clocks: dict[str, ClockModel] | None) -> F64:
    """Corrected timestamps per row (NaN stays NaN); raw ones without clocks."""
    ts = table.rows["ts"]
    if not clocks:
        return ts.copy()
    n = len(table.services)
    offset = np.zeros(n)
    drift = np.zeros(n)
    ref = np.zeros(n)
    for i, name in enumerate(table.services):
        model = clocks.get(name)
        if model is not None:
            offset[i], drift[i], ref[i] = model.offset_s, model.drift, model.ref
    svc = table.rows["svc"]
    if not drift.any():
        return ts - offset[svc]
    return ts - offset[svc] - drift[svc] * (ts - ref[svc])
