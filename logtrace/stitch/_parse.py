"""Parse one log line into the few fields the stitcher needs.

JSON lines are decoded by msgspec into a struct that names only the fields
the stitcher reads: unknown keys are skipped without building a dict, while
the whole line is still validated, so a valid line can later be copied into
the output verbatim. Logfmt and plain text lines go through regular
expressions (:mod:`._parse_text`). The result is a plain tuple (:data:`Parsed`): this runs once per
input line.
"""

from __future__ import annotations

import json
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
    decimal_id,
    norm_span_id,
    norm_trace_id,
    traceparent_ids,
)
from ._model import (
    BINARY,
    BROKEN,
    ERROR,
    JSON,
    KIND_FLAGS,
    LOGFMT,
    NO_TRACE_ID,
    SPAN_RECORD,
    TOO_DEEP,
    UNPARSEABLE_JSON,
)
from ._parse_text import LOGFMT_START, Parsed, free_text, parse_logfmt, text_fields
from ._timestamps import iso_fast, parse_timestamp
from ._wrapped import (
    Partials,
    Unwrapped,
    cloud_trace,
    cri_line,
    otel_service,
    unwrap,
)

__all__ = [
    "Parsed",
    "duration_value",
    "parse_json",
    "parse_line",
    "parse_logfmt",
    "scan_json",
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
        "dpanic",
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


def _f(name: str) -> Any:
    return msgspec.field(default=None, name=name)


class _Fields(msgspec.Struct):
    """The keys the stitcher reads; every other key is skipped unread."""

    timestamp: object = None
    at_timestamp: object = _f("@timestamp")
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
    log_level: object = _f("log.level")
    log: object = None
    service: object = None
    service_name_dot: object = _f("service.name")
    service_name: object = None
    serviceName: object = None
    app: object = None
    application: object = None
    dd_service: object = _f("dd.service")
    resource: object = None
    trace_id: object = None
    traceId: object = None
    traceID: object = None
    otelTraceID: object = None
    trace_id_dot: object = _f("trace.id")
    trace: object = None
    dd_trace_id: object = _f("dd.trace_id")
    dd: object = None
    dd_tid: object = _f("_dd.p.tid")
    dd_meta: object = _f("_dd")
    gcp_trace: object = _f("logging.googleapis.com/trace")
    traceparent: object = None
    span_id: object = None
    spanId: object = None
    spanID: object = None
    otelSpanID: object = None
    span_id_dot: object = _f("span.id")
    span: object = None
    dd_span_id: object = _f("dd.span_id")
    gcp_span: object = _f("logging.googleapis.com/spanId")
    parent_span_id: object = None
    parentSpanId: object = None
    parent_id: object = None
    parent_id_dot: object = _f("parent.id")
    span_kind: object = _f(SPAN_KIND)
    span_start: object = _f(SPAN_START)
    span_start_ns: object = _f("span.start_ns")
    duration_ms: object = None
    error_type: object = _f(ERROR_TYPE)
    exception_type: object = _f(EXCEPTION_TYPE)
    exc_info: object = None
    status: object = _f(HTTP_RESPONSE_STATUS_CODE)
    # Collectors' and backends' records (see ._wrapped): their presence sends
    # a line to unwrap(); a plain line pays a few None checks.
    MESSAGE: object = None
    jsonPayload: object = None
    textPayload: object = None
    line: object = None
    labels: object = None
    source: object = _f("_source")
    logStreamName: object = None
    ingestionTime: object = None
    eventId: object = None


_decode = msgspec.json.Decoder(_Fields).decode
_decode_any = msgspec.json.decode


def _nested(value: object, key: str) -> object:
    return value.get(key) if isinstance(value, dict) else None


def _trace(r: _Fields) -> str | None:
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
    return None


def _dd_tid(r: _Fields) -> object:
    if r.dd_tid is not None:
        return r.dd_tid
    meta = r.dd_meta
    if isinstance(meta, dict):
        tid = meta.get("p.tid")
        return tid if tid is not None else _nested(meta.get("p"), "tid")
    dd = r.dd
    return dd.get("_dd.p.tid") if isinstance(dd, dict) else None


def datadog_trace(value: object, tid: object) -> str | None:
    """A Datadog trace ID as a W3C one: 32 hex digits as written, or a decimal
    holding the low 64 bits, the high 64 in ``_dd.p.tid`` (hex) when given."""
    if isinstance(value, str) and len(value) == 32 and not value.isdecimal():
        return norm_trace_id(value)
    if (
        isinstance(tid, str)
        and len(tid) == 16
        and tid.strip("0123456789abcdefABCDEF") == ""
        and tid.strip("0")
    ):
        low = decimal_id(value, 16)
        return None if low is None else tid.lower() + low
    return decimal_id(value)


def _span(r: _Fields) -> str | None:
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
    return None


def _service(r: _Fields) -> str | None:
    for value in (
        r.service,
        r.service_name_dot,
        r.service_name,
        r.serviceName,
        r.app,
        r.application,
        r.dd_service,
    ):
        if value is not None:
            if isinstance(value, dict):
                value = value.get("name")
            if isinstance(value, str) and 0 < len(value) <= 200:
                return value
            return None
    if r.resource is not None:
        return otel_service(r.resource)
    return None


def _timestamp(r: _Fields) -> float | None:
    for value in (r.timestamp, r.at_timestamp, r.time, r.ts, r.asctime, r.timeUnixNano):
        if value is not None:
            stamp = parse_timestamp(value)
            if stamp is None and (r.observedTimeUnixNano or r.observed_timestamp):
                # OpenTelemetry: a record without a time of its own ("0") was observed then
                stamp = parse_timestamp(r.observedTimeUnixNano or r.observed_timestamp)
            return stamp
    return None


def _is_error(r: _Fields) -> bool:
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


NOT_ERROR_LEVELS = frozenset(
    {
        "info",
        "INFO",
        "Info",
        "debug",
        "DEBUG",
        "Debug",
        "warning",
        "WARNING",
        "Warning",
        "warn",
        "WARN",
        "trace",
        "TRACE",
        "notice",
        "NOTICE",
    }
)
"""Common level spellings known not to be errors: no lowercasing needed."""


class _Common(msgspec.Struct, gc=False):
    """The keys of logtrace's own records (and most OpenTelemetry-style ones).

    Decoding into this smaller struct is cheaper; a line that lacks one of the
    keys the fast path relies on is decoded again into :class:`_Fields`.
    """

    timestamp: object = None
    level: object = None
    service: object = None
    trace_id: object = None
    span_id: object = None
    parent_span_id: object = None
    span_kind: object = _f(SPAN_KIND)
    span_start: object = _f(SPAN_START)
    duration_ms: object = None
    error_type: object = _f(ERROR_TYPE)
    exception_type: object = _f(EXCEPTION_TYPE)
    exc_info: object = None
    status: object = _f(HTTP_RESPONSE_STATUS_CODE)


_decode_common = msgspec.json.Decoder(_Common).decode


def _common_fields(r: _Common) -> Parsed | None:
    """The hot path, or ``None`` when the line needs the full struct.

    IDs come back as written (not yet canonical): the scanner interns them
    and canonicalises each distinct spelling once.
    """
    trace = r.trace_id
    ts = r.timestamp
    service = r.service
    level = r.level
    span = r.span_id
    parent = r.parent_span_id
    if type(trace) is not str or type(ts) is not str or type(service) is not str:
        return None
    if type(level) is not str:
        return None
    if (span is not None and type(span) is not str) or (
        parent is not None and type(parent) is not str
    ):
        return None
    stamp = iso_fast(ts)
    if stamp is None:
        stamp = parse_timestamp(ts)
    if not 0 < len(service) <= 200:
        return None
    flags = JSON
    status = r.status
    if (
        (level not in NOT_ERROR_LEVELS and level.lower() in ERROR_LEVELS)
        or r.error_type is not None
        or r.exception_type is not None
        or r.exc_info
        or (type(status) is int and status >= 500)
    ):
        flags |= ERROR
    start = None
    kind = r.span_kind
    if kind is not None:
        duration = duration_value(r.duration_ms)
        if duration is not None:
            flags |= SPAN_RECORD
            if type(kind) is str:
                flags |= KIND_FLAGS.get(kind, 0)
            value = r.span_start
            if type(value) is str:
                start = iso_fast(value)
                if start is None:
                    start = parse_timestamp(value)
            if start is None and stamp is not None:
                start = stamp - duration / 1e3
    return (trace, span, parent, stamp, service, flags, 0 if trace else NO_TRACE_ID, start)


def scan_json(raw: bytes) -> Parsed | None:
    """A line that starts with ``{`` and is ASCII: the common case, or ``None``
    if it is not a valid JSON object (the caller then tries :func:`parse_line`).

    IDs may be as written rather than canonical (see :func:`parse_json`);
    canonicalising a canonical ID changes nothing.
    """
    try:
        fields = _common_fields(_decode_common(raw))
        if fields is not None:
            return fields
        return _json_fields(_decode(raw), raw, None, JSON, 0)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None


def parse_json(raw: bytes) -> Parsed | None:
    """:func:`scan_json` with canonical IDs."""
    fields = scan_json(raw)
    if fields is None:
        return None
    trace, span, parent, ts, service, flags, _, start = fields
    trace = norm_trace_id(trace)
    span = None if span is None else norm_span_id(span)
    parent = None if parent is None else norm_span_id(parent)
    return (trace, span, parent, ts, service, flags, 0 if trace else NO_TRACE_ID, start)


def _fields(r: _Fields, flags: int) -> Parsed:
    """Every spelling of every field: other tools' records, logfmt."""
    trace = _trace(r) if r.trace_id is None else norm_trace_id(r.trace_id)
    span = _span(r) if r.span_id is None else norm_span_id(r.span_id)
    value = r.parent_span_id
    if value is None:
        value = r.parentSpanId
        if value is None:
            value = r.parent_id if r.parent_id is not None else r.parent_id_dot
    parent = None if value is None else norm_span_id(value)
    ts = _timestamp(r)
    value = r.service
    service = value if type(value) is str and 0 < len(value) <= 200 else _service(r)
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


def _strict_constant(name: str) -> Any:
    raise ValueError(name)


def _is_binary(raw: bytes) -> bool:
    if b"\x00" in raw:
        return True
    bad = sum(1 for b in raw[:4096] if b < 9 or 13 < b < 32 or b == 127)
    return bad * 8 > min(len(raw), 4096)


def parse_line(raw: bytes) -> Parsed:
    """Fields of one non-blank line (without its line ending).

    Never raises: a line that cannot be read comes back with a reason.
    """
    return _parse_any(raw, 0)


MAX_WRAPS = 3
"""Records wrapped in records read this deep; a deeper one is read as it is."""

WRAPPED_FLAGS = ERROR | SPAN_RECORD | BROKEN | sum(KIND_FLAGS.values())
"""Flags a wrapped record passes on to its line (not JSON or LOGFMT: they say
how the line itself is written)."""

_NOTHING: Parsed = (None, None, None, None, None, 0, NO_TRACE_ID, None)

PARTIALS = Partials()
"""CRI pieces waiting for their final piece (lines come in file order)."""


def _wraps(r: _Fields) -> bool:
    return (
        r.MESSAGE is not None
        or r.jsonPayload is not None
        or r.textPayload is not None
        or (r.line is not None and r.labels is not None)
        or type(r.log) is str
        or r.source is not None
        or r.logStreamName is not None
        or r.ingestionTime is not None
        or r.eventId is not None
    )


def _json_fields(
    r: _Fields, raw: bytes | None, obj: dict[str, Any] | None, flags: int, depth: int
) -> Parsed:
    """A JSON object's fields: its own, or those of the record it wraps."""
    if depth < MAX_WRAPS and _wraps(r):
        if obj is None:
            value = _decode_any(raw) if raw is not None else None
            obj = value if isinstance(value, dict) else None
        wrapped = unwrap(obj) if obj is not None else None
        if wrapped is not None:
            return _unwrapped(_fields(r, flags), wrapped, depth)
    return _fields(r, flags)


def _unwrapped(outer: Parsed, w: Unwrapped, depth: int) -> Parsed:
    """The wrapped record's fields, the wrapper's where it is silent."""
    payload = w.payload
    inner = _NOTHING
    if isinstance(payload, str):
        if payload.strip():
            inner = _parse_any(payload.encode(errors="surrogatepass"), depth + 1)
    elif isinstance(payload, dict):
        try:
            fields = msgspec.convert(payload, _Fields)
        except (msgspec.ValidationError, RecursionError):
            fields = None
        if fields is not None:
            inner = _json_fields(fields, None, payload, 0, depth + 1)
    trace, span, parent, ts, service, flags, reason, start = inner
    o_trace, o_span, o_parent, o_ts, o_service, o_flags, _, _ = outer
    if trace is None:
        trace = w.trace or o_trace
        if trace is not None:
            span = span or w.span or o_span
            parent = parent or o_parent
            reason = 0
    if ts is None:
        ts = parse_timestamp(w.ts) if w.ts is not None else None
        if ts is None:
            ts = o_ts
    service = service or w.service or o_service
    flags = (flags & WRAPPED_FLAGS) | (o_flags & ~WRAPPED_FLAGS) | (o_flags & ERROR)
    if w.error:
        flags |= ERROR
    if trace is None and reason == 0:
        reason = NO_TRACE_ID
    return (trace, span, parent, ts, service, flags, reason, start)


def _cri(raw: bytes, depth: int) -> Parsed | None:
    """A Kubernetes node file line: its payload's fields, the runtime's time
    where the payload has none; a cut line's pieces join its final piece."""
    split = cri_line(raw)
    if split is None:
        return None
    stamp, stream, partial, payload = split
    if partial:
        # A piece: the IDs its text has so far (the final piece reads the whole line).
        text = PARTIALS.add(stream, payload).decode(errors="replace")
        inner = text_fields(text, 0)
    else:
        whole = PARTIALS.finish(stream, payload)
        inner = _parse_any(whole, depth + 1) if whole.strip() else _NOTHING
    trace, span, parent, ts, service, flags, reason, start = inner
    if ts is None:
        ts = parse_timestamp(stamp)
    return (trace, span, parent, ts, service, flags & WRAPPED_FLAGS, reason, start)


def _parse_any(raw: bytes, depth: int) -> Parsed:
    ascii_ok = raw.isascii()
    if not ascii_ok:
        try:
            raw.decode()
        except UnicodeDecodeError:
            return _unreadable(raw, BINARY)
    head = raw.lstrip()[:1]
    if head == b"{":
        try:
            return _json_fields(_decode(raw), raw, None, JSON, depth)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return _fallback_json(raw, depth)
        except RecursionError:
            return (None, None, None, None, None, 0, TOO_DEEP, None)
    if _is_binary(raw):
        return _unreadable(raw, BINARY)
    if depth < MAX_WRAPS and head.isdigit() and raw[4:5] == b"-" and b" std" in raw[19:48]:
        parsed = _cri(raw, depth)
        if parsed is not None:
            return parsed
    text = raw.decode()
    if LOGFMT_START.match(raw):
        try:
            fields = msgspec.convert(parse_logfmt(text), _Fields)
        except msgspec.ValidationError:
            return text_fields(text, 0)
        if free_text(text):
            return _pairs_and_text(fields, text)
        return _fields(fields, LOGFMT)
    return text_fields(text, 0)


def _pairs_and_text(fields: _Fields, text: str) -> Parsed:
    """``key=value`` pairs followed by free text (``trace_id=... payment failed``):
    a text line, so that its record keeps every word, with the fields of its
    pairs, and those the text names where the pairs are silent."""
    trace, span, parent, ts, service, flags, _, _ = _fields(fields, 0)
    t_trace, t_span, t_parent, t_ts, t_service, t_flags, _, _ = text_fields(text, 0)
    trace = trace or t_trace
    return (
        trace,
        span or t_span,
        parent or t_parent,
        t_ts if ts is None else ts,
        service or t_service,
        flags | t_flags,
        0 if trace else NO_TRACE_ID,
        None,
    )


def _fallback_json(raw: bytes, depth: int) -> Parsed:
    """A line msgspec rejects: maybe JSON it will not take (lone surrogates), maybe not JSON."""
    try:
        value = json.loads(raw, parse_constant=_strict_constant)
    except RecursionError:
        return (None, None, None, None, None, 0, TOO_DEEP, None)
    except ValueError:
        parsed = text_fields(raw.decode(errors="replace"), BROKEN)
        if parsed[0] is None:
            return (*parsed[:6], UNPARSEABLE_JSON, None)
        return parsed
    if not isinstance(value, dict):
        return text_fields(raw.decode(errors="replace"), 0)
    try:
        fields = msgspec.convert(value, _Fields)
        # Not flagged JSON: the output carries it as text, which every reader accepts.
        return _json_fields(fields, None, value, 0, depth)
    except (msgspec.ValidationError, RecursionError):
        return (None, None, None, None, None, 0, UNPARSEABLE_JSON, None)


def _unreadable(raw: bytes, reason: int) -> Parsed:
    text = raw.decode(errors="replace")
    parsed = text_fields(text, BROKEN) if not _is_binary(raw) else None
    if parsed is not None and parsed[0] is not None:
        return parsed
    return (None, None, None, None, None, 0, reason, None)
