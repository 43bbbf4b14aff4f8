"""The evidence of containment: span pairs that could be caller and
callee, as plain columns each partition adds to
(:func:`._containment_evidence.containment_evidence`) and the run decides
on (:class:`._containment.LinkDecider`); and, for logged calls without
client spans, the first offsets their record gaps give
(:func:`gap_offsets`).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ._clock_least_squares import components
from ._interval_depth import (
    MIN_ROOM,
    NEAR_DEPTH,
    deepest,
    deepest_packing,
    snug_stretches,
    snuggest,
)
from ._record_gaps import choose_stretches, fit_offsets

__all__ = [
    "AGAIN",
    "COLUMNS",
    "EVIDENCE_CAP",
    "FOLLOWED",
    "GAP",
    "IN_A_ROW",
    "LATER",
    "MARKS",
    "POSITION",
    "TRIMMED",
    "Evidence",
    "EvidenceCollector",
    "empty_evidence",
    "gap_offsets",
    "rows",
    "support",
    "tails",
    "without_stray_later",
]

I8 = npt.NDArray[np.int8]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

EVIDENCE_CAP = 2_000_000
"""Span pairs the decision keeps at most (those of a deterministic sample of traces)."""
Evidence = tuple[I32, I32, F64, F64, I64, I64, I8]
"""Span pairs that could be caller and callee: caller's and callee's
service (run-wide index), the interval ``lo``, ``hi`` of the callee's clock
minus the caller's for which the caller contains the callee, the trace's
sample key (which also tells traces apart), a key of the callee span, and
its kind: bit :data:`GAP` set where the interval is instead one for which
the callee fits in a gap between two of the caller's records
(:mod:`._record_gaps`), bit :data:`TRIMMED` where the callee's span was
taken without its last line (:func:`._record_gaps.without_last_line`)."""
GAP = 1
TRIMMED = 2
LATER = 4
"""The callee span started after a span of its own service in its trace had
ended (:func:`._span_pairs.after_own_service`): perhaps no call at all, but
that service's own work after it answered, traced as a span of its own."""
FOLLOWED = 8
"""The callee span is the one a :data:`LATER` span of its service started
just after."""
AGAIN = 16
"""The callee span is :data:`LATER` and opens with a line of the form the
span it followed opened with (:func:`._span_openings.opens_alike`): the
request's path run again, a second call."""
POSITION = 32
"""The row sums traces instead (trace key -1, kept by every sample): for a
service pair and a position pair of the caller's records, the offsets at
which the callee fits between them in every trace, and how many traces
(:mod:`._record_positions`; the callee key column packs the position pair
and the count)."""
MARKS = LATER | FOLLOWED | AGAIN
"""The bits that mark a row's callee, not the kind of its interval."""
COLUMNS = 7


def empty_evidence() -> Evidence:
    """No span pairs."""
    f = np.empty(0, dtype=np.float64)
    i = np.empty(0, dtype=np.int32)
    k = np.empty(0, dtype=np.int64)
    return i, i, f, f, k, k, np.empty(0, dtype=np.int8)


class EvidenceCollector:
    """Every partition's evidence; the pairs of the traces with the lowest
    sample keys when there are more than :data:`EVIDENCE_CAP` (the same
    pairs however the run is partitioned)."""

    def __init__(self, cap: int = EVIDENCE_CAP) -> None:
        self.cap = cap
        self.parts: list[Evidence] = []
        self.size = 0

    def add(self, evidence: Evidence) -> None:
        if len(evidence[0]):
            self.parts.append(evidence)
            self.size += len(evidence[0])
        if self.size > 2 * self.cap:
            self.parts = [self._kept()]
            self.size = len(self.parts[0][0])

    def _kept(self) -> Evidence:
        if not self.parts:
            return empty_evidence()
        cols = tuple(np.concatenate([p[k] for p in self.parts]) for k in range(COLUMNS))
        keys = cols[4]
        if len(keys) > self.cap:
            # Whole traces: every pair of a trace whose key is below the cut.
            cut = np.partition(keys, self.cap)[self.cap]
            keep = keys < cut
            cols = tuple(c[keep] for c in cols)
        return cols  # type: ignore[return-value]

    def evidence(self) -> Evidence:
        kept = self._kept()
        self.parts = []
        return kept


