"""Callees that answer before they finish, in logs without parent IDs.

Captured runs (gzipped) of three real services traced by OpenTelemetry and
logging through its logging instrumentation (trace and span IDs, no parent):
a FastAPI ``gateway`` (uvicorn) calls ``orders``, which calls ``stock``, 80
requests one at a time, every call through httpx (which logs ``HTTP
Request: ...`` once the answer's headers are in, before the body).

- ``otel_stream_background``: python-json-logger lines (microseconds);
  orders is Django ASGI, stock FastAPI. Every third request stock streams
  its answer (``StreamingResponse``: chunk lines after its ``done``, after
  orders had the headers); every third it runs a ``BackgroundTasks`` job,
  which the instrumentation traces as a span of its own, logging after the
  answer, often after orders' whole request.
- ``otel_text_stream_background``: OpenTelemetry's own text format
  (``asctime``: milliseconds); orders is FastAPI and the one that streams
  and runs jobs, stock Flask under gunicorn (two sync workers).
  ``..._one_clock``: the same services on one clock.

- ``ecs_stream_background_one_clock``: ecs-logging lines with elastic-apm's
  trace and transaction IDs (milliseconds), one clock: a FastAPI gateway
  calls orders (Django WSGI), which calls stock (FastAPI), which streams,
  runs a job or fails in turn.

Clocks shifted in the services' logging (orders +30.37 ms, stock -29.71 ms)
in the first two. The jobs' spans, stock's inside orders' at a few
milliseconds off and orders' inside stock's by chance, pulled the link
``orders -> stock`` off the true offset and made its reverse look as
likely: it was dropped, stock hung under the gateway, its clock 4.4 to 4.9
ms off and its lines before orders' call in 79 traces of 80 (on one clock,
under the gateway all the same). A trace counts once wherever its spans
hold an offset, and the spans a service starts after its own answered
neither argue the reverse of a link nor bound a clock as calls.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from _stitchutil import stitched_traces

CAPTURED = Path(__file__).parent / "captured"
SHIFTS = {"gateway": 0.0, "orders": 30.37, "stock": -29.71}
MS = timedelta(milliseconds=1)
CID = re.compile(r"cid:(\w+)>(\w+)#\d+")


def message(row: dict[str, Any]) -> str:
    """The message a line logged (after the text format's ``] - ``)."""
    return str(row["record"]["message"]).rsplit("] - ", 1)[-1]


def out_of_call(rows: list[dict[str, Any]]) -> list[str]:
    """Callee lines of a call before the caller's ``call`` line or after its
    ``answer`` line (a job's ``bg`` line runs after the answer: left out)."""
    at: dict[tuple[str, str], int] = {}
    for i, row in enumerate(rows):
        text = message(row)
        found = CID.search(text)
        if found and text.startswith(("call ", "answer ")):
            at[(found.group(0), text.split()[0])] = i
    wrong = []
    for i, row in enumerate(rows):
        text = message(row)
        found = CID.search(text)
        if not found or row["service"] != found.group(2) or text.startswith("bg "):
            continue
        call, answer = at.get((found.group(0), "call")), at.get((found.group(0), "answer"))
        if (call is not None and i < call) or (answer is not None and i > answer):
            wrong.append(text)
    return wrong


def request_parents(rows: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Per service, the services of the parents of its request spans (the
    spans whose lines say ``recv``)."""
    service_of = {r["span_id"]: r["service"] for r in rows if r["span_id"]}
    out: dict[str, set[str]] = {}
    for row in rows:
        if message(row).startswith("recv ") and row["service"] != "gateway":
            parent = service_of.get(row["parent_span_id"] or "", "none")
            out.setdefault(row["service"], set()).add(parent)
    return out


@pytest.mark.parametrize("run", ["otel_stream_background", "otel_text_stream_background"])
def test_shifted_clocks_are_found_and_every_call_holds_its_callee(tmp_path: Path, run: str) -> None:
    summary, traces = stitched_traces(CAPTURED / run, tmp_path / "out.jsonl", every_line=False)
    assert len(traces) == 80
    (note,) = summary.notes
    assert "orders -> stock (80 traces" in note, note
    assert "not for" not in note, note
    for name, shift in SHIFTS.items():
        low, high = summary.offset_bounds_ms[name]
        assert low <= shift <= high, (name, summary.offsets_ms)
    assert summary.offsets_ms["orders"] == pytest.approx(30.37, abs=1.0)
    # Two hops that each lean by 0.3 to 0.8 ms (a request takes longer to
    # get in than its answer to get out): stock within 2 ms.
    assert summary.offsets_ms["stock"] == pytest.approx(-29.71, abs=2.0)
    for rows in traces.values():
        assert out_of_call(rows) == []
        assert request_parents(rows) == {"orders": {"gateway"}, "stock": {"orders"}}


def test_on_one_clock_nothing_is_corrected_and_stock_hangs_under_orders(
    tmp_path: Path,
) -> None:
    run = CAPTURED / "otel_text_stream_background_one_clock"
    summary, traces = stitched_traces(run, tmp_path / "out.jsonl", every_line=False)
    assert summary.offsets_ms == {"gateway": 0.0, "orders": 0.0, "stock": 0.0}
    # Zero applied, and shown inside what containment allows (not a second
    # "reference": the gateway's is the only clock the others are measured by).
    assert summary.reference == "gateway"
    for name in ("orders", "stock"):
        low, high = summary.offset_bounds_ms[name]
        assert low < 0.0 < high, (name, low, high)
    (note,) = summary.notes
    assert "orders -> stock (80 traces" in note, note
    for rows in traces.values():
        assert out_of_call(rows) == []
        assert request_parents(rows) == {"orders": {"gateway"}, "stock": {"orders"}}


def test_the_html_header_shows_each_clock_as_the_summary_does() -> None:
    import html
    import io

    from logtrace.stitch import Options, stitch

    out = io.BytesIO()
    summary = stitch([str(CAPTURED / "otel_stream_background")], out, Options(format="html"))
    page = out.getvalue().decode()
    for name in summary.offsets_ms:
        # rounded the same way: outwards, to the microsecond
        assert f"clock {html.escape(summary.clock_text(name))}" in page, summary.clock_text(name)


def test_whole_ms_lines_stay_inside_their_call_and_a_job_after_it(tmp_path: Path) -> None:
    """To the millisecond, stock's last line before it answers often shares
    its millisecond with orders' line that has the answer, and its job's
    line comes after the whole request. Bracketed with the job's line, the
    call's lines were bounded by nothing of orders' (they went after the
    answer line in 3 traces of 80), and the job's line by the gateway's
    answer (before lines up to 4 ms older, in 18). Bracketed up to the answer, both are
    where their times and the call put them."""
    run = CAPTURED / "ecs_stream_background_one_clock"
    summary, traces = stitched_traces(run, tmp_path / "out.jsonl", every_line=False)
    assert len(traces) == 80
    assert summary.offsets_ms == {"gateway": 0.0, "orders": 0.0, "stock": 0.0}
    jobs = 0
    for rows in traces.values():
        assert out_of_call(rows) == []
        assert request_parents(rows) == {"orders": {"gateway"}, "stock": {"orders"}}
        stamps = [datetime.fromisoformat(row["timestamp"]) for row in rows]
        for i, stamp in enumerate(stamps):
            # one clock, each time a whole millisecond: none shown before a
            # line of a millisecond it surely comes after
            assert all(stamp + MS > seen for seen in stamps[:i]), message(rows[i])
        jobs += any(message(row).startswith("bg ") for row in rows)
    assert jobs > 20
