"""The names under which trace IDs appear in log records, the names a record
already has, and UTC timestamps.

Every integration (the structlog processor, the stdlib filter, span records)
takes its key names from one :class:`TraceFields`, so a service renames its
fields in one place.
"""

from __future__ import annotations

import logging
from time import gmtime, strftime
from typing import NamedTuple, TypeAlias

__all__ = [
    "ECS_FIELDS",
    "OTEL_FIELDS",
    "RECORD_ATTRS",
    "RESERVED_ATTRS",
    "FieldNames",
    "TraceFields",
    "iso_utc",
    "resolve_fields",
]


class TraceFields(NamedTuple):
    """Record keys for the trace IDs. Defaults follow OpenTelemetry's log data model."""

    trace_id: str = "trace_id"
    span_id: str = "span_id"
    parent_span_id: str = "parent_span_id"
    request_id: str = "request_id"


OTEL_FIELDS = TraceFields()
"""``trace_id``, ``span_id``, ``parent_span_id``, ``request_id``."""

ECS_FIELDS = TraceFields("trace.id", "span.id", "parent.id", "http.request.id")
"""Elastic Common Schema: ``trace.id``, ``span.id``, ``parent.id``, ``http.request.id``."""

FieldNames: TypeAlias = TraceFields | str
"""A :class:`TraceFields`, or the name of a preset: ``"otel"`` or ``"ecs"``."""

_PRESETS = {"otel": OTEL_FIELDS, "ecs": ECS_FIELDS}


def resolve_fields(field_names: FieldNames) -> TraceFields:
    """The :class:`TraceFields` that ``field_names`` stands for."""
    if isinstance(field_names, TraceFields):
        return field_names
    try:
        return _PRESETS[field_names]
    except (KeyError, TypeError):
        raise ValueError(
            f"field_names must be a TraceFields or one of {sorted(_PRESETS)}, not {field_names!r}"
        ) from None


RESERVED_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
}
"""Attribute names a :class:`logging.LogRecord` already has: ``extra=`` may not set them."""

RECORD_ATTRS = RESERVED_ATTRS | {
    "taskName",  # from Python 3.12 on
    "color_message",  # uvicorn's colored copy of its message
}
"""Attributes every record has; anything else on a record is an extra field."""


_cached: tuple[int, str] = (-1, "")


def iso_utc(ns: int) -> str:
    """``ns`` since the epoch as ISO 8601 UTC with microseconds: ``...T12:00:00.000001Z``.

    The date-and-second prefix is cached (one tuple, so threads never see a
    second paired with another second's prefix): it changes at most once a
    second while a service writes many records a second.
    """
    global _cached
    second, rest = divmod(ns, 1_000_000_000)
    cached_second, prefix = _cached
    if second != cached_second:
        prefix = strftime("%Y-%m-%dT%H:%M:%S", gmtime(second))
        _cached = (second, prefix)
    return "%s.%06dZ" % (prefix, rest // 1000)  # noqa: UP031 - faster than an f-string here
