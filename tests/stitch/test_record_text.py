"""Text lines shown as JSON lines are: the level in its column, the message
without the time and the IDs the stitcher read from it.

Real ``logging`` writes real files in the formats services use (a format
string with logtrace's filter, ``configure_logging(json=False)``, uvicorn's
and gunicorn's formats), then they are stitched. Only the text output and the
HTML report change: the ``record`` of ``--format jsonl`` is the line as
written, and a line without a trace (no time column) is shown as written.
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import pytest
import uvicorn.logging
from _logutil import preserved_logging
from _stitchutil import run, stitch_jsonl
from gunicorn.glogging import Logger as GunicornLogger
from hypothesis import given
from hypothesis import strategies as st

from logtrace import TraceContextFilter, configure_logging, span
from logtrace.stitch._model import JSON, LOGFMT
from logtrace.stitch._record_text import record_parts, text_parts

FORMAT = (
    "%(asctime)s %(levelname)s %(name)s trace_id=%(trace_id)s span_id=%(span_id)s "
    "parent_span_id=%(parent_span_id)s %(message)s"
)
IDS = " trace_id=%(trace_id)s span_id=%(span_id)s parent_span_id=%(parent_span_id)s"
FORMATTERS = {
    "leaf": logging.Formatter(FORMAT),  # logging's default asctime
    "cookbook": logging.Formatter("%(asctime)s - %(name)s - %(levelname)s - %(message)s" + IDS),
    "uvicorn": uvicorn.logging.DefaultFormatter("%(levelprefix)s %(message)s" + IDS),
    "gunicorn": logging.Formatter(GunicornLogger.error_fmt + IDS, GunicornLogger.datefmt),
}
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


def _serve(log: logging.Logger) -> None:
    """What a service logs: a line outside a request, then a request that fails."""
    log.info("Started server process")
    with span("GET /leaf"):
        log.info("leaf handling 6")
        log.warning("leaf slow on %d", 6)
        try:
            _ = 6 / 0
        except ZeroDivisionError:
            log.exception("leaf failed on 6")
        log.critical("leaf gave up")


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One file per format, written by real logging handlers."""
    folder = tmp_path_factory.mktemp("text-formats")
    with preserved_logging():
        root = logging.getLogger()
        root.handlers = []
        for name, formatter in FORMATTERS.items():
            handler = logging.FileHandler(folder / f"{name}.log", encoding="utf-8")
            handler.addFilter(TraceContextFilter())
            handler.setFormatter(formatter)
            root.addHandler(handler)
        root.setLevel(logging.INFO)
        _serve(logging.getLogger("leaf.app"))
        for handler in root.handlers[:]:
            root.removeHandler(handler)
            handler.close()
        configure_logging("demo", json=False, filename=folder / "readable.log")
        with span("GET /demo"):
            logging.getLogger("demo.app").info("inside", extra={"item_id": 42})
        logging.getLogger("demo.app").info("outside")
    return folder


def _text(path: Path, *argv: str) -> str:
    out = path.parent / f"{path.name}.{len(argv)}.txt"
    code, err = run("stitch", "-q", "-o", str(out), *argv, str(path))
    assert code == 0, err
    return out.read_text()


def _rows(text: str) -> list[str]:
    """The traces' rows, each as its words after the time column (spaces squeezed)."""
    rows = []
    for line in text.split("lines without a trace", 1)[0].splitlines():
        words = line.split()
        if not words or words[0] == "trace" or words[0] == "|":
            continue
        rows.append(" ".join(words[1:] if re.fullmatch(r"[-+][\d.]+ms", words[0]) else words))
    return rows


def _untraced(text: str) -> list[str]:
    return text.split("lines without a trace\n", 1)[1].splitlines()


def _html(path: Path) -> str:
    out = path.parent / f"{path.name}.html"
    code, err = run("stitch", "-q", "--format", "html", "-o", str(out), str(path))
    assert code == 0, err
    return out.read_text()


