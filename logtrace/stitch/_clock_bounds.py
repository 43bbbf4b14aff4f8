"""What the calls say about each pair of clocks: bounds, folded per service pair.

Each call bounds the difference between the callee's and the caller's clock
(see :mod:`._clocks`). The calls of one ordered pair, kept as compact columns,
become :class:`Bounds` (the tightest few, a few outliers skipped); both
directions of a service pair fold into one :class:`Pair` interval.

Not every bound is as reliable as the others. "The callee started after the
caller sent" always holds; "the callee was done before the caller had its
answer" holds for the answer (a server span's ``response_ms``) but not always
for the span's end: real servers end their span after background tasks, a
streamed body or Django's request-finished handlers. Lower bounds from span
ends are therefore kept apart (*weak*); when they contradict the other bounds
of a pair they are dropped, and when the sound bounds of a pair contradict each
other, the pair says nothing (never a point between the two).
"""

from __future__ import annotations

import heapq
import math
from array import array
from collections.abc import Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from itertools import pairwise

__all__ = [
    "LOOSE_RATE",
    "Bounds",
    "CallColumns",
    "CallKey",
    "Pair",
    "apart",
    "fold_pairs",
    "grid_step",
    "reference_service",
    "typical_slack",
]

CallKey = tuple[str, str, bool]
"""Caller, callee, and whether the bounds come from client spans."""
CallColumns = tuple["array[float]", "array[float]", "array[float]", "array[float]"]
"""Callee start times, ``start - send``, ``receive - answered`` (the callee's
answer stated in its span record) and ``receive - end`` for calls whose answer
is not stated (the span's end: a weak bound). NaN where unknown."""

_KEEP = 8
"""How many of the tightest bounds are kept per pair and bucket."""
_OUTLIER_RATE = 1 / 500
"""The tightest exact bound skips this fraction of the samples (up to ``_KEEP - 1``)."""
LOOSE_RATE: ContextVar[float] = ContextVar("loose_rate", default=0.0)
"""The share of the tightest inexact (bracketed) bounds skipped as outliers.
Calls the logs link take the extreme (0.0); calls inferred from containment,
whose caller may be a wrong guess now and then, skip the tightest 1 %
(:mod:`._inferred_calls` sets it while it solves)."""
_INF = math.inf


class Bounds:
    """The calls of one ordered pair (in one bucket) as bounds on its offset.

    ``ups`` holds ``start - send`` values, ``lows`` holds ``receive - answered``
    and ``weak`` ``receive - end`` (the negated lower bounds), so that the
    tightest of all are the smallest. Exact bounds keep only their few
    smallest values.
    """

    __slots__ = ("exact", "lows", "n_low", "n_up", "n_weak", "t_sum", "ups", "weak")

    def __init__(
        self,
        exact: bool,
        ts: Sequence[float],
        ups: Sequence[float],
        lows: Sequence[float],
        weak: Sequence[float] = (),
    ) -> None:
        self.exact = exact
        low = [x for x in lows if x == x]  # NaN: no receive or no answer
        weak_low = [x for x in weak if x == x]
        up = [x for x in ups if x == x]
        self.ups: Sequence[float] = heapq.nsmallest(_KEEP, up) if exact else up
        self.lows: Sequence[float] = heapq.nsmallest(_KEEP, low) if exact else low
        self.weak: Sequence[float] = heapq.nsmallest(_KEEP, weak_low) if exact else weak_low
        self.n_up = len(up)
        self.n_low = len(low)
        self.n_weak = len(weak_low)
        self.t_sum = math.fsum(ts)

    def tight_up(self) -> float:
        return _tightest(self.ups, self.n_up, self.exact)

    def tight_low(self) -> float:
        return -_tightest(self.lows, self.n_low, self.exact)

    def next_lows(self) -> list[float]:
        """The lower bounds from stated answers, tightest first, from
        :meth:`tight_low`'s on: the ones to fall back on when the tightest
        were written late (see :meth:`Pair.resolve`)."""
        if not self.lows:
            return []
        if self.exact:
            skip = int(self.n_low * _OUTLIER_RATE)
            best = heapq.nsmallest(_KEEP, self.lows)
        else:
            skip = int(len(self.lows) * LOOSE_RATE.get())
            most = most_apart(len(self.lows))
            best = heapq.nsmallest(skip + _KEEP + most, self.lows)
            skip += apart(best[skip:], most)
        return [-x for x in best[min(skip, len(best) - 1) :]][:_KEEP]

    def tight_weak_low(self) -> float:
        return -_tightest(self.weak, self.n_weak, self.exact)

    def second_weak_low(self) -> float:
        """The weak lower bound that two calls' span ends reach (none for one call)."""
        if self.n_weak < 2:
            return -_INF
        return -_tightest(self.weak, self.n_weak, self.exact, 1)


