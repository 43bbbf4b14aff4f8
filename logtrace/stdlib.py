"""Trace IDs on standard library ``logging`` records, and formatters that show them.

The formatters import python-json-logger when first called, so importing
this module costs nothing beyond the standard library.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from json.encoder import c_make_encoder  # type: ignore[attr-defined]
from json.encoder import encode_basestring as _encode_str
from typing import Any

from ._context import CURRENT
from ._fields import OTEL_FIELDS, RECORD_ATTRS, FieldNames, TraceFields, iso_utc, resolve_fields
from ._schema import LEVEL, LOGGER, MESSAGE, SERVICE, SPAN_START, TIMESTAMP
from ._wallclock import restamp_span_start

__all__ = ["TraceContextFilter", "console_formatter", "json_formatter"]

_current = CURRENT.get  # bound once: one call per record, no attribute lookup


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

    @property
    def field_names(self) -> TraceFields:
        """The names under which this filter puts the IDs on records."""
        return self._names

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = _current()
        trace_key, span_key, parent_key, request_key = self._names
        fields = record.__dict__
        # setdefault semantics; ``in`` plus a store skips a method call per key.
        if ctx is None:
            if trace_key not in fields:
                fields[trace_key] = None
            if span_key not in fields:
                fields[span_key] = None
            if parent_key not in fields:
                fields[parent_key] = None
        else:
            if trace_key not in fields:
                fields[trace_key] = ctx[0]  # trace_id (indexing skips the field descriptor)
            if span_key not in fields:
                fields[span_key] = ctx[1]  # span_id
            if parent_key not in fields:
                fields[parent_key] = ctx[2]  # parent_span_id
            request_id = ctx[6]
            if request_id is not None and request_key not in fields:
                fields[request_key] = request_id
        return True


def json_formatter(service: str, *, field_names: FieldNames = OTEL_FIELDS) -> logging.Formatter:
    """A python-json-logger formatter writing the logtrace JSON line.

    Fields come in a fixed order: ``timestamp`` (ISO 8601 UTC, microseconds),
    ``level``, ``service``, ``logger``, ``message``, then the trace IDs and
    every extra field, and ``exc_info`` (the traceback) when there is one.
    Usable from ``dictConfig`` as ``{"()": "logtrace.stdlib.json_formatter",
    "service": "api"}``; put a :class:`TraceContextFilter` on the handler.
    """
    try:
        from pythonjsonlogger.json import JsonFormatter
    except ImportError:
        raise ImportError(
            "JSON logs need python-json-logger 3.1 or later: pip install 'pylogtrace[json]'"
        ) from None

    names = resolve_fields(field_names)
    id_names = names
    trace_key = names.trace_id
    id_keys = tuple(names)
    skip = RECORD_ATTRS.union(names)
    service_json = _encode_str(service)
    # span_line's memos: whether a tuple of keys is written in its own order,
    # and the constant middle of a line by level name and logger.
    clean_keys: dict[tuple[str, ...], bool] = {}
    heads: dict[tuple[str, str], str] = {}

    def _common_fields(log_data: dict[str, Any], record: logging.LogRecord, message: str) -> None:
        log_data[TIMESTAMP] = iso_utc(round(record.created * 1e9))
        log_data[LEVEL] = record.levelname
        log_data[SERVICE] = service
        log_data[LOGGER] = record.name
        log_data[MESSAGE] = message
        fields = record.__dict__
        if fields.get(trace_key) is not None:
            # The IDs next, where a reader looks for them; outside any
            # request there are none rather than a row of nulls.
            for key in id_keys:
                if key in fields:
                    log_data[key] = fields[key]

    class _Formatter(JsonFormatter):
        plain = False
        """Whether the base class's generic steps have nothing to add."""
        encode: Callable[[Any], str]
        encoder: json.JSONEncoder
        direct = False
        """Whether :meth:`span_line` may write lines (set once the encoder is known)."""
        encoder_args: tuple[Any, ...] = ()

        def format(self, record: logging.LogRecord) -> str:
            # The common record (a string message, no traceback, no stack)
            # takes a direct path to the same line: the base class's generic
            # steps (defaults, renames, static fields) have nothing to do here.
            if (
                record.exc_info
                or record.exc_text
                or record.stack_info
                or isinstance(record.msg, dict)
                or not self.plain
            ):
                return super().format(record)
            record.message = message = record.getMessage()
            log_data: dict[str, Any] = {}
            _common_fields(log_data, record, message.rstrip())
            fields = record.__dict__
            skip_fields = self._skip_fields
            for key, value in fields.items():
                if key not in skip_fields and not (isinstance(key, str) and key[:1] == "_"):
                    log_data[key] = value
            if SPAN_START in log_data:
                restamp_span_start(log_data, SPAN_START, record)
            return self.encode(self.process_log_record(log_data))

        def span_line(
            self,
            end_ns: int,
            level: int,
            logger: str,
            message: str,
            fields: dict[str, object],
            names: TraceFields,
        ) -> str | None:
            """The line :meth:`format` writes for a record whose extra fields are
            ``fields`` (IDs named ``names``, first) and that nothing else changed,
            built without the record: span records take this path. ``None`` when
            the line needs the generic path (this formatter's settings, or keys
            the generic path drops or reorders)."""
            if (
                not self.direct
                or type(self) is not _Formatter
                or (names is not id_names and names != id_names)
                or fields.get(trace_key) is None
            ):
                return None
            keys = tuple(fields)
            clean = clean_keys.get(keys)
            if clean is None:
                clean = _in_line_order(keys, id_keys, self._skip_fields)
                if len(clean_keys) >= 256:  # a bounded memo: key sets repeat per call site
                    clean_keys.clear()
                clean_keys[keys] = clean
            if not clean:
                return None
            levelname = logging.getLevelName(level)
            middle = heads.get((levelname, logger))
            if middle is None:
                middle = heads[levelname, logger] = (
                    f'", "{LEVEL}": {_encode_str(levelname)}, '
                    f'"{SERVICE}": {service_json}, "{LOGGER}": {_encode_str(logger)}, '
                    f'"{MESSAGE}": '
                )
            if c_make_encoder is None:
                tail = self.encode(fields)
            else:  # what ``encoder.encode`` does, less two Python calls
                tail = "".join(c_make_encoder({}, *self.encoder_args)(fields, 0))
            return (
                f'{{"{TIMESTAMP}": "{iso_utc(end_ns)}{middle}'
                f"{_encode_str(message.rstrip())}, {tail[1:]}"
            )

        def add_fields(
            self,
            log_data: dict[str, Any],
            record: logging.LogRecord,
            message_dict: dict[str, Any],
        ) -> None:
            # Servers end some messages with a newline meant for a traceback
            # that follows in text logs; here the traceback has its own field.
            message = record.message.rstrip()
            _common_fields(log_data, record, message)
            super().add_fields(log_data, record, message_dict)
            # The base class writes the format's fields (``message``) again.
            log_data[MESSAGE] = message
            if SPAN_START in log_data:
                restamp_span_start(log_data, SPAN_START, record)

    formatter = _Formatter(reserved_attrs=sorted(skip), json_ensure_ascii=False)
    # One encoder for every record: json.dumps would build it again each time.
    encoder_class = formatter.json_encoder or json.JSONEncoder
    formatter.encoder = encoder_class(
        default=formatter.json_default, ensure_ascii=False, indent=formatter.json_indent
    )
    formatter.encode = formatter.encoder.encode
    formatter.plain = (
        formatter.json_serializer is json.dumps
        and getattr(formatter, "_required_fields", None) == [MESSAGE]
        and not (
            formatter.static_fields
            or formatter.defaults
            or formatter.rename_fields
            or formatter.timestamp
            or formatter.prefix
        )
    )
    encoder = formatter.encoder
    # span_line encodes like ``encoder.encode``: python-json-logger's encoder
    # changes only ``default``; indented or ASCII-only output takes the generic path.
    formatter.direct = (
        formatter.plain
        and type(encoder).encode is json.JSONEncoder.encode
        and type(encoder).iterencode is json.JSONEncoder.iterencode
        and encoder.indent is None
        and not encoder.ensure_ascii
        and encoder.check_circular
    )
    formatter.encoder_args = (
        encoder.default,
        _encode_str,
        None,
        encoder.key_separator,
        encoder.item_separator,
        encoder.sort_keys,
        encoder.skipkeys,
        encoder.allow_nan,
    )
    return formatter


