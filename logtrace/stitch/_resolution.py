"""How long each row's time lasts: 0 for a point, a second or a millisecond
for a line whose file writes whole seconds or milliseconds (:mod:`._precision`).

Both the clock estimate (a coarse time only bounds a call within its
interval) and the order stage (a coarse line is placed by its file) read it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ._model import Table
from ._precision import MS, SECOND, file_resolution

__all__ = ["row_resolution", "span_resolution"]

F64 = npt.NDArray[np.float64]


def row_resolution(table: Table) -> F64:
    """Per row: how long the time it names lasts (0.0 for a point; see :mod:`._precision`).
    Read once per table (the clock and order stages both ask)."""
    memo = table.memo.get("row_resolution")
    if memo is not None and len(memo) == len(table.rows):
        out: F64 = memo
        return out
    out = _row_resolution(table)
    out.flags.writeable = False
    table.memo["row_resolution"] = out
    return out


def _row_resolution(table: Table) -> F64:
    ts = table.rows["ts"]
    out = np.zeros(len(ts))
    files = np.unique(table.file) if len(ts) else np.empty(0, dtype=np.int32)
    seconds = np.zeros(len(table.sources), dtype=bool)
    millis = np.zeros(len(table.sources), dtype=bool)
    for f in files.tolist():
        # The named file, not a spooled piece of it: every engine samples the same lines.
        found = file_resolution(table.sources[f].path)
        seconds[f], millis[f] = found.seconds, found.millis
    if not (seconds.any() or millis.any()):
        return out
    with np.errstate(invalid="ignore"):
        whole_s = seconds[table.file] & (ts == np.floor(ts))
        scaled = ts * 1000.0
        whole = millis[table.file] & (np.abs(scaled - np.round(scaled)) < 5e-4) & ~whole_s
    out[whole_s] = SECOND
    out[whole] = MS
    return out


def span_resolution(table: Table, n_spans: int, res: F64) -> F64:
    """Per span: the longest time any of its rows lasts (``res`` per row)."""
    span = table.rows["span"]
    has = span >= 0
    out = np.zeros(n_spans)
    np.maximum.at(out, span[has], res[has])
    return out
