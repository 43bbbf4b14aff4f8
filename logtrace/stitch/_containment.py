"""Calls inferred from containment, for logs that name no parent span.

OpenTelemetry's logging instrumentation, ECS and Datadog logs give each
record a trace and a span ID but no parent. On one clock, a callee's span
(its records' extent) lies inside its caller's span; with ``d`` how far the
callee's clock runs ahead of the caller's, a caller span ``a`` contains a
callee span ``b`` exactly when::

    end(b) - end(a)  <=  d  <=  start(b) - start(a)        (raw clocks)

Every pair of spans of two services in one trace gives such an interval
(:func:`._containment_evidence.containment_evidence`, per partition, plain
data). Over many traces
the intervals of a real caller and its callee share a region around the
true offset, while those of unrelated spans (siblings, spans of the same
service called from elsewhere) scatter. :class:`LinkDecider` takes, per
ordered service pair, the point that the most traces agree on; a pair whose
reverse direction is about as often consistent (two spans that merely
overlap) or that too few traces support is no link, nor is a link seen
through a service between (:mod:`._through_links`). The links feed
:func:`._inferred_calls.infer_parents` (per trace, a span without a parent
gets the smallest span of a linked caller service that contains it, flagged
in ``Tree.inferred``) and the clock estimate
(:func:`._inferred_calls.solve_with_links`: inferred calls are loose calls
to :mod:`._calls`, bounded and bracketed like any other, starting from the
offsets at which callees fit between their callers' records, or, for a
caller that does not wait for its call, between its records at the same
positions in every trace: :mod:`._record_positions`).

With too little or contradictory evidence nothing is inferred, and
:attr:`Links.note` says why. When the logs fit one shared clock (at zero
offsets nearly every span that could be a callee lies inside a span of
another service of its trace: :func:`._one_clock.shared_clock`), the calls are still
inferred but no clock is corrected: the links' offsets are all zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from ._clock_least_squares import components
from ._evidence import (
    AGAIN,
    GAP,
    LATER,
    MARKS,
    POSITION,
    TRIMMED,
    Evidence,
    rows,
    support,
    tails,
    without_stray_later,
)
from ._interval_depth import MIN_ROOM, deepest, packing_at, snug, snug_stretches, snuggest
from ._link_consistency import consistent, outside
from ._link_evidence import instead
from ._one_clock import refuted_links, shared_clock, unfitting_links
from ._record_gaps import choose_stretches, fit_offsets
from ._record_positions import position_stretches
from ._through_links import also_through, through

__all__ = [
    "MIN_TRACES",
    "Link",
    "LinkDecider",
    "Links",
]

Stretch = tuple[float, float]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

MIN_TRACES = 8
"""Traces that must agree on a link before it is believed."""
REVERSE_SHARE = 0.2
"""A link is dropped when its reverse direction is consistent in more than
this share of as many traces: the two services' spans merely overlap."""


@dataclass(frozen=True, slots=True)
class Link:
    """``caller`` calls ``callee`` (directly or through others that log nothing)."""

    caller: str
    callee: str
    lo: float
    hi: float
    """The offsets (callee's clock minus the caller's, seconds) the most traces agree on."""
    traces: int
    """Traces whose spans of the two services fit that offset."""
    callees: int
    """Spans of the callee service inside a caller's span at that offset."""
    possible: int
    """Spans of the callee service that a span of the caller could contain."""
    trimmed: bool = False
    """Judged by the callees' spans without their last line: the callee
    service works after it answered (see :func:`._evidence.tails`)."""
    fitting: int = 0
    """Traces whose callee spans fit between the caller's records."""


