"""Span records: one log record written when a span ends.

The stitcher rebuilds span trees and corrects clock skew from these records,
so they carry the span's own IDs explicitly (the record is written after the
span's context has been left) plus its start time and duration. The
exception of a failed span is logged once, with its traceback, by the server
or the code that handles it: a span record names only its type. Field names
come from :mod:`logtrace._schema`, where the stitcher reads them too.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import Any

from ._context import CURRENT, TraceContext
from ._fields import OTEL_FIELDS, RESERVED_ATTRS, FieldNames, TraceFields, iso_utc, resolve_fields
from ._record_message import MessageFields, shows_no_fields
from ._schema import (
    ATTRIBUTE_PREFIX,
    DURATION_MS,
    ERROR_TYPE,
    EXCEPTION_TYPE,
    HOST_NAME,
    HTTP_RESPONSE_STATUS_CODE,
    KIND_CLIENT,
    LEVEL,
    LOGGER,
    SERVICE,
    SPAN_KIND,
    SPAN_LOGGER_NAME,
    SPAN_NAME,
    SPAN_START,
    TIMESTAMP,
    SpanKind,
)
from ._wallclock import wall_ns
from .stdlib import TraceContextFilter

__all__ = [
    "SPAN_LOGGER_NAME",
    "SpanKind",
    "SpanSettings",
    "configure_span_records",
    "emit_span",
    "enabled_for",
    "level_number",
    "line_handler",
    "settings",
]

_logger = logging.getLogger(SPAN_LOGGER_NAME)
_NAME = _logger.name
_RECORD = logging.LogRecord
enabled_for = _logger.isEnabledFor
"""Whether the span logger writes records of a level; with :data:`settings`, lets
middleware skip timing a request whose record would not be written."""

_OWN_KEYS = RESERVED_ATTRS | {
    TIMESTAMP,
    LEVEL,
    SERVICE,
    LOGGER,
    SPAN_KIND,
    SPAN_NAME,
    SPAN_START,
    DURATION_MS,
    HOST_NAME,
}
"""Keys a span record's line has of its own (with the ID keys): an attribute
named so is written as ``span.attributes.<name>`` instead of replacing it."""

# Sampling compares the trace ID's last 56 bits (random in W3C Level 2 IDs)
# with a threshold, so that every service keeps or drops the same traces.
_SAMPLE_SPACE = 1 << 56


class SpanSettings:
    """How span records are written; changed by :func:`configure_span_records`."""

    __slots__ = ("enabled", "host", "level", "names", "threshold")

    def __init__(self) -> None:
        self.enabled = True
        self.level = logging.INFO
        self.names: TraceFields = OTEL_FIELDS
        self.threshold = _SAMPLE_SPACE
        self.host = _node_name()
        """``host.name`` of every span record: services on one host share a clock."""


def _node_name() -> str:
    """This machine's network name (no ``socket`` import: ``os`` is loaded already)."""
    uname = getattr(os, "uname", None)
    if uname is not None:
        return str(uname().nodename)
    return os.environ.get("COMPUTERNAME", "")


settings = SpanSettings()
"""The settings in force: one object, read attribute by attribute on the hot path."""


def level_number(level: int | str) -> int:
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
        settings.level = level_number(level)
    if success_sample_rate is not None:
        if not 0.0 <= success_sample_rate <= 1.0:
            raise ValueError(f"success_sample_rate must be in [0, 1], not {success_sample_rate}")
        settings.threshold = round(success_sample_rate * _SAMPLE_SPACE)
    if field_names is not None:
        settings.names = resolve_fields(field_names)
    if enabled is not None:
        settings.enabled = enabled


