"""Logs without parent IDs written on one clock: telling so, and what it refutes.

On one clock every callee's span lies inside its caller's, so the offsets
are known (zero) once :func:`shared_clock` says the evidence fits them.
The links containment offers are then checked against them
(:func:`refuted_links`): two services called in parallel by one caller
overlap in time, and at an offset a few milliseconds off the shorter one's
spans fit inside the other's, often snugly between two of its lines; at
zero, where the clocks are, one sibling starts before the other and the
link's spans fit in few traces. Where they fit in more (a short sibling
inside a long one: pricing inside orders, which calls stock, in 52 to 54
traces of 80), the lines say more (:func:`unfitting_links`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from ._evidence import Evidence
from ._interval_depth import NEAR_DEPTH

__all__ = [
    "REFUTED_SHARE",
    "SHARED_MISFITS",
    "refuted_links",
    "shared_clock",
    "unfitting_links",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

SHARED_MISFITS = 1e-3
"""At most this share of the spans that could be callees may lie outside
every span of another service of their trace at zero offsets for the logs
to count as written on one clock (:func:`shared_clock`): a record written
after the answer, say."""
REFUTED_SHARE = 0.5
"""On one clock, a link whose spans fit at zero in fewer than this share of
the traces that agree on its own best offset is refuted."""


def shared_clock(contained: Evidence) -> bool:
    """Whether the evidence fits one clock shared by every service: at zero
    offsets, all but :data:`SHARED_MISFITS` of the spans that some span of
    another service of their trace could contain lie inside one (rows of
    ``contained``: services, interval, trace key, callee key). On one
    clock every callee lies inside its caller; the only span inside none is
    each trace's root. A root could lie inside a longer callee span (one
    that works on after it answered), but not at zero: there it holds that
    callee's service instead, and is no misfit. Clocks skewed by more
    than the calls' delays push callees out of their callers: such logs
    are corrected. (Skews smaller than that are within what containment can
    tell from none, and are left uncorrected.) The spans a service starts
    after one of its own ended (work after it answered, perhaps) are left
    out by the caller."""
    svc_a, svc_b, lo, hi, keys, callees, _ = contained
    if not len(callees):
        return False
    at_zero = (lo <= 0.0) & (hi >= 0.0)
    spans, at = np.unique(callees, return_inverse=True)
    inside = np.zeros(len(spans), dtype=bool)
    np.logical_or.at(inside, at.ravel(), at_zero)
    allowed = SHARED_MISFITS * len(spans)
    if np.count_nonzero(~inside) <= allowed:
        return True
    # per trace, the service pairs whose first holds the second at zero
    width = max(int(svc_a.max()), int(svc_b.max())) + 1
    pair = svc_a.astype(np.int64) * width + svc_b
    swapped = svc_b.astype(np.int64) * width + svc_a
    held = _trace_pairs(keys[at_zero], pair[at_zero])
    holder = np.zeros(len(spans), dtype=bool)
    np.logical_or.at(holder, at.ravel(), np.isin(_trace_pairs(keys, swapped), held))
    return int(np.count_nonzero(~inside & ~holder)) <= allowed


def _trace_pairs(keys: I64, pairs: I64) -> npt.NDArray[np.void]:
    """Per row, its trace key and service pair as one comparable value."""
    both = np.ascontiguousarray(np.stack([keys, pairs], axis=1))
    return both.view(np.dtype((np.void, 16))).ravel()


def refuted_links(
    links: Sequence[tuple[str, str, int]], contained: Evidence, services: list[str]
) -> list[int]:
    """Positions (into ``links``: caller, callee and the traces that agree
    on its best offset) of the links whose spans fit at zero offset in
    fewer than :data:`REFUTED_SHARE` of those traces; ``contained`` is the
    containment evidence (services, interval, trace key per row)."""
    width = len(services) + 1
    at = {name: i for i, name in enumerate(services)}
    pair = contained[0].astype(np.int64) * width + contained[1]
    lo, hi, keys = contained[2], contained[3], contained[4]
    out = []
    for i, (caller, callee, traces) in enumerate(links):
        mine = (pair == at[caller] * width + at[callee]) & (lo <= 0.0) & (hi >= 0.0)
        if len(np.unique(keys[mine])) < REFUTED_SHARE * traces:
            out.append(i)
    return out


def unfitting_links(
    links: Sequence[tuple[str, str, int]],
    contained: Evidence,
    fitted: Evidence,
    services: list[str],
) -> list[int]:
    """Positions (into ``links``, as for :func:`refuted_links`) of the links
    that zero offsets refute by the lines: a caller that waits writes
    nothing while its call runs, so on one clock its callee fits between
    two of its lines (``fitted``: the record-gap evidence) and lies inside
    its span in every trace. A sibling that runs beside the callee lies
    inside it in some traces only (under :data:`._interval_depth.NEAR_DEPTH`
    of them) and fits between its lines by chance (in fewer than
    :data:`REFUTED_SHARE`), where another link into that callee fits in
    more than that share of its own traces. A caller that writes while it
    waits (the answer of a parallel call) lets its callee fit in few traces
    too, but lies around it in all of them; and the only link into a
    service is never refuted so."""
    width = len(services) + 1
    at = {name: i for i, name in enumerate(services)}

    def traces_at_zero(evidence: Evidence, caller: str, callee: str) -> int:
        pair = evidence[0].astype(np.int64) * width + evidence[1]
        mine = (pair == at[caller] * width + at[callee]) & (evidence[2] <= 0.0)
        return len(np.unique(evidence[4][mine & (evidence[3] >= 0.0)]))

    fits = [
        traces_at_zero(fitted, caller, callee) >= REFUTED_SHARE * n for caller, callee, n in links
    ]
    out = []
    for i, (caller, callee, traces) in enumerate(links):
        if fits[i] or not any(fits[j] for j, k in enumerate(links) if k[1] == callee and j != i):
            continue
        if traces_at_zero(contained, caller, callee) < NEAR_DEPTH * traces:
            out.append(i)
    return out
