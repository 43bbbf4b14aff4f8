"""How much a link between two services rests on, beside the other links into its callee.

Containment (:mod:`._containment`) may find two links into one service: a
real call, and a sibling that runs beside the caller and holds the callee's
spans by chance (pricing inside orders, both called at once by the
gateway). :func:`evidence` ranks them: a real call's callees fit between
its caller's lines in nearly every trace, and it holds spans of the callee
that no other link explains. :func:`weaker` and :func:`instead` use that
ranking to choose which of two such links goes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

from ._link_consistency import Bounded

__all__ = ["Supported", "evidence", "instead", "weaker"]


class Supported(Bounded, Protocol):
    """A link as :func:`evidence` reads it (see :class:`._containment.Link`)."""

    @property
    def callees(self) -> int: ...
    @property
    def possible(self) -> int: ...
    @property
    def fitting(self) -> int: ...


L = TypeVar("L", bound=Supported)


def evidence(link: L, links: Sequence[L]) -> tuple[float, int, int]:
    """How much ``link`` (one of ``links``) rests on, least first: the
    share of its traces whose callee spans fit between the caller's records
    (a sibling inside by chance seldom does) times the share it holds of
    the callee's spans that the other links into that service leave (a
    chance link beside the real call holds none the real one does not; two
    real callers of one service each hold their own), then its traces; and
    last, whether it is a call seen through another linked service
    (``a -> c`` beside ``a -> b -> c``: 0, it goes first)."""
    pairs = {(k.caller, k.callee) for k in links}
    through = any((link.caller, b) in pairs and (b, link.callee) in pairs for b, _ in pairs)
    fit = min(link.fitting / max(link.traces, 1), 1.0)
    beside = [k.callees for k in links if k.callee == link.callee and k != link]
    left = link.possible - max(beside, default=0)
    share = min(link.callees, left) / left if left > 0 else 0.0
    return (fit * share, link.traces, 0 if through else 1)


def weaker(link: L, links: Sequence[L]) -> bool:
    """Whether another link into ``link``'s callee rests on more evidence
    (:func:`evidence`): only the weaker of two explanations of a service's
    spans may go."""
    share = evidence(link, links)[0]
    return any(
        evidence(k, links)[0] > share for k in links if k.callee == link.callee and k != link
    )


def instead(links: Sequence[L], out: Sequence[int]) -> set[int]:
    """Which of ``links`` (indexes) go where those at ``out`` disagree with
    the first offsets: per link out, the rival into its callee on the least
    evidence, if on less than its own (the offsets followed a sibling that
    packs its few fits more densely than the real call its many: pricing
    between orders' lines in 31 of 75 traces against the gateway's in all
    100), else the link itself."""
    gone: set[int] = set()
    for i in out:
        own = evidence(links[i], links)[0]
        rivals = [
            (evidence(k, links)[0], j)
            for j, k in enumerate(links)
            if k.callee == links[i].callee and j != i and j not in out
        ]
        least = min(rivals, default=None)
        gone.add(least[1] if least is not None and least[0] < own else i)
    return gone
