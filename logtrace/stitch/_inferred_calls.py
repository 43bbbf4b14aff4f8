"""Calls inferred from containment: parents for spans whose logs name none.

With the links between services that :mod:`._containment` found, each span
without a parent gets one: a span of a linked caller service of its trace
that contains it on corrected clocks (:func:`infer_parents`), flagged in
``Tree.inferred``. The calls so inferred join the logged ones in the clock
estimate (:func:`solve_with_links`), and with the run's clocks the tree is
built once more for the output (:func:`._stage.stage`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from ._call_doubt import ambiguous
from ._calls import (
    Bracketing,
    CallCollector,
    CallColumns,
    partition_calls,
    solve_clocks,
)
from ._clock_bounds import LOOSE_RATE
from ._clocks import ClockModel
from ._containment import Links
from ._containment_evidence import containment_interval, spans_resolution
from ._correct import apply_clocks, span_shift
from ._gap_matching import one_call_per_gap
from ._link_rules import Callers, Rule, rule_arrays, trimmed_callees
from ._linked_clocks import first_clocks, keep_loose
from ._model import Table, Tree
from ._record_gaps import without_last_line
from ._span_extras import answered_ends
from ._span_pairs import after_own_service, inside_own_service, span_pairs, unlinked_spans
from ._tree import relink

__all__ = [
    "ROUNDS",
    "TOLERANCE",
    "InferRound",
    "agreed",
    "continued",
    "infer_parents",
    "round_calls",
    "solve_with_links",
    "tolerances",
    "unlinked",
]

I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]
F64 = npt.NDArray[np.float64]


TOLERANCE = 50e-6
"""How far (seconds, corrected) a callee may stick out of its caller's span
and still be inside it: the clock estimate's own error."""
INFERRED_LOOSE_RATE = 1 / 100
"""The tightest bounds of inferred calls skipped as outliers (see
:data:`._clock_bounds.LOOSE_RATE`): a call hung under the wrong caller
bounds one side far too tight."""
DOUBT = 1e-3
"""How far (seconds) the clocks of a round may be off, at least, when
deciding which inferred calls are in doubt (:func:`ambiguous`); the first
round takes the links' own uncertainty when that is more."""
ROUNDS: tuple[tuple[float, float | None], ...] = ((0.0, None), (0.0, None))
"""Per round of inferring calls and solving clocks (:func:`solve_with_links`):
how far a callee may stick out of its caller's span (none: a call inferred
holds on the clocks of its round), and how the caller is chosen (the
``margin`` of :func:`infer_parents`; ``None``: the shortest containing span,
the choice that depends least on how far those clocks are off)."""


def tolerances(links: Links, tolerance: float) -> dict[tuple[str, str], Rule]:
    """Per linked (caller, callee): its :class:`Rule`, with ``tolerance``."""
    return {(k.caller, k.callee): Rule(tolerance, k.trimmed) for k in links.links}


