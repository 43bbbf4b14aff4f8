"""The evidence of containment: span pairs that could be caller and
callee, as plain columns each partition adds to (:func:`._containment.containment_evidence`)
and the run decides on (:func:`._containment.decide_links`).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ._interval_depth import MIN_ROOM, NEAR_DEPTH, snuggest

__all__ = [
    "COLUMNS",
    "EVIDENCE_CAP",
    "GAP",
    "TRIMMED",
    "Evidence",
    "EvidenceCollector",
    "empty_evidence",
    "rows",
    "tails",
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


def tails(evidence: Evidence, width: int, plausible: B) -> B:
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
    nothing)."""
    svc_a, svc_b, lo, hi, keys, callees, kind = evidence
    pair = svc_a.astype(np.int64) * width + svc_b
    trimmed = (kind & TRIMMED) != 0
    fits = ((kind & GAP) != 0) & plausible[pair]
    tightest: dict[int, tuple[float, bool]] = {}
    for p in np.unique(pair[fits & trimmed]).tolist():
        mine = fits & (pair == p)
        whole, cut = mine & ~trimmed, mine & trimmed
        left, right, held, _ = snuggest(lo[cut], hi[cut], keys[cut], callees[cut])
        kept = snuggest(lo[whole], hi[whole], keys[whole], callees[whole])[2] if whole.any() else 0
        score = held / max(right - left, MIN_ROOM)
        if score > tightest.get(p % width, (-1.0, False))[0]:
            tightest[p % width] = (score, kept < NEAR_DEPTH * held)
    late = np.zeros(width, dtype=bool)
    for callee, (_, after) in tightest.items():
        late[callee] = after
    out: B = np.tile(late, width)
    return out
