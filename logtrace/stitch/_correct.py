"""Correct clocks: find a partition's cross-service calls, bracket them, apply models.

A call is a span whose parent belongs to another service (a message's
consumer under its producer span is not one). When the parent is
a client span with its own record, its start and end are exactly when the
caller sent the request and got the answer (on the caller's clock); else the
caller's enclosing span bounds the call, more loosely, and its records around
the callee's span bound it tighter (:class:`CallerRecords`). When the callee's
record says when its response was complete, and which host each side ran on,
the call carries that too (:mod:`._span_extras`). The calls of
every partition are collected in :mod:`._calls` and solved in :mod:`._clocks`;
the models found are applied to rows here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ._clocks import ClockModel
from ._model import KIND_PRODUCER, SPAN_RECORD, Table, Tree
from ._span_extras import ends_before_text_records, span_extras, text_records

__all__ = [
    "CallerRecords",
    "Calls",
    "apply_clocks",
    "bracketing_rows",
    "correct_rows",
    "correct_times",
    "find_calls",
    "loose_calls",
    "model_arrays",
    "sent_after",
    "span_shift",
]

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
    answered: F64
    """When the callee's response was complete (its clock; NaN if not stated)."""
    caller_host: I64
    callee_host: I64
    """Host keys of both spans' records (0: unnamed)."""
    lined: B
    """The callee has no span record: its first and last lines time it."""
    queued: B
    """The caller is a producer span and the callee its message's consumer
    (only with ``hops``): it started after the send, any time after."""


def find_calls(table: Table, tree: Tree, hops: bool = False) -> Calls:
    """Spans whose parent span is in another service, with their time bounds.

    A message's consumer, whose parent is a producer span, is no call: it
    runs whenever the queue delivers, after the producer span rather than
    inside it, so it says nothing bounded about the two clocks but that it
    started after the send. With ``hops``, such pairs are given too, marked
    :attr:`Calls.queued`.
    """
    parent = tree.parent
    callee = np.flatnonzero(tree.present & (parent >= 0))
    caller = parent[callee].astype(np.int64)
    keep = tree.present[caller] & (tree.service[caller] != tree.service[callee])
    rows = table.rows
    produced = (rows["span"] >= 0) & ((rows["flags"] & KIND_PRODUCER) != 0)
    queued = np.zeros(len(callee), dtype=bool)
    if produced.any():
        producer = np.zeros(len(tree.present), dtype=bool)
        producer[rows["span"][produced]] = True
        queued = producer[caller]
        if not hops:
            keep &= ~queued
    keep &= (tree.service[caller] >= 0) & (tree.service[callee] >= 0)
    keep &= ~np.isnan(tree.start[caller]) & ~np.isnan(tree.start[callee])
    callee, caller, queued = callee[keep], caller[keep], queued[keep]
    extras = span_extras(table, np.concatenate([callee, caller]))
    n = len(callee)
    client = tree.client[caller]
    # A caller's own lines may be written on the answer's headers (httpx logs
    # then): against them only the headers bound the callee, where stated. A
    # client span ends once the body was read: the complete answer bounds it.
    heard = extras.heard[:n]
    answered = np.where(client | np.isnan(heard), extras.answered[:n], heard)
    end = tree.end[callee]
    lined = ~extras.recorded[:n]
    if lined.any():
        end[lined] = ends_before_text_records(table, tree, callee[lined])
    return Calls(
        caller,
        callee,
        sent_after(table, tree, caller, extras.recorded[n:]),
        tree.end[caller],
        tree.start[callee],
        end,
        client,
        answered,
        extras.hosts[n:],
        extras.hosts[:n],
        ~extras.recorded[:n],
        queued,
    )


def sent_after(table: Table, tree: Tree, caller: I64, recorded: B) -> F64:
    """Per call, the time its caller's request went out after: the caller
    span's start. A span whose first line is its own span record, written by
    a format that drops the record's fields (``logtrace.span`` as the
    logger, no ``span.start``: a text format, structlog's ``ProcessorFormatter``
    without its ``ExtraAdder``), was written when the span ended, after the
    answer: its start is not in the logs. The span it runs in (its parent, a
    request of the same service) started before it; NaN without one."""
    send: F64 = tree.start[caller].copy()
    plain = np.flatnonzero(~recorded)
    if not len(plain):
        return send
    written = text_records(table, caller[plain])[0][caller[plain]]
    late = plain[written == send[plain]]  # NaN where no such record: never equal
    if len(late):
        up = tree.parent[caller[late]].astype(np.int64)
        same = (up >= 0) & (tree.service[np.maximum(up, 0)] == tree.service[caller[late]])
        send[late] = np.where(same, tree.start[np.maximum(up, 0)], np.nan)
    return send


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


def bracketing_rows(table: Table) -> B:
    """Rows that can bracket a call: a span's own records with a time (not span records)."""
    rows = table.rows
    usable: B = (rows["span"] >= 0) & ((rows["flags"] & SPAN_RECORD) == 0) & ~np.isnan(rows["ts"])
    return usable


