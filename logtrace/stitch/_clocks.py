"""Clock offsets per service, estimated from all cross-service calls at once.

Each call observed in the logs bounds the difference between the callee's and
the caller's clock: the callee cannot start before the caller sent the request,
nor finish after the caller got the answer. With ``a`` and ``b`` the amounts by
which the caller's and the callee's clocks run ahead of true time::

    end - receive  <=  b - a  <=  start - send

One call bounds the difference loosely (by the network delays); the tightest
bounds over many calls (the near-minimum delays, as NTP filters them) pin it
down to a fraction of a millisecond. Bounds are kept per ordered pair of
services, so a million calls cost a few list appends each, then combined per
service pair, then solved over the whole service graph at once (weighted least
squares, anchored at one service per connected group, outlier pairs
down-weighted, then nudged into every feasible interval). Long windows are cut
into buckets; when the buckets span long enough, the same solve on per-bucket
estimates gives each service a linear drift.

Per-trace adjusters (Jaeger's) see only one call and centre the callee inside
the caller; the global estimate is what makes exact ordering possible.
"""

from __future__ import annotations

import heapq
import math
from array import array
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["ClockModel", "Edge", "estimate_clocks"]

BUCKET_S = 60.0
"""Width of the time buckets used to follow drift."""
MIN_DRIFT_WINDOW_S = 300.0
"""Drift is estimated only when the calls span at least this long."""
MAX_DRIFT = 5e-4
"""Clamp for fitted drift (500 ppm; real oscillators stay well under 100 ppm)."""
_KEEP = 8
"""How many of the tightest bounds are kept per pair and bucket."""
_COMPACT_AT = 4096
_OUTLIER_RATE = 1 / 500
"""The tightest exact bound skips this fraction of the samples (up to ``_KEEP - 1``)."""
_LOOSE_RATE = 1 / 100
"""Bracketing (inexact) bounds take this quantile rather than the extreme: the
caller's records that bracket a call best are sometimes ones written for a
parallel call, which bound one side much tighter than the other."""
_INF = math.inf


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
    """The tightest upper and lower bounds of one ordered pair in one bucket.

    ``ups`` holds ``start - send`` values, ``lows`` holds the negated
    ``end - receive`` values, so that both keep their smallest entries.
    """

    __slots__ = ("exact", "lows", "n_low", "n_up", "t_sum", "ups")

    def __init__(self, exact: bool) -> None:
        # Exact bounds keep only their few smallest values (compacted as they
        # come); inexact ones keep all, compactly, for their quantile.
        self.exact = exact
        self.ups: list[float] | array[float] = [] if exact else array("d")
        self.lows: list[float] | array[float] = [] if exact else array("d")
        self.n_up = 0
        self.n_low = 0
        self.t_sum = 0.0

    def tight_up(self) -> float:
        return _tightest(self.ups, self.n_up, self.exact)

    def tight_low(self) -> float:
        return -_tightest(self.lows, self.n_low, self.exact)

    def merge(self, other: _Bounds) -> None:
        if self.exact:
            self.ups = heapq.nsmallest(_KEEP, [*self.ups, *other.ups])
            self.lows = heapq.nsmallest(_KEEP, [*self.lows, *other.lows])
        else:
            self.ups.extend(other.ups)
            self.lows.extend(other.lows)
        self.n_up += other.n_up
        self.n_low += other.n_low
        self.t_sum += other.t_sum


def _tightest(values: list[float] | array[float], count: int, exact: bool) -> float:
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
    cells: dict[tuple[str, str, int, bool], _Bounds] = {}
    names = set(services)
    bucket_s = BUCKET_S
    get = cells.get
    for e in edges:
        caller, callee = e.caller, e.callee
        if caller == callee:
            continue
        exact = e.exact
        key = (caller, callee, int(e.start // bucket_s), exact)
        cell = get(key)
        if cell is None:
            cell = cells[key] = _Bounds(exact)
            names.add(caller)
            names.add(callee)
        cell.t_sum += e.start
        ups = cell.ups
        ups.append(e.start - e.send)
        cell.n_up += 1
        if exact and len(ups) >= _COMPACT_AT:
            cell.ups = heapq.nsmallest(_KEEP, ups)
        if e.receive is not None and e.end is not None:
            lows = cell.lows
            lows.append(e.receive - e.end)
            cell.n_low += 1
            if exact and len(lows) >= _COMPACT_AT:
                cell.lows = heapq.nsmallest(_KEEP, lows)

    order = sorted(names)
    if not cells:
        return {name: ClockModel() for name in order}

    # Whole-window bounds per ordered pair, and per bucket for drift.
    whole: dict[_Key, _Bounds] = {}
    buckets: dict[int, dict[_Key, _Bounds]] = {}
    for (a, b, k, exact), cell in cells.items():
        total = whole.get((a, b, exact))
        if total is None:
            total = whole[(a, b, exact)] = _Bounds(exact)
        total.merge(cell)
        buckets.setdefault(k, {})[(a, b, exact)] = cell

    pairs = _pairs(whole)
    slack = _typical_slack(pairs)
    reference = _reference(whole)
    t_first = min(k for k in buckets) * bucket_s
    t_last = (max(k for k in buckets) + 1) * bucket_s
    ref_t = sum(c.t_sum for c in whole.values()) / sum(c.n_up for c in whole.values())

    if t_last - t_first >= MIN_DRIFT_WINDOW_S and len(buckets) >= 3:
        group = _in_sync(pairs, order)
        offsets, drifts = _solve_with_drift(buckets, group, reference, slack, ref_t)
    else:
        offsets = _solve(pairs, order, reference, slack)
        drifts = dict.fromkeys(order, 0.0)
    return {
        name: ClockModel(offsets.get(name, 0.0), drifts.get(name, 0.0), ref_t) for name in order
    }


_Key = tuple[str, str, bool]
"""Caller, callee, and whether the bounds come from client spans."""


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
) -> tuple[dict[str, float], dict[str, float]]:
    """Offsets at ``ref_t`` and drifts from per-bucket pair estimates.

    Each pair's bucket midpoints are fitted with a weighted line; the
    intercepts and slopes are then solved over the graph like offsets;
    services in one ``group`` share a clock.
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
    for (a, b), points in series.items():
        sw = sum(w for _, _, w in points)
        mt = sum(t * w for t, _, w in points) / sw
        md = sum(d * w for _, d, w in points) / sw
        stt = sum(w * (t - mt) ** 2 for t, _, w in points)
        if len(points) >= 3 and stt > 0:
            slope = sum(w * (t - mt) * (d - md) for t, d, w in points) / stt
            slope = max(-2 * MAX_DRIFT, min(2 * MAX_DRIFT, slope))
            slopes.append((a, b, slope, stt))
        else:
            slope = 0.0
        # Residual spread sets the pair's weight in the graph solve.
        resid = sum(w * (d - md - slope * (t - mt)) ** 2 for t, d, w in points) / sw
        weight = len(points) / max(resid, 1e-10)
        intercepts.append((a, b, md - slope * mt, weight))
    offsets = _least_squares(order, intercepts, reference)
    drifts = _least_squares(order, slopes, reference)
    keys = list(series)
    offsets = _anchor(offsets, keys, reference)
    drifts = _anchor(drifts, keys, reference)
    return (
        {s: offsets[g] for s, g in group.items()},
        {s: max(-MAX_DRIFT, min(MAX_DRIFT, drifts[g])) for s, g in group.items()},
    )