class TestFormatStrings:
    def test_logging_default_asctime_shows_level_logger_and_message(self, logs: Path) -> None:
        rows = _rows(_text(logs / "leaf.log"))
        assert rows[:4] == [
            "leaf INFO leaf.app leaf handling 6",
            "leaf WARN leaf.app leaf slow on 6",
            "leaf ERROR leaf.app leaf failed on 6",
            "leaf CRIT leaf.app leaf gave up",
        ]
        # the span record, its timing in its message (the format shows no fields)
        assert rows[4].startswith("leaf INFO logtrace.span internal GET /leaf span.kind=internal ")
        assert " duration_ms=" in rows[4] and len(rows) == 5

    def test_dashed_format_keeps_its_logger(self, logs: Path) -> None:
        rows = _rows(_text(logs / "cookbook.log"))
        assert rows[:2] == [
            "cookbook INFO leaf.app - leaf handling 6",
            "cookbook WARN leaf.app - leaf slow on 6",
        ]

    def test_uvicorn_level_prefix(self, logs: Path) -> None:
        assert _rows(_text(logs / "uvicorn.log"))[:3] == [
            "uvicorn INFO leaf handling 6",  # no time: the column is blank
            "uvicorn WARN leaf slow on 6",
            "uvicorn ERROR leaf failed on 6",
        ]

    def test_gunicorn_bracketed_time_and_level(self, logs: Path) -> None:
        assert _rows(_text(logs / "gunicorn.log"))[:2] == [
            f"gunicorn INFO [{os.getpid()}] leaf handling 6",
            f"gunicorn WARN [{os.getpid()}] leaf slow on 6",
        ]

    def test_readable_lines_of_configure_logging(self, logs: Path) -> None:
        assert _rows(_text(logs / "readable.log"))[0] == (
            "readable INFO demo demo.app: inside item_id=42"
        )

    @pytest.mark.parametrize("name", [*FORMATTERS, "readable"])
    def test_no_row_repeats_its_time_or_ids(self, logs: Path, name: str) -> None:
        rows = _rows(_text(logs / f"{name}.log"))
        assert len(rows) >= 2
        for row in rows:
            assert not re.match(r"\S+ (\S+ )?\[?\d{4}-\d\d-\d\d", row)  # its own time
            assert "trace_id=" not in row and "span_id=" not in row


class TestWhatStaysAsWritten:
    @pytest.mark.parametrize("name", [*FORMATTERS, "readable"])
    def test_jsonl_record_is_the_line_as_written(self, logs: Path, name: str) -> None:
        path = logs / f"{name}.log"
        records = stitch_jsonl(logs / f"{name}.jsonl", "-q", str(path))
        records.sort(key=lambda r: r["line"])
        written = "\n".join(r["record"]["message"] for r in records)
        assert written == path.read_text().rstrip("\n")
        assert "trace_id=" in written

    def test_lines_without_a_trace_keep_their_time_and_ids(self, logs: Path) -> None:
        (outside,) = [line for line in _untraced(_text(logs / "leaf.log")) if line.strip()]
        written = (logs / "leaf.log").read_text().splitlines()[0]
        assert outside.endswith(f"no trace id  {written}")

    @pytest.mark.parametrize("name", ["leaf", "uvicorn", "gunicorn"])
    def test_the_traceback_is_still_under_its_line(self, logs: Path, name: str) -> None:
        lines = _text(logs / f"{name}.log").splitlines()
        at = next(i for i, line in enumerate(lines) if line.endswith("leaf failed on 6"))
        assert "ERROR" in lines[at]
        assert lines[at + 1].strip() == "| Traceback (most recent call last):"
        under = [line.strip() for line in lines[at + 1 : at + 6]]
        assert all(line.startswith("|") for line in under)
        assert under[-1] == "| ZeroDivisionError: division by zero"

    @pytest.mark.parametrize(
        "line",
        [
            f'127.0.0.1 - - [06/Dec/2026:05:12:25 +0000] "GET / HTTP/1.1" 200 2 trace_id={TRACE}',
            f"request took long trace_id={TRACE} span_id={SPAN}",
        ],
    )
    def test_lines_of_other_shapes_are_shown_as_today(self, tmp_path: Path, line: str) -> None:
        path = tmp_path / "edge.log"
        path.write_text(line + "\n")
        assert _rows(_text(path)) == [" ".join(f"edge {line}".split())]

    def test_logfmt_lines_show_their_level_and_msg_as_before(self, tmp_path: Path) -> None:
        path = tmp_path / "fmt.log"
        path.write_text(
            f'ts=2026-12-06T05:12:25.100Z level=warn msg="disk low" trace_id={TRACE} '
            f"span_id={SPAN} free=3\n"
        )
        assert _rows(_text(path)) == ["fmt WARN disk low"]  # other pairs: as JSON fields


