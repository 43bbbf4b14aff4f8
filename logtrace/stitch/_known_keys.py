"""The keys a JSON record's fields are read from, in every tool's spelling.

:class:`Fields` names them for msgspec, which skips every other key without
building a dict; :func:`fields_of` turns one decoded record into the plain
tuple the stitcher keeps (:data:`._parse_text.Parsed`): logtrace's own keys,
OpenTelemetry's, ECS, Datadog (128-bit trace IDs included), Cloud Logging's
structured-logging keys, zap, logrus and pino. Records wrapped by collectors
are unwrapped by :mod:`._parse` before their own fields are read here.
"""

from __future__ import annotations

from typing import Any

import msgspec

from .._schema import (
    ERROR_TYPE,
    EXCEPTION_TYPE,
    HTTP_RESPONSE_STATUS_CODE,
    SPAN_KIND,
    SPAN_START,
)
from ._id_forms import (
    datadog_trace,
    decimal_id,
    names_no_service,
    norm_span_id,
    norm_trace_id,
    traceparent_ids,
)
from ._model import ERROR, KIND_FLAGS, NO_TRACE_ID, SPAN_RECORD
from ._parse_text import Parsed
from ._timestamps import parse_timestamp
from ._wrapped import cloud_trace, otel_service

__all__ = [
    "ERROR_LEVELS",
    "OTEL_ERROR_SEVERITY",
    "Fields",
    "decode_fields",
    "duration_value",
    "field_name",
    "fields_of",
]


ERROR_LEVELS = frozenset(
    {
        "error",
        "err",
        "critical",
        "crit",
        "fatal",
        "alert",
        "emerg",
        "emergency",
        "severe",
        "panic",
    }
)
"""Levels (lowercased) that flag a line as an error."""


MAX_DURATION_MS = 1 << 53
"""The longest ``duration_ms`` a span record is read with (about 285,000
years, exact as a double): a longer one, or an infinite one, is unreadable."""


def duration_value(value: object) -> float | None:
    """A span record's ``duration_ms`` as a float, or ``None`` when it is no
    number or out of range (the line is then read as a plain record)."""
    if type(value) is int:
        return float(value) if -MAX_DURATION_MS <= value <= MAX_DURATION_MS else None
    if type(value) is float and -MAX_DURATION_MS <= value <= MAX_DURATION_MS:
        return value  # NaN and infinities fail the comparison
    return None


def field_name(name: str) -> Any:
    """A struct field read from the key ``name`` (not a Python name)."""
    return msgspec.field(default=None, name=name)


class Fields(msgspec.Struct, gc=False):
    """The keys the stitcher reads; every other key is skipped unread.

    Not tracked by the garbage collector: a decoded record never refers back
    to itself, and untracked structs are cheaper to make."""

    timestamp: object = None
    at_timestamp: object = field_name("@timestamp")
    time: object = None
    ts: object = None
    asctime: object = None
    timeUnixNano: object = None
    observedTimeUnixNano: object = None
    observed_timestamp: object = None
    level: object = None
    levelname: object = None
    severity: object = None
    severityText: object = None
    severity_text: object = None
    severityNumber: object = None
    severity_number: object = None
    log_level: object = field_name("log.level")
    log: object = None
    service: object = None
    service_name_dot: object = field_name("service.name")
    service_name: object = None
    otelServiceName: object = None
    serviceName: object = None
    app: object = None
    application: object = None
    dd_service: object = field_name("dd.service")
    resource: object = None
    trace_id: object = None
    traceId: object = None
    traceID: object = None
    otelTraceID: object = None
    trace_id_dot: object = field_name("trace.id")
    trace: object = None
    dd_trace_id: object = field_name("dd.trace_id")
    dd: object = None
    dd_tid: object = field_name("_dd.p.tid")
    dd_meta: object = field_name("_dd")
    gcp_trace: object = field_name("logging.googleapis.com/trace")
    traceparent: object = None
    span_id: object = None
    spanId: object = None
    spanID: object = None
    otelSpanID: object = None
    span_id_dot: object = field_name("span.id")
    span: object = None
    dd_span_id: object = field_name("dd.span_id")
    gcp_span: object = field_name("logging.googleapis.com/spanId")
    transaction: object = None
    transaction_id_dot: object = field_name("transaction.id")
    elasticapm_trace_id: object = None
    elasticapm_span_id: object = None
    elasticapm_transaction_id: object = None
    parent_span_id: object = None
    parentSpanId: object = None
    parent_id: object = None
    parent_id_dot: object = field_name("parent.id")
    span_kind: object = field_name(SPAN_KIND)
    span_start: object = field_name(SPAN_START)
    span_start_ns: object = field_name("span.start_ns")
    duration_ms: object = None
    error_type: object = field_name(ERROR_TYPE)
    exception_type: object = field_name(EXCEPTION_TYPE)
    exc_info: object = None
    status: object = field_name(HTTP_RESPONSE_STATUS_CODE)
    # Collectors' and backends' records (see ._wrapped): their presence sends
    # a line to unwrap(); a plain line pays a few None checks.
    stream: object = None
    MESSAGE: object = None
    jsonPayload: object = None
    textPayload: object = None
    line: object = None
    labels: object = None
    source: object = field_name("_source")
    logStreamName: object = None
    ingestionTime: object = None
    eventId: object = None