def infer_parents(
    table: Table,
    tree: Tree,
    callers: Callers,
    corrected: F64,
    margin: float | None = 0.0,
) -> Tree:
    """``tree`` with a parent for every span without one that a span of a
    linked caller service contains on the ``corrected`` clocks (per row):
    of those of its trace, the one whose records leave the narrowest gap
    around it (a caller writes just before and just after a call; an
    ancestor further up, or a span that merely overlaps, does not), the
    shortest on a tie. The records taken are ``margin`` seconds away from
    the callee's span at least, so that clocks off by less cannot change
    the choice; with ``margin`` ``None`` (clocks that may be far off), the
    shortest containing span is taken. ``callers`` maps each link
    (caller, callee) to how far (seconds) a callee may stick out of its
    caller's span; a negative value is how far inside it must lie (see
    :func:`tolerances`). A span inside a span of its own service
    (:func:`._containment.inside_own_service`) may have that one as parent
    too, chosen the same way (an internal span of a request): its caller's
    records, when it has one, leave a narrower gap around a concurrent
    request than those of the request it happens to run inside."""
    if not len(tree.parent):
        return tree
    whole, tree = tree, answered_ends(table, tree, unlinked_spans(table, tree))
    allowed, trim, n = rule_arrays(table, callers)
    cut = without_last_line(table, tree) if trim.any() else tree
    res = spans_resolution(table, tree)
    inner = inside_own_service(table, tree, res)
    found: list[tuple[F64, _Records]] = []

    def around() -> tuple[F64, _Records]:
        """Per span its clock's correction, and the records (built once, if needed)."""
        if not found:
            found.append((span_shift(table, tree, corrected), _Records(table, corrected)))
        return found[0]

    best = np.full(len(tree.parent), -1, dtype=np.int64)
    best_gap = np.full(len(tree.parent), np.inf)
    # Per span, the stretch its best caller of another service left around
    # it (that caller's records, or its extent): a span of the callee's own
    # service inside that stretch is the request the caller made, and the
    # span inside it that request's own step.
    held_lo = np.full(len(tree.parent), -np.inf)
    held_hi = np.full(len(tree.parent), np.inf)
    # Without links, a span inside one of its own service may as well be a
    # concurrent request from another branch (a database serving two at
    # once): nothing is inferred. With links, its caller competes.
    pool: list[tuple[I64, I64, F64, F64, F64]] = []
    for same in (False, True) if callers else ():
        if same and pool:
            shift = around()[0]
            _one_call_per_gap(pool, tree, tree.start - shift, best, best_gap, held_lo, held_hi)
        if same:
            across = best.copy()  # each span's caller of another service
        for a, b in span_pairs(table, tree, same):
            if same:  # a service's own work inside one of its spans, on one clock
                tol = np.zeros(len(b))
                linked = inner[b]
                end = tree.end[b]
            else:
                link = tree.service[a].astype(np.int64) * n + tree.service[b]
                tol = allowed[link]
                linked = ~np.isnan(tol)
                end = np.where(trim[link], cut.end[b], tree.end[b])
            if not linked.any():
                continue
            a, b, tol, end = a[linked], b[linked], tol[linked], end[linked]
            shift, records = around()
            lo, hi = containment_interval(tree, a, b, res)
            lo += end - tree.end[b]  # where the callee's last line does not count
            d = shift[b] - shift[a]  # the callee's clock minus the caller's, as corrected
            fits = (lo - tol <= d) & (d <= hi + tol)
            if same:
                # A request waits on its own step: it writes nothing while
                # the step runs. One that does is a concurrent request.
                # (Lines to the millisecond: inside only if surely so.)
                inside = records.after(a, tree.start[b] + res[a] - shift[b])
                fits &= ~(inside <= tree.end[b] - res[a] - shift[b])
                # The request inside what its caller's lines left around
                # it, as far as its times allow (to the millisecond: its
                # first line may be up to one later, its last one earlier).
                own_start = tree.start[a] + res[a] - shift[a]
                own_end = tree.end[a] - shift[a]
                fits &= (held_lo[b] <= own_start) & (own_end <= held_hi[b])
                # ... and not held by another span of that request's caller
                # service: that one is a call of its own (two requests a
                # fan-out made side by side).
                mine, theirs = across[a], across[b]
                both = (mine >= 0) & (theirs >= 0)
                other = tree.service[np.maximum(mine, 0)] == tree.service[np.maximum(theirs, 0)]
                fits &= ~(both & (mine != theirs) & other)
            a, b, end = a[fits], b[fits], end[fits]
            if not len(b):
                continue
            # The caller's records nearest outside the callee's span: a call's
            # caller writes just before and just after it (the offsets cancel).
            length = tree.end[a] - tree.start[a]
            if margin is None:
                gap = length
                before, after = tree.start[a] - shift[a], tree.end[a] + res[a] - shift[a]
            else:
                before = records.before(a, tree.start[b] - shift[b] - margin)
                after = records.after(a, end - shift[b] + margin)
                gap = np.where(np.isnan(before) | np.isnan(after), np.inf, after - before)
                before = np.where(np.isnan(before), -np.inf, before)
                after = np.where(np.isnan(after), np.inf, after + res[a])
                if not same:
                    pool.append((a, b, gap, before, after))
            perm = np.lexsort((a, length, gap, b))
            a, b, gap, before, after = a[perm], b[perm], gap[perm], before[perm], after[perm]
            head = np.r_[True, b[1:] != b[:-1]]
            a, b, gap, before, after = a[head], b[head], gap[head], before[head], after[head]
            better = (gap < best_gap[b]) | (best[b] < 0)
            best[b[better]], best_gap[b[better]] = a[better], gap[better]
            if not same:
                held_lo[b[better]], held_hi[b[better]] = before[better], after[better]
    if callers:
        # Work a service did after it answered, traced as a span of its own
        # (a background task): no caller holds it; the request before it does.
        follows = after_own_service(table, tree, res)[1]
        alone = (best < 0) & (follows >= 0)
        best[alone] = follows[alone]
    chosen = np.flatnonzero(best >= 0)
    if not len(chosen):
        return whole
    parent = whole.parent.copy()
    parent[chosen] = best[chosen].astype(np.int32)
    inferred = np.zeros(len(parent), dtype=bool)
    inferred[chosen] = True
    return relink(table, replace(whole, parent=parent, inferred=inferred))


