"""Span records: the record written when a span ends, and its settings."""

from __future__ import annotations

import io
import json
import logging
import random
import re
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from _logutil import preserved_logging
from hypothesis import given
from hypothesis import strategies as st

from logtrace import TraceContext, configure_span_records, current, span
from logtrace._fields import iso_utc
from logtrace._records import emit_span
from logtrace.stdlib import TraceContextFilter, json_formatter

ISO_UTC_US = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
CTX = TraceContext(
    "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "b7ad6b7169203331", request_id="r-1"
)
START_NS = 1_700_000_000_123_456_789


@pytest.fixture
def lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Reads the JSON span records written so far, as ``configure_logging`` writes them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(TraceContextFilter())
    handler.setFormatter(json_formatter("svc"))
    logger = logging.getLogger("logtrace.span")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        with preserved_logging():
            yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


Lines = Callable[[], list[dict[str, Any]]]


class TestFormat:
    def test_server_span_record_has_every_fixed_field(self, lines: Lines) -> None:
        attributes = {
            "http.request.method": "GET",
            "url.path": "/users/42",
            "http.route": "/users/{id}",
            "http.response.status_code": 200,
            "server.address": "127.0.0.1",
            "server.port": 8000,
        }
        emit_span("server", "GET /users/{id}", CTX, START_NS, 12_345_678, attributes)
        (rec,) = lines()
        assert list(rec)[:5] == ["timestamp", "level", "service", "logger", "message"]
        assert rec["level"] == "INFO"
        assert rec["service"] == "svc"
        assert rec["logger"] == "logtrace.span"
        assert rec["message"] == "server GET /users/{id}"
        assert ISO_UTC_US.fullmatch(rec["timestamp"])
        assert rec["trace_id"] == CTX.trace_id
        assert rec["span_id"] == CTX.span_id
        assert rec["parent_span_id"] == CTX.parent_span_id
        assert rec["request_id"] == "r-1"
        assert rec["span.kind"] == "server"
        assert rec["span.name"] == "GET /users/{id}"
        assert rec["span.start"] == "2023-11-14T22:13:20.123456Z"
        assert rec["duration_ms"] == 12.346
        for key, value in attributes.items():
            assert rec[key] == value
        assert "error.type" not in rec
        assert "exception.type" not in rec
        assert "exc_info" not in rec

    def test_span_start_is_the_start_time_in_utc(self, lines: Lines) -> None:
        emit_span("internal", "x", CTX, 0, 0)
        emit_span("internal", "x", CTX, 86_399_999_999_999, 0)
        assert [r["span.start"] for r in lines()] == [
            "1970-01-01T00:00:00.000000Z",
            "1970-01-01T23:59:59.999999Z",
        ]

    def test_the_record_names_the_span_not_the_current_context(self, lines: Lines) -> None:
        with span("caller") as caller:
            emit_span("client", "GET", CTX, START_NS, 1)
            assert current() is caller
        rec, caller_rec = lines()
        assert caller_rec["span_id"] == caller.span_id
        assert (rec["trace_id"], rec["span_id"]) == (CTX.trace_id, CTX.span_id)

    def test_root_span_has_null_parent_and_no_request_id(self, lines: Lines) -> None:
        emit_span("server", "GET /", CTX._replace(parent_span_id=None, request_id=None), 0, 0)
        (rec,) = lines()
        assert rec["parent_span_id"] is None
        assert "request_id" not in rec

    def test_attribute_named_like_a_record_field_is_kept_under_a_prefix(self, lines: Lines) -> None:
        emit_span("internal", "load", CTX, 0, 0, {"args": 1, "module": "m", "user": 2})
        (rec,) = lines()
        assert rec["span.attributes.args"] == 1
        assert rec["span.attributes.module"] == "m"
        assert rec["user"] == 2

    @pytest.mark.parametrize(
        "key", ["service", "logger", "level", "timestamp", "trace_id", "span.kind", "duration_ms"]
    )
    def test_attribute_named_like_a_field_of_the_line_is_kept_under_a_prefix(
        self, lines: Lines, key: str
    ) -> None:
        """It would replace the line's own field (a record's ``logger`` written
        twice, its trace ID or duration changed)."""
        emit_span("internal", "load", CTX, 0, 1_000, {key: "mine"})
        (rec,) = lines()
        assert rec[f"span.attributes.{key}"] == "mine"
        assert rec[key] != "mine"

    def test_span_context_manager_writes_one_internal_record(self, lines: Lines) -> None:
        with span("load-user", user=42) as ctx:
            pass
        (rec,) = lines()
        assert rec["span.kind"] == "internal"
        assert rec["span_id"] == ctx.span_id
        assert rec["user"] == 42
        start = datetime.fromisoformat(rec["span.start"].replace("Z", "+00:00"))
        end = datetime.fromisoformat(rec["timestamp"].replace("Z", "+00:00"))
        assert start.tzinfo == timezone.utc
        assert 0 <= (end - start).total_seconds() < 5


