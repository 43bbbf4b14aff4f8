"""Logs without parent IDs where inferring the calls still fails: kept, marked, to fix.

Captured runs (gzipped) of real services traced by OpenTelemetry and logging
through its logging instrumentation (python-json-logger lines: trace and
span IDs, no parent), 80 requests one at a time, every call through httpx:

- ``otel_fan_out_shifted``: the gateway calls orders and pricing at once
  (``asyncio.gather``), orders calls stock. Orders' spans cross the
  gateway's answer lines of the parallel call, so they fit no gap between
  two of its lines; pricing's fit orders' gaps at a wrong offset and the
  sibling link ``orders -> pricing`` stands: the offsets right to 0.7 ms,
  but 9 pricing spans of 80 under orders. (On one clock the same shape
  comes out right: ``test_otel_fan_out.py``.)

The test states what a right stitch gives; it is expected to fail
(strictly: once it passes it must lose its mark).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _stitchutil import assert_true_story

CAPTURED = Path(__file__).parent / "captured"


@pytest.mark.xfail(
    raises=AssertionError, reason="parallel calls: 9 pricing spans of 80 under the sibling"
)
def test_a_fan_out_with_shifted_clocks(tmp_path: Path) -> None:
    shifts = {"gateway": 0.0, "orders": -30.0, "pricing": 25.0, "stock": 12.0}
    assert_true_story(CAPTURED / "otel_fan_out_shifted", shifts, tmp_path / "o.jsonl")
