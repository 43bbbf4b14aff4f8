"""``logtrace grep``'s order: the matching lines put in the order ``stitch``
gives them, with clock offsets estimated from the calls among the matches
alone (a full estimate would need a full read, and one trace's client span
records already pin its hops down). Pure Python and no numpy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ._clocks import ClockModel, estimate_clocks
from ._grep_calls import trace_calls
from ._grep_search import Match
from ._order_keys import Line
from ._order_rules import order_lines
from ._parse import Parsed, parse_line
from ._plan import service_from_path
from ._precision import Resolutions, file_resolution, resolution, whole_ms

__all__ = ["UNLINKED_NOTE", "order_matches"]

_NO_SKEW = ClockModel()
_POINTS = Resolutions()


def order_matches(
    matches: list[Match],
    names: Sequence[str],
    paths: Sequence[str] | None = None,
    clocks: dict[str, ClockModel] | None = None,
    notes: list[str] | None = None,
) -> list[Match]:
    """Matches in stitched order: the rules of :mod:`._order_rules`, the
    stitcher's, on clocks estimated from the calls among the matches.

    ``names`` are the files' names (their services when lines name none),
    ``paths`` where to read them (default: the names), for their timestamps'
    resolution. ``clocks`` (by default estimated from the matches) put
    each service's times on the reference clock. ``notes`` gets a note when
    spans of several services are linked to no parent among the matches:
    their calls can only be inferred from many traces, as ``stitch`` does."""
    paths = names if paths is None else paths
    parsed = [parse_line(m.raw) for m in matches]
    services = [
        p[4] or service_from_path(names[m.file]) for m, p in zip(matches, parsed, strict=True)
    ]
    # A file's resolutions matter only to lines whose time could be coarse:
    # those that fall on a whole millisecond (or second). Others are points.
    coarse = {m.file for m, p in zip(matches, parsed, strict=True) if _maybe_coarse(p[3])}
    resolutions = {
        f: file_resolution(paths[f]) if f in coarse else _POINTS for f in {m.file for m in matches}
    }
    lasts = [
        resolution(math.nan if p[3] is None else p[3], resolutions[m.file])
        for m, p in zip(matches, parsed, strict=True)
    ]
    if clocks is None:
        raws = [m.raw for m in matches]
        edges, hosts, queues = trace_calls(parsed, services, raws, lasts)
        clocks = estimate_clocks(edges, set(services), hosts, queues)
        if notes is not None and _unlinked_services(parsed, services) > 1:
            notes.append(UNLINKED_NOTE)
    models = {svc: clocks.get(svc, _NO_SKEW) for svc in set(services)}
    lines: list[Line] = []
    nan = math.nan
    for m, p, svc, last in zip(matches, parsed, services, lasts, strict=True):
        trace, span, parent, ts, _, flags, _, start = p
        raw = nan if ts is None else ts
        lines.append(
            Line(
                m.file,
                trace,
                span,
                parent,
                svc,
                flags,
                raw,
                nan if start is None else start,
                nan if ts is None else models[svc].correct(ts),
                last,
            )
        )

    def correct(service: str, t: float) -> float:
        return models[service].correct(t)

    return [matches[i] for i in order_lines(lines, correct, lambda i: matches[i].raw)]


UNLINKED_NOTE = (
    "spans of several services name no parent that these lines hold (logs without parent "
    "IDs, or parents that logged nothing): grep cannot infer their calls from one trace and "
    "corrects no clock by them; `logtrace stitch --trace ID` infers both from every trace"
)


def _unlinked_services(parsed: Sequence[Parsed], services: Sequence[str]) -> int:
    """The most services of one trace whose spans name no parent among the matches."""
    named: dict[str, str | None] = {}  # per span, the parent a line of it names
    for p in parsed:
        if p[1] is not None and named.get(p[1]) is None:
            named[p[1]] = p[2]
    loose: dict[str, set[str]] = {}
    for p, svc in zip(parsed, services, strict=True):
        trace, span = p[0], p[1]
        if trace is not None and span is not None and named[span] not in named:
            loose.setdefault(trace, set()).add(svc)
    return max((len(v) for v in loose.values()), default=0)


def _maybe_coarse(ts: float | None) -> bool:
    return ts is not None and ts == ts and whole_ms(ts)