def _in_line_order(keys: tuple[str, ...], id_keys: tuple[str, ...], skip: AbstractSet[str]) -> bool:
    """Whether the generic path writes a record with these extra fields in their
    own order: the IDs first (in ``id_keys`` order), then fields it does not skip."""
    ids = tuple(key for key in id_keys if key in keys)
    return keys[: len(ids)] == ids and not any(
        key in skip or key[:1] == "_" for key in keys[len(ids) :]
    )


class _ConsoleFormatter(logging.Formatter):
    """One readable line: time, level, logger, message, IDs, extra fields."""

    def __init__(self, service: str, names: TraceFields) -> None:
        super().__init__()
        self._service = service
        self._names = names

    def format(self, record: logging.LogRecord) -> str:
        names = self._names
        fields = record.__dict__
        parts = [
            iso_utc(round(record.created * 1e9)),
            f"{record.levelname:<8}",
            f"{self._service} {record.name}:",
            record.getMessage().rstrip(),
        ]
        trace_id = fields.get(names.trace_id)
        if trace_id is not None:  # key=value, as logtrace stitch reads them
            parts.append(f"{names.trace_id}={trace_id} {names.span_id}={fields.get(names.span_id)}")
            parent = fields.get(names.parent_span_id)
            if parent is not None:
                parts.append(f"{names.parent_span_id}={parent}")
        parts.extend(
            f"{key}={value!r}"
            for key, value in fields.items()
            if key not in RECORD_ATTRS and key not in names and value is not None
        )
        line = " ".join(parts)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line = f"{line}\n{record.exc_text}"
        if record.stack_info:
            line = f"{line}\n{self.formatStack(record.stack_info)}"
        return line


def console_formatter(service: str, *, field_names: FieldNames = OTEL_FIELDS) -> logging.Formatter:
    """A formatter for people at a terminal, with the same fields as the JSON line."""
    return _ConsoleFormatter(service, resolve_fields(field_names))
