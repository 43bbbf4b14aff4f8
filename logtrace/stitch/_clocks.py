"""Clock offsets per service, estimated from all cross-service calls at once.

Each call observed in the logs bounds the difference between the callee's and
the caller's clock: the callee cannot start before the caller sent the request,
nor finish after the caller got the answer. With ``a`` and ``b`` the amounts by
which the caller's and the callee's clocks run ahead of true time::

    end - receive  <=  b - a  <=  start - send

One call bounds the difference loosely (by the network delays); the tightest
bounds over many calls (the near-minimum delays, as NTP filters them) pin it
down to microseconds. One pass stores each call as three floats per ordered
pair of services; bounds are then combined per service pair and solved over
the whole service graph at once (weighted least squares, anchored at the entry
service of each connected group, contradicted pairs down-weighted, then nudged
into every feasible interval). Services whose calls all fit one shared clock
get no relative correction. Over windows of minutes, per-minute estimates show
whether clocks drift; a significant drift is solved over the graph the same
way, and the offsets re-estimated from all calls with the drift taken out.

Per-trace adjusters (Jaeger's) see only one call and centre the callee inside
the caller; the global estimate is what makes exact ordering possible.
"""

from __future__ import annotations

import heapq
import math
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["ClockModel", "Edge", "estimate_clocks", "estimate_clocks_from_columns"]

BUCKET_S = 60.0
"""Width of the time buckets used to follow drift."""
MIN_DRIFT_WINDOW_S = 180.0
"""Drift is looked for only when the calls span at least this long."""
DRIFT_T_MIN = 6.0
"""A pair's fitted drift must be this many standard errors from zero to count;
without one significant pair, offsets are fitted over the whole window."""
MAX_DRIFT = 5e-4
"""Clamp for fitted drift (500 ppm; real oscillators stay well under 100 ppm)."""
_KEEP = 8
"""How many of the tightest bounds are kept per pair and bucket."""
_OUTLIER_RATE = 1 / 500
"""The tightest exact bound skips this fraction of the samples (up to ``_KEEP - 1``)."""
_LOOSE_RATE = 1 / 100
"""Bracketing (inexact) bounds take this quantile rather than the extreme: the
caller's records that bracket a call best are sometimes ones written for a
parallel call, which bound one side much tighter than the other."""
_INF = math.inf
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Edge:
    """One cross-service call, as seen in the logs (epoch seconds).

    ``send``/``receive`` are on the caller's clock: its client span's start
    and end when a client span record exists (``exact``), else the caller
    records that bracket the call best (``receive`` may then be ``None``).
    ``start``/``end`` are on the callee's clock: its server span's start
    (``span.start`` or its first record) and end (``None`` if unknown).
    """

    caller: str
    callee: str
    send: float
    receive: float | None
    start: float
    end: float | None
    exact: bool


@dataclass(frozen=True, slots=True)
class ClockModel:
    """How far a service's clock runs ahead of the reference clock.

    At raw time ``ts`` the clock is ahead by ``offset_s + drift * (ts - ref)``
    seconds; :meth:`correct` subtracts that. The reference service has
    ``offset_s == 0`` and ``drift == 0``.
    """

    offset_s: float = 0.0
    drift: float = 0.0
    """Seconds gained per second, around ``ref``."""
    ref: float = 0.0
    """Epoch seconds at which ``offset_s`` holds."""

    def offset_at(self, ts: float) -> float:
        """Seconds this clock is ahead at raw time ``ts``."""
        return self.offset_s + self.drift * (ts - self.ref)

    def correct(self, ts: float) -> float:
        """The raw timestamp ``ts`` on the reference clock."""
        return ts - self.offset_s - self.drift * (ts - self.ref)


