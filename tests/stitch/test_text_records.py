"""Text-format logs of the standard library: IDs spelled ``None`` and tracebacks.

A service logging with a ``logging`` format string and logtrace's filter
writes ``trace_id=None`` outside a request, and a traceback logged with
``exc_info`` over many lines, of which only the first has the trace ID. The
stitcher reads ``None`` (and the other spellings of a missing ID) as no ID,
and the lines that continue a text record as part of it, on both scan paths.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
from _logutil import preserved_logging
from _stitchutil import cli, nonblank_lines, run, stitch_jsonl
from _stitchutil import pure_python as _pure
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logtrace import TraceContextFilter, span
from logtrace.stitch import _plan, _scan
from logtrace.stitch._id_forms import norm_span_id, norm_trace_id
from logtrace.stitch._model import FileScan
from logtrace.stitch._record_cuts import JOIN_LIMIT

FORMAT = (
    "%(asctime)s %(levelname)s %(name)s trace_id=%(trace_id)s span_id=%(span_id)s "
    "parent_span_id=%(parent_span_id)s %(message)s"
)
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


def _divide(n: int) -> float:
    try:
        return n / 0
    except ZeroDivisionError as exc:
        raise ValueError(f"cannot split {n}") from exc


def _write_service_log(path: Path) -> None:
    """What a service writes with a text format and logtrace's filter: lines
    outside a request, and a request that logs a chained exception."""
    with preserved_logging():
        handler = logging.FileHandler(path, encoding="utf-8")
        handler.addFilter(TraceContextFilter())
        handler.setFormatter(logging.Formatter(FORMAT))
        root = logging.getLogger()
        root.handlers = [handler]
        root.setLevel(logging.INFO)
        log = logging.getLogger("leaf.app")
        log.info("Started server process")
        with span("GET /leaf"):
            log.info("leaf handling 6")
            try:
                _divide(6)
            except ValueError:
                log.exception("leaf failed on 6")
            log.info("leaf answering 6")
        log.info("Shutting down")
        handler.close()


@pytest.fixture(scope="module")
def service_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("leaf") / "leaf.log"
    _write_service_log(path)
    return path


def _jsonl(path: Path, *argv: str, pure: bool = False) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp, _pure(pure):
        return stitch_jsonl(Path(tmp) / "out.jsonl", "-q", *argv, str(path))


def _text(path: Path, *argv: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.txt"
        code, err = run("stitch", "--format", "text", "-o", str(out), *argv, str(path))
        assert code == 0, err
        return out.read_text()


def _lines_covered(records: list[dict[str, Any]]) -> list[int]:
    """The file lines each record holds: its line and the ones its text continues on."""
    covered = []
    for r in records:
        message = r["record"].get("message", "") if isinstance(r["record"], dict) else ""
        extra = len(re.split(r"\r\n|\r|\n", message)) - 1 if isinstance(message, str) else 0
        covered.extend(range(r["line"], r["line"] + extra + 1))
    return covered


class TestIdsSpelledNone:
    def test_lines_outside_a_request_join_no_trace(self, service_log: Path) -> None:
        records = _jsonl(service_log)
        assert "None" not in {r["trace_id"] for r in records}
        outside = [r for r in records if r["trace_id"] is None]
        assert [r["record"]["message"].rsplit(" ", 2)[-2:] for r in outside] == [
            ["server", "process"],
            ["Shutting", "down"],
        ]
        assert all(r["reason"] == "no trace id" for r in outside)
        assert len({r["trace_id"] for r in records if r["trace_id"]}) == 1

    @pytest.mark.parametrize(
        "spelling", ["None", "none", "NULL", "null", "nil", "undefined", "-", "", "n/a", "N/A"]
    )
    def test_every_spelling_of_no_id_is_none(self, spelling: str) -> None:
        assert norm_trace_id(spelling) is None
        assert norm_span_id(spelling) is None
        assert norm_trace_id(f" {spelling} ") is None

    def test_ids_that_merely_look_alike_are_kept(self) -> None:
        assert norm_trace_id("nonesuch") == "nonesuch"
        assert norm_trace_id("req-42") == "req-42"
        assert norm_trace_id("0") is None  # all zeros, as before

    @pytest.mark.parametrize("pure", [False, True])
    @pytest.mark.parametrize("spelling", ["None", "null", "-", "n/a", ""])
    def test_text_logfmt_and_json_lines_agree(
        self, tmp_path: Path, spelling: str, pure: bool
    ) -> None:
        path = tmp_path / "app.log"
        lines = [
            f"2026-12-06 05:12:23,594 INFO app trace_id={spelling} span_id={spelling} boot",
            f'ts=2026-12-06T05:12:23.600Z trace_id="{spelling}" span_id={spelling} msg=up',
            json.dumps({"timestamp": "2026-12-06T05:12:23.700Z", "level": "INFO",
                        "service": "app", "trace_id": spelling, "span_id": spelling,
                        "parent_span_id": spelling, "message": "json"}),
            json.dumps({"timestamp": "2026-12-06T05:12:23.800Z", "message": "otel",
                        "traceId": spelling, "spanId": spelling}),
            f"2026-12-06 05:12:24,000 INFO app trace_id={TRACE} span_id={SPAN} handled",
        ]  # fmt: skip
        path.write_text("\n".join(lines) + "\n")
        records = _jsonl(path, pure=pure)
        assert [r["trace_id"] for r in records] == [TRACE, None, None, None, None]
        assert sorted(r["line"] for r in records) == [1, 2, 3, 4, 5]
        assert {r["reason"] for r in records if r["trace_id"] is None} == {"no trace id"}

    def test_an_empty_value_does_not_take_the_next_key(self, tmp_path: Path) -> None:
        path = tmp_path / "app.log"
        path.write_text(
            "2026-12-06 05:12:23,594 INFO app trace_id= span_id= parent_span_id= boot\n"
            f"2026-12-06 05:12:24,000 INFO app trace_id={TRACE} span_id= parent_span_id= x\n"
        )
        records = _jsonl(path)
        assert [(r["trace_id"], r["span_id"]) for r in records] == [(TRACE, None), (None, None)]

    def test_grep_still_finds_the_lines_of_a_trace(self, service_log: Path) -> None:
        trace = next(r["trace_id"] for r in _jsonl(service_log) if r["trace_id"])
        proc = cli("grep", trace, str(service_log))
        assert proc.returncode == 0
        found = proc.stdout.decode().splitlines()
        assert len(found) == 4 and all(trace in line for line in found)
        assert cli("grep", "deadbeefdeadbeef", str(service_log)).returncode == 1


class TestTracebacks:
    def test_the_traceback_joins_the_line_that_logged_it(self, service_log: Path) -> None:
        records = _jsonl(service_log)
        failed = [r for r in records if "leaf failed on 6" in r["record"]["message"]]
        assert len(failed) == 1
        message = failed[0]["record"]["message"]
        assert "\nTraceback (most recent call last):\n" in message
        assert "The above exception was the direct cause" in message
        assert message.endswith("ValueError: cannot split 6")
        assert failed[0]["trace_id"] is not None
        assert not [r for r in records if r["trace_id"] is None and "Traceback" in str(r)]

    def test_every_line_is_written_once_in_file_order(self, service_log: Path) -> None:
        records = _jsonl(service_log)
        numbers = [n for n, _ in nonblank_lines(service_log.read_bytes())]
        covered = _lines_covered(records)
        assert len(covered) == len(set(covered))
        assert set(numbers) <= set(covered)
        assert set(covered) <= set(range(1, numbers[-1] + 1))
        traced = sorted((r for r in records if r["trace_id"]), key=lambda r: r["line"])
        assert [r["line"] for r in traced] == [r["line"] for r in records if r["trace_id"]]

    def test_both_scan_paths_write_the_same(self, service_log: Path) -> None:
        assert _jsonl(service_log, pure=True) == _jsonl(service_log, pure=False)

    def test_text_output_shows_it_under_its_line(self, service_log: Path) -> None:
        text = _text(service_log)
        lines = text.splitlines()
        at = next(i for i, line in enumerate(lines) if "leaf failed on 6" in line)
        assert lines[at + 1].strip() == "| Traceback (most recent call last):"
        assert any("| ValueError: cannot split 6" in line for line in lines[at:])
        unattributed = text.split("lines without a trace", 1)[1]
        assert "Traceback" not in unattributed and "| " not in unattributed

    def test_html_report_collapses_it(self, service_log: Path, tmp_path: Path) -> None:
        out = tmp_path / "report.html"
        code, err = run("stitch", "--format", "html", "-o", str(out), str(service_log))
        assert code == 0, err
        page = out.read_text()
        assert "<summary>ValueError: cannot split 6</summary>" in page
        assert "ZeroDivisionError: division by zero" in page.split("<pre>", 1)[1]

    def test_strict_run_counts_no_unparseable_line(self, service_log: Path, tmp_path: Path) -> None:
        code, err = run("stitch", "--strict", "-o", str(tmp_path / "o.txt"), str(service_log))
        assert code == 0, err
        assert "0 unparseable" in err
        assert "2 unattributed" in err

    def test_a_record_without_a_trace_keeps_its_traceback(self, tmp_path: Path) -> None:
        path = tmp_path / "app.log"
        path.write_text(
            "2026-12-06 05:12:23,594 ERROR app trace_id=None startup failed\n"
            "Traceback (most recent call last):\n"
            '  File "app.py", line 1, in <module>\n'
            "OSError: no config\n"
        )
        records = _jsonl(path)
        assert len(records) == 1 and records[0]["trace_id"] is None
        assert records[0]["record"]["message"].endswith("OSError: no config")
        text = _text(path)
        assert "    | OSError: no config" in text or "| OSError: no config" in text

    @pytest.mark.parametrize("pure", [False, True])
    def test_a_source_line_that_starts_with_a_brace_stays_in_its_traceback(
        self, tmp_path: Path, pure: bool
    ) -> None:
        # Python prints the failing source line, indented: here a dict literal.
        path = tmp_path / "app.log"
        path.write_text(
            f"2026-12-06 05:12:23,594 ERROR app trace_id={TRACE} span_id={SPAN} lookup failed\n"
            "Traceback (most recent call last):\n"
            '  File "app.py", line 9, in work\n'
            '    {}["missing-item"]\n'
            "    ~~^^^^^^^^^^^^^^^^\n"
            "KeyError: 'missing-item'\n"
            f"2026-12-06 05:12:23,595 INFO app trace_id={TRACE} span_id={SPAN} done\n"
            '{"trace_id": "' + TRACE + '", "message": "a JSON record of its own"}\n'
        )
        records = _jsonl(path, pure=pure)
        assert [r["line"] for r in records] == [1, 7, 8]
        assert records[0]["record"]["message"].endswith(
            "    {}[\"missing-item\"]\n    ~~^^^^^^^^^^^^^^^^\nKeyError: 'missing-item'"
        )
        assert all(r["trace_id"] == TRACE for r in records)


class TestWhatStaysAlone:
    @pytest.mark.parametrize("pure", [False, True])
    def test_json_lines_and_lines_with_their_own_ids_or_times(
        self, tmp_path: Path, pure: bool
    ) -> None:
        path = tmp_path / "app.log"
        lines = [
            json.dumps({"trace_id": TRACE, "message": "json first"}),
            "Traceback (most recent call last):",  # after JSON: a line of its own
            f"2026-12-06 05:12:23,594 ERROR app trace_id={TRACE} failed",
            f"  retry span_id={SPAN} trace_id={TRACE}",  # its own trace: alone
            "ts=2026-12-06T05:12:24Z level=info msg=pool",  # its own time: alone
            "INFO:     Shutting down",  # a level first: a record of its own
            "level=info msg=stats",  # key=value pairs: alone
        ]
        path.write_text("\n".join(lines) + "\n")
        records = _jsonl(path, pure=pure)
        assert sorted(r["line"] for r in records) == list(range(1, 8))

    def test_a_record_takes_at_most_the_limit(self, tmp_path: Path) -> None:
        path = tmp_path / "app.log"
        frame = "  " + "x" * 98
        count = JOIN_LIMIT // 101 + 20
        body = "\n".join([frame] * count)
        path.write_text(f"2026-12-06 05:12:23,594 ERROR app trace_id={TRACE} boom\n{body}\n")
        records = _jsonl(path)
        head = records[0]
        assert head["trace_id"] == TRACE
        covered = _lines_covered(records)
        assert sorted(covered) == list(range(1, count + 2))
        assert len(head["record"]["message"]) <= JOIN_LIMIT + 100


def _scan_bytes(data: bytes, pure: bool, block_size: int, jobs: int = 1) -> list[FileScan]:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "svc.log")
        with open(path, "wb") as f:
            f.write(data)
        old = _plan.CHUNK
        _plan.CHUNK = max(1, len(data) // 3)
        try:
            tasks = _plan.plan_tasks([_plan.Source("svc.log", path)], jobs)
        finally:
            _plan.CHUNK = old
        with _pure(pure):
            return [_scan.scan_task(task, tmp, block_size=block_size) for task in tasks]


def _spans(scans: list[FileScan]) -> list[tuple[int, int]]:
    """Each row's byte range, across the scans of one file."""
    return [(int(r["off"]), int(r["len"])) for s in scans for r in s.rows]


