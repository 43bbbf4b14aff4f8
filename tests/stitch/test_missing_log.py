"""An incident brings some of the files: the middle service's log is missing.

A captured run (gzipped) of three services under logtrace's middleware on
one clock: a FastAPI ``gateway`` calls ``orders`` (Flask on gunicorn, two
sync workers), which calls ``stock`` (Django ASGI), 80 requests; only the
gateway's and stock's logs are here. Stock's server spans name a parent
(orders' client span) that is not in the logs: they are hung under the
gateway from containment, on one clock, nothing corrected. The summary
showed stock ``(reference)`` beside the gateway: its interval had been taken
from the one-clock decision (zero, no doubt) rather than from what
containment allows.
"""

from __future__ import annotations

from pathlib import Path

from _stitchutil import stitched_traces

RUN = Path(__file__).parent / "captured" / "middle_log_missing"


def test_stock_hangs_under_the_gateway_and_only_the_gateway_is_the_reference(
    tmp_path: Path,
) -> None:
    summary, traces = stitched_traces(RUN, tmp_path / "out.jsonl")
    assert len(traces) == 80
    assert summary.offsets_ms == {"gateway": 0.0, "stock": 0.0}
    assert summary.reference == "gateway"
    low, high = summary.offset_bounds_ms["stock"]
    assert low < 0.0 < high
    for rows in traces.values():
        gateway = {r["span_id"] for r in rows if r["service"] == "gateway"}
        stock = [
            r
            for r in rows
            if r["service"] == "stock" and r["record"].get("logger") != "logtrace.span"
        ]
        assert stock
        assert all(r["parent_span_id"] in gateway for r in stock), stock
