"""Exceptions under the line that carries them (text), collapsed (HTML), from
log files the real libraries wrote; and the same span marks in every format."""

from __future__ import annotations

import json
import traceback
from pathlib import Path

import pytest
from _exception_logs import MESSAGE, write_all
from _stitchutil import REPO, run, stitch_jsonl, stitch_text
from hypothesis import given, settings
from hypothesis import strategies as st
from test_render_html import CHROMIUM, dom, parse, render

from logtrace.stitch._record_exception import last_frame, record_exception

EXAMPLE = REPO / "examples" / "two_services" / "logs"
ORPHAN_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
WRITERS = ("stdlib", "pjl", "structlog_text", "structlog_dict", "ecs")


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("exceptions")
    write_all(directory)
    return directory


@pytest.fixture(scope="module")
def text(logs: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    return stitch_text(logs, tmp_path_factory.mktemp("text") / "out.txt")


def blocks(text: str) -> dict[str, list[str]]:
    """Per service: its lines in the output (one trace per writer here)."""
    out: dict[str, list[str]] = {}
    for block in text.split("\n\n"):
        lines = block.strip("\n").split("\n")
        if len(lines) > 1 and lines[0].startswith("trace "):
            service = lines[1].split()[1]
            out[service] = lines[1:]
    return out


def under(lines: list[str], message: str) -> list[str]:
    """The exception lines right under the line ending with ``message``."""
    at = next(k for k, line in enumerate(lines) if line.rstrip().endswith(message))
    found = []
    for line in lines[at + 1 :]:
        if not line.lstrip().startswith("|"):
            break
        found.append(line.strip()[2:])
    return found


class TestText:
    @pytest.mark.parametrize("writer", WRITERS)
    def test_the_exception_is_under_its_line(self, text: str, writer: str) -> None:
        lines = blocks(text)[writer]
        shown = under(lines, "job failed")
        headline = f"ValueError: {MESSAGE.format(writer)}"
        assert headline in shown
        assert any(line.strip().startswith('File "') for line in shown)
        if writer != "ecs":  # ecs-logging writes the last exception only
            assert "KeyError: 'missing'" in shown
            # Python's order: the cause first, the exception raised last.
            assert shown[-1] == headline
        # Nothing under the line without an exception.
        assert under(lines, "starting" if "structlog" in writer else f"starting {writer}") == []

    def test_a_stack_is_under_its_line(self, text: str) -> None:
        shown = under(blocks(text)["stdlib"], "where are we")
        assert shown[0] == "Stack (most recent call last):"
        assert any("in _stdlib_run" in line for line in shown)

    def test_exception_text_is_escaped(self, tmp_path: Path) -> None:
        record = {
            "timestamp": "2026-11-24T10:00:00Z",
            "level": "ERROR",
            "message": "boom",
            "trace_id": "1" * 32,
            "span_id": "2" * 16,
            "exc_info": 'Traceback (most recent call last):\n  File "x.py", line 1, in f\n'
            "RuntimeError: \x1b[31mred\x1b[0m \u202eevil",
        }
        (tmp_path / "a.log").write_text(json.dumps(record) + "\n")
        out = tmp_path / "o.txt"
        assert run("stitch", "-q", "-o", str(out), str(tmp_path / "a.log"))[0] == 0
        shown = out.read_text()
        assert "\x1b" not in shown and "\u202e" not in shown
        assert "| RuntimeError: \\e[31mred\\e[0m \\u202eevil" in shown


class TestHtml:
    @pytest.mark.parametrize("writer", WRITERS)
    def test_the_exception_is_collapsed_under_its_line(
        self, logs: Path, tmp_path: Path, writer: str
    ) -> None:
        page = render(tmp_path / "p.html", str(logs / f"{writer}.jsonl"))
        doc = parse(page)
        found = [
            d for d in doc.find("details") if d.parent is not None and "x" in d.parent.classes()
        ]
        assert len(found) == (2 if writer == "stdlib" else 1)  # stdlib: and the stack
        x = found[0]
        assert "open" not in x.attrs
        assert x.find("summary")[0].content() == f"ValueError: {MESSAGE.format(writer)}"
        pre = x.find("pre")[0].content()
        assert f"ValueError: {MESSAGE.format(writer)}" in pre and 'File "' in pre
        # Right after the row that carries it.
        rows = doc.find("div", "rows")[0].children
        at = rows.index(x.parent)  # type: ignore[arg-type]
        assert "job failed" in rows[at - 1].content()

    @pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
    def test_in_chromium_the_exception_starts_closed(self, logs: Path, tmp_path: Path) -> None:
        page = tmp_path / "all.html"
        render(page, str(logs))
        doc = dom(page, tmp_path / "profile")
        assert doc.find("html")[0].attrs.get("data-ready") == "1"
        found = [
            d for d in doc.find("details") if d.parent is not None and "x" in d.parent.classes()
        ]
        assert len(found) == len(WRITERS) + 1  # and the stack
        assert not any("open" in d.attrs for d in found)


class TestMarks:
    """A span whose parent is not in the logs: the same word in every format."""

    def test_text(self, tmp_path: Path) -> None:
        out = tmp_path / "o.txt"
        assert run("stitch", "-q", "--trace", ORPHAN_TRACE, "-o", str(out), str(EXAMPLE))[0] == 0
        lines = out.read_text().splitlines()
        marked = [line for line in lines if "[orphan]" in line]
        assert len(marked) == 1 and marked[0].endswith("order received [orphan]")

    def test_jsonl_marks_every_line_of_the_span(self, tmp_path: Path) -> None:
        records = stitch_jsonl(tmp_path / "o.jsonl", str(EXAMPLE))
        orphan_span = next(
            r["span_id"]
            for r in records
            if r["record"].get("message") == "order received" and r["trace_id"] == ORPHAN_TRACE
        )
        for r in records:
            assert ("mark" in r) == (r["span_id"] == orphan_span)
            if "mark" in r:
                assert r["mark"] == "orphan"

    def test_jsonl_python_and_c_paths_agree(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        fast = stitch_jsonl(tmp_path / "c.jsonl", str(EXAMPLE))
        monkeypatch.setenv("LOGTRACE_PURE_PYTHON", "1")
        slow = stitch_jsonl(tmp_path / "py.jsonl", str(EXAMPLE))
        assert (tmp_path / "c.jsonl").read_bytes() == (tmp_path / "py.jsonl").read_bytes()
        assert sum("mark" in r for r in fast) == sum("mark" in r for r in slow) > 0

    def test_html_and_chrome(self, tmp_path: Path) -> None:
        doc = parse(render(tmp_path / "p.html", str(EXAMPLE)))
        tags = [t for t in doc.find("span", "tag")]
        assert [t.content() for t in tags] == ["[orphan]"]
        assert "parent span is not in the logs" in tags[0].attrs["title"]
        out = tmp_path / "c.json"
        assert run("stitch", "-q", "--format", "chrome", "-o", str(out), str(EXAMPLE))[0] == 0
        events = json.loads(out.read_text())["traceEvents"]
        marks = [e["args"].get("mark") for e in events if e.get("ph") == "X"]
        assert marks.count("orphan") == 1 and set(marks) == {None, "orphan"}


def _raise(kind: type[Exception], message: str) -> str:
    try:
        raise kind(message)
    except Exception:
        return traceback.format_exc()


class TestReadingExceptions:
    @settings(max_examples=100, deadline=None)
    @given(
        st.sampled_from([ValueError, KeyError, RuntimeError, OSError]),
        st.text(st.characters(blacklist_categories=("Cs",)), max_size=80).filter(
            lambda m: m == m.strip("\n")
        ),
    )
    def test_a_formatted_traceback_gives_back_type_and_message(
        self, kind: type[Exception], message: str
    ) -> None:
        text = _raise(kind, message)
        raised = record_exception({"exc_info": text})
        assert raised is not None
        assert raised.type == kind.__name__
        shown = str(kind(message))
        assert raised.message == shown
        assert last_frame(raised.traceback).endswith("in _raise")

    @settings(max_examples=200, deadline=None)
    @given(
        st.dictionaries(
            st.sampled_from(
                [
                    "exc_info",
                    "stack_info",
                    "exception",
                    "error",
                    "error.type",
                    "error.message",
                    "error.stack_trace",
                    "exception.type",
                    "exception.message",
                    "message",
                ]
            ),
            st.recursive(
                st.none() | st.booleans() | st.integers() | st.text(max_size=30),
                lambda inner: (
                    st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=10), inner, max_size=3)
                ),
                max_leaves=10,
            ),
        )
    )
    def test_any_record_is_read_without_error(self, obj: dict[str, object]) -> None:
        raised = record_exception(obj)
        if raised is not None:
            assert isinstance(raised.text(), str)
