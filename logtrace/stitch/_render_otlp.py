"""Render for OpenTelemetry: OTLP JSON, spans and log records in one file.

The file is JSON lines, as OpenTelemetry's file exporter writes them and
the Collector's ``otlpjsonfile`` receiver reads them: per trace, one
``ExportTraceServiceRequest`` (``{"resourceSpans": ...}``) and one
``ExportLogsServiceRequest`` (``{"resourceLogs": ...}``) holding every line
of the trace as a log record. Lines without a trace follow as log records
without trace context. Each line can also be POSTed as it is to a
collector's ``/v1/traces`` or ``/v1/logs``.

The encoding is OTLP/JSON's: IDs in lowercase hex, 64-bit integers as
decimal strings, enums as numbers, nanoseconds since the epoch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any

import msgspec

from ._spans import Event, Span, TraceSpans

__all__ = ["otlp_trace", "otlp_untraced"]

_encode = msgspec.json.encode
_SCOPE = {"name": "logtrace.stitch"}
_KINDS = {"internal": 1, "server": 2, "client": 3, "producer": 4, "consumer": 5}
_SEVERITY = {
    "trace": 1,
    "debug": 5,
    "info": 9,
    "notice": 10,
    "warn": 13,
    "warning": 13,
    "error": 17,
    "err": 17,
    "critical": 21,
    "crit": 21,
    "fatal": 21,
    "alert": 21,
    "emerg": 21,
    "emergency": 21,
    "panic": 21,
}
_INT64 = 1 << 63
_MAX_DEPTH = 8
_BATCH = 1000
"""Lines without a trace per ``resourceLogs`` line."""


def _ns(seconds: float) -> str:
    return str(math.floor(seconds * 1e6 + 0.5) * 1000)


def any_value(value: Any, depth: int = 0) -> dict[str, Any]:
    """An OTLP ``AnyValue`` for a JSON value."""
    if type(value) is str:
        return {"stringValue": value}
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        if -_INT64 <= value < _INT64:
            return {"intValue": str(value)}
        return {"stringValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value} if math.isfinite(value) else {"stringValue": str(value)}
    if isinstance(value, str):
        return {"stringValue": value}
    if value is None:
        return {}
    if depth >= _MAX_DEPTH:
        return {"stringValue": _encode(value).decode()}
    if isinstance(value, list):
        return {"arrayValue": {"values": [any_value(v, depth + 1) for v in value]}}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": _attributes(value, depth + 1)}}
    return {"stringValue": str(value)}


def _attributes(values: dict[str, Any], depth: int = 0) -> list[dict[str, Any]]:
    return [{"key": str(k), "value": any_value(v, depth)} for k, v in values.items()]


Converted = dict[int, list[dict[str, Any]]]
"""Per event (by ``id``): its attributes as OTLP key/values, converted once
for both the span event and the log record."""


def _event_attributes(e: Event, converted: Converted) -> list[dict[str, Any]]:
    got = converted.get(id(e))
    if got is None:
        got = converted[id(e)] = _attributes(e.attributes)
    return got


def _event(e: Event, fallback: float, converted: Converted) -> dict[str, Any]:
    attributes = _event_attributes(e, converted)
    if e.level:
        attributes = [*attributes, {"key": "level", "value": {"stringValue": e.level}}]
    return {
        "timeUnixNano": _ns(fallback if math.isnan(e.time) else e.time),
        "name": e.message[:200] or "log",
        "attributes": attributes,
    }


def _span(trace_id: str, s: Span, converted: Converted) -> dict[str, Any]:
    out: dict[str, Any] = {
        "traceId": trace_id,
        "spanId": s.span_id,
        "name": s.name,
        "kind": _KINDS[s.kind],
        "startTimeUnixNano": _ns(s.start),
        "endTimeUnixNano": _ns(max(s.end, s.start)),
        "attributes": _attributes(s.attributes),
        "events": [_event(e, s.start, converted) for e in s.events],
        "status": {"code": 2, "message": s.status_message} if s.error else {},
    }
    if s.parent_id is not None:
        out["parentSpanId"] = s.parent_id
    return out


def _log(e: Event, trace_id: str | None, converted: Converted) -> dict[str, Any]:
    severity = _SEVERITY.get(e.level.lower(), 0)
    if e.error and severity < 17:
        severity = 17
    out: dict[str, Any] = {
        "severityNumber": severity,
        "severityText": e.level,
        "body": {"stringValue": e.message},
        "attributes": _event_attributes(e, converted),
    }
    if not math.isnan(e.time):
        out["timeUnixNano"] = _ns(e.time)
    if trace_id is not None:
        out["traceId"] = trace_id
        if e.span_id is not None:
            out["spanId"] = e.span_id
    return out


def _resource(service: str) -> dict[str, Any]:
    return {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]}


def _logs_line(events: Iterable[Event], trace_id: str | None, converted: Converted) -> bytes:
    by_service: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        by_service.setdefault(e.service, []).append(_log(e, trace_id, converted))
    resource_logs = [
        {"resource": _resource(service), "scopeLogs": [{"scope": _SCOPE, "logRecords": records}]}
        for service, records in by_service.items()
    ]
    return _encode({"resourceLogs": resource_logs}) + b"\n"


def otlp_trace(t: TraceSpans) -> bytes:
    """Two JSON lines: the trace's spans, then its lines as log records."""
    by_service: dict[str, list[dict[str, Any]]] = {}
    converted: Converted = {}
    for s in t.spans:
        if not math.isnan(s.start):
            by_service.setdefault(s.service, []).append(_span(t.trace_id, s, converted))
    resource_spans = [
        {"resource": _resource(service), "scopeSpans": [{"scope": _SCOPE, "spans": spans}]}
        for service, spans in by_service.items()
    ]
    spans_line = _encode({"resourceSpans": resource_spans}) + b"\n" if resource_spans else b""
    return spans_line + _logs_line(t.events, t.trace_id, converted)


def otlp_untraced(events: Iterable[Event]) -> Iterator[bytes]:
    """Lines without a trace as log records, a batch per JSON line."""
    batch: list[Event] = []
    for e in events:
        batch.append(e)
        if len(batch) >= _BATCH:
            yield _logs_line(batch, None, {})
            batch = []
    if batch:
        yield _logs_line(batch, None, {})
