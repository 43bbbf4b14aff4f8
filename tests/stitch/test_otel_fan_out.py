"""Calls made at once (``asyncio.gather``), logs without parent IDs, one clock.

Captured runs (gzipped) of real services traced by OpenTelemetry and logging
through its logging instrumentation (python-json-logger lines: trace and
span IDs, no parent), 80 requests, every call through httpx:

- ``otel_fan_out_one_clock``: a FastAPI gateway gathers orders and pricing
  (FastAPI both), orders calls stock; three clients at once.
- ``otel_fan_out_three_one_clock``: the gateway gathers orders (FastAPI),
  pricing (Flask on gunicorn, two sync workers) and stock (FastAPI,
  streaming some answers, running a background job in others); one
  client.

On one clock a short callee really does lie inside its longer sibling's
span in many traces (pricing inside orders in 54 of 80, inside stock in 21
of 36): too many for the check at zero offsets, and the sibling's lines
were the narrower gap around it, so 23 and 17 pricing spans of 80 hung
under the sibling. A caller that waits writes nothing while its call runs:
pricing fits between the gateway's lines at zero in 80 traces of 80 (54 in
the second run), between the sibling's in 15 (11). Such a link goes, and
every pricing span hangs under the gateway.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _stitchutil import assert_true_story

CAPTURED = Path(__file__).parent / "captured"


@pytest.mark.parametrize(
    ("run", "sibling"),
    [("otel_fan_out_one_clock", "orders"), ("otel_fan_out_three_one_clock", "stock")],
)
def test_a_sibling_is_not_taken_for_the_caller(tmp_path: Path, run: str, sibling: str) -> None:
    shifts = dict.fromkeys(("gateway", "orders", "pricing", "stock"), 0.0)
    summary = assert_true_story(CAPTURED / run, shifts, tmp_path / "o.jsonl", within=1e-9)
    (note,) = summary.notes
    assert f"{sibling} -> pricing" not in note and "gateway -> pricing" in note, note
    assert "one clock" in note, note
