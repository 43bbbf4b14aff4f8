"""Render for the Jaeger UI: the JSON its "Upload JSON" page reads.

The file is ``{"data": [trace, ...]}``, the shape of the Jaeger query
API's answer that the UI loads. A trace is ``{"traceID", "spans",
"processes"}``; a span names its process (one per service), its parent in
``references`` (``CHILD_OF``), and carries microsecond ``startTime`` and
``duration``, typed ``tags`` and its log lines as ``logs`` (each with an
``event`` field, its message). ``span.kind`` and ``error`` are the tags the
UI reads for a span's kind and status.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec

from ._spans import Event, Span, TraceSpans

__all__ = ["jaeger_trace"]

_encode = msgspec.json.encode
_INT64 = 1 << 63


def _us(seconds: float) -> int:
    return math.floor(seconds * 1e6 + 0.5)


def tag(key: str, value: Any) -> dict[str, Any]:
    """A typed Jaeger key/value (``string``, ``bool``, ``int64`` or ``float64``)."""
    if isinstance(value, bool):
        return {"key": key, "type": "bool", "value": value}
    if isinstance(value, int) and -_INT64 <= value < _INT64:
        return {"key": key, "type": "int64", "value": value}
    if isinstance(value, float) and math.isfinite(value):
        return {"key": key, "type": "float64", "value": value}
    if isinstance(value, str):
        return {"key": key, "type": "string", "value": value}
    text = str(value) if isinstance(value, int | float) else _encode(value).decode()
    return {"key": key, "type": "string", "value": text}


def _log(e: Event, fallback: float) -> dict[str, Any]:
    fields = [tag("event", e.message)]
    if e.level:
        fields.append(tag("level", e.level))
    fields.extend(tag(k, v) for k, v in e.attributes.items())
    return {"timestamp": _us(fallback if math.isnan(e.time) else e.time), "fields": fields}


def _span(trace_id: str, s: Span, process: str) -> dict[str, Any]:
    start = _us(s.start)
    tags = [tag("span.kind", s.kind)]
    if s.error:
        tags.append(tag("error", True))
        tags.append(tag("otel.status_code", "ERROR"))
        if s.status_message:
            tags.append(tag("otel.status_description", s.status_message))
    tags.extend(tag(k, v) for k, v in s.attributes.items())
    references = []
    if s.parent_id is not None:
        references.append({"refType": "CHILD_OF", "traceID": trace_id, "spanID": s.parent_id})
    return {
        "traceID": trace_id,
        "spanID": s.span_id,
        "operationName": s.name,
        "references": references,
        "startTime": start,
        "duration": max(_us(s.end) - start, 0),
        "tags": tags,
        "logs": [_log(e, s.start) for e in s.events],
        "processID": process,
        "warnings": None,
    }


def jaeger_trace(t: TraceSpans) -> bytes:
    """One trace of the ``data`` list (empty when none of its spans has a time)."""
    processes: dict[str, str] = {}
    spans = []
    for s in t.spans:
        if math.isnan(s.start):
            continue
        process = processes.setdefault(s.service, f"p{len(processes) + 1}")
        spans.append(_span(t.trace_id, s, process))
    if not spans:
        return b""
    doc = {
        "traceID": t.trace_id,
        "spans": spans,
        "processes": {p: {"serviceName": name, "tags": []} for name, p in processes.items()},
        "warnings": None,
    }
    return _encode(doc)
