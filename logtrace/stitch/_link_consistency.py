"""Which links between services agree around every cycle of them.

Each link (from containment, :mod:`._containment`) bounds the difference of
two services' clocks; :func:`consistent` keeps the links that agree, the
best supported first, and the offsets they leave each service.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Protocol, TypeVar

__all__ = ["SLACK", "Bounded", "close", "consistent", "outside"]


class Bounded(Protocol):
    """A link as :func:`consistent` reads it."""

    @property
    def caller(self) -> str: ...
    @property
    def callee(self) -> str: ...
    @property
    def lo(self) -> float: ...
    @property
    def hi(self) -> float: ...
    @property
    def traces(self) -> int: ...


L = TypeVar("L", bound=Bounded)


def consistent(
    links: list[L], doubtful: set[tuple[str, str]] | None = None
) -> tuple[list[L], list[L], dict[str, tuple[float, float]], dict[str, str]]:
    """The links whose offsets agree around every cycle of services, the
    offset each linked service's clock then has (relative to the first
    service of its group) with how far off it may be, and each one's group.

    Each link bounds the difference of two clocks; together they are a system
    of difference constraints, feasible when no cycle of them is negative.
    The links that the most traces agree on come first, then the others
    (on a tie, those that bound the offset most tightly first); one that
    would make the system infeasible is dropped: its traces agreed on spans
    that merely overlapped (two calls made in parallel, say). Support, not
    tightness, decides: a pair whose spans fit together at a wrong offset in
    a few dozen traces bounds it tightly there, and ranked by tightness it
    would displace the links of every trace. Links in ``doubtful`` rank
    after the others of as many traces."""
    names = sorted({k.caller for k in links} | {k.callee for k in links})
    at = {name: i for i, name in enumerate(names)}
    n = len(names)
    bound = [[0.0 if i == j else math.inf for j in range(n)] for i in range(n)]
    """``bound[i][j]``: the largest ``clock(j) - clock(i)`` the kept links allow."""
    kept: list[L] = []
    dropped: list[L] = []
    last = doubtful or set()
    ranked = sorted(
        links,
        key=lambda k: (-k.traces, (k.caller, k.callee) in last, k.hi - k.lo, k.caller, k.callee),
    )
    for link in ranked:
        a, b = at[link.caller], at[link.callee]
        trial = [row[:] for row in bound]
        trial[a][b] = min(trial[a][b], link.hi + SLACK)
        trial[b][a] = min(trial[b][a], SLACK - link.lo)
        if close(trial):
            bound = trial
            kept.append(link)
        else:
            dropped.append(link)
    offsets: dict[str, tuple[float, float]] = {}
    groups: dict[str, str] = {}
    anchors: list[int] = []
    for i, name in enumerate(names):
        anchor = next((k for k in anchors if bound[k][i] < math.inf), None)
        if anchor is None:
            anchors.append(i)
            offsets[name] = (0.0, 0.0)
            groups[name] = name
            continue
        hi, lo = bound[anchor][i], -bound[i][anchor]
        offsets[name] = ((lo + hi) / 2, (hi - lo) / 2)
        groups[name] = names[anchor]
    return kept, dropped, offsets, groups


def outside(links: list[L], offsets: dict[str, float], groups: dict[str, str]) -> list[int]:
    """The links (their indexes) whose offsets exclude the difference
    ``offsets`` put between their two clocks (both of one group), save the
    only link into a service."""
    into = Counter(k.callee for k in links)
    out = []
    for i, k in enumerate(links):
        if into[k.callee] < 2 or groups.get(k.caller) != groups.get(k.callee):
            continue
        diff = offsets[k.callee] - offsets[k.caller]
        if not k.lo - SLACK <= diff <= k.hi + SLACK:
            out.append(i)
    return out


def close(bound: list[list[float]]) -> bool:
    """Tighten ``bound`` to its shortest paths; ``False`` if a cycle is negative."""
    n = len(bound)
    for k in range(n):
        row_k = bound[k]
        for i in range(n):
            via = bound[i][k]
            if via == math.inf:
                continue
            row_i = bound[i]
            for j in range(n):
                if via + row_k[j] < row_i[j]:
                    row_i[j] = via + row_k[j]
    return all(bound[i][i] >= 0 for i in range(n))


SLACK = 20e-6
"""Seconds by which a cycle of links may disagree and still count as agreeing."""