def _tightest(values: Sequence[float], count: int, exact: bool, more: int = 0) -> float:
    """The smallest value after skipping a few suspiciously small ones (and
    ``more`` beyond those, as far as there are values)."""
    if not values:
        return _INF
    if exact:
        best = heapq.nsmallest(_KEEP, values)
        return best[min(len(best) - 1, int(count * _OUTLIER_RATE) + more)]
    skip = int(len(values) * LOOSE_RATE.get()) + more
    most = most_apart(len(values))
    best = heapq.nsmallest(skip + _CLUSTER + most, values)
    skip += apart(best[skip:], most)
    return best[min(skip, len(best) - 1)]


_APART_SHARE = 1 / 100
"""At most this share of a pair's bracketed bounds (at least 3, at most 50)
are dropped as standing apart (see :func:`apart`)."""
_CLUSTER = 7
"""The tightest bounds that, after those dropped, must crowd (see :func:`apart`)."""
_APART = 4.0
_MIN_APART = 1e-5
_SAME = 1e-6


def most_apart(count: int) -> int:
    """How many of ``count`` bracketed bounds :func:`apart` may drop."""
    return min(50, max(3, int(count * _APART_SHARE)))


def grid_step(values: Sequence[float]) -> float:
    """The smallest step between ascending ``values`` when every step is a
    whole number of milliseconds (times to the millisecond or second give
    such bounds), else 0. Steps under a microsecond are rounding, not steps."""
    steps = [b - a for a, b in pairwise(values) if b - a > _SAME]
    if steps and all(abs(d - round(d, 3)) < _SAME for d in steps):
        return min(steps)
    return 0.0


def apart(best: Sequence[float], most: int = 3) -> int:
    """How many of the tightest bounds ``best`` (ascending) stand apart from the rest.

    Near a pair's true limit many calls crowd: over thousands of calls the
    tightest bounds lie close together. Bounds that a few calls (at most
    ``most``) reach far ahead of the others come from something else: a caller's record
    that the first estimate put on the wrong side of the callee's span (an
    unsound bound), or a record of a parallel branch written while the
    request was on its way (sound, but no match for the other side's limit,
    so the midpoint would lean its way). The tightest ``j`` are dropped when
    the gap after them is over four times the spread of the seven that
    follow (and over 10 µs), the largest such ``j``: one gap some 24 times
    the spacing around it, which evenly random delays hardly ever leave.
    Dropping a bound only widens the interval.

    Times to the millisecond make bounds whole milliseconds apart: the seven
    may all be equal, and the tightest lie one step ahead of them as often
    as not. So on such a grid (:func:`grid_step`) the spread counts as one
    step at least: a bound a single step ahead is where the true limit lies
    as much as the others.
    """
    step = grid_step(best)
    for j in range(min(most, len(best) - _CLUSTER), 0, -1):
        gap = best[j] - best[j - 1]
        spread = max(best[j + _CLUSTER - 1] - best[j], step)
        if gap > _MIN_APART and gap > _APART * spread:
            return j
    return 0


