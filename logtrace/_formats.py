"""The header formats a propagator reads, and what each says about the caller.

Every incoming header logtrace reads has a slot, a small integer, so that
the extractor collects header values in one pass whatever the framework.
The readers here take the values found, per slot, and return the caller's
position (:data:`Caller`) or raise :class:`ValueError` with a reason that
quotes the value only escaped and truncated.
"""

from __future__ import annotations

from typing import TypeAlias

from ._b3 import parse_b3, parse_b3_multi
from ._http import log_quote
from ._w3c import normalize_tracestate, parse_traceparent
from ._xray import parse_xray

__all__ = [
    "FORMAT_SLOTS",
    "SLOT_B3",
    "SLOT_B3_FLAGS",
    "SLOT_B3_PARENT",
    "SLOT_B3_SAMPLED",
    "SLOT_B3_SPAN",
    "SLOT_B3_TRACE",
    "SLOT_NAMES",
    "SLOT_REQUEST_ID",
    "SLOT_TRACEPARENT",
    "SLOT_TRACESTATE",
    "SLOT_XRAY",
    "TRACE_HEADERS",
    "Caller",
    "Found",
    "read_b3",
    "read_w3c",
    "read_xray",
]

SLOT_TRACEPARENT = 0
SLOT_TRACESTATE = 1
SLOT_REQUEST_ID = 2
"""The request ID header, whatever name the propagator gives it."""
SLOT_B3 = 3
SLOT_B3_TRACE = 4
SLOT_B3_SPAN = 5
SLOT_B3_PARENT = 6
SLOT_B3_SAMPLED = 7
SLOT_B3_FLAGS = 8
SLOT_XRAY = 9

SLOT_NAMES = {
    SLOT_TRACEPARENT: "traceparent",
    SLOT_TRACESTATE: "tracestate",
    SLOT_B3: "b3",
    SLOT_B3_TRACE: "x-b3-traceid",
    SLOT_B3_SPAN: "x-b3-spanid",
    SLOT_B3_PARENT: "x-b3-parentspanid",
    SLOT_B3_SAMPLED: "x-b3-sampled",
    SLOT_B3_FLAGS: "x-b3-flags",
    SLOT_XRAY: "x-amzn-trace-id",
}
"""The trace context headers by slot, lowercase."""
FORMAT_SLOTS = {
    "tracecontext": (SLOT_TRACEPARENT, SLOT_TRACESTATE),
    "b3": (SLOT_B3, SLOT_B3_TRACE, SLOT_B3_SPAN, SLOT_B3_PARENT, SLOT_B3_SAMPLED, SLOT_B3_FLAGS),
    "xray": (SLOT_XRAY,),
}
"""The slots of each format a propagator can read."""
TRACE_HEADERS = frozenset(SLOT_NAMES.values())
"""Every trace context header read: no request ID header may take one of these names."""

Caller: TypeAlias = tuple[str, str | None, bool, bool, str | None]
"""What a format said about the caller: trace ID, parent span ID, sampled, random, tracestate."""

Found: TypeAlias = dict[int, list[str]]
"""Header values found, by slot, in the order they came."""


def read_w3c(
    found: Found,
    reasons: list[str],
    trust_incoming: bool,
    tracestate_max_length: int,
    tracestate_level: int,
) -> Caller | None:
    """The caller as ``traceparent`` and ``tracestate`` name it, or ``None`` without a
    ``traceparent``; :class:`ValueError` with the reason when it is invalid.

    An invalid ``tracestate`` is dropped alone, its reason added to ``reasons``.
    """
    tps = found.get(SLOT_TRACEPARENT)
    if not tps:
        return None
    if len(tps) > 1:
        raise ValueError("traceparent duplicated header")
    try:
        parsed = parse_traceparent(tps[0])
    except ValueError as e:
        raise ValueError(f"traceparent {e}: {log_quote(tps[0])}") from None
    tracestate = None
    tss = found.get(SLOT_TRACESTATE)
    if tss and trust_incoming:
        combined = ",".join(tss)
        try:
            tracestate = normalize_tracestate(combined, tracestate_max_length, tracestate_level)
        except ValueError as e:
            reasons.append(f"tracestate {e}: {log_quote(combined)}")
    return parsed.trace_id, parsed.parent_id, parsed.sampled, parsed.random, tracestate


def read_b3(found: Found) -> tuple[Caller | None, bool | None]:
    """The caller as the ``b3`` header (else the ``X-B3-*`` headers) names it, and the
    sampling decision of a header that carries nothing else; :class:`ValueError` with
    the reason when they are invalid."""
    single = found.get(SLOT_B3)
    if single:
        if len(single) > 1:
            raise ValueError("b3 duplicated header")
        try:
            b3 = parse_b3(single[0])
        except ValueError as e:
            raise ValueError(f"b3 {e}: {log_quote(single[0])}") from None
    else:
        multi: list[str | None] = []
        for slot in (SLOT_B3_TRACE, SLOT_B3_SPAN, SLOT_B3_PARENT, SLOT_B3_SAMPLED, SLOT_B3_FLAGS):
            values = found.get(slot)
            if values and len(values) > 1:
                raise ValueError(f"{SLOT_NAMES[slot]} duplicated header")
            multi.append(values[0] if values else None)
        if all(v is None for v in multi):
            return None, None
        try:
            b3 = parse_b3_multi(*multi)
        except ValueError as e:
            shown = ",".join("" if v is None else v for v in multi)
            raise ValueError(f"x-b3-* {e}: {log_quote(shown)}") from None
    if b3.trace_id is None:
        return None, b3.sampled
    sampled = True if b3.sampled is None else b3.sampled
    return (b3.trace_id, b3.span_id, sampled, False, None), None


def read_xray(found: Found) -> Caller | None:
    """The caller as ``X-Amzn-Trace-Id`` names it; :class:`ValueError` with the reason
    when it is invalid."""
    values = found.get(SLOT_XRAY)
    if not values:
        return None
    if len(values) > 1:
        raise ValueError("x-amzn-trace-id duplicated header")
    try:
        xray = parse_xray(values[0])
    except ValueError as e:
        raise ValueError(f"x-amzn-trace-id {e}: {log_quote(values[0])}") from None
    sampled = True if xray.sampled is None else xray.sampled
    return xray.trace_id, xray.parent_id, sampled, False, None