class TestOutcome:
    def test_exception_gives_error_and_exception_type_without_a_traceback(
        self, lines: Lines
    ) -> None:
        with pytest.raises(KeyError), span("lookup"):
            raise KeyError("k")
        (rec,) = lines()
        assert rec["level"] == "INFO"
        assert rec["error.type"] == "KeyError"
        assert rec["exception.type"] == "KeyError"
        assert "exc_info" not in rec

    def test_exception_type_is_fully_qualified_outside_builtins(self, lines: Lines) -> None:
        emit_span("internal", "decode", CTX, 0, 0, error=json.JSONDecodeError("m", "d", 0))
        (rec,) = lines()
        assert rec["error.type"] == "JSONDecodeError"
        assert rec["exception.type"] == "json.decoder.JSONDecodeError"

    @pytest.mark.parametrize(
        ("kind", "status", "error_type"),
        [
            ("server", 200, None),
            ("server", 404, None),
            ("server", 500, "500"),
            ("server", 503, "503"),
            ("client", 404, "404"),
            ("client", 302, None),
        ],
    )
    def test_status_codes_that_fail_a_span(
        self, lines: Lines, kind: Any, status: int, error_type: str | None
    ) -> None:
        emit_span(kind, "GET", CTX, 0, 0, {"http.response.status_code": status})
        (rec,) = lines()
        assert rec.get("error.type") == error_type

    def test_given_error_type_is_kept(self, lines: Lines) -> None:
        emit_span("client", "GET", CTX, 0, 0, {"error.type": "timeout"})
        (rec,) = lines()
        assert rec["error.type"] == "timeout"


class TestSettings:
    def test_off(self, lines: Lines) -> None:
        configure_span_records(enabled=False)
        emit_span("server", "GET /", CTX, 0, 0)
        with pytest.raises(ValueError), span("x"):
            raise ValueError
        assert len(lines()) == 0
        configure_span_records(enabled=True)
        emit_span("server", "GET /", CTX, 0, 0)
        assert len(lines()) == 1

    def test_level_applies_to_failed_spans_too(self, lines: Lines) -> None:
        configure_span_records(level="debug")
        emit_span("server", "GET /", CTX, 0, 0, {"http.response.status_code": 500})
        emit_span("server", "GET /", CTX, 0, 0, error=RuntimeError())
        assert [r["level"] for r in lines()] == ["DEBUG", "DEBUG"]

    def test_level_below_the_loggers_level_is_not_written(self, lines: Lines) -> None:
        logging.getLogger("logtrace.span").setLevel(logging.INFO)
        configure_span_records(level=logging.DEBUG)
        emit_span("server", "GET /", CTX, 0, 0)
        assert len(lines()) == 0

    def test_unknown_level_is_refused(self) -> None:
        with pytest.raises(ValueError, match="level"):
            configure_span_records(level="LOUD")

    @pytest.mark.parametrize("rate", [-0.1, 1.5])
    def test_sample_rate_out_of_range_is_refused(self, rate: float) -> None:
        with pytest.raises(ValueError, match="success_sample_rate"):
            configure_span_records(success_sample_rate=rate)

    def test_zero_sample_rate_drops_successes_and_keeps_failures(self, lines: Lines) -> None:
        configure_span_records(success_sample_rate=0.0)
        emit_span("server", "GET /ok", CTX, 0, 0, {"http.response.status_code": 200})
        emit_span("server", "GET /bad", CTX, 0, 0, {"http.response.status_code": 500})
        emit_span("internal", "boom", CTX, 0, 0, error=OSError())
        assert [r["span.name"] for r in lines()] == ["GET /bad", "boom"]

    def test_sampling_keeps_about_the_rate_and_decides_by_trace(self, lines: Lines) -> None:
        configure_span_records(success_sample_rate=0.25)
        rng = random.Random(7)
        contexts = [TraceContext(f"{rng.getrandbits(128):032x}", "1" * 16) for _ in range(4000)]
        for ctx in contexts:
            emit_span("server", "GET /", ctx, 0, 0)
        kept = {r["trace_id"] for r in lines()}
        assert 800 < len(kept) < 1200
        # Every span of a kept trace is kept, in any service with the same rate.
        for ctx in contexts[:200]:
            emit_span("client", "GET", ctx, 0, 0)
        kept_clients = {r["trace_id"] for r in lines() if r["span.kind"] == "client"}
        assert kept_clients == {c.trace_id for c in contexts[:200]} & kept

    def test_field_names(self, lines: Lines) -> None:
        configure_span_records(field_names="ecs")
        emit_span("server", "GET /", CTX, 0, 0)
        (rec,) = lines()
        assert rec["trace.id"] == CTX.trace_id
        assert rec["span.id"] == CTX.span_id
        assert rec["parent.id"] == CTX.parent_span_id
        assert rec["http.request.id"] == "r-1"