def rows(evidence: Evidence, keep: B) -> Evidence:
    """The rows ``keep`` of ``evidence``."""
    svc_a, svc_b, lo, hi, keys, callees, kind = evidence
    return svc_a[keep], svc_b[keep], lo[keep], hi[keep], keys[keep], callees[keep], kind[keep]


def support(contained: Evidence, width: int) -> dict[int, int]:
    """Per service pair (caller index times ``width`` plus callee's): how
    many traces hold the deepest point of its containment intervals."""
    svc_a, svc_b, lo, hi, keys, callees, _ = contained
    pair = svc_a.astype(np.int64) * width + svc_b
    out = {}
    for p in np.unique(pair).tolist():
        at = pair == p
        out[p] = deepest(lo[at], hi[at], keys[at], callees[at])[2]
    return out


TIE = 1e-6
"""Relative difference under which two pairs count as fitting as tightly
(:func:`tails`)."""


def tails(evidence: Evidence, width: int, plausible: B, enough: int = 1) -> B:
    """Per service pair (caller index times ``width`` plus callee's): whether
    it is judged by the callees' spans without their last line.

    A callee service that works after it answered (a background task, a
    streamed body) writes its last line after its caller heard back, in
    every trace alike, and its whole spans fit their callers only at a
    wrong offset. Its direct caller shows it: of the pairs ``plausible``
    (whose whole spans nest in enough traces: a span cut short fits inside
    anything), the one whose spans without their last line fit between two
    of its records most tightly (traces over the width of their stretch).
    There the whole spans fit in clearly fewer traces. What a callee does,
    it does for every caller: all pairs of that callee are judged so (a
    caller further up, whose long call holds the whole span anyway, shows
    nothing; of two as tight, either shows it). A pair whose cut spans fit
    in fewer than ``enough`` traces shows nothing either: one trace where a
    parallel call's line fell just so is no work after the answer."""
    svc_a, svc_b, lo, hi, keys, callees, kind = evidence
    pair = svc_a.astype(np.int64) * width + svc_b
    trimmed = (kind & TRIMMED) != 0
    fits = ((kind & GAP) != 0) & plausible[pair]
    tightest: dict[int, tuple[float, bool]] = {}
    for p in np.unique(pair[fits & trimmed]).tolist():
        mine = fits & (pair == p)
        whole, cut = mine & ~trimmed, mine & trimmed
        left, right, held, _ = snuggest(lo[cut], hi[cut], keys[cut], callees[cut])
        if held < enough:
            continue
        kept = snuggest(lo[whole], hi[whole], keys[whole], callees[whole])[2] if whole.any() else 0
        score = held / max(right - left, MIN_ROOM)
        after = kept < NEAR_DEPTH * held
        best, shown = tightest.get(p % width, (-1.0, False))
        if score > best * (1 + TIE):
            tightest[p % width] = (score, after)
        elif score >= best * (1 - TIE):
            # Two direct callers as tight (whole milliseconds: stretches as
            # wide): the callee's last line may beat one caller's next
            # record in most traces and not the other's; either shows it.
            tightest[p % width] = (score, shown or after)
    late = np.zeros(width, dtype=bool)
    for callee, (_, after) in tightest.items():
        late[callee] = after
    out: B = np.tile(late, width)
    return out


