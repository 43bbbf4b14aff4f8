"""Clock drift: per-minute estimates over a long window, fitted as lines.

Over windows of minutes, per-bucket estimates of each service pair show
whether clocks drift. Each pair's bucket midpoints are fitted with a weighted
line; a significant drift is solved over the graph like the offsets, and the
offsets re-estimated from all calls with the drift taken out.

Pure Python: ``logtrace grep`` estimates clocks without loading numpy.
"""

from __future__ import annotations

import math
from array import array
from operator import add, itemgetter, sub

from ._clock_bounds import Bounds, CallColumns, CallKey, Pair, fold_pairs
from ._clock_graph import (
    anchor,
    difference_bounds,
    in_sync_groups,
    shown_apart,
    solve_offsets,
)
from ._clock_least_squares import least_squares

__all__ = [
    "BUCKETS",
    "BUCKET_S",
    "DRIFT_T_MIN",
    "MAX_DRIFT",
    "MIN_DRIFT_WINDOW_S",
    "fit_with_drift",
]

BUCKET_S = 60.0
"""Width of the time buckets used to follow drift, at most."""
BUCKETS = 6
"""Buckets a window shorter than that many :data:`BUCKET_S` is cut into."""
MIN_DRIFT_WINDOW_S = 120.0
"""Drift is looked for only when the calls span at least this long (buckets
of 20 s then: shorter ones hold too few calls to bound a pair tightly)."""
DRIFT_T_MIN = 6.0
"""A pair's fitted drift must be this many standard errors from zero to count;
without one significant pair, offsets are fitted over the whole window."""
MAX_DRIFT = 5e-4
"""Clamp for fitted drift (500 ppm; real oscillators stay well under 100 ppm)."""
REFITS = 2
"""Times the drift left over after taking the fitted one out is fitted again."""

_Slots = dict[CallKey, dict[float, list[int]]]


def fit_with_drift(
    calls: dict[CallKey, CallColumns],
    pairs: dict[tuple[str, str], Pair],
    order: list[str],
    reference: str,
    slack: float,
    ref_t: float,
    hosts: dict[str, str] | None = None,
) -> tuple[dict[str, float], dict[str, float], dict[tuple[str, str], Pair]] | None:
    """Offsets at ``ref_t``, drifts and the pairs' bounds with the drift taken
    out, or ``None`` when the calls span too short a window or no pair drifts
    measurably (offsets alone then fit)."""
    t_first = min(min(cols[0]) for cols in calls.values())
    t_last = max(max(cols[0]) for cols in calls.values())
    if t_last - t_first < MIN_DRIFT_WINDOW_S:
        return None
    slots = _slots(calls, min(BUCKET_S, (t_last - t_first) / BUCKETS))
    buckets = _bucketed(calls, slots)
    group = _apart_in_a_bucket(in_sync_groups(pairs, order, hosts), buckets)
    fitted = _solve_with_drift(buckets, group, reference, slack, ref_t, True)
    if fitted is None:
        return None
    return _refine(calls, slots, fitted[1], order, reference, slack, ref_t, hosts)


def _slots(calls: dict[CallKey, CallColumns], width: float) -> _Slots:
    """Each pair's calls by time bucket ``width`` seconds wide (positions into
    its columns), buckets in the order their first call comes."""
    slots: _Slots = {}
    for key, (ts, *_) in calls.items():
        buckets: dict[float, list[int]] = {}
        get = buckets.get
        for i, bucket in enumerate(map(width.__rfloordiv__, ts)):  # t // width
            at = get(bucket)
            if at is None:
                buckets[bucket] = [i]
            else:
                at.append(i)
        if any(bucket != bucket for bucket in buckets):
            buckets = _not_finite_together(buckets)
        slots[key] = buckets
    return slots


def _apart_in_a_bucket(
    group: dict[str, str], buckets: dict[float, dict[CallKey, Bounds]]
) -> dict[str, str]:
    """``group`` with every group split whose members' calls exclude one clock
    in some bucket (directly or through other services).

    Over a window in which a clock drifts, a pair's bounds contradict each
    other, the weak side is dropped, and the one side left may well hold
    zero: the whole window then looks like one clock. Within a bucket the
    clocks barely move, and a pair that drifts apart shows it there."""
    members: dict[str, list[str]] = {}
    for s, g in group.items():
        members.setdefault(g, []).append(s)
    shared = {g: names for g, names in members.items() if len(names) > 1}
    split: set[str] = set()
    for cells in buckets.values():
        if not shared:
            break
        bound = difference_bounds(fold_pairs(cells), list(group))
        if bound is None:
            continue
        for g, names in list(shared.items()):
            if shown_apart(bound, names):
                split.add(g)
                del shared[g]
    return {s: (s if g in split else g) for s, g in group.items()}


def _not_finite_together(buckets: dict[float, list[int]]) -> dict[float, list[int]]:
    """One bucket for the calls whose start is NaN or infinite (each NaN is a
    key of its own); callers pass no such times."""
    out: dict[float, list[int]] = {}
    nowhere: list[int] = []
    for bucket, at in buckets.items():
        if bucket == bucket:
            out[bucket] = at
        else:
            out.setdefault(-math.inf, nowhere).extend(at)
    nowhere.sort()
    return out


