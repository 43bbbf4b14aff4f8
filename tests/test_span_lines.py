"""Span records written straight to the handler ``configure_logging`` installs.

When that handler is the only one a span record reaches, the record's line is
built and written without a ``LogRecord``; it must be the line ``logging``
would have written, and every other setup must still get a real record.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from _logutil import preserved_logging
from hypothesis import given
from hypothesis import strategies as st

from logtrace import TraceContext, configure_logging, configure_span_records
from logtrace._records import emit_span, line_handler, settings
from logtrace.stdlib import TraceContextFilter, json_formatter

CTX = TraceContext(
    "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "b7ad6b7169203331", request_id="r-1"
)


class _GenericHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A subclass: span records reach it as ``LogRecord`` objects, through ``format``."""


@contextmanager
def span_handler(handler: logging.Handler) -> Iterator[logging.Handler]:
    """``handler`` as the only handler span records reach, set up as configure_logging does."""
    handler.addFilter(TraceContextFilter())
    handler.setFormatter(json_formatter("svc"))
    logger = logging.getLogger("logtrace.span")
    saved = logger.handlers[:], logger.propagate, logger.level
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    try:
        with preserved_logging():
            yield handler
    finally:
        logger.handlers[:], logger.propagate = saved[0], saved[1]
        logger.setLevel(saved[2])


def written(handler_class: type[logging.StreamHandler], emit: Callable[[], None]) -> str:  # type: ignore[type-arg]
    stream = io.StringIO()
    with span_handler(handler_class(stream)):
        emit()
    return stream.getvalue()


def without_timestamp(text: str) -> list[str]:
    """The lines, less their ``timestamp`` (the time each was written). JSON keeps
    U+0085 and U+2028 as they are: only ``\\n`` ends a line."""
    assert text.endswith("\n")
    lines = text[:-1].split("\n")
    for line in lines:
        assert line.startswith('{"timestamp": "')
    return [line[line.index('", "level": ') :] for line in lines]


class _Opaque:
    def __str__(self) -> str:
        return "opaque \u00e9"


VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
    st.just(datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),
    st.just(_Opaque()),
)
KEYS = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["_private", "name", "msg", "message", "taskName", "color_message", "span_id"]),
)


class TestSameLine:
    @given(
        kind=st.sampled_from(["server", "client", "internal", "producer", "consumer"]),
        name=st.text(),
        attributes=st.dictionaries(KEYS, VALUES, max_size=6),
        request_id=st.one_of(st.none(), st.text(max_size=8)),
        parent=st.one_of(st.none(), st.just("b7ad6b7169203331")),
        error=st.sampled_from([None, ValueError("x"), KeyError("k")]),
        level=st.sampled_from([logging.DEBUG, logging.INFO, logging.WARNING, 25]),
    )
    def test_direct_line_is_the_line_logging_writes(
        self,
        kind: Any,
        name: str,
        attributes: dict[str, object],
        request_id: str | None,
        parent: str | None,
        error: BaseException | None,
        level: int,
    ) -> None:
        ctx = CTX._replace(request_id=request_id, parent_span_id=parent)
        configure_span_records(level=level)
        try:

            def emit() -> None:
                emit_span(kind, name, ctx, 1_700_000_000_123_456_789, 12_345, attributes, error)

            direct = written(logging.StreamHandler, emit)
            generic = written(_GenericHandler, emit)
        finally:
            configure_span_records(level=logging.INFO)
        assert without_timestamp(direct) == without_timestamp(generic)
        assert direct.count("\n") == 1

    def test_configure_logging_installs_a_handler_that_takes_the_direct_path(self) -> None:
        stream = io.StringIO()
        with preserved_logging():
            handler = configure_logging("svc", stream=stream)
            assert line_handler(logging.INFO, settings.names) is handler
            fields = {"trace_id": CTX.trace_id, "span_id": CTX.span_id, "span.kind": "server"}
            line = handler.formatter.span_line(  # type: ignore[union-attr]
                0, logging.INFO, "logtrace.span", "server GET /", fields, settings.names
            )
            assert line.startswith('{"timestamp": "1970-01-01T00:00:00.000000Z", "level": "INFO"')
            emit_span("server", "GET /", CTX, 0, 1_000)
        (rec,) = [json.loads(line) for line in stream.getvalue().splitlines()]
        assert rec["service"] == "svc"
        assert rec["span_id"] == CTX.span_id
        assert rec["request_id"] == "r-1"

    def test_ecs_field_names_take_the_direct_path_too(self) -> None:
        stream = io.StringIO()
        with preserved_logging():
            handler = configure_logging("svc", stream=stream, field_names="ecs")
            assert line_handler(logging.INFO, settings.names) is handler
            emit_span("server", "GET /", CTX, 0, 1_000)
        (rec,) = [json.loads(line) for line in stream.getvalue().splitlines()]
        assert (rec["trace.id"], rec["span.id"], rec["parent.id"]) == CTX[:3]


