"""A queue's consumer, in logs without parent IDs, is no caller by chance.

Captured runs (gzipped) of a FastAPI ``api`` that calls ``inventory`` in
half its requests, then enqueues a Celery task (Redis broker) that a
prefork ``worker`` runs; all three traced by OpenTelemetry (FastAPI, Celery,
HTTPX instrumentation), logging through its logging instrumentation to
python-json-logger files: trace and span IDs, no parent. The worker makes
no calls.

The worker's task runs some 8 to 13 ms after the api enqueued it. Shifted
back by that delay, its spans held the api's inventory calls in 20 traces
of 80: a link ``worker -> inventory`` that moved the worker's clock by the
queue's delay (9 ms of invented skew on one clock; with the worker's clock
30 ms ahead, 12 ms off and the truth outside the interval shown). Nothing
but the queue relates the worker to the others: its clock stays as
written, named uncorrected.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _stitchutil import stitched_traces

CAPTURED = Path(__file__).parent / "captured"


@pytest.mark.parametrize("run", ["queue_chance_link", "queue_chance_link_shifted"])
def test_the_queue_delay_is_no_clock_skew(tmp_path: Path, run: str) -> None:
    summary, traces = stitched_traces(CAPTURED / run, tmp_path / "out.jsonl")
    assert len(traces) == 80
    assert summary.offsets_ms == {"api": 0.0, "inventory": 0.0, "worker": 0.0}
    assert "worker" in summary.uncorrected
    (note,) = summary.notes
    assert "api -> inventory (40 traces)" in note, note
    assert "worker ->" not in note, note
    for rows in traces.values():
        inventory = [r for r in rows if r["service"] == "inventory"]
        assert all(r["parent_span_id"] is not None for r in inventory)
        api = {r["span_id"] for r in rows if r["service"] == "api"}
        assert {r["parent_span_id"] for r in inventory} <= api
