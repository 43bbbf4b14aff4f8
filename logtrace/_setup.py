"""``configure_logging()``: structlog and stdlib logging in one JSON pipeline.

Every record, whichever library writes it, ends in one handler on the root
logger: structlog events are handed to stdlib logging (their key-value pairs
become the record's extra fields), the :class:`~logtrace.TraceContextFilter`
stamps the IDs, and one formatter writes the line. One handler means one
lock and one format for the file. structlog and python-json-logger are
imported here, on first call, never by ``import logtrace``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, MutableMapping
from typing import IO, Any

from ._fields import OTEL_FIELDS, RECORD_ATTRS, FieldNames, TraceFields, resolve_fields
from ._records import configure_span_records, level_number
from .processors import TraceContextAdder, add_trace_context
from .stdlib import TraceContextFilter, console_formatter, json_formatter

__all__ = ["SERVER_LOGGERS", "configure_logging"]

SERVER_LOGGERS = (
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "gunicorn",
    "gunicorn.error",
    "gunicorn.access",
)
"""Loggers that servers give handlers of their own; routed to the root handler instead."""

# Keys of a structlog event that stdlib logging takes as arguments, not as extra.
_LOG_KWARGS = ("exc_info", "stack_info", "stacklevel")


def _to_stdlib(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> dict[str, Any]:
    """Hand a structlog event to stdlib logging: the message, keyword arguments, extra.

    A key that a LogRecord already has (``name``, ``args``, ...) cannot be
    passed as extra, so it is kept with a trailing underscore.
    """
    kwargs: dict[str, Any] = {"msg": event_dict.pop("event", "")}
    for key in _LOG_KWARGS:
        if key in event_dict:
            kwargs[key] = event_dict.pop(key)
    if not RECORD_ATTRS.isdisjoint(event_dict):
        event_dict = {
            (f"{key}_" if key in RECORD_ATTRS else key): value for key, value in event_dict.items()
        }
    kwargs["extra"] = event_dict
    return kwargs


def _configure_structlog(names: TraceFields) -> bool:
    try:
        import structlog
    except ImportError:
        return False
    adder = add_trace_context if names == OTEL_FIELDS else TraceContextAdder(names)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.contextvars.merge_contextvars,
            adder,
            structlog.stdlib.PositionalArgumentsFormatter(),
            _to_stdlib,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        context_class=dict,
        cache_logger_on_first_use=True,
    )
    return True


def configure_logging(
    service: str,
    *,
    json: bool = True,
    level: int | str = "INFO",
    field_names: FieldNames = OTEL_FIELDS,
    stream: IO[str] | None = None,
    filename: str | os.PathLike[str] | None = None,
    server_loggers: Iterable[str] = SERVER_LOGGERS,
    span_records: bool = True,
    span_level: int | str = "INFO",
    span_success_sample_rate: float = 1.0,
) -> logging.Handler:
    """Send every log record of this process through one handler, with its trace.

    Replaces the root logger's handlers with one that writes to ``filename``
    (appending) or ``stream`` (default: standard error), in JSON
    (python-json-logger) or, with ``json=False``, a readable line. Each record
    carries ``service``, a UTC timestamp with microseconds and the trace IDs,
    named after ``field_names`` (``"otel"``, ``"ecs"`` or a
    :class:`~logtrace.TraceFields`). structlog, when installed, is configured
    to hand its events to this handler. Uvicorn's and gunicorn's loggers lose
    their own handlers and propagate here, so call this after the server has
    set up its logging (at import of the app module does). Span records are
    set up through :func:`~logtrace.configure_span_records`. Returns the handler.
    """
    names = resolve_fields(field_names)
    number = level_number(level)
    handler: logging.Handler
    if filename is not None:
        handler = logging.FileHandler(filename, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.addFilter(TraceContextFilter(field_names=names))
    handler.setFormatter(
        json_formatter(service, field_names=names)
        if json
        else console_formatter(service, field_names=names)
    )

    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(number)
    for name in server_loggers:
        logger = logging.getLogger(name)
        for old in logger.handlers[:]:
            logger.removeHandler(old)
        logger.propagate = True

    configure_span_records(
        enabled=span_records,
        level=span_level,
        success_sample_rate=span_success_sample_rate,
        field_names=names,
    )
    _configure_structlog(names)
    return handler