@dataclass(frozen=True, slots=True)
class Links:
    """What containment says about calls between services without parent IDs."""

    links: tuple[Link, ...] = ()
    note: str = ""
    """For the summary: what was inferred, or why nothing was."""
    rejected: tuple[str, ...] = field(default=())
    """Service pairs that looked linked but were contradicted (``a/b``)."""
    offsets: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Per linked service: a first estimate of its clock's offset (relative
    to its group's first service) and how far off it may be, in seconds."""
    groups: dict[str, str] = field(default_factory=dict)
    """Per linked service: the first service of its group (offset zero)."""
    first: dict[str, float] = field(default_factory=dict)
    """Per linked service: the offset (relative to its group's first
    service) at which its spans fit between its callers' records
    (:mod:`._record_gaps`), a closer start than :attr:`offsets` gives."""
    one_clock: bool = False
    """The logs were written on one clock: no offset to correct."""
    allowed: dict[str, tuple[float, float]] = field(default_factory=dict)
    """As :attr:`offsets`, what containment allows, where :attr:`offsets`
    says otherwise (on one clock: zero, and no doubt): the intervals shown."""

    def __bool__(self) -> bool:
        return bool(self.links)

    @property
    def callers(self) -> tuple[tuple[str, str], ...]:
        """The (caller, callee) services of the links."""
        return tuple((k.caller, k.callee) for k in self.links)

    @property
    def trimmed(self) -> tuple[tuple[str, str], ...]:
        """Those of :attr:`callers` judged without the callees' last line."""
        return tuple((k.caller, k.callee) for k in self.links if k.trimmed)


Found = dict[tuple[int, int], list[tuple[tuple[float, float, int, int], Stretch | None]]]
"""Per service pair (indexes): its stretches, each with its gap stretch."""