def _one_call_per_gap(
    pool: list[tuple[I64, I64, F64, F64, F64]],
    tree: Tree,
    start: F64,
    best: I64,
    best_gap: F64,
    held_lo: F64,
    held_hi: F64,
) -> None:
    """Callees of one service that chose the same gap of a caller, matched
    to gaps of that caller service one each (:func:`._gap_matching.one_call_per_gap`);
    ``pool`` holds every candidate (caller, callee, gap, and the gap's
    opening and closing times), ``start`` each span's start on corrected
    clocks. ``best`` and the arrays beside it change in place."""
    columns = zip(*pool, strict=True)
    caller, callee, gap, before, after = (np.concatenate(column) for column in columns)
    chosen = np.where(np.isfinite(best_gap), best, -1).astype(np.int64)
    service = tree.service.astype(np.int64)
    moved = one_call_per_gap(chosen, caller, callee, gap, before, service, start)
    for b, row in moved.items():
        best[b], best_gap[b] = caller[row], gap[row]
        held_lo[b], held_hi[b] = before[row], after[row]


class _Records:
    """Spans' records by (span, corrected time), searchable per span."""

    def __init__(self, table: Table, corrected: F64) -> None:
        span = table.rows["span"]
        timed = np.flatnonzero((span >= 0) & ~np.isnan(corrected))
        perm = np.lexsort((corrected[timed], span[timed]))
        self.span: I64 = span[timed][perm].astype(np.int64)
        self.time: F64 = corrected[timed][perm]

    def before(self, span: I64, t: F64) -> F64:
        """Per query, the span's latest record time at or before ``t`` (NaN: none)."""
        lo = np.searchsorted(self.span, span, "left")
        at = _bisect(self.time, lo, np.searchsorted(self.span, span, "right"), t, True) - 1
        ok = at >= lo
        return np.where(ok, self.time[np.clip(at, 0, max(len(self.time) - 1, 0))], np.nan)

    def after(self, span: I64, t: F64) -> F64:
        """Per query, the span's earliest record time at or after ``t`` (NaN: none)."""
        hi = np.searchsorted(self.span, span, "right")
        at = _bisect(self.time, np.searchsorted(self.span, span, "left"), hi, t, False)
        ok = at < hi
        return np.where(ok, self.time[np.clip(at, 0, max(len(self.time) - 1, 0))], np.nan)


def _bisect(time: F64, lo: I64, hi: I64, x: F64, right: bool) -> I64:
    """Per query, where ``x`` goes among ``time[lo:hi]`` (sorted): after equal
    times if ``right``, before them otherwise; all queries halve together."""
    lo, hi = lo.astype(np.int64), hi.astype(np.int64)
    active = np.flatnonzero(lo < hi)
    while len(active):
        mid = (lo[active] + hi[active]) // 2
        t = time[mid]
        go = t <= x[active] if right else t < x[active]
        lo[active] = np.where(go, mid + 1, lo[active])
        hi[active] = np.where(go, hi[active], mid)
        active = active[lo[active] < hi[active]]
    return lo


InferRound = Callable[
    [dict[str, ClockModel], dict[tuple[str, str], Rule], float | None, float, bool],
    Iterable[CallColumns],
]
"""One round of inferring calls run where the partitions are: given the
round's clocks, callers, margin and doubt, and whether the run's calls are
many, yields each partition's calls (:func:`round_calls`; a cluster: :mod:`.spark`)."""


def round_calls(
    s: int,
    table: Table,
    tree: Tree,
    first: I64,
    clocks: dict[str, ClockModel],
    callers: Callers,
    margin: float | None,
    doubt_s: float,
    many: bool,
) -> CallColumns:
    """Partition ``s``'s calls, logged and inferred on ``clocks``, for one
    round of :func:`solve_with_links` (calls whose caller is in doubt,
    within ``doubt_s``, bound no clock: :func:`ambiguous`)."""
    corrected = apply_clocks(table, clocks)
    linked = agreed(table, tree, callers, corrected, margin)
    doubt = ambiguous(table, tree, linked, callers, corrected, doubt_s)
    linked = unlinked(table, tree, linked, doubt | continued(table, tree, linked))
    return partition_calls(s, table, trimmed_callees(table, linked, callers), first, many)


