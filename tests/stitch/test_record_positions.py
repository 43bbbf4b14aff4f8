"""Where a callee lies among its caller's records, counted by position."""

from __future__ import annotations

import math

import numpy as np
from _stitchutil import one_trace_table
from hypothesis import given, settings
from hypothesis import strategies as st

from logtrace.stitch._model import ROW_DTYPE, Tree
from logtrace.stitch._record_gaps import span_records
from logtrace.stitch._record_positions import (
    MAX_POSITION,
    PositionRows,
    position_evidence,
    position_stretches,
)

T0 = 1.8e9
times = st.floats(min_value=0.0, max_value=0.05, allow_nan=False).map(lambda t: round(t, 6))
Extent = tuple[float, float]


def _rows_of_one_trace(
    caller: list[float], callees: list[Extent], pairs: list[tuple[int, int]] | None = None
) -> PositionRows:
    """The position rows of one trace: span 0 writes ``caller`` (raw seconds
    after T0), spans 1... extend over ``callees``; every callee paired with
    span 0 unless ``pairs`` (caller, callee) says otherwise."""
    records = [(0, t) for t in caller] + [(1 + k, t) for k, c in enumerate(callees) for t in c]
    rows = np.zeros(len(records), dtype=ROW_DTYPE)
    for i, (span, t) in enumerate(records):
        rows[i]["span"], rows[i]["ts"] = span, T0 + t
    n = 1 + len(callees)
    table = one_trace_table(rows, n, ["a", "b"])
    extents = [(min(caller, default=0.0), max(caller, default=0.0)), *callees]
    service = np.r_[0, np.ones(len(callees))].astype(np.int32)
    none = np.zeros(n, dtype=bool)
    start = np.array([T0 + s for s, _ in extents])
    end = np.array([T0 + e for _, e in extents])
    depth, row_depth = np.zeros(n, dtype=np.int32), np.zeros(len(rows), dtype=np.int32)
    parent = np.full(n, -1, dtype=np.int32)
    tree = Tree(parent, ~none, depth, none, service, start, end, none, row_depth)
    chosen = pairs or [(0, 1 + k) for k in range(len(callees))]
    a = np.array([p[0] for p in chosen], dtype=np.int64)
    b = np.array([p[1] for p in chosen], dtype=np.int64)
    records = span_records(table, n, np.zeros(len(rows)))
    return position_evidence(table, tree, records, a, b, np.zeros(n))


def _joined(parts: list[PositionRows]) -> PositionRows:
    """Rows of several partitions, as the run collects them."""
    return tuple(np.concatenate([p[k] for p in parts]) for k in range(5))  # type: ignore[return-value]


def _stretch(parts: list[PositionRows]) -> tuple[float, float, int] | None:
    return position_stretches(*_joined(parts), width=3).get(1)  # service 0 calls service 1


class TestPositionEvidence:
    @settings(max_examples=200, deadline=None)
    @given(
        caller=st.lists(times, min_size=0, max_size=16),
        callees=st.lists(st.tuples(times, times), min_size=1, max_size=3),
    )
    def test_against_every_pair_of_records(
        self, caller: list[float], callees: list[tuple[float, float]]
    ) -> None:
        """Per position pair: the union, over the trace's callee spans, of
        the offsets at which the callee fits between the two records."""
        extents = [(min(c), max(c)) for c in callees]
        svc_a, svc_b, lo, hi, packed = _rows_of_one_trace(caller, extents)
        got = {
            (int(p) & 1023, (int(p) >> 10) & 1023): (float(low), float(high))
            for p, low, high in zip(packed, lo, hi, strict=True)
        }
        assert (svc_a == 0).all() and (svc_b == 1).all()
        assert ((packed >> 20) == 1).all()  # one trace
        ordered = sorted(T0 + t for t in caller)
        m = len(ordered)
        want = {}
        for i in range(min(m, MAX_POSITION)):
            for j in range(min(m, MAX_POSITION)):
                if m - 1 - j <= i:
                    continue
                before, after = ordered[i], ordered[m - 1 - j]
                fits = [
                    (T0 + e - after, T0 + s - before)
                    for s, e in extents
                    if T0 + e - after <= T0 + s - before
                ]
                low = min((f[0] for f in fits), default=math.inf)
                high = max((f[1] for f in fits), default=-math.inf)
                want[(j, i)] = (low, high)
        assert got.keys() == want.keys()
        for key, (low, high) in want.items():
            assert math.isclose(got[key][0], low) or got[key][0] == low == math.inf, key
            assert math.isclose(got[key][1], high) or got[key][1] == high == -math.inf, key

    def test_a_caller_with_one_record_gives_none(self) -> None:
        assert len(_rows_of_one_trace([0.01], [(0.011, 0.012)])[0]) == 0


