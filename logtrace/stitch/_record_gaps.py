"""Where a callee fits between its caller's records: the first clocks for
logs that name no parent span.

A caller waits for its call. Between the line it writes before the call
and the one it writes when the answer is back, its span writes nothing. So
at the true offset ``d`` (the callee's clock minus the caller's), a callee's
span ``[start, end]`` lies in one gap between two consecutive records
``r[i]``, ``r[i + 1]`` of its caller's span::

    end - r[i + 1]  <=  d  <=  start - r[i]                 (raw clocks)

Each gap of a candidate caller wide enough for the callee gives such an
interval (:class:`RecordGaps`). Over many traces the intervals of the real
calls all hold the true offset, and the stretch that nearly all of them
share (found as for containment, :class:`._containment.LinkDecider`) is a
few hundred microseconds wide. Containment's own interval is several times
wider, and lopsided: its bounds are how long the caller works before its
first call and after its last, which differ from service to service.

The services' offsets then follow from every link's stretch at once
(:func:`fit_offsets`): weighted least squares over the differences the
links give, dropping the link that disagrees most, one at a time, while
one disagrees by more than its stretch allows (a link through a service
called from two places may pile up beside the truth). The result is only
a start, good to tens of microseconds: the calls inferred on it are
bracketed by their callers' records and the clocks solved from them
(:func:`._inferred_calls.solve_with_links`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from ._clock_least_squares import components
from ._correct import bracketing_rows, find_calls
from ._model import Table, Tree
from ._resolution import span_resolution

__all__ = [
    "MIN_HALF_WIDTH",
    "RecordGaps",
    "SpanRecords",
    "choose_stretches",
    "fit_offsets",
    "last_line_but_one",
    "logged_gaps",
    "span_records",
    "without_last_line",
]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

MIN_HALF_WIDTH = 1e-6
"""Seconds: the least uncertainty a link's stretch is given (its weight's cap)."""


@dataclass(frozen=True, slots=True)
class SpanRecords:
    """A partition's records that can bracket a call
    (:func:`._correct.bracketing_rows`), by span, then time."""

    span: I64
    first: F64
    """The earliest each was written (its time)."""
    last: F64
    """The latest each was written (a record naming a whole millisecond was
    written some time within it)."""
    begin: I64
    """Per span: the index of its first record."""
    count: I64
    """Per span: how many records it has."""


def span_records(table: Table, n_spans: int, res: F64) -> SpanRecords:
    """``table``'s records that can bracket a call, sorted by span and time
    (``res`` per row: how long its time lasts)."""
    rows = table.rows
    usable = np.flatnonzero(bracketing_rows(table))
    span = rows["span"][usable].astype(np.int64)
    ts = rows["ts"][usable]
    perm = np.lexsort((ts, span))
    span, ts = span[perm], ts[perm]
    begin = np.searchsorted(span, np.arange(n_spans), "left")
    count = np.searchsorted(span, np.arange(n_spans), "right") - begin
    return SpanRecords(span, ts, ts + res[usable][perm], begin, count)


class RecordGaps:
    """One partition's gaps between consecutive records of each span, widest
    first per span, so that the gaps wide enough for a callee are a prefix."""

    def __init__(self, table: Table, tree: Tree, res: F64) -> None:
        """``res`` per row: how long its time lasts (:func:`._resolution.row_resolution`)."""
        self.records = span_records(table, len(tree.parent), res)
        span, first, last = self.records.span, self.records.first, self.records.last
        # Gap j runs from record j to record j + 1 of the same span.
        inner = np.flatnonzero(span[1:] == span[:-1])
        width = last[inner + 1] - first[inner]
        order = np.lexsort((-width, span[inner]))
        self.span: I64 = span[inner][order]
        self.width: F64 = width[order]
        self.first: F64 = first[inner][order]
        """Per gap: the earliest the record before it was written."""
        self.last: F64 = last[inner + 1][order]
        """Per gap: the latest the record after it was written."""
        self.res = span_resolution(table, len(tree.parent), res)
        self.begin: I64 = np.searchsorted(self.span, np.arange(len(tree.parent)), "left")

    def _wide_enough(self, span: I64, duration: F64) -> I64:
        """Per query, how many gaps of ``span`` are at least ``duration`` wide.

        Queries and gaps sorted together by span, then widest first (a gap
        before a query as wide): the gaps ahead of a query, less those of
        earlier spans, are the ones it fits in."""
        n = len(self.span)
        order = np.lexsort(
            (
                np.r_[np.zeros(n, dtype=np.int8), np.ones(len(span), dtype=np.int8)],
                -np.r_[self.width, duration],
                np.r_[self.span, span],
            )
        )
        at = np.flatnonzero(order >= n)
        ahead = np.empty(len(span), dtype=np.int64)
        ahead[order[at] - n] = at - np.arange(len(at))
        count: I64 = ahead - self.begin[span]
        return count

    def intervals(self, tree: Tree, a: I64, b: I64, end: F64 | None = None) -> tuple[I64, F64, F64]:
        """For pairs (caller ``a``, callee ``b``): each gap of ``a`` wide enough
        for ``b`` as the pair it belongs to and its interval ``lo``, ``hi``
        of offsets (the callee's clock minus the caller's). ``end`` per pair:
        when the callee answered, if before its span's last line."""
        res = self.res[b]
        ends = tree.end[b] if end is None else end
        fits = self._wide_enough(a, ends - tree.start[b] - res)
        pair = np.repeat(np.arange(len(a), dtype=np.int64), fits)
        within = np.arange(len(pair)) - np.repeat(np.cumsum(fits) - fits, fits)
        gap = self.begin[a][pair] + within
        lo: F64 = ends[pair] - self.last[gap]
        hi: F64 = tree.start[b[pair]] + res[pair] - self.first[gap]
        return pair, lo, hi