def continued(table: Table, tree: Tree, linked: Tree) -> B:
    """Per span: whether ``linked`` hangs it, a span its service started
    after one of its own had ended, under the caller of the span it
    followed. That is the service's work after it answered (a background
    task, a streamed body, traced as a span of its own), inside its
    caller's span by chance, or that caller's second call: either way no
    call whose bounds are sure (a caller's line next to work after the
    answer says nothing of the clocks). The first call bounds them."""
    out = np.zeros(len(linked.parent), dtype=bool)
    if linked.inferred is None or not linked.inferred.any():
        return out
    later, follows = after_own_service(table, tree, spans_resolution(table, tree))
    at = np.flatnonzero(later & (follows >= 0) & linked.inferred)
    out[at] = (linked.parent[at] >= 0) & (linked.parent[at] == linked.parent[follows[at]])
    return out


def solve_with_links(
    links: Links,
    services: list[str],
    count: int,
    grouped: Callable[[int], tuple[Table, Tree, I64]] | None,
    table: Callable[[int], Table] | None,
    cap: int | None,
    infer: InferRound | None = None,
    bracket: Bracketing | None = None,
) -> dict[str, ClockModel]:
    """The run's clocks with the inferred calls counted as calls.

    Starting from the links' first offsets, each round (:data:`ROUNDS`)
    infers calls on the current clocks (those both ways of choosing the
    caller agree on: :func:`agreed`, less those whose caller is in doubt:
    :func:`ambiguous`, within the links' uncertainty in the first round and
    :data:`DOUBT` after) and solves the clocks from them and the logged calls
    (:func:`._calls.solve_clocks`, whose bracketing tightens them, starting
    from the current clocks); a service its calls bound less than the links
    do keeps its offset (:func:`._linked_clocks.keep_loose`). The offsets
    found are as the calls put them, not yet kept within what the links
    allow (:func:`._linked_clocks.within_links`: the caller does that, once
    it has settled which links stand).
    ``grouped(s)`` gives partition ``s``'s table, tree and first keys,
    ``table(s)`` its table alone (for bracketing); or ``infer`` and
    ``bracket`` run the rounds where the partitions are."""

    def here(
        clocks: dict[str, ClockModel],
        callers: dict[tuple[str, str], Rule],
        margin: float | None,
        doubt_s: float,
        many: bool,
    ) -> Iterator[CallColumns]:
        assert grouped is not None
        for s in range(count):
            t, tree, first = grouped(s)
            yield round_calls(s, t, tree, first, clocks, callers, margin, doubt_s, many)
            del t, tree

    clocks = first_clocks(links)
    doubt_s = max([DOUBT, *(half for _, half in links.offsets.values())])
    for tolerance, margin in ROUNDS:
        callers = tolerances(links, tolerance)
        collector = CallCollector(cap)
        for columns in (infer or here)(clocks, callers, margin, doubt_s, collector.many):
            collector.add(columns)
        token = LOOSE_RATE.set(INFERRED_LOOSE_RATE)
        try:
            solved = solve_clocks(collector, services, count, table, bracket, initial=clocks)
        finally:
            LOOSE_RATE.reset(token)
        clocks = keep_loose(solved, clocks, links)
        doubt_s = DOUBT
    return clocks


def agreed(
    table: Table,
    tree: Tree,
    callers: Callers,
    corrected: F64,
    margin: float | None,
) -> Tree:
    """:func:`infer_parents` keeping only the parents that the narrowest-gap
    choice agrees on: a call whose caller is in doubt bounds no clock."""
    linked = infer_parents(table, tree, callers, corrected, margin)
    if linked.inferred is None:
        return linked
    other = infer_parents(table, tree, callers, corrected, 0.0 if margin is None else None)
    return unlinked(table, tree, linked, linked.inferred & (other.parent != linked.parent))


def unlinked(table: Table, tree: Tree, linked: Tree, drop: B) -> Tree:
    """``linked`` with the spans ``drop`` given back the parents of ``tree``."""
    if not drop.any():
        return linked
    parent = linked.parent.copy()
    parent[drop] = tree.parent[drop]
    inferred = None if linked.inferred is None else linked.inferred & ~drop
    return relink(table, replace(linked, parent=parent, inferred=inferred))
