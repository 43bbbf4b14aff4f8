"""Running maxima and minima that restart at each group of a flat array."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

__all__ = ["segmented"]

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]


def segmented(values: F64, boundary: B, op: Callable[..., F64], backward: bool) -> F64:
    """``op.accumulate`` (``np.fmax`` or ``np.fmin``) within each group, in
    place; only groups where it changes something are walked."""
    n = len(values)
    if n < 2:
        return values
    if backward:
        ends = np.empty(n, dtype=bool)
        ends[-1] = True
        ends[:-1] = boundary[1:]
        segmented(values[::-1], ends[::-1].copy(), op, False)
        return values
    prev, cur = values[:-1], values[1:]
    with np.errstate(invalid="ignore"):
        changed = op(prev, cur) != cur
    changed &= ~(np.isnan(prev) & np.isnan(cur))
    bad = np.flatnonzero(changed & ~boundary[1:]) + 1
    if not len(bad):
        return values
    starts = np.flatnonzero(boundary)
    for g in np.unique(np.searchsorted(starts, bad, side="right") - 1).tolist():
        lo = starts[g]
        hi = starts[g + 1] if g + 1 < len(starts) else n
        op.accumulate(values[lo:hi], out=values[lo:hi])  # type: ignore[attr-defined]
    return values
