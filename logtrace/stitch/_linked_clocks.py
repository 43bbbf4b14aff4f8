"""What the links between services say of their clocks, beside the calls.

Containment (:mod:`._containment`) gives each linked service a first offset
and an interval its spans allow. The inferred calls then bound the clocks
(:func:`._inferred_calls.solve_with_links`); these helpers weigh the two:
the first clocks the rounds start from (:func:`first_clocks`), what a round
keeps of them where its calls said less (:func:`keep_loose`), and the
offsets kept within what containment allows (:func:`within_links`).
"""

from __future__ import annotations

import math
from dataclasses import replace

from ._clocks import ClockModel
from ._containment import Links

__all__ = ["first_clocks", "keep_loose", "within_links"]


def first_clocks(links: Links) -> dict[str, ClockModel]:
    """The clock models the links imply before any call is bounded: where
    the callees fit between their callers' records (:attr:`Links.first`),
    else the middle of what containment allows (each may be off by its
    uncertainty in :attr:`Links.offsets`)."""
    if links.first:
        return {name: ClockModel(offset) for name, offset in links.first.items()}
    return {name: ClockModel(offset) for name, (offset, _) in links.offsets.items()}


def keep_loose(
    clocks: dict[str, ClockModel], previous: dict[str, ClockModel], links: Links
) -> dict[str, ClockModel]:
    """``clocks`` where a linked service whose calls bound it less than the
    links do keeps its ``previous`` offset relative to a service of its
    group that the calls bound (the group's first one where they do), and
    the interval containment allows it (:attr:`._containment.Links.offsets`).

    Its calls bound it less when no call bounds it on both sides (every
    call of it in doubt, say), or when the interval they leave is wider
    than the one containment allows: the solved offset is then the middle
    of that interval, no evidence, while what the links said of it is.
    A real run: a streaming service between two others, two clients at
    once and millisecond times left the calls of the last service in doubt
    but two, whose bounds spanned 69 ms, and its offset came out 7 ms off
    (its first offset, from the links, was 0.7 ms off)."""
    out = dict(clocks)

    def settled(name: str) -> bool:
        model = clocks.get(name) or ClockModel()
        if links.groups.get(name, name) == name:
            # The group's first service: the links measure the others from
            # it, and say nothing of its own clock.
            return model.bounded
        half = _allowed(links, name)[1]
        return model.bounded and model.high_s - model.low_s <= 2 * half

    for name, anchor in links.groups.items():
        model = clocks.get(name) or ClockModel()
        if settled(name) or name not in previous:
            continue
        # Measured from a service of the group that the calls did bound:
        # the group's first service may be as unbounded as this one.
        ref = next(
            (
                other
                for other in sorted(links.groups, key=lambda o: o != anchor)
                if links.groups[other] == anchor and other in previous and settled(other)
            ),
            anchor,
        )
        # previous offsets, taken to the solved clocks' frame
        shift = clocks.get(ref, ClockModel()).offset_s - previous.get(ref, ClockModel()).offset_s
        if anchor in previous:
            base = previous[anchor].offset_s + shift
        else:
            base = clocks.get(anchor, ClockModel()).offset_s
        mid, half = _allowed(links, name)
        low = max(model.low_s, base + mid - half)
        high = min(model.high_s, base + mid + half)
        offset = previous[name].offset_s + shift
        out[name] = replace(model, offset_s=offset, drift=0.0, low_s=low, high_s=high)
    return out


def _allowed(links: Links, name: str) -> tuple[float, float]:
    """The offset containment allows ``name`` relative to its group's first
    service, and how far off it may be (seconds; unknown: infinite)."""
    return links.allowed.get(name) or links.offsets.get(name, (0.0, math.inf))


def within_links(clocks: dict[str, ClockModel], links: Links) -> dict[str, ClockModel]:
    """``clocks`` with every linked service's offset moved into what the
    links allow (relative to its group's first service), should the calls
    have pulled it out: containment bounds every offset, whatever the calls
    inferred under it say.

    The interval each model reports (the summary's "interval the calls
    allow") is widened to what containment allows: the inferred calls were
    bracketed by the caller's records just before and after them, which
    holds only for a caller that writes nothing while it waits; that a
    callee lies inside its caller holds for every call."""
    out = dict(clocks)
    for name, (mid, half) in links.offsets.items():
        anchor = links.groups.get(name, name)
        base = clocks.get(anchor, ClockModel())
        model = clocks.get(name, ClockModel())
        relative = model.offset_s - base.offset_s
        fitted = min(max(relative, mid - half), mid + half)
        low = min(model.low_s, base.offset_s + mid - half)
        high = max(model.high_s, base.offset_s + mid + half)
        if name == anchor:
            # Measured against the group's reference clock, which
            # containment bounds relative to this one.
            low, high = model.low_s, model.high_s
            for other, (r_mid, r_half) in links.offsets.items():
                ref = clocks.get(other)
                if links.groups.get(other) == anchor and other != anchor and _reference(ref):
                    low = min(low, -r_mid - r_half)
                    high = max(high, -r_mid + r_half)
        if _reference(model):
            continue
        out[name] = replace(model, offset_s=base.offset_s + fitted, low_s=low, high_s=high)
    return out


def _reference(model: ClockModel | None) -> bool:
    """Whether ``model`` is the reference clock's (the others are measured against it)."""
    return model is not None and model.low_s == model.high_s == model.offset_s == 0.0