class LinkDecider:
    """Decides which service calls which from a run's containment evidence,
    again for every set of service pairs left out: what each pair's evidence
    says (its stretches, its callee spans, the traces that fit between its
    caller's records) is worked out once, as the sibling recheck
    (:mod:`._sibling_links`) decides many times."""

    __slots__ = (
        "_called",
        "_callees",
        "_evidence",
        "_fit_pair",
        "_fits",
        "_fitting",
        "_found",
        "_gap",
        "_held_first",
        "_hi",
        "_index",
        "_lo",
        "_pair",
        "_positions",
        "_possible",
        "_services",
        "_shared",
        "_stretches",
        "_tail",
        "_width",
    )

    def __init__(self, evidence: Evidence, services: list[str]) -> None:
        width = len(services) + 1
        summed = (evidence[6] & POSITION) != 0
        positions, evidence = rows(evidence, summed), rows(evidence, ~summed)
        evidence = without_stray_later(evidence, width, MIN_TRACES)
        whole = support(rows(evidence, (evidence[6] & ~MARKS) == 0), width)
        plausible = np.zeros(width * width, dtype=bool)
        plausible[[p for p, traces in whole.items() if traces >= MIN_TRACES]] = True
        tail = tails(evidence, width, plausible, MIN_TRACES)
        # One clock: every callee up to its answer lies inside a span of
        # another service at zero offsets, whole or without the last line
        # of work after the answer (a background task's line, late on a
        # loaded host, outlasts every caller), whichever way the pair is
        # judged.
        self._shared = shared_clock(rows(evidence, (evidence[6] & (GAP | LATER)) == 0))
        pairs = evidence[0].astype(np.int64) * width + evidence[1]
        evidence = rows(evidence, tail[pairs] == ((evidence[6] & TRIMMED) != 0))
        pairs = positions[0].astype(np.int64) * width + positions[1]
        svc_a, svc_b, lo, hi, _, packed, _ = rows(
            positions, tail[pairs] == ((positions[6] & TRIMMED) != 0)
        )
        self._positions = position_stretches(svc_a, svc_b, lo, hi, packed, width)
        gap = (evidence[6] & GAP) != 0
        svc_a, svc_b, lo, hi, keys, callees, kinds = rows(evidence, ~gap)
        pair = svc_a.astype(np.int64) * width + svc_b
        order = np.argsort(pair, kind="stable")
        pair, keys, callees = pair[order], keys[order], callees[order]
        lo, hi = lo[order], hi[order]
        fits = rows(evidence, gap)
        fit_pair = fits[0].astype(np.int64) * width + fits[1]
        distinct, first = np.unique(pair, return_index=True)
        ends = [*first[1:].tolist(), len(pair)] if len(pair) else []
        found: Found = {}
        possible: dict[tuple[int, int], int] = {}
        fitting: dict[tuple[int, int], int] = {}
        held_first: dict[tuple[int, int], int] = {}
        later = (kinds[order] & LATER) != 0  # and, opening otherwise, its own work:
        called, own_work = {}, (kinds[order] & (LATER | AGAIN)) == LATER
        for p, s, e in zip(distinct.tolist(), first.tolist(), ends, strict=True):
            mine = fit_pair == p
            gaps = (fits[2][mine], fits[3][mine], fits[4][mine], fits[5][mine])
            fitted = snug_stretches(*gaps) if mine.any() else []
            at = (p // width, p % width)
            found[at] = snug((lo[s:e], hi[s:e], keys[s:e], callees[s:e]), fitted)
            possible[at] = len(np.unique(callees[s:e]))
            called[at] = len(np.unique(callees[s:e][~own_work[s:e]]))
            fitting[at] = fitted[0][2] if fitted else 0
            f = np.arange(s, e)[~later[s:e]]  # the callee service's first spans
            held_first[at] = deepest(lo[f], hi[f], keys[f], callees[f])[2] if len(f) else 0
        self._services, self._width, self._tail = services, width, tail
        self._index = {name: i for i, name in enumerate(services)}
        self._evidence, self._gap = evidence, gap
        self._lo, self._hi, self._callees, self._pair = lo, hi, callees, pair
        self._found, self._possible, self._fitting = found, possible, fitting
        self._held_first, self._called = held_first, called
        self._fits, self._fit_pair = fits, fit_pair
        self._stretches: dict[Link, tuple[float, float, float]] = {}

    def __call__(self, without: frozenset[tuple[str, str]] = frozenset()) -> Links:
        """The links, none of the service pairs ``without``."""
        services, width, tail = self._services, self._width, self._tail
        found, possible, fitting = self._found, self._possible, self._fitting
        evidence, gap = self._evidence, self._gap
        if not found:
            return Links()
        candidates: list[tuple[int, int]] = []
        rejected: set[str] = set()
        weak: list[str] = []
        for a, b in sorted(found):
            traces = found[(a, b)][0][0][2]
            back = found[(b, a)][0][0][2] if (b, a) in found else 0
            if self._held_first.get((a, b), 0) >= MIN_TRACES:
                # Spans a service starts after its own answered (its work
                # after the answer) inside the other's say nothing against
                # its first spans, calls into it, holding the other's.
                back = min(back, self._held_first.get((b, a), 0))
            if tail[a * width + b] and fitting[(a, b)] >= MIN_TRACES:
                # A callee that works long after it answered may outlast its
                # caller: fits between a caller's lines tell the direction then.
                back = fitting.get((b, a), 0)
            if (services[a], services[b]) in without:
                rejected.add("/".join(sorted((services[a], services[b]))))
                continue
            if traces < MIN_TRACES:
                if traces > back:
                    weak.append(f"{services[a]} -> {services[b]}")
                continue
            if back > REVERSE_SHARE * traces:
                if traces > REVERSE_SHARE * back:  # neither direction holds
                    rejected.add("/".join(sorted((services[a], services[b]))))
                continue
            candidates.append((a, b))
        for a, b in candidates:  # accepted one way: not a pair where neither holds
            rejected.discard("/".join(sorted((services[a], services[b]))))
        links = _chosen(candidates, found, (possible, fitting), services, tail, width, False)
        # A link that offers several stretches ranks after those that offer one:
        # its first may be a call beside its own, fitting as snugly.
        several = {(services[a], services[b]) for a, b in candidates if len(found[(a, b)]) > 1}
        kept, contradicted, offsets, groups = consistent(links, several)
        if any(len(found[pair]) > 1 for pair in candidates):
            # Where a link offers several stretches, the consistent links choose.
            at = self._index
            held = {(at[k.caller], at[k.callee]) for k in kept}
            sure = [pair for pair in candidates if pair in held]
            links = _chosen(sure, found, (possible, fitting), services, tail, width, True)
            kept, dropped, offsets, groups = consistent(links)
            contradicted += dropped
        called = [self._called[(self._index[k.caller], self._index[k.callee])] for k in kept]
        seen = through([(k.caller, k.callee, k.traces, min(k.callees, n), k.fitting)
                        for k, n in zip(kept, called, strict=True)])  # fmt: skip
        via = [f"{k.caller} -> {k.callee} via {seen[i]}" for i, k in enumerate(kept) if i in seen]
        if seen:  # seen through a service between: no call
            kept, _, offsets, groups = consistent([k for i, k in enumerate(kept) if i not in seen])
        one_clock = bool(kept) and self._shared
        if one_clock:  # the offsets are known: a link whose spans do not fit them is none
            whole_rows = rows(evidence, ~gap & ((evidence[6] & LATER) == 0))
            told = [(k.caller, k.callee, k.traces) for k in kept]
            out = refuted_links(told, whole_rows, services)
            fit_rows = rows(evidence, gap & ((evidence[6] & LATER) == 0))
            out = sorted({*out, *unfitting_links(told, whole_rows, fit_rows, services)})
            if out:
                contradicted += [kept[i] for i in out]
                kept, _, offsets, groups = consistent(
                    [k for i, k in enumerate(kept) if i not in out]
                )
        rejected.update("/".join(sorted((k.caller, k.callee))) for k in contradicted)
        gone = sorted(rejected)
        note = _note(kept, gone, weak) + "".join(f"; {text}, not a call" for text in via)
        allowed = offsets
        if one_clock:
            offsets = dict.fromkeys(offsets, (0.0, 0.0))
            first = dict.fromkeys(offsets, 0.0)
            note += (
                "; one clock: at zero offsets every span lies inside one of another service,"
                " no clock corrected"
            )
        else:
            first = self._first(kept, groups)
            out = outside(kept, first, groups)
            if out:
                # Fitted where their callees pack most densely between their
                # callers' lines, the clocks refute these: no calls, or their
                # rivals on less evidence are none. Decided again without
                # them (a link they outvoted may stand then).
                going = {(kept[i].caller, kept[i].callee) for i in instead(kept, out)}
                return self(without | going)
        return Links(tuple(kept), note, tuple(gone), offsets, groups, first, one_clock, allowed)

    def _first(self, kept: list[Link], groups: dict[str, str]) -> dict[str, float]:
        """The first offsets: where the callees of the links ``kept`` fit
        between their callers' lines, each link weighed by how densely they
        pack there."""
        fitted = [self._gap_stretch(k) for k in kept]
        return fit_offsets(
            [(k.caller, k.callee, *f[:2]) for k, f in zip(kept, fitted, strict=True)],
            groups,
            [f[2] for f in fitted],
        )

    def _gap_stretch(self, link: Link) -> tuple[float, float, float]:
        """The offsets that nearly as many of ``link``'s record-gap intervals
        (within its own stretch) hold as the most do, and how densely they
        pack there (:func:`._interval_depth.packing_at`). Where it has none,
        or where its callees seldom fit (a caller that seldom waits): what
        the caller's records at the same positions in every trace allow
        (:mod:`._record_positions`) within its own stretch, else that
        stretch, with its containment intervals' packing."""
        known = self._stretches.get(link)
        if known is None:
            _, _, lo, hi, keys, callees, _ = self._fits
            at = self._index
            p = at[link.caller] * self._width + at[link.callee]
            mine = (self._fit_pair == p) & (hi >= link.lo) & (lo <= link.hi)
            if not mine.any() or 2 * link.fitting < link.traces:
                known = self._positioned(link, self._positions.get(p))
            else:
                left, right = snuggest(lo[mine], hi[mine], keys[mine], callees[mine])[:2]
                dense = packing_at(lo[mine], hi[mine], callees[mine], (left + right) / 2)
                known = (left, right, dense)
                placed = self._positions.get(p)
                callee, caller, fitting = at[link.callee], at[link.caller], self._fitting
                # A caller's caller that waits quietly holds the callee's
                # spans wherever it holds the caller's: no rival.
                rival = max(
                    n
                    for (a, b), n in fitting.items()
                    if b == callee and (a == caller or fitting.get((a, caller), 0) < n)
                )
                if (
                    placed
                    and (placed[0] > right or placed[1] < left)
                    and link.fitting < placed[2]
                    and link.fitting >= rival
                ):
                    # Fits between consecutive records in fewer traces than
                    # the positions hold in, and elsewhere: a chance fit,
                    # where no other service's records fit the callee in
                    # more traces (a sibling called beside the real caller's
                    # call lies at steady positions too).
                    known = self._positioned(link, placed)
            self._stretches[link] = known
        return known

    def _positioned(
        self, link: Link, placed: tuple[float, float, int] | None
    ) -> tuple[float, float, float]:
        """``link``'s stretch within what its caller's records at the same
        positions in every trace allow (``placed``, where they allow any of
        it), and how densely its callees pack there."""
        left, right, steady = placed or (link.lo, link.hi, 0)
        if left > link.hi or right < link.lo:
            left, right, steady = link.lo, link.hi, 0
        left, right = max(left, link.lo), min(right, link.hi)
        pair = self._pair == self._index[link.caller] * self._width + self._index[link.callee]
        middle = (left + right) / 2
        dense = packing_at(self._lo[pair], self._hi[pair], self._callees[pair], middle)
        # Every trace holds the whole of a position stretch: as dense.
        return left, right, max(dense, steady / max(right - left, MIN_ROOM))

    def fits_at(self, link: Link, offset: float) -> tuple[int, int]:
        """Of the traces with callee spans of ``link`` that fit between two
        of the caller's lines at some offset: how many do at ``offset`` (the
        callee's clock minus the caller's), and how many there are."""
        _, _, lo, hi, keys, _, _ = self._fits
        at = self._index
        mine = self._fit_pair == at[link.caller] * self._width + at[link.callee]
        there = mine & (lo <= offset) & (hi >= offset)
        return len(np.unique(keys[there])), len(np.unique(keys[mine]))


def _chosen(
    candidates: list[tuple[int, int]],
    found: Found,
    counts: tuple[dict[tuple[int, int], int], dict[tuple[int, int], int]],
    services: list[str],
    tail: B,
    width: int,
    choose: bool,
) -> list[Link]:
    """The links of the service pairs ``candidates``, each at the first
    stretch its evidence offers (:func:`._interval_depth.snug`); with
    ``choose`` (the candidates are consistent links), where one offers
    several, the one the others agree with
    (:func:`._record_gaps.choose_stretches`). ``counts``: per pair, its
    possible callees and the traces that fit between the caller's records."""
    possible, fitting = counts
    names = [(services[a], services[b]) for a, b in candidates]
    group = components(sorted({n for pair in names for n in pair}), names)
    offered = [
        (caller, callee, [gap or stretch[:2] for stretch, gap in found[pair]])
        for (caller, callee), pair in zip(names, candidates, strict=True)
    ]
    picks = choose_stretches(offered, group) if choose else [0] * len(offered)
    links = []
    for (a, b), (caller, callee), pick in zip(candidates, names, picks, strict=True):
        left, right, traces, spans = found[(a, b)][pick][0]
        trimmed = bool(tail[a * width + b])
        fit = fitting[(a, b)]
        links.append(
            Link(caller, callee, left, right, traces, spans, possible[(a, b)], trimmed, fit)
        )
    return links


def _note(links: list[Link], rejected: list[str], weak: list[str]) -> str:
    if links:
        pairs = {(k.caller, k.callee) for k in links}
        calls = ", ".join(
            f"{k.caller} -> {k.callee} ({k.traces} traces{also_through(k.caller, k.callee, pairs)})"
            for k in links
        )
        text = f"parents inferred from containment (no parent span logged): {calls}"
        if rejected:
            text += f"; not for {', '.join(rejected)} (containment inconsistent)"
        return text
    why = []
    if weak:
        why.append(f"fewer than {MIN_TRACES} traces agree for {', '.join(weak)}")
    if rejected:
        why.append(f"containment inconsistent for {', '.join(rejected)}")
    reason = "; ".join(why) or "no evidence"
    return f"spans whose parent is not logged: no calls inferred ({reason})"
