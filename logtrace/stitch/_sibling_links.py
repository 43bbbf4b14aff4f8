"""Links between two services that a third calls in parallel, and chance links beside them.

A gateway that calls pricing and orders at once makes, in many traces, a
pricing span that lies inside an orders span by chance: the two run side by
side. Containment (:mod:`._containment`) may read that as a call
``orders -> pricing``; pricing's spans then hang under orders, and the
calls so inferred pull pricing's clock off the gateway's call. Beside it, db
spans that lie inside pricing's at some wrong offset in a third of the
traces make a chance link ``pricing -> db`` that holds the wrong offset in
place. Such links show as links the solved clocks cannot meet.

:func:`recheck_siblings` then tries the candidates (:func:`candidates`:
the links between two services a third calls, and the links into a service
another link calls too, touching a service of a missed link) one at a time,
solving the clocks without each. One goes if the rest of the evidence
refutes it (its offsets exclude what the clocks then say) or does without
it (every link, itself included, is met); of several, the one on the least
evidence (:func:`evidence`), and never the only link into a service or one
whose drop leaves clocks apart (:func:`weaker`, :func:`apart`). After at
most :data:`ROUNDS` such drops, the set of links whose clocks miss the
links least stands, the one after the most drops on a tie. Nothing changes when every
link is met, or on logs written on one clock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from ._clocks import ClockModel
from ._containment import Link, Links
from ._link_evidence import evidence, weaker
from ._linked_clocks import within_links

__all__ = [
    "MISSED",
    "MISSED_SHARE",
    "ROUNDS",
    "apart",
    "candidates",
    "detached",
    "inner_links",
    "loose_siblings",
    "misses",
    "recheck_siblings",
    "refuted",
    "suspects",
    "unfitted",
]

Pair = tuple[str, str]
Clocks = dict[str, ClockModel]
FitsAt = Callable[[Link, float], tuple[int, int]]
"""Of a link's traces with callees its caller could hold: how many fit
between the caller's lines at an offset, and how many there are."""

ROUNDS = 3
"""At most this many rounds of suspects, each solved without the links the
rounds before dropped (a dropped link may reveal another one behind it)."""
MISSED = 3
MISSED_SHARE = 20
"""How many traces, at least, and one in how many at least, whose callees
miss the caller's gaps make a link that explains no span of its own a loose
sibling (:func:`loose_siblings`). Real calls miss in a few of a hundred
traces (a line of another task between), siblings at whole milliseconds in
one of twenty to one of six."""


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
    return {(link.caller, link.callee): _miss(link, clocks) for link in links.links}


def suspects(links: Links, missed: dict[Pair, float]) -> set[Pair]:
    """Inner links (:func:`inner_links`) that share a service with a link
    the clocks miss."""
    touched = _touched(missed)
    return {(b, c) for b, c in inner_links(links) if b in touched or c in touched}


def refuted(links: Links, doubtful: set[Pair], clocks: Clocks) -> set[Pair]:
    """Those of ``doubtful`` whose offset interval excludes the difference
    of ``clocks`` (solved without them)."""
    return {
        (link.caller, link.callee)
        for link in links.links
        if (link.caller, link.callee) in doubtful and _miss(link, clocks) > 0
    }


