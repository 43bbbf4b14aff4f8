"""One call per gap, on plain data: spans 0 and 1 are two requests of one
caller service (service 1), spans 2 and 3 two requests of its callee
(service 2), on one clock (seconds)."""

from __future__ import annotations

import numpy as np

from logtrace.stitch._gap_matching import one_call_per_gap

SERVICE = np.array([1, 1, 2, 2], dtype=np.int64)


def _match(rows: list[tuple[int, int, float, float]], start: list[float]) -> dict[int, int]:
    """Each callee chose caller 0 (both fit a gap of it best)."""
    caller, callee, gap, before = (np.array(c) for c in zip(*rows, strict=True))
    chosen = np.array([-1, -1, 0, 0], dtype=np.int64)
    starts = np.array([0.0, 0.0, *start])
    return one_call_per_gap(
        chosen, caller.astype(np.int64), callee.astype(np.int64), gap.astype(float),
        before.astype(float), SERVICE, starts,
    )  # fmt: skip


BOTH_FIT_BOTH = [(0, 2, 5.0, 1.0), (0, 3, 5.0, 1.0), (1, 2, 6.0, 1.2), (1, 3, 6.0, 1.2)]
"""Rows: caller, callee, gap width, when the gap opens."""


class TestOneCallPerGap:
    def test_two_callees_in_one_gap_take_one_caller_each_first_called_first_started(
        self,
    ) -> None:
        assert _match(BOTH_FIT_BOTH, [1.1, 1.3]) == {2: 0, 3: 3}
        assert _match(BOTH_FIT_BOTH, [1.3, 1.1]) == {2: 2, 3: 1}

    def test_a_callee_fitting_one_caller_alone_leaves_the_other_its_gap(self) -> None:
        rows = [(0, 2, 5.0, 1.0), (0, 3, 5.0, 1.0), (1, 2, 6.0, 1.2)]
        assert _match(rows, [1.1, 1.3]) == {2: 2, 3: 1}

    def test_one_caller_span_keeps_both(self) -> None:
        """A request's own step, or two calls with no line between them:
        no other span of the caller's service holds either."""
        rows = [(0, 2, 5.0, 1.0), (0, 3, 5.0, 1.0), (0, 3, 7.0, 0.5)]
        assert _match(rows, [1.1, 1.3]) == {}

    def test_callees_in_gaps_of_their_own_are_left_alone(self) -> None:
        chosen = np.array([-1, -1, 0, 1], dtype=np.int64)
        rows = np.array([0, 1], dtype=np.int64)
        got = one_call_per_gap(
            chosen, rows, np.array([2, 3], dtype=np.int64), np.array([5.0, 6.0]),
            np.array([1.0, 1.2]), SERVICE, np.array([0.0, 0.0, 1.1, 1.3]),
        )  # fmt: skip
        assert got == {}

    def test_two_gaps_of_one_span_give_the_free_span_its_call(self) -> None:
        """The second ledger span fits the first request's gap after its
        own call (3.0, opening at 1.25) more narrowly than the second
        request's call gap (6.0): both chose caller 0, caller 1 holds none."""
        rows = [(0, 2, 5.0, 1.0), (0, 3, 3.0, 1.25), (1, 3, 6.0, 1.2)]
        assert _match(rows, [1.1, 1.3]) == {2: 0, 3: 2}

    def test_two_gaps_of_one_span_stay_where_the_other_span_has_its_own(self) -> None:
        """Two calls in a row from caller 0; caller 1 holds a callee of that
        service already (span 4): nothing moves."""
        service = np.array([1, 1, 2, 2, 2], dtype=np.int64)
        chosen = np.array([-1, -1, 0, 0, 1], dtype=np.int64)
        caller = np.array([0, 0, 1, 1], dtype=np.int64)
        callee = np.array([2, 3, 3, 4], dtype=np.int64)
        got = one_call_per_gap(
            chosen, caller, callee, np.array([5.0, 3.0, 2.0, 6.0]),
            np.array([1.0, 1.25, 1.2, 1.2]), service, np.array([0.0, 0.0, 1.1, 1.3, 1.3]),
        )  # fmt: skip
        assert got == {}