def _error_type(
    kind: SpanKind, attributes: Mapping[str, object] | None, error: BaseException | None
) -> str | None:
    """The span's ``error.type`` (OpenTelemetry semantic conventions), if it failed."""
    if error is not None:
        return type(error).__qualname__
    if attributes:
        given = attributes.get(ERROR_TYPE)
        if given is not None:
            return str(given)
        status = attributes.get(HTTP_RESPONSE_STATUS_CODE)
        # A 4xx is the client's mistake, so it fails a client span only.
        if isinstance(status, int) and status >= (400 if kind == KIND_CLIENT else 500):
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

    ``start_ns`` is wall-clock time (:func:`._wallclock.wall_ns`), ``duration_ns``
    a monotonic difference. The record is logged with ``context`` current,
    so filters and processors that read the current trace see the span
    itself rather than its parent. Costs two attribute reads and a level
    check when span records are off.
    """
    config = settings  # one global read
    level = config.level
    if not config.enabled or not _logger.isEnabledFor(level):
        return
    error_type = _error_type(kind, attributes, error)
    if (
        error_type is None
        and config.threshold < _SAMPLE_SPACE
        and int(context.trace_id[-14:], 16) >= config.threshold
    ):
        return
    names = config.names
    extra: dict[str, object] = {
        names.trace_id: context.trace_id,
        names.span_id: context.span_id,
        names.parent_span_id: context.parent_span_id,
    }
    if context.request_id is not None:
        extra[names.request_id] = context.request_id
    extra[SPAN_KIND] = kind
    extra[SPAN_NAME] = name
    extra[SPAN_START] = iso_utc(start_ns)
    extra[DURATION_MS] = (duration_ns + 500) // 1000 / 1000  # to the microsecond
    if config.host:
        extra[HOST_NAME] = config.host
    if attributes:
        if _OWN_KEYS.isdisjoint(attributes) and not any(key in attributes for key in names):
            extra.update(attributes)
        else:
            for key, value in attributes.items():
                taken = key in _OWN_KEYS or key in names
                extra[ATTRIBUTE_PREFIX + key if taken else key] = value
    if error_type is not None:
        extra[ERROR_TYPE] = error_type
        if error is not None:
            cls = type(error)
            module = cls.__module__
            extra[EXCEPTION_TYPE] = (
                cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"
            )
    handler = line_handler(level, names)
    if handler is not None:
        # The handler configure_logging installs: the line it would write, written
        # to its stream without a LogRecord (byte for byte the same line).
        span_line = getattr(handler.formatter, "span_line", None)
        if span_line is not None:
            try:
                text = span_line(wall_ns(), level, _NAME, f"{kind} {name}", extra, names)
            except Exception:  # a value JSON refuses: logging reports it with the record
                text = None
            if text is not None and _write(handler, text, level, kind, name):
                return
    token = CURRENT.set(context)
    try:
        # What ``Logger.log`` does, less the frame walk that finds the caller:
        # the record's caller is always this line, found once.
        filename, line, function = _caller or _find_caller()
        record = _logger.makeRecord(
            _logger.name, level, filename, line, "%s %s", (kind, name), None, function, extra
        )
        if shows_no_fields(_logger, level):
            # A format that writes the message alone: the timing goes in it.
            record.msg, record.args = "%s %s%s", (kind, name, MessageFields(record, extra))
        _logger.handle(record)
    finally:
        CURRENT.reset(token)


_caller: tuple[str, int, str] | None = None


def _find_caller() -> tuple[str, int, str]:
    """File, line and function of the line in :func:`emit_span` that makes records (what
    ``Logger.log`` would find), read once from the calling frame."""
    global _caller
    code = (frame := sys._getframe(1)).f_code
    _caller = (code.co_filename, frame.f_lineno, code.co_name)
    return _caller


_LINE_HANDLERS = (logging.FileHandler, logging.StreamHandler)
"""Handlers whose writing :func:`_write` repeats: exactly these classes (a subclass
may write differently)."""


def line_handler(level: int, names: TraceFields) -> logging.StreamHandler[Any] | None:
    """The handler a span record goes to, when it is the only one and writes a
    formatted line to a stream with no filter that could change the record:
    a plain file or stream handler whose filters are :class:`TraceContextFilter`
    with the span records' field names (they add nothing to a span record), the
    handler :func:`logtrace.configure_logging` installs. ``None`` otherwise: the
    record then goes through ``logging`` as a :class:`logging.LogRecord`.
    """
    logger: logging.Logger | None = _logger
    if _logger.filters or _logger.disabled or logging.getLogRecordFactory() is not _RECORD:
        return None
    found: logging.Handler | None = None
    while logger is not None:
        handlers = logger.handlers
        if handlers:
            if found is not None or len(handlers) > 1:
                return None
            found = handlers[0]
        logger = logger.parent if logger.propagate else None
    if found is None or type(found) not in _LINE_HANDLERS or level < found.level:
        return None
    for f in found.filters:
        if type(f) is not TraceContextFilter or f.field_names != names:
            return None
    return found  # type: ignore[return-value]  # one of _LINE_HANDLERS


def _write(
    handler: logging.StreamHandler[Any], line: str, level: int, kind: str, name: str
) -> bool:
    """What ``StreamHandler.emit`` and ``flush`` do with a formatted line, under the
    handler's lock; ``False`` (nothing written) when the handler has no lock or no
    stream yet (a ``FileHandler`` opens its file on its first record)."""
    lock = handler.lock
    if lock is None:
        return False
    with lock:
        stream = handler.stream
        if stream is None:
            return False
        try:
            stream.write(line + handler.terminator)
            flush = getattr(stream, "flush", None)
            if flush is not None:
                flush()
        except RecursionError:
            raise
        except Exception:
            # The record ``logging`` would have passed (its caller line is unknown here).
            filename, line_number, function = _caller or (__file__, 0, "emit_span")
            handler.handleError(
                _logger.makeRecord(
                    _NAME, level, filename, line_number, "%s %s", (kind, name), None, function
                )
            )
    return True
