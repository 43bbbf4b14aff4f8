"""One call per gap: callees of one service that chose the same caller span.

A span without a logged parent takes the caller span whose lines leave the
narrowest gap around it (:func:`._inferred_calls.infer_parents`), each callee
on its own. A caller that fans out to several spans of one service at once
(``asyncio.gather`` over two requests to accounts, each of which then calls
ledger) has its callees' callees side by side: both ledger spans fit inside
both accounts gaps in about half the traces, and both took the narrower one,
leaving the other accounts span with a "calling ledger" line and no callee.
On a busy host the second ledger span also fits the first request's gap
after its own call ("ledger answered" to its answer) more narrowly than the
second request's call gap: two gaps of one span, the other span again left
with a call and no callee.

A caller that waits makes one call per gap between two of its lines. So
where callees of one service chose the same caller span, they are matched
to spans of that caller service, each span one of them
(:func:`one_call_per_gap`), in the narrowest gap it leaves around each: the
narrowest gaps first, and among matchings of equal gaps the one whose
callees start nearest after the lines that opened their gaps (first called,
first started). Only spans of the caller service they chose that hold no
other callee of their service are considered: a caller that made two calls
in a row still holds both where no other span of its service is free to
take one, and a request's own step (a span of its own inside it, in the
same gap) stays with its request, as no other span of the caller's service
holds either.
"""

from __future__ import annotations

from collections import defaultdict
from itertools import permutations

import numpy as np
import numpy.typing as npt

__all__ = ["MOST_CALLEES", "MOST_GAPS", "one_call_per_gap"]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

MOST_CALLEES = 5
MOST_GAPS = 8
"""Groups of more callees, or with more gaps to choose from, keep their
choices (the matchings to try grow as gaps! / (gaps - callees)!)."""


def one_call_per_gap(
    chosen: I64,
    caller: I64,
    callee: I64,
    gap: F64,
    before: F64,
    service: I64,
    start: F64,
) -> dict[int, int]:
    """New choices for callees that share a caller span with another of
    their service.

    ``chosen[b]`` is callee span ``b``'s caller span (-1: none). The
    candidates are rows ``(caller, callee, gap, before)``: every caller span
    whose gap fits the callee, how wide, and when it opens. ``service`` is
    per span, ``start`` each callee's start on the callers' clock. Returns
    ``{callee: row}`` for the callees given another gap."""
    has = chosen >= 0
    spans = np.flatnonzero(has)
    if len(spans) < 2:
        return {}
    key = np.stack((chosen[spans], service[spans]), axis=1)
    _, inverse, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    shared = counts[inverse.ravel()] > 1
    if not shared.any():
        return {}
    groups: dict[int, list[int]] = defaultdict(list)
    for group, span in zip(inverse.ravel()[shared].tolist(), spans[shared].tolist(), strict=True):
        groups[group].append(span)
    rows_of: dict[int, list[int]] = defaultdict(list)
    wanted = np.isin(callee, spans[shared])
    for row in np.flatnonzero(wanted).tolist():
        rows_of[int(callee[row])].append(row)
    # caller spans already holding a callee of the same service outside the groups
    held = {(int(chosen[b]), int(service[b])) for b in spans[~shared].tolist()}
    out: dict[int, int] = {}
    for members in groups.values():
        out.update(_match(members, rows_of, held, chosen, caller, gap, before, service, start))
    return out


def _match(
    members: list[int],
    rows_of: dict[int, list[int]],
    held: set[tuple[int, int]],
    chosen: I64,
    caller: I64,
    gap: F64,
    before: F64,
    service: I64,
    start: F64,
) -> dict[int, int]:
    """The matching of one group's callees to distinct gaps of the caller
    service they chose (see the module's docstring), as ``{callee: row}``."""
    kind = int(service[members[0]])
    of = int(service[chosen[members[0]]])
    # caller span -> callee -> its row there (the narrowest gap of that span)
    fits: dict[int, dict[int, int]] = defaultdict(dict)
    for b in members:
        for row in rows_of[b]:
            a = int(caller[row])
            if int(service[a]) != of or (a, kind) in held:
                continue
            if b not in fits[a] or gap[row] < gap[fits[a][b]]:
                fits[a][b] = row
    slots = list(fits)
    if len(members) > MOST_CALLEES or len(slots) > MOST_GAPS or len(slots) < len(members):
        return {}
    best: tuple[float, float] | None = None
    pick: dict[int, int] = {}
    for order in permutations(slots, len(members)):
        if not all(b in fits[slot] for b, slot in zip(members, order, strict=True)):
            continue
        rows = [fits[slot][b] for b, slot in zip(members, order, strict=True)]
        width = sum(float(gap[row]) for row in rows)
        pairs = zip(members, rows, strict=True)
        lead = sum((float(start[b]) - float(before[row])) ** 2 for b, row in pairs)
        if best is None or (width, lead) < best:
            best, pick = (width, lead), dict(zip(members, rows, strict=True))
    return pick
