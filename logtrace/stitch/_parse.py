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
import re
from typing import Any

import msgspec

from .._schema import (
    ERROR_TYPE,
    EXCEPTION_TYPE,
    HTTP_RESPONSE_STATUS_CODE,
    SPAN_KIND,
    SPAN_START,
)
from ._id_forms import datadog_trace, names_no_service, norm_span_id, norm_trace_id
from ._known_keys import (
    ERROR_LEVELS,
    Fields,
    decode_fields,
    duration_value,
    field_name,
    fields_of,
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
from ._wrapped import Partials, Unwrapped, cri_line, docker_record, unwrap

__all__ = [
    "ERROR_LEVELS",
    "NOT_ERROR_LEVELS",
    "PARTIALS",
    "Parsed",
    "datadog_trace",
    "duration_value",
    "parse_json",
    "parse_line",
    "parse_logfmt",
    "scan_json",
]


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
    keys the fast path relies on is decoded again into :class:`Fields`.
    """

    timestamp: object = None
    level: object = None
    service: object = None
    trace_id: object = None
    span_id: object = None
    parent_span_id: object = None
    span_kind: object = field_name(SPAN_KIND)
    span_start: object = field_name(SPAN_START)
    duration_ms: object = None
    error_type: object = field_name(ERROR_TYPE)
    exception_type: object = field_name(EXCEPTION_TYPE)
    exc_info: object = None
    status: object = field_name(HTTP_RESPONSE_STATUS_CODE)


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
    if not 0 < len(service) <= 200 or names_no_service(service):
        return None  # the full struct's path reads it (service "None" is none)
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
        return _json_fields(decode_fields(raw), raw, None, JSON, 0)
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


def _strict_constant(name: str) -> Any:
    raise ValueError(name)


_NOT_CONTROL = bytes(b for b in range(256) if not (b < 9 or 13 < b < 32 or b == 127))
"""Every byte but the control characters that text does not hold."""


def _is_binary(raw: bytes) -> bool:
    if b"\x00" in raw:
        return True
    head = raw[:4096]
    bad = len(head.translate(None, _NOT_CONTROL))  # the control characters left
    return bad * 8 > len(head)


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


def _wraps(r: Fields) -> bool:
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
    r: Fields, raw: bytes | None, obj: dict[str, Any] | None, flags: int, depth: int
) -> Parsed:
    """A JSON object's fields: its own, or those of the record it wraps when it
    names no trace of its own (a Cloud Logging entry's ``trace`` aside)."""
    outer = fields_of(r, flags)
    if (outer[0] is None or type(r.trace) is str) and depth < MAX_WRAPS and _wraps(r):
        if (
            obj is None
            and type(r.log) is str
            and r.MESSAGE is None
            and r.jsonPayload is None
            and r.textPayload is None
            and raw is not None
            and b'"attrs"' not in raw
        ):
            # Docker json-file, the common case: its struct holds all it needs.
            wrapped: Unwrapped | None = docker_record(r.log, r.time, r.stream)
        else:
            if obj is None:
                value = msgspec.json.decode(raw) if raw is not None else None
                obj = value if isinstance(value, dict) else None
            wrapped = unwrap(obj) if obj is not None else None
        if wrapped is not None:
            return _unwrapped(outer, wrapped, depth)
    return outer


def _payload_fields(data: bytes, depth: int) -> Parsed:
    """A wrapped line's fields: logtrace's own shape the quick way, else as any line."""
    if data[:1] == b"{" and data.isascii():
        try:
            fields = _common_fields(_decode_common(data))
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            fields = None
        if fields is not None:
            trace, span, parent, ts, service, flags, _, start = fields
            trace = norm_trace_id(trace)
            span = None if span is None else norm_span_id(span)
            parent = None if parent is None else norm_span_id(parent)
            reason = 0 if trace else NO_TRACE_ID
            return (trace, span, parent, ts, service, flags, reason, start)
    return _parse_any(data, depth + 1)


def _unwrapped(outer: Parsed, w: Unwrapped, depth: int) -> Parsed:
    """The wrapped record's fields, the wrapper's where it is silent."""
    payload = w.payload
    inner = _NOTHING
    if w.pieces is not None and isinstance(payload, str):
        data = payload.encode(errors="surrogatepass")
        if w.partial:
            inner = _piece_fields(PARTIALS.add(w.pieces, data))
        else:
            whole = PARTIALS.finish(w.pieces, data)
            inner = _payload_fields(whole, depth) if whole.strip() else _NOTHING
    elif isinstance(payload, str):
        if payload.strip():
            inner = _payload_fields(payload.encode(errors="surrogatepass"), depth)
    elif isinstance(payload, dict):
        try:
            fields = msgspec.convert(payload, Fields)
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


_CUT_WORD = re.compile(r"[^\s,;\"'{}\[\]]*\Z")


def _piece_fields(joined: bytes) -> Parsed:
    """A piece of a cut line: the IDs its text has so far (the final piece
    reads the whole line), without the word the cut runs through: a cut ID is no ID."""
    return text_fields(_CUT_WORD.sub("", joined.decode(errors="replace")), 0)


def _cri(raw: bytes, depth: int) -> Parsed | None:
    """A Kubernetes node file line: its payload's fields, the runtime's time
    where the payload has none; a cut line's pieces join its final piece."""
    split = cri_line(raw)
    if split is None:
        return None
    stamp, stream, partial, payload = split
    if partial:
        # A piece: the IDs its text has so far (the final piece reads the whole line).
        inner = _piece_fields(PARTIALS.add(stream, payload))
    else:
        whole = PARTIALS.finish(stream, payload)
        inner = _payload_fields(whole, depth) if whole.strip() else _NOTHING
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
            return _json_fields(decode_fields(raw), raw, None, JSON, depth)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return _fallback_json(raw, depth)
        except RecursionError:
            return (None, None, None, None, None, 0, TOO_DEEP, None)
    if depth < MAX_WRAPS and head.isdigit() and raw[4:5] == b"-" and b" std" in raw[19:48]:
        parsed = _cri(raw, depth)  # its payload is checked for binary bytes as any line
        if parsed is not None:
            return parsed
    if _is_binary(raw):
        return _unreadable(raw, BINARY)
    text = raw.decode()
    if LOGFMT_START.match(raw):
        try:
            fields = msgspec.convert(parse_logfmt(text), Fields)
        except msgspec.ValidationError:
            return text_fields(text, 0)
        if free_text(text):
            return _pairs_and_text(fields, text)
        return fields_of(fields, LOGFMT)
    return text_fields(text, 0)


def _pairs_and_text(fields: Fields, text: str) -> Parsed:
    """``key=value`` pairs followed by free text (``trace_id=... payment failed``):
    a text line, so that its record keeps every word, with the fields of its
    pairs, and those the text names where the pairs are silent."""
    trace, span, parent, ts, service, flags, _, _ = fields_of(fields, 0)
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
        fields = msgspec.convert(value, Fields)
        # Not flagged JSON: the output carries it as text, which every reader accepts.
        parsed = _json_fields(fields, None, value, 0, depth)
    except (msgspec.ValidationError, RecursionError):
        return (None, None, None, None, None, 0, UNPARSEABLE_JSON, None)
    service = parsed[4]
    if service is not None and not service.isascii():
        # JSON may escape a lone surrogate, which no output can encode: "?" instead.
        clean = service.encode(errors="replace").decode()
        if clean != service:
            trace, span, parent, ts, _, flags, reason, start = parsed
            return (trace, span, parent, ts, clean, flags, reason, start)
    return parsed


def _unreadable(raw: bytes, reason: int) -> Parsed:
    text = raw.decode(errors="replace")
    parsed = text_fields(text, BROKEN) if not _is_binary(raw) else None
    if parsed is not None and parsed[0] is not None:
        return parsed
    return (None, None, None, None, None, 0, reason, None)
