"""Clock offsets per service, estimated from all cross-service calls at once.

Each call observed in the logs bounds the difference between the callee's and
the caller's clock: the callee cannot start before the caller sent the request,
nor answer after the caller got the answer. With ``a`` and ``b`` the amounts by
which the caller's and the callee's clocks run ahead of true time::

    answered - receive  <=  b - a  <=  start - send

``answered`` is when the callee's response was complete (a server span
record's ``response_ms``); without it the span's end stands in, a weak bound
that real servers break (they end the span after background tasks and
streamed bodies) and that is dropped wherever it contradicts the others
(:mod:`._clock_bounds`).

One call bounds the difference loosely (by the network delays); the tightest
bounds over many calls (the near-minimum delays, as NTP filters them) pin it
down to microseconds. One pass stores each call as three floats per ordered
pair of services; bounds are then combined per service pair
(:mod:`._clock_bounds`) and solved over the whole service graph at once
(:mod:`._clock_graph`: weighted least squares, anchored at the entry service
of each connected group, contradicted pairs down-weighted, then nudged into
every feasible interval). Services whose calls all fit one shared clock, or
that name one host, get no relative correction. Each model also carries the
interval the calls allow for its offset (shortest paths over the pairs'
bounds), which the summary shows. Over windows of minutes, per-minute
estimates show whether clocks drift (:mod:`._clock_drift`); a significant drift is solved
over the graph the same way, and the offsets re-estimated from all calls with
the drift taken out.

Per-trace adjusters (Jaeger's) see only one call and centre the callee inside
the caller; the global estimate is what makes exact ordering possible.

No numpy here (``logtrace grep`` estimates clocks and must start fast): calls
given as numpy columns go through :mod:`._clock_columns`, imported when used.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._clock_bounds import (
    Bounds,
    CallColumns,
    CallKey,
    fold_pairs,
    reference_service,
    typical_slack,
)
from ._clock_drift import fit_with_drift
from ._clock_graph import difference_bounds, solve_offsets
from ._clock_queues import Queues, queue_offsets, tied_pairs

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "ClockModel",
    "DifferenceBounds",
    "Edge",
    "estimate_clocks",
    "estimate_clocks_from_columns",
    "one_host_services",
]

DifferenceBounds = dict[str, dict[str, float]]
"""``bounds[a][b]``: the most ``clock(b) - clock(a)`` can be, as the calls show."""


@dataclass(frozen=True, slots=True)
class Edge:
    """One cross-service call, as seen in the logs (epoch seconds).

    ``send``/``receive`` are on the caller's clock: its client span's start
    and end when a client span record exists (``exact``), else the caller
    records that bracket the call best (``receive`` may then be ``None``).
    ``start``/``end`` are on the callee's clock: its server span's start
    (``span.start`` or its first record) and end (``None`` if unknown);
    ``answered`` when its response was complete, if its record says.
    """

    caller: str
    callee: str
    send: float
    receive: float | None
    start: float
    end: float | None
    exact: bool
    answered: float | None = None


@dataclass(frozen=True, slots=True)
class ClockModel:
    """How far a service's clock runs ahead of the reference clock.

    At raw time ``ts`` the clock is ahead by ``offset_s + drift * (ts - ref)``
    seconds; :meth:`correct` subtracts that. The reference service has
    ``offset_s == 0`` and ``drift == 0``.
    """

    offset_s: float = 0.0
    drift: float = 0.0
    """Seconds gained per second, around ``ref``."""
    ref: float = 0.0
    """Epoch seconds at which ``offset_s`` holds."""
    low_s: float = -math.inf
    high_s: float = math.inf
    """The interval the calls allow for ``offset_s`` (infinite sides: nothing
    bounds the clock on that side). Empty-handed services keep ``offset_s`` 0."""

    @property
    def bounded(self) -> bool:
        """Whether the calls bound this clock on both sides."""
        return -math.inf < self.low_s and self.high_s < math.inf

    def offset_at(self, ts: float) -> float:
        """Seconds this clock is ahead at raw time ``ts``."""
        return self.offset_s + self.drift * (ts - self.ref)

    def correct(self, ts: float) -> float:
        """The raw timestamp ``ts`` on the reference clock."""
        return ts - self.offset_s - self.drift * (ts - self.ref)


def one_host_services(named: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The host of each service whose span records all name the same one,
    from (service, host named) pairs: such services share a clock."""
    seen: dict[str, set[str]] = {}
    for service, host in named:
        seen.setdefault(service, set()).add(host)
    return {s: next(iter(h)) for s, h in seen.items() if len(h) == 1}


