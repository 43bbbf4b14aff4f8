"""Trace IDs on standard library ``logging`` records."""

from __future__ import annotations

import logging

from ._context import _CURRENT
from ._fields import OTEL_FIELDS, FieldNames, resolve_fields

__all__ = ["TraceContextFilter"]


class TraceContextFilter(logging.Filter):
    """Put ``trace_id``, ``span_id`` and ``parent_span_id`` on every record.

    Attach it to a *handler* (a logger's own filters do not see records
    propagated from child loggers); every formatter can then use the IDs:
    python-json-logger emits them as fields, a format string as
    ``%(trace_id)s``. Outside any request the three fields are ``None``;
    ``request_id`` is set only when the request has one. Values passed in
    ``extra=`` win over the current context. Never drops a record.
    """

    def __init__(self, *, field_names: FieldNames = OTEL_FIELDS) -> None:
        super().__init__()
        self._names = resolve_fields(field_names)

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = _CURRENT.get()
        trace_key, span_key, parent_key, request_key = self._names
        setdefault = record.__dict__.setdefault
        if ctx is None:
            setdefault(trace_key, None)
            setdefault(span_key, None)
            setdefault(parent_key, None)
        else:
            setdefault(trace_key, ctx.trace_id)
            setdefault(span_key, ctx.span_id)
            setdefault(parent_key, ctx.parent_span_id)
            if ctx.request_id is not None:
                setdefault(request_key, ctx.request_id)
        return True