class _Bounds:
    """The calls of one ordered pair (in one bucket) as bounds on its offset.

    ``ups`` holds ``start - send`` values, ``lows`` holds ``receive - end``
    (the negated lower bounds), so that the tightest of both are the smallest.
    Exact bounds keep only their few smallest values.
    """

    __slots__ = ("exact", "lows", "n_low", "n_up", "t_sum", "ups")

    def __init__(
        self, exact: bool, ts: Sequence[float], ups: Sequence[float], lows: Sequence[float]
    ) -> None:
        self.exact = exact
        low = [x for x in lows if x == x]  # NaN: no receive or no end
        self.ups: Sequence[float] = heapq.nsmallest(_KEEP, ups) if exact else ups
        self.lows: Sequence[float] = heapq.nsmallest(_KEEP, low) if exact else low
        self.n_up = len(ups)
        self.n_low = len(low)
        self.t_sum = math.fsum(ts)

    def tight_up(self) -> float:
        return _tightest(self.ups, self.n_up, self.exact)

    def tight_low(self) -> float:
        return -_tightest(self.lows, self.n_low, self.exact)


def _tightest(values: Sequence[float], count: int, exact: bool) -> float:
    """The smallest value after skipping a few suspiciously small ones."""
    if not values:
        return _INF
    if exact:
        best = heapq.nsmallest(_KEEP, values)
        return best[min(len(best) - 1, int(count * _OUTLIER_RATE))]
    skip = int(len(values) * _LOOSE_RATE)
    return heapq.nsmallest(skip + 1, values)[-1]


@dataclass(slots=True)
class _Pair:
    """What the calls say about ``clock(b) - clock(a)`` for services ``a < b``."""

    lo: float
    hi: float
    n: int
    t: float = 0.0

    def estimate(self, slack: float) -> tuple[float, float]:
        """Midpoint and weight; one-sided intervals assume ``slack`` of delay."""
        lo, hi = self.lo, self.hi
        if lo == -_INF and hi == _INF:
            return 0.0, 0.0
        if lo == -_INF:
            mid, half = hi - slack, slack * 4
        elif hi == _INF:
            mid, half = lo + slack, slack * 4
        else:
            mid, half = (lo + hi) / 2, abs(hi - lo) / 2
            if lo > hi:  # contradictory bounds: trust the pair less
                half *= 4
        half = max(half, 1e-5)
        return mid, min(self.n, 1000) / (half * half)


def estimate_clocks(edges: Iterable[Edge], services: Iterable[str]) -> dict[str, ClockModel]:
    """One :class:`ClockModel` per service from every observed call.

    Services with no calls, or in a group with no link to the others, get a
    zero offset relative to their own group's reference.
    """
    # Every call's time and bounds per ordered pair, compactly (24 bytes a
    # call): one pass over the edges, everything else works on these.
    raw: dict[_Key, _Columns] = {}
    get = raw.get
    nan = math.nan
    for e in edges:
        caller, callee = e.caller, e.callee
        if caller == callee:
            continue
        key = (caller, callee, e.exact)
        cols = get(key)
        if cols is None:
            cols = raw[key] = (array("d"), array("d"), array("d"))
        start = e.start
        cols[0].append(start)
        cols[1].append(start - e.send)
        receive, end = e.receive, e.end
        cols[2].append(nan if receive is None or end is None else receive - end)
    return _estimate(raw, services)


