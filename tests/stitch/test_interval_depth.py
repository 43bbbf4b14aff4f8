"""Where most intervals agree: the stretches of offsets the evidence points to."""

from __future__ import annotations

import numpy as np

from logtrace.stitch._interval_depth import snug_stretches

MS = 1e-3


def _gaps(
    fits: list[list[tuple[float, float]]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Intervals (ms) per callee span, each callee in a trace of its own."""
    lo, hi, keys, callees = [], [], [], []
    for callee, intervals in enumerate(fits):
        for a, b in intervals:
            lo.append(a * MS)
            hi.append(b * MS)
            keys.append(callee)
            callees.append(callee)
    return (
        np.array(lo),
        np.array(hi),
        np.array(keys, dtype=np.int64),
        np.array(callees, dtype=np.int64),
    )


class TestSnugStretches:
    def test_one_interval_per_callee_is_plain_depth(self) -> None:
        rng = np.random.default_rng(1)
        fits = [[(-60.3 - rng.uniform(0, 0.5), -59.9 + rng.uniform(0, 0.5))] for _ in range(50)]
        lo, hi, keys, callees = _gaps(fits)
        (best, *_) = snug_stretches(lo, hi, keys, callees)
        assert best[0] <= -60.3 * MS and best[1] >= -59.9 * MS
        assert best[2:] == (50, 50)

    def test_a_callee_fitting_two_widened_gaps_counts_for_neither(self) -> None:
        """Lines to the millisecond: each gap between a caller's lines is
        widened by one on both sides, and a short call's callee also fits
        the next gap (answered, then calling again within the same
        millisecond) a little later. Counted once per interval, the overlap
        of the two is the deepest, 1.5 ms off the truth; counted once per
        callee, only where one gap alone holds it (a real run of the
        parallel-sibling services put db 2 ms off so)."""
        rng = np.random.default_rng(2)
        fits = []
        for _ in range(150):
            jitter = rng.uniform(-0.1, 0.1)
            own = (-61.0 + jitter, -58.0 + jitter)
            fits.append([own, (-59.3 + jitter, -58.1 + jitter)])
        lo, hi, keys, callees = _gaps(fits)
        (best, *_) = snug_stretches(lo, hi, keys, callees)
        assert best[1] <= -59.1 * MS, best  # not the overlap
        assert best[0] <= -60.0 * MS <= best[1], best

    def test_where_every_callee_fits_two_gaps_the_depth_stands(self) -> None:
        """Calls in a row whose lines share a millisecond: at the true
        offset each callee fits its own gap and the next one, and where one
        alone holds it differs from callee to callee. No offset holds
        nearly every callee in one gap alone: the overlap, where every
        interval is, stands."""
        rng = np.random.default_rng(3)
        fits = []
        for _ in range(100):
            a, b = rng.uniform(-0.3, 0.3, 2)
            fits.append([(-61.0 + a, -58.0 + a), (-60.6 + b, -57.6 + b)])
        fits += [[(-70.0, -66.0)] for _ in range(80)]
        lo, hi, keys, callees = _gaps(fits)
        (best, *_) = snug_stretches(lo, hi, keys, callees)
        assert best[0] <= -59.5 * MS and best[1] >= -58.5 * MS, best
        assert best[2:] == (100, 100)
