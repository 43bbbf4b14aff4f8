"""Span records whose fields a formatter dropped: the caller's start is not in the logs.

A captured run (gzipped) of three services under logtrace's middleware on
one clock (FastAPI on uvicorn -> Flask on gunicorn, two sync workers ->
FastAPI streaming some answers and running a background job in others), 40
requests, logging through structlog's ``ProcessorFormatter`` with
``add_trace_context`` and no ``ExtraAdder``: logtrace's span records come out
as ``{"event": "client GET", "logger": "logtrace.span", ...}``, without
``span.start``, ``duration_ms`` or ``span.kind``. Such a record is written
when its span ended; a client span's only line is that record, after the
answer. Taken for the span's start, it put the request after the callee had
started, and the one-clock run came out with orders 23 ms and stock 36 ms
"corrected". The request went out after the span it runs in (the server
span of the same service) started: that is the bound now.
"""

from __future__ import annotations

from pathlib import Path

from _stitchutil import stitched_traces

RUN = Path(__file__).parent / "captured" / "structlog_formatter_one_clock"


def test_on_one_clock_nothing_is_corrected(tmp_path: Path) -> None:
    summary, traces = stitched_traces(RUN, tmp_path / "out.jsonl", every_line=False)
    assert len(traces) == 40
    assert summary.offsets_ms == {"gateway": 0.0, "orders": 0.0, "stock": 0.0}
    for name in ("orders", "stock"):
        low, high = summary.offset_bounds_ms[name]
        assert low <= 0.0 <= high, (name, low, high)


def test_every_callee_line_comes_after_the_call(tmp_path: Path) -> None:
    _, traces = stitched_traces(RUN, tmp_path / "out.jsonl", every_line=False)
    for rows in traces.values():
        events = [str(r["record"].get("event", "")) for r in rows]
        for caller, callee in (("gateway", "orders"), ("orders", "stock")):
            calls = [
                i
                for i, (r, e) in enumerate(zip(rows, events, strict=True))
                if r["service"] == caller and e.startswith(f"call {callee}")
            ]
            received = [
                i
                for i, (r, e) in enumerate(zip(rows, events, strict=True))
                if r["service"] == callee and e.startswith("recv")
            ]
            if calls and received:
                assert calls[0] < received[0], events