def estimate_clocks_from_columns(
    caller: npt.NDArray[np.integer[Any]],
    callee: npt.NDArray[np.integer[Any]],
    send: F64,
    receive: F64,
    start: F64,
    end: F64,
    exact: npt.NDArray[np.bool_],
    names: Sequence[str],
    services: Iterable[str],
) -> dict[str, ClockModel]:
    """:func:`estimate_clocks` for calls given as columns (service indexes
    into ``names``; NaN for an unknown receive or end): the same result
    without an object per call, as a run has hundreds of thousands."""
    caller = caller.astype(np.int64)
    callee = callee.astype(np.int64)
    keep = caller != callee
    width = len(names) + 1
    key = (caller * width + callee) * 2 + exact.astype(np.int64)
    key, start, send, receive, end = key[keep], start[keep], send[keep], receive[keep], end[keep]
    ups = start - send
    lows = receive - end
    raw: dict[_Key, _Columns] = {}
    if len(key):
        distinct, first = np.unique(key, return_index=True)
        by_key = np.argsort(key, kind="stable")
        bounds = np.searchsorted(key[by_key], distinct)
        spans = dict(zip(distinct.tolist(), zip(bounds.tolist(),
                                                [*bounds[1:].tolist(), len(key)],
                                                strict=True), strict=True))
        for k in distinct[np.argsort(first, kind="stable")].tolist():
            lo, hi = spans[k]
            at = by_key[lo:hi]
            pair = k // 2
            raw[(names[pair // width], names[pair % width], bool(k % 2))] = (
                _doubles(start[at]), _doubles(ups[at]), _doubles(lows[at])
            )
    return _estimate(raw, services)


def _doubles(values: F64) -> array[float]:
    out = array("d")
    out.frombytes(np.ascontiguousarray(values, dtype=np.float64).tobytes())
    return out


def _estimate(raw: dict[_Key, _Columns], services: Iterable[str]) -> dict[str, ClockModel]:
    order = sorted(set(services).union(*((a, b) for a, b, _ in raw)))
    if not raw:
        return {name: ClockModel() for name in order}

    whole = {key: _Bounds(key[2], *cols) for key, cols in raw.items()}
    pairs = _pairs(whole)
    slack = _typical_slack(pairs)
    reference = _reference(whole)
    ref_t = sum(c.t_sum for c in whole.values()) / sum(c.n_up for c in whole.values())
    t_first = min(min(cols[0]) for cols in raw.values())
    t_last = max(max(cols[0]) for cols in raw.values())

    fitted = None
    if t_last - t_first >= MIN_DRIFT_WINDOW_S:
        slots = _slots(raw)
        group = _in_sync(pairs, order)
        fitted = _solve_with_drift(_bucketed(raw, slots, {}, ref_t), group, reference, slack,
                                   ref_t)
        if fitted is not None:
            offsets, drifts = _refine(raw, slots, fitted[1], order, reference, slack, ref_t)
    if fitted is None:
        offsets = _solve(pairs, order, reference, slack)
        drifts = dict.fromkeys(order, 0.0)
    return {
        name: ClockModel(offsets.get(name, 0.0), drifts.get(name, 0.0), ref_t) for name in order
    }


_Key = tuple[str, str, bool]
"""Caller, callee, and whether the bounds come from client spans."""
_Columns = tuple["array[float]", "array[float]", "array[float]"]
"""Callee start times, ``start - send`` and ``receive - end`` (NaN if unknown)."""


def _slots(raw: dict[_Key, _Columns]) -> dict[_Key, dict[int, list[int]]]:
    """Each pair's calls by time bucket (positions into its columns), buckets
    in the order their first call comes."""
    slots: dict[_Key, dict[int, list[int]]] = {}
    for key, (ts, _, _) in raw.items():
        bucket = np.floor_divide(np.frombuffer(ts, dtype=np.float64), BUCKET_S).astype(np.int64)
        distinct, first = np.unique(bucket, return_index=True)
        by_bucket = np.argsort(bucket, kind="stable")
        bounds = np.searchsorted(bucket[by_bucket], distinct).tolist()
        ends = [*bounds[1:], len(bucket)]
        where = {b: (lo, hi) for b, lo, hi in zip(distinct.tolist(), bounds, ends, strict=True)}
        slots[key] = {
            b: by_bucket[where[b][0] : where[b][1]].tolist()
            for b in distinct[np.argsort(first, kind="stable")].tolist()
        }
    return slots


def _detrended(
    raw: dict[_Key, _Columns], drifts: dict[str, float], ref_t: float
) -> dict[_Key, _Columns]:
    """The columns with the relative drift of each pair taken out."""
    out: dict[_Key, _Columns] = {}
    for key, (ts, ups, lows) in raw.items():
        a, b, _ = key
        rate = drifts.get(b, 0.0) - drifts.get(a, 0.0)
        if rate == 0.0:
            out[key] = (ts, ups, lows)
            continue
        shifts = rate * (np.frombuffer(ts, dtype=np.float64) - ref_t)
        out[key] = (
            ts,
            _doubles(np.frombuffer(ups, dtype=np.float64) - shifts),
            _doubles(np.frombuffer(lows, dtype=np.float64) + shifts),
        )
    return out


def _bucketed(
    raw: dict[_Key, _Columns],
    slots: dict[_Key, dict[int, list[int]]],
    drifts: dict[str, float],
    ref_t: float,
) -> dict[int, dict[_Key, _Bounds]]:
    """Per-bucket bounds of every pair, with ``drifts`` taken out."""
    buckets: dict[int, dict[_Key, _Bounds]] = {}
    for key, (ts, ups, lows) in _detrended(raw, drifts, ref_t).items():
        for k, idx in slots[key].items():
            buckets.setdefault(k, {})[key] = _Bounds(
                key[2], [ts[i] for i in idx], [ups[i] for i in idx], [lows[i] for i in idx]
            )
    return buckets


def _refine(
    raw: dict[_Key, _Columns],
    slots: dict[_Key, dict[int, list[int]]],
    drifts: dict[str, float],
    order: list[str],
    reference: str,
    slack: float,
    ref_t: float,
) -> tuple[dict[str, float], dict[str, float]]:
    """Offsets at ``ref_t`` from every call with the fitted drift taken out.

    Within a bucket the clocks still move; with the drift removed the whole
    window's tightest bounds pin the offsets as well as without drift. The
    leftover drift, fitted again on detrended buckets, corrects the slope.
    """
    offsets: dict[str, float] = {}
    same = {s: s for s in order}
    for _ in range(2):
        flat = _detrended(raw, drifts, ref_t)
        pairs = _pairs({key: _Bounds(key[2], *cols) for key, cols in flat.items()})
        offsets = _solve(pairs, order, reference, slack)
        leftover = _solve_with_drift(_bucketed(raw, slots, drifts, ref_t), same, reference,
                                     slack, ref_t)
        if leftover is None:
            break
        drifts = {s: drifts.get(s, 0.0) + leftover[1].get(s, 0.0) for s in order}
    return offsets, {s: max(-MAX_DRIFT, min(MAX_DRIFT, v)) for s, v in drifts.items()}


def _pairs(bounds: dict[_Key, _Bounds]) -> dict[tuple[str, str], _Pair]:
    """Both call directions of each service pair folded into one interval."""
    pairs: dict[tuple[str, str], _Pair] = {}
    for (a, b, _), cell in bounds.items():
        up, low = cell.tight_up(), cell.tight_low()
        n = cell.n_up
        t = cell.t_sum / n if n else 0.0
        if a < b:
            key, lo, hi = (a, b), low, up
        else:  # clock(a) - clock(b) in [low, up]
            key, lo, hi = (b, a), -up, -low
        pair = pairs.get(key)
        if pair is None:
            pairs[key] = _Pair(lo, hi, n, t)
        else:
            pair.t = (pair.t * pair.n + t * n) / max(pair.n + n, 1)
            pair.lo, pair.hi, pair.n = max(pair.lo, lo), min(pair.hi, hi), pair.n + n
    return pairs


def _typical_slack(pairs: dict[tuple[str, str], _Pair]) -> float:
    """Half the median width of two-sided intervals: the typical minimum delay."""
    widths = sorted(
        p.hi - p.lo for p in pairs.values() if -_INF < p.lo <= p.hi < _INF
    )
    if not widths:
        return 5e-4
    return max(widths[len(widths) // 2] / 2, 1e-5)


def _reference(bounds: dict[_Key, _Bounds]) -> str:
    """The entry service with most calls (never called itself), else the busiest."""
    calls: dict[str, int] = {}
    called: set[str] = set()
    for (a, b, _), cell in bounds.items():
        calls[a] = calls.get(a, 0) + cell.n_up
        calls[b] = calls.get(b, 0) + cell.n_up
        called.add(b)
    entries = [s for s in calls if s not in called] or list(calls)
    return max(sorted(entries), key=lambda s: calls[s])


def _solve(
    pairs: dict[tuple[str, str], _Pair], order: list[str], reference: str, slack: float
) -> dict[str, float]:
    """Offsets that best agree with every pair, then fit into their intervals."""
    group = _in_sync(pairs, order)
    reps = sorted(set(group.values()))
    links = []
    for (a, b), p in pairs.items():
        mid, w = p.estimate(slack)
        ra, rb = group[a], group[b]
        if w > 0 and ra != rb:
            links.append((ra, rb, mid, w, p.lo, p.hi))
    reference = group.get(reference, reference)
    order = reps
    offsets = _least_squares(order, [(a, b, m, w) for a, b, m, w, _, _ in links], reference)
    # Down-weight pairs the others contradict (a bad pair in a cycle).
    for _ in range(3):
        reweighted = []
        for a, b, mid, w, lo, hi in links:
            half = max((hi - lo) / 2, 1e-5) if lo <= hi and hi < _INF and lo > -_INF else slack * 4
            miss = abs(offsets[b] - offsets[a] - mid)
            reweighted.append((a, b, mid, w if miss <= half else w * (half / miss) ** 2))
        offsets = _least_squares(order, reweighted, reference)
    _project(offsets, links)
    offsets = _anchor(offsets, [(a, b) for a, b, *_ in links], reference)
    return {s: offsets[g] for s, g in group.items()}


def _in_sync(pairs: dict[tuple[str, str], _Pair], order: list[str]) -> dict[str, str]:
    """Services whose calls are all consistent with sharing one clock, grouped.

    When the logs allow no correction between two services (zero lies inside
    every bound on their difference), none is made: well-synchronised hosts
    keep their raw order instead of a noisy estimate of a tiny offset.
    """
    fits = {key: p.lo <= 0.0 <= p.hi for key, p in pairs.items()}
    linked = [key for key, p in pairs.items() if fits[key] and p.lo > -_INF and p.hi < _INF]
    groups = _components(order, linked)
    members: dict[str, list[str]] = {}
    for s in order:
        members.setdefault(groups[s], []).append(s)
    for (a, b), ok in fits.items():
        g = groups[a]
        if not ok and g == groups[b]:
            for s in members[g]:  # contradicted: every member on its own
                groups[s] = s
    return groups


_Link = tuple[str, str, float, float, float, float]


def _project(offsets: dict[str, float], links: list[_Link]) -> None:
    """Move offsets into every consistent interval they miss (a few sweeps)."""
    feasible = [(a, b, lo, hi) for a, b, _, _, lo, hi in links if lo <= hi]
    for _ in range(20):
        moved = False
        for a, b, lo, hi in feasible:
            d = offsets[b] - offsets[a]
            if d < lo:
                step = (lo - d) / 2
            elif d > hi:
                step = (hi - d) / 2
            else:
                continue
            offsets[b] += step
            offsets[a] -= step
            moved = True
        if not moved:
            break


def _components(order: list[str], pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Each service's group representative (union-find)."""
    parent = {s: s for s in order}

    def find(s: str) -> str:
        while parent[s] != s:
            parent[s] = parent[parent[s]]
            s = parent[s]
        return s

    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {s: find(s) for s in order}


def _anchor(
    values: dict[str, float], pairs: Iterable[tuple[str, str]], reference: str
) -> dict[str, float]:
    """Shift each group so that its reference (the given one, or its first
    member) is at zero."""
    groups = _components(sorted(values), pairs)
    zero: dict[str, float] = {}
    for s in sorted(values):
        zero.setdefault(groups[s], values[s])
    if reference in groups:
        zero[groups[reference]] = values[reference]
    return {s: values[s] - zero[groups[s]] for s in values}


def _least_squares(
    order: list[str], links: list[tuple[str, str, float, float]], reference: str
) -> dict[str, float]:
    """Minimise sum w * (x[b] - x[a] - d)^2 with one anchor per group.

    The graph Laplacian system, solved densely: service counts are small.
    """
    groups = _components(order, [(a, b) for a, b, _, _ in links])
    anchors: dict[str, str] = {}
    for s in order:
        anchors.setdefault(groups[s], s)
    if reference in groups:
        anchors[groups[reference]] = reference
    fixed = set(anchors.values())
    free = [s for s in order if s not in fixed]
    index = {s: i for i, s in enumerate(free)}
    n = len(free)
    matrix = [[0.0] * n for _ in range(n)]
    rhs = [0.0] * n
    for a, b, d, w in links:
        ia, ib = index.get(a), index.get(b)
        # Residual x[b] - x[a] - d; anchors are fixed at zero.
        if ia is not None:
            matrix[ia][ia] += w
            rhs[ia] -= w * d
        if ib is not None:
            matrix[ib][ib] += w
            rhs[ib] += w * d
        if ia is not None and ib is not None:
            matrix[ia][ib] -= w
            matrix[ib][ia] -= w
    x = _gauss(matrix, rhs)
    result = dict.fromkeys(order, 0.0)
    for s, i in index.items():
        result[s] = x[i]
    return result


def _gauss(matrix: list[list[float]], rhs: list[float]) -> list[float]:
    """Solve a symmetric positive (semi)definite system; free directions -> 0."""
    n = len(rhs)
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(matrix[r][col]))
        if abs(matrix[pivot][col]) < 1e-300:
            continue
        if pivot != col:
            matrix[col], matrix[pivot] = matrix[pivot], matrix[col]
            rhs[col], rhs[pivot] = rhs[pivot], rhs[col]
        row = matrix[col]
        inv = 1.0 / row[col]
        for r in range(col + 1, n):
            other = matrix[r]
            factor = other[col] * inv
            if factor:
                for c in range(col, n):
                    other[c] -= factor * row[c]
                rhs[r] -= factor * rhs[col]
    x = [0.0] * n
    for r in range(n - 1, -1, -1):
        row = matrix[r]
        if abs(row[r]) < 1e-300:
            continue
        acc = rhs[r] - sum(row[c] * x[c] for c in range(r + 1, n))
        x[r] = acc / row[r]
    return x


def _solve_with_drift(
    buckets: dict[int, dict[_Key, _Bounds]],
    group: dict[str, str],
    reference: str,
    slack: float,
    ref_t: float,
) -> tuple[dict[str, float], dict[str, float]] | None:
    """Offsets at ``ref_t`` and drifts from per-bucket pair estimates.

    Each pair's bucket midpoints are fitted with a weighted line; the
    intercepts and slopes are then solved over the graph like offsets;
    services in one ``group`` share a clock. ``None`` when no pair drifts
    measurably: a noise slope would only blur well-behaved clocks.
    """
    series: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    for cells in buckets.values():
        for (a, b), p in _pairs(cells).items():
            mid, w = p.estimate(slack)
            if w > 0 and group[a] != group[b]:
                series.setdefault((group[a], group[b]), []).append((p.t - ref_t, mid, w))
    order = sorted(set(group.values()))
    reference = group.get(reference, reference)
    intercepts: list[tuple[str, str, float, float]] = []
    slopes: list[tuple[str, str, float, float]] = []
    significant = False
    for (a, b), points in series.items():
        sw = sum(w for _, _, w in points)
        mt = sum(t * w for t, _, w in points) / sw
        md = sum(d * w for _, d, w in points) / sw
        stt = sum(w * (t - mt) ** 2 for t, _, w in points)
        if len(points) >= 3 and stt > 0:
            slope = sum(w * (t - mt) * (d - md) for t, d, w in points) / stt
            slope = max(-2 * MAX_DRIFT, min(2 * MAX_DRIFT, slope))
            slopes.append((a, b, slope, stt))
            if len(points) > 3:
                resid = sum(w * (d - md - slope * (t - mt)) ** 2 for t, d, w in points)
                sigma2 = resid / sw * len(points) / (len(points) - 2)
                stderr = math.sqrt(sigma2 / (stt / sw * len(points)))
                significant = significant or abs(slope) > DRIFT_T_MIN * max(stderr, 1e-12)
        else:
            slope = 0.0
        # Residual spread sets the pair's weight in the graph solve.
        resid = sum(w * (d - md - slope * (t - mt)) ** 2 for t, d, w in points) / sw
        weight = len(points) / max(resid, 1e-10)
        intercepts.append((a, b, md - slope * mt, weight))
    if not significant:
        return None
    offsets = _least_squares(order, intercepts, reference)
    drifts = _least_squares(order, slopes, reference)
    keys = list(series)
    offsets = _anchor(offsets, keys, reference)
    drifts = _anchor(drifts, keys, reference)
    return (
        {s: offsets[g] for s, g in group.items()},
        {s: max(-MAX_DRIFT, min(MAX_DRIFT, drifts[g])) for s, g in group.items()},
    )