decode_fields = msgspec.json.Decoder(Fields).decode


def _nested(value: object, key: str) -> object:
    return value.get(key) if isinstance(value, dict) else None


def _trace(r: Fields) -> str | None:
    for value in (r.trace_id, r.traceId, r.otelTraceID, r.trace_id_dot, r.traceID):
        if value is not None:
            return norm_trace_id(value)
    if r.trace is not None:
        if isinstance(r.trace, str):
            return cloud_trace(r.trace)
        return norm_trace_id(_nested(r.trace, "id"))
    if r.dd_trace_id is not None:
        return datadog_trace(r.dd_trace_id, _dd_tid(r))
    if r.dd is not None:
        return datadog_trace(_nested(r.dd, "trace_id"), _dd_tid(r))
    if r.gcp_trace is not None:
        return cloud_trace(r.gcp_trace) or norm_trace_id(r.gcp_trace)
    if isinstance(r.traceparent, str):
        ids = traceparent_ids(r.traceparent)
        return ids[0] if ids else None
    if r.elasticapm_trace_id is not None:
        return norm_trace_id(r.elasticapm_trace_id)
    return None


def _dd_tid(r: Fields) -> object:
    if r.dd_tid is not None:
        return r.dd_tid
    meta = r.dd_meta
    if isinstance(meta, dict):
        tid = meta.get("p.tid")
        return tid if tid is not None else _nested(meta.get("p"), "tid")
    dd = r.dd
    return dd.get("_dd.p.tid") if isinstance(dd, dict) else None


def _span(r: Fields) -> str | None:
    for value in (r.spanId, r.otelSpanID, r.span_id_dot, r.spanID):
        if value is not None:
            return norm_span_id(value)
    if r.span is not None:
        return norm_span_id(_nested(r.span, "id"))
    if r.dd_span_id is not None:
        return decimal_id(r.dd_span_id, 16)
    if r.dd is not None:
        return decimal_id(_nested(r.dd, "span_id"), 16)
    if r.gcp_span is not None:
        return norm_span_id(r.gcp_span)
    if r.elasticapm_span_id is not None:
        return norm_span_id(r.elasticapm_span_id)
    return _transaction(r)


def _transaction(r: Fields) -> str | None:
    """Elastic APM's transaction (ECS ``transaction.id``): the request's own
    span, on every line written inside it; ``span.id`` is there only inside
    a span the request opened."""
    if r.transaction_id_dot is not None:
        return norm_span_id(r.transaction_id_dot)
    if r.transaction is not None:
        return norm_span_id(_nested(r.transaction, "id"))
    if r.elasticapm_transaction_id is not None:
        return norm_span_id(r.elasticapm_transaction_id)
    return None