def without_last_line(table: Table, tree: Tree) -> Tree:
    """``tree`` with each span of three records or more ending at its
    last record but one. A service that works after it answered (a
    background task, a streamed body) writes its last line after its caller
    heard back: without it, the span up to the answer is what must fit
    inside the call."""
    cut = last_line_but_one(table, len(tree.parent))
    return replace(tree, end=np.where(np.isnan(cut), tree.end, cut))


def last_line_but_one(table: Table, n_spans: int, until: F64 | None = None) -> F64:
    """Per span of three records or more (those before ``until``, per span,
    where given): the raw time of its last record but one; NaN elsewhere."""
    rows = table.rows
    usable = np.flatnonzero(bracketing_rows(table))
    span = rows["span"][usable].astype(np.int64)
    ts = rows["ts"][usable]
    if until is not None:
        with np.errstate(invalid="ignore"):
            keep = ~(ts >= until[span])
        span, ts = span[keep], ts[keep]
    perm = np.lexsort((ts, span))
    span, ts = span[perm], ts[perm]
    count = np.bincount(span, minlength=n_spans)
    last = np.flatnonzero(np.r_[span[1:] != span[:-1], True]) if len(span) else span
    out = np.full(n_spans, np.nan)
    long = last[count[span[last]] >= 3]
    out[span[long]] = ts[long - 1]
    return out


def logged_gaps(
    table: Table, tree: Tree, row_res: F64
) -> tuple[I64, I64, F64, F64, RecordGaps | None]:
    """For the calls the logs link whose callers wrote no client span: each
    gap of the caller wide enough for the callee, as caller and callee span
    and the gap's interval of offsets. The same first clocks as for logs
    without parent IDs: a caller's whole span, which bounds such a call
    until its records do, is lopsided by how long it works before and after
    the call (a gateway that makes four calls in turn puts the last one
    milliseconds off), and the bracketing that follows would confirm it.
    Also the partition's gaps, if it needed them (``row_res`` per row: how
    long its time lasts)."""
    calls = find_calls(table, tree)
    loose = np.flatnonzero(~calls.exact)
    if not len(loose):
        none = np.empty(0, dtype=np.int64)
        return none, none, np.empty(0), np.empty(0), None
    gaps = RecordGaps(table, tree, row_res)
    a, b = calls.caller[loose], calls.callee[loose]
    # A span record is written when the application returned, which can be
    # after the caller heard back: the callee's answer is what must fit.
    pair, lo, hi = gaps.intervals(tree, a, b, np.fmin(tree.end[b], calls.answered[loose]))
    return a[pair], b[pair], lo, hi, gaps


