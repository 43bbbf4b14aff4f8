"""Offsets over the service graph: every pair's interval at once.

Weighted least squares over the graph's Laplacian, anchored at one reference
per connected group; pairs the others contradict are down-weighted, then the
offsets are nudged into every feasible interval. Services whose calls all fit
one shared clock, and services on one host (unless their calls say otherwise),
are solved as one. :func:`difference_bounds` gives what the evidence allows
for the difference of any two clocks (shortest paths over the pairs' bounds).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from ._clock_asymmetry import ASYMMETRY, asymmetry_terms
from ._clock_bounds import Pair
from ._clock_least_squares import components, least_squares

__all__ = [
    "anchor",
    "difference_bounds",
    "in_sync_groups",
    "shown_apart",
    "solve_offsets",
]

_INF = math.inf
_Link = tuple[str, str, float, float, float, float]
"""Two group representatives, the pair's midpoint and weight, its interval."""


def solve_offsets(
    pairs: dict[tuple[str, str], Pair],
    order: list[str],
    reference: str,
    slack: float,
    hosts: dict[str, str] | None = None,
) -> dict[str, float]:
    """Offsets that best agree with every pair, then fit into their intervals."""
    group = in_sync_groups(pairs, order, hosts)
    reps = sorted(set(group.values()))
    links = []
    signs: list[tuple[int, ...]] = []
    lined = ASYMMETRY.get()
    for (a, b), p in pairs.items():
        mid, w = p.estimate(slack)
        ra, rb = group[a], group[b]
        if w > 0 and ra != rb:
            links.append((ra, rb, mid, w, p.lo, p.hi))
            callee = b if p.way > 0 else a
            signs.append((p.lead, p.way if lined and callee in lined else 0))
    reference = group.get(reference, reference)
    order = reps
    if lined is not None:
        links = _without_asymmetry(links, signs, order, reference)
    offsets = least_squares(order, [(a, b, m, w) for a, b, m, w, _, _ in links], reference)
    # Down-weight pairs the others contradict (a bad pair in a cycle).
    for _ in range(3):
        reweighted = []
        for a, b, mid, w, lo, hi in links:
            half = max((hi - lo) / 2, 1e-5) if lo <= hi and hi < _INF and lo > -_INF else slack * 4
            miss = abs(offsets[b] - offsets[a] - mid)
            reweighted.append((a, b, mid, w if miss <= half else w * (half / miss) ** 2))
        offsets = least_squares(order, reweighted, reference)
    _project(offsets, links)
    offsets = anchor(offsets, [(a, b) for a, b, *_ in links], reference)
    return {s: offsets[g] for s, g in group.items()}


def _without_asymmetry(
    links: list[_Link], signs: list[tuple[int, ...]], order: list[str], reference: str
) -> list[_Link]:
    """The links with the common asymmetry of each kind of bound taken out
    of their midpoints (:mod:`._clock_asymmetry`)."""
    terms = asymmetry_terms(order, [(a, b, m, w) for a, b, m, w, _, _ in links], signs, reference)
    if not any(terms):
        return links
    return [
        (a, b, m - sum(s * t for s, t in zip(sign, terms, strict=True)), w, lo, hi)
        for (a, b, m, w, lo, hi), sign in zip(links, signs, strict=True)
    ]


def in_sync_groups(
    pairs: dict[tuple[str, str], Pair], order: list[str], hosts: dict[str, str] | None = None
) -> dict[str, str]:
    """Services whose calls are all consistent with sharing one clock, grouped.

    When the logs allow no correction between two services (zero lies inside
    every bound on their difference, one-sided ones included, directly or
    through other services), none is made:
    well-synchronised hosts keep their raw order instead of a noisy estimate
    of a tiny offset. Services that name one host (``hosts``: service -> host)
    share its clock even when no call links them; a pair whose calls exclude
    a shared clock splits its group, whatever the host says.
    """
    fits = {key: p.lo <= 0.0 <= p.hi for key, p in pairs.items()}
    linked = [key for key, p in pairs.items() if fits[key] and (p.lo > -_INF or p.hi < _INF)]
    if hosts:
        # A service whose calls show its clock apart from another's keeps no host link.
        apart = {s for key, ok in fits.items() if not ok for s in key}
        first: dict[str, str] = {}
        for s in order:
            host = hosts.get(s)
            if host and s not in apart:
                linked.append((first.setdefault(host, s), s))
    groups = components(order, linked)
    members: dict[str, list[str]] = {}
    for s in order:
        members.setdefault(groups[s], []).append(s)
    for (a, b), ok in fits.items():
        g = groups[a]
        if not ok and g == groups[b]:
            for s in members[g]:  # contradicted: every member on its own
                groups[s] = s
    # Two services whose direct calls allow one clock may still be shown
    # apart through others (each tightly linked to a third, say, while their
    # own calls are loose): zero must lie inside every bound on their
    # difference, through any path of services.
    bound = difference_bounds(pairs, order)
    if bound is not None:
        for g, names in members.items():
            if any(groups[s] != g for s in names):
                continue  # split already
            if shown_apart(bound, names):
                for s in names:
                    groups[s] = s
    return groups


def shown_apart(bound: dict[str, dict[str, float]], names: list[str]) -> bool:
    """Whether ``bound`` (:func:`difference_bounds`) excludes zero from the
    difference of two of ``names``' clocks: they cannot share one."""
    return any(bound[x][y] < 0.0 for x in names for y in names if x != y)


def difference_bounds(
    pairs: dict[tuple[str, str], Pair],
    order: list[str],
    queues: Mapping[tuple[str, str], float] | None = None,
) -> dict[str, dict[str, float]] | None:
    """``bound[a][b]``: the most ``clock(b) - clock(a)`` can be, given every
    pair's interval and every queue's one-sided bound (``inf``: unbounded).
    ``None`` when the bounds contradict each other around a cycle: then no
    interval is sound."""
    bound = {a: dict.fromkeys(order, _INF) for a in order}
    for a in order:
        bound[a][a] = 0.0
    for (a, b), p in pairs.items():
        if a in bound and b in bound:
            bound[a][b] = min(bound[a][b], p.hi)
            bound[b][a] = min(bound[b][a], -p.lo)
    for (a, b), most in (queues or {}).items():
        if a in bound and b in bound:
            bound[a][b] = min(bound[a][b], most)
    for k in order:  # Floyd-Warshall: services are few
        via = bound[k]
        for a in order:
            to_k = bound[a][k]
            if to_k == _INF:
                continue
            row = bound[a]
            for b, rest in via.items():
                if to_k + rest < row[b]:
                    row[b] = to_k + rest
    if any(bound[a][a] < -1e-9 for a in order):
        return None
    return bound


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


def anchor(
    values: dict[str, float], pairs: Iterable[tuple[str, str]], reference: str
) -> dict[str, float]:
    """Shift each group so that its reference (the given one, or its first
    member) is at zero."""
    groups = components(sorted(values), pairs)
    zero: dict[str, float] = {}
    for s in sorted(values):
        zero.setdefault(groups[s], values[s])
    if reference in groups:
        zero[groups[reference]] = values[reference]
    return {s: values[s] - zero[groups[s]] for s in values}
