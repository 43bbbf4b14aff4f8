"""Render for Zipkin: a v2 list of spans (``POST /api/v2/spans``, or the UI's upload).

One JSON array of every selected trace's spans. A span carries its
``localEndpoint`` (the service), ``kind`` (absent for a local span),
microsecond ``timestamp`` and ``duration`` (at least 1, as the API asks),
string ``tags`` (``error`` holds the failure), and its log lines as
``annotations``: the level, the message and the line's fields, cut to
:data:`MAX_ANNOTATION` characters.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec

from ._spans import Event, Span, TraceSpans

__all__ = ["MAX_ANNOTATION", "zipkin_trace"]

_encode = msgspec.json.encode
MAX_ANNOTATION = 2000
_KINDS = {"server": "SERVER", "client": "CLIENT", "producer": "PRODUCER", "consumer": "CONSUMER"}
_QUIET = frozenset({"logtrace.raw_time", "log.file.name", "logtrace.line", "logger"})
"""Fields left out of an annotation's text (they are in the other exports)."""


def _us(seconds: float) -> int:
    return math.floor(seconds * 1e6 + 0.5)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return _encode(value).decode()


def _annotation(e: Event, fallback: float) -> dict[str, Any]:
    parts = [e.level, e.message] if e.level else [e.message]
    parts.extend(f"{k}={_text(v)}" for k, v in e.attributes.items() if k not in _QUIET)
    value = " ".join(parts)
    if len(value) > MAX_ANNOTATION:
        value = value[:MAX_ANNOTATION] + "…"
    return {"timestamp": _us(fallback if math.isnan(e.time) else e.time), "value": value}


def _span(trace_id: str, s: Span) -> dict[str, Any]:
    start = _us(s.start)
    tags = {k: _text(v) for k, v in s.attributes.items()}
    if s.error:
        tags["error"] = s.status_message or "error"
    out: dict[str, Any] = {"traceId": trace_id, "id": s.span_id}
    if s.parent_id is not None:
        out["parentId"] = s.parent_id
    out["name"] = s.name
    if s.kind in _KINDS:
        out["kind"] = _KINDS[s.kind]
    out["timestamp"] = start
    out["duration"] = max(_us(s.end) - start, 1)
    out["localEndpoint"] = {"serviceName": s.service.lower()}
    out["annotations"] = [_annotation(e, s.start) for e in s.events]
    out["tags"] = tags
    return out


def zipkin_trace(t: TraceSpans) -> bytes:
    """The trace's spans as list items joined by commas (empty when none has a time)."""
    return b",\n".join(_encode(_span(t.trace_id, s)) for s in t.spans if not math.isnan(s.start))
