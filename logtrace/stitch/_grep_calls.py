"""The calls among ``logtrace grep``'s matches, as the stitch's clock stage sees them.

grep estimates clocks from one trace's calls with the stitch's solver
(:mod:`._clocks`); for the two to agree, each call carries the same
evidence the stitch's :func:`._correct.find_calls` and
:func:`._calls.partition_calls` give it: the callee's answer from its span
record (``response_ms``: a sound bound, where the span's end is a weak one;
against a caller without a client span, when its headers went out,
``headers_ms``, where stated),
the host each span record names (services on one host share a clock), and
times to the second or millisecond widened by their interval (the callee may
have started, and the caller heard back, that much later). A producer's
consumer is no call: a queue hop, which bounds the two clocks on one side
only (:mod:`._clock_queues`). No numpy: grep must start fast.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ._clock_queues import Queues, add_hop
from ._clocks import Edge, one_host_services
from ._model import KIND_CLIENT, KIND_PRODUCER, SPAN_RECORD
from ._parse_text import Parsed
from ._span_fields import answer_ms, headers_ms, host_name, text_span_record

__all__ = ["trace_calls"]


@dataclass(slots=True)
class _SpanSeen:
    service: str
    start: float = math.inf
    end: float = -math.inf
    parent: str | None = None
    client: bool = False
    producer: bool = False
    answered: float | None = None
    heard: float | None = None
    host: str = ""
    recorded: bool = False
    """It has a span record the scan read (with its fields)."""
    unrecorded_end: float = -math.inf
    """Its latest time among lines that are not a span record a text format
    wrote (no fields, written when the application returned)."""
    unrecorded_start: float = math.inf
    """Its earliest such time: where it has none, its start is not in the
    logs (see :func:`._correct.sent_after`)."""
    res: float = 0.0
    """The longest time any of its lines lasts (their resolution)."""


def trace_calls(
    parsed: Sequence[Parsed],
    services: Sequence[str],
    raws: Sequence[bytes],
    resolutions: Sequence[float],
) -> tuple[list[Edge], dict[str, str], Queues]:
    """The cross-service calls among the parsed lines (``raws`` their text,
    ``resolutions`` how long each one's time lasts), the host of each
    service whose span records in those calls all name one, and the queue
    hops' bounds."""
    spans: dict[tuple[str, str], _SpanSeen] = {}
    for p, svc, raw, res in zip(parsed, services, raws, resolutions, strict=True):
        trace, span, parent, ts, _, flags, _, declared = p
        if trace is None or span is None:
            continue
        seen = spans.get((trace, span))
        if seen is None:
            seen = spans[(trace, span)] = _SpanSeen(svc)
        if ts is not None:
            seen.start = min(seen.start, ts)
            if flags & SPAN_RECORD or not text_span_record(raw):
                seen.unrecorded_end = max(seen.unrecorded_end, ts)
                seen.unrecorded_start = min(seen.unrecorded_start, ts)
            seen.end = max(seen.end, ts)
        seen.res = max(seen.res, res)
        if parent is not None:
            seen.parent = parent
        seen.producer |= bool(flags & KIND_PRODUCER)
        if flags & SPAN_RECORD:
            seen.recorded = True
            if declared is not None:
                seen.start = min(seen.start, declared)
                ms = answer_ms(raw)
                if ms is not None:
                    seen.answered = declared + ms / 1e3
                ms = headers_ms(raw)
                if ms is not None:
                    seen.heard = declared + ms / 1e3
            host = host_name(raw)
            if host:
                seen.host = host.decode("utf-8", "replace")
            seen.client |= bool(flags & KIND_CLIENT)
    edges = []
    named = []
    queues: Queues = {}
    for (trace, _), s in spans.items():
        up = spans.get((trace, s.parent)) if s.parent is not None else None
        if up is None or up.service == s.service:
            continue
        if up.start == math.inf or s.start == math.inf:
            continue  # no time for one of the two spans
        send = _sent_after(spans, trace, up)
        if up.producer:
            add_hop(queues, up.service, s.service, s.start + s.res - send)
            continue
        receive = None if up.end == -math.inf else up.end + up.res
        last = s.end if s.recorded else s.unrecorded_end
        end = None if last == -math.inf else last
        edges.append(
            Edge(
                up.service,
                s.service,
                send,
                receive,
                s.start + s.res,
                end,
                up.client,
                s.answered if up.client or s.heard is None else s.heard,
            )
        )
        named += [(x.service, x.host) for x in (up, s) if x.host]
    return edges, one_host_services(named), queues


def _sent_after(spans: dict[tuple[str, str], _SpanSeen], trace: str, up: _SpanSeen) -> float:
    """When the caller ``up``'s request went out after, as the stitch's
    :func:`._correct.sent_after` says: its start, or, where its only lines are
    a span record without fields (written when it ended), its parent's
    start in its own service (NaN without one)."""
    if up.recorded or up.unrecorded_start <= up.start:
        return up.start
    parent = spans.get((trace, up.parent)) if up.parent is not None else None
    if parent is None or parent.service != up.service or parent.start == math.inf:
        return math.nan
    return parent.start