def fit_offsets(
    links: Sequence[tuple[str, str, float, float]],
    groups: Mapping[str, str],
    weights: Sequence[float] | None = None,
) -> dict[str, float]:
    """Each service's offset relative to its group's first service (see
    :attr:`._containment.Links.groups`) from links ``(caller, callee, lo,
    hi)`` that each put the callee's clock minus the caller's in ``[lo,
    hi]``: weighted least squares on the midpoints, weighted by the inverse
    half-width; while a link's residual exceeds its half-width, the worst
    is dropped (a link no cycle checks has none, so every service keeps
    its offset).

    ``weights`` (one per link), where given, weigh the links instead while
    links are dropped: how densely a link's callees pack says more of
    whether it is a call than how narrow its stretch is (loose fits that
    barely overlap leave a narrow one). The links left are then fitted by
    their widths."""
    names = sorted(groups)
    at = {name: i for i, name in enumerate(names)}
    anchors = sorted(set(groups.values()))
    given = [1.0] * len(links) if weights is None else list(weights)
    use = [(k, w) for k, w in zip(links, given, strict=True) if k[0] in at and k[1] in at]
    while True:
        rows = len(use) + len(anchors)
        matrix = np.zeros((rows, len(names)))
        target = np.zeros(rows)
        weight = np.ones(rows)
        width = np.ones(rows)
        for r, ((caller, callee, lo, hi), w) in enumerate(use):
            matrix[r, at[callee]], matrix[r, at[caller]] = 1.0, -1.0
            target[r] = (lo + hi) / 2
            width[r] = 1.0 / max((hi - lo) / 2, MIN_HALF_WIDTH)
            weight[r] = width[r] if weights is None else w
        for r, anchor in enumerate(anchors, start=len(use)):
            matrix[r, at[anchor]] = 1.0
            weight[r] = 1.0 / MIN_HALF_WIDTH
        x = np.linalg.lstsq(matrix * weight[:, None], target * weight, rcond=None)[0]
        if not use:
            break
        residual = np.abs(matrix[: len(use)] @ x - target[: len(use)]) * width[: len(use)]
        worst = int(np.argmax(residual))
        if residual[worst] <= 1.0:
            break
        use.pop(worst)
    if weights is not None:  # which links stand is decided; where, by their widths
        return fit_offsets([k for k, _ in use], groups)
    return {name: float(x[at[name]] - x[at[groups[name]]]) for name in names}


def choose_stretches(
    choices: Sequence[tuple[str, str, Sequence[tuple[float, float]]]], groups: Mapping[str, str]
) -> list[int]:
    """Per link (caller, callee, the stretches its callees fit at, best
    first), which stretch to take. Where a link offers more than one (a
    call beside another as long to the same service), the one nearest the
    difference that the links offering one alone (:func:`fit_offsets`) put
    between its two services, where they connect them. Where they do not
    (every link into a service offers several), the links between the same
    two groups of services so connected vote (:func:`_voted`); else the
    first."""
    picks = [0] * len(choices)
    sure = [(c, e, s[0][0], s[0][1]) for c, e, s in choices if len(s) == 1]
    if not sure or len(sure) == len(choices):
        return picks
    fitted = fit_offsets(sure, groups)
    joined = components(sorted(groups), [(c, e) for c, e, _, _ in sure])
    apart: dict[tuple[str | None, str | None], list[int]] = {}
    for i, (caller, callee, stretches) in enumerate(choices):
        if len(stretches) < 2:
            continue
        if joined.get(caller) != joined.get(callee):
            apart.setdefault((joined.get(caller), joined.get(callee)), []).append(i)
            continue
        picks[i] = _nearest(stretches, fitted[callee] - fitted[caller])
    for members in apart.values():
        offered = [_shifted(choices[i], fitted) for i in members]
        point = _voted(offered)
        if point is not None:
            for i, stretches in zip(members, offered, strict=True):
                picks[i] = _nearest(stretches, point)
    return picks


VOTE_SLACK = 5e-4
"""Seconds each side of a stretch that a vote between links (:func:`_voted`)
allows for the error of the offsets it is shifted by."""


def _voted(offered: Sequence[Sequence[tuple[float, float]]]) -> float | None:
    """The offset that the stretches (widened by :data:`VOTE_SLACK`) of the
    most links hold, each link counted once, where two or more agree: on a
    tie, the one the most first stretches hold. ``None`` where no two do."""
    events = sorted(
        (edge, kind, link, rank)
        for link, stretches in enumerate(offered)
        for rank, (lo, hi) in enumerate(stretches)
        for edge, kind in ((lo - VOTE_SLACK, 0), (hi + VOTE_SLACK, 1))
    )
    open_: dict[int, list[int]] = {}
    best: tuple[int, int, float] | None = None
    for edge, kind, link, rank in events:
        if kind == 1:
            open_[link].remove(rank)
            if not open_[link]:
                del open_[link]
            continue
        open_.setdefault(link, []).append(rank)
        score = (len(open_), sum(1 for ranks in open_.values() if 0 in ranks), edge)
        if best is None or score[:2] > best[:2]:
            best = score
    if best is None or best[0] < 2:
        return None
    return best[2] + VOTE_SLACK


def _shifted(
    choice: tuple[str, str, Sequence[tuple[float, float]]], fitted: Mapping[str, float]
) -> list[tuple[float, float]]:
    """A link's stretches as offsets of its callee's group against its
    caller's (each service's offset within its group as ``fitted``)."""
    caller, callee, stretches = choice
    by = fitted.get(caller, 0.0) - fitted.get(callee, 0.0)
    return [(lo + by, hi + by) for lo, hi in stretches]


def _nearest(stretches: Sequence[tuple[float, float]], diff: float) -> int:
    """The index of the stretch nearest ``diff`` (the first of those holding it)."""
    away = [max(lo - diff, diff - hi, 0.0) for lo, hi in stretches]
    return int(np.argmin(away))