def without_stray_later(evidence: Evidence, width: int, enough: int) -> Evidence:
    """``evidence`` without the :data:`LATER` callee spans of the service
    pairs where they fit their callers elsewhere than the spans they
    followed do, and less snugly. Between a caller's records, a second call
    to a service fits as snugly as the call before it, in a gap of its
    own. A background task traced as a span of its own, logging after its
    caller heard back, fits only at a wrong offset, in some wider gap, in
    every trace alike (in nearly as many traces as the spans it follows:
    :data:`._interval_depth.NEAR_DEPTH`); the request before it fits its own
    call's gap (in ``enough`` traces at least) more snugly. Calls in a row
    (:func:`_in_a_row`), and spans that open as the span they followed did
    (:data:`AGAIN`), are never stray."""
    svc_a, svc_b, lo, hi, keys, callees, kind = evidence
    later = (kind & (LATER | AGAIN)) == LATER
    if not later.any():
        return evidence
    pair = svc_a.astype(np.int64) * width + svc_b
    fits = (kind & ~MARKS) == GAP
    followed = (kind & FOLLOWED) != 0
    stray = np.zeros(width * width, dtype=bool)
    for p in np.unique(pair[later & fits]).tolist():
        before = fits & (pair == p) & followed
        if not before.any():
            continue
        after = fits & (pair == p) & later
        left, right, held, _ = snuggest(lo[before], hi[before], keys[before], callees[before])
        if held < enough:
            continue
        left_l, right_l, held_l, _ = snuggest(lo[after], hi[after], keys[after], callees[after])
        # Apart by more than half the snug stretch is wide: not a hair's
        # breadth (a loaded host widens the stretch: the jobs of a real run
        # lay 4.6 ms beyond a 5 ms stretch, and read as calls put the clock
        # 14.5 ms off).
        apart = max(left_l - right, left - right_l) > (right - left) / 2
        apart = apart and not _in_a_row(lo, hi, callees, before, after)
        snugger = held / max(right - left, MIN_ROOM) > held_l / max(right_l - left_l, MIN_ROOM)
        # Work after every answer follows every request: as many traces.
        alike = held_l >= NEAR_DEPTH * held
        stray[p] = apart and snugger and alike
    return rows(evidence, ~(later & stray[pair]))


IN_A_ROW = 0.85
"""How densely (at least, as a share of the density of the spans they
follow alone, scaled by the callees added) the later spans must pack with
the earlier ones at one offset to be read as second calls in a row. Calls in
a row measure 0.9 to 1.2 on real services; work after the answer, fitting
only a wider gap at a wrong offset, about 0.4, and up to 0.8 where the
caller works a while before its call (a FastAPI page's 10 ms before calling
a service that runs a background task: at 10 ms off the request fits that
gap and the task the call's, and read as calls in a row they moved the
clock 10 to 12 ms). Second calls taken for work after the answer cost some
evidence; the other way round, a clock."""


def _in_a_row(lo: F64, hi: F64, callees: I64, before: B, after: B) -> bool:
    """Whether the ``after`` spans are second calls in a row rather than
    work after the answer: calls in a row each fit their own gap between the
    caller's records at one offset, so together they pack as densely (per
    callee span) as the ``before`` spans do alone."""
    both = before | after
    alone = deepest_packing(lo[before], hi[before], callees[before])
    added = len(np.unique(callees[after])) / len(np.unique(callees[before]))
    together = deepest_packing(lo[both], hi[both], callees[both])
    return together >= IN_A_ROW * alone * (1 + added)


def gap_offsets(evidence: Evidence, services: list[str]) -> list[dict[str, float]]:
    """Per group of services the logged calls without client spans connect,
    each one's offset where the callees fit between their callers' records
    (:func:`._record_gaps.logged_gaps`), relative to the group's first
    service; none without such calls."""
    svc_a, svc_b, lo, hi, keys, callees, _ = rows(evidence, (evidence[6] & ~MARKS) == GAP)
    if not len(svc_a):
        return []
    width = len(services) + 1
    pair = svc_a.astype(np.int64) * width + svc_b
    offered = []
    for p in np.unique(pair).tolist():
        mine = pair == p
        stretches = snug_stretches(lo[mine], hi[mine], keys[mine], callees[mine])
        offered.append((services[p // width], services[p % width], [s[:2] for s in stretches]))
    named = sorted({name for link in offered for name in link[:2]})
    group = components(named, [(caller, callee) for caller, callee, _ in offered])
    picks = choose_stretches(offered, group)
    found = [
        (caller, callee, *stretches[pick])
        for (caller, callee, stretches), pick in zip(offered, picks, strict=True)
    ]
    groups: dict[str, dict[str, float]] = {}
    for name, offset in fit_offsets(found, group).items():
        groups.setdefault(group[name], {})[name] = offset
    return list(groups.values())
