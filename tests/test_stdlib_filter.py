"""``TraceContextFilter``: trace IDs on standard library log records."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator

import pytest
from pythonjsonlogger.json import JsonFormatter

from logtrace import TraceContext, span
from logtrace._context import CURRENT
from logtrace.stdlib import TraceContextFilter

CTX = TraceContext(
    "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "b7ad6b7169203331", request_id="r-7"
)


@pytest.fixture
def logger() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger with a filtered handler writing ``%``-format lines to a buffer."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(TraceContextFilter())
    fmt = "%(trace_id)s %(span_id)s %(parent_span_id)s %(message)s"
    handler.setFormatter(logging.Formatter(fmt))
    log = logging.getLogger("test.stdlib_filter")
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    log.propagate = False
    yield log, stream
    log.removeHandler(handler)


def record(**extra: object) -> logging.LogRecord:
    return logging.makeLogRecord({"name": "x", "msg": "msg", **extra})


class TestFilter:
    def test_sets_the_ids_of_the_current_context(self) -> None:
        rec = record()
        token = CURRENT.set(CTX)
        try:
            assert TraceContextFilter().filter(rec) is True
        finally:
            CURRENT.reset(token)
        assert rec.__dict__["trace_id"] == CTX.trace_id
        assert rec.__dict__["span_id"] == CTX.span_id
        assert rec.__dict__["parent_span_id"] == CTX.parent_span_id
        assert rec.__dict__["request_id"] == "r-7"

    def test_outside_any_context_sets_none_so_format_strings_still_work(self) -> None:
        rec = record()
        assert TraceContextFilter().filter(rec) is True
        assert rec.__dict__["trace_id"] is None
        assert rec.__dict__["span_id"] is None
        assert rec.__dict__["parent_span_id"] is None
        assert "request_id" not in rec.__dict__

    def test_values_passed_as_extra_win(self) -> None:
        rec = record(trace_id="mine", request_id="theirs")
        token = CURRENT.set(CTX)
        try:
            TraceContextFilter().filter(rec)
        finally:
            CURRENT.reset(token)
        assert rec.__dict__["trace_id"] == "mine"
        assert rec.__dict__["request_id"] == "theirs"
        assert rec.__dict__["span_id"] == CTX.span_id

    def test_ecs_field_names(self) -> None:
        rec = record()
        token = CURRENT.set(CTX)
        try:
            TraceContextFilter(field_names="ecs").filter(rec)
        finally:
            CURRENT.reset(token)
        assert rec.__dict__["trace.id"] == CTX.trace_id
        assert rec.__dict__["span.id"] == CTX.span_id
        assert rec.__dict__["parent.id"] == CTX.parent_span_id
        assert rec.__dict__["http.request.id"] == "r-7"
        assert "trace_id" not in rec.__dict__

    def test_never_drops_a_record_whatever_its_logger(self) -> None:
        for name in ("", "a", "uvicorn.access", "logtrace.span"):
            assert TraceContextFilter().filter(logging.makeLogRecord({"name": name}))


class TestOnAHandler:
    def test_format_string_lines_carry_the_ids(
        self, logger: tuple[logging.Logger, io.StringIO]
    ) -> None:
        log, stream = logger
        log.info("before")
        with span("work") as ctx:
            log.info("inside")
        before, inside = stream.getvalue().splitlines()
        assert before == "None None None before"
        assert inside == f"{ctx.trace_id} {ctx.span_id} None inside"

    def test_records_from_child_loggers_are_stamped(
        self, logger: tuple[logging.Logger, io.StringIO]
    ) -> None:
        _, stream = logger
        with span("work") as ctx:
            logging.getLogger("test.stdlib_filter.child.deeper").warning("from a library")
        assert stream.getvalue().startswith(ctx.trace_id)

    def test_python_json_logger_emits_the_ids_as_fields(self) -> None:
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.addFilter(TraceContextFilter())
        handler.setFormatter(JsonFormatter("%(levelname)s %(message)s"))
        log = logging.getLogger("test.stdlib_filter.json")
        log.addHandler(handler)
        log.propagate = False
        try:
            with span("work") as ctx:
                log.warning("hello", extra={"user": 7})
        finally:
            log.removeHandler(handler)
        line = json.loads(stream.getvalue())
        assert line["trace_id"] == ctx.trace_id
        assert line["span_id"] == ctx.span_id
        assert line["user"] == 7

    def test_threads_see_their_own_context(
        self, logger: tuple[logging.Logger, io.StringIO]
    ) -> None:
        log, stream = logger
        seen: dict[str, str] = {}
        barrier = threading.Barrier(8)

        def work(i: int) -> None:
            with span(f"t{i}") as ctx:
                barrier.wait()
                log.info("thread-%d", i)
                seen[f"thread-{i}"] = ctx.trace_id

        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        lines = stream.getvalue().splitlines()
        assert len(lines) == 8
        for line in lines:
            trace_id, _, _, message = line.split(" ")
            assert seen[message] == trace_id


def test_on_a_queue_handler_the_ids_travel_to_the_listener_thread() -> None:
    import queue
    from logging.handlers import QueueHandler, QueueListener

    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    stream = io.StringIO()
    target = logging.StreamHandler(stream)
    target.setFormatter(logging.Formatter("%(trace_id)s %(span_id)s %(message)s"))
    listener = QueueListener(records, target)
    handler = QueueHandler(records)
    handler.addFilter(TraceContextFilter())
    log = logging.getLogger("test.stdlib_filter.queue")
    log.addHandler(handler)
    log.propagate = False
    listener.start()
    try:
        with span("work") as ctx:
            log.warning("queued")
    finally:
        listener.stop()
        log.removeHandler(handler)
    assert stream.getvalue() == f"{ctx.trace_id} {ctx.span_id} queued\n"