@dataclass(slots=True)
class Pair:
    """What the calls say about ``clock(b) - clock(a)`` for services ``a < b``.

    ``lo`` and ``hi`` are what is left once :meth:`resolve` has dropped the
    bounds that contradict the others; ``weak_lo`` and ``weak_hi`` are the
    weak bounds (span ends) until then.
    """

    lo: float
    hi: float
    n: int
    t: float = 0.0
    weak_lo: float = -_INF
    weak_hi: float = _INF
    second_lo: float = -_INF
    second_hi: float = _INF
    """The weak bounds two calls reach (see :meth:`resolve`)."""
    dropped: str = ""
    """Which bounds :meth:`resolve` dropped: ``""``, ``"weak"``, ``"late
    answers"`` or ``"all"`` (the sound bounds contradicted each other: the
    pair says nothing)."""
    safe_lo: float = -_INF
    safe_hi: float = _INF
    """The bounds from requests (a callee starts after the caller sent), which
    a late timestamp only loosens."""
    answer_lo: list[float] = field(default_factory=list)
    answer_hi: list[float] = field(default_factory=list)
    """The bounds from stated answers, tightest first (:meth:`Bounds.next_lows`)."""
    n_answers: int = 0
    lead: int = 0
    """+1 when the caller's records bracket every call of the pair and ``a``
    makes them all, -1 when ``b`` does, 0 otherwise."""
    way: int = 0
    """+1 when ``a`` makes every call of the pair, -1 when ``b`` does, 0 when both."""

    def resolve(self, strict: bool = True) -> Pair:
        """Keep the weak bounds when they agree with the sound ones; drop them
        when they contradict; drop everything when the sound ones do (unless
        not ``strict``: a drifting clock's per-minute bounds may).

        Weak bounds that alone exclude a shared clock where only one call's
        span end does so are dropped too: a busy server now and then writes
        its span record after the caller had the answer, while a skew shows
        on every call that ran fast enough (two at least). Per-minute bounds
        (not ``strict``) keep them: whether the clocks are apart is decided
        on the whole window."""
        if self.lo > self.hi:
            self._skip_late_answers()
        lo, hi = max(self.lo, self.weak_lo), min(self.hi, self.weak_hi)
        shared = self.lo <= 0.0 <= self.hi
        if strict and lo <= hi and shared and not lo <= 0.0 <= hi:
            lo2, hi2 = max(self.lo, self.second_lo), min(self.hi, self.second_hi)
            if lo2 <= 0.0 <= hi2:  # one late record, not a skew
                lo, hi = self.lo, self.hi
                self.dropped = "weak"
        if lo <= hi:
            self.lo, self.hi = lo, hi
        elif self.lo <= self.hi or not strict:
            self.dropped = "weak"
        else:
            self.lo, self.hi, self.dropped = -_INF, _INF, "all"
        self.weak_lo, self.weak_hi = -_INF, _INF
        self.second_lo, self.second_hi = -_INF, _INF
        return self

    def _skip_late_answers(self) -> None:
        """Sound bounds that contradict each other because of a few answers.

        A stated answer (``span.start`` plus ``response_ms``) is the one
        timestamp whose error is not on the safe side: a record whose start
        was put back from a wall clock read late (a server that reads its
        clocks apart, on a busy host), or a server that notes the answer once
        its write returned, states it after the caller already had it, and
        that call's bound is too tight. A late start, send or receive only
        loosens its bound. So when skipping the tightest stated answers, at
        most one in twenty of them, makes the bounds agree, those were late;
        else the pair says nothing."""
        allowed = min(_KEEP - 1, max(1, self.n_answers // 20))
        i = j = 0
        lo, hi = self.lo, self.hi
        while lo > hi and i + j < allowed:
            if i < len(self.answer_lo) and self.answer_lo[i] == lo and lo > self.safe_lo:
                i += 1
            elif j < len(self.answer_hi) and self.answer_hi[j] == hi and hi < self.safe_hi:
                j += 1
            else:
                break
            lo = max(self.safe_lo, self.answer_lo[i] if i < len(self.answer_lo) else -_INF)
            hi = min(self.safe_hi, self.answer_hi[j] if j < len(self.answer_hi) else _INF)
        if lo <= hi:
            self.lo, self.hi, self.dropped = lo, hi, "late answers"

    def estimate(self, slack: float) -> tuple[float, float]:
        """Midpoint and weight; one-sided intervals assume ``slack`` of delay.

        Contradictory bounds (only per-minute buckets of a drifting clock
        keep them) give their midpoint at a weight for four times the gap.
        """
        lo, hi = self.lo, self.hi
        if lo == -_INF and hi == _INF:
            return 0.0, 0.0
        if lo == -_INF:
            mid, half = hi - slack, slack * 4
        elif hi == _INF:
            mid, half = lo + slack, slack * 4
        else:
            mid, half = (lo + hi) / 2, abs(hi - lo) / 2
            if lo > hi:
                half *= 4
        half = max(half, 1e-5)
        return mid, min(self.n, 1000) / (half * half)


def fold_pairs(bounds: dict[CallKey, Bounds], strict: bool = True) -> dict[tuple[str, str], Pair]:
    """Both call directions of each service pair folded into one interval,
    contradicting bounds dropped (see :meth:`Pair.resolve`)."""
    pairs: dict[tuple[str, str], Pair] = {}
    for (a, b, _), cell in bounds.items():
        up, low, weak = cell.tight_up(), cell.tight_low(), cell.tight_weak_low()
        second = cell.second_weak_low()
        answers = cell.next_lows()
        n = cell.n_up
        t = cell.t_sum / n if n else 0.0
        if a < b:
            key, lo, hi, wlo, whi, slo, shi = (a, b), low, up, weak, _INF, second, _INF
        else:  # clock(a) - clock(b) in [low, up]
            key, lo, hi, wlo, whi, slo, shi = (b, a), -up, -low, -_INF, -weak, -_INF, -second
        pair = pairs.get(key)
        way = 1 if a < b else -1
        lead = 0 if cell.exact else way
        if pair is None:
            pair = pairs[key] = Pair(lo, hi, n, t, wlo, whi, slo, shi, lead=lead, way=way)
        else:
            pair.way = pair.way if pair.way == way else 0
            pair.lead = pair.lead if pair.lead == lead else 0
            pair.t = (pair.t * pair.n + t * n) / max(pair.n + n, 1)
            pair.lo, pair.hi, pair.n = max(pair.lo, lo), min(pair.hi, hi), pair.n + n
            pair.weak_lo, pair.weak_hi = max(pair.weak_lo, wlo), min(pair.weak_hi, whi)
            pair.second_lo, pair.second_hi = max(pair.second_lo, slo), min(pair.second_hi, shi)
        pair.n_answers += cell.n_low
        if a < b:
            pair.safe_hi = min(pair.safe_hi, up)
            pair.answer_lo = sorted(pair.answer_lo + answers, reverse=True)[:_KEEP]
        else:
            pair.safe_lo = max(pair.safe_lo, -up)
            pair.answer_hi = sorted(pair.answer_hi + [-x for x in answers])[:_KEEP]
    for pair in pairs.values():
        pair.resolve(strict)
    return pairs


def typical_slack(pairs: dict[tuple[str, str], Pair]) -> float:
    """Half the median width of two-sided intervals: the typical minimum delay."""
    widths = sorted(p.hi - p.lo for p in pairs.values() if -_INF < p.lo <= p.hi < _INF)
    if not widths:
        return 5e-4
    return max(widths[len(widths) // 2] / 2, 1e-5)


def reference_service(bounds: dict[CallKey, Bounds], queued: Iterable[tuple[str, str]] = ()) -> str:
    """The entry service with most calls (never called itself, nor a
    queue's consumer: ``queued`` holds (producer, consumer) pairs), else
    the busiest."""
    calls: dict[str, int] = {}
    called: set[str] = set()
    for (a, b, _), cell in bounds.items():
        calls[a] = calls.get(a, 0) + cell.n_up
        calls[b] = calls.get(b, 0) + cell.n_up
        called.add(b)
    for producer, consumer in queued:
        calls.setdefault(producer, 0)
        calls.setdefault(consumer, 0)
        called.add(consumer)
    entries = [s for s in calls if s not in called] or list(calls)
    return max(sorted(entries), key=lambda s: calls[s])
