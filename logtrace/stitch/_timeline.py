"""Times on the corrected clock as the renderers that show time draw them.

The span tree keeps raw extents (each on its own service's clock). Drawing
spans of several services on one axis needs them corrected: a span record's
``span.start`` is shifted by the same correction as the record itself, and
a span's extent also covers its own records, so every record of a span
lies inside the span's bar.

A line timed to the millisecond or the second (:mod:`._resolution`) says
only that it was written during that interval. It is shown at the instant
of its interval nearest its trace's first finely timed line: its interval's
start when that comes after that line, that line's time when the interval
holds it, its interval's end when the whole interval comes before it; and at
its interval's start in a trace with no finely timed line. So such a line
never stretches its trace further than its interval requires (an access
line of a whole second does not make a 277 ms request last a second), and a
trace's start and end are the first and last times shown: no line of a
trace is shown before the trace's start.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ._model import SPAN_RECORD, Rendering
from ._order import shown_times as order_shown
from ._resolution import row_resolution
from ._tree import span_extents

__all__ = ["Timeline", "relative_ms", "shown_times", "timeline"]

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
    shown: F64
    """Per row of the table: the time shown (see :func:`shown_times`)."""
    trace_start: F64
    """Per trace: the first time shown of its lines (NaN if none has a time)."""
    trace_end: F64
    """Per trace: the last time shown of its lines."""


def shown_times(r: Rendering) -> tuple[F64, F64, F64]:
    """Per row of the table, the time shown (NaN for a line without a time
    or without a trace); per trace, the first and the last of its lines'
    (:func:`._order.shown_times`, which ranks the traces by the first)."""
    table = r.table
    idx = r.order.rows[: r.order.n_traced]
    trace = table.rows["trace"][idx]
    at, start, end = order_shown(
        r.corrected[idx], row_resolution(table)[idx], trace, len(table.traces)
    )
    shown = np.full(len(table.rows), np.nan)
    shown[idx] = at
    return shown, start, end


def relative_ms(seconds: float) -> str:
    """A time since a trace's start for the time column: ``+4.402ms``,
    ``-0.500ms`` (never ``+-``), ``""`` when unknown."""
    if seconds != seconds:
        return ""
    return f"{seconds * 1e3 + 0.0:+.3f}ms"


def timeline(r: Rendering) -> Timeline:
    """Corrected extents of the spans and traces of the selected rows."""
    table = r.table
    idx = r.order.rows[: r.order.n_traced]
    sub = table.rows[idx]
    span = sub["span"]
    shown, trace_start, trace_end = shown_times(r)
    at = shown[idx]
    n = len(table.spans)
    # span.start (raw clock) moved by the correction of its own record.
    declared = table.span_start[idx] - (sub["ts"] - r.corrected[idx])
    start, end = span_extents(n, span, at, declared)
    record = np.full(n, -1, dtype=np.int64)
    is_record = (span >= 0) & ((sub["flags"] & SPAN_RECORD) != 0)
    record[span[is_record]] = idx[is_record]

    trace = sub["trace"]
    lo = trace_start.copy()
    hi = trace_end.copy()
    has = (span >= 0) & (trace >= 0)
    s_start, s_end = start[span[has]], end[span[has]]
    ok = ~np.isnan(s_start)
    np.fmin.at(lo, trace[has][ok], s_start[ok])
    ok = ~np.isnan(s_end)
    np.fmax.at(hi, trace[has][ok], s_end[ok])
    return Timeline(start, end, record, lo, hi, shown, trace_start, trace_end)