def recheck_siblings(
    links: Links,
    decide: Callable[[frozenset[Pair]], Links],
    solve: Callable[[Links], Clocks],
    fits_at: FitsAt | None = None,
) -> tuple[Links, Clocks]:
    """``links`` without the sibling and chance links the rest of the
    evidence refutes or does without, and the clocks solved with the rest
    (kept within what they allow: :func:`within_links`).

    ``solve(links)`` solves the clocks from the calls inferred with
    ``links`` (not yet kept within them); ``decide(without)`` decides the
    links again, none of the pairs ``without``. Each round drops the
    candidate on the least evidence of those that go (not the one after
    which the links left are met best: a chance link beside the sibling may
    be met as well without the real call as without the sibling).
    ``fits_at`` tells how many of a link's traces fit between the caller's
    lines at a given offset (see :func:`loose_siblings`).
    """
    gone: frozenset[Pair] = frozenset(detached(links))
    if gone:
        links = decide(gone)
    clocks = within_links(solve(links), links)
    if links.one_clock:
        return links, clocks
    missed = misses(links, clocks)
    states = [(sum(missed.values()), links, clocks)]
    for _ in range(ROUNDS):
        missing = bool(states[-1][0])
        tried = candidates(links, missed) if missing else loose_siblings(links, clocks, fits_at)
        unfit = set() if missing else unfitted(links, clocks, fits_at)
        tried |= unfit
        best: tuple[tuple[float, ...], Links, Clocks, dict[Pair, float], Pair] | None = None
        rests = {link: evidence(link, links.links) for link in links.links}
        # least evidence first: once one goes, those on more need no solving
        for link in sorted(links.links, key=rests.__getitem__):
            pair = (link.caller, link.callee)
            if pair not in tried or not (pair in unfit or weaker(link, links.links)):
                continue
            if best is not None and rests[link] > best[0][:-1]:
                continue  # on more evidence than one that goes already
            fewer = decide(gone | {pair})
            if apart(fewer, links):
                continue
            raw = solve(fewer)
            solved = within_links(raw, fewer)
            # Refuted, or needless: without it the clocks meet every link,
            # itself included, which they did not with it.
            needless = missing and not any(misses(links, solved).values())
            if needless or refuted(links, {pair}, raw):
                still = misses(fewer, solved)
                rank = (*rests[link], sum(still.values()))
                if best is None or rank < best[0]:
                    best = (rank, fewer, solved, still, pair)
        if best is None:
            break
        _, links, clocks, missed, pair = best
        gone |= {pair}
        states.append((sum(missed.values()), links, clocks))
    # the fewest misses; on a tie, the links after the most drops
    _, _, links, clocks = min((m, -i, k, c) for i, (m, k, c) in enumerate(states))
    return links, clocks


def detached(links: Links) -> set[Pair]:
    """Links ``a -> c`` that explain no span of ``c`` of their own, beside a
    link ``b -> c`` on more traces that does, where no other link joins ``a``
    and ``b``: a service that only runs beside the callers (a queue's
    consumer, after its producer) holds the callee's spans at the offset its
    delay makes, in some traces by chance, and would move its clock by that
    delay. Its clock is left to what else links it, or uncorrected."""
    share = {k: evidence(k, links.links)[0] for k in links.links}
    return {
        (k.caller, k.callee)
        for k in links.links
        if share[k] == 0.0
        and any(
            m.callee == k.callee
            and m.traces > k.traces
            and share[m] > 0.0
            and not _joined(k.caller, m.caller, links, k.callee)
            for m in links.links
        )
    }


def _joined(a: str, b: str, links: Links, leaving: str) -> bool:
    """Whether links (either way) join ``a`` and ``b`` without ``leaving``."""
    near: dict[str, set[str]] = {}
    for x, y in links.callers:
        if leaving not in (x, y):
            near.setdefault(x, set()).add(y)
            near.setdefault(y, set()).add(x)
    seen, todo = {a}, [a]
    while todo:
        for there in near.get(todo.pop(), ()):
            if there not in seen:
                seen.add(there)
                todo.append(there)
    return b in seen


def candidates(links: Links, missed: dict[Pair, float]) -> set[Pair]:
    """The links that may be wrong where some are missed: the suspects
    (:func:`suspects`), and the links that share a service with a missed
    one into a service that another link calls too (a chance link beside a
    real call)."""
    into = Counter(callee for _, callee in links.callers)
    touched = _touched(missed)
    chance = {(a, b) for a, b in links.callers if into[b] > 1 and {a, b} & touched}
    return chance | suspects(links, missed)


