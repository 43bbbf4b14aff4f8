"""The clock estimate's numpy front end: calls given as columns.

A run has hundreds of thousands of calls; the pipeline hands them over as
numpy columns, which are cut here into the compact per-pair columns the
solver reads, without an object per call. Imported only when used, so that
the solver itself (and ``logtrace grep``) stays free of numpy.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ._clock_bounds import CallColumns, CallKey

__all__ = ["calls_by_pair"]

F64 = npt.NDArray[np.float64]


def calls_by_pair(
    caller: npt.NDArray[np.integer[Any]],
    callee: npt.NDArray[np.integer[Any]],
    send: F64,
    receive: F64,
    start: F64,
    end: F64,
    exact: npt.NDArray[np.bool_],
    names: Sequence[str],
    answered: F64 | None = None,
) -> dict[CallKey, CallColumns]:
    """Each ordered pair's calls (and whether client spans bound them) as
    start times, ``start - send``, ``receive - answered`` and (where the
    answer is unknown) ``receive - end``, pairs in the order their first call
    comes; calls of a service to itself are left out."""
    caller = caller.astype(np.int64)
    callee = callee.astype(np.int64)
    keep = caller != callee
    width = len(names) + 1
    key = (caller * width + callee) * 2 + exact.astype(np.int64)
    if answered is None:
        answered = np.full(len(start), np.nan)
    key, start, send, receive = key[keep], start[keep], send[keep], receive[keep]
    end, answered = end[keep], answered[keep]
    ups = start - send
    stated = ~np.isnan(answered)
    lows = np.where(stated, receive - answered, np.nan)
    weak = np.where(stated, np.nan, receive - end)
    calls: dict[CallKey, CallColumns] = {}
    if len(key):
        distinct, first = np.unique(key, return_index=True)
        by_key = np.argsort(key, kind="stable")
        bounds = np.searchsorted(key[by_key], distinct)
        ends = [*bounds[1:].tolist(), len(key)]
        spans = dict(zip(distinct.tolist(), zip(bounds.tolist(), ends, strict=True), strict=True))
        for k in distinct[np.argsort(first, kind="stable")].tolist():
            lo, hi = spans[k]
            at = by_key[lo:hi]
            pair = k // 2
            columns = (
                _doubles(start[at]),
                _doubles(ups[at]),
                _doubles(lows[at]),
                _doubles(weak[at]),
            )
            calls[(names[pair // width], names[pair % width], bool(k % 2))] = columns
    return calls


def _doubles(values: F64) -> array[float]:
    out = array("d")
    out.frombytes(np.ascontiguousarray(values, dtype=np.float64).tobytes())
    return out
