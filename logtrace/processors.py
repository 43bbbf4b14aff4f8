"""structlog processors that stamp log events with the current trace.

Plain functions and classes: this module does not import structlog, so it
costs nothing to import and works with any structlog version.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from ._context import CURRENT
from ._fields import OTEL_FIELDS, FieldNames, TraceFields, resolve_fields

__all__ = ["TraceContextAdder", "add_trace_context"]

_current = CURRENT.get  # bound once: one call per record, no attribute lookup

EventDict = MutableMapping[str, Any]


def add_trace_context(logger: object, method_name: str, event_dict: EventDict) -> EventDict:
    """Add ``trace_id``, ``span_id``, ``parent_span_id`` (and ``request_id``).

    Outside any request or span the event is left alone. Keys bound
    explicitly (``log.bind(trace_id=...)``) win over the current context.
    Put it after ``merge_contextvars`` so that context-bound keys win too.
    """
    ctx = _current()
    if ctx is not None:
        # setdefault semantics; ``in`` plus a store skips a method call per key, and
        # indexing the named tuple skips its field descriptors.
        if "trace_id" not in event_dict:
            event_dict["trace_id"] = ctx[0]
        if "span_id" not in event_dict:
            event_dict["span_id"] = ctx[1]
        if "parent_span_id" not in event_dict:
            event_dict["parent_span_id"] = ctx[2]
        request_id = ctx[6]
        if request_id is not None and "request_id" not in event_dict:
            event_dict["request_id"] = request_id
    return event_dict


class TraceContextAdder:
    """:func:`add_trace_context` under other key names.

    ``TraceContextAdder("ecs")`` writes ``trace.id``, ``span.id``,
    ``parent.id`` and ``http.request.id``; pass a
    :class:`~logtrace.TraceFields` for names of your own.
    """

    __slots__ = ("_names",)

    def __init__(self, field_names: FieldNames = OTEL_FIELDS) -> None:
        self._names: TraceFields = resolve_fields(field_names)

    def __call__(self, logger: object, method_name: str, event_dict: EventDict) -> EventDict:
        ctx = _current()
        if ctx is not None:
            trace_key, span_key, parent_key, request_key = self._names
            if trace_key not in event_dict:
                event_dict[trace_key] = ctx[0]
            if span_key not in event_dict:
                event_dict[span_key] = ctx[1]
            if parent_key not in event_dict:
                event_dict[parent_key] = ctx[2]
            request_id = ctx[6]
            if request_id is not None and request_key not in event_dict:
                event_dict[request_key] = request_id
        return event_dict
