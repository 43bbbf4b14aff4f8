"""The message of a span record written through a format that shows no fields.

A span record's timing (``span.start``, ``duration_ms``, ``response_ms``) and
its host are fields of the record. JSON formatters write them; a format
string (``"%(asctime)s ... %(message)s"``), uvicorn's and Django's text
formatters and most others write the message alone, and the record then says
only that a span ended, which bounds clocks far less. So when a record goes
to a file or console handler whose formatter shows no fields, its message
carries them as ``key=value`` pairs, which ``logtrace stitch`` reads from a
text line as from a JSON record::

    server GET /stock span.kind=server span.start=2026-12-08T00:06:39.059123Z
    duration_ms=20.114 host.name=web-3 response_ms=15.2

Whether a formatter shows fields is decided from its class: JSON formatters
(python-json-logger, ecs-logging, logtrace's own) do, and so does structlog's
``ProcessorFormatter`` with an ``ExtraAdder`` in its chain; the rest do not.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import lru_cache

from ._schema import DURATION_MS, HEADERS_MS, HOST_NAME, RESPONSE_MS, SPAN_KIND, SPAN_START
from ._wallclock import restamp_span_start

__all__ = ["MESSAGE_FIELDS", "MessageFields", "shows_no_fields"]

MESSAGE_FIELDS = (SPAN_KIND, SPAN_START, DURATION_MS, HOST_NAME, RESPONSE_MS, HEADERS_MS)
"""The fields a span record's message carries, where present, in this order."""

_WRITING_HANDLERS = frozenset(
    {
        ("logging", "StreamHandler"),
        ("logging", "FileHandler"),
        ("logging.handlers", "RotatingFileHandler"),
        ("logging.handlers", "TimedRotatingFileHandler"),
        ("logging.handlers", "WatchedFileHandler"),
    }
)
"""Handlers that write each record as a formatted line: exactly these classes
(a subclass, such as a test's capture handler, may keep the record instead)."""

_FIELD_FORMATTERS = ("pythonjsonlogger", "ecs_logging", "json_log_formatter", "logtrace")
"""Top-level packages whose formatters write a record's extra fields."""


def shows_no_fields(logger: logging.Logger, level: int) -> bool:
    """Whether a record of ``level`` that ``logger`` handles reaches a file or
    console handler whose formatter writes the message but not the fields."""
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            cls = type(handler)
            if (
                level >= handler.level
                and (cls.__module__, cls.__qualname__) in _WRITING_HANDLERS
                and not _shows_fields(handler.formatter)
            ):
                return True
        current = current.parent if current.propagate else None
    return False


def _shows_fields(formatter: logging.Formatter | None) -> bool:
    if formatter is None:
        return False
    cls: type = type(formatter)
    if _field_formatter_class(cls):
        return True
    # structlog's ProcessorFormatter renders a foreign record's fields only
    # through an ExtraAdder in its chain for such records.
    for name in ("foreign_pre_chain", "processors"):
        chain = getattr(formatter, name, None)
        if isinstance(chain, (list, tuple)) and any(
            type(step).__name__ == "ExtraAdder" for step in chain
        ):
            return True
    return False


@lru_cache(maxsize=64)
def _field_formatter_class(cls: type) -> bool:
    """Whether formatters of ``cls`` write a record's extra fields, by package."""
    return any(c.__module__.split(".", 1)[0] in _FIELD_FORMATTERS for c in cls.__mro__)


class MessageFields:
    """`` key=value`` for each of :data:`MESSAGE_FIELDS` a span record has,
    made when the record is formatted: after the handler's filters, which may
    have moved the record's time (``span.start`` moves with it, as in a JSON
    line: both stay on the clock the service's lines show)."""

    __slots__ = ("fields", "record")

    def __init__(self, record: logging.LogRecord, fields: Mapping[str, object]) -> None:
        self.record = record
        self.fields = {key: fields[key] for key in MESSAGE_FIELDS if fields.get(key) is not None}

    def __str__(self) -> str:
        fields = dict(self.fields)
        restamp_span_start(fields, SPAN_START, self.record)
        return "".join(f" {key}={value}" for key, value in fields.items() if " " not in str(value))