def _service(r: Fields) -> str | None:
    for value in (
        r.service,
        r.service_name_dot,
        r.service_name,
        r.serviceName,
        r.app,
        r.application,
        r.dd_service,
        r.otelServiceName,
    ):
        if value is not None:
            if isinstance(value, dict):
                value = value.get("name")
            return _service_name(value)
    if r.dd is not None:
        name = _service_name(_nested(r.dd, "service"))
        if name is not None:
            return name
    if r.resource is not None:
        return otel_service(r.resource)
    return None


def _service_name(value: object) -> str | None:
    """A service's name: a string of 1 to 200 characters that names one
    (not ``"None"``, ``"null"``, ``"-"``: what a format string writes for an
    empty field; nor OpenTelemetry's ``unknown_service``)."""
    if isinstance(value, str) and 0 < len(value) <= 200 and not names_no_service(value):
        return value
    return None


def _timestamp(r: Fields) -> float | None:
    for value in (r.timestamp, r.at_timestamp, r.time, r.ts, r.asctime, r.timeUnixNano):
        if value is not None:
            stamp = parse_timestamp(value)
            if stamp is None and (r.observedTimeUnixNano or r.observed_timestamp):
                # OpenTelemetry: a record without a time of its own ("0") was observed then
                stamp = parse_timestamp(r.observedTimeUnixNano or r.observed_timestamp)
            return stamp
    return None


def _is_error(r: Fields) -> bool:
    for value in (r.level, r.levelname, r.severity, r.severityText, r.severity_text, r.log_level):
        if value is not None:
            if isinstance(value, str):
                if value.lower() in ERROR_LEVELS:
                    return True
            elif isinstance(value, int) and not isinstance(value, bool) and value >= 50:
                return True
            break
    else:
        level = _nested(r.log, "level")
        if isinstance(level, str) and level.lower() in ERROR_LEVELS:
            return True
    if r.error_type is not None or r.exception_type is not None or r.exc_info:
        return True
    number = r.severityNumber if r.severityNumber is not None else r.severity_number
    if type(number) is int and number >= OTEL_ERROR_SEVERITY:
        return True
    status = r.status
    return isinstance(status, int) and not isinstance(status, bool) and status >= 500


OTEL_ERROR_SEVERITY = 17
"""OpenTelemetry severity numbers from ERROR (17) up (FATAL is 21-24) are errors."""


def fields_of(r: Fields, flags: int) -> Parsed:
    """Every spelling of every field: other tools' records, logfmt."""
    trace = _trace(r) if r.trace_id is None else norm_trace_id(r.trace_id)
    span = _span(r) if r.span_id is None else norm_span_id(r.span_id)
    value = r.parent_span_id
    if value is None:
        value = r.parentSpanId
        if value is None:
            value = r.parent_id if r.parent_id is not None else r.parent_id_dot
    parent = None if value is None else norm_span_id(value)
    if parent is None and span is not None:
        # a span inside a transaction: that transaction holds it
        held = _transaction(r)
        parent = None if held == span else held
    ts = _timestamp(r)
    value = r.service
    if type(value) is str and 0 < len(value) <= 200 and not names_no_service(value):
        service: str | None = value
    else:
        service = _service(r)
    if _is_error(r):
        flags |= ERROR
    start = None
    kind = r.span_kind
    duration = duration_value(r.duration_ms)
    if kind is not None and duration is not None:
        flags |= SPAN_RECORD
        if type(kind) is str:
            flags |= KIND_FLAGS.get(kind, 0)
        if r.span_start is not None:
            start = parse_timestamp(r.span_start)
        elif r.span_start_ns is not None:
            start = parse_timestamp(r.span_start_ns)
        if start is None and ts is not None:
            start = ts - duration / 1e3
    return (trace, span, parent, ts, service, flags, 0 if trace else NO_TRACE_ID, start)
