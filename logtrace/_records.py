"""Span records: one log record written when a span ends.

The stitcher rebuilds span trees and corrects clock skew from these records,
so they carry the span's own IDs explicitly (the record is written after the
span's context has been left) plus its start time and duration.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Literal

from ._context import TraceContext

__all__ = ["SPAN_LOGGER_NAME", "SpanKind", "emit_span"]

SpanKind = Literal["server", "client", "internal"]

SPAN_LOGGER_NAME = "logtrace.span"
_logger = logging.getLogger(SPAN_LOGGER_NAME)


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
    a monotonic difference. Costs one level check when the logger is off.
    """
    level = logging.ERROR if error is not None else logging.INFO
    if not _logger.isEnabledFor(level):
        return
    extra: dict[str, object] = {
        "trace_id": context.trace_id,
        "span_id": context.span_id,
        "parent_span_id": context.parent_span_id,
        "span.kind": kind,
        "span.name": name,
        "span.start_ns": start_ns,
        "duration_ms": round(duration_ns / 1e6, 3),
    }
    if context.request_id is not None:
        extra["request_id"] = context.request_id
    if attributes:
        extra.update(attributes)
    if error is not None:
        extra["error.type"] = type(error).__qualname__
    _logger.log(level, "%s %s", kind, name, extra={"logtrace": extra})
