"""Clocks: the asymmetry common to bounds of one kind, where loops show it.

A call's interval puts the clock difference between its tightest bounds,
and its midpoint is off the truth by half the difference between the
shortest delay on the way there and on the way back. Where both ends are
exact (a client span's send and receive, a server span's start and end)
that is the network's own asymmetry, a few microseconds at most. Where lines
stand in for them, it is how long code takes between a line and the event
it stands for, which is not the same both ways:

- *bracketed*: a caller without a client span record is bounded by its
  last line before the call and its first line after the answer (writing
  "calling inventory" and sending take less than reading the answer and
  writing "inventory responded", or more);
- *lined*: a callee without a span record is timed by its first and last
  lines, written some time after the request came and before the answer
  went.

One service's asymmetry cannot be told from its clock offset: shifting its
clock and its delays together changes nothing the logs show. But a term
shared by every bound of a kind can be measured where the service graph has
loops: the paths from one service to another through one call and through
two (a gateway calling the database directly and through a service) add the
term once and twice. So each kind gets one term, fitted jointly with the
offsets by least squares over the pairs' midpoints, and kept only as far as
the loops support it: the terms are shrunk by ``1 - 1 / F``, with ``F`` the
statistic of how much more of the misfit they explain than the noise left
does (none of them where they explain no more, nearly all where they explain
much more). Where two kinds show only in sum (every loop that holds one
holds the other), a hair of ridge splits the sum between them by their
weight. With fewer than three degrees of freedom left, no term is fitted
and the midpoints stand. The offsets are then still nudged into every pair's
interval (:mod:`._clock_graph`), which no term can move them out of.

The terms are fitted only on bounds from lines next to the call
(:data:`ASYMMETRY` is set by the bracketing rounds of :mod:`._calls`); a
caller's whole span is asymmetric by how long it works before and after its
calls, which is no property of a kind of bound.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar

from ._clock_least_squares import Link, components, least_squares_with_terms

__all__ = ["ASYMMETRY", "KINDS", "asymmetry_terms", "lined_services"]

ASYMMETRY: ContextVar[frozenset[str] | None] = ContextVar("asymmetry", default=None)
"""While set, offsets are solved with the common asymmetry terms, and these
are the services whose spans their own lines time (``None``: no terms)."""

MIN_DOF = 3
"""Degrees of freedom the loops must leave once the terms are fitted: with
fewer, the misfit left says too little about the noise to judge them by."""

KINDS = ("bracketed", "lined")
"""The kinds of bound that get a term, in the order of a link's signs."""


def lined_services(callee: Sequence[str], lined: Sequence[bool]) -> frozenset[str]:
    """The callee services most of whose calls their own lines time."""
    votes: dict[str, int] = {}
    for name, flag in zip(callee, lined, strict=True):
        votes[name] = votes.get(name, 0) + (1 if flag else -1)
    return frozenset(name for name, v in votes.items() if v > 0)


def asymmetry_terms(
    order: list[str], links: list[Link], signs: list[tuple[int, ...]], reference: str
) -> list[float]:
    """Per kind, the term each link's midpoint carries ``sign`` times
    (``midpoint = x[b] - x[a] + sum(sign * term)``), shrunk by its evidence;
    all zero where the loops cannot show it."""
    kinds = len(KINDS)
    used = [k for k in range(kinds) if any(s[k] for s in signs)]
    if not used:
        return [0.0] * kinds
    shown = _loop_parts(order, links, signs, used, reference)
    used = [k for k, part in zip(used, shown, strict=True) if _norm(part, links) > 0.0]
    if not used:
        return [0.0] * kinds
    groups = len(set(components(order, [(a, b) for a, b, _, _ in links]).values()))
    rank = len(used) if len(used) < 2 or not _parallel(shown, links) else 1
    residual_dof = len(links) - (len(order) - groups) - rank
    if residual_dof < MIN_DOF:
        return [0.0] * kinds
    _, full, rss_full = least_squares_with_terms(order, links, signs, used, reference)
    rss_none = least_squares_with_terms(order, links, signs, [], reference)[2]
    explained = rss_none - rss_full
    if explained <= 0.0:
        return [0.0] * kinds
    if rss_full <= explained * 1e-12:
        return full  # the terms fit every loop exactly
    f_stat = (explained / rank) / (rss_full / residual_dof)
    if f_stat <= 1.0:
        return [0.0] * kinds
    return [t * (1.0 - 1.0 / f_stat) for t in full]


def _loop_parts(
    order: list[str],
    links: list[Link],
    signs: list[tuple[int, ...]],
    used: list[int],
    reference: str,
) -> list[list[float]]:
    """Per kind in ``used``, the part of its signs no offsets can explain:
    what the loops show of it (all zero where no loop holds it)."""
    parts = []
    for k in used:
        pairs = zip(links, signs, strict=True)
        column = [(a, b, float(sign[k]), w) for (a, b, _, w), sign in pairs]
        x = least_squares_with_terms(order, column, [], [], reference)[0]
        parts.append([d - (x[b] - x[a]) for a, b, d, _ in column])
    return parts


def _norm(part: list[float], links: list[Link]) -> float:
    """Weighted length, with parts under a millionth of a unit sign taken for zero."""
    total = sum(w * v * v for v, (*_, w) in zip(part, links, strict=True))
    scale = sum(w for *_, w in links)
    return total if total > 1e-12 * scale else 0.0


def _parallel(parts: list[list[float]], links: list[Link]) -> bool:
    """Whether the two kinds' loop parts point the same way (or opposite):
    then only one combination of the two terms shows."""
    first, second = parts
    dot = sum(w * u * v for u, v, (*_, w) in zip(first, second, links, strict=True))
    return dot * dot >= (1 - 1e-9) * _norm(first, links) * _norm(second, links)
