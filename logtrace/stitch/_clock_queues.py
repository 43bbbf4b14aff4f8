"""Queue hops: a one-sided bound on two clocks, applied only where it is broken.

A message's consumer starts after its producer sent it, but how much later
is up to the queue (microseconds, seconds, hours), so a hop says nothing
about where between the two clocks the truth lies: unlike a call, it has no
answer to bound the other side, and its delays have no floor to learn.
What it does say is one-sided and sound::

    clock(consumer) - clock(producer)  <=  consumer start - producer start

(the producer span's start, as the message went out after it). The tightest
hop of a pair gives that bound. The clock stage solves the offsets from the
calls alone, then, where an offset breaks a queue's bound (the consumer's
lines would run before the message was sent), moves the consumer's clock
just far enough to meet it, with every service the calls tie to it: the
least correction the evidence demands, and none where it demands none. A
consumer tied by calls to its producer's services is left to those calls.
The bound also enters the interval each model reports.

No numpy here: ``logtrace grep`` uses it too.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from ._clock_bounds import Pair
from ._clock_least_squares import components

__all__ = ["Queues", "add_hop", "queue_offsets", "tied_pairs"]

Queues = dict[tuple[str, str], float]
"""Per (producer, consumer) service pair: the least ``consumer start -
producer start`` over its hops (seconds, raw clocks): the most
``clock(consumer) - clock(producer)`` can be."""

_SWEEPS = 8
"""Passes over the bounds at most (each pass settles a chain one step further)."""


def add_hop(queues: Queues, producer: str, consumer: str, gap: float) -> None:
    """Fold one hop (or one pair's tightest) into ``queues``."""
    if producer == consumer or gap != gap:
        return
    key = (producer, consumer)
    queues[key] = min(queues.get(key, math.inf), gap)


def tied_pairs(pairs: dict[tuple[str, str], Pair]) -> list[tuple[str, str]]:
    """The service pairs whose calls bound their clocks' difference at all."""
    return [key for key, p in pairs.items() if p.lo > -math.inf or p.hi < math.inf]


def queue_offsets(
    offsets: dict[str, float],
    tied: Iterable[tuple[str, str]],
    queues: Queues,
    reference: str,
) -> dict[str, float]:
    """``offsets`` with every group of services the calls tie together
    (``tied``) moved as one, as little as meets the queues' bounds: a
    consumer's group down to its bound, or, where the consumer is in the
    reference's group, the producer's group up to it. Bounds between
    services of one group are the calls' to keep."""
    order = sorted(set(offsets).union(*queues))
    out = {s: offsets.get(s, 0.0) for s in order}
    group = components(order, tied)
    home = group.get(reference, reference)
    for _ in range(_SWEEPS):
        moved = False
        for (producer, consumer), bound in sorted(queues.items()):
            over = out[consumer] - out[producer] - bound
            g_p, g_c = group[producer], group[consumer]
            if over <= 0.0 or g_p == g_c:
                continue
            shift, target = (over, g_p) if g_c == home else (-over, g_c)
            for s in order:
                if group[s] == target:
                    out[s] += shift
            moved = True
        if not moved:
            break
    return out