_heads = st.builds(
    lambda sec, trace, text: (
        f"2026-12-06 05:12:{sec:02d},594 ERROR app trace_id={trace} span_id=None {text}"
    ),
    st.integers(0, 59),
    st.sampled_from([TRACE, "None", "-", "5b8efff798038103d269b633813fc60c"]),
    st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=20),
)
_continuations = st.sampled_from(
    [
        "Traceback (most recent call last):",
        '  File "app.py", line 3, in main',
        "    x = 1 / 0",
        "",
        "   ",
        "During handling of the above exception, another exception occurred:",
        "ZeroDivisionError: division by zero",
        "    flag=1",
        "{broken",
        "[1, 2]",
    ]
)
_others = st.sampled_from(
    [
        json.dumps({"trace_id": TRACE, "message": "json"}),
        "ts=2026-12-06T05:12:24Z level=info msg=pool",
        "INFO:     Started server process",
        f"trace_id={TRACE} plain",
        "\x00\x01 bad bytes",
    ]
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.one_of(_heads, _continuations, _others), max_size=40),
    st.sampled_from(["\n", "\r\n", "\r"]),
    st.sampled_from([64, 200, 1 << 20]),
)
def test_no_line_is_lost_and_cuts_change_nothing(
    lines: list[str], ending: str, block_size: int
) -> None:
    data = ending.join(lines).encode("utf-8", "surrogatepass") + ending.encode()
    whole = _scan_bytes(data, pure=True, block_size=1 << 20)
    expected = _spans(whole)
    for pure in (False, True):
        for jobs in (1, 2):
            assert _spans(_scan_bytes(data, pure, block_size, jobs)) == expected
    # Every non-blank line lies in exactly one row's byte range, in order.
    starts = [0] + [m.end() for m in re.finditer(rb"\r\n|\r|\n", data)]
    for number, raw in nonblank_lines(data):
        at = starts[number - 1]
        holding = [(o, n) for o, n in expected if o <= at < o + n or (o == at and n == len(raw))]
        assert len(holding) == 1, (number, raw)
    assert [o for o, _ in expected] == sorted(o for o, _ in expected)