# A gateway that gathers two calls: "call orders", "call pricing", then
# pricing's answer while orders still works, orders' answer, "done". Orders
# runs 5 ms ahead of the gateway.
AHEAD = 0.005


def _gathered(shift: float, orders: Extent, answers: list[float]) -> PositionRows:
    caller = [0.000, 0.001, 0.002, *answers, 0.030]
    return _rows_of_one_trace(caller, [(orders[0] + shift, orders[1] + shift)])


class TestPositionStretches:
    def test_positions_bound_a_call_between_no_two_consecutive_records(self) -> None:
        """Orders spans pricing's answer line in every trace: it fits between
        no two consecutive gateway records, yet always starts after the
        second "call" line and ends before its own answer."""
        traces = [
            _gathered(AHEAD, (0.0025, 0.0200), [0.010, 0.021]),
            _gathered(AHEAD, (0.0030, 0.0240), [0.012, 0.025]),
            _gathered(AHEAD, (0.0028, 0.0180), [0.008, 0.019]),
        ]
        stretch = _stretch(traces)
        assert stretch is not None
        left, right, count = stretch
        assert left <= AHEAD <= right and count == 3
        assert right - left < 0.002  # the whole spans leave 12 ms

    def test_partitions_sum_to_the_whole(self) -> None:
        traces = [
            _gathered(AHEAD, (0.0025, 0.0200), [0.010, 0.021]),
            _gathered(AHEAD, (0.0030, 0.0240), [0.012, 0.025]),
            _gathered(AHEAD, (0.0028, 0.0180), [0.008, 0.019]),
        ]
        whole = position_stretches(*_joined(traces), width=3)
        # One trace per partition, each summarised on its own, then joined.
        apart = position_stretches(*_joined([_joined([t]) for t in traces]), width=3)
        assert whole == apart

    def test_a_pair_steady_by_chance_is_outvoted(self) -> None:
        """The callee runs between the third and fourth records; it would
        fit as well between the fourth and fifth, 20 ms earlier on its
        clock, in every trace: a pair steady by chance, which contradicts
        the true one. Every pair that truly brackets the call holds the true
        offset (0 here), and they outnumber those beside it."""
        traces = [
            _rows_of_one_trace([0.0, 0.001, 0.002, 0.020, 0.040, 0.041], [(0.010, 0.015)]),
            _rows_of_one_trace([0.0, 0.001, 0.003, 0.021, 0.041, 0.042], [(0.011, 0.016)]),
        ]
        stretch = _stretch(traces)
        assert stretch is not None
        left, right, _ = stretch
        assert math.isclose(left, -0.005, abs_tol=1e-6)  # 15 ms end, 20 ms record
        assert math.isclose(right, 0.008, abs_tol=1e-6)  # 10 ms start, 2 ms record

    def test_as_many_pairs_on_two_sides_give_none(self) -> None:
        """A callee as likely in the first gap as in the second: no stretch."""
        assert _stretch([_rows_of_one_trace([0.0, 0.010, 0.020], [(0.002, 0.007)])]) is None

    def test_a_pair_most_traces_lack_bounds_nothing(self) -> None:
        """A position pair counts only where the caller's spans of nearly
        every trace have records there."""
        short = [_rows_of_one_trace([0.0, 0.030], [(0.0025 + AHEAD, 0.02 + AHEAD)])] * 19
        long = _rows_of_one_trace(
            [0.0, 0.002, 0.0030, 0.0229, 0.030], [(0.0025 + AHEAD, 0.02 + AHEAD)]
        )
        stretch = _stretch([*short, long])
        assert stretch is not None
        left, right, count = stretch
        assert count == 20
        assert math.isclose(right, 0.0025 + AHEAD, abs_tol=1e-6)  # the whole span's bound alone
        assert math.isclose(left, 0.02 + AHEAD - 0.030, abs_tol=1e-6)
