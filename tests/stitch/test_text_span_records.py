"""Span records a text format writes: written when the app returned.

``notes`` (Starlette under uvicorn) logs through logging's text format with
the logger's name, as docs/logging.md shows: its server span records are
text lines on ``logtrace.span`` whose message ends with the record's timing
(``span.start``, ``duration_ms``, ``response_ms``), a format string showing
no fields of its own. Its endpoint answers, then runs a 6 ms background
task that logs nothing, so each record is written well after ``front``
(FastAPI, JSON lines) heard back. On one clock, that must not read as a
clock ahead of front's; with notes' clock shifted (by a logging filter:
the record's start moves with its time), the shift is found and bounded on
both sides; the late record stays after the answer in the stitched order,
and grep prints each trace as stitch does. (Records without their timing,
from formatters that drop it, are in ``test_fieldless_span_records.py``.)
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from _stitchutil import cli, run, stitch_jsonl, stitched_traces
from servers import run_uvicorn

from logtrace.stitch._timestamps import parse_timestamp

pytestmark = pytest.mark.timeout(120)

NOTES = """
import logging, os, time
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.responses import JSONResponse
from starlette.routing import Route
from logtrace.asgi import TraceMiddleware
from logtrace.stdlib import TraceContextFilter

SHIFT = float(os.environ["SHIFT_MS"]) / 1000

class Shifted(logging.Filter):
    def filter(self, record):
        record.created += SHIFT
        record.msecs = (record.created % 1) * 1000
        return True

handler = logging.FileHandler(os.environ["LOG_FILE"])
handler.addFilter(TraceContextFilter())
handler.addFilter(Shifted())
handler.setFormatter(logging.Formatter(
    "%(asctime)s %(levelname)s %(name)s trace_id=%(trace_id)s "
    "span_id=%(span_id)s parent_span_id=%(parent_span_id)s %(message)s"))
root = logging.getLogger()
root.handlers[:] = [handler]
root.setLevel(logging.INFO)
log = logging.getLogger("notes.app")

def tidy():
    time.sleep(0.006)

async def note(request):
    log.info("note taken")
    return JSONResponse({"ok": True}, background=BackgroundTask(tidy))

app = TraceMiddleware(Starlette(routes=[Route("/note", note)]))
"""

FRONT = """
import logging, os
from fastapi import FastAPI
import logtrace.httpx
from logtrace import configure_logging
from logtrace.asgi import TraceMiddleware

configure_logging("front", filename=os.environ["LOG_FILE"])
log = logging.getLogger("front.app")
api = FastAPI()

@api.get("/page")
async def page() -> dict[str, bool]:
    log.info("page asked")
    async with logtrace.httpx.AsyncClient(timeout=10) as client:
        for _ in range(2):
            log.info("calling notes")
            await client.get(os.environ["NOTES"] + "/note")
            log.info("notes answered")
    return {"ok": True}

