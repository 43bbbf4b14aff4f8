"""How a span opens: the form of its first line, numbers and IDs aside."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from _stitchutil import one_trace_table
from hypothesis import given, settings
from hypothesis import strategies as st

from logtrace.stitch._model import ROW_DTYPE, Table
from logtrace.stitch._span_openings import line_form, opens_alike

T0 = 1.8e9


def _otel_line(message: str, span: str, at: str) -> bytes:
    record = {
        "levelname": "INFO",
        "message": message,
        "otelTraceID": "3ae6ad011f3250f0e1f668c425881877",
        "otelSpanID": span,
        "timestamp": at,
    }
    return json.dumps(record).encode()


class TestLineForm:
    def test_one_logging_call_gives_one_form(self) -> None:
        at = "2026-12-07T05:48:19.98+00:00"
        first = _otel_line("query 12 took 0.4 ms", "2d54cb4039f8343a", at)
        again = _otel_line("query 7 took 13 ms", "84a8bcdefabcdefa", at.replace("19.98", "20.0048"))
        assert line_form(first) == line_form(again)

    def test_another_message_is_another_form(self) -> None:
        request = _otel_line("quote asked", "2d54cb4039f8343a", "2026-12-07T05:48:19.98+00:00")
        job = _otel_line("job done", "2d54cb4039f8343b", "2026-12-07T05:48:19.98+00:00")
        assert line_form(request) != line_form(job)

    def test_text_lines_of_one_call(self) -> None:
        line = (
            b"2026-12-06 22:21:47,031 INFO [shop] [app.py:14] [trace_id=%s span_id=%s "
            b"resource.service.name=stock trace_sampled=True] - stock asked"
        )
        a = line % (b"4bf92f3577b34da6a3ce929d0e0e4736", b"00f067aa0ba902b7")
        b = line % (b"aaaabbbbccccddddeeeeffff00001111", b"abcdefabcdefabcd")
        assert line_form(a) == line_form(b)

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=200))
    def test_any_bytes_have_a_form_that_stays(self, raw: bytes) -> None:
        form = line_form(raw)
        assert line_form(form) == form
        assert not any(48 <= c <= 57 for c in form)  # no digit is left

    @settings(max_examples=200, deadline=None)
    @given(st.text(alphabet="abc xyz:-", max_size=40), st.lists(st.integers(0, 10**9), max_size=4))
    def test_numbers_never_tell_two_lines_apart(self, words: str, numbers: list[int]) -> None:
        a = (words + " " + " ".join(map(str, numbers))).encode()
        b = (words + " " + " ".join(str(n + 1) for n in numbers)).encode()
        assert line_form(a) == line_form(b)


def _table(path: Path, lines: list[tuple[int, float, bytes]], n_spans: int) -> Table:
    """A table of ``lines`` (span, seconds after T0, text) written to ``path``."""
    rows = np.zeros(len(lines), dtype=ROW_DTYPE)
    offset = 0
    with open(path, "wb") as fh:
        for i, (span, t, text) in enumerate(lines):
            fh.write(text + b"\n")
            rows[i]["off"], rows[i]["len"], rows[i]["line"] = offset, len(text), i + 1
            rows[i]["span"], rows[i]["ts"], rows[i]["trace"] = span, T0 + t, 0
            offset += len(text) + 1
    return one_trace_table(rows, n_spans, ["db"], [str(path)])


class TestOpensAlike:
    def test_a_second_query_opens_as_the_first_a_job_does_not(self, tmp_path: Path) -> None:
        lines = [
            (0, 0.001, _otel_line("query 1", "a1a1a1a1a1a1a1a1", "t")),
            (0, 0.002, _otel_line("query done", "a1a1a1a1a1a1a1a1", "t")),
            (1, 0.004, _otel_line("query 2", "b2b2b2b2b2b2b2b2", "t")),
            (1, 0.005, _otel_line("query done", "b2b2b2b2b2b2b2b2", "t")),
            (2, 0.009, _otel_line("job done", "c3c3c3c3c3c3c3c3", "t")),
        ]
        table = _table(tmp_path / "db.log", lines, 3)
        follows = np.array([-1, 0, 1], dtype=np.int64)
        assert opens_alike(table, follows).tolist() == [False, True, False]

    def test_the_first_line_is_the_earliest_not_the_first_in_the_file(self, tmp_path: Path) -> None:
        lines = [
            (0, 0.002, b"query done"),
            (0, 0.001, b"query"),
            (1, 0.005, b"query done"),
            (1, 0.004, b"query"),
            (2, 0.008, b"query"),
            (2, 0.007, b"cache miss"),
        ]
        table = _table(tmp_path / "db.log", lines, 3)
        follows = np.array([-1, 0, 1], dtype=np.int64)
        assert opens_alike(table, follows).tolist() == [False, True, False]

    def test_nothing_follows(self, tmp_path: Path) -> None:
        table = _table(tmp_path / "db.log", [(0, 0.001, b"query")], 2)
        follows = np.array([-1, -1], dtype=np.int64)
        assert opens_alike(table, follows).tolist() == [False, False]

    def test_a_span_without_a_timed_line_opens_with_nothing(self, tmp_path: Path) -> None:
        lines = [(0, 0.001, b"query"), (1, float("nan"), b"query")]
        table = _table(tmp_path / "db.log", lines, 2)
        table.rows["ts"][1] = np.nan
        follows = np.array([-1, 0], dtype=np.int64)
        assert opens_alike(table, follows).tolist() == [False, False]
