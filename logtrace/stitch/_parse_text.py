"""Logfmt and plain text lines: ``key=value`` pairs, IDs and times found in text.

The JSON side of the parser (:mod:`._parse`) hands such lines here; both
return the same plain tuple (:data:`Parsed`).
"""

from __future__ import annotations

import re

from ._id_forms import (
    datadog_trace,
    decimal_id,
    names_no_service,
    norm_span_id,
    norm_trace_id,
    traceparent_ids,
)
from ._model import ERROR, KIND_FLAGS, NO_TRACE_ID, SPAN_RECORD
from ._timestamps import iso_fast, parse_timestamp, timestamp_in_text

__all__ = [
    "LOGFMT_START",
    "TEXT_ID_KEYS",
    "TEXT_SERVICE_KEYS",
    "Parsed",
    "free_text",
    "parse_logfmt",
    "record_fields",
    "text_fields",
]

Parsed = tuple[
    "str | None",  # trace ID
    "str | None",  # span ID
    "str | None",  # parent span ID
    "float | None",  # timestamp (epoch seconds, raw clock)
    "str | None",  # service
    int,  # flags
    int,  # reason
    "float | None",  # span start (span records)
]


LOGFMT_START = re.compile(rb"\s*[\w.@/-]+=")
_LOGFMT_PAIR = re.compile(r'([\w.@/-]+)=("(?:[^"\\]|\\.)*"|\S*)')


def free_text(text: str) -> bool:
    """Whether a logfmt-looking line has words outside its ``key=value`` pairs."""
    return bool(_LOGFMT_PAIR.sub("", text).strip())


def parse_logfmt(text: str) -> dict[str, str]:
    """The ``key=value`` pairs of a logfmt line (quoted values unescaped)."""
    pairs: dict[str, str] = {}
    for key, value in _LOGFMT_PAIR.findall(text):
        if value[:1] == '"' and value[-1:] == '"' and len(value) >= 2:
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        pairs[key] = value
    return pairs


TEXT_ID_KEYS = (
    r"(?:elasticapm_)?trace[_.-]?id|oteltraceid|dd\.trace_id",
    r"(?:elasticapm_)?span[_.-]?id|otelspanid|dd\.span_id",
    r"parent[_.-]?(?:span[_.-]?)?id",
    r"(?:elasticapm_)?transaction[_.]id",
)
"""The spellings of the trace, span, parent span and transaction ID keys
read in text lines (regular expressions, matched ignoring case). Elastic
APM's documented format ends ``transaction.id=... trace.id=... span.id=...``,
its span ``None`` outside a span the request opened: the transaction is the
request's span then, and the parent of the span otherwise."""
TEXT_SERVICE_KEYS = r"(?:resource\.)?service(?:[_.]name)?|otelservicename|dd\.service"
"""The spellings of the service key read in text lines: OpenTelemetry's
logging format writes ``resource.service.name=checkout``, Datadog's
``dd.service=checkout``."""
_TEXT_KEYS = re.compile(
    rf"(?i)(?<![\w.])({'|'.join(TEXT_ID_KEYS)}|{TEXT_SERVICE_KEYS})[\"']?"
    r"(?:\s*:\s*|\s+=\s*|=)[\"']?([\w.:/-]+)"
)
"""A key and its value. ``key=`` followed by a space has an empty value (none):
the word after the space is not its value (``trace_id= span_id= boot``)."""
_BARE_IDS = re.compile(r"(?<![\w.])trace=([0-9a-f]{32})\b(?:\s+span=([0-9a-f]{16})\b)?")
"""``trace=`` and ``span=`` with hex IDs of their full length, as logtrace's
readable lines spelled them before they named the keys in full."""
_TEXT_ERROR = re.compile(r"\b(?:ERROR|FATAL|CRITICAL|PANIC|SEVERE|level=error)\b")


def _may_name_an_error(text: str) -> bool:
    """Whether ``text`` holds a word :data:`_TEXT_ERROR` looks for (a few
    substring tests, several times faster than the search most lines need
    not make)."""
    return (
        "ERROR" in text
        or "FATAL" in text
        or "CRITICAL" in text
        or "PANIC" in text
        or "SEVERE" in text
        or "level=error" in text
    )


def text_fields(text: str, flags: int) -> Parsed:
    """The IDs, time and error words of a text line."""
    trace = span = parent = service = held = None
    for key, value in _TEXT_KEYS.findall(text):
        key = key.lower().removeprefix("elasticapm_")
        if key.startswith("transaction"):
            held = held or norm_span_id(value)
        elif key.startswith(("trace", "oteltrace")):
            trace = trace or norm_trace_id(value)
        elif key == "dd.trace_id":
            trace = trace or datadog_trace(value, None)
        elif key.startswith(("span", "otelspan")):
            span = span or norm_span_id(value)
        elif key == "dd.span_id":
            span = span or decimal_id(value, 16)
        elif key.startswith("parent"):
            parent = parent or norm_span_id(value)
        elif service is None and not names_no_service(value):
            service = value  # service=None (a format string's empty field) names none
    if held is not None and span is None:
        span = held
    elif held is not None and parent is None and held != span:
        parent = held
    if trace is None and "trace=" in text:
        bare = _BARE_IDS.search(text)  # trace=<32 hex> span=<16 hex>: older console lines
        if bare is not None:
            trace = norm_trace_id(bare[1])
            span = span or (None if bare[2] is None else norm_span_id(bare[2]))
    if trace is None and "-" in text:
        ids = traceparent_ids(text)
        if ids is not None:
            trace = ids[0]
    if _may_name_an_error(text) and _TEXT_ERROR.search(text):
        flags |= ERROR
    ts = timestamp_in_text(text)
    start = None
    if "duration_ms=" in text:
        record, start = record_fields(text, ts)
        flags |= record
    return (trace, span, parent, ts, service, flags, 0 if trace else NO_TRACE_ID, start)


_RECORD_FIELD = re.compile(
    r"(?<![\w.])(span\.kind|span\.start|duration_ms)=(?:'([^']*)'|\"([^\"]*)\"|([^\s,]+))"
)
_MAX_MS = float(1 << 53)
"""As :data:`._known_keys.MAX_DURATION_MS`: the longest duration read."""


def record_fields(text: str, ts: float | None) -> tuple[int, float | None]:
    """The flags and the start of a span record whose fields a text format
    wrote as ``key=value`` pairs (``configure_logging(json=False)``:
    ``span.kind='client' span.start='2026-...Z' duration_ms=10.227``), read
    as from JSON: a record needs its kind and a finite duration; its start
    is ``span.start``, else its time less the duration. ``(0, None)``: no
    such record."""
    found: dict[str, str] = {}
    for key, single, double, bare in _RECORD_FIELD.findall(text):
        found.setdefault(key, single or double or bare)
    kind, written = found.get("span.kind"), found.get("duration_ms")
    if kind is None or written is None:
        return 0, None
    try:
        duration = float(written)
    except ValueError:
        return 0, None
    if not -_MAX_MS <= duration <= _MAX_MS:  # NaN fails too
        return 0, None
    start = None
    value = found.get("span.start")
    if value:
        start = iso_fast(value)
        if start is None:
            start = parse_timestamp(value)
    if start is None and ts is not None:
        start = ts - duration / 1e3
    return SPAN_RECORD | KIND_FLAGS.get(kind, 0), start
