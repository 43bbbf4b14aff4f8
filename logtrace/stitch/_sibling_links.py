"""Links between two services that a third calls in parallel.

A gateway that calls pricing and orders at once makes, in many traces, a
pricing span that lies inside an orders span by chance: the two run side by
side. Containment (:mod:`._containment`) may read that as a call
``orders -> pricing``, and the link pins the two clocks to a difference the
real calls (gateway -> pricing, gateway -> orders) do not allow. Such a link
shows as a link the solved clocks cannot meet, or as one beside a link that
cannot be met.

:func:`recheck_siblings` takes the suspects (links between two services a
third calls, touching a service of a missed link), solves the clocks once
without them, and drops each suspect whose offset interval excludes what the
rest of the evidence then says. The result stands only if the links that
remain are met better than before; otherwise the first solution is kept.
Nothing changes when every link is met, or on logs written on one clock.
"""

from __future__ import annotations

from collections.abc import Callable

from ._clocks import ClockModel
from ._containment import Links

__all__ = ["ROUNDS", "inner_links", "misses", "recheck_siblings", "refuted", "suspects"]

Pair = tuple[str, str]
Clocks = dict[str, ClockModel]

ROUNDS = 3
"""At most this many rounds of suspects, each solved without the links the
rounds before dropped (a dropped link may reveal another one behind it)."""


def inner_links(links: Links) -> set[Pair]:
    """Links ``b -> c`` where some third service calls both ``b`` and ``c``."""
    pairs = set(links.callers)
    return {
        (b, c)
        for b, c in pairs
        if any(a not in (b, c) and (a, b) in pairs and (a, c) in pairs for a, _ in pairs)
    }


def misses(links: Links, clocks: Clocks) -> dict[Pair, float]:
    """Per link: how far (seconds) the solved difference of the two clocks
    lies outside the offsets the link allows; zero where it lies inside."""
    out: dict[Pair, float] = {}
    for link in links.links:
        d = _difference(clocks, link.caller, link.callee)
        out[(link.caller, link.callee)] = max(link.lo - d, d - link.hi, 0.0)
    return out


def suspects(links: Links, missed: dict[Pair, float]) -> set[Pair]:
    """Inner links (:func:`inner_links`) that share a service with a link
    the clocks miss."""
    touched = {service for pair, by in missed.items() if by > 0 for service in pair}
    return {(b, c) for b, c in inner_links(links) if b in touched or c in touched}


def refuted(links: Links, doubtful: set[Pair], clocks: Clocks) -> set[Pair]:
    """Those of ``doubtful`` whose offset interval excludes the difference
    of ``clocks`` (solved without them)."""
    return {
        (link.caller, link.callee)
        for link in links.links
        if (link.caller, link.callee) in doubtful
        and not link.lo <= _difference(clocks, link.caller, link.callee) <= link.hi
    }


def recheck_siblings(
    links: Links,
    clocks: Clocks,
    decide: Callable[[frozenset[Pair]], Links],
    solve: Callable[[Links, bool], Clocks],
) -> tuple[Links, Clocks]:
    """``links`` and their ``clocks`` without the sibling links the rest of
    the evidence refutes.

    ``decide(without)`` decides the links again, none of the pairs
    ``without``; ``solve(links, widen)`` solves the clocks with them
    (``widen=False``: the clocks as solved, not yet widened to the links'
    intervals, see :func:`._inferred_calls.solve_with_links`).
    """
    if links.one_clock:
        return links, clocks
    gone: frozenset[Pair] = frozenset()
    missed = misses(links, clocks)
    for _ in range(ROUNDS):
        doubtful = suspects(links, missed)
        if not doubtful:
            break
        out = refuted(links, doubtful, solve(decide(gone | doubtful), False))
        if not out:
            break
        fewer = decide(gone | out)
        solved = solve(fewer, True)
        still = misses(fewer, solved)
        if sum(still.values()) >= sum(missed.values()):
            break
        links, clocks, missed, gone = fewer, solved, still, gone | out
    return links, clocks


def _difference(clocks: Clocks, caller: str, callee: str) -> float:
    """The callee's clock offset minus the caller's (seconds)."""
    return clocks.get(callee, ClockModel()).offset_s - clocks.get(caller, ClockModel()).offset_s