def estimate_clocks(
    edges: Iterable[Edge],
    services: Iterable[str],
    hosts: dict[str, str] | None = None,
    queues: Queues | None = None,
) -> dict[str, ClockModel]:
    """One :class:`ClockModel` per service from every observed call.

    Services with no calls, or in a group with no link to the others, get a
    zero offset relative to their own group's reference. ``hosts`` names each
    service's host, where known: services on one host share a clock unless
    their calls say otherwise. ``queues`` bound consumers' clocks on one
    side (:mod:`._clock_queues`).
    """
    # Every call's time and bounds per ordered pair, compactly (32 bytes a
    # call): one pass over the edges, everything else works on these.
    calls: dict[CallKey, CallColumns] = {}
    get = calls.get
    nan = math.nan
    for e in edges:
        caller, callee = e.caller, e.callee
        if caller == callee:
            continue
        key = (caller, callee, e.exact)
        cols = get(key)
        if cols is None:
            cols = calls[key] = (array("d"), array("d"), array("d"), array("d"))
        start = e.start
        cols[0].append(start)
        cols[1].append(start - e.send)
        receive, end, answered = e.receive, e.end, e.answered
        if receive is None:
            cols[2].append(nan)
            cols[3].append(nan)
        elif answered is not None:
            cols[2].append(receive - answered)
            cols[3].append(nan)
        else:
            cols[2].append(nan)
            cols[3].append(nan if end is None else receive - end)
    return models_from_calls(calls, services, hosts, queues)[0]


def estimate_clocks_from_columns(
    caller: npt.NDArray[np.integer[Any]],
    callee: npt.NDArray[np.integer[Any]],
    send: npt.NDArray[np.float64],
    receive: npt.NDArray[np.float64],
    start: npt.NDArray[np.float64],
    end: npt.NDArray[np.float64],
    exact: npt.NDArray[np.bool_],
    names: Sequence[str],
    services: Iterable[str],
    answered: npt.NDArray[np.float64] | None = None,
    hosts: dict[str, str] | None = None,
    queues: Queues | None = None,
) -> tuple[dict[str, ClockModel], DifferenceBounds | None]:
    """:func:`estimate_clocks` for calls given as columns (service indexes
    into ``names``; NaN for an unknown receive, end or answer): the same
    result without an object per call, as a run has hundreds of thousands.
    Also what the calls allow for every difference of two clocks (``None``
    when a clock drifts: whole-window bounds do not hold then)."""
    from ._clock_columns import calls_by_pair  # numpy: loaded by the callers that have it

    calls = calls_by_pair(caller, callee, send, receive, start, end, exact, names, answered)
    return models_from_calls(calls, services, hosts, queues)


def models_from_calls(
    calls: dict[CallKey, CallColumns],
    services: Iterable[str],
    hosts: dict[str, str] | None,
    queues: Queues | None = None,
) -> tuple[dict[str, ClockModel], DifferenceBounds | None]:
    """Every service's clock model from the calls of each ordered pair and
    the queues' one-sided bounds (:mod:`._clock_queues`), and the bounds on
    every difference of two clocks."""
    queues = queues or {}
    order = sorted(set(services).union(*((a, b) for a, b, _ in calls), *queues))
    if not calls and not queues:
        return {name: ClockModel() for name in order}, None

    whole = {key: Bounds(key[2], *cols) for key, cols in calls.items()}
    pairs = fold_pairs(whole)
    slack = typical_slack(pairs)
    reference = reference_service(whole, queues)
    ref_t = sum(c.t_sum for c in whole.values()) / max(sum(c.n_up for c in whole.values()), 1)
    fitted = fit_with_drift(calls, pairs, order, reference, slack, ref_t, hosts) if calls else None
    if fitted is None:
        offsets = solve_offsets(pairs, order, reference, slack, hosts)
        drifts = dict.fromkeys(order, 0.0)
    else:  # the bounds hold at ``ref_t``, with the drift taken out
        offsets, drifts, pairs = fitted
    if queues:
        offsets = queue_offsets(offsets, tied_pairs(pairs), queues, reference)
    # A queue's bound that contradicts the calls' (around a cycle) is theirs to lose.
    bounds = difference_bounds(pairs, order, queues) or difference_bounds(pairs, order)
    models = {}
    for name in order:
        low, high = -math.inf, math.inf
        if bounds is not None:
            low, high = -bounds[name][reference], bounds[reference][name]
        models[name] = ClockModel(offsets.get(name, 0.0), drifts.get(name, 0.0), ref_t, low, high)
    return models, (bounds if fitted is None else None)
