"""Where a callee fits between its caller's records, and the first clocks from it."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from _stitchutil import one_trace_table
from hypothesis import given, settings
from hypothesis import strategies as st

from logtrace.stitch._model import ROW_DTYPE, Table, Tree
from logtrace.stitch._record_gaps import RecordGaps, choose_stretches, fit_offsets

T0 = 1.8e9
times = st.floats(min_value=0.0, max_value=0.05, allow_nan=False).map(lambda t: round(t, 6))


def _table_and_tree(
    records: list[tuple[int, float]], extents: list[tuple[float, float]]
) -> tuple[Table, Tree]:
    """Records (span, time) of spans whose extents are given (raw seconds after T0)."""
    rows = np.zeros(len(records), dtype=ROW_DTYPE)
    for i, (span, t) in enumerate(records):
        rows[i]["span"], rows[i]["ts"] = span, T0 + t
    n = len(extents)
    table = one_trace_table(rows, n, ["a", "b"])
    i32 = np.zeros(n, dtype=np.int32)
    b = np.zeros(n, dtype=bool)
    start = np.array([T0 + s for s, _ in extents])
    end = np.array([T0 + e for _, e in extents])
    tree = Tree(np.full(n, -1, dtype=np.int32), ~b, i32, b, i32, start, end, b, i32)
    return table, tree


class TestIntervals:
    @settings(max_examples=300, deadline=None)
    @given(
        records=st.lists(st.tuples(st.integers(0, 3), times), max_size=30),
        callees=st.lists(st.tuples(times, times), min_size=1, max_size=6),
        pairs=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 5)), min_size=1, max_size=12),
    )
    def test_every_gap_wide_enough_and_no_other(
        self,
        records: list[tuple[int, float]],
        callees: list[tuple[float, float]],
        pairs: list[tuple[int, int]],
    ) -> None:
        """Against looking at every pair of consecutive records of the caller."""
        extents = [(0.0, 0.05)] * 4 + [(min(c), max(c)) for c in callees]
        pairs = [(a, 4 + b % len(callees)) for a, b in pairs]
        table, tree = _table_and_tree(records, extents)
        a = np.array([p[0] for p in pairs], dtype=np.int64)
        b = np.array([p[1] for p in pairs], dtype=np.int64)
        pair, lo, hi = RecordGaps(table, tree, np.zeros(len(table.rows))).intervals(tree, a, b)
        got = sorted(zip(pair.tolist(), lo.tolist(), hi.tolist(), strict=True))
        want = []
        for k, (caller, callee) in enumerate(pairs):
            mine = sorted(T0 + t for s, t in records if s == caller)
            for before, after in itertools.pairwise(mine):
                if after - before >= tree.end[callee] - tree.start[callee]:
                    want.append((k, tree.end[callee] - after, tree.start[callee] - before))
        assert len(got) == len(want)
        for g, w in zip(got, sorted(want), strict=True):
            assert g[0] == w[0] and math.isclose(g[1], w[1]) and math.isclose(g[2], w[2])

    def test_the_true_offset_is_in_the_call_gap(self) -> None:
        """A caller writes before and after its call and nothing meanwhile:
        on a clock 5 ms ahead, the callee fits that gap at 5 ms only."""
        caller = [(0, 0.000), (0, 0.010), (0, 0.020), (0, 0.021)]
        callee = [(1, 0.0115 + 0.005), (1, 0.0180 + 0.005)]
        table, tree = _table_and_tree(caller + callee, [(0.0, 0.021), (0.0165, 0.023)])
        pair, lo, hi = RecordGaps(table, tree, np.zeros(len(table.rows))).intervals(
            tree, np.array([0], dtype=np.int64), np.array([1], dtype=np.int64)
        )
        assert pair.tolist() == [0, 0]  # the 10 ms gaps only; the 1 ms one is too narrow
        (call_lo, call_hi), (other_lo, other_hi) = sorted(zip(lo, hi, strict=True))
        assert not other_lo <= 0.005 <= other_hi  # in the gap before the call: 13 to 16.5 ms
        assert call_lo == pytest.approx(0.003, abs=1e-6)  # it ended 2 ms before the answer
        assert call_hi == pytest.approx(0.0065, abs=1e-6)  # and began 1.5 ms after the call

    def test_a_coarse_caller_line_lasts_its_millisecond(self) -> None:
        """A caller whose lines name whole milliseconds: "responded", written
        at 20.8 ms, reads 20 ms. The gap it closes must run to 21 ms, or the
        callee (10.8 to 20.4 ms on the caller's clock, 5 ms ahead) would not
        fit it at its true offset."""
        caller = [(0, 0.000), (0, 0.010), (0, 0.020), (0, 0.021)]
        callee = [(1, 0.0108 + 0.005), (1, 0.0204 + 0.005)]
        table, tree = _table_and_tree(caller + callee, [(0.0, 0.021), (0.0158, 0.0254)])
        res = np.array([0.001] * 4 + [0.0] * 2)
        one = np.array([0], dtype=np.int64), np.array([1], dtype=np.int64)
        for lasts, holds in ((np.zeros(6), False), (res, True)):
            _, lo, hi = RecordGaps(table, tree, lasts).intervals(tree, *one)
            assert any(lo[k] <= 0.005 <= hi[k] for k in range(len(lo))) is holds


class TestFitOffsets:
    def test_a_chain_of_links(self) -> None:
        links = [("gw", "users", 0.009, 0.011), ("users", "db", -0.021, -0.019)]
        got = fit_offsets(links, {"gw": "gw", "users": "gw", "db": "gw"})
        assert got == pytest.approx({"gw": 0.0, "users": 0.010, "db": -0.010})

    def test_the_link_that_disagrees_is_dropped(self) -> None:
        """gw -> db through users says -10 ms; a direct link piled up beside
        the truth says -13 ms: it is dropped, not averaged in."""
        links = [
            ("gw", "users", 0.0099, 0.0101),
            ("users", "db", -0.0201, -0.0199),
            ("gw", "db", -0.015, -0.011),
        ]
        got = fit_offsets(links, {"gw": "gw", "users": "gw", "db": "gw"})
        assert got["db"] == pytest.approx(-0.010, abs=1e-6)

    def test_links_that_agree_are_weighed_by_their_width(self) -> None:
        links = [("gw", "db", 0.0009, 0.0011), ("gw", "db", 0.0, 0.004)]
        got = fit_offsets(links, {"gw": "gw", "db": "gw"})
        assert 0.001 < got["db"] < 0.00105

    def test_a_lone_wide_link_is_kept(self) -> None:
        got = fit_offsets([("gw", "db", 0.0, 0.1)], {"gw": "gw", "db": "gw"})
        assert got["db"] == pytest.approx(0.05)

    def test_weights_say_which_of_two_stories_the_clocks_tell(self) -> None:
        """pricing fits the gateway's gap snugly in every trace (-6 ms); it
        also lies in orders' spans where a few loose fits barely overlap,
        a narrow stretch that puts it 10 ms ahead. Weighed by their
        widths the narrow one wins; weighed by how densely the callees pack,
        the real call does, and the other is dropped."""
        links = [
            ("gw", "orders", 0.029, 0.031),
            ("gw", "pricing", -0.008, -0.004),
            ("orders", "pricing", -0.0205, -0.0195),
        ]
        groups = dict.fromkeys(("gw", "orders", "pricing"), "gw")
        by_width = fit_offsets(links, groups)
        assert by_width["pricing"] == pytest.approx(0.010, abs=1e-4)
        by_packing = fit_offsets(links, groups, [25000.0, 8400.0, 2400.0])
        assert by_packing["pricing"] == pytest.approx(-0.006, abs=1e-6)
        assert by_packing["orders"] == pytest.approx(0.030, abs=1e-6)

    def test_each_group_is_relative_to_its_first_service(self) -> None:
        links = [("a", "b", 0.001, 0.003), ("c", "d", -0.003, -0.001)]
        got = fit_offsets(links, {"a": "a", "b": "a", "c": "c", "d": "c"})
        assert got == pytest.approx({"a": 0.0, "b": 0.002, "c": 0.0, "d": -0.002})


class TestChooseStretches:
    """The stretch each link is taken at, where its callees fit at several."""

    GROUPS = dict.fromkeys(("gw", "users", "stock", "db"), "gw")

    def test_links_that_offer_one_choose_for_the_others(self) -> None:
        choices = [
            ("gw", "users", [(0.0099, 0.0101)]),
            ("users", "db", [(-0.0201, -0.0199)]),
            ("gw", "db", [(-0.0151, -0.0149), (-0.0101, -0.0099)]),
        ]
        assert choose_stretches(choices, self.GROUPS) == [0, 0, 1]

    def test_links_into_a_service_no_lone_stretch_reaches_vote(self) -> None:
        """Every link into db offers several stretches, so none anchors db.
        Each puts a wrong stretch first, at a different place; the only
        offset all three hold is the second or third of each (a real
        five-service mesh: stock's db calls otherwise hung under the
        gateway)."""
        choices = [
            ("gw", "users", [(0.0297, 0.0306)]),
            ("gw", "stock", [(-0.0003, 0.0006)]),
            ("gw", "db", [(-0.0277, -0.0276), (-0.0304, -0.0293)]),
            ("stock", "db", [(-0.0358, -0.0350), (-0.0305, -0.0292), (-0.0265, -0.0254)]),
            ("users", "db", [(-0.0550, -0.0539), (-0.0603, -0.0590)]),
        ]
        assert choose_stretches(choices, self.GROUPS) == [0, 0, 1, 1, 1]

    def test_no_two_agreeing_leaves_the_first(self) -> None:
        choices = [
            ("gw", "users", [(0.0099, 0.0101)]),
            ("gw", "db", [(-0.0151, -0.0149), (-0.0101, -0.0099)]),
            ("users", "db", [(-0.0401, -0.0399), (-0.0001, 0.0001)]),
        ]
        assert choose_stretches(choices, self.GROUPS) == [0, 0, 0]

    def test_a_tie_goes_to_the_first_stretches(self) -> None:
        """Two places each held by both links: the one their first stretches hold."""
        choices = [
            ("gw", "users", [(0.0099, 0.0101)]),
            ("gw", "db", [(-0.0201, -0.0199), (-0.0101, -0.0099)]),
            ("users", "db", [(-0.0301, -0.0299), (-0.0201, -0.0199)]),
        ]
        assert choose_stretches(choices, self.GROUPS) == [0, 0, 0]
