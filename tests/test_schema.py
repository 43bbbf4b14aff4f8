"""The span-record field names: spelled once, and written as documented."""

from __future__ import annotations

import io
import json
import logging

from _logutil import preserved_logging

from logtrace import TraceContext, _schema
from logtrace._records import emit_span
from logtrace.stdlib import TraceContextFilter, json_formatter

CTX = TraceContext("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "b7ad6b7169203331")


def test_the_names_are_those_the_docs_and_the_stitcher_use() -> None:
    assert (
        _schema.SPAN_KIND,
        _schema.SPAN_NAME,
        _schema.SPAN_START,
        _schema.DURATION_MS,
        _schema.ERROR_TYPE,
        _schema.EXCEPTION_TYPE,
        _schema.HTTP_RESPONSE_STATUS_CODE,
        _schema.SPAN_LOGGER_NAME,
    ) == (
        "span.kind",
        "span.name",
        "span.start",
        "duration_ms",
        "error.type",
        "exception.type",
        "http.response.status_code",
        "logtrace.span",
    )
    assert (_schema.KIND_SERVER, _schema.KIND_CLIENT, _schema.KIND_INTERNAL) == (
        "server",
        "client",
        "internal",
    )


def test_a_failed_span_record_carries_every_span_field() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(TraceContextFilter())
    handler.setFormatter(json_formatter("svc"))
    logger = logging.getLogger(_schema.SPAN_LOGGER_NAME)
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with preserved_logging():
            emit_span(
                _schema.KIND_CLIENT,
                "GET",
                CTX,
                1_700_000_000_000_000_000,
                1_000_000,
                {_schema.HTTP_RESPONSE_STATUS_CODE: 503, "name": "clashes with LogRecord.name"},
                ConnectionError("reset"),
            )
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    record = json.loads(stream.getvalue())
    assert list(record)[:5] == [
        _schema.TIMESTAMP,
        _schema.LEVEL,
        _schema.SERVICE,
        _schema.LOGGER,
        _schema.MESSAGE,
    ]
    assert record[_schema.SPAN_KIND] == _schema.KIND_CLIENT
    assert record[_schema.SPAN_NAME] == "GET"
    assert record[_schema.SPAN_START] == "2023-11-14T22:13:20.000000Z"
    assert record[_schema.DURATION_MS] == 1.0
    assert record[_schema.ERROR_TYPE] == "ConnectionError"
    assert record[_schema.EXCEPTION_TYPE] == "ConnectionError"
    assert record[_schema.HTTP_RESPONSE_STATUS_CODE] == 503
    assert record[_schema.ATTRIBUTE_PREFIX + "name"] == "clashes with LogRecord.name"


def test_the_c_scanner_reads_the_fields_by_the_schema_names() -> None:
    """The C scanner cannot import the constants: its key table must spell
    every span-record field the way the schema does, length included."""
    from pathlib import Path

    source = (Path(__file__).parent.parent / "logtrace" / "stitch" / "_native_scan.c").read_text()
    for name in (
        _schema.TIMESTAMP,
        _schema.LEVEL,
        _schema.SERVICE,
        _schema.SPAN_KIND,
        _schema.SPAN_START,
        _schema.DURATION_MS,
        _schema.ERROR_TYPE,
        _schema.EXCEPTION_TYPE,
        _schema.HTTP_RESPONSE_STATUS_CODE,
    ):
        assert f'{{"{name}", ' in source, name
        entry = source.split(f'{{"{name}", ', 1)[1].split("}", 1)[0]
        assert entry.endswith(f", {len(name)}"), (name, entry)
    for kind in (_schema.KIND_CLIENT, _schema.KIND_SERVER, _schema.KIND_PRODUCER):
        assert f'memcmp(s, "{kind}", {len(kind)})' in source, kind
