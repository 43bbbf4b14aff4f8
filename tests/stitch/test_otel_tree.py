"""A five-service tree in logs without parent IDs, clocks shifted.

Captured runs (gzipped) of real services traced by OpenTelemetry and logging
through its logging instrumentation (python-json-logger lines: trace and
span IDs, no parent), 80 requests one at a time, every call through httpx.
A FastAPI gateway calls orders (Flask on gunicorn, two sync workers), then,
once orders answered, pricing (Django ASGI, logging from
``response.close()``); orders calls stock (FastAPI, streaming some answers,
running a background job in others), stock calls db.

Pricing's spans lie inside orders' and stock's at wrong offsets in nearly
every trace. Those chance links agree with each other, and one of them,
``stock -> pricing``, fits stock's gaps where a few loose fits barely
overlap: a narrow stretch. Weighed by how narrow their stretches are, the
first clocks took their story over the real ``gateway -> pricing``; pricing
hung under stock, every clock came out 3.5 to 21 ms off and every trace
had a line out of causal order. Weighed by how densely the callees pack
between the callers' lines, the real call decides, the clocks refute the
chance links, and they go. And db, its group's first service and bounded
by no call in the first round, had been left at zero there, 14 ms from
where the links put it: the services no call bounds are now measured from
one that a call does.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _stitchutil import assert_true_story

CAPTURED = Path(__file__).parent / "captured"


@pytest.mark.parametrize(
    ("run", "shifts"),
    [
        (
            "otel_tree_shifted",
            {"orders": 30.0, "stock": -20.0, "db": 12.0, "pricing": -7.0},
        ),
        (
            "otel_tree_unaligned",
            {"orders": 30.37, "stock": -29.71, "db": 0.0, "pricing": 0.0},
        ),
    ],
)
def test_every_call_under_its_caller(tmp_path: Path, run: str, shifts: dict[str, float]) -> None:
    """Every callee under its caller and after its call, in every trace;
    every clock within the lean a chain of three hops adds up to (1.8 to
    2.1 ms at db, see the docs' limits), the truth inside its interval."""
    summary = assert_true_story(CAPTURED / run, shifts, tmp_path / "o.jsonl", within=2.5)
    note = summary.notes[0]
    assert "gateway -> pricing" in note and "stock -> pricing" not in note, note
    assert abs(summary.offsets_ms["orders"] - shifts["orders"]) < 1.0, summary.offsets_ms
    assert abs(summary.offsets_ms["pricing"] - shifts["pricing"]) < 1.0, summary.offsets_ms
    for name, shift in shifts.items():
        low, high = summary.offset_bounds_ms[name]
        assert low <= shift <= high, (name, summary.offset_bounds_ms)