def _detrended(
    calls: dict[CallKey, CallColumns], drifts: dict[str, float], ref_t: float
) -> dict[CallKey, CallColumns]:
    """The columns with the relative drift of each pair taken out."""
    out: dict[CallKey, CallColumns] = {}
    for key, (ts, ups, lows, weak) in calls.items():
        a, b, _ = key
        rate = drifts.get(b, 0.0) - drifts.get(a, 0.0)
        if rate == 0.0:
            out[key] = (ts, ups, lows, weak)
            continue
        shifts = [rate * (t - ref_t) for t in ts]
        out[key] = (
            ts,
            array("d", map(sub, ups, shifts)),
            array("d", map(add, lows, shifts)),
            array("d", map(add, weak, shifts)),
        )
    return out


def _bucketed(
    calls: dict[CallKey, CallColumns], slots: _Slots
) -> dict[float, dict[CallKey, Bounds]]:
    """Per-bucket bounds of every pair."""
    buckets: dict[float, dict[CallKey, Bounds]] = {}
    for key, (ts, ups, lows, weak) in calls.items():
        for k, idx in slots[key].items():
            if len(idx) == 1:
                i = idx[0]
                cell = Bounds(key[2], (ts[i],), (ups[i],), (lows[i],), (weak[i],))
            else:
                take = itemgetter(*idx)
                cell = Bounds(key[2], take(ts), take(ups), take(lows), take(weak))
            buckets.setdefault(k, {})[key] = cell
    return buckets


def _refine(
    calls: dict[CallKey, CallColumns],
    slots: _Slots,
    drifts: dict[str, float],
    order: list[str],
    reference: str,
    slack: float,
    ref_t: float,
    hosts: dict[str, str] | None,
) -> tuple[dict[str, float], dict[str, float], dict[tuple[str, str], Pair]]:
    """Offsets at ``ref_t`` from every call with the fitted drift taken out
    (and the pairs' bounds they come from).

    Within a bucket the clocks still move; with the drift removed the whole
    window's tightest bounds pin the offsets as well as without drift. The
    leftover drift, fitted again on detrended buckets, corrects the slope.
    """
    offsets: dict[str, float] = {}
    pairs: dict[tuple[str, str], Pair] = {}
    same = {s: s for s in order}
    for refits in range(REFITS + 1):
        flat = _detrended(calls, drifts, ref_t)
        pairs = fold_pairs({key: Bounds(key[2], *cols) for key, cols in flat.items()})
        offsets = solve_offsets(pairs, order, reference, slack, hosts)
        if refits == REFITS:
            break
        leftover = _solve_with_drift(_bucketed(flat, slots), same, reference, slack, ref_t)
        if leftover is None:
            break
        # The offsets are solved again with the drift refitted: offsets
        # from the old slope would be off by its error times the window.
        drifts = {s: drifts.get(s, 0.0) + leftover[1].get(s, 0.0) for s in order}
    return offsets, {s: max(-MAX_DRIFT, min(MAX_DRIFT, v)) for s, v in drifts.items()}, pairs


def _solve_with_drift(
    buckets: dict[float, dict[CallKey, Bounds]],
    group: dict[str, str],
    reference: str,
    slack: float,
    ref_t: float,
    material: bool = False,
) -> tuple[dict[str, float], dict[str, float]] | None:
    """Offsets at ``ref_t`` and drifts from per-bucket pair estimates.

    Each pair's bucket midpoints are fitted with a weighted line; the
    intercepts and slopes are then solved over the graph like offsets;
    services in one ``group`` share a clock. ``None`` when no pair drifts
    measurably: a noise slope would only blur well-behaved clocks. With
    ``material`` (the first look for a drift), a slope counts only if it also
    moves the clock over the window by more than one bucket's interval can
    tell (its typical half-width): the buckets' tightness can trend without
    any clock drifting. Refining a drift found (:func:`_refine`) needs no
    such margin.
    """
    series: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    halves: dict[tuple[str, str], list[float]] = {}
    for cells in buckets.values():
        for (a, b), p in fold_pairs(cells, strict=False).items():
            mid, w = p.estimate(slack)
            if w > 0 and group[a] != group[b]:
                series.setdefault((group[a], group[b]), []).append((p.t - ref_t, mid, w))
                halves.setdefault((group[a], group[b]), []).append(math.sqrt(min(p.n, 1000) / w))
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
                window = max(t for t, _, _ in points) - min(t for t, _, _ in points)
                significant = significant or (
                    abs(slope) > DRIFT_T_MIN * max(stderr, 1e-12)
                    and (
                        not material
                        or abs(slope) * window > sorted(halves[(a, b)])[len(points) // 2]
                    )
                )
        else:
            slope = 0.0
        # Residual spread sets the pair's weight in the graph solve.
        resid = sum(w * (d - md - slope * (t - mt)) ** 2 for t, d, w in points) / sw
        weight = len(points) / max(resid, 1e-10)
        intercepts.append((a, b, md - slope * mt, weight))
    if not significant:
        return None
    offsets = least_squares(order, intercepts, reference)
    drifts = least_squares(order, slopes, reference)
    keys = list(series)
    offsets = anchor(offsets, keys, reference)
    drifts = anchor(drifts, keys, reference)
    return (
        {s: offsets[g] for s, g in group.items()},
        {s: max(-MAX_DRIFT, min(MAX_DRIFT, drifts[g])) for s, g in group.items()},
    )
