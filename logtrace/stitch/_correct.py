"""Correct clocks: observe every cross-service call, estimate, apply.

A call is a span whose parent belongs to another service. When the parent is
a client span with its own record, its start and end are exactly when the
caller sent the request and got the answer (on the caller's clock); else the
caller's enclosing span bounds the call, more loosely. The estimate itself
lives in :mod:`._clocks`; it sees the calls of all traces at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ._clocks import ClockModel, Edge, estimate_clocks_from_columns
from ._group import Table
from ._parse import SPAN_RECORD
from ._tree import Tree

__all__ = ["Calls", "apply_clocks", "call_edges", "estimate", "find_calls", "loose_calls"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]


@dataclass(slots=True)
class Calls:
    """Every cross-service call as arrays over calls (raw clocks)."""

    caller: I64
    """Caller span index (a client span when ``exact``, else the caller's server span)."""
    callee: I64
    send: F64
    receive: F64
    start: F64
    end: F64
    exact: B


def find_calls(table: Table, tree: Tree) -> Calls:
    """Spans whose parent span is in another service, with their time bounds."""
    parent = tree.parent
    callee = np.flatnonzero(tree.present & (parent >= 0))
    caller = parent[callee].astype(np.int64)
    keep = tree.present[caller] & (tree.service[caller] != tree.service[callee])
    keep &= (tree.service[caller] >= 0) & (tree.service[callee] >= 0)
    callee, caller = callee[keep], caller[keep]
    keep = ~np.isnan(tree.start[caller]) & ~np.isnan(tree.start[callee])
    callee, caller = callee[keep], caller[keep]
    return Calls(
        caller,
        callee,
        tree.start[caller],
        tree.end[caller],
        tree.start[callee],
        tree.end[callee],
        tree.client[caller],
    )


def _edges(table: Table, tree: Tree, calls: Calls) -> Iterator[Edge]:
    names = table.services
    for a, b, s, r, st, en, exact in zip(
        tree.service[calls.caller].tolist(),
        tree.service[calls.callee].tolist(),
        calls.send.tolist(),
        calls.receive.tolist(),
        calls.start.tolist(),
        calls.end.tolist(),
        calls.exact.tolist(),
        strict=False,
    ):
        yield Edge(
            names[a], names[b], s, None if r != r else r, st, None if en != en else en, exact
        )


def call_edges(table: Table, tree: Tree) -> Iterator[Edge]:
    """One :class:`Edge` per span whose parent span is in another service."""
    return _edges(table, tree, find_calls(table, tree))


def estimate(table: Table, tree: Tree) -> dict[str, ClockModel]:
    """Clock models for every service of the run, from all its calls.

    Calls without a client span record are bounded by the caller's whole
    span at first; with that first estimate, the caller records just before
    and just after the callee's span (on corrected clocks, kept a margin
    away so that the first estimate's error cannot pick the wrong side)
    bound them much tighter, and the estimate is repeated.
    """
    calls = find_calls(table, tree)
    clocks = _estimate(table, tree, calls)
    loose = loose_calls(tree.service[calls.caller], tree.service[calls.callee], calls.exact)
    if not len(loose):
        return clocks
    for margin in (100e-6, 30e-6):
        refined = _bracket(table, tree, calls, loose, apply_clocks(table, clocks), margin, clocks)
        clocks = _estimate(table, tree, refined)
    return clocks


def _estimate(table: Table, tree: Tree, calls: Calls) -> dict[str, ClockModel]:
    return estimate_clocks_from_columns(
        tree.service[calls.caller],
        tree.service[calls.callee],
        calls.send,
        calls.receive,
        calls.start,
        calls.end,
        calls.exact,
        table.services,
        table.services,
    )


_EXACT_ENOUGH = 20
"""Service pairs with this many exact calls gain nothing from bracketing."""


def loose_calls(
    svc_caller: npt.NDArray[np.integer[Any]],
    svc_callee: npt.NDArray[np.integer[Any]],
    exact: B,
) -> I64:
    """Positions of the calls to bracket: not exact, and their service pair
    has too few exact calls to pin its clocks without them."""
    loose = np.flatnonzero(~exact)
    if not len(loose):
        return loose
    n = int(max(svc_caller.max(initial=0), svc_callee.max(initial=0))) + 2
    pair = (svc_caller.astype(np.int64) + 1) * n + (svc_callee.astype(np.int64) + 1)
    exact_count = np.bincount(pair[exact], minlength=n * n)
    needed: I64 = loose[exact_count[pair[loose]] < _EXACT_ENOUGH]
    return needed


def _bracket(
    table: Table,
    tree: Tree,
    calls: Calls,
    loose: I64,
    corrected: F64,
    margin: float,
    clocks: dict[str, ClockModel],
) -> Calls:
    """Tighter send/receive for calls without client span records."""
    rows = table.rows
    span = rows["span"]
    ts = rows["ts"]
    usable = (span >= 0) & ((rows["flags"] & SPAN_RECORD) == 0) & ~np.isnan(ts)
    sp = span[usable].astype(np.int64)
    raw = ts[usable]
    cor = corrected[usable]
    if not len(sp):
        return calls
    t0 = float(cor.min())
    width = float(cor.max()) - t0 + 1.0
    key = sp * width + (cor - t0)
    perm = np.lexsort((cor, sp))
    key, raw, sp = key[perm], raw[perm], sp[perm]

    names = table.services
    models = [clocks.get(n, ClockModel()) for n in names]
    offset = np.array([m.offset_s for m in models])
    drift = np.array([m.drift for m in models])
    ref = np.array([m.ref for m in models])

    def correct(values: F64, svc: I64) -> F64:
        out: F64 = values - offset[svc] - drift[svc] * (values - ref[svc])
        return out

    caller, callee = calls.caller[loose], calls.callee[loose]
    svc_callee = tree.service[callee].astype(np.int64)
    lo = correct(calls.start[loose], svc_callee) - margin - t0
    end = calls.end[loose]
    hi = correct(np.where(np.isnan(end), calls.start[loose], end), svc_callee) + margin - t0
    base = caller * width
    seg_lo = np.searchsorted(sp, caller, "left")
    seg_hi = np.searchsorted(sp, caller, "right")
    before = np.searchsorted(key, base + np.clip(lo, -0.25, width - 0.75), "right") - 1
    after = np.searchsorted(key, base + np.clip(hi, -0.25, width - 0.75), "left")
    send = calls.send.copy()
    receive = calls.receive.copy()
    ok = before >= seg_lo
    cand = raw[np.clip(before, 0, len(raw) - 1)]
    take = ok & (cand > send[loose])
    send[loose[take]] = cand[take]
    ok = (after < seg_hi) & ~np.isnan(end)
    cand = raw[np.clip(after, 0, len(raw) - 1)]
    take = ok & ((cand < receive[loose]) | np.isnan(receive[loose]))
    receive[loose[take]] = cand[take]
    return Calls(calls.caller, calls.callee, send, receive, calls.start, calls.end, calls.exact)


def apply_clocks(table: Table, clocks: dict[str, ClockModel] | None) -> F64:
    """Corrected timestamps per row (NaN stays NaN); raw ones without clocks."""
    ts = table.rows["ts"]
    if not clocks:
        raw: F64 = ts.copy()
        return raw
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
        shifted: F64 = ts - offset[svc]
        return shifted
    out: F64 = ts - offset[svc] - drift[svc] * (ts - ref[svc])
    return out