Models = tuple[F64, F64, F64]
"""Per service index: clock offset, drift and reference time."""


def model_arrays(clocks: dict[str, ClockModel], names: list[str]) -> Models:
    models = [clocks.get(n, ClockModel()) for n in names]
    return (
        np.array([m.offset_s for m in models]),
        np.array([m.drift for m in models]),
        np.array([m.ref for m in models]),
    )


def correct_times(values: F64, svc: I64, models: Models) -> F64:
    """Raw times of services ``svc`` on the reference clock."""
    offset, drift, ref = models
    out: F64 = values - offset[svc] - drift[svc] * (values - ref[svc])
    return out


class CallerRecords:
    """Callers' records sorted by (span, time), searchable by both at once.

    A call's caller span picks a segment; a binary search inside it finds the
    records around a time of the caller's clock. Comparisons are on the times
    themselves, so the answer does not depend on how many spans the run has
    or how long it lasts, nor on how the spans are numbered.
    """

    __slots__ = ("raw", "span", "time")

    def __init__(self, span: I64, raw: F64) -> None:
        perm = np.lexsort((raw, span))
        self.span: I64 = span[perm]
        self.raw: F64 = raw[perm]
        self.time = self.raw

    def tighten(
        self, which: I64, caller: I64, before: F64, after: F64, send: F64, receive: F64
    ) -> None:
        """For calls ``which`` (their caller span, and two times on its
        clock: NaN for none): move ``send`` up to the caller's last record at
        or before ``before``, ``receive`` down to its first at or after ``after``."""
        raw = self.raw
        if not len(raw):
            return
        before = np.where(np.isnan(before), -np.inf, before)
        after = np.where(np.isnan(after), np.inf, after)
        seg_lo = np.searchsorted(self.span, caller, "left")
        seg_hi = np.searchsorted(self.span, caller, "right")
        last = self._insertion(seg_lo, seg_hi, before, "right") - 1
        first = self._insertion(seg_lo, seg_hi, after, "left")
        ok = last >= seg_lo
        cand = raw[np.clip(last, 0, len(raw) - 1)]
        take = ok & (cand > send[which])
        send[which[take]] = cand[take]
        ok = first < seg_hi
        cand = raw[np.clip(first, 0, len(raw) - 1)]
        take = ok & ((cand < receive[which]) | np.isnan(receive[which]))
        receive[which[take]] = cand[take]

    def _insertion(self, lo: I64, hi: I64, x: F64, side: str) -> I64:
        """Per query, where ``x`` goes among the times ``lo:hi`` (one
        segment): after equal times for ``"right"``, before them for
        ``"left"``. All queries bisect together, one halving per round."""
        time = self.time
        lo = lo.astype(np.int64)
        hi = hi.astype(np.int64)
        active = np.flatnonzero(lo < hi)
        while len(active):
            a_lo, a_hi = lo[active], hi[active]
            mid = (a_lo + a_hi) // 2
            t, q = time[mid], x[active]
            # NaN queries sort after every time, as in np.searchsorted.
            go_right = (t <= q) | np.isnan(q) if side == "right" else (t < q) | np.isnan(q)
            a_lo = np.where(go_right, mid + 1, a_lo)
            a_hi = np.where(go_right, a_hi, mid)
            lo[active], hi[active] = a_lo, a_hi
            active = active[a_lo < a_hi]
        return lo


def apply_clocks(table: Table, clocks: dict[str, ClockModel] | None) -> F64:
    """Corrected timestamps per row (NaN stays NaN); raw ones without clocks."""
    return correct_rows(table.rows["ts"], table.rows["svc"], table.services, clocks)


def correct_rows(
    ts: F64,
    svc: npt.NDArray[np.integer[Any]],
    services: list[str],
    clocks: dict[str, ClockModel] | None,
) -> F64:
    """Rows' corrected timestamps from their raw ones and service indexes into
    ``services``: for the same ``services``, the same bits for a row whichever
    rows come with it."""
    if not clocks:
        raw: F64 = ts.copy()
        return raw
    n = len(services)
    offset = np.zeros(n)
    drift = np.zeros(n)
    ref = np.zeros(n)
    for i, name in enumerate(services):
        model = clocks.get(name)
        if model is not None:
            offset[i], drift[i], ref[i] = model.offset_s, model.drift, model.ref
    if not drift.any():
        shifted: F64 = ts - offset[svc]
        return shifted
    out: F64 = ts - offset[svc] - drift[svc] * (ts - ref[svc])
    return out


def span_shift(table: Table, tree: Tree, corrected: F64) -> F64:
    """Per span, how far its service's clock was corrected (raw minus corrected)."""
    rows = table.rows
    timed = (rows["span"] >= 0) & ~np.isnan(rows["ts"])
    shift = np.zeros(len(tree.parent))
    shift[rows["span"][timed]] = rows["ts"][timed] - corrected[timed]
    return shift