class TestHtmlReport:
    def test_rows_have_the_level_and_the_message(self, logs: Path) -> None:
        page = _html(logs / "leaf.log")
        rows = re.findall(r'<span class="l">([^<]*)</span><span class="m">([^<]*)', page)
        assert rows[:4] == [
            ("INFO", "leaf.app leaf handling 6"),
            ("WARN", "leaf.app leaf slow on 6"),
            ("ERROR", "leaf.app leaf failed on 6"),
            ("CRIT", "leaf.app leaf gave up"),
        ]
        assert "<summary>ZeroDivisionError: division by zero</summary>" in page

    def test_readable_and_uvicorn_rows(self, logs: Path) -> None:
        demo = _html(logs / "readable.log")
        assert '<span class="l">INFO</span><span class="m">demo demo.app: inside item_id=42' in demo
        web = _html(logs / "uvicorn.log")
        assert '<span class="l">WARN</span><span class="m">leaf slow on 6' in web

    def test_lines_without_a_trace_are_as_written(self, logs: Path) -> None:
        page = _html(logs / "leaf.log")
        written = (logs / "leaf.log").read_text().splitlines()[0]
        assert f'<span class="m">{html.escape(written)}</span>' in page


LINES = [
    (
        f"2026-12-06 05:12:25,619 INFO leaf.app trace_id={TRACE} span_id={SPAN} "
        "parent_span_id=None leaf handling 24",
        ("INFO", "leaf.app leaf handling 24"),
    ),
    (
        f"2026-12-06T05:44:21.897423Z INFO     demo demo.app: inside trace_id={TRACE} "
        f"span_id={SPAN} item_id=42",
        ("INFO", "demo demo.app: inside item_id=42"),
    ),
    (
        'INFO:     127.0.0.1:5 - "GET / HTTP/1.1" 200',
        ("INFO", '127.0.0.1:5 - "GET / HTTP/1.1" 200'),
    ),
    ("[2026-12-06 05:12:25 +0000] [123] [INFO] Booting", ("INFO", "[123] Booting")),
    ("[2026-12-06 05:12:25,619] ERROR in app: boom", ("ERROR", "in app: boom")),
    ("2026-12-06T05:12:25.619Z [warning  ] event key=1", ("WARNING", "event key=1")),
    ("INFO:leaf.app:ready", ("INFO", "leaf.app:ready")),
    ("INFO 2026-12-06 05:12:25,619 views hello", ("INFO", "views hello")),
    (f"trace_id={TRACE} span_id={SPAN} ERROR payment failed", ("ERROR", "payment failed")),
    (f"2026-12-06T05:12:25Z trace={TRACE} span={SPAN} FATAL x", ("FATAL", "x")),
    (f"2026-12-06T05:12:25Z TRACE traceId={TRACE} spanId={SPAN} x", ("TRACE", "x")),
    (f'2026-12-06T05:12:25Z DEBUG trace_id="{TRACE}" x', ("DEBUG", "x")),
    (f"Dec  6 05:12:25 host app[12]: boom trace_id={TRACE}", ("", "host app[12]: boom")),
    # the time alone: no level named where one would be
    (
        "2026-12-06 05:12:25,619 leaf.app Payment ERROR: declined",
        ("", "leaf.app Payment ERROR: declined"),
    ),
    # only the first pair of each ID: the one the stitcher read
    (
        f"2026-12-06T05:12:25Z INFO trace_id={TRACE} forwards trace_id=abc",
        ("INFO", "forwards trace_id=abc"),
    ),
    # service= and other pairs stay
    (f"2026-12-06T05:12:25Z WARN service=None trace_id={TRACE} a=1", ("WARN", "service=None a=1")),
    # OpenTelemetry's logging format: the pairs in brackets go, the brackets stay
    (
        f"2026-12-06 22:21:47,031 INFO [app] [gen.py:14] [trace_id={TRACE} span_id={SPAN}"
        " resource.service.name=checkout trace_sampled=True] - outer start",
        (
            "INFO",
            "[app] [gen.py:14] [resource.service.name=checkout trace_sampled=True] - outer start",
        ),
    ),
    (f"2026-12-06T05:12:25Z INFO [trace_id={TRACE} span_id={SPAN}] - x", ("INFO", "x")),
    (f"2026-12-06T05:12:25Z INFO [a=1 trace_id={TRACE}] x", ("INFO", "[a=1] x")),
]


