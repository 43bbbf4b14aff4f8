"""Span records: one log record written when a span ends.

The stitcher rebuilds span trees and corrects clock skew from these records,
so they carry the span's own IDs explicitly (the record is written after the
span's context has been left) plus its start time and duration. The
exception of a failed span is logged once, with its traceback, by the server
or the code that handles it: a span record names only its type.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Literal

from ._context import _CURRENT, TraceContext
from ._fields import OTEL_FIELDS, FieldNames, TraceFields, iso_utc, resolve_fields

__all__ = ["SPAN_LOGGER_NAME", "SpanKind", "configure_span_records", "emit_span"]

SpanKind = Literal["server", "client", "internal", "producer", "consumer"]

SPAN_LOGGER_NAME = "logtrace.span"
_logger = logging.getLogger(SPAN_LOGGER_NAME)
_enabled_for = _logger.isEnabledFor

# Attribute names a LogRecord already has: ``extra=`` may not set them.
_RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
}

# Sampling compares the trace ID's last 56 bits (random in W3C Level 2 IDs)
# with a threshold, so that every service keeps or drops the same traces.
_SAMPLE_SPACE = 1 << 56


class _Settings:
    __slots__ = ("enabled", "level", "names", "threshold")

    def __init__(self) -> None:
        self.enabled = True
        self.level = logging.INFO
        self.names: TraceFields = OTEL_FIELDS
        self.threshold = _SAMPLE_SPACE


_settings = _Settings()


def _level_number(level: int | str) -> int:
    """The number of a level given by number or by name (any case)."""
    if isinstance(level, int):
        return level
    number = logging.getLevelName(level.upper())
    if not isinstance(number, int):
        raise ValueError(f"unknown log level {level!r}")
    return number


def configure_span_records(
    *,
    enabled: bool | None = None,
    level: int | str | None = None,
    success_sample_rate: float | None = None,
    field_names: FieldNames | None = None,
) -> None:
    """Change how span records are written; arguments left out keep their value.

    ``enabled=False`` turns span records off. ``level`` (default ``INFO``)
    applies to every span record, failed ones included. With
    ``success_sample_rate`` below 1, only that fraction of successful spans
    is written (failed ones always are); the choice is made from the trace
    ID, so all services with the same rate keep the same traces whole.
    ``field_names`` renames the ID fields (``"otel"``, ``"ecs"``).
    """
    if level is not None:
        _settings.level = _level_number(level)
    if success_sample_rate is not None:
        if not 0.0 <= success_sample_rate <= 1.0:
            raise ValueError(f"success_sample_rate must be in [0, 1], not {success_sample_rate}")
        _settings.threshold = round(success_sample_rate * _SAMPLE_SPACE)
    if field_names is not None:
        _settings.names = resolve_fields(field_names)
    if enabled is not None:
        _settings.enabled = enabled


def _escape(text: str) -> str:
    """``text`` with control and other unprintable characters escaped."""
    return text.encode("unicode_escape").decode("ascii")


def _error_type(
    kind: SpanKind, attributes: Mapping[str, object] | None, error: BaseException | None
) -> str | None:
    """The span's ``error.type`` (OpenTelemetry semantic conventions), if it failed."""
    if error is not None:
        return type(error).__qualname__
    if attributes:
        given = attributes.get("error.type")
        if given is not None:
            return str(given)
        status = attributes.get("http.response.status_code")
        # A 4xx is the client's mistake, so it fails a client span only.
        if isinstance(status, int) and status >= (400 if kind == "client" else 500):
            return str(status)
    return None


def emit_span(
    kind: SpanKind,
    name: str,
    context: TraceContext,
    start_ns: int,
    duration_ns: int,
    attributes: Mapping[str, object] | None = None,
    error: BaseException | None = None,
) -> None:
    """Write the record of a finished span to the ``logtrace.span`` logger.

    ``start_ns`` is wall-clock time (:func:`time.time_ns`), ``duration_ns``
    a monotonic difference. The record is logged with ``context`` current,
    so filters and processors that read the current trace see the span
    itself rather than its parent. Costs two attribute reads and a level
    check when span records are off.
    """
    settings = _settings
    level = settings.level
    if not settings.enabled or not _logger.isEnabledFor(level):
        return
    error_type = _error_type(kind, attributes, error)
    if (
        error_type is None
        and settings.threshold < _SAMPLE_SPACE
        and int(context.trace_id[-14:], 16) >= settings.threshold
    ):
        return
    names = settings.names
    extra: dict[str, object] = {
        names.trace_id: context.trace_id,
        names.span_id: context.span_id,
        names.parent_span_id: context.parent_span_id,
    }
    if context.request_id is not None:
        extra[names.request_id] = context.request_id
    extra["span.kind"] = kind
    extra["span.name"] = name
    extra["span.start"] = iso_utc(start_ns)
    extra["duration_ms"] = (duration_ns + 500) // 1000 / 1000  # to the microsecond
    if attributes:
        if _RESERVED.isdisjoint(attributes):
            extra.update(attributes)
        else:
            for key, value in attributes.items():
                extra[f"span.attributes.{key}" if key in _RESERVED else key] = value
    if error_type is not None:
        extra["error.type"] = error_type
        if error is not None:
            cls = type(error)
            module = cls.__module__
            extra["exception.type"] = (
                cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"
            )
    token = _CURRENT.set(context)
    try:
        _logger.log(level, "%s %s", kind, name, extra=extra)
    finally:
        _CURRENT.reset(token)
