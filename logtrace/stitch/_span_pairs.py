"""Span pairs that could be caller and callee, for logs that name no parent.

Within one trace, every ordered pair of spans with records (a bounded chunk
at a time: :func:`span_pairs`), and which spans lie inside a span of their
own service (:func:`inside_own_service`): the evidence of
:mod:`._containment` and the parents of :mod:`._inferred_calls` are drawn
from them.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

from ._model import Table, Tree

__all__ = [
    "SPANS_PER_TRACE",
    "after_own_service",
    "inside_own_service",
    "parentless",
    "span_pairs",
    "unlinked_spans",
]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

SPANS_PER_TRACE = 64
"""Spans of one trace that give evidence (the first ones); all get parents."""
_PAIRS_PER_CHUNK = 1 << 20


def _usable(tree: Tree) -> I64:
    """Spans with records, a service and a time."""
    ok = tree.present & (tree.service >= 0) & ~np.isnan(tree.start) & ~np.isnan(tree.end)
    return np.flatnonzero(ok).astype(np.int64)


def parentless(tree: Tree) -> B:
    """Per span: whether the logs link it to no parent, naming none or one
    that wrote nothing (a client span of another tracer, a proxy's)."""
    out: B = (tree.parent < 0) | tree.orphan
    return out


def unlinked_spans(table: Table, tree: Tree) -> I64:
    """The usable spans of the traces the logs leave unlinked: two spans or
    more without a parent (:func:`parentless`)."""
    spans = _usable(tree)
    roots = table.span_trace[spans[parentless(tree)[spans]]]
    count = np.bincount(roots, minlength=len(table.traces))
    found: I64 = spans[count[table.span_trace[spans]] >= 2]
    return found


def span_pairs(table: Table, tree: Tree, same: bool = False) -> Iterator[tuple[I64, I64]]:
    """Every ordered pair (caller candidate, parentless callee) of usable spans
    of two services in one trace (of one service, if ``same``), a bounded
    chunk at a time."""
    spans = unlinked_spans(table, tree)
    if not len(spans):
        return
    loose = parentless(tree)
    trace = table.span_trace[spans].astype(np.int64)
    perm = np.argsort(trace, kind="stable")
    spans, trace = spans[perm], trace[perm]
    starts = np.flatnonzero(np.r_[True, trace[1:] != trace[:-1]])
    sizes = np.diff(np.r_[starts, len(spans)])
    sizes = np.minimum(sizes, SPANS_PER_TRACE)
    work = sizes.astype(np.int64) ** 2
    cum = np.cumsum(work)
    lo = 0
    while lo < len(starts):
        base = cum[lo - 1] if lo else 0
        hi = int(np.searchsorted(cum, base + _PAIRS_PER_CHUNK, "right"))
        hi = max(hi, lo + 1)
        g_start, g_size = starts[lo:hi], sizes[lo:hi]
        # Each span of a group, repeated once per member of its group.
        member = np.concatenate([np.arange(s, s + k) for s, k in zip(g_start, g_size, strict=True)])
        k_of = np.repeat(g_size, g_size)
        s_of = np.repeat(g_start, g_size)
        a = np.repeat(member, k_of)
        first = np.repeat(np.cumsum(k_of) - k_of, k_of)
        b = np.repeat(s_of, k_of) + (np.arange(len(a)) - first)
        a_span, b_span = spans[a], spans[b]
        if same:
            keep = (tree.service[a_span] == tree.service[b_span]) & (a_span != b_span)
        else:
            keep = tree.service[a_span] != tree.service[b_span]
        keep &= loose[b_span]
        yield a_span[keep], b_span[keep]
        lo = hi


def inside_own_service(table: Table, tree: Tree, res: F64) -> B:
    """Per span without a parent: whether a span of its own service in its
    trace contains it (on its own clock; ``res`` per span as for
    :func:`containment_interval`). Such a span is that service's own work
    (an internal span: a query, a step the code traced), not a call: as a
    callee it would show containment the other way round whenever it is
    short enough to fit inside its caller's callee."""
    out = np.zeros(len(tree.parent), dtype=bool)
    found = _by_service(table, tree, res, longest_first=True)
    if found is None:
        return out
    spans, _, end, first, group, base, width = found
    latest = np.maximum.accumulate(group * width + (end - base)) - group * width
    inside = np.zeros(len(spans), dtype=bool)
    inside[1:] = ~first[1:] & (latest[:-1] >= end[1:] - base[1:] - res[spans[1:]])
    out[spans[inside]] = True
    return out


def after_own_service(table: Table, tree: Tree, res: F64) -> tuple[B, I64]:
    """Per span without a parent: whether a span of its own service in its
    trace had ended before it started (on its own clock; ``res`` per span),
    and that span where it is the one started just before (else -1).
    A service's first span in a trace is a call into it; a later one may be
    a call again, or its own work after it answered (a background task
    traced as a span of its own, as OpenTelemetry's FastAPI instrumentation
    traces each ``BackgroundTasks`` job), which no caller need contain."""
    out = np.zeros(len(tree.parent), dtype=bool)
    before = np.full(len(tree.parent), -1, dtype=np.int64)
    found = _by_service(table, tree, res, longest_first=False)
    if found is None:
        return out, before
    spans, start, end, first, group, base, width = found
    # The earliest end among the group's spans before each: a running
    # minimum over keys that put every group below the ones before it.
    running = np.minimum.accumulate((end - base) - group * width) + group * width
    after = np.zeros(len(spans), dtype=bool)
    after[1:] = ~first[1:] & (running[:-1] <= start[1:] - base[1:])
    out[spans[after]] = True
    next_to = np.zeros(len(spans), dtype=bool)
    next_to[1:] = ~first[1:] & (end[:-1] <= start[1:])
    before[spans[1:][next_to[1:]]] = spans[:-1][next_to[1:]]
    return out, before


def _by_service(
    table: Table, tree: Tree, res: F64, longest_first: bool
) -> tuple[I64, F64, F64, B, I64, F64, float] | None:
    """The spans without a parent by trace and service, then start (the
    longest first on a tie, if asked): the spans, their starts and ends
    (``res`` added), where each group starts, each one's group, its group's
    first start, and a width that keeps groups apart when added per group.
    ``None`` for fewer than two spans."""
    spans = _usable(tree)
    spans = spans[parentless(tree)[spans]]
    if len(spans) < 2:
        return None
    trace = table.span_trace[spans].astype(np.int64)
    service = tree.service[spans].astype(np.int64)
    start, end = tree.start[spans], tree.end[spans] + res[spans]
    keys = (-end, start, service, trace) if longest_first else (start, service, trace)
    perm = np.lexsort(keys)
    spans, trace, service = spans[perm], trace[perm], service[perm]
    start, end = start[perm], end[perm]
    first = np.r_[True, (trace[1:] != trace[:-1]) | (service[1:] != service[:-1])]
    group = np.cumsum(first) - 1
    base = start[first][group]
    width = float(np.max(end - base, initial=0.0)) + 1.0
    return spans, start, end, first, group, base, width