app = TraceMiddleware(api)
"""

PAGES = 25


def _serve(root: Path, shift_ms: float) -> list[str]:
    (root / "notes_app.py").write_text(textwrap.dedent(NOTES))
    (root / "front_app.py").write_text(textwrap.dedent(FRONT))
    paths = {name: root / f"{name}.log" for name in ("front", "notes")}
    with ExitStack() as stack:
        notes = stack.enter_context(
            run_uvicorn("notes_app:app", app_dir=root, log_path=root / "notes.out",
                        env={"LOG_FILE": str(paths["notes"]), "SHIFT_MS": str(shift_ms)})
        )  # fmt: skip
        front = stack.enter_context(
            run_uvicorn("front_app:app", app_dir=root, log_path=root / "front.out",
                        env={"LOG_FILE": str(paths["front"]), "NOTES": notes.url})
        )  # fmt: skip
        with httpx.Client(timeout=20) as client:
            for _ in range(PAGES):
                assert client.get(front.url + "/page").status_code == 200
    return [str(p) for p in paths.values()]


@pytest.fixture(scope="module", params=[0.0, 30.0], ids=["one-clock", "shifted-30ms"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[float, list[str]]]:
    shift = float(request.param)
    yield shift, _serve(tmp_path_factory.mktemp("text_records"), shift)


def _raw_time(line: str) -> float:
    """The time a text line of notes starts with (its millisecond's start)."""
    value = parse_timestamp(line[:23].replace(" ", "T").replace(",", ".") + "Z")
    assert value is not None
    return value


def _message(row: dict[str, Any]) -> str:
    record = row["record"]
    return str(record.get("message", "")) if isinstance(record, dict) else str(record)


class TestClocks:
    def test_the_late_records_invent_no_skew(self, served: tuple[float, list[str]]) -> None:
        shift, logs = served
        code, err = run("stitch", "-o", "/dev/null", *logs)
        assert code == 0
        records = stitch_jsonl(Path(logs[0]).parent / "o.jsonl", "-q", *logs)
        applied = {r["service"]: r["offset_ms"] for r in records if r.get("trace_id")}
        assert abs(applied["notes"] - applied["front"] - shift) < 1.0, err
        if not shift:  # every call fits one clock: nothing is corrected
            assert applied == {"front": 0.0, "notes": 0.0}, err
        else:  # the records' timing bounds notes' clock on both sides
            assert "left uncorrected" not in err and "one side" not in err, err

    def test_the_records_carry_their_timing(self, served: tuple[float, list[str]]) -> None:
        _, logs = served
        lines = [x for x in Path(logs[1]).read_text().splitlines() if "logtrace.span" in x]
        assert len(lines) == 2 * PAGES
        for line in lines:
            assert " server GET /note span.kind=server span.start=" in line, line
            assert " duration_ms=" in line and " response_ms=" in line, line


class TestOrder:
    def test_the_record_comes_after_the_answer(self, served: tuple[float, list[str]]) -> None:
        """The record is written when the app returned: after the call, after
        the note; after the answer wherever its millisecond is wholly later
        (by more than the clock estimate's error)."""
        shift, logs = served
        records = stitch_jsonl(Path(logs[0]).parent / "order.jsonl", "-q", *logs)
        traces: dict[str, list[dict[str, Any]]] = {}
        for r in records:
            if r.get("trace_id"):
                traces.setdefault(r["trace_id"], []).append(r)
        assert len(traces) == PAGES
        later = 0
        for rows in traces.values():
            said = [_message(r) for r in rows]
            calls = [i for i, m in enumerate(said) if m == "calling notes"]
            answers = [i for i, m in enumerate(said) if m == "notes answered"]
            taken = [i for i, m in enumerate(said) if m.endswith("note taken")]
            written = [i for i, m in enumerate(said) if "logtrace.span" in m]
            assert len(calls) == len(answers) == len(taken) == len(written) == 2, said
            for call, answer, note, record in zip(calls, answers, taken, written, strict=True):
                assert call < note < answer, said
                assert note < record, said
                true_start = _raw_time(said[record]) - shift / 1000
                heard = parse_timestamp(rows[answer]["record"]["timestamp"])
                assert heard is not None
                if true_start > heard + 0.001:
                    assert record > answer, said
                    later += 1
        assert later >= PAGES  # the 6 ms task: most records are wholly later

    def test_grep_prints_each_trace_as_stitch_does(self, served: tuple[float, list[str]]) -> None:
        _, logs = served
        records = stitch_jsonl(Path(logs[0]).parent / "grep.jsonl", "-q", *logs)
        traces: dict[str, list[tuple[str, int]]] = {}
        for r in records:
            if r.get("trace_id"):
                traces.setdefault(r["trace_id"], []).append((r["file"], r["line"]))
        for trace, want in traces.items():
            proc = cli("grep", "-H", "-n", trace, *logs)
            assert proc.returncode == 0
            got = []
            for raw in proc.stdout.splitlines():
                name, number, _ = raw.split(b":", 2)
                got.append((name.decode(), int(number)))
            assert got == want


SHIFTED_BY_FILTERS = Path(__file__).parent / "captured" / "text_records_shifted_by_filters"
CID = re.compile(r" (call|answer) cid:(\w+)>(\w+)#\d+ ")


class TestCapturedRun:
    """``text_records_shifted_by_filters``: a captured run (gzipped) of three
    uvicorn FastAPI services under logtrace's middleware, logging through
    the format above (``asctime`` in UTC: milliseconds) with their times
    moved by a logging filter (orders +30.4 ms, stock -29.7 ms), 80 requests
    from two clients at once: the gateway calls orders, which calls stock
    (streaming every third answer) and answers, then runs a background job.
    Each caller writes ``call cid:A>B#1`` before its call and ``answer
    cid:A>B#1`` once it has the answer; its client span writes only its
    record, after the answer."""

    def test_the_clocks_are_found(self, tmp_path: Path) -> None:
        summary, _ = stitched_traces(SHIFTED_BY_FILTERS, tmp_path / "o.jsonl", every_line=False)
        offsets = summary.offsets_ms
        assert abs(offsets["orders"] - offsets["gateway"] - 30.4) < 1.0, offsets
        assert abs(offsets["stock"] - offsets["gateway"] + 29.7) < 1.0, offsets
        assert not summary.uncorrected

    def test_every_callee_line_is_between_the_callers_call_and_answer(self, tmp_path: Path) -> None:
        """The callee's first line often shares a millisecond with the
        caller's ``call`` line. Rule 4 of the ordering (coarse times) reads
        the caller's own lines around a call; a client span whose only line
        is its record has none, and the lines of the span it runs in, the
        same service's request, were not read: in 5 traces of 80 stock's
        first line came out before orders' ``call`` line. They bracket the
        call now."""
        _, traces = stitched_traces(SHIFTED_BY_FILTERS, tmp_path / "o.jsonl", every_line=False)
        assert len(traces) == 80
        checked = 0
        for rows in traces.values():
            said = [str(r["record"]["message"]) for r in rows]
            at = {}
            for i, text in enumerate(said):
                m = CID.search(text + " ")
                if m is not None and rows[i]["service"] == m[2]:
                    at[(m[1], m[3])] = i
            for callee in ("orders", "stock"):
                mine = [
                    i
                    for i, (r, text) in enumerate(zip(rows, said, strict=True))
                    if r["service"] == callee and " bg " not in text and " chunk" not in text
                    and "logtrace.span" not in text
                ]  # fmt: skip
                assert mine, said
                assert at[("call", callee)] < min(mine), said
                assert max(mine) < at[("answer", callee)], said
                checked += 1
        assert checked == 160