class TestOtherSetupsGetARecord:
    def test_a_second_handler_gets_the_record(self) -> None:
        first, second = io.StringIO(), io.StringIO()
        with span_handler(logging.StreamHandler(first)) as handler:
            logging.getLogger("logtrace").addHandler(extra := logging.StreamHandler(second))
            logging.getLogger("logtrace.span").propagate = True
            try:
                assert line_handler(logging.INFO, settings.names) is None
                emit_span("internal", "both", CTX, 0, 0)
            finally:
                logging.getLogger("logtrace").removeHandler(extra)
            assert handler.formatter is not None
        assert json.loads(first.getvalue())["span.name"] == "both"
        # a handler without a formatter writes the message alone: the timing is in it
        assert second.getvalue().startswith("internal both span.kind=internal span.start=")
        assert second.getvalue().endswith(" duration_ms=0.0 host.name=" + settings.host + "\n")

    def test_a_filter_of_the_users_sees_every_span_record(self) -> None:
        stream = io.StringIO()

        def tag(record: logging.LogRecord) -> bool:
            record.tagged = True
            return True

        with span_handler(logging.StreamHandler(stream)) as handler:
            handler.addFilter(tag)
            assert line_handler(logging.INFO, settings.names) is None
            emit_span("internal", "tagged", CTX, 0, 0)
        assert json.loads(stream.getvalue())["tagged"] is True

    def test_a_filter_with_other_field_names_adds_its_fields(self) -> None:
        stream = io.StringIO()
        with span_handler(logging.StreamHandler(stream)) as handler:
            handler.addFilter(TraceContextFilter(field_names="ecs"))
            assert line_handler(logging.INFO, settings.names) is None
            emit_span("internal", "x", CTX, 0, 0)
        assert json.loads(stream.getvalue())["trace.id"] == CTX.trace_id

    def test_a_record_factory_of_the_users_makes_every_span_record(self) -> None:
        stream = io.StringIO()
        made: list[str] = []
        default = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = default(*args, **kwargs)
            made.append(record.getMessage())
            return record

        logging.setLogRecordFactory(factory)
        try:
            with span_handler(logging.StreamHandler(stream)):
                emit_span("internal", "made", CTX, 0, 0)
        finally:
            logging.setLogRecordFactory(default)
        assert made == ["internal made"]
        assert json.loads(stream.getvalue())["span.name"] == "made"

    def test_a_handler_level_above_the_records_writes_nothing(self) -> None:
        stream = io.StringIO()
        with span_handler(logging.StreamHandler(stream)) as handler:
            handler.setLevel(logging.WARNING)
            emit_span("internal", "quiet", CTX, 0, 0)
        assert stream.getvalue() == ""


class TestWriting:
    def test_a_delayed_file_handler_opens_its_file_and_keeps_every_line(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "spans.log"
        with span_handler(logging.FileHandler(path, delay=True)) as handler:
            for n in range(3):
                emit_span("internal", f"s{n}", CTX, 0, 0)
            handler.close()
        names = [json.loads(line)["span.name"] for line in path.read_text().splitlines()]
        assert names == ["s0", "s1", "s2"]

    def test_a_stream_that_fails_is_reported_like_logging_does_and_never_raises(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        stream = io.StringIO()
        stream.close()
        with span_handler(logging.StreamHandler(stream)):
            assert line_handler(logging.INFO, settings.names) is not None
            emit_span("internal", "lost", CTX, 0, 0)
        err = capsys.readouterr().err
        assert "--- Logging error ---" in err
        assert "Arguments: ('internal', 'lost')" in err

    def test_a_value_json_refuses_is_reported_like_logging_does_and_never_raises(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        loop: list[object] = []
        loop.append(loop)
        stream = io.StringIO()
        with span_handler(logging.StreamHandler(stream)):
            emit_span("internal", "loop", CTX, 0, 0, {"loop": loop})
            emit_span("internal", "after", CTX, 0, 0)
        assert "--- Logging error ---" in capsys.readouterr().err
        assert [json.loads(line)["span.name"] for line in stream.getvalue().splitlines()] == [
            "after"
        ]
