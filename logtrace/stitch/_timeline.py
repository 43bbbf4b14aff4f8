"""Span extents on the corrected clock, for the renderers that draw time.

The span tree keeps raw extents (each on its own service's clock). Drawing
spans of several services on one axis needs them corrected: a span record's
``span.start`` is shifted by the same correction as the record itself, and
a span's extent also covers its own records, so every record of a span
lies inside the span's bar.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ._model import SPAN_RECORD, Rendering
from ._tree import span_extents

__all__ = ["Timeline", "timeline"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(slots=True)
class Timeline:
    """Per span and per trace: corrected extents (epoch seconds, NaN if unknown)."""

    span_start: F64
    span_end: F64
    span_record: I64
    """Per span: the row of its span record, -1 when it has none."""
    trace_lo: F64
    """Per trace: the earliest corrected instant (a span may start before its first log line)."""
    trace_hi: F64


def timeline(r: Rendering) -> Timeline:
    """Corrected extents of the spans and traces of the selected rows."""
    table = r.table
    idx = r.order.rows[: r.order.n_traced]
    sub = table.rows[idx]
    span = sub["span"]
    corrected = r.corrected[idx]
    n = len(table.spans)
    # span.start (raw clock) moved by the correction of its own record.
    declared = table.span_start[idx] - (sub["ts"] - corrected)
    start, end = span_extents(n, span, corrected, declared)
    record = np.full(n, -1, dtype=np.int64)
    is_record = (span >= 0) & ((sub["flags"] & SPAN_RECORD) != 0)
    record[span[is_record]] = idx[is_record]

    trace = sub["trace"]
    lo = np.array(r.order.trace_start, dtype=np.float64, copy=True)
    hi = np.array(r.order.trace_end, dtype=np.float64, copy=True)
    has = (span >= 0) & (trace >= 0)
    s_start, s_end = start[span[has]], end[span[has]]
    ok = ~np.isnan(s_start)
    np.fmin.at(lo, trace[has][ok], s_start[ok])
    ok = ~np.isnan(s_end)
    np.fmax.at(hi, trace[has][ok], s_end[ok])
    return Timeline(start, end, record, lo, hi)
