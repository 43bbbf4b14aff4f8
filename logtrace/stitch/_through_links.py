"""Links seen through a service between: ``a -> c`` beside ``a -> b -> c``.

A gateway calls orders and orders calls db. Every db span lies inside an
orders span, and so inside the gateway's span too: containment finds a link
``gateway -> db`` beside ``orders -> db``, at an offset as well supported.
Where the gateway waits for orders without a line, db's spans fit between
the gateway's records as snugly as between orders', and the link is sound
evidence of the two clocks (the cycle it closes tightens them). Where the
gateway does not wait quietly (it calls pricing beside orders and writes
when pricing answers), its records around db's spans are a matter of
chance, and where db fits between them gives the gateway's clock a first
estimate off by a millisecond or more.

:func:`through` finds such links: ``a -> c`` where linked services
``a -> b`` and ``b -> c`` exist, ``b -> c`` holds at least as many of
``c``'s spans as ``a -> c`` does and as many of its traces fitting between
the caller's records, while fewer than half of the traces of ``a -> b``
fit between ``a``'s records. A service that ``a`` also calls directly has
spans inside ``a`` that are inside no ``b``: ``a -> c`` holds more and
stays.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["also_through", "through"]


def through(links: Sequence[tuple[str, str, int, int, int]]) -> dict[int, str]:
    """Per link seen through another service (its index in ``links``), that
    service. Each link is ``(caller, callee, traces, callees, fitting)``:
    its traces, the callee spans it holds, and its traces whose callees fit
    between the caller's records."""
    at = {(caller, callee): i for i, (caller, callee, *_) in enumerate(links)}
    out: dict[int, str] = {}
    for i, (a, c, _, callees, fitting) in enumerate(links):
        for (x, b), j in at.items():
            k = at.get((b, c))
            if x != a or b == c or k is None:
                continue
            _, _, traces, _, waits = links[j]
            if 2 * waits < traces and links[k][3] >= callees and links[k][4] >= fitting:
                out[i] = b
                break
    return out


def also_through(caller: str, callee: str, pairs: set[tuple[str, str]]) -> str:
    """``", also via b"`` where links ``caller -> b -> callee`` stand beside
    ``caller -> callee`` (a caller that waits quietly holds its callee's
    callees as snugly; each span hangs under whichever leaves the narrower
    gap)."""
    between = sorted(b for a, b in pairs if a == caller and b != callee and (b, callee) in pairs)
    return f", also via {', '.join(between)}" if between else ""
