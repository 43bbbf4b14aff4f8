"""Bracketing a call between its caller's records: the exact search it rests on."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from logtrace.stitch._correct import CallerRecords, correct_times

OFFSETS = np.array([0.0, 0.004, -0.0125])
MODELS = (OFFSETS, np.zeros(3), np.zeros(3))


def _expected(
    span: list[int],
    raw: list[float],
    corrected: list[float],
    caller: int,
    lo: float,
    hi: float,
    has_end: bool,
) -> tuple[float | None, float | None]:
    """Raw time of the caller's last record at or before ``lo`` and first at or
    after ``hi`` (records of equal time in the order given), by looking at each."""
    mine = sorted(
        (corrected[k], k) for k in range(len(span)) if span[k] == caller
    )  # by time, then as given
    before = [raw[k] for t, k in mine if t <= lo]
    after = [raw[k] for t, k in mine if t >= hi]
    return (before[-1] if before else None), (after[0] if after and has_end else None)


times = st.floats(min_value=0.0, max_value=2.0, allow_nan=False).map(lambda t: round(t, 4))


@settings(max_examples=300, deadline=None)
@given(
    records=st.lists(st.tuples(st.integers(0, 4), times, st.integers(0, 2)), max_size=40),
    calls=st.lists(
        st.tuples(st.integers(0, 5), times, st.one_of(st.none(), times), st.integers(0, 2)),
        min_size=1,
        max_size=20,
    ),
    span_base=st.sampled_from([0, 10_000_000, 2**40]),
    margin=st.sampled_from([0.0, 30e-6, 0.01]),
)
def test_tighten_finds_the_records_around_each_call(
    records: list[tuple[int, float, int]],
    calls: list[tuple[int, float, float | None, int]],
    span_base: int,
    margin: float,
) -> None:
    t0 = 1.8e9  # epoch seconds: a span number times a day's width would lose the µs
    span = [span_base + s for s, _, _ in records]
    raw = [t0 + t for _, t, _ in records]
    svc = np.array([v for _, _, v in records], dtype=np.int64)
    corrected = correct_times(np.array(raw), svc, MODELS) if records else np.zeros(0)
    found = CallerRecords(np.array(span, dtype=np.int64), np.array(raw), corrected)
    n = len(calls)
    caller = np.array([span_base + c for c, _, _, _ in calls], dtype=np.int64)
    start = np.array([t0 + s for _, s, _, _ in calls])
    end = np.array([math.nan if e is None else t0 + e for _, _, e, _ in calls])
    svc_callee = np.array([v for _, _, _, v in calls], dtype=np.int64)
    send = np.full(n, -math.inf)
    receive = np.full(n, math.nan)
    found.tighten(np.arange(n), caller, start, end, svc_callee, MODELS, margin, send, receive)
    lo = correct_times(start, svc_callee, MODELS) - margin
    hi = correct_times(np.where(np.isnan(end), start, end), svc_callee, MODELS) + margin
    for k in range(n):
        want_send, want_receive = _expected(
            span, raw, corrected.tolist(), int(caller[k]), lo[k], hi[k], not math.isnan(end[k])
        )
        assert send[k] == (-math.inf if want_send is None else want_send)
        if want_receive is None:
            assert math.isnan(receive[k])
        else:
            assert receive[k] == want_receive


def test_tighten_keeps_a_tighter_bound_already_there() -> None:
    found = CallerRecords(
        np.array([7, 7, 7], dtype=np.int64),
        np.array([10.0, 11.0, 14.0]),
        np.array([10.0, 11.0, 14.0]),
    )
    send = np.array([10.5])
    receive = np.array([13.0])
    found.tighten(
        np.array([0]), np.array([7]), np.array([12.0]), np.array([12.5]), np.array([0]),
        MODELS, 0.0, send, receive,
    )  # fmt: skip
    assert send[0] == 11.0  # the record at 11 is later than the 10.5 already known
    assert receive[0] == 13.0  # the record at 14 is later than the 13 already known