def loose_siblings(
    links: Links, clocks: Clocks | None = None, fits_at: FitsAt | None = None
) -> set[Pair]:
    """Where every link is met: the inner links (:func:`inner_links`) whose
    callees fit between the caller's records in fewer than three quarters
    of their traces (a call from a caller that waits fits in nearly all),
    at the offset where they fit best or, with ``fits_at``, at the one the
    ``clocks`` solved put between the two (a sibling fits its best gaps at
    a wrong offset: pricing between orders' lines in 43 of the 70 traces
    with pricing inside orders, at the solved clocks), on less evidence
    than another link into their callee. Met by the clocks their own
    inferred calls pulled, they are tried too, and go if refuted."""
    inner = inner_links(links)

    def loose(k: Link) -> bool:
        if 4 * k.fitting < 3 * k.traces or _outfitted(k, links):
            return True
        if fits_at is None or clocks is None:
            return False
        at = {n: clocks.get(n, ClockModel()).offset_s for n in (k.caller, k.callee)}
        fitting, held = fits_at(k, at[k.callee] - at[k.caller])
        return 4 * fitting < 3 * held

    return {
        (k.caller, k.callee)
        for k in links.links
        if (k.caller, k.callee) in inner and loose(k) and weaker(k, links.links)
    }


def unfitted(links: Links, clocks: Clocks, fits_at: FitsAt | None) -> set[Pair]:
    """Inner links (:func:`inner_links`) whose callees fit between the
    caller's lines, at the offset the ``clocks`` solved, in under half their
    traces, where another link into their callee fits in three quarters or
    more: of a gateway's two calls made at once, the short callee lies
    inside its sibling by chance (pricing inside orders in 80 traces of 80
    at the solved clocks), but fits between the sibling's lines in few (11)
    and between the gateway's in all. Evidence that rests on spans held
    alike (each link holds every pricing span) cannot tell which is the
    call; the lines can."""
    if fits_at is None:
        return set()
    inner = inner_links(links)
    share: dict[Link, float] = {}
    for k in links.links:
        at = {n: clocks.get(n, ClockModel()).offset_s for n in (k.caller, k.callee)}
        fitting, held = fits_at(k, at[k.callee] - at[k.caller])
        share[k] = fitting / held if held else 0.0
    return {
        (k.caller, k.callee)
        for k in links.links
        if (k.caller, k.callee) in inner
        and 2 * share[k] < 1.0
        and any(m.callee == k.callee and m != k and 4 * share[m] >= 3.0 for m in links.links)
    }


def _outfitted(link: Link, links: Links) -> bool:
    """Whether ``link`` holds no callee span the other links into its
    service leave, and its callees miss the caller's gaps in a few traces
    (three and one in twenty at least) and over three times as often as
    those of another link into that service that holds spans of its own. To the millisecond every
    gap widens by one on each side, and a sibling inside by chance fits
    most of them; a caller that waits still fits them all."""
    missed = link.traces - link.fitting
    if (
        missed < MISSED
        or missed * MISSED_SHARE < link.traces
        or evidence(link, links.links)[0] > 0.0
    ):
        return False
    return any(
        (k.traces - k.fitting) * link.traces * 3 < missed * k.traces
        for k in links.links
        if k.callee == link.callee and k != link and evidence(k, links.links)[0] > 0.0
    )


def apart(fewer: Links, links: Links) -> bool:
    """Whether ``fewer`` leaves a service of ``links`` unlinked, or their
    clocks in more groups: such a drop leaves clocks uncorrected."""
    groups = len(set(fewer.groups.values())) > len(set(links.groups.values()))
    return groups or not set(links.groups) <= set(fewer.groups)


def _touched(missed: dict[Pair, float]) -> set[str]:
    """The services of the links the clocks miss."""
    return {service for pair, by in missed.items() if by > 0 for service in pair}


def _miss(link: Link, clocks: Clocks) -> float:
    """How far (seconds) the difference of ``clocks`` (the callee's offset
    minus the caller's) lies outside ``link``'s offsets; zero inside."""
    offset = {name: clocks.get(name, ClockModel()).offset_s for name in (link.caller, link.callee)}
    d = offset[link.callee] - offset[link.caller]
    return max(link.lo - d, d - link.hi, 0.0)
