"""``configure_logging``: structlog and stdlib logging in one JSON pipeline."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from _logutil import preserved_logging

from logtrace import configure_logging, span

ISO_UTC_US = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    with preserved_logging():
        yield


def parse(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


class TestJson:
    def test_structlog_and_stdlib_lines_share_one_format(self) -> None:
        stream = io.StringIO()
        configure_logging("orders", stream=stream)
        with span("work") as ctx:
            structlog.get_logger("app").info("from structlog", user_id=42)
            logging.getLogger("some.library").warning("from %s", "stdlib", extra={"n": 1})
        from_structlog, from_stdlib, span_record = parse(stream.getvalue())
        for line in (from_structlog, from_stdlib, span_record):
            assert list(line)[:5] == ["timestamp", "level", "service", "logger", "message"]
            assert ISO_UTC_US.fullmatch(line["timestamp"])
            assert line["service"] == "orders"
            assert line["trace_id"] == ctx.trace_id
            assert line["span_id"] == ctx.span_id
        assert from_structlog["message"] == "from structlog"
        assert from_structlog["logger"] == "app"
        assert from_structlog["level"] == "INFO"
        assert from_structlog["user_id"] == 42
        assert from_stdlib["message"] == "from stdlib"
        assert from_stdlib["logger"] == "some.library"
        assert from_stdlib["n"] == 1
        assert span_record["logger"] == "logtrace.span"

    def test_lines_outside_a_request_have_no_ids(self) -> None:
        stream = io.StringIO()
        configure_logging("orders", stream=stream)
        logging.getLogger("x").info("startup")
        structlog.get_logger().info("startup")
        for line in parse(stream.getvalue()):
            assert "trace_id" not in line
            assert "span_id" not in line
            assert "parent_span_id" not in line

    def test_timestamp_is_the_records_creation_time_in_utc(self) -> None:
        stream = io.StringIO()
        configure_logging("orders", stream=stream)
        logger = logging.getLogger("x")
        record = logger.makeRecord("x", logging.INFO, __file__, 1, "fixed", None, None)
        record.created = 1_700_000_000.5
        logger.handle(record)
        (line,) = parse(stream.getvalue())
        assert line["timestamp"] == "2023-11-14T22:13:20.500000Z"

    def test_exception_is_one_line_with_traceback_and_ids(self) -> None:
        stream = io.StringIO()
        configure_logging("orders", stream=stream)
        log = structlog.get_logger("app")
        with span("work") as ctx:
            try:
                {}["missing"]
            except KeyError:
                log.exception("lookup failed")
        lines = parse(stream.getvalue())
        error = lines[0]
        assert error["level"] == "ERROR"
        assert error["trace_id"] == ctx.trace_id
        assert "Traceback (most recent call last)" in error["exc_info"]
        assert "KeyError: 'missing'" in error["exc_info"]
        assert sum("exc_info" in line for line in lines) == 1

    def test_structlog_keys_clashing_with_record_fields_are_kept(self) -> None:
        stream = io.StringIO()
        configure_logging("orders", stream=stream)
        structlog.get_logger("app").info("hello", name="bob", args=[1], module="m")
        (line,) = parse(stream.getvalue())
        assert (line["name_"], line["args_"], line["module_"]) == ("bob", [1], "m")

    def test_bound_ids_win_over_the_context(self) -> None:
        stream = io.StringIO()
        configure_logging("orders", stream=stream)
        with span("work"):
            structlog.get_logger("app").bind(trace_id="mine").info("x")
            logging.getLogger("y").info("y", extra={"span_id": "theirs"})
        structlog_line, stdlib_line, _ = parse(stream.getvalue())
        assert structlog_line["trace_id"] == "mine"
        assert stdlib_line["span_id"] == "theirs"

    def test_structlog_contextvars_are_merged(self) -> None:
        stream = io.StringIO()
        configure_logging("orders", stream=stream)
        structlog.contextvars.bind_contextvars(tenant="acme")
        try:
            structlog.get_logger("app").info("x")
        finally:
            structlog.contextvars.clear_contextvars()
        assert parse(stream.getvalue())[0]["tenant"] == "acme"

    def test_level(self) -> None:
        stream = io.StringIO()
        configure_logging("orders", stream=stream, level="WARNING")
        logging.getLogger("x").info("hidden")
        structlog.get_logger("y").info("hidden")
        structlog.get_logger("y").warning("shown")
        assert [line["message"] for line in parse(stream.getvalue())] == ["shown"]

    def test_ecs_field_names_everywhere(self) -> None:
        stream = io.StringIO()
        configure_logging("orders", stream=stream, field_names="ecs")
        with span("work") as ctx:
            structlog.get_logger("app").info("a")
            logging.getLogger("b").info("b")
        for line in parse(stream.getvalue()):
            assert line["trace.id"] == ctx.trace_id
            assert line["span.id"] == ctx.span_id
            assert "trace_id" not in line

    def test_writes_to_a_file(self, tmp_path: Path) -> None:
        path = tmp_path / "orders.jsonl"
        configure_logging("orders", filename=path)
        logging.getLogger("x").info("to a file")
        logging.getLogger().handlers[0].flush()
        assert parse(path.read_text())[0]["message"] == "to a file"

    def test_trailing_newline_of_a_message_is_dropped(self) -> None:
        stream = io.StringIO()
        configure_logging("orders", stream=stream)
        logging.getLogger("uvicorn.error").error("Exception in ASGI application\n")
        assert parse(stream.getvalue())[0]["message"] == "Exception in ASGI application"

    def test_non_ascii_stays_readable(self) -> None:
        stream = io.StringIO()
        configure_logging("orders", stream=stream)
        logging.getLogger("x").info("café ✓")
        assert "café ✓" in stream.getvalue()


class TestPipeline:
    def test_replaces_root_handlers_and_calling_twice_keeps_one(self) -> None:
        root = logging.getLogger()
        before = root.handlers[:]
        first = configure_logging("a", stream=io.StringIO())
        second = configure_logging("b", stream=io.StringIO())
        assert second in root.handlers
        assert first not in root.handlers
        assert not any(h in root.handlers for h in before)

    @pytest.mark.parametrize(
        "name", ["uvicorn", "uvicorn.error", "uvicorn.access", "gunicorn.error", "gunicorn.access"]
    )
    def test_server_loggers_propagate_to_the_one_handler(self, name: str) -> None:
        logger = logging.getLogger(name)
        logger.addHandler(logging.StreamHandler(io.StringIO()))
        logger.propagate = False
        stream = io.StringIO()
        configure_logging("orders", stream=stream)
        assert logger.handlers == []
        assert logger.propagate is True
        with span("request") as ctx:
            logger.info('127.0.0.1:5000 - "GET / HTTP/1.1" 200', extra={"color_message": "x"})
        (line,) = parse(stream.getvalue())[:1]
        assert line["logger"] == name
        assert line["trace_id"] == ctx.trace_id
        assert "color_message" not in line

    def test_span_record_options(self) -> None:
        stream = io.StringIO()
        configure_logging("orders", stream=stream, span_records=False)
        with span("quiet"):
            pass
        assert stream.getvalue() == ""
        configure_logging("orders", stream=stream, span_level="WARNING")
        with span("loud"):
            pass
        assert parse(stream.getvalue())[0]["level"] == "WARNING"

    def test_existing_dictconfig_with_the_filter_and_formatter(self) -> None:
        stream = io.StringIO()
        logging.config.dictConfig(
            {
                "version": 1,
                "disable_existing_loggers": False,
                "filters": {"trace": {"()": "logtrace.stdlib.TraceContextFilter"}},
                "formatters": {"json": {"()": "logtrace.stdlib.json_formatter", "service": "inv"}},
                "handlers": {
                    "out": {
                        "class": "logging.StreamHandler",
                        "stream": stream,
                        "filters": ["trace"],
                        "formatter": "json",
                    }
                },
                "root": {"handlers": ["out"], "level": "INFO"},
            }
        )
        with span("work") as ctx:
            logging.getLogger("x").info("configured elsewhere")
        line = parse(stream.getvalue())[0]
        assert line["service"] == "inv"
        assert line["trace_id"] == ctx.trace_id


class TestConsole:
    def test_readable_line_with_ids_and_extras(self) -> None:
        stream = io.StringIO()
        configure_logging("orders", stream=stream, json=False)
        with span("work") as ctx:
            structlog.get_logger("app").info("hello", user_id=42)
        first = stream.getvalue().splitlines()[0]
        assert re.fullmatch(
            rf"{ISO_UTC_US.pattern} INFO +orders app: hello "
            rf"trace_id={ctx.trace_id} span_id={ctx.span_id} user_id=42",
            first,
        ), first

    def test_stitch_joins_the_readable_lines(self, tmp_path: Path) -> None:
        """The readable line names its IDs as the stitcher reads them: the
        lines join their trace, the inner span hangs under the outer one."""
        from logtrace.stitch import Options, stitch

        path = tmp_path / "orders.log"
        handler = configure_logging("orders", filename=path, json=False)
        with span("work") as outer:
            logging.getLogger("orders.app").info("outside the step")
            with span("step") as inner:
                logging.getLogger("orders.app").info("inside the step")
        handler.close()
        out = io.BytesIO()
        summary = stitch([str(path)], out, Options(format="jsonl"))
        rows = [json.loads(line) for line in out.getvalue().splitlines()]
        assert summary.traces == 1
        assert {r["trace_id"] for r in rows} == {outer.trace_id}
        said = {r["record"]["message"].split(": ", 1)[1].split(" trace_id=")[0]: r for r in rows}
        assert said["inside the step"]["span_id"] == inner.span_id
        assert said["inside the step"]["parent_span_id"] == outer.span_id
        assert said["inside the step"]["depth"] == 1 and said["outside the step"]["depth"] == 0

    def test_traceback_follows_the_line(self) -> None:
        stream = io.StringIO()
        configure_logging("orders", stream=stream, json=False)
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logging.getLogger("x").exception("failed")
        text = stream.getvalue()
        assert "failed" in text.splitlines()[0]
        assert "RuntimeError: boom" in text


class TestWithoutOptionalPackages:
    def run(self, code: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
        )

    def test_without_structlog_stdlib_logging_still_works(self) -> None:
        out = self.run(
            "import sys; sys.modules['structlog'] = None\n"
            "import logging, logtrace\n"
            "logtrace.configure_logging('svc')\n"
            "with logtrace.span('work'):\n"
            "    logging.getLogger('x').info('hello')\n"
        )
        assert out.returncode == 0, out.stderr
        line = json.loads(out.stderr.splitlines()[0])
        assert line["message"] == "hello"
        assert len(line["trace_id"]) == 32

    def test_json_without_python_json_logger_says_what_to_install(self) -> None:
        out = self.run(
            "import sys; sys.modules['pythonjsonlogger'] = None\n"
            "import logtrace\n"
            "logtrace.configure_logging('svc')\n"
        )
        assert out.returncode != 0
        assert "pip install 'pylogtrace[json]'" in out.stderr

    def test_console_output_needs_neither(self) -> None:
        out = self.run(
            "import sys; sys.modules['pythonjsonlogger'] = None; sys.modules['structlog'] = None\n"
            "import logging, logtrace\n"
            "logtrace.configure_logging('svc', json=False)\n"
            "logging.getLogger('x').warning('plain')\n"
        )
        assert out.returncode == 0, out.stderr
        assert "WARNING  svc x: plain" in out.stderr


class TestStructlogProcessorFormatter:
    def test_add_trace_context_in_the_foreign_pre_chain_stamps_stdlib_records(self) -> None:
        from logtrace import add_trace_context

        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                foreign_pre_chain=[add_trace_context],
                processors=[
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.JSONRenderer(),
                ],
            )
        )
        logger = logging.getLogger("test.processor_formatter")
        logger.addHandler(handler)
        logger.propagate = False
        try:
            with span("work") as ctx:
                logger.warning("from stdlib")
        finally:
            logger.removeHandler(handler)
        line = json.loads(stream.getvalue())
        assert line["trace_id"] == ctx.trace_id
        assert line["span_id"] == ctx.span_id


def test_importing_the_setup_module_loads_neither_structlog_nor_json_logger() -> None:
    code = (
        "import sys, logtrace._setup; "
        "print(any(m in sys.modules for m in ('structlog', 'pythonjsonlogger')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
