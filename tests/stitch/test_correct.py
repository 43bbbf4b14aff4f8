"""Bracketing a call between its caller's records: the exact search it rests on."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from logtrace.stitch._correct import CallerRecords


def _expected(
    span: list[int], raw: list[float], caller: int, before: float, after: float
) -> tuple[float | None, float | None]:
    """Raw time of the caller's last record at or before ``before`` and first at
    or after ``after`` (NaN: none wanted), by looking at each."""
    mine = sorted(raw[k] for k in range(len(span)) if span[k] == caller)
    earlier = [t for t in mine if t <= before]
    later = [t for t in mine if t >= after]
    return (earlier[-1] if earlier else None), (later[0] if later else None)


times = st.floats(min_value=0.0, max_value=2.0, allow_nan=False).map(lambda t: round(t, 4))


@settings(max_examples=300, deadline=None)
@given(
    records=st.lists(st.tuples(st.integers(0, 4), times), max_size=40),
    calls=st.lists(
        st.tuples(st.integers(0, 5), st.one_of(st.none(), times), st.one_of(st.none(), times)),
        min_size=1,
        max_size=20,
    ),
    span_base=st.sampled_from([0, 10_000_000, 2**40]),
)
def test_tighten_finds_the_records_around_each_call(
    records: list[tuple[int, float]],
    calls: list[tuple[int, float | None, float | None]],
    span_base: int,
) -> None:
    t0 = 1.8e9  # epoch seconds: a span number times a day's width would lose the µs
    span = [span_base + s for s, _ in records]
    raw = [t0 + t for _, t in records]
    found = CallerRecords(np.array(span, dtype=np.int64), np.array(raw))
    n = len(calls)
    caller = np.array([span_base + c for c, _, _ in calls], dtype=np.int64)
    before = np.array([math.nan if b is None else t0 + b for _, b, _ in calls])
    after = np.array([math.nan if a is None else t0 + a for _, _, a in calls])
    send = np.full(n, -math.inf)
    receive = np.full(n, math.nan)
    found.tighten(np.arange(n), caller, before, after, send, receive)
    for k in range(n):
        want_send, want_receive = _expected(
            span,
            raw,
            int(caller[k]),
            -math.inf if math.isnan(before[k]) else before[k],
            math.inf if math.isnan(after[k]) else after[k],
        )
        assert send[k] == (-math.inf if want_send is None else want_send)
        if want_receive is None:
            assert math.isnan(receive[k])
        else:
            assert receive[k] == want_receive


def test_tighten_keeps_a_tighter_bound_already_there() -> None:
    found = CallerRecords(np.array([7, 7, 7], dtype=np.int64), np.array([10.0, 11.0, 14.0]))
    send = np.array([10.5])
    receive = np.array([13.0])
    found.tighten(np.array([0]), np.array([7]), np.array([12.0]), np.array([12.5]), send, receive)
    assert send[0] == 11.0  # the record at 11 is later than the 10.5 already known
    assert receive[0] == 13.0  # the record at 14 is later than the 13 already known