def _iso_ns(text: str) -> int:
    at = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return (at - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(microseconds=1) * 1000


class TestClock:
    """Start and end of a span record stay on the clock of the service's lines."""

    def _emit_now(self) -> None:
        with span("work"):
            pass

    def _end_minus_start_ms(self, rec: dict[str, Any]) -> float:
        return (_iso_ns(rec["timestamp"]) - _iso_ns(rec["span.start"])) / 1e6

    @pytest.mark.parametrize("shift", [-0.03, 0.05])
    @pytest.mark.parametrize("where", ["record factory", "handler filter"])
    def test_moving_created_moves_the_start_too(
        self, lines: Lines, where: str, shift: float
    ) -> None:
        make = logging.getLogRecordFactory()
        handler = logging.getLogger("logtrace.span").handlers[-1]

        def later(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = make(*args, **kwargs)
            record.created += shift
            return record

        def moved(record: logging.LogRecord) -> bool:
            record.created += shift
            return True

        if where == "record factory":
            logging.setLogRecordFactory(later)
        else:
            handler.addFilter(moved)
        try:
            self._emit_now()
        finally:
            logging.setLogRecordFactory(make)
            handler.removeFilter(moved)
        (rec,) = lines()
        assert 0 <= self._end_minus_start_ms(rec) - rec["duration_ms"] < 1.0

    def test_an_unmoved_record_keeps_its_start(self, lines: Lines) -> None:
        emit_span("server", "GET /", CTX, START_NS, 2_000_000)
        (rec,) = lines()
        assert rec["span.start"] == iso_utc(START_NS)

    def test_a_moved_process_clock_moves_start_and_end_alike(
        self, lines: Lines, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Only the function ``logging`` reads is moved, after logtrace was imported."""
        import sys
        import time

        before = time.time_ns()
        if sys.version_info >= (3, 13):
            real_ns = time.time_ns
            monkeypatch.setattr(time, "time_ns", lambda: real_ns() + 40_000_000)
        else:
            real = time.time
            monkeypatch.setattr(time, "time", lambda: real() + 0.04)
        self._emit_now()
        (rec,) = lines()
        assert _iso_ns(rec["span.start"]) - before > 30_000_000
        assert 0 <= self._end_minus_start_ms(rec) - rec["duration_ms"] < 1.0

    def test_a_pause_while_the_clocks_are_read_moves_no_time(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A garbage collection or a thread switch between reading the wall
        clock and the performance counter would move every time a span
        states (a server's answer came out 0.23 ms after its caller heard
        it, on one clock): the pair is read again."""
        import sys
        import time

        from logtrace._wallclock import clock_pair

        def offset(wall: int, perf: int) -> int:
            return wall - perf

        calm = offset(*clock_pair())
        paused = []
        name = "time_ns" if sys.version_info >= (3, 13) else "time"
        real = getattr(time, name)

        def slow() -> Any:
            now = real()
            if not paused:  # the first reading only
                paused.append(now)
                time.sleep(0.002)
            return now

        monkeypatch.setattr(time, name, slow)
        wall, perf = clock_pair()
        assert paused
        assert abs(offset(wall, perf) - calm) < 200_000


class TestIsoUtc:
    @given(st.integers(min_value=0, max_value=253_402_300_799_999_999_999))
    def test_round_trips_to_the_microsecond(self, ns: int) -> None:
        text = iso_utc(ns)
        assert ISO_UTC_US.fullmatch(text)
        parsed = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
        expected = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=ns // 1000)
        assert parsed == expected

    def test_same_second_uses_the_cached_prefix_correctly(self) -> None:
        base = 1_700_000_000 * 10**9
        assert iso_utc(base + 1_000) == "2023-11-14T22:13:20.000001Z"
        assert iso_utc(base + 999_999_999) == "2023-11-14T22:13:20.999999Z"
        assert iso_utc(base + 10**9) == "2023-11-14T22:13:21.000000Z"
        assert iso_utc(base) == "2023-11-14T22:13:20.000000Z"