class TestTextParts:
    @pytest.mark.parametrize(("line", "expected"), LINES)
    def test_shapes(self, line: str, expected: tuple[str, str]) -> None:
        assert text_parts(line) == expected

    @pytest.mark.parametrize(
        "line",
        [
            f'127.0.0.1 - - [06/Dec/2026:05:12:25 +0000] "GET / HTTP/1.1" 200 trace_id={TRACE}',
            f"just words trace_id={TRACE}",
            "2026-13-06 05:12:25,619 INFO not a date the stitcher read",
            "info: lowercase words are words",
            "INFORMATION is not a level",
            "",
        ],
    )
    def test_unknown_shapes_are_left_alone(self, line: str) -> None:
        assert text_parts(line) is None

    def test_the_time_must_be_the_one_the_stitcher_read(self) -> None:
        # syslog's time leads, but the stitcher reads the ISO time after it
        line = "Dec  6 05:12:25 host 2026-12-06T05:12:25Z INFO x"
        assert text_parts(line) is None

    def test_json_and_logfmt_lines_are_not_touched(self) -> None:
        raw = json.dumps({"level": "info", "message": "2026-12-06 x trace_id=1"}).encode()
        assert record_parts(raw, JSON)[:2] == ("info", "2026-12-06 x trace_id=1")
        assert record_parts(b"level=info msg=hi trace_id=1", LOGFMT)[:2] == ("info", "hi")

    @given(st.lists(st.sampled_from(["INFO", "x", "[1]", "-", "trace_id=ab", "a=b", "ERROR:",
                                     "2026-12-06T05:12:25Z", "[info]", "  ", "span_id="]),
                    max_size=8))  # fmt: skip
    def test_the_message_only_loses_words(self, words: list[str]) -> None:
        line = " ".join(words)
        parts = text_parts(line)
        if parts is None:
            return
        level, message = parts
        assert level in {"", "INFO", "ERROR"}
        left = line.split()
        for word in message.split():
            assert word in left
            left.remove(word)


class TestServiceNone:
    @pytest.mark.parametrize("spelling", ["None", "null", "-", "NULL", "n/a"])
    def test_text_logfmt_and_json_name_no_service(self, tmp_path: Path, spelling: str) -> None:
        path = tmp_path / "orders.log"
        lines = [
            f"2026-12-06 05:12:25,100 INFO service={spelling} trace_id={TRACE} one",
            f"ts=2026-12-06T05:12:25.200Z service={spelling} trace_id={TRACE} msg=two",
            json.dumps({"timestamp": "2026-12-06T05:12:25.300Z", "level": "INFO",
                        "service": spelling, "trace_id": TRACE, "message": "three"}),
            json.dumps({"timestamp": "2026-12-06T05:12:25.400Z", "level": "INFO",
                        "service_name": spelling, "traceId": TRACE, "message": "four"}),
        ]  # fmt: skip
        path.write_text("\n".join(lines) + "\n")
        records: list[dict[str, Any]] = stitch_jsonl(tmp_path / "o.jsonl", "-q", str(path))
        assert [r["service"] for r in records] == ["orders"] * 4

    def test_a_name_that_merely_looks_alike_is_kept(self, tmp_path: Path) -> None:
        path = tmp_path / "orders.log"
        path.write_text(
            f"2026-12-06 05:12:25,100 INFO service=nonesuch trace_id={TRACE} one\n"
            + json.dumps({"service": "nil-checker", "trace_id": TRACE, "message": "two"})
            + "\n"
        )
        records = stitch_jsonl(tmp_path / "o.jsonl", "-q", str(path))
        assert [r["service"] for r in records] == ["nonesuch", "nil-checker"]
