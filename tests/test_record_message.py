"""A span record written through a format that shows no fields carries them in its message.

A format string (``"%(asctime)s ... %(message)s"``) writes a record's message
and nothing of its ``extra``: a span record would say only ``server GET
/note``, and ``logtrace stitch`` could not tell when the span started or when
the answer went out. Its message then ends with those fields as ``key=value``
pairs, read back by the stitcher's text parser; formatters that write the
fields themselves (JSON ones, structlog with ``ExtraAdder``) keep the short
message.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
import structlog
from _echo import serve
from _logutil import preserved_logging
from pythonjsonlogger.json import JsonFormatter

from logtrace import TraceContextFilter, span
from logtrace.asgi import TraceMiddleware
from logtrace.stdlib import json_formatter
from logtrace.stitch._model import SPAN_RECORD
from logtrace.stitch._parse import parse_line

PLAIN = (
    "%(asctime)s %(levelname)s %(name)s trace_id=%(trace_id)s "
    "span_id=%(span_id)s parent_span_id=%(parent_span_id)s %(message)s"
)


@pytest.fixture
def root() -> Iterator[logging.Logger]:
    """The root logger at INFO with no handlers; restored afterwards."""
    with preserved_logging():
        logger = logging.getLogger()
        logger.handlers[:] = []
        logger.setLevel(logging.INFO)
        yield logger


def _written(root: logging.Logger, formatter: logging.Formatter | None) -> str:
    """The line ``formatter`` writes for the record of one ``span("work")``."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(TraceContextFilter())
    if formatter is not None:
        handler.setFormatter(formatter)
    root.addHandler(handler)
    with span("work"):
        pass
    root.removeHandler(handler)
    (line,) = out.getvalue().splitlines()
    return line


def _fields(line: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in line.split() if "=" in pair)


def _iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class TestPlainFormats:
    def test_the_message_carries_the_timing(self, root: logging.Logger) -> None:
        line = _written(root, logging.Formatter(PLAIN))
        assert " internal work span.kind=internal span.start=" in line
        fields = _fields(line)
        assert float(fields["duration_ms"]) >= 0
        assert fields["host.name"]

    def test_the_stitcher_reads_it_as_a_span_record(self, root: logging.Logger) -> None:
        line = _written(root, logging.Formatter(PLAIN))
        trace, span_id, _, end, _, flags, _, start = parse_line(line.encode())
        assert flags & SPAN_RECORD
        assert trace and span_id
        assert start == pytest.approx(_iso(_fields(line)["span.start"]), abs=1e-6)
        assert end is not None and start is not None and end - start < 1.0

    def test_a_handler_without_a_formatter_writes_it_too(self, root: logging.Logger) -> None:
        line = _written(root, None)
        assert line.startswith("internal work span.kind=internal span.start=")

    def test_a_moved_record_time_moves_the_start(self, root: logging.Logger) -> None:
        """A filter that moves the record's time (a logging clock set apart)
        moves ``span.start`` as far, as in a JSON line: the start stays the
        record's time less the duration."""

        class Ahead(logging.Filter):
            def filter(self, record: logging.LogRecord) -> bool:
                record.created += 30.0
                record.msecs = (record.created % 1) * 1000
                return True

        out = io.StringIO()
        handler = logging.StreamHandler(out)
        handler.addFilter(Ahead())
        handler.setFormatter(logging.Formatter("%(created)f %(message)s"))
        root.addHandler(handler)
        with span("work"):
            pass
        created, rest = out.getvalue().split(" ", 1)
        fields = _fields(rest)
        start = _iso(fields["span.start"])
        assert start + float(fields["duration_ms"]) / 1e3 == pytest.approx(float(created), abs=2e-3)

    def test_server_records_carry_the_answer(self, root: logging.Logger) -> None:
        """The middleware's ``response_ms`` and ``headers_ms`` come along."""
        out = io.StringIO()
        handler = logging.StreamHandler(out)
        handler.setFormatter(logging.Formatter(PLAIN))
        handler.addFilter(TraceContextFilter())
        root.addHandler(handler)

        async def hello(scope: Any, receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"hi"})

        with serve(TraceMiddleware(hello)) as url:
            assert httpx.get(url + "/").text == "hi"
        (line,) = [x for x in out.getvalue().splitlines() if "logtrace.span" in x]
        fields = _fields(line)
        assert fields["span.kind"] == "server"
        assert 0 <= float(fields["headers_ms"]) <= float(fields["response_ms"])
        assert float(fields["response_ms"]) <= float(fields["duration_ms"])


class TestFormattersThatShowFields:
    def test_python_json_logger(self, root: logging.Logger) -> None:
        line = _written(root, JsonFormatter("%(levelname)s %(name)s %(message)s"))
        assert '"message": "internal work"' in line
        assert '"span.start": ' in line

    def test_logtraces_own_json(self, root: logging.Logger) -> None:
        line = _written(root, json_formatter("svc"))
        assert '"message": "internal work"' in line

    def test_structlog_with_extra_adder(self, root: logging.Logger) -> None:
        chain = [structlog.stdlib.add_logger_name, structlog.stdlib.ExtraAdder()]
        formatter = structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(),
            ],
            foreign_pre_chain=chain,
        )
        line = _written(root, formatter)
        assert '"event": "internal work"' in line
        assert '"duration_ms": ' in line

    def test_structlog_without_it_shows_them_in_the_event(self, root: logging.Logger) -> None:
        formatter = structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(),
            ],
            foreign_pre_chain=[structlog.stdlib.add_logger_name],
        )
        line = _written(root, formatter)
        assert '"event": "internal work span.kind=internal span.start=' in line


class Keep(logging.Handler):
    """Keeps the records it handles, writing nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class TestWhichHandlersCount:
    def test_a_handler_that_keeps_records_leaves_the_message_short(
        self, root: logging.Logger
    ) -> None:
        keep = Keep()
        root.addHandler(keep)
        with span("work"):
            pass
        assert [r.getMessage() for r in keep.records] == ["internal work"]

    def test_a_handler_above_the_records_level_does_not_count(self, root: logging.Logger) -> None:
        quiet = logging.StreamHandler(io.StringIO())
        quiet.setLevel(logging.WARNING)
        keep = Keep()
        root.addHandler(quiet)
        root.addHandler(keep)
        with span("work"):
            pass
        assert [r.getMessage() for r in keep.records] == ["internal work"]

    def test_one_plain_handler_beside_a_json_one_lengthens_both(self, root: logging.Logger) -> None:
        """The message is one for every handler: JSON lines then repeat the fields."""
        plain, structured = io.StringIO(), io.StringIO()
        for stream, formatter in (
            (plain, logging.Formatter("%(message)s")),
            (structured, json_formatter("svc")),
        ):
            handler = logging.StreamHandler(stream)
            handler.setFormatter(formatter)
            root.addHandler(handler)
        with span("work"):
            pass
        assert plain.getvalue().startswith("internal work span.kind=internal ")
        assert '"message": "internal work span.kind=internal ' in structured.getvalue()
        assert '"duration_ms": ' in structured.getvalue()
