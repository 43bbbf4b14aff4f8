"""Logs without parent IDs where inferring the calls still fails: kept, marked, to fix.

Captured runs (gzipped) of real services traced by OpenTelemetry and logging
through its logging instrumentation (python-json-logger lines: trace and
span IDs, no parent), 80 requests one at a time, every call through httpx:

- ``otel_tree_shifted``: a FastAPI gateway calls orders (Flask on gunicorn,
  two sync workers), then pricing (Django ASGI, logging from
  ``response.close()``); orders calls stock (FastAPI, streaming some answers,
  running a background job in others), stock calls db. Clocks shifted:
  orders +30, stock -20, db +12, pricing -7 ms. pricing, called after
  orders answered, lies inside orders' and stock's spans at wrong offsets
  in nearly every trace: chance links ``orders -> pricing`` and ``stock ->
  pricing`` stand beside the real ``gateway -> pricing``, pricing hangs
  under stock, offsets come out 4 to 10 ms off and every trace has a line
  out of causal order.
- ``otel_fan_out_shifted`` and ``otel_fan_out_one_clock``: the gateway calls
  orders and pricing at once (``asyncio.gather``), orders calls stock.
  Orders' spans cross the gateway's answer lines of the parallel call, so
  they fit no gap between two of its lines; pricing's fit orders' gaps at
  a wrong offset and the sibling link ``orders -> pricing`` stands
  (shifted: orders and stock about 4 ms off, 78 traces out of order; one
  clock: offsets 0, 23 pricing spans under orders).

Each test states what a right stitch gives; they are expected to fail
(strictly: one that passes must lose its mark).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from _stitchutil import stitched_traces

CAPTURED = Path(__file__).parent / "captured"
CID = re.compile(r"cid:(\w+)>(\w+)#\d+")


def wrong_calls(traces: dict[str, list[dict[str, Any]]]) -> int:
    """Traces with a callee's request span under another service than the
    caller its ``cid`` names, or its ``recv`` line before the caller's
    ``call`` line."""
    wrong = 0
    for rows in traces.values():
        service_of = {r["span_id"]: r["service"] for r in rows if r["span_id"]}
        called = {}
        bad = False
        for i, row in enumerate(rows):
            text = str(row["record"].get("message", ""))
            found = CID.search(text)
            if found is None:
                continue
            if text.startswith("call "):
                called[found.group(0)] = i
            elif text.startswith("recv ") and row["service"] == found.group(2):
                parent = service_of.get(row["parent_span_id"] or "")
                at = called.get(found.group(0))
                bad |= parent != found.group(1) or at is None
        wrong += bad
    return wrong


def assert_true_story(run: str, shifts: dict[str, float], out: Path) -> None:
    """Every clock within 2 ms of its shift, every call right (see :func:`wrong_calls`)."""
    summary, traces = stitched_traces(CAPTURED / run, out)
    for name, shift in shifts.items():
        assert summary.offsets_ms[name] == pytest.approx(shift, abs=2.0), summary.offsets_ms
    assert wrong_calls(traces) == 0


@pytest.mark.xfail(
    raises=AssertionError, reason="chance links into a service called after another's call"
)
def test_a_tree_of_five_services_with_shifted_clocks(tmp_path: Path) -> None:
    shifts = {"gateway": 0.0, "orders": 30.0, "stock": -20.0, "db": 12.0, "pricing": -7.0}
    assert_true_story("otel_tree_shifted", shifts, tmp_path / "o.jsonl")


@pytest.mark.xfail(
    raises=AssertionError, reason="parallel calls: a callee fits no gap of its caller's lines"
)
def test_a_fan_out_with_shifted_clocks(tmp_path: Path) -> None:
    shifts = {"gateway": 0.0, "orders": -30.0, "pricing": 25.0, "stock": 12.0}
    assert_true_story("otel_fan_out_shifted", shifts, tmp_path / "o.jsonl")


@pytest.mark.xfail(
    raises=AssertionError, reason="a sibling link fits at zero offsets in 23 traces of 80"
)
def test_a_fan_out_on_one_clock(tmp_path: Path) -> None:
    shifts = dict.fromkeys(("gateway", "orders", "pricing", "stock"), 0.0)
    assert_true_story("otel_fan_out_one_clock", shifts, tmp_path / "o.jsonl")
